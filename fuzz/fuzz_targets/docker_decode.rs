//! Fuzzes the Docker json-file line decoder (`decode_line`) and the partial-chunk
//! `Assembler` behind it.
//!
//! Checks beyond "no panic":
//! - a decoded `log` is the JSON string minus exactly one `\n` (and one `\r` before it),
//!   and `partial` is set exactly when there was no `\n`;
//! - any text wrapped as a json-file line by a real JSON encoder decodes back byte-exact;
//! - fed the input line by line, the assembler covers the bytes with contiguous items,
//!   keeps every message within `max_event_bytes`, and a merged message is the
//!   concatenation of its chunks' texts (or a prefix of it on a character boundary when
//!   flagged truncated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward_collector::docker::decode::decode_line;
use logward_collector::docker::tail::{Assembler, Record};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    whole_line(data);
    wrapped_text(data);
    assembled(data);
});

/// The input as one json-file line.
fn whole_line(data: &[u8]) {
    let Ok(line) = decode_line(data) else { return };
    // A line that decodes is a JSON object with a string `log`: compare with the raw value
    // (`Value` refuses some numbers the decoder skips unread, e.g. 1e400 in `attrs`).
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let raw = value["log"].as_str().expect("log is a string");
    let log: &str = &line.log;
    if line.partial {
        assert!(!raw.ends_with('\n'), "partial line ends with \\n");
        assert_eq!(raw, log, "partial chunk must be byte-exact");
    } else {
        assert!(
            raw == format!("{log}\n") || raw == format!("{log}\r\n"),
            "{raw:?} decoded to {log:?}"
        );
    }
}

/// The input's text wrapped by a JSON encoder, as Docker writes it.
fn wrapped_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for suffix in ["\n", ""] {
        let logged = format!("{text}{suffix}");
        let line = serde_json::json!({
            "log": logged,
            "stream": "stderr",
            "time": "2024-01-02T03:04:05.123456789Z",
        })
        .to_string();
        let decoded = decode_line(line.as_bytes()).expect("encoder output decodes");
        let expected = match logged.strip_suffix('\n') {
            Some(t) => t.strip_suffix('\r').unwrap_or(t),
            None => logged.as_str(),
        };
        assert_eq!(decoded.log, expected, "wrapped text not byte-exact");
        assert_eq!(decoded.partial, !logged.ends_with('\n'));
        assert_eq!(decoded.time_nanos, 1_704_164_645_123_456_789);
    }
}

/// The input as a file of lines (the first byte picks `max_event_bytes`).
fn assembled(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let max = 1 + usize::from(first % 64);
    let mut asm = Assembler::new(max);
    let mut lines = Vec::new();
    let mut at = 0_u64;
    let mut items = Vec::new();
    let mut pieces = body.split(|b| *b == b'\n').peekable();
    while let Some(line) = pieces.next() {
        if pieces.peek().is_none() {
            break; // no `\n` after it: the tailer would wait for more bytes
        }
        let end = at + line.len() as u64 + 1;
        asm.push_line(line, at, end);
        lines.push((at, end, line));
        at = end;
        items.extend(std::iter::from_fn(|| asm.pop()));
    }
    asm.flush(false);
    items.extend(std::iter::from_fn(|| asm.pop()));

    let mut next = 0_u64;
    for item in &items {
        assert_eq!(item.start, next, "items must be contiguous: {items:?}");
        assert!(item.end > item.start);
        next = item.end;
        match &item.record {
            Record::Undecodable { raw, .. } => assert!(raw.len() <= max),
            Record::Line {
                message, truncated, ..
            } => {
                assert!(message.len() <= max, "message over max_event_bytes");
                let mut joined = Vec::new();
                for (_, _, line) in lines
                    .iter()
                    .filter(|(s, e, _)| *s >= item.start && *e <= item.end)
                {
                    let chunk = decode_line(line).expect("chunk of a merged line decodes");
                    joined.extend_from_slice(chunk.log.as_bytes());
                }
                if *truncated {
                    // Regression: fuzz/artifacts-found/docker_decode-truncated-message-not-a-head
                    // (a later chunk that fit was once appended after the cut).
                    assert!(
                        joined.starts_with(message),
                        "truncated message is not a head of the line"
                    );
                    assert!(joined.len() > message.len(), "truncated but not cut");
                    assert!(
                        std::str::from_utf8(message).is_ok(),
                        "cut inside a character"
                    );
                } else {
                    assert_eq!(&joined, message, "merged message differs from its chunks");
                }
            }
        }
    }
    assert_eq!(next, at, "items must cover every complete line");
}
