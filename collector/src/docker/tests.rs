//! Tests for the Docker source over a real directory: rotation (plain and gzipped), truncation,
//! inode reuse, lost files, restarts before the ack. Each case is a script of steps on one
//! container and the messages (and gap events) it must yield, in order.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::time::Duration;

use super::*;
use crate::container::filter::FilterSpec;

const ID: &str = "c0ffee";

#[derive(Clone, Copy)]
enum Step {
    /// Appends lines to the live file.
    Write(&'static [&'static str]),
    /// Rotates as Docker does: `.N` → `.N+1`, live → `.1`, a new live file.
    Rotate,
    /// Compresses `.N` to `.N.gz` and removes `.N`, as Docker does with `compress=true`.
    Gzip(u32),
    /// Deletes `.N`.
    Delete(u32),
    /// Truncates the live file to nothing.
    Truncate,
    /// Rewrites the live file in place with new content: same device and inode, other bytes,
    /// which is what an inode reused by a new file looks like.
    Rewrite(&'static [&'static str]),
    /// Scans and reads everything.
    Read,
    /// Kills the source: the last `n` events read were never acked; a new source starts from
    /// the acked positions.
    Restart { unacked: usize },
}

struct Harness {
    dir: tempfile::TempDir,
    source: DockerSource,
    read: Vec<FileRange>,
    acked: BTreeMap<FileKey, FileState>,
    out: Vec<String>,
}

fn options() -> SourceOptions {
    SourceOptions {
        hostname: "box".into(),
        limits: Limits {
            max_event_bytes: 1024,
            partial_idle: Duration::from_secs(3600),
        },
        filter: Filter::new(&FilterSpec::default()).unwrap(),
        own_id: None,
        start_at_end: false,
    }
}

fn line(text: &str) -> String {
    format!(r#"{{"log":"{text}\n","stream":"stdout","time":"2024-01-02T03:04:05.000000001Z"}}"#)
        + "\n"
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(ID)).unwrap();
        let source = DockerSource::new(dir.path(), options());
        Self {
            dir,
            source,
            read: Vec::new(),
            acked: BTreeMap::new(),
            out: Vec::new(),
        }
    }

    fn path(&self, rotation: u32) -> PathBuf {
        let live = self.dir.path().join(ID).join(format!("{ID}-json.log"));
        match rotation {
            0 => live,
            n => PathBuf::from(format!("{}.{n}", live.display())),
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Write(lines) => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(0))
                    .unwrap();
                for l in lines {
                    file.write_all(line(l).as_bytes()).unwrap();
                }
            }
            Step::Rotate => {
                for n in (1..4).rev() {
                    let _ = std::fs::rename(self.path(n), self.path(n + 1));
                }
                std::fs::rename(self.path(0), self.path(1)).unwrap();
                std::fs::write(self.path(0), "").unwrap();
            }
            Step::Gzip(n) => {
                let bytes = std::fs::read(self.path(n)).unwrap();
                let gz = format!("{}.gz", self.path(n).display());
                let mut enc = flate2::write::GzEncoder::new(
                    std::fs::File::create(gz).unwrap(),
                    flate2::Compression::default(),
                );
                enc.write_all(&bytes).unwrap();
                enc.finish().unwrap();
                std::fs::remove_file(self.path(n)).unwrap();
            }
            Step::Delete(n) => std::fs::remove_file(self.path(n)).unwrap(),
            Step::Truncate => std::fs::write(self.path(0), "").unwrap(),
            Step::Rewrite(lines) => {
                let text: String = lines.iter().map(|l| line(l)).collect();
                std::fs::write(self.path(0), text).unwrap();
            }
            Step::Read => self.read_all(),
            Step::Restart { unacked } => {
                let lens: BTreeMap<FileKey, u64> = self.source.lens().into_iter().collect();
                for range in &self.read[..self.read.len() - unacked] {
                    let file = self.acked.entry(range.key).or_insert_with(|| FileState {
                        key: range.key,
                        path: range.path.clone(),
                        offset: 0,
                        len: 0,
                    });
                    file.offset = file.offset.max(range.end);
                }
                for (key, file) in &mut self.acked {
                    file.len = file.len.max(lens.get(key).copied().unwrap_or(0));
                }
                self.read.clear();
                self.source = DockerSource::new(self.dir.path(), options());
            }
        }
    }

    fn read_all(&mut self) {
        let no_reads = BTreeMap::new();
        let positions = Positions {
            acked: &self.acked,
            read: &no_reads,
            at_end: false,
        };
        self.source.poll(&positions);
        while let Some(event) = self.source.next_synthetic() {
            let reason = &event.fields["gap.reason"].values[0];
            self.out.push(format!("gap:{reason}"));
        }
        while let Some(sourced) = self.source.next_event() {
            let text = String::from_utf8_lossy(&sourced.event.message).into_owned();
            assert_eq!(sourced.event.container.as_ref().unwrap().id, ID);
            self.out.push(text);
            self.read.push(sourced.range);
        }
    }
}

