//! Decoder of `journalctl --output=json` lines into journal entries. Pure: no I/O.
//!
//! journald's JSON has four value shapes: a string; an array of numbers (a field that is
//! not valid UTF-8, "binary"); an array of strings or byte arrays (a field repeated in one
//! entry); and `null` (a field journalctl left out). Binary values are decoded lossily and
//! named in `logward.binary_fields`; values longer than the cap keep their head and are
//! named in `logward.truncated_fields`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::audit;

/// Fields that are not kept in `fields`, and why.
pub const DROPPED_FIELDS: &[(&str, &str)] = &[
    ("__CURSOR", "the checkpoint; opaque, and unique per entry"),
    ("__REALTIME_TIMESTAMP", "becomes the event's timestamp"),
    (
        "__MONOTONIC_TIMESTAMP",
        "time since boot; meaningless beside the real time",
    ),
    ("__SEQNUM", "journal file sequence number; noise for search"),
    ("__SEQNUM_ID", "journal file sequence id; noise for search"),
    ("MESSAGE", "becomes the event's message"),
];

/// A decoded journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Where to resume after this entry.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP` in nanoseconds; 0 when absent.
    pub timestamp_nanos: i64,
    /// `MESSAGE`, byte-exact (binary messages stay binary).
    pub message: Vec<u8>,
    /// Every other field but the dropped ones, repeated fields as several values.
    pub fields: BTreeMap<String, Vec<String>>,
    /// Set for lines of Docker's journald log driver.
    pub container: Option<ContainerRef>,
    /// `stdout`/`stderr` for Docker's journald driver (from PRIORITY 6/3).
    pub stream: Option<&'static str>,
}

/// Container metadata carried by Docker's journald log driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// `CONTAINER_ID_FULL`, else `CONTAINER_ID`.
    pub id: String,
    /// `CONTAINER_NAME`.
    pub name: String,
    /// `IMAGE_NAME`.
    pub image: String,
    /// `CONTAINER_TAG`.
    pub tag: String,
    /// Written by a container engine (`_COMM` is one of [`ENGINE_COMMS`], a field journald
    /// sets itself). Any local process may send `CONTAINER_*` fields; unverified entries stay
    /// `source = journald`.
    pub verified: bool,
}

/// Process names of container engines whose `CONTAINER_*` fields are believed.
pub const ENGINE_COMMS: &[&str] = &["dockerd", "podman", "conmon"];

/// A line that is not a journal entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("entry has no __CURSOR")]
    NoCursor,
    #[error("__REALTIME_TIMESTAMP {0:?} is not a number of microseconds")]
    BadTimestamp(String),
}

