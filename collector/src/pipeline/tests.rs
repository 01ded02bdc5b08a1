//! Tests for batching, ack ordering and crash recovery, without a network.

use std::path::{Path, PathBuf};

use logward_proto::Batch;
use tokio::sync::mpsc;

use super::*;
use crate::source::{Offer, Position};
use crate::stamp::{FIELD_DECODE_ERROR, FIELD_TRUNCATED};

const ID: &str = "c0ffee";

struct Env {
    _tmp: tempfile::TempDir,
    config: Config,
    log: PathBuf,
}

fn line(log: &str) -> String {
    let log = serde_json::to_string(log).unwrap();
    format!(r#"{{"log":{log},"stream":"stdout","time":"2024-01-02T03:04:05Z"}}"#) + "\n"
}

fn env(batch_max_events: usize, max_in_flight: usize) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let container = docker.join(ID);
    std::fs::create_dir_all(&container).unwrap();
    std::fs::write(
        container.join("config.v2.json"),
        format!(r#"{{"ID":"{ID}","Name":"/app","Config":{{"Image":"app:1","Labels":{{"a":"b"}}}},"Image":"sha256:1"}}"#),
    )
    .unwrap();
    let log = container.join(format!("{ID}-json.log"));
    std::fs::write(&log, "").unwrap();
    let config = Config {
        docker_dir: docker,
        state_dir: tmp.path().join("state"),
        hostname: "box".into(),
        batch_max_events,
        max_in_flight,
        max_event_bytes: 1024,
        ..Config::default()
    };
    Env {
        _tmp: tmp,
        config,
        log,
    }
}

fn write(path: &Path, lines: &[String]) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(lines.concat().as_bytes()).unwrap();
}

/// Opens a pipeline, answers its handshake with `high_water`, and returns it with its outbox.
fn start(config: &Config, high_water: u64) -> (Pipeline, mpsc::Receiver<Batch>) {
    let mut pipeline = Pipeline::open(config.clone()).unwrap();
    let (tx, rx) = mpsc::channel(config.max_in_flight + pipeline.replay_len());
    pipeline.set_shipper(tx);
    pipeline
        .on_ship_event(ShipEvent::Connected { high_water })
        .unwrap();
    (pipeline, rx)
}

fn pump(pipeline: &mut Pipeline) {
    pipeline.poll();
    pipeline.fill().unwrap();
    pipeline.flush().unwrap();
}

fn take(rx: &mut mpsc::Receiver<Batch>) -> Vec<Batch> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn messages(batches: &[Batch]) -> Vec<Vec<String>> {
    batches
        .iter()
        .map(|b| {
            b.events
                .iter()
                .map(|e| String::from_utf8_lossy(&e.message).into_owned())
                .collect()
        })
        .collect()
}

fn sequences(batches: &[Batch]) -> Vec<u64> {
    batches.iter().map(|b| b.sequence).collect()
}

#[tokio::test]
async fn batches_carry_events_in_file_order() {
    let env = env(2, 8);
    write(
        &env.log,
        &[
            line("a\n"),
            line("b\n"),
            line("c\n"),
            "oops\n".into(),
            line("big "),
        ],
    );
    write(&env.log, &[line(&"x".repeat(2000)), line("\n")]);
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    let batches = take(&mut rx);
    assert_eq!(sequences(&batches), [1, 2, 3]);
    assert_eq!(messages(&batches)[..2], [vec!["a", "b"], vec!["c", "oops"]]);
    let event = &batches[0].events[0];
    assert_eq!(event.host, "box");
    assert_eq!(event.source, logward_proto::Source::Docker as i32);
    assert_eq!(event.stream, logward_proto::StreamKind::Stdout as i32);
    assert_eq!(event.timestamp_nanos, 1_704_164_645_000_000_000);
    let container = event.container.as_ref().unwrap();
    assert_eq!(
        (container.id.as_str(), container.name.as_str()),
        (ID, "app")
    );
    assert_eq!(
        (container.image.as_str(), container.image_id.as_str()),
        ("app:1", "sha256:1")
    );
    assert_eq!(container.labels["a"], "b");

    let bad = &batches[1].events[1];
    assert!(bad.fields[FIELD_DECODE_ERROR].values[0].contains("invalid json"));
    let merged = &batches[2].events[0];
    assert_eq!(merged.message.len(), 1024);
    assert!(merged.message.starts_with(b"big xxx"));
    assert_eq!(merged.fields[FIELD_TRUNCATED].values, ["true"]);
    assert_eq!(pipeline.state().acked_sequence, 0);
}

