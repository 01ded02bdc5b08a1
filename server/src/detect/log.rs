//! The detection log: detections as append-only JSON lines under
//! `<data_dir>/detections/detections.jsonl` (one fsync per batch of detections), the
//! newest of them in memory for `GET /api/v1/detections`, and the keys of recent ones so
//! that replayed events never fire the same detection twice, across restarts too.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// Detections kept in memory for listing.
pub const KEPT: usize = 10_000;
/// Keys of recent detections remembered for deduplication.
const KEYS: usize = 200_000;
/// The file is rotated (to `detections.1.jsonl`) past this size.
const ROTATE_BYTES: u64 = 256 << 20;
/// Most detections one listing returns.
pub const MAX_LIMIT: usize = 10_000;

/// A stored detection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredDetection {
    /// `<detected_at nanos>-<n>`.
    pub id: String,
    /// When the server detected it (RFC 3339).
    pub detected_at: String,
    pub detected_at_nanos: i64,
    /// Timestamp of the last contributing event (RFC 3339).
    pub event_time: String,
    pub rule_id: String,
    pub rule_title: String,
    pub level: Option<String>,
    pub tags: Vec<String>,
    pub correlation: bool,
    /// A correlation's group-by values.
    pub group: BTreeMap<String, String>,
    /// The contributing events' ids (`<collector>-<seq>-<idx>`).
    pub event_ids: Vec<String>,
    /// The host of the last contributing event.
    pub host: Option<String>,
}

impl StoredDetection {
    /// The identity of a detection: the rule, the group and the events.
    pub fn key(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.rule_id.hash(&mut h);
        self.group.hash(&mut h);
        self.event_ids.hash(&mut h);
        h.finish()
    }
}

/// The log: the file, the newest detections and the recent keys.
pub struct DetectionLog {
    path: PathBuf,
    recent: VecDeque<StoredDetection>,
    keys: HashSet<u64>,
    key_order: VecDeque<u64>,
    file: Option<std::fs::File>,
}

impl DetectionLog {
    /// Opens (or creates) `<dir>/detections.jsonl` and reads what it holds; a torn last
    /// line (a crash mid-write) is skipped.
    pub fn open(dir: &Path) -> std::io::Result<DetectionLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("detections.jsonl");
        let mut log = DetectionLog {
            path: path.clone(),
            recent: VecDeque::new(),
            keys: HashSet::new(),
            key_order: VecDeque::new(),
            file: None,
        };
        for p in [dir.join("detections.1.jsonl"), path.clone()] {
            let text = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut bad = 0;
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<StoredDetection>(line) {
                    Ok(d) => log.remember(d),
                    Err(_) => bad += 1,
                }
            }
            if bad > 0 {
                warn!(file = %p.display(), lines = bad, "skipped unreadable detection lines");
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let len = file.metadata()?.len();
        if len > 0 && std::fs::read(&path)?.last() != Some(&b'\n') {
            file.write_all(b"\n")?;
        }
        log.file = Some(file);
        Ok(log)
    }

    fn remember(&mut self, d: StoredDetection) {
        let key = d.key();
        if self.keys.insert(key) {
            self.key_order.push_back(key);
            if self.key_order.len() > KEYS
                && let Some(old) = self.key_order.pop_front()
            {
                self.keys.remove(&old);
            }
        }
        self.recent.push_back(d);
        if self.recent.len() > KEPT {
            self.recent.pop_front();
        }
    }

    /// Whether this detection was stored before (a replayed event).
    pub fn seen(&self, d: &StoredDetection) -> bool {
        self.keys.contains(&d.key())
    }

    /// Appends detections not seen before and syncs the file; returns those stored.
    pub fn append(&mut self, batch: Vec<StoredDetection>) -> std::io::Result<Vec<StoredDetection>> {
        let mut fresh = Vec::new();
        let mut text = Vec::new();
        for d in batch {
            if self.seen(&d) {
                continue;
            }
            if let Ok(line) = serde_json::to_vec(&d) {
                text.extend_from_slice(&line);
                text.push(b'\n');
            }
            self.remember(d.clone());
            fresh.push(d);
        }
        if text.is_empty() {
            return Ok(fresh);
        }
        self.rotate_if_large()?;
        if let Some(f) = self.file.as_mut() {
            f.write_all(&text)?;
            f.sync_data()?;
        }
        Ok(fresh)
    }

    fn rotate_if_large(&mut self) -> std::io::Result<()> {
        let len = self
            .file
            .as_ref()
            .map_or(Ok(0), |f| f.metadata().map(|m| m.len()))?;
        if len < ROTATE_BYTES {
            return Ok(());
        }
        let old = self.path.with_file_name("detections.1.jsonl");
        std::fs::rename(&self.path, old)?;
        self.file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        Ok(())
    }

    /// The detections matching `q`, newest first.
    pub fn list(&self, q: &ListParams) -> Vec<StoredDetection> {
        self.recent
            .iter()
            .rev()
            .filter(|d| q.rule.as_ref().is_none_or(|r| &d.rule_id == r))
            .filter(|d| q.level.is_empty() || d.level.as_ref().is_some_and(|l| q.level.contains(l)))
            .filter(|d| q.since.is_none_or(|s| d.detected_at_nanos >= s))
            .filter(|d| q.until.is_none_or(|u| d.detected_at_nanos < u))
            .take(q.limit)
            .cloned()
            .collect()
    }
}

/// A validated `GET /api/v1/detections` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    /// Exact rule id.
    pub rule: Option<String>,
    /// Any of these levels.
    pub level: Vec<String>,
    /// Detected at or after (Unix ns).
    pub since: Option<i64>,
    /// Detected before (Unix ns).
    pub until: Option<i64>,
    pub limit: usize,
}