fn check(steps: &[Step], expected: &[&str]) {
    let mut harness = Harness::new();
    for step in steps {
        harness.step(*step);
    }
    assert_eq!(harness.out, expected);
}

#[test]
fn rotation_while_paused_reads_old_files_before_the_new_one() {
    use Step::*;
    check(
        &[
            Write(&["a", "b"]),
            Read,
            Write(&["c"]),
            Rotate,
            Write(&["d"]),
            Rotate,
            Write(&["e"]),
            Read,
        ],
        &["a", "b", "c", "d", "e"],
    );
}

#[test]
fn rotated_files_found_at_start_are_read_oldest_first() {
    use Step::*;
    check(
        &[
            Write(&["a"]),
            Rotate,
            Write(&["b"]),
            Rotate,
            Gzip(2),
            Write(&["c"]),
            Read,
        ],
        &["a", "b", "c"],
    );
}

#[test]
fn a_file_compressed_after_the_restart_resumes_at_its_offset() {
    use Step::*;
    check(
        &[
            Write(&["a"]),
            Read,
            Write(&["b"]),
            Rotate,
            Restart { unacked: 0 },
            Gzip(1),
            Write(&["c"]),
            Read,
        ],
        &["a", "b", "c"],
    );
}

#[test]
fn a_compressed_copy_of_a_file_being_read_is_not_read_again() {
    use Step::*;
    check(
        &[
            Write(&["a"]),
            Read,
            Write(&["b"]),
            Rotate,
            Read,
            Gzip(1),
            Write(&["c"]),
            Read,
        ],
        &["a", "b", "c"],
    );
}

#[test]
fn truncation_is_a_gap_and_the_file_is_read_again() {
    use Step::*;
    check(
        &[Write(&["a"]), Read, Truncate, Write(&["b"]), Read],
        &["a", "gap:truncated", "b"],
    );
}

#[test]
fn inode_reuse_is_a_new_file_read_from_its_start() {
    use Step::*;
    check(
        &[
            Write(&["old"]),
            Read,
            Restart { unacked: 0 },
            Rewrite(&["new one", "new two", "new three"]),
            Read,
        ],
        &["old", "new one", "new two", "new three"],
    );
}

#[test]
fn crash_between_read_and_ack_reads_the_unacked_events_again() {
    use Step::*;
    check(
        &[
            Write(&["a", "b", "c"]),
            Read,
            Restart { unacked: 2 },
            Write(&["d"]),
            Read,
        ],
        &["a", "b", "c", "b", "c", "d"],
    );
}

#[test]
fn a_rotated_file_deleted_before_it_was_read_is_a_gap() {
    use Step::*;
    check(
        &[
            Write(&["a"]),
            Read,
            Write(&["b"]),
            Restart { unacked: 0 },
            Read,
            Restart { unacked: 1 },
            Rotate,
            Delete(1),
            Write(&["c"]),
            Read,
        ],
        &["a", "b", "gap:deleted_before_read", "c"],
    );
}

#[test]
fn replay_finds_a_range_after_rotation_and_compression() {
    let mut harness = Harness::new();
    harness.step(Step::Write(&["a", "b"]));
    harness.step(Step::Read);
    let range = harness.read[1].clone();
    harness.step(Step::Rotate);
    harness.step(Step::Gzip(1));
    let mut fresh = DockerSource::new(harness.dir.path(), options());
    let events = fresh.replay(&range).unwrap();
    let messages: Vec<_> = events.iter().map(|e| e.message.clone()).collect();
    assert_eq!(messages, [Bytes::from("b")]);

    std::fs::remove_file(format!("{}.gz", harness.path(1).display())).unwrap();
    let error = fresh.replay(&range).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
}

pub(crate) mod rotation;
