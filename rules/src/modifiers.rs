//! Value modifiers (the Sigma modifiers appendix): parsing a `field|mod|mod` key and
//! compiling its values into matchers.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use yaml_rust2::Yaml;

use crate::error::{ErrorKind, RuleError, invalid, unsupported};
use crate::pattern::{StrMatcher, Tok, parse_wildcards};
use crate::yaml::scalar;

/// Most variants one value may expand to (windash, expand).
const MAX_VARIANTS: usize = 1024;
/// Largest compiled regular expression, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// equality (time parts without a comparison)
    Eq,
}

impl CmpOp {
    /// Applies the comparison `a op b`.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Eq => a == b,
        }
    }
}

/// A part of a timestamp, for the `minute` … `year` modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    /// 0–59
    Minute,
    /// 0–23
    Hour,
    /// day of month, 1–31
    Day,
    /// ISO week, 1–53
    Week,
    /// 1–12
    Month,
    /// the year
    Year,
}

/// How a `fieldref` compares the two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefShape {
    /// equal
    Exact,
    /// this field's value contains the other's
    Contains,
    /// starts with the other's
    Prefix,
    /// ends with the other's
    Suffix,
}

/// One compiled value of a field condition.
#[derive(Debug, Clone)]
pub enum ValueMatcher {
    /// Wildcard string, with `contains`/`startswith`/`endswith`/encodings applied.
    Str(StrMatcher),
    /// `re`, with a literal every match contains (for the prefilter), if it has one.
    Re(Regex, Option<String>),
    /// `cidr`
    Cidr(IpNet),
    /// `lt`/`lte`/`gt`/`gte`
    Cmp(CmpOp, f64),
    /// `minute` … `year`, optionally with a comparison.
    Time(TimePart, CmpOp, f64),
    /// `fieldref`: compare with the values of another field.
    FieldRef {
        field: String,
        shape: RefShape,
        cased: bool,
    },
    /// `null`: the field is absent.
    Null,
    /// `neq`: the field exists and no value equals.
    Neq(StrMatcher),
}

/// A parsed modifier chain with the values it compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The values (OR, or AND with `all`).
    pub values: Vec<ValueMatcher>,
    /// `all`
    pub all: bool,
    /// `exists`: `Some(expected)`.
    pub exists: Option<bool>,
}

#[derive(Debug, Clone)]
enum Val {
    Str(String, bool),
    Bytes(Vec<u8>),
}

#[derive(Default)]
struct Chain {
    shape: Option<&'static str>,
    all: bool,
    cased: bool,
    kind: Option<&'static str>,
    re_flags: (bool, bool, bool),
    cmp: Option<CmpOp>,
    time: Option<TimePart>,
    transforms: Vec<&'static str>,
}

const TRANSFORMS: &[&str] = &[
    "windash",
    "expand",
    "base64",
    "base64offset",
    "utf16le",
    "utf16be",
    "utf16",
    "wide",
];