#[tokio::test]
async fn window_bounds_reading_and_checkpoint_follows_acks_in_order() {
    let env = env(1, 2);
    let lines: Vec<String> = (0..5).map(|i| line(&format!("l{i}\n"))).collect();
    write(&env.log, &lines);
    let len = |n: usize| lines[..n].concat().len() as u64;
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    assert_eq!(sequences(&take(&mut rx)), [1, 2], "window of 2");

    pipeline.on_ack(2);
    pipeline.fill().unwrap();
    assert!(
        take(&mut rx).is_empty(),
        "an out-of-order ack frees nothing"
    );
    assert_eq!(pipeline.state().acked_sequence, 0);
    assert!(pipeline.state().files.is_empty());

    pipeline.on_ack(1);
    assert_eq!(pipeline.state().acked_sequence, 2);
    let offsets: Vec<u64> = pipeline.state().files.values().map(|f| f.offset).collect();
    assert_eq!(offsets, [len(2)]);
    pipeline.fill().unwrap();
    assert_eq!(sequences(&take(&mut rx)), [3, 4]);

    pipeline.save().await.unwrap();
    let (_, loaded) = StateDir::open(&env.config.state_dir).unwrap();
    assert_eq!(loaded.state.acked_sequence, 2);
    assert_eq!(loaded.state.files.values().next().unwrap().offset, len(2));
    assert_eq!(
        loaded
            .journal
            .iter()
            .map(|r| r.sequence)
            .collect::<Vec<_>>(),
        [3, 4]
    );

    pipeline.on_ack(3);
    pipeline.on_ack(4);
    pipeline.fill().unwrap();
    pipeline.on_ack(5);
    pipeline.save().await.unwrap();
    let (_, loaded) = StateDir::open(&env.config.state_dir).unwrap();
    assert_eq!(loaded.state.acked_sequence, 5);
    assert_eq!(loaded.state.files.values().next().unwrap().offset, len(5));
    assert!(loaded.journal.is_empty());
    let journal = env.config.state_dir.join(crate::checkpoint::JOURNAL_FILE);
    assert_eq!(
        std::fs::metadata(journal).unwrap().len(),
        0,
        "journal compacted"
    );
}

#[tokio::test]
async fn crash_before_ack_resends_same_sequences_and_events() {
    let env = env(2, 8);
    write(
        &env.log,
        &[
            line("a\n"),
            line("p1 "),
            line("p2\n"),
            line("c\n"),
            line("d\n"),
        ],
    );
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    let sent = take(&mut rx);
    assert_eq!(messages(&sent), [vec!["a", "p1 p2"], vec!["c", "d"]]);
    pipeline.on_ack(1);
    pipeline.save().await.unwrap();
    // Batch 2 is never acked; the process dies without saving anything else.
    drop(pipeline);

    write(&env.log, &[line("e\n")]);
    let (mut pipeline, mut rx) = start(&env.config, 1);
    let resent = take(&mut rx);
    assert_eq!(resent, sent[1..], "same sequence, same events, same order");
    pump(&mut pipeline);
    let fresh = take(&mut rx);
    assert_eq!(sequences(&fresh), [3]);
    assert_eq!(
        messages(&fresh),
        [vec!["e"]],
        "journaled bytes are not read twice"
    );
}

#[tokio::test]
async fn lost_journal_rereads_from_acked_offsets_above_high_water() {
    let env = env(10, 8);
    write(&env.log, &[line("a\n"), line("b\n")]);
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    assert_eq!(sequences(&take(&mut rx)), [1]);
    drop(pipeline);

    // The server already holds up to 7: more than this collector knows of.
    let (mut pipeline, mut rx) = start(&env.config, 7);
    assert!(
        take(&mut rx).is_empty(),
        "the journal is dropped, not replayed"
    );
    pump(&mut pipeline);
    let batches = take(&mut rx);
    assert_eq!(sequences(&batches), [8]);
    assert_eq!(
        messages(&batches),
        [vec!["a", "b"]],
        "re-read from the acked offset"
    );
}

#[tokio::test]
async fn server_behind_the_checkpoint_keeps_numbering_upward() {
    let env = env(10, 8);
    write(&env.log, &[line("a\n")]);
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    take(&mut rx);
    pipeline.on_ack(1);
    pipeline.save().await.unwrap();
    drop(pipeline);

    write(&env.log, &[line("b\n")]);
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    let batches = take(&mut rx);
    assert_eq!(sequences(&batches), [2]);
    assert_eq!(messages(&batches), [vec!["b"]]);
}

#[tokio::test]
async fn byte_limit_cuts_batches_without_splitting_events() {
    let mut env = env(1000, 8);
    env.config.batch_max_bytes = 2048;
    env.config.max_event_bytes = 2048;
    let chunk = "y".repeat(700);
    let lines = [
        line(&chunk),
        line(&chunk),
        line("end\n"),
        line("z\n"),
        line(&format!("{chunk}\n")),
    ];
    write(&env.log, &lines);
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    let batches = take(&mut rx);
    for batch in &batches {
        let size: usize = batch.events.iter().map(prost::Message::encoded_len).sum();
        assert!(
            size <= 2048 || batch.events.len() == 1,
            "batch {} is {size} bytes",
            batch.sequence
        );
    }
    let all: Vec<String> = messages(&batches).concat();
    assert_eq!(all.len(), 3);
    assert!(all[0].ends_with("yend"));
    assert_eq!(all[1], "z");
    let (_, loaded) = StateDir::open(&env.config.state_dir).unwrap();
    let len = |n: usize| lines[..n].concat().len() as u64;
    let ranges: Vec<(u64, u64)> = loaded
        .journal
        .iter()
        .map(|r| {
            assert_eq!(r.ranges.len(), 1, "contiguous events share one range");
            (r.ranges[0].start, r.ranges[0].end)
        })
        .collect();
    assert_eq!(
        ranges,
        [(0, len(4)), (len(4), len(5))],
        "the merged event stays in one batch"
    );
}

