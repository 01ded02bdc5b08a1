//! Decoder for one line of Docker's json-file log driver; pure, no I/O.
//!
//! A line looks like `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`
//! (sometimes with an `attrs` object, which is ignored). Docker splits long output lines into
//! 16 KiB chunks; every chunk but the last lacks the trailing `\n`, which is what
//! [`DockerLine::partial`] reports.

use std::borrow::Cow;

use logward_proto::StreamKind;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One decoded json-file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLine<'a> {
    /// The logged text without its trailing `\n` (and a `\r` before it). Borrowed from the
    /// input when the JSON string held no escapes.
    pub log: Cow<'a, str>,
    /// Which output stream of the container wrote it.
    pub stream: StreamKind,
    /// When Docker received it, in nanoseconds since the Unix epoch.
    pub time_nanos: i64,
    /// The line was a chunk of a longer line: it had no trailing `\n`.
    pub partial: bool,
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The line is not a JSON object of the expected shape.
    #[error("invalid json: {0}")]
    Json(String),
    /// A required field is absent (or `null`).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The `time` field is not an RFC 3339 timestamp representable in i64 nanoseconds.
    #[error("bad time {value:?}: {reason}")]
    BadTime {
        /// The offending value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The `stream` field is neither `stdout` nor `stderr`.
    #[error("bad stream {0:?}: expected \"stdout\" or \"stderr\"")]
    BadStream(String),
}

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow, default, deserialize_with = "optional_cow")]
    log: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_cow")]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_cow")]
    time: Option<Cow<'a, str>>,
}

/// A `Cow<str>` inside an `Option` that still borrows (serde only borrows a bare `Cow`).
fn optional_cow<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(deserializer)?.map(|b| b.0))
}

/// Decodes one line (without its terminating `\n`; surrounding whitespace is tolerated).
pub fn decode_line(line: &[u8]) -> Result<DockerLine<'_>, DecodeError> {
    let raw: RawLine<'_> =
        serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))?;
    let log = raw.log.ok_or(DecodeError::MissingField("log"))?;
    let stream = raw.stream.ok_or(DecodeError::MissingField("stream"))?;
    let time = raw.time.ok_or(DecodeError::MissingField("time"))?;

    let stream = match stream.as_ref() {
        "stdout" => StreamKind::Stdout,
        "stderr" => StreamKind::Stderr,
        other => return Err(DecodeError::BadStream(other.to_owned())),
    };
    let time_nanos = parse_time(&time)?;
    let partial = !log.ends_with('\n');
    let log = if partial { log } else { strip_newline(log) };
    Ok(DockerLine {
        log,
        stream,
        time_nanos,
        partial,
    })
}

/// Parses an RFC 3339 timestamp into nanoseconds since the Unix epoch.
pub fn parse_time(value: &str) -> Result<i64, DecodeError> {
    let bad = |reason: String| DecodeError::BadTime {
        value: value.to_owned(),
        reason,
    };
    let parsed = OffsetDateTime::parse(value, &Rfc3339).map_err(|e| bad(e.to_string()))?;
    i64::try_from(parsed.unix_timestamp_nanos())
        .map_err(|_| bad("out of range for i64 nanoseconds".to_owned()))
}

