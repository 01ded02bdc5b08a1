//! End-to-end tests of the collector against an in-process gRPC server double: delivery of
//! every line, resends after a dropped stream, and a checkpoint that waits for acks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logward_collector::Config;
use logward_proto::{Ack, Batch, Ingest, IngestServer};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// What the double has seen and how it behaves.
#[derive(Default)]
struct Inner {
    /// Every non-handshake batch as it arrived, resends included.
    received: Vec<Batch>,
    /// Durable batches by (collector, sequence).
    stored: BTreeMap<(String, u64), Batch>,
    /// Ack nothing on the first stream and drop it once this many batches arrived on it.
    drop_once_after: Option<usize>,
    /// Receive but never ack.
    hold: bool,
    handshakes: usize,
}

#[derive(Clone, Default)]
struct Double(Arc<Mutex<Inner>>);

impl Double {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn stored_messages(&self) -> Vec<String> {
        self.with(|i| {
            i.stored
                .values()
                .flat_map(|b| {
                    b.events
                        .iter()
                        .map(|e| String::from_utf8_lossy(&e.message).into_owned())
                })
                .collect()
        })
    }

    fn high_water(inner: &Inner, collector: &str) -> u64 {
        inner
            .stored
            .keys()
            .filter(|(c, _)| c == collector)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0)
    }

    /// Handles one inbound batch; `None` means: drop the stream now.
    fn handle(&self, batch: Batch, on_stream: &mut usize) -> Option<Option<Ack>> {
        let mut inner = self.0.lock().unwrap();
        let high_water = Self::high_water(&inner, &batch.collector_id);
        if batch.sequence == 0 {
            inner.handshakes += 1;
            return Some(Some(Ack {
                sequence: 0,
                duplicates: 0,
                high_water,
            }));
        }
        inner.received.push(batch.clone());
        *on_stream += 1;
        if inner.drop_once_after == Some(*on_stream) {
            inner.drop_once_after = None;
            return None;
        }
        if inner.hold || inner.drop_once_after.is_some() {
            return Some(None);
        }
        let sequence = batch.sequence;
        let duplicates = if sequence <= high_water {
            batch.events.len() as u32
        } else {
            inner
                .stored
                .insert((batch.collector_id.clone(), sequence), batch);
            0
        };
        let high_water = Self::high_water(&inner, &inner.received[0].collector_id).max(high_water);
        Some(Some(Ack {
            sequence,
            duplicates,
            high_water,
        }))
    }
}

