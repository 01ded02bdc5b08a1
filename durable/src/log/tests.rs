//! Tests for the byte-level log: recovery of every kind of damaged file, appends, budget,
//! compaction, rotation and failures.

use std::io;

use super::*;
use crate::test_support::{entries, unwritable_dir};

/// Parses a line as a decimal number (the test's record type).
fn number(line: &[u8]) -> std::result::Result<u32, String> {
    std::str::from_utf8(line)
        .map_err(|e| e.to_string())?
        .parse::<u32>()
        .map_err(|e| e.to_string())
}

/// Whether a line is a record.
fn valid(line: &[u8]) -> std::result::Result<(), String> {
    number(line).map(drop)
}

/// What recovery should make of a file.
#[derive(Debug, PartialEq)]
struct Expected {
    records: Vec<u32>,
    skipped: Vec<u64>,
    torn: Option<(u64, u64)>,
}

fn expect(records: &[u32], skipped: &[u64], torn: Option<(u64, u64)>) -> Expected {
    Expected {
        records: records.to_vec(),
        skipped: skipped.to_vec(),
        torn,
    }
}

/// Opens a log holding `input` and checks the records, the skipped lines (by number), the
/// torn tail (offset, bytes) and the file left behind.
fn check(input: &str, expected: &Expected) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    std::fs::write(&path, input).unwrap();
    let read_only = recover_read_only(&path);
    let mut records = Vec::new();
    let (log, recovery) = Log::open(&path, LogOptions::default(), |line| {
        number(line).map(|n| records.push(n))
    })
    .unwrap();
    let got = Expected {
        records,
        skipped: recovery.skipped.iter().map(|s| s.line).collect(),
        torn: recovery.torn.as_ref().map(|t| (t.offset, t.bytes)),
    };
    assert_eq!(&got, expected, "input {input:?}");
    assert_eq!(read_only, recovery, "read_lines agrees, input {input:?}");
    let kept = expected
        .torn
        .map_or(input.len(), |(offset, _)| offset as usize);
    assert_eq!(std::fs::read(&path).unwrap(), &input.as_bytes()[..kept]);
    assert_eq!(log.len(), kept as u64);
    assert_eq!(
        log.lines(),
        (expected.records.len() + expected.skipped.len()) as u64
    );
}

fn recover_read_only(path: &Path) -> Recovery {
    let before = std::fs::read(path).unwrap();
    let recovery = read_lines(path, CorruptLines::Skip, valid)
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "read_lines changes nothing"
    );
    recovery
}

#[test]
fn recovery_of_damaged_files() {
    check("", &expect(&[], &[], None));
    check("1\n2\n", &expect(&[1, 2], &[], None));
    // A fragment without a newline is torn, even one that would parse.
    check("1\n2", &expect(&[1], &[], Some((2, 1))));
    check("1\n22\n3", &expect(&[1, 22], &[], Some((5, 1))));
    check("12", &expect(&[], &[], Some((0, 2))));
    // A last line that does not parse is torn too (zeros of a half-persisted block).
    check("1\n\0\0\n", &expect(&[1], &[], Some((2, 3))));
    check("1\nx\ny\n\0\0", &expect(&[1], &[], Some((2, 6))));
    // A bad line before a good one is skipped and the file kept whole.
    check("1\nx\n3\n", &expect(&[1, 3], &[2], None));
    check("x\ny\n3\nz", &expect(&[3], &[1, 2], Some((6, 1))));
    // Blank lines are neither records nor damage; after a bad line they go with it.
    check("1\n\n  \n2\n\n", &expect(&[1, 2], &[], None));
    check("\n\n", &expect(&[], &[], None));
    check("1\nx\n\n", &expect(&[1], &[], Some((2, 3))));
    check("1\r\n", &expect(&[], &[], Some((0, 3))));
}

#[test]
fn corrupt_middle_line_fails_when_asked_and_leaves_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    let input = b"1\nbad\n3\n4";
    std::fs::write(&path, input).unwrap();
    let options = LogOptions {
        corrupt: CorruptLines::Fail,
        ..LogOptions::default()
    };
    let error = Log::open(&path, options, valid).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Corrupt {
                line: 2,
                offset: 2,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("t.log line 2"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), input);
    // A bad last line is a torn tail, not corruption, under either policy.
    std::fs::write(&path, b"1\nbad\n").unwrap();
    let (_, recovery) = Log::open(&path, options, valid).unwrap();
    assert_eq!(recovery.torn.map(|t| (t.offset, t.bad_lines)), Some((2, 1)));
}

