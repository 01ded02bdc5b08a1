//! The Docker source against the dockerd simulator: compressed rotation while the `.gz` is
//! being written (issue 15, finding 1), in-flight positions across compression (finding 2),
//! and a seeded randomized rotation run.

use std::collections::{BTreeMap, HashMap};

use super::*;

#[path = "../../../tests/support/dockerd.rs"]
pub(crate) mod dockerd;

use dockerd::{Dockerd, Opts};

/// A collector (the source with its acked and journaled positions) over simulated dockerds.
struct Rig {
    dir: tempfile::TempDir,
    source: DockerSource,
    acked: BTreeMap<FileKey, FileState>,
    /// Ranges read and not yet acked (the send journal), in order.
    journal: Vec<FileRange>,
    /// Messages collected, per container, in order.
    out: HashMap<String, Vec<Vec<u8>>>,
    gaps: Vec<String>,
}

fn rig_options() -> SourceOptions {
    SourceOptions {
        limits: Limits {
            max_event_bytes: 1024 * 1024,
            partial_idle: Duration::from_secs(3600),
        },
        ..options()
    }
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = DockerSource::new(dir.path(), rig_options());
        Self {
            dir,
            source,
            acked: BTreeMap::new(),
            journal: Vec::new(),
            out: HashMap::new(),
            gaps: Vec::new(),
        }
    }

    fn dockerd(&self, id: &str, opts: Opts, seed: i64) -> Dockerd {
        Dockerd::new(
            &self.dir.path().join(id),
            id,
            opts,
            1_704_164_645_000_000_000 + seed * 1_000_000_000,
        )
    }

    fn read_positions(&self) -> BTreeMap<FileKey, u64> {
        let mut read = BTreeMap::new();
        for range in &self.journal {
            let at = read.entry(range.key).or_insert(0);
            *at = range.end.max(*at);
        }
        read
    }

    /// One round of the main loop: a scan, a wake-up, and reading until drained.
    fn round(&mut self) {
        let read = self.read_positions();
        let positions = Positions {
            acked: &self.acked,
            read: &read,
            at_end: false,
        };
        self.source.poll(&positions);
        self.source.wake(&positions);
        while let Some(event) = self.source.next_synthetic() {
            self.gaps
                .push(format!("{}", String::from_utf8_lossy(&event.message)));
        }
        while let Some(sourced) = self.source.next_event() {
            let id = sourced.event.container.as_ref().unwrap().id.clone();
            self.out
                .entry(id)
                .or_default()
                .push(sourced.event.message.to_vec());
            self.journal.push(sourced.range);
        }
    }

    /// The server acknowledges everything read so far.
    fn ack(&mut self) {
        for range in self.journal.drain(..) {
            let file = self.acked.entry(range.key).or_insert_with(|| FileState {
                key: range.key,
                path: range.path.clone(),
                offset: 0,
                len: 0,
            });
            file.offset = file.offset.max(range.end);
        }
    }

    /// kill -9 of the collector: a new source; the journal is replayed as the pipeline
    /// does (each range rebuilt, then reading resumes past the journaled positions).
    fn crash(&mut self) {
        self.source = DockerSource::new(self.dir.path(), rig_options());
    }

    fn replay_journal(&mut self) {
        for range in self.journal.clone() {
            let events = self.source.replay(&range).unwrap_or_default();
            let id = container_of(&range.path).unwrap();
            for event in events {
                self.out
                    .entry(id.clone())
                    .or_default()
                    .push(event.message.to_vec());
            }
        }
    }

    fn messages(&self, id: &str) -> Vec<String> {
        self.out
            .get(id)
            .map(|m| {
                m.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

const COMPRESSED: Opts = Opts {
    max_size: 10 * 1024 * 1024,
    max_file: 3,
    compress: true,
};

fn lines(d: &mut Dockerd, prefix: &str, n: std::ops::Range<usize>) {
    for i in n {
        d.log("stdout", format!("{prefix} {i}").as_bytes());
    }
}

fn expected(prefix: &str, n: std::ops::Range<usize>) -> Vec<String> {
    n.map(|i| format!("{prefix} {i}")).collect()
}

#[test]
fn a_gz_dockerd_is_still_writing_does_not_wedge_the_collector() {
    let mut rig = Rig::new();
    let mut d = rig.dockerd("c1", COMPRESSED, 0);
    lines(&mut d, "old", 0..3000);
    rig.round();
    rig.ack();
    assert_eq!(rig.messages("c1"), expected("old", 0..3000));
    // Rotation with compression: `.1` exists, `.1.gz` holds its header and 8 bytes of
    // deflate data.
    d.rotate();
    let header = 12 + br#"{"lastTime":"2024-01-02T03:04:05.003071Z"}"#.len();
    assert!(!d.compress_step(header + 8));
    // The 1.5 s of the issue, as rounds of the main loop: each must return.
    for _ in 0..6 {
        rig.round();
    }
    // The rest of the `.gz`, the unlink of `.1`, then 1,000 live lines.
    d.finish_compression();
    lines(&mut d, "new", 0..1000);
    for _ in 0..3 {
        rig.round();
    }
    let got = rig.messages("c1");
    assert_eq!(got[3000..], expected("new", 0..1000)[..]);
    assert_eq!(got.len(), 4000, "nothing duplicated");
    assert!(rig.gaps.is_empty(), "{:?}", rig.gaps);
}

#[test]
fn a_gz_that_never_completes_is_backed_off_then_reported_not_retried_forever() {
    let mut rig = Rig::new();
    let mut d = rig.dockerd("c1", COMPRESSED, 0);
    lines(&mut d, "old", 0..10);
    d.rotate();
    assert!(!d.compress_step(30));
    // dockerd died compressing and the plain `.1` is gone (a later rotation renamed the
    // broken `.gz`): nothing can ever complete it.
    let broken = std::fs::read(d.rotated_path(1, true)).unwrap();
    std::fs::write(d.rotated_path(2, true), &broken).unwrap();
    std::fs::remove_file(d.rotated_path(1, true)).unwrap();
    std::fs::remove_file(d.rotated_path(1, false)).unwrap();
    drop(d);
    let mut d = rig.dockerd(
        "c1",
        Opts {
            compress: false,
            ..COMPRESSED
        },
        1,
    );
    lines(&mut d, "live", 0..5);
    let start = std::time::Instant::now();
    while rig.source.stats().gaps == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "never given up");
        rig.round();
        std::thread::sleep(Duration::from_millis(50));
    }
    rig.round();
    assert!(rig.source.stats().read_failures >= u64::from(chain::MAX_FAILURES));
    assert!(rig.gaps[0].contains("unreadable"), "{:?}", rig.gaps);
    assert_eq!(rig.messages("c1"), expected("live", 0..5));
}

#[test]
#[ignore = "finding 2 not fixed yet: the 500 journaled lines come back twice (see the branch report)"]
fn lines_in_flight_at_a_crash_are_not_sent_again_once_their_file_is_compressed() {
    let mut rig = Rig::new();
    let mut d = rig.dockerd("c1", COMPRESSED, 0);
    lines(&mut d, "a", 0..3000);
    rig.round();
    rig.ack();
    // Server down: 500 lines read and journaled, never acked.
    lines(&mut d, "b", 0..500);
    rig.round();
    assert_eq!(rig.journal.len(), 500);
    rig.crash();
    d.rotate();
    d.finish_compression();
    lines(&mut d, "c", 0..100);
    rig.replay_journal();
    rig.round();
    let mut want = expected("a", 0..3000);
    want.extend(expected("b", 0..500));
    want.extend(expected("c", 0..100));
    let got = rig.messages("c1");
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(
        (got.len(), first_diff),
        (want.len(), None),
        "{:?}",
        got.get(3400..3510)
    );
}
