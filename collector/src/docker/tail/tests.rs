//! Tests for the tailer: line completion, partial merging, limits, truncation, bad lines.

use std::fs::OpenOptions;
use std::io::Write as _;

use super::*;

const T: &str = "2024-01-02T03:04:05.000000001Z";
const T_NANOS: i64 = 1_704_164_645_000_000_001;

fn jl(log: &str, stream: &str) -> String {
    let log = serde_json::to_string(log).unwrap();
    format!(r#"{{"log":{log},"stream":"{stream}","time":"{T}"}}"#) + "\n"
}

fn out(log: &str) -> String {
    jl(log, "stdout")
}

fn limits(max_event_bytes: usize) -> Limits {
    Limits {
        max_event_bytes,
        partial_idle: Duration::from_secs(3600),
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

fn range(path: &Path, key: FileKey, start: u64, end: u64, limits: Limits) -> Vec<TailItem> {
    let reader = LogReader::open(path, false).unwrap();
    Tailer::read_range(reader, path, key, (start, end), limits).unwrap()
}

fn drain(tailer: &mut Tailer) -> Vec<TailItem> {
    std::iter::from_fn(|| tailer.next_item().unwrap()).collect()
}

/// A compact, comparable view of an item: `"<message>|<flags>"`.
fn show(item: &TailItem) -> String {
    match &item.record {
        Record::Line {
            stream,
            time_nanos,
            message,
            truncated,
            incomplete,
        } => {
            assert_eq!(*time_nanos, T_NANOS);
            let mut flags = String::new();
            if *stream == StreamKind::Stderr {
                flags.push('E');
            }
            if *truncated {
                flags.push('T');
            }
            if *incomplete {
                flags.push('I');
            }
            format!("{}|{flags}", String::from_utf8_lossy(message))
        }
        Record::Undecodable { raw, error } => {
            let head: String = String::from_utf8_lossy(raw).chars().take(12).collect();
            let kind = if error.contains("line limit") {
                "long"
            } else {
                "bad"
            };
            format!("{head}|{kind}:{}", raw.len())
        }
    }
}

/// Writes `input` in one go and again in pieces at every `step` bytes; both ways must give
/// `expected`, with contiguous ranges covering exactly the complete lines.
fn check(input: &[u8], max_event_bytes: usize, expected: &[&str]) {
    let complete = input.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
    let small = if input.len() < 8192 { 7 } else { 997 };
    for step in [input.len().max(1), small, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        append(&path, b"");
        let mut tailer = Tailer::open(&path, 0, limits(max_event_bytes)).unwrap();
        let mut items = Vec::new();
        for piece in input.chunks(step) {
            append(&path, piece);
            items.extend(drain(&mut tailer));
        }
        let shown: Vec<String> = items.iter().map(show).collect();
        assert_eq!(shown, expected, "step {step}");
        let mut at = 0;
        for item in &items {
            assert_eq!(item.start, at, "ranges must be contiguous: {items:?}");
            assert!(item.end > item.start);
            at = item.end;
        }
        if expected.iter().all(|e| !e.ends_with('I')) {
            assert_eq!(tailer.consumed(), at);
        }
        assert!(at <= complete);

        // Re-reading the covered range rebuilds exactly the same items.
        let key = tailer.key();
        let again = range(&path, key, 0, at, limits(max_event_bytes));
        assert_eq!(again, items, "replay of step {step}");
    }
}

#[test]
fn table() {
    let long_a = "a".repeat(300);
    let bad_long = format!("{}\n", "z".repeat(100 * 1024));
    let cases: Vec<(&str, String, usize, Vec<String>)> = vec![
        ("one line", out("hello\n"), 1024, vec!["hello|".into()]),
        (
            "two streams",
            out("a\n") + &jl("b\n", "stderr"),
            1024,
            vec!["a|".into(), "b|E".into()],
        ),
        (
            "incomplete trailing line waits",
            out("done\n") + r#"{"log":"not yet"#,
            1024,
            vec!["done|".into()],
        ),
        (
            "partial chunks merge",
            out("p1 ") + &out("p2 ") + &out("p3 ") + &out("end\n") + &out("next\n"),
            1024,
            vec!["p1 p2 p3 end|".into(), "next|".into()],
        ),
        (
            "unfinished partial waits",
            out("p1 ") + &out("p2 "),
            1024,
            vec![],
        ),
        (
            "merged line capped",
            out(&"x".repeat(200)) + &out(&"y".repeat(200)) + &out("z\n"),
            256,
            vec![format!("{}{}|T", "x".repeat(200), "y".repeat(56))],
        ),
        (
            "single line capped",
            out(&format!("{long_a}\n")),
            256,
            vec![format!("{}|T", "a".repeat(256))],
        ),
        (
            "cap respects utf-8",
            out(&format!("{}é\n", "a".repeat(255))),
            256,
            vec![format!("{}|T", "a".repeat(255))],
        ),
        (
            "a truncated line keeps only its head, even when a later chunk would fit",
            out(&format!("{}é", "a".repeat(255))) + &out("x\n"),
            256,
            vec![format!("{}|T", "a".repeat(255))],
        ),
        (
            "bad line shipped raw",
            out("before\n") + "garbage here\n" + &out("after\n"),
            1024,
            vec![
                "before|".into(),
                "garbage here|bad:12".into(),
                "after|".into(),
            ],
        ),
        (
            "bad line flushes a pending partial",
            out("half ") + "{broken\n" + &out("whole\n"),
            1024,
            vec!["half |I".into(), "{broken|bad:7".into(), "whole|".into()],
        ),
        (
            "stream switch flushes a pending partial",
            out("half ") + &jl("err\n", "stderr") + &out("rest\n"),
            1024,
            vec!["half |I".into(), "err|E".into(), "rest|".into()],
        ),
        ("empty log", out("\n") + &out(""), 1024, vec!["|".into()]),
        ("crlf", out("dos\r\n"), 1024, vec!["dos|".into()]),
        (
            "overlong raw line",
            out("a\n") + &bad_long + &out("b\n"),
            1024,
            vec!["a|".into(), "zzzzzzzzzzzz|long:1024".into(), "b|".into()],
        ),
    ];
    for (name, input, max, expected) in &cases {
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        eprintln!("case: {name}");
        check(input.as_bytes(), *max, &expected);
    }
}

#[test]
fn resumes_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-json.log");
    let first = out("one\n");
    append(&path, (first.clone() + &out("two\n")).as_bytes());
    let mut tailer = Tailer::open(&path, first.len() as u64, limits(1024)).unwrap();
    let items: Vec<String> = drain(&mut tailer).iter().map(show).collect();
    assert_eq!(items, ["two|"]);
    // An offset beyond the end (file truncated while stopped) restarts at 0.
    let mut tailer = Tailer::open(&path, 1 << 40, limits(1024)).unwrap();
    assert_eq!(drain(&mut tailer).len(), 2);
}

#[test]
fn truncated_file_is_read_again_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-json.log");
    append(&path, (out("old one\n") + &out("old two\n")).as_bytes());
    let mut tailer = Tailer::open(&path, 0, limits(1024)).unwrap();
    assert_eq!(drain(&mut tailer).len(), 2);
    assert_eq!(tailer.check_truncation(true).unwrap(), None);

    std::fs::write(&path, out("new\n")).unwrap();
    assert_eq!(
        tailer.check_truncation(true).unwrap(),
        Some(0),
        "everything was read"
    );
    let items = drain(&mut tailer);
    assert_eq!(items.iter().map(show).collect::<Vec<_>>(), ["new|"]);
    assert_eq!(items[0].start, 0);
}

#[test]
fn idle_partial_is_flushed_and_marked_forced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-json.log");
    append(&path, (out("whole\n") + &out("dangling ")).as_bytes());
    let quick = Limits {
        max_event_bytes: 1024,
        partial_idle: Duration::ZERO,
    };
    let mut tailer = Tailer::open(&path, 0, quick).unwrap();
    let items = drain(&mut tailer);
    assert_eq!(
        items.iter().map(show).collect::<Vec<_>>(),
        ["whole|", "dangling |I"]
    );
    assert!(!items[0].forced);
    assert!(items[1].forced);
    // Its range alone replays to the same event.
    let again = range(&path, tailer.key(), items[1].start, items[1].end, quick);
    assert_eq!(again[0].record, items[1].record);
}
