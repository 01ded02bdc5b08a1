//! Tests for the state directory: atomic saves, corrupt files, the send journal.

use std::fs::OpenOptions;
use std::io::Write as _;

use super::*;

fn key(ino: u64) -> FileKey {
    FileKey {
        dev: 7,
        ino,
        fp: 0xabc,
    }
}

fn record(sequence: u64, ino: u64, start: u64, end: u64) -> JournalRecord {
    JournalRecord {
        sequence,
        ranges: vec![FileRange {
            key: key(ino),
            path: PathBuf::from(format!("/d/c{ino}/c{ino}-json.log")),
            start,
            end,
        }],
        synthetic: Vec::new(),
        journald_cursor: None,
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn first_open_creates_and_persists_an_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/state");
    let (_, first) = StateDir::open(&dir).unwrap();
    assert!(first.fresh);
    assert_eq!(first.state.acked_sequence, 0);
    assert!(uuid::Uuid::parse_str(&first.state.collector_id).is_ok());
    let (_, second) = StateDir::open(&dir).unwrap();
    assert!(!second.fresh);
    assert_eq!(second.state.collector_id, first.state.collector_id);
}

#[test]
fn save_and_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    let mut state = loaded.state;
    state.acked_sequence = 41;
    for (ino, offset) in [(3, 100), (1, 5)] {
        state.files.insert(
            key(ino),
            FileState {
                key: key(ino),
                path: PathBuf::from(format!("/d/c{ino}/c{ino}-json.log")),
                offset,
                len: offset,
            },
        );
    }
    state_dir.save(&state).unwrap();
    assert_eq!(
        entries(tmp.path()),
        [JOURNAL_FILE, STATE_FILE],
        "no temp file left"
    );

    let (_, reloaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(reloaded.state, state);

    // The documented on-disk shape.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(json["version"], 3);
    assert_eq!(json["acked_sequence"], 41);
    assert_eq!(json["files"][0]["dev"], 7);
    assert_eq!(json["files"][0]["ino"], 1);
    assert_eq!(json["files"][0]["fp"], 0xabc);
    assert_eq!(json["files"][0]["offset"], 5);
    assert_eq!(json["files"][0]["path"], "/d/c1/c1-json.log");
}

#[test]
fn corrupt_or_unusable_state_is_set_aside() {
    let cases: &[&[u8]] = &[
        b"{not json",
        b"",
        br#"{"version":4,"collector_id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","acked_sequence":1,"files":[]}"#,
        br#"{"version":2,"collector_id":"abc","acked_sequence":1,"files":[]}"#,
        br#"{"version":2,"collector_id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","acked_sequence":-1,"files":[]}"#,
        br#"{"version":1,"collector_id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","acked_sequence":1,"files":[{"dev":1,"ino":2,"path":"/x","offset":3}]}"#,
        b"\x00\xff\xfe garbage \x01",
    ];
    for garbage in cases {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(STATE_FILE), garbage).unwrap();
        std::fs::write(
            tmp.path().join(JOURNAL_FILE),
            b"{\"sequence\":5,\"ranges\":[]}\n",
        )
        .unwrap();

        let (_, loaded) = StateDir::open(tmp.path()).unwrap();
        assert!(loaded.fresh, "{}", String::from_utf8_lossy(garbage));
        assert_eq!(loaded.state.acked_sequence, 0);
        assert!(loaded.state.files.is_empty(), "must re-read from the start");
        assert!(
            loaded.journal.is_empty(),
            "the old identity's journal is not replayed"
        );

        let names = entries(tmp.path());
        let aside: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&format!("{STATE_FILE}.corrupt-")))
            .collect();
        assert_eq!(aside.len(), 1, "{names:?}");
        assert_eq!(std::fs::read(tmp.path().join(aside[0])).unwrap(), *garbage);
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(&format!("{JOURNAL_FILE}.corrupt-")))
        );

        // The replacement is valid and kept.
        let (_, again) = StateDir::open(tmp.path()).unwrap();
        assert!(!again.fresh);
        assert_eq!(again.state.collector_id, loaded.state.collector_id);
    }
}

