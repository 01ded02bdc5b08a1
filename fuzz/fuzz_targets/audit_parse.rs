//! Fuzzes the kernel audit record parser (`parse_record`, `parse_body`).
//!
//! Checks beyond "no panic":
//! - on any text: every field name is non-empty and holds neither `=` nor a space;
//! - a record built from the input (type, time, serial, and plain or quoted `key=value`
//!   pairs, with keys the parser does not hex-decode) parses back to exactly those values.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use logward_collector::journald::audit::{AuditRecord, parse_body, parse_record};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for known in [None, Some("EXECVE"), Some("USER_AUTH")] {
        if let Ok(r) = parse_record(&text, known) {
            check_names(&r);
        }
    }
    for ty in ["EXECVE", "PROCTITLE", "SYSCALL"] {
        check_names(&parse_body(ty, 7, 1_000, &text));
    }
    let _ = round_trip(&mut Unstructured::new(data));
});

fn check_names(r: &AuditRecord) {
    for k in r.fields.keys() {
        assert!(!k.is_empty(), "empty field name in {r:?}");
        assert!(!k.contains(['=', ' ']), "field name {k:?} holds '=' or ' '");
    }
}

/// Writes a record from structured input and parses it back.
fn round_trip(u: &mut Unstructured<'_>) -> Result<()> {
    let secs: u32 = u.arbitrary()?;
    let millis = u.int_in_range(0..=999_u16)?;
    let serial: u64 = u.arbitrary()?;
    let mut line = format!("type=SYSCALL msg=audit({secs}.{millis:03}:{serial}):");
    let mut expected = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=8_u8)? {
        let key = word(u, b"abcdefghijklmnopqrstuvwxyz0123456789_-", 1, 12)?;
        // `type` and `msg` have meanings of their own; these keys are hex-decoded.
        if matches!(
            key.as_str(),
            "type"
                | "msg"
                | "name"
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
        ) {
            continue;
        }
        let quoted: bool = u.arbitrary()?;
        let value = if quoted {
            let v = word(u, b"abc XYZ019:/.,;-_=+*?!()[]{}<>@#$%&'\\", 0, 16)?.replace('\'', "");
            write!(line, " {key}=\"{v}\"").unwrap();
            v
        } else {
            let v = word(u, b"abcXYZ019:/.,;-_=+*?!()[]{}<>@#$%&\\", 1, 16)?;
            write!(line, " {key}={v}").unwrap();
            v
        };
        expected.insert(key, value);
    }
    let r = parse_record(&line, None).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(r.record_type, "SYSCALL", "{line}");
    assert_eq!(r.serial, serial, "{line}");
    assert_eq!(
        r.time_ms,
        i64::from(secs) * 1000 + i64::from(millis),
        "{line}"
    );
    assert_eq!(r.fields, expected, "{line}");
    Ok(())
}

/// A word of `min..=max` characters from `alphabet`.
fn word(u: &mut Unstructured<'_>, alphabet: &[u8], min: usize, max: usize) -> Result<String> {
    let len = u.int_in_range(min..=max)?;
    (0..len)
        .map(|_| Ok(char::from(*u.choose(alphabet)?)))
        .collect()
}