/// Decodes one line of `journalctl -o json`. `max_message_bytes` caps MESSAGE,
/// `max_field_bytes` every other value.
pub fn decode_entry(
    line: &[u8],
    max_message_bytes: usize,
    max_field_bytes: usize,
) -> Result<JournalEntry, DecodeError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(DecodeError::Json("expected an object".into()));
    };
    let cursor = match map.get("__CURSOR") {
        Some(Value::String(c)) if !c.is_empty() => c.clone(),
        _ => return Err(DecodeError::NoCursor),
    };
    let timestamp_nanos = match map.get("__REALTIME_TIMESTAMP") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .and_then(|us| us.checked_mul(1000))
            .ok_or_else(|| DecodeError::BadTimestamp(s.clone()))?,
        Some(other) => return Err(DecodeError::BadTimestamp(other.to_string())),
    };
    let mut message = Vec::new();
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut binary = Vec::new();
    let mut truncated = Vec::new();
    for (key, value) in &map {
        if key == "MESSAGE" {
            let mut values = raw_values(value).into_iter();
            if let Some(first) = values.next() {
                message = first.0;
                if message.len() > max_message_bytes {
                    let mut cut = max_message_bytes;
                    // Keep a UTF-8 message valid: cut at a character boundary.
                    if let Ok(text) = std::str::from_utf8(&message) {
                        while cut > 0 && !text.is_char_boundary(cut) {
                            cut -= 1;
                        }
                    }
                    message.truncate(cut);
                    truncated.push(key.clone());
                }
            }
            // A repeated MESSAGE keeps its further values as a field.
            let rest: Vec<String> = values
                .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
                .collect();
            if !rest.is_empty() {
                fields.insert("MESSAGE".into(), rest);
            }
            continue;
        }
        if DROPPED_FIELDS.iter().any(|(k, _)| k == key) {
            continue;
        }
        let mut values = Vec::new();
        for (bytes, was_binary) in raw_values(value) {
            if was_binary && !binary.contains(key) {
                binary.push(key.clone());
            }
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if text.len() > max_field_bytes {
                let mut cut = max_field_bytes;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                if !truncated.contains(key) {
                    truncated.push(key.clone());
                }
            }
            values.push(text);
        }
        if !values.is_empty() {
            fields.insert(key.clone(), values);
        }
    }
    if !binary.is_empty() {
        fields.insert("logward.binary_fields".into(), binary);
    }
    if !truncated.is_empty() {
        fields.insert("logward.truncated_fields".into(), truncated);
    }
    let first = |k: &str| fields.get(k).and_then(|v| v.first()).cloned();
    let container = first("CONTAINER_ID_FULL")
        .or_else(|| first("CONTAINER_ID"))
        .map(|id| ContainerRef {
            id,
            name: first("CONTAINER_NAME").unwrap_or_default(),
            image: first("IMAGE_NAME").unwrap_or_default(),
            tag: first("CONTAINER_TAG").unwrap_or_default(),
            verified: first("_COMM").is_some_and(|c| ENGINE_COMMS.contains(&c.as_str())),
        });
    let stream = match (&container, first("PRIORITY").as_deref()) {
        (Some(_), Some("3")) => Some("stderr"),
        (Some(_), Some("6")) => Some("stdout"),
        _ => None,
    };
    if first("_TRANSPORT").as_deref() == Some("audit") {
        add_audit_fields(
            &String::from_utf8_lossy(&message),
            timestamp_nanos,
            &mut fields,
        );
    }
    Ok(JournalEntry {
        cursor,
        timestamp_nanos,
        message,
        fields,
        container,
        stream,
    })
}

/// Parses a kernel audit record carried in MESSAGE into auditd's own field names, plus
/// `audit.type` and `audit.serial` (shared by the records of one audit event). journald
/// writes `<TYPE> key=value …` with the type in `_AUDIT_TYPE_NAME` and the serial in
/// `_AUDIT_ID`; a full `type=… msg=audit(…): …` line is understood too.
fn add_audit_fields(
    message: &str,
    timestamp_nanos: i64,
    fields: &mut BTreeMap<String, Vec<String>>,
) {
    let first = |k: &str| fields.get(k).and_then(|v| v.first()).cloned();
    let known_type = first("_AUDIT_TYPE_NAME");
    let record = if message.contains("msg=audit(") {
        audit::parse_record(message, known_type.as_deref()).ok()
    } else {
        let (head, body) = message.split_once(' ').unwrap_or((message, ""));
        let head_is_type = !head.contains('=')
            && head
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit());
        let (ty, body) = match (known_type, head_is_type) {
            (Some(t), true) if t == head => (t, body),
            (Some(t), _) => (t, message),
            (None, true) if !head.is_empty() => (head.to_owned(), body),
            (None, _) => (String::from("UNKNOWN"), message),
        };
        let serial = first("_AUDIT_ID").and_then(|s| s.parse().ok()).unwrap_or(0);
        Some(audit::parse_body(
            &ty,
            serial,
            timestamp_nanos / 1_000_000,
            body,
        ))
    };
    let Some(record) = record.filter(|r| !r.fields.is_empty()) else {
        fields.insert(
            "logward.audit_error".into(),
            vec!["message is not an audit record".into()],
        );
        return;
    };
    fields.insert("audit.type".into(), vec![record.record_type.clone()]);
    fields.insert("audit.serial".into(), vec![record.serial.to_string()]);
    fields.insert("type".into(), vec![record.record_type]);
    for (k, v) in record.fields {
        fields.entry(k).or_insert_with(|| vec![v]);
    }
}