fn parse_chain(mods: &[&str], at: &str) -> Result<Chain, RuleError> {
    let mut c = Chain::default();
    let set_kind = |c: &mut Chain, k: &'static str| {
        if let Some(old) = c.kind.filter(|o| *o != k) {
            return Err(invalid(
                at,
                format!("modifiers '{old}' and '{k}' cannot be combined"),
            ));
        }
        c.kind = Some(k);
        Ok(())
    };
    for &m in mods {
        match m {
            "contains" | "startswith" | "endswith" => {
                let s = ["contains", "startswith", "endswith"]
                    .into_iter()
                    .find(|x| *x == m);
                if c.shape.is_some() {
                    return Err(invalid(at, "only one of contains/startswith/endswith"));
                }
                c.shape = s;
            }
            "all" => c.all = true,
            "cased" => c.cased = true,
            "i" | "m" | "s" if c.kind == Some("re") => match m {
                "i" => c.re_flags.0 = true,
                "m" => c.re_flags.1 = true,
                _ => c.re_flags.2 = true,
            },
            "i" | "m" | "s" => {
                return Err(invalid(at, format!("modifier '{m}' needs 're' before it")));
            }
            "re" => set_kind(&mut c, "re")?,
            "cidr" => set_kind(&mut c, "cidr")?,
            "exists" => set_kind(&mut c, "exists")?,
            "fieldref" => set_kind(&mut c, "fieldref")?,
            "neq" => set_kind(&mut c, "neq")?,
            "lt" | "lte" | "gt" | "gte" => {
                if c.cmp.is_some() {
                    return Err(invalid(at, "only one of lt/lte/gt/gte"));
                }
                c.cmp = Some(match m {
                    "lt" => CmpOp::Lt,
                    "lte" => CmpOp::Lte,
                    "gt" => CmpOp::Gt,
                    _ => CmpOp::Gte,
                });
            }
            "minute" | "hour" | "day" | "week" | "month" | "year" => {
                c.time = Some(match m {
                    "minute" => TimePart::Minute,
                    "hour" => TimePart::Hour,
                    "day" => TimePart::Day,
                    "week" => TimePart::Week,
                    "month" => TimePart::Month,
                    _ => TimePart::Year,
                });
            }
            _ => match TRANSFORMS.iter().find(|t| **t == m) {
                Some(t) => c.transforms.push(t),
                None => return Err(RuleError::new(at, ErrorKind::UnknownModifier(m.to_owned()))),
            },
        }
    }
    let typed = c.kind.is_some() || c.cmp.is_some() || c.time.is_some();
    if typed && (!c.transforms.is_empty() || c.shape.is_some()) {
        let k = c.kind.unwrap_or("lt/lte/gt/gte");
        if !(k == "fieldref" && c.transforms.is_empty()) {
            return Err(invalid(
                at,
                format!("'{k}' cannot be combined with string modifiers"),
            ));
        }
    }
    if c.kind.is_some() && (c.cmp.is_some() || c.time.is_some()) {
        return Err(invalid(
            at,
            "numeric/time modifiers cannot be combined with this type",
        ));
    }
    Ok(c)
}