#[test]
fn journal_keeps_unacked_records_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    let mut state = loaded.state;
    for r in [
        record(1, 1, 0, 10),
        record(2, 2, 0, 20),
        record(3, 1, 10, 30),
    ] {
        state_dir.append(&r).unwrap();
    }
    state.acked_sequence = 1;
    state_dir.save(&state).unwrap();
    // A torn last record (the process died mid-write) is skipped.
    OpenOptions::new()
        .append(true)
        .open(tmp.path().join(JOURNAL_FILE))
        .unwrap()
        .write_all(b"{\"sequence\":4,\"ran")
        .unwrap();
    drop(state_dir);

    let (mut state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(loaded.journal, [record(2, 2, 0, 20), record(3, 1, 10, 30)]);

    state_dir.compact(&[record(3, 1, 10, 30)]).unwrap();
    state_dir.append(&record(4, 2, 20, 25)).unwrap();
    let (mut state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(loaded.journal, [record(3, 1, 10, 30), record(4, 2, 20, 25)]);

    state_dir.compact(&[]).unwrap();
    assert_eq!(state_dir.journal_len(), 0);
    assert_eq!(
        std::fs::metadata(tmp.path().join(JOURNAL_FILE))
            .unwrap()
            .len(),
        0
    );
    state_dir.append(&record(5, 2, 25, 30)).unwrap();
    let (_, loaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(loaded.journal, [record(5, 2, 25, 30)]);
}

#[test]
fn journal_record_format() {
    let line = serde_json::to_string(&record(9, 3, 4, 8)).unwrap();
    assert_eq!(
        line,
        r#"{"sequence":9,"ranges":[{"dev":7,"ino":3,"fp":2748,"path":"/d/c3/c3-json.log","start":4,"end":8}]}"#
    );
    let mut with_events = record(9, 3, 4, 8);
    with_events.synthetic = vec!["0a01".to_owned()];
    let line = serde_json::to_string(&with_events).unwrap();
    assert!(line.ends_with(r#""synthetic":["0a01"]}"#), "{line}");
    let back: JournalRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back, with_events);
}

#[test]
fn version_2_state_keeps_its_docker_offsets_and_gains_a_journald_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(STATE_FILE),
        br#"{"version":2,"collector_id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","acked_sequence":4,"files":[{"dev":7,"ino":1,"fp":2748,"path":"/d/c1/c1-json.log","offset":9,"len":9}]}"#,
    )
    .unwrap();
    let (state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    assert!(!loaded.fresh);
    assert_eq!(loaded.state.acked_sequence, 4);
    assert_eq!(loaded.state.files[&key(1)].offset, 9);
    assert_eq!(loaded.state.journald_cursor, None);
    let mut state = loaded.state;
    state.journald_cursor = Some("s=1;i=2".to_owned());
    state_dir.save(&state).unwrap();
    let (_, reloaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(reloaded.state, state);
}

#[test]
fn torn_journal_tail_is_cut_and_reported_and_stale_temps_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut state_dir, _) = StateDir::open(tmp.path()).unwrap();
    state_dir.append(&record(1, 1, 0, 10)).unwrap();
    drop(state_dir);
    let journal = tmp.path().join(JOURNAL_FILE);
    let whole = std::fs::metadata(&journal).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(b"{\"sequence\":2,\"ran")
        .unwrap();
    // Temps of a save and a compaction that a crash interrupted, in the old and new names.
    for name in [
        "state.json.tmp",
        "state.json.tmp.9.0",
        "inflight.log.tmp.9.1",
    ] {
        std::fs::write(tmp.path().join(name), b"partial").unwrap();
    }

    let (mut state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(loaded.journal, [record(1, 1, 0, 10)]);
    let torn = loaded.journal_recovery.torn.expect("torn tail reported");
    assert_eq!((torn.offset, torn.bytes), (whole, 18));
    assert_eq!(loaded.journal_recovery.stale_temps, 1);
    assert_eq!(entries(tmp.path()), [JOURNAL_FILE, STATE_FILE]);
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), whole);
    assert_eq!(state_dir.journal_len(), whole);

    // The next record starts on a line of its own.
    state_dir.append(&record(2, 1, 10, 20)).unwrap();
    let (_, loaded) = StateDir::open(tmp.path()).unwrap();
    assert_eq!(loaded.journal, [record(1, 1, 0, 10), record(2, 1, 10, 20)]);
    assert!(loaded.journal_recovery.is_clean());
}

#[test]
fn existing_state_and_journal_bytes_still_load() {
    // Files as the collector wrote them before logward-durable, byte for byte.
    let tmp = tempfile::tempdir().unwrap();
    let state = "{\n  \"version\": 3,\n  \"collector_id\": \"7d444840-9dc0-11d1-b245-5ffdce74fad2\",\n  \"acked_sequence\": 1,\n  \"files\": [],\n  \"journald_cursor\": \"s=1\"\n}\n";
    std::fs::write(tmp.path().join(STATE_FILE), state).unwrap();
    let journal = concat!(
        r#"{"sequence":1,"ranges":[]}"#,
        "\n",
        r#"{"sequence":2,"ranges":[{"dev":7,"ino":3,"fp":2748,"path":"/d/c3/c3-json.log","start":4,"end":8}],"synthetic":["0a01"]}"#,
        "\n"
    );
    std::fs::write(tmp.path().join(JOURNAL_FILE), journal).unwrap();
    let (state_dir, loaded) = StateDir::open(tmp.path()).unwrap();
    assert!(!loaded.fresh);
    assert_eq!(loaded.journal.len(), 1);
    assert_eq!(loaded.journal[0].synthetic, ["0a01"]);
    state_dir.save(&loaded.state).unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(STATE_FILE)).unwrap(),
        state
    );
    let mut state_dir = state_dir;
    state_dir.compact(&loaded.journal).unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(JOURNAL_FILE)).unwrap(),
        journal.lines().nth(1).unwrap().to_owned() + "\n"
    );
}
