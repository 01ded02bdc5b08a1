//! The generic extractors: regex with named captures, key=value, logfmt and
//! JSON-in-message. Pure functions over the message text.

use regex::Regex;
use serde_json::Value;

use super::Out;

/// Most fields one generic extractor adds to an event.
pub const MAX_FIELDS: usize = 64;
/// Longest value kept; longer values are cut at a character boundary.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Deepest nesting of JSON objects that is flattened.
const MAX_JSON_DEPTH: usize = 4;

fn clip(v: &str) -> &str {
    if v.len() <= MAX_VALUE_BYTES {
        return v;
    }
    let mut end = MAX_VALUE_BYTES;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// Keys must be short and plain: letters, digits, `_ - . @`.
fn good_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

/// Named captures become fields; `__` in a capture name stands for a dot
/// (`(?P<app__user>\w+)` fills `app.user`).
pub fn regex(re: &Regex, message: &str, out: &mut Out) {
    let Some(caps) = re.captures(message) else {
        return;
    };
    for name in re.capture_names().flatten() {
        if let Some(m) = caps.name(name) {
            out.push((name.replace("__", "."), clip(m.as_str()).to_owned()));
        }
    }
}

/// `key=value` pairs separated by whitespace (or `,`/`;`), values optionally in double
/// quotes; with `logfmt`, backslash escapes in quotes are honoured and bare keys are
/// `true`. Keys go under `kv.`.
pub fn kv(message: &str, logfmt: bool, out: &mut Out) {
    let b = message.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() && n < MAX_FIELDS {
        while i < b.len()
            && (b[i].is_ascii_whitespace() || (!logfmt && matches!(b[i], b',' | b';')))
        {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = &message[start..i];
        if i >= b.len() || b[i] != b'=' {
            if logfmt && good_key(key) {
                out.push((format!("kv.{key}"), "true".to_owned()));
                n += 1;
            }
            continue;
        }
        i += 1;
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if logfmt && b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'n' => v.push('\n'),
                        b't' => v.push('\t'),
                        _ => {
                            // The escaped character whole: it may be more than one byte.
                            let ch_end = next_char(message, i);
                            v.push_str(&message[i..ch_end]);
                            i = ch_end;
                            continue;
                        }
                    }
                    i += 1;
                    continue;
                }
                let ch_end = next_char(message, i);
                v.push_str(&message[i..ch_end]);
                i = ch_end;
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len()
                && !b[i].is_ascii_whitespace()
                && (logfmt || !matches!(b[i], b',' | b';'))
            {
                i += 1;
            }
            message[vs..i].to_owned()
        };
        if good_key(key) {
            out.push((format!("kv.{key}"), clip(&value).to_owned()));
            n += 1;
        }
    }
}

fn next_char(s: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < s.len() && !s.is_char_boundary(j) {
        j += 1;
    }
    j
}

/// A message that is a JSON object: scalars under `json.<key>`, nested objects as dotted
/// keys, arrays as several values.
pub fn json(message: &str, out: &mut Out) {
    let t = message.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return;
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(t) else {
        return;
    };
    let mut n = 0;
    for (k, v) in &map {
        flatten(&format!("json.{k}"), v, 0, out, &mut n);
    }
}

fn flatten(name: &str, v: &Value, depth: usize, out: &mut Out, n: &mut usize) {
    if *n >= MAX_FIELDS || name.len() > 128 {
        return;
    }
    match v {
        Value::Null => {}
        Value::Object(m) if depth < MAX_JSON_DEPTH => {
            for (k, v) in m {
                flatten(&format!("{name}.{k}"), v, depth + 1, out, n);
            }
        }
        Value::Array(a) => {
            for v in a {
                if *n >= MAX_FIELDS {
                    return;
                }
                match v {
                    Value::String(s) => out.push((name.to_owned(), clip(s).to_owned())),
                    Value::Null | Value::Object(_) | Value::Array(_) => continue,
                    other => out.push((name.to_owned(), other.to_string())),
                }
                *n += 1;
            }
        }
        Value::String(s) => {
            out.push((name.to_owned(), clip(s).to_owned()));
            *n += 1;
        }
        other => {
            out.push((name.to_owned(), clip(&other.to_string()).to_owned()));
            *n += 1;
        }
    }
}
