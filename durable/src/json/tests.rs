//! Tests for the typed log: the line format, round trips, and seeded random tearing.

use serde::Deserialize;

use super::*;
use crate::test_support::entries;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rec {
    id: String,
    n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

fn rec(id: &str, n: u64) -> Rec {
    Rec {
        id: id.to_owned(),
        n,
        note: None,
    }
}

#[test]
fn lines_are_compact_json_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.jsonl");
    let (mut log, recovered) = JsonLines::<Rec>::open(&path, LogOptions::default()).unwrap();
    assert!(recovered.records.is_empty() && recovered.recovery.is_clean());
    log.append(&rec("a", 1)).unwrap();
    let mut noted = rec("b\nc", 2);
    noted.note = Some("ü \"q\"".to_owned());
    assert_eq!(log.append_batch([&noted, &rec("d", 3)]).unwrap(), 2);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut want = String::new();
    for r in [rec("a", 1), noted.clone(), rec("d", 3)] {
        want.push_str(&serde_json::to_string(&r).unwrap());
        want.push('\n');
    }
    assert_eq!(text, want);
    assert!(
        text.starts_with("{\"id\":\"a\",\"n\":1}\n{\"id\":\"b\\nc\""),
        "{text}"
    );
    drop(log);

    let (mut log, recovered) = JsonLines::<Rec>::open(&path, LogOptions::default()).unwrap();
    assert_eq!(recovered.records, [rec("a", 1), noted, rec("d", 3)]);
    log.compact([&rec("d", 3)]).unwrap();
    assert_eq!(entries(tmp.path()), ["r.jsonl"]);
    let read = JsonLines::<Rec>::read(&path, CorruptLines::Skip)
        .unwrap()
        .unwrap();
    assert_eq!(read.records, [rec("d", 3)]);
    assert_eq!(log.log().lines(), 1);
}

#[test]
fn a_line_of_another_shape_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.jsonl");
    std::fs::write(
        &path,
        "{\"id\":\"a\",\"n\":1}\n{\"id\":7}\n{\"id\":\"c\",\"n\":3}\n",
    )
    .unwrap();
    let (_, recovered) = JsonLines::<Rec>::open(&path, LogOptions::default()).unwrap();
    assert_eq!(recovered.records, [rec("a", 1), rec("c", 3)]);
    let skipped = &recovered.recovery.skipped;
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].line, skipped[0].offset), (2, 17));
    assert!(skipped[0].message.contains("invalid type"), "{skipped:?}");
}

/// A random record: ids of random characters (newlines, quotes, non-ASCII included).
fn random_rec(rng: &mut fastrand::Rng) -> Rec {
    let id: String = (0..rng.usize(0..12))
        .map(|_| match rng.u8(0..6) {
            0 => '\n',
            1 => '"',
            2 => 'é',
            3 => '\u{1F600}',
            _ => rng.alphanumeric(),
        })
        .collect();
    Rec {
        id,
        n: rng.u64(..),
        note: rng.bool().then(|| "x".repeat(rng.usize(0..40))),
    }
}

#[test]
fn seeded_random_logs_torn_at_every_byte_of_the_last_record() {
    let seed = std::env::var("DURABLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed} (rerun with DURABLE_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let records: Vec<Rec> = (0..rng.usize(1..6)).map(|_| random_rec(&mut rng)).collect();
        let mut whole = Vec::new();
        for r in &records {
            encode_line(&mut whole, r, Path::new("-")).unwrap();
        }
        let last_start =
            whole.len() - serde_json::to_vec(records.last().unwrap()).unwrap().len() - 1;
        for cut in last_start..=whole.len() {
            let path = tmp.path().join(format!("r{round}-{cut}.jsonl"));
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (mut log, recovered) =
                JsonLines::<Rec>::open(&path, LogOptions::default()).unwrap();
            let kept = if cut == whole.len() {
                records.len()
            } else {
                records.len() - 1
            };
            assert_eq!(recovered.records, records[..kept], "seed {seed} cut {cut}");
            assert!(
                recovered.recovery.skipped.is_empty(),
                "seed {seed} cut {cut}"
            );
            let torn = recovered.recovery.torn.as_ref();
            assert_eq!(
                torn.map(|t| (t.offset, t.bytes)),
                (cut > last_start && cut < whole.len())
                    .then_some((last_start as u64, (cut - last_start) as u64)),
                "seed {seed} cut {cut}"
            );
            let extra = random_rec(&mut rng);
            log.append(&extra).unwrap();
            drop(log);
            let (_, again) = JsonLines::<Rec>::open(&path, LogOptions::default()).unwrap();
            let mut want = records[..kept].to_vec();
            want.push(extra);
            assert_eq!(again.records, want, "seed {seed} cut {cut}");
            assert!(again.recovery.is_clean(), "seed {seed} cut {cut}");
        }
    }
}

#[test]
fn encode_errors_name_the_log() {
    use std::collections::BTreeMap;
    // A map with non-string keys cannot be JSON.
    let bad: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let mut lines = Vec::new();
    let error = encode_line(&mut lines, &bad, Path::new("/x/r.jsonl")).unwrap_err();
    assert_eq!(
        (error.op(), error.path()),
        ("encode", Path::new("/x/r.jsonl"))
    );
}