/// Compiles the values of one `field|mods` entry.
pub fn compile(
    mods: &[&str],
    value: &Yaml,
    placeholders: &HashMap<String, Vec<String>>,
    at: &str,
) -> Result<Compiled, RuleError> {
    let chain = parse_chain(mods, at)?;
    let raw: Vec<&Yaml> = match value {
        Yaml::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    if raw.is_empty() {
        return Err(invalid(at, "empty list of values"));
    }
    if chain.kind == Some("exists") {
        return match raw.as_slice() {
            [Yaml::Boolean(b)] => Ok(Compiled {
                values: Vec::new(),
                all: false,
                exists: Some(*b),
            }),
            _ => Err(invalid(at, "'exists' takes true or false")),
        };
    }
    let mut values = Vec::new();
    for y in raw {
        if matches!(y, Yaml::Null) {
            if !mods.is_empty() {
                return Err(invalid(at, "null cannot take modifiers"));
            }
            values.push(ValueMatcher::Null);
            continue;
        }
        let Some(s) = scalar(y) else {
            return Err(invalid(
                at,
                "values must be strings, numbers, booleans or null",
            ));
        };
        compile_one(&chain, &s, placeholders, at, &mut values)?;
    }
    Ok(Compiled {
        values,
        all: chain.all,
        exists: None,
    })
}

fn compile_one(
    c: &Chain,
    s: &str,
    placeholders: &HashMap<String, Vec<String>>,
    at: &str,
    out: &mut Vec<ValueMatcher>,
) -> Result<(), RuleError> {
    let num = || {
        s.trim()
            .parse::<f64>()
            .map_err(|_| invalid(at, format!("'{s}' is not a number")))
    };
    if let Some(part) = c.time {
        out.push(ValueMatcher::Time(part, c.cmp.unwrap_or(CmpOp::Eq), num()?));
        return Ok(());
    }
    if let Some(op) = c.cmp {
        out.push(ValueMatcher::Cmp(op, num()?));
        return Ok(());
    }
    match c.kind {
        Some("re") => {
            let (i, m, dot) = c.re_flags;
            let re = RegexBuilder::new(s)
                .case_insensitive(i)
                .multi_line(m)
                .dot_matches_new_line(dot)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("look-around") || msg.contains("backreferences") {
                        unsupported(at, format!("regex feature (linear-time engine): {msg}"))
                    } else {
                        RuleError::new(at, ErrorKind::Regex(msg))
                    }
                })?;
            let lit = crate::regex_lit::required_literal(s, i, m, dot);
            out.push(ValueMatcher::Re(re, lit));
            return Ok(());
        }
        Some("cidr") => {
            let net: IpNet = s
                .trim()
                .parse()
                .map_err(|_| invalid(at, format!("'{s}' is not a CIDR network")))?;
            out.push(ValueMatcher::Cidr(net.trunc()));
            return Ok(());
        }
        Some("fieldref") => {
            let shape = match c.shape {
                Some("contains") => RefShape::Contains,
                Some("startswith") => RefShape::Prefix,
                Some("endswith") => RefShape::Suffix,
                _ => RefShape::Exact,
            };
            out.push(ValueMatcher::FieldRef {
                field: s.to_owned(),
                shape,
                cased: c.cased,
            });
            return Ok(());
        }
        Some("neq") => {
            out.push(ValueMatcher::Neq(StrMatcher::new(
                &parse_wildcards(s),
                c.cased,
            )?));
            return Ok(());
        }
        _ => {}
    }
    let mut vals = vec![Val::Str(s.to_owned(), true)];
    for t in &c.transforms {
        vals = transform(t, vals, placeholders, at)?;
        if vals.len() > MAX_VARIANTS {
            return Err(invalid(
                at,
                format!("'{t}' expands to more than {MAX_VARIANTS} values"),
            ));
        }
    }
    for v in vals {
        let mut toks = match v {
            Val::Str(s, true) => parse_wildcards(&s),
            Val::Str(s, false) => vec![Tok::Lit(s)],
            Val::Bytes(b) => vec![Tok::Lit(String::from_utf8_lossy(&b).into_owned())],
        };
        match c.shape {
            Some("contains") => {
                toks.insert(0, Tok::Star);
                toks.push(Tok::Star);
            }
            Some("startswith") => toks.push(Tok::Star),
            Some("endswith") => toks.insert(0, Tok::Star),
            _ => {}
        }
        out.push(ValueMatcher::Str(
            StrMatcher::new(&toks, c.cased).map_err(|e| e.in_at(at))?,
        ));
    }
    Ok(())
}

impl RuleError {
    fn in_at(mut self, at: &str) -> Self {
        if self.construct.is_empty() {
            self.construct = at.to_owned();
        }
        self
    }
}

fn bytes(v: &Val) -> Vec<u8> {
    match v {
        Val::Str(s, _) => s.as_bytes().to_vec(),
        Val::Bytes(b) => b.clone(),
    }
}

