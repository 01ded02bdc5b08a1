//! Fuzzes the decoder of `journalctl --output=json` lines (`decode_entry`), including the
//! audit records it parses out of `_TRANSPORT=audit` entries.
//!
//! Checks beyond "no panic", with generous and with tiny caps:
//! - MESSAGE is byte-exact when it fits (a string, or journald's byte array for binary
//!   data), and never longer than its cap; a UTF-8 message stays UTF-8 when cut;
//! - the cursor and the timestamp (microseconds × 1000) come through unchanged;
//! - dropped fields (`__CURSOR`, `__SEQNUM`, …) never reach `fields`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward_collector::journald::decode::{DROPPED_FIELDS, decode_entry};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    for (max_message, max_field) in [(1 << 20, 1 << 20), (7, 3), (0, 0)] {
        check(data, max_message, max_field);
    }
});

fn check(data: &[u8], max_message: usize, max_field: usize) {
    let Ok(entry) = decode_entry(data, max_message, max_field) else {
        return;
    };
    assert!(entry.message.len() <= max_message, "MESSAGE over its cap");
    for (dropped, _) in DROPPED_FIELDS {
        if *dropped != "MESSAGE" {
            assert!(!entry.fields.contains_key(*dropped), "{dropped} kept");
        }
    }
    // Compare with an independent reading of the same JSON.
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
        panic!("decoded a line that is not a JSON object");
    };
    assert_eq!(Some(entry.cursor.as_str()), map["__CURSOR"].as_str());
    if let Some(Value::String(us)) = map.get("__REALTIME_TIMESTAMP") {
        let us: i64 = us.parse().expect("accepted timestamp is a number");
        assert_eq!(entry.timestamp_nanos, us * 1000);
    }
    let original: Option<Vec<u8>> = match map.get("MESSAGE") {
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(Value::Array(items))
            if !items.is_empty() && items.iter().all(|v| v.as_u64().is_some_and(|n| n < 256)) =>
        {
            Some(
                items
                    .iter()
                    .filter_map(Value::as_u64)
                    .map(|n| n as u8)
                    .collect(),
            )
        }
        _ => None,
    };
    if let Some(original) = original {
        if original.len() <= max_message {
            assert_eq!(entry.message, original, "MESSAGE not byte-exact");
        } else {
            assert!(
                original.starts_with(&entry.message),
                "cut MESSAGE is not a head"
            );
            if std::str::from_utf8(&original).is_ok() {
                assert!(
                    std::str::from_utf8(&entry.message).is_ok(),
                    "cut inside a character"
                );
            }
        }
    }
}