/// Removes the one trailing `\n` and a `\r` right before it.
fn strip_newline(log: Cow<'_, str>) -> Cow<'_, str> {
    let keep = |s: &str| {
        let s = s.strip_suffix('\n').unwrap_or(s);
        s.strip_suffix('\r').unwrap_or(s).len()
    };
    match log {
        Cow::Borrowed(s) => Cow::Borrowed(&s[..keep(s)]),
        Cow::Owned(mut s) => {
            let len = keep(&s);
            s.truncate(len);
            Cow::Owned(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2024-01-02T03:04:05.123456789Z";
    const T0_NANOS: i64 = 1_704_164_645_123_456_789;

    /// What a table row expects: either a decoded line or an error whose text contains a needle.
    enum Expect<'a> {
        Line {
            log: &'a str,
            stream: StreamKind,
            time_nanos: i64,
            partial: bool,
        },
        Err(&'a str),
    }

    fn ok(log: &str, partial: bool) -> Expect<'_> {
        Expect::Line {
            log,
            stream: StreamKind::Stdout,
            time_nanos: T0_NANOS,
            partial,
        }
    }

    fn check(input: &[u8], expected: &Expect<'_>) {
        let got = decode_line(input);
        let shown = String::from_utf8_lossy(&input[..input.len().min(120)]);
        match (got, expected) {
            (
                Ok(line),
                Expect::Line {
                    log,
                    stream,
                    time_nanos,
                    partial,
                },
            ) => {
                assert_eq!(line.log, *log, "log of {shown}");
                assert_eq!(line.stream, *stream, "stream of {shown}");
                assert_eq!(line.time_nanos, *time_nanos, "time of {shown}");
                assert_eq!(line.partial, *partial, "partial of {shown}");
            }
            (Err(err), Expect::Err(needle)) => {
                assert!(
                    err.to_string().contains(needle),
                    "{shown}: {err} lacks {needle}"
                );
            }
            (Ok(line), Expect::Err(needle)) => {
                panic!("{shown}: expected error {needle}, got {line:?}")
            }
            (Err(err), Expect::Line { .. }) => panic!("{shown}: unexpected error {err}"),
        }
    }

    fn line(log_json: &str) -> String {
        format!(r#"{{"log":"{log_json}","stream":"stdout","time":"{T0}"}}"#)
    }

    #[test]
    fn table() {
        let cases: Vec<(String, Expect<'_>)> = vec![
            (line(r"hello\n"), ok("hello", false)),
            (line(r"caf\u00e9\n"), ok("café", false)),
            (line(r"\ud83d\ude00 grin\n"), ok("😀 grin", false)),
            (line(r"\u001b[31mred\u001b[0m\n"), ok("\u{1b}[31mred\u{1b}[0m", false)),
            (line(r#"say \"hi\"\ttab\n"#), ok("say \"hi\"\ttab", false)),
            (line("no newline"), ok("no newline", true)),
            (line(r"windows\r\n"), ok("windows", false)),
            (line(r"only one\n\n"), ok("only one\n", false)),
            (line(r"\n"), ok("", false)),
            (line(""), ok("", true)),
            (line(r"\r"), ok("\r", true)),
            (
                r#"{"log":"e\n","stream":"stderr","attrs":{"tag":"x"},"time":"2024-01-02T04:04:05.5+01:00"}"#
                    .to_owned(),
                Expect::Line {
                    log: "e",
                    stream: StreamKind::Stderr,
                    time_nanos: 1_704_164_645_500_000_000,
                    partial: false,
                },
            ),
            (
                r#"{"log":"x\n","stream":"stdout","time":"1970-01-01T00:00:00Z"}"#.to_owned(),
                Expect::Line {
                    log: "x",
                    stream: StreamKind::Stdout,
                    time_nanos: 0,
                    partial: false,
                },
            ),
            ("not json at all".to_owned(), Expect::Err("invalid json")),
            (r#"{"log":"cut off"#.to_owned(), Expect::Err("invalid json: EOF")),
            (String::new(), Expect::Err("invalid json")),
            ("[1,2]".to_owned(), Expect::Err("invalid json")),
            (r#"{"log":5,"stream":"stdout","time":"x"}"#.to_owned(), Expect::Err("invalid json")),
            (line(r"\ud83d lone surrogate"), Expect::Err("invalid json")),
            (
                format!(r#"{{"stream":"stdout","time":"{T0}"}}"#),
                Expect::Err("missing field `log`"),
            ),
            (format!(r#"{{"log":"a\n","time":"{T0}"}}"#), Expect::Err("missing field `stream`")),
            (r#"{"log":"a\n","stream":"stdout"}"#.to_owned(), Expect::Err("missing field `time`")),
            (
                format!(r#"{{"log":null,"stream":"stdout","time":"{T0}"}}"#),
                Expect::Err("missing field `log`"),
            ),
            (
                r#"{"log":"a\n","stream":"stdout","time":"yesterday"}"#.to_owned(),
                Expect::Err("bad time \"yesterday\""),
            ),
            (
                r#"{"log":"a\n","stream":"stdout","time":"2500-01-01T00:00:00Z"}"#.to_owned(),
                Expect::Err("out of range"),
            ),
            (
                format!(r#"{{"log":"a\n","stream":"stdin","time":"{T0}"}}"#),
                Expect::Err("bad stream \"stdin\""),
            ),
        ];
        for (input, expected) in &cases {
            check(input.as_bytes(), expected);
        }
    }

    #[test]
    fn fixture_file_lines() {
        // Each fixture line is `<expected log as JSON string>\t<json-file line>`.
        let text = include_str!("../../tests/fixtures/docker-lines.tsv");
        let mut count = 0;
        for row in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (expected, input) = row.split_once('\t').unwrap();
            let expected: (String, bool) = serde_json::from_str(expected).unwrap();
            check(input.as_bytes(), &ok(&expected.0, expected.1));
            count += 1;
        }
        assert!(count >= 4, "fixture has {count} rows");
    }

    #[test]
    fn plain_lines_are_borrowed() {
        // A complete line always holds the `\n` escape, so only escape-free chunks borrow.
        let input = line("plain chunk");
        let decoded = decode_line(input.as_bytes()).unwrap();
        assert!(matches!(decoded.log, Cow::Borrowed("plain chunk")));
        let input = line(r"esc\u00e9\r\n");
        let decoded = decode_line(input.as_bytes()).unwrap();
        assert!(matches!(decoded.log, Cow::Owned(ref s) if s == "escé"));
    }

    #[test]
    fn huge_line() {
        let body = "x".repeat(2 * 1024 * 1024);
        let input = line(&format!(r"{body}\n"));
        check(input.as_bytes(), &ok(&body, false));
        let truncated = &input.as_bytes()[..input.len() / 2];
        check(truncated, &Expect::Err("invalid json"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = line(r"caf\u00e9 \ud83d\ude00\n").into_bytes();
        for cut in 0..base.len() {
            let _ = decode_line(&base[..cut]);
            let mut flipped = base.clone();
            flipped[cut] ^= 0x80;
            let _ = decode_line(&flipped);
        }
    }
}