/// Records of every shape the exhaustive test tears.
const RECORDS: &[&str] = &["7", "4294967295", "100000"];

#[test]
fn torn_at_every_byte_of_the_last_record_keeps_exactly_the_whole_records() {
    for last in RECORDS {
        let whole = format!("1\n22\n{last}\n");
        let start = whole.len() - last.len() - 1;
        for cut in start..=whole.len() {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("t.log");
            std::fs::write(&path, &whole[..cut]).unwrap();
            let mut records = Vec::new();
            let (mut log, recovery) = Log::open(&path, LogOptions::default(), |line| {
                number(line).map(|n| records.push(n))
            })
            .unwrap();
            let complete = cut == whole.len();
            let mut want = vec![1, 22];
            if complete {
                want.push(last.parse().unwrap());
            }
            assert_eq!(records, want, "cut at {cut} of {whole:?}");
            assert_eq!(recovery.torn.is_some(), cut != start && !complete);
            // Appending after recovery yields whole lines only.
            log.append(b"9").unwrap();
            drop(log);
            let mut again = Vec::new();
            let (_, recovery) = Log::open(&path, LogOptions::default(), |line| {
                number(line).map(|n| again.push(n))
            })
            .unwrap();
            want.push(9);
            assert_eq!(again, want, "cut at {cut} of {whole:?}");
            assert!(recovery.is_clean());
        }
    }
}

#[test]
fn append_batch_compact_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    let (mut log, recovery) = Log::open(&path, LogOptions::default(), valid).unwrap();
    assert!(recovery.is_clean() && log.is_empty());
    log.append(b"1").unwrap();
    assert_eq!(log.append_lines(b"2\n3\n").unwrap(), 2);
    assert_eq!(log.append_lines(b"").unwrap(), 0);
    assert_eq!((log.len(), log.lines()), (6, 3));
    log.compact(b"3\n").unwrap();
    log.append(b"4").unwrap();
    assert_eq!((log.len(), log.lines()), (4, 2));
    assert_eq!(std::fs::read(&path).unwrap(), b"3\n4\n");
    assert_eq!(entries(tmp.path()), ["t.log"], "no temp left");
    log.compact(b"").unwrap();
    assert_eq!((log.len(), log.lines()), (0, 0));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    log.append(b"5").unwrap();
    log.sync().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"5\n");
}

#[test]
fn framing_errors_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    let (mut log, _) = Log::open(&path, LogOptions::default(), valid).unwrap();
    for result in [
        log.append(b"1\n2"),
        log.append_lines(b"1\n2").map(|_| ()),
        log.compact(b"1"),
    ] {
        let error = result.unwrap_err();
        assert!(matches!(error, Error::Framing { .. }), "{error}");
        assert_eq!(error.op(), "append");
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

#[test]
fn budget_refuses_and_counts_appends_but_not_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    let options = LogOptions {
        max_bytes: Some(6),
        ..LogOptions::default()
    };
    let (mut log, _) = Log::open(&path, options, valid).unwrap();
    log.append_lines(b"1\n2\n").unwrap();
    let error = log.append(b"33").unwrap_err();
    assert!(
        matches!(
            error,
            Error::OverBudget {
                len: 4,
                add: 3,
                budget: 6,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.into_parts().2.kind(), io::ErrorKind::StorageFull);
    assert_eq!(log.refused(), 1);
    log.append(b"3").unwrap();
    assert_eq!(log.len(), 6);
    assert!(log.append(b"4").is_err());
    assert_eq!(log.refused(), 2);
    log.compact(b"1000\n2000\n").unwrap();
    assert_eq!(log.len(), 10);
    assert_eq!(std::fs::read(&path).unwrap(), b"1000\n2000\n");
}

#[test]
fn stale_compaction_temps_are_removed_on_open_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    std::fs::write(&path, b"1\n").unwrap();
    std::fs::write(tmp.path().join("t.log.tmp.77.0"), b"1\n2\n").unwrap();
    std::fs::write(tmp.path().join("t.log.tmp"), b"").unwrap();
    let (_, recovery) = Log::open(&path, LogOptions::default(), valid).unwrap();
    assert_eq!(recovery.stale_temps, 2);
    assert!(!recovery.is_clean());
    assert_eq!(entries(tmp.path()), ["t.log"]);
}

#[test]
fn rotate_moves_the_log_aside_and_starts_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.log");
    let (mut log, _) = Log::open(&path, LogOptions::default(), valid).unwrap();
    log.append_lines(b"1\n2\n").unwrap();
    log.rotate("t.1.log").unwrap();
    assert_eq!((log.len(), log.lines()), (0, 0));
    log.append(b"3").unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("t.1.log")).unwrap(),
        b"1\n2\n"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"3\n");
}