fn transform(
    t: &str,
    vals: Vec<Val>,
    placeholders: &HashMap<String, Vec<String>>,
    at: &str,
) -> Result<Vec<Val>, RuleError> {
    let mut out = Vec::new();
    for v in vals {
        match t {
            "windash" => match &v {
                Val::Str(s, w) => out.extend(windash(s).into_iter().map(|s| Val::Str(s, *w))),
                Val::Bytes(_) => return Err(invalid(at, "'windash' must come before encodings")),
            },
            "expand" => match &v {
                Val::Str(s, w) => {
                    out.extend(
                        expand(s, placeholders, at)?
                            .into_iter()
                            .map(|s| Val::Str(s, *w)),
                    );
                }
                Val::Bytes(_) => return Err(invalid(at, "'expand' must come before encodings")),
            },
            "utf16le" | "wide" | "utf16be" | "utf16" => {
                let s = match &v {
                    Val::Str(s, _) => s.clone(),
                    Val::Bytes(_) => return Err(invalid(at, format!("'{t}' applied twice"))),
                };
                let mut b = Vec::new();
                if t == "utf16" {
                    b.extend_from_slice(&[0xFF, 0xFE]);
                }
                for u in s.encode_utf16() {
                    let pair = if t == "utf16be" {
                        u.to_be_bytes()
                    } else {
                        u.to_le_bytes()
                    };
                    b.extend_from_slice(&pair);
                }
                out.push(Val::Bytes(b));
            }
            "base64" => out.push(Val::Str(B64.encode(bytes(&v)), false)),
            _ => {
                // base64offset: the three encodings of the value at byte offsets 0, 1, 2 of a
                // longer stream, without the characters that depend on neighbouring bytes.
                let b = bytes(&v);
                for shift in 0..3usize {
                    let mut buf = vec![0u8; shift];
                    buf.extend_from_slice(&b);
                    let enc = B64.encode(&buf);
                    let start = [0, 2, 3][shift];
                    // Only characters whose 6 bits all come from the data: none that
                    // depends on the byte after it.
                    let end = (8 * (shift + b.len()) / 6).min(enc.len());
                    if start < end {
                        out.push(Val::Str(enc[start..end].to_owned(), false));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// All variants of `s` where each option-like dash or slash (at the start of a word) is
/// replaced by `-`, `/`, en dash, em dash or horizontal bar.
fn windash(s: &str) -> Vec<String> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    let chars: Vec<char> = s.chars().collect();
    let mut out = vec![String::new()];
    for (i, &ch) in chars.iter().enumerate() {
        let at_word_start = i == 0 || !chars[i - 1].is_alphanumeric();
        let next_word = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if (ch == '-' || ch == '/') && at_word_start && next_word && out.len() <= MAX_VARIANTS {
            out = out
                .iter()
                .flat_map(|p| DASHES.iter().map(move |d| format!("{p}{d}")))
                .collect();
        } else {
            out.iter_mut().for_each(|p| p.push(ch));
        }
    }
    out
}

/// Replaces `%name%` placeholders with every value configured for them.
fn expand(
    s: &str,
    placeholders: &HashMap<String, Vec<String>>,
    at: &str,
) -> Result<Vec<String>, RuleError> {
    let mut out = vec![String::new()];
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        let vals = placeholders.get(name).ok_or_else(|| {
            RuleError::new(
                at,
                ErrorKind::Reference(format!("placeholder '%{name}%' is not configured")),
            )
        })?;
        let head = &rest[..start];
        out = out
            .iter()
            .flat_map(|p| vals.iter().map(move |v| format!("{p}{head}{v}")))
            .take(MAX_VARIANTS + 1)
            .collect();
        rest = &rest[start + len + 2..];
    }
    out.iter_mut().for_each(|p| p.push_str(rest));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &[&str]) {
        let got = transform(
            "base64offset",
            vec![Val::Str(input.into(), true)],
            &HashMap::new(),
            "",
        )
        .expect("transforms");
        let got: Vec<String> = got
            .into_iter()
            .map(|v| match v {
                Val::Str(s, _) => s,
                Val::Bytes(_) => String::new(),
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn base64offset_gives_the_three_shift_invariant_encodings() {
        // Computed from the definition: each variant must occur inside the base64 of the
        // value at that offset in any surrounding data.
        for input in ["/bin/bash", "abc", "abcd", "abcde"] {
            let got = transform(
                "base64offset",
                vec![Val::Str(input.into(), true)],
                &HashMap::new(),
                "",
            )
            .expect("transforms");
            for (shift, v) in got.iter().enumerate() {
                let Val::Str(v, _) = v else { panic!("string") };
                for pre in ["", "Q", "QQ", "QQQ"] {
                    if pre.len() % 3 != shift % 3 {
                        continue;
                    }
                    for post in ["", "Z", "ZZ"] {
                        let enc = B64.encode(format!("{pre}{input}{post}"));
                        assert!(enc.contains(v.as_str()), "{input} {shift} {v} in {enc}");
                    }
                }
            }
        }
        check("abc", &["YWJj", "FiY", "hYm"]);
    }

    #[test]
    fn windash_replaces_option_dashes_only() {
        let v = windash("net -a x-y");
        assert_eq!(v.len(), 5);
        assert!(v.contains(&"net /a x-y".to_owned()));
        assert!(v.contains(&"net \u{2014}a x-y".to_owned()));
    }
}