/// The values of a field as bytes, each flagged when it came as a byte array.
fn raw_values(value: &Value) -> Vec<(Vec<u8>, bool)> {
    match value {
        Value::String(s) => vec![(s.as_bytes().to_vec(), false)],
        Value::Array(items) if items.iter().all(Value::is_number) => vec![(bytes_of(items), true)],
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some((s.as_bytes().to_vec(), false)),
                Value::Array(b) => Some((bytes_of(b), true)),
                Value::Null => None,
                other => Some((other.to_string().into_bytes(), false)),
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![(other.to_string().into_bytes(), false)],
    }
}

fn bytes_of(items: &[Value]) -> Vec<u8> {
    items
        .iter()
        .filter_map(Value::as_u64)
        .map(|n| u8::try_from(n).unwrap_or(b'?'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 128;

    fn entry(json: &str) -> JournalEntry {
        decode_entry(json.as_bytes(), CAP, CAP).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn field<'a>(e: &'a JournalEntry, k: &str) -> Vec<&'a str> {
        e.fields
            .get(k)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn maps_the_core_fields_and_drops_the_noise() {
        let e = entry(
            r#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1714557600123456","__MONOTONIC_TIMESTAMP":"5","__SEQNUM":"9","MESSAGE":"Failed password for root from 203.0.113.9 port 22 ssh2","PRIORITY":"6","_HOSTNAME":"web1","_SYSTEMD_UNIT":"ssh.service","SYSLOG_IDENTIFIER":"sshd","_PID":"777","_UID":"0","_GID":"0","_COMM":"sshd","_EXE":"/usr/sbin/sshd","_CMDLINE":"sshd: root [priv]","_TRANSPORT":"syslog","_BOOT_ID":"b00t"}"#,
        );
        assert_eq!(e.cursor, "s=abc;i=1");
        assert_eq!(e.timestamp_nanos, 1_714_557_600_123_456_000);
        assert_eq!(
            e.message,
            b"Failed password for root from 203.0.113.9 port 22 ssh2"
        );
        for (k, v) in [
            ("SYSLOG_IDENTIFIER", "sshd"),
            ("_SYSTEMD_UNIT", "ssh.service"),
            ("_PID", "777"),
            ("_CMDLINE", "sshd: root [priv]"),
            ("_BOOT_ID", "b00t"),
            ("PRIORITY", "6"),
        ] {
            assert_eq!(field(&e, k), [v], "{k}");
        }
        for (k, _) in DROPPED_FIELDS {
            assert!(!e.fields.contains_key(*k), "{k} kept");
        }
        assert_eq!((e.container.as_ref(), e.stream), (None, None));
    }

    #[test]
    fn repeated_binary_and_oversize_fields() {
        let big = "y".repeat(300);
        let e = entry(&format!(
            r#"{{"__CURSOR":"c","MESSAGE":[104,105,255],"TAG":["a","b",[0,255]],"BIG":"{big}","GONE":null}}"#
        ));
        assert_eq!(
            e.message,
            vec![104, 105, 255],
            "binary message stays byte-exact"
        );
        assert_eq!(field(&e, "TAG"), ["a", "b", "\u{0}\u{fffd}"]);
        assert_eq!(field(&e, "BIG")[0].len(), CAP);
        assert_eq!(field(&e, "logward.binary_fields"), ["TAG"]);
        assert_eq!(field(&e, "logward.truncated_fields"), ["BIG"]);
        assert!(!e.fields.contains_key("GONE"));
        assert_eq!(e.timestamp_nanos, 0);
    }

    #[test]
    fn docker_journald_driver_entries_carry_the_container() {
        let e = entry(
            r#"{"__CURSOR":"c","MESSAGE":"boom","PRIORITY":"3","CONTAINER_ID":"0123456789ab","CONTAINER_ID_FULL":"0123456789abcdef","CONTAINER_NAME":"api","IMAGE_NAME":"example/api:2","CONTAINER_TAG":"0123456789ab","SYSLOG_IDENTIFIER":"0123456789ab"}"#,
        );
        let c = e.container.as_ref().expect("container");
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.image.as_str()),
            ("0123456789abcdef", "api", "example/api:2")
        );
        assert_eq!(e.stream, Some("stderr"));
    }

    #[test]
    fn audit_records_become_fields() {
        let e = entry(
            r#"{"__CURSOR":"c","_TRANSPORT":"audit","_AUDIT_TYPE_NAME":"EXECVE","_AUDIT_ID":"4567","MESSAGE":"EXECVE argc=2 a0=\"curl\" a1=687474703A2F2F782F792E7368"}"#,
        );
        assert_eq!(field(&e, "audit.type"), ["EXECVE"]);
        assert_eq!(field(&e, "type"), ["EXECVE"]);
        assert_eq!(field(&e, "audit.serial"), ["4567"]);
        assert_eq!(field(&e, "a0"), ["curl"]);
        assert_eq!(field(&e, "a1"), ["http://x/y.sh"]);
        let full = entry(
            r#"{"__CURSOR":"c","_TRANSPORT":"audit","MESSAGE":"type=USER_AUTH msg=audit(1714557601.500:88): pid=777 msg='op=PAM:authentication acct=\"root\" res=failed'"}"#,
        );
        assert_eq!(field(&full, "audit.type"), ["USER_AUTH"]);
        assert_eq!(field(&full, "acct"), ["root"]);
        assert_eq!(field(&full, "res"), ["failed"]);
        let bad = entry(r#"{"__CURSOR":"c","_TRANSPORT":"audit","MESSAGE":"not audit"}"#);
        assert!(bad.fields.contains_key("logward.audit_error"));
    }

    #[test]
    fn bad_lines_are_errors_never_panics() {
        for (line, expected) in [
            ("", "not a JSON object"),
            ("[]", "not a JSON object"),
            ("{\"MESSAGE\":\"x\"}", "no __CURSOR"),
            (
                "{\"__CURSOR\":\"c\",\"__REALTIME_TIMESTAMP\":\"soon\"}",
                "not a number",
            ),
            (
                "{\"__CURSOR\":\"c\",\"__REALTIME_TIMESTAMP\":\"99999999999999999999\"}",
                "not a number",
            ),
        ] {
            let err = decode_entry(line.as_bytes(), CAP, CAP)
                .expect_err(line)
                .to_string();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let _ = decode_entry(
            br#"{"__CURSOR":"c","X":[1e400,-1,300,{"a":1}],"Y":{"z":true}}"#,
            CAP,
            CAP,
        );
    }

    #[test]
    fn long_utf8_message_is_cut_at_a_character_boundary() {
        let text = "é".repeat(100);
        let e = entry(&format!(r#"{{"__CURSOR":"c","MESSAGE":"{text}"}}"#));
        assert!(std::str::from_utf8(&e.message).is_ok());
        assert_eq!(e.message.len(), CAP);
        assert_eq!(field(&e, "logward.truncated_fields"), ["MESSAGE"]);
    }

    #[test]
    fn container_fields_from_other_processes_are_unverified() {
        let forged = entry(
            r#"{"__CURSOR":"c","MESSAGE":"x","CONTAINER_ID":"abc","CONTAINER_NAME":"db","_COMM":"python3"}"#,
        );
        assert!(!forged.container.expect("container").verified);
        let real = entry(
            r#"{"__CURSOR":"c","MESSAGE":"x","CONTAINER_ID":"abc","CONTAINER_NAME":"db","_COMM":"dockerd"}"#,
        );
        assert!(real.container.expect("container").verified);
    }
}