#[test]
fn a_directory_or_an_unwritable_place_fails_at_open_with_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_path = tmp.path().join("t.log");
    std::fs::create_dir(&dir_path).unwrap();
    let error = Log::open(&dir_path, LogOptions::default(), valid).unwrap_err();
    assert_eq!(
        (error.op(), error.path(), error.io_kind()),
        ("open", &*dir_path, Some(io::ErrorKind::IsADirectory))
    );
    assert!(error.to_string().starts_with("open "), "{error}");

    let missing = tmp.path().join("no/such/t.log");
    let error = Log::open(&missing, LogOptions::default(), valid).unwrap_err();
    assert_eq!(error.io_kind(), Some(io::ErrorKind::NotFound), "{error}");

    let read_only = unwritable_dir(tmp.path());
    let path = read_only.join("t.log");
    let error = Log::open(&path, LogOptions::default(), valid).unwrap_err();
    assert_eq!(
        (error.op(), error.path(), error.io_kind()),
        ("open", &*path, Some(io::ErrorKind::PermissionDenied))
    );
}

#[test]
fn read_lines_needs_only_read_access_and_a_missing_file_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        read_lines(&tmp.path().join("none"), CorruptLines::Skip, valid).unwrap(),
        None
    );
    let path = tmp.path().join("t.log");
    std::fs::write(&path, b"1\n2\n3").unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let recovery = read_lines(&path, CorruptLines::Skip, valid)
        .unwrap()
        .unwrap();
    assert_eq!(
        (recovery.good, recovery.torn.map(|t| t.offset)),
        (2, Some(4))
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"1\n2\n3");
}

/// Prints what appends, batches, compaction and replaces cost on this disk. Run with
/// `cargo test -p logward-durable --release -- --ignored measure --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_append_and_replace_costs() {
    use std::time::Instant;
    let tmp = tempfile::tempdir().unwrap();
    let record = [b'x'; 200];
    for (label, sync) in [("fsynced", true), ("unsynced", false)] {
        let path = tmp.path().join(format!("{label}.log"));
        let options = LogOptions {
            sync,
            ..LogOptions::default()
        };
        let (mut log, _) = Log::open(&path, options, valid).unwrap();
        let n = if sync { 500 } else { 50_000 };
        let started = Instant::now();
        for _ in 0..n {
            log.append(&record).unwrap();
        }
        let per = started.elapsed() / n;
        eprintln!("append of 200 bytes, {label}: {per:?} each");
    }
    let path = tmp.path().join("batch.log");
    let (mut log, _) = Log::open(&path, LogOptions::default(), valid).unwrap();
    let mut batch = Vec::new();
    for _ in 0..100 {
        batch.extend_from_slice(&record);
        batch.push(b'\n');
    }
    let started = Instant::now();
    for _ in 0..100 {
        log.append_lines(&batch).unwrap();
    }
    eprintln!(
        "batch of 100 records, one fsync: {:?} each",
        started.elapsed() / 100
    );
    let mut lines = Vec::new();
    for _ in 0..10_000 {
        lines.extend_from_slice(&record);
        lines.push(b'\n');
    }
    let started = Instant::now();
    for _ in 0..20 {
        log.compact(&lines).unwrap();
    }
    eprintln!(
        "compaction to 10,000 records (2 MB): {:?} each",
        started.elapsed() / 20
    );
    let started = Instant::now();
    let (_, recovery) = Log::open(&path, LogOptions::default(), |_| Ok::<(), String>(())).unwrap();
    eprintln!(
        "open and scan of {} lines: {:?}",
        recovery.good,
        started.elapsed()
    );
    let started = Instant::now();
    for _ in 0..100 {
        atomic_replace(tmp.path(), "state.json", &record).unwrap();
    }
    eprintln!(
        "atomic_replace of 200 bytes: {:?} each",
        started.elapsed() / 100
    );
}