#[tonic::async_trait]
impl Ingest for Double {
    type StreamStream = ReceiverStream<Result<Ack, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let double = self.clone();
        tokio::spawn(async move {
            let mut on_stream = 0;
            while let Ok(Some(batch)) = inbound.message().await {
                match double.handle(batch, &mut on_stream) {
                    Some(Some(ack)) => {
                        if tx.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                    Some(None) => {}
                    None => {
                        let _ = tx
                            .send(Err(Status::unavailable("test double drops the stream")))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn serve(double: Double) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IngestServer::new(double))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

fn line(log: &str, stream: &str) -> String {
    let log = serde_json::to_string(log).unwrap();
    format!(r#"{{"log":{log},"stream":"{stream}","time":"2024-05-06T07:08:09.000000010Z"}}"#) + "\n"
}

/// Creates `<dir>/<id>/config.v2.json` and `<dir>/<id>/<id>-json.log` with `lines`.
fn container(dir: &Path, id: &str, lines: &[String]) -> PathBuf {
    let container = dir.join(id);
    std::fs::create_dir_all(&container).unwrap();
    let config = format!(
        r#"{{"ID":"{id}","Name":"/{id}-name","Created":"2024-05-06T07:00:00Z","Config":{{"Image":"img:{id}","Labels":null}},"Image":"sha256:{id}","State":{{"Running":true}}}}"#
    );
    std::fs::write(container.join("config.v2.json"), config).unwrap();
    let log = container.join(format!("{id}-json.log"));
    std::fs::write(&log, lines.concat()).unwrap();
    log
}

/// Lines of one container: full lines, and one long line split into Docker partial chunks.
fn lines_for(id: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let mut raw = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        if i % 50 == 7 {
            raw.push(line(&format!("{id} part-a {i} "), "stdout"));
            raw.push(line(&format!("part-b {i}\n"), "stdout"));
            expected.push(format!("{id} part-a {i} part-b {i}"));
        } else {
            let stream = if i % 3 == 0 { "stderr" } else { "stdout" };
            raw.push(line(&format!("{id} line {i}\n"), stream));
            expected.push(format!("{id} line {i}"));
        }
    }
    (raw, expected)
}

fn config(docker_dir: &Path, state_dir: &Path, addr: SocketAddr) -> Config {
    Config {
        server: format!("http://{addr}"),
        docker_dir: docker_dir.to_owned(),
        state_dir: state_dir.to_owned(),
        hostname: "test-host".into(),
        no_journald: true,
        batch_max_events: 37,
        batch_linger_ms: 10,
        max_in_flight: 4,
        poll_interval_ms: 20,
        shutdown_grace_ms: 3000,
        ..Config::default()
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), logward_collector::Error>>,
}

fn start(config: Config) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(logward_collector::run(config, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("collector stops in time")
            .unwrap()
            .unwrap();
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_json(state_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state_dir.join("state.json")).unwrap()).unwrap()
}

fn offsets(state_dir: &Path) -> BTreeMap<String, u64> {
    state_json(state_dir)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_and_checkpoint_reaches_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let (raw_a, mut expected) = lines_for("aaaa", 400);
    let (raw_b, expected_b) = lines_for("bbbb", 300);
    expected.extend(expected_b);
    let log_a = container(&docker, "aaaa", &raw_a);
    let log_b = container(&docker, "bbbb", &raw_b[..150]);
    let double = Double::default();
    let addr = serve(double.clone()).await;
    let state = tmp.path().join("state");
    let running = start(config(&docker, &state, addr));

    // A line that is not json-file output still arrives, flagged.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log_b)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, (raw_b[150..].concat() + "garbage\n").as_bytes())
        })
        .unwrap();
    expected.push("garbage".into());

    wait_for("every event", || {
        double.stored_messages().len() >= expected.len()
    })
    .await;
    running.stop().await;

    assert_eq!(sorted(double.stored_messages()), sorted(expected));
    let batches: Vec<Batch> = double.with(|i| i.stored.values().cloned().collect());
    let sequences: Vec<u64> = batches.iter().map(|b| b.sequence).collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    let event = batches
        .iter()
        .flat_map(|b| &b.events)
        .find(|e| e.message.starts_with(b"aaaa line 1"))
        .unwrap();
    assert_eq!(event.host, "test-host");
    assert_eq!(event.timestamp_nanos, 1_714_979_289_000_000_010);
    let c = event.container.as_ref().unwrap();
    assert_eq!(
        (c.id.as_str(), c.name.as_str(), c.image.as_str()),
        ("aaaa", "aaaa-name", "img:aaaa")
    );
    let garbage = batches
        .iter()
        .flat_map(|b| &b.events)
        .find(|e| &e.message[..] == b"garbage")
        .unwrap();
    assert!(garbage.fields.contains_key("logward.decode_error"));

    let offsets = offsets(&state);
    assert_eq!(
        offsets[log_a.to_str().unwrap()],
        std::fs::metadata(&log_a).unwrap().len()
    );
    assert_eq!(
        offsets[log_b.to_str().unwrap()],
        std::fs::metadata(&log_b).unwrap().len()
    );
    assert_eq!(
        state_json(&state)["acked_sequence"],
        *sequences.last().unwrap()
    );
    assert_eq!(
        std::fs::metadata(state.join("inflight.log")).unwrap().len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_resends_unacked_batches_with_their_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let (raw, expected) = lines_for("cccc", 500);
    container(&docker, "cccc", &raw);
    let double = Double::default();
    double.with(|i| i.drop_once_after = Some(3));
    let addr = serve(double.clone()).await;
    let running = start(config(&docker, &tmp.path().join("state"), addr));

    wait_for("every event", || {
        double.stored_messages().len() >= expected.len()
    })
    .await;
    running.stop().await;

    assert_eq!(
        double.stored_messages(),
        expected,
        "each line once, in order"
    );
    let (received, handshakes) = double.with(|i| (i.received.clone(), i.handshakes));
    assert!(handshakes >= 2, "reconnected after the drop");
    let mut by_sequence: BTreeMap<u64, Vec<&Batch>> = BTreeMap::new();
    for batch in &received {
        by_sequence.entry(batch.sequence).or_default().push(batch);
    }
    let resent: Vec<u64> = by_sequence
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        resent.starts_with(&[1, 2, 3]),
        "unacked batches resent: {resent:?}"
    );
    for copies in by_sequence.values() {
        for copy in &copies[1..] {
            assert_eq!(*copy, copies[0], "a resent batch is identical");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_waits_for_acks_and_restart_resends_the_same_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("containers");
    let (raw, expected) = lines_for("dddd", 100);
    let log = container(&docker, "dddd", &raw);
    let state = tmp.path().join("state");
    let double = Double::default();
    double.with(|i| i.hold = true);
    let addr = serve(double.clone()).await;
    let mut cfg = config(&docker, &state, addr);
    cfg.shutdown_grace_ms = 100;

    // The window (4 batches of 37) covers all 100 lines; nothing is ever acked.
    let running = start(cfg.clone());
    let events_received =
        || double.with(|i| i.received.iter().map(|b| b.events.len()).sum::<usize>());
    wait_for("all lines sent", || events_received() >= expected.len()).await;
    running.stop().await;

    let held: Vec<Batch> = double.with(|i| std::mem::take(&mut i.received));
    assert_eq!(state_json(&state)["acked_sequence"], 0);
    assert!(offsets(&state).is_empty(), "offsets move only after acks");
    let journal = std::fs::read_to_string(state.join("inflight.log")).unwrap();
    assert_eq!(journal.lines().count(), held.len());

    // Restart against a server that acks: the same batches come again, then nothing else.
    double.with(|i| i.hold = false);
    let running = start(cfg);
    wait_for("all lines stored", || {
        double.stored_messages().len() >= expected.len()
    })
    .await;
    running.stop().await;
    let resent: Vec<Batch> = double.with(|i| i.received.clone());
    assert_eq!(resent, held, "same sequences, same events, same order");
    assert_eq!(double.stored_messages(), expected);
    assert_eq!(
        offsets(&state)[log.to_str().unwrap()],
        std::fs::metadata(&log).unwrap().len()
    );
}