#[tokio::test]
async fn missing_docker_dir_is_picked_up_when_it_appears() {
    let env = env(10, 8);
    let mut config = env.config.clone();
    config.docker_dir = env.config.docker_dir.with_file_name("later");
    let (mut pipeline, mut rx) = start(&config, 0);
    pipeline.announce_sources();
    pump(&mut pipeline);
    assert!(take(&mut rx).is_empty());
    std::fs::rename(&env.config.docker_dir, &config.docker_dir).unwrap();
    write(
        &config.docker_dir.join(ID).join(format!("{ID}-json.log")),
        &[line("hi\n")],
    );
    pump(&mut pipeline);
    assert_eq!(messages(&take(&mut rx)), [vec!["hi"]]);
}

#[tokio::test]
async fn journaled_batches_are_resent_even_with_docker_switched_off() {
    let env = env(10, 8);
    write(&env.log, &[line("a\n"), line("b\n")]);
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pump(&mut pipeline);
    let sent = take(&mut rx);
    drop(pipeline);

    let config = Config {
        no_docker: true,
        ..env.config.clone()
    };
    let (mut pipeline, mut rx) = start(&config, 0);
    assert_eq!(take(&mut rx), sent);
    pump(&mut pipeline);
    assert!(take(&mut rx).is_empty());
}

/// A source that offers a script of items and records which it gave away, in order.
struct Script {
    items: std::collections::VecDeque<Offer>,
    taken: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Script {
    fn new(items: &[(Option<&str>, &str)]) -> Self {
        let items = items
            .iter()
            .map(|(message, cursor)| Offer {
                event: message.map(|m| logward_proto::Event {
                    message: m.to_owned().into(),
                    ..crate::stamp::event("box", logward_proto::Source::Journald)
                }),
                position: Position::Cursor((*cursor).to_owned()),
            })
            .collect();
        Self {
            items,
            taken: std::sync::Arc::default(),
        }
    }
}

impl Source for Script {
    fn peek(&mut self) -> Option<&Offer> {
        self.items.front()
    }

    fn take(&mut self) -> Option<Offer> {
        let offer = self.items.pop_front()?;
        let shown = match (&offer.event, &offer.position) {
            (Some(event), _) => String::from_utf8_lossy(&event.message).into_owned(),
            (None, Position::Cursor(cursor)) => format!("cursor {cursor}"),
            (None, _) => "nothing".to_owned(),
        };
        self.taken.lock().unwrap().push(shown);
        Some(offer)
    }
}

#[tokio::test]
async fn an_item_that_does_not_fit_a_full_window_waits_first_in_its_source() {
    let mut env = env(1000, 1);
    env.config.no_journald = true;
    env.config.batch_max_bytes = 200;
    let (a, b, c) = ("a".repeat(100), "b".repeat(100), "c".repeat(100));
    let script = Script::new(&[
        (Some(&a), "c1"),
        (Some(&b), "c2"),
        (None, "c3"),
        (Some(&c), "c4"),
    ]);
    let taken = script.taken.clone();
    let (mut pipeline, mut rx) = start(&env.config, 0);
    pipeline.journald = Some(Box::new(script));

    pipeline.fill().unwrap();
    assert_eq!(messages(&take(&mut rx)), [vec![a.clone()]]);
    pipeline.fill().unwrap();
    pipeline.flush().unwrap();
    assert!(take(&mut rx).is_empty(), "the window of 1 is full");
    assert_eq!(
        *taken.lock().unwrap(),
        [a.as_str(), b.as_str(), "cursor c3"],
        "the item that did not fit is not taken, however often it is looked at"
    );

    pipeline.on_ack(1);
    pipeline.fill().unwrap();
    let mut batches = take(&mut rx);
    pipeline.on_ack(2);
    pipeline.flush().unwrap();
    batches.extend(take(&mut rx));
    assert_eq!(sequences(&batches), [2, 3]);
    assert_eq!(messages(&batches), [vec![b.clone()], vec![c.clone()]]);
    assert_eq!(
        *taken.lock().unwrap(),
        [a.as_str(), b.as_str(), "cursor c3", c.as_str()],
        "each item is taken once, in order"
    );
    let (_, loaded) = StateDir::open(&env.config.state_dir).unwrap();
    let cursors: Vec<Option<&str>> = loaded
        .journal
        .iter()
        .map(|r| r.journald_cursor.as_deref())
        .collect();
    assert_eq!(
        cursors,
        [Some("c1"), Some("c3"), Some("c4")],
        "a batch records the cursor of the last item it took"
    );
}
