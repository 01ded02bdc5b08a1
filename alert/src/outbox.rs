//! The durable outbox: notifications are written (and synced) before they are sent and
//! removed only after success; failures back off, and after the last attempt they become
//! dead letters. Files: `outbox.jsonl`, `dead-letters.jsonl`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::config::RetryConfig;
use crate::error::Result;
use crate::journal::{Journal, Keyed};
use crate::notification::Notification;

/// A notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The idempotency key (also in the notification).
    pub id: String,
    /// The channel's name.
    pub channel: String,
    /// What to send.
    pub notification: Notification,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time.
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// The last failure.
    pub last_error: Option<String>,
}

impl Keyed for OutboxEntry {
    fn key(&self) -> &str {
        &self.id
    }
}

/// A notification given up on, as `GET /api/v1/alerts/dead-letters` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The entry as it was at its last attempt.
    pub entry: OutboxEntry,
    /// When it was given up.
    #[serde(with = "time::serde::rfc3339")]
    pub dead_at: OffsetDateTime,
}

impl Keyed for DeadLetter {
    fn key(&self) -> &str {
        &self.entry.id
    }
}

pub(crate) struct Outbox {
    journal: Journal,
    entries: BTreeMap<String, OutboxEntry>,
    dead_journal: Journal,
    dead: BTreeMap<String, DeadLetter>,
}

impl Outbox {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let (journal, mut entries) = Journal::open::<OutboxEntry>(&dir.join("outbox.jsonl"))?;
        let (dead_journal, dead) = Journal::open::<DeadLetter>(&dir.join("dead-letters.jsonl"))?;
        // A crash between "write dead letter" and "remove from outbox" leaves both.
        entries.retain(|id, _| !dead.contains_key(id));
        if !entries.is_empty() {
            tracing::info!(
                pending = entries.len(),
                "outbox has notifications from before the restart"
            );
        }
        Ok(Outbox {
            journal,
            entries,
            dead_journal,
            dead,
        })
    }

    /// Persists new notifications (synced) before they are offered for delivery.
    pub(crate) fn enqueue(&mut self, new: Vec<OutboxEntry>) -> Result<()> {
        self.journal.append(&new, [])?;
        for e in new {
            self.entries.insert(e.id.clone(), e);
        }
        Ok(())
    }

    /// Entries due at `now`, oldest first, not among `busy`.
    pub(crate) fn due(
        &self,
        now: OffsetDateTime,
        busy: &std::collections::HashSet<String>,
    ) -> Vec<OutboxEntry> {
        let mut v: Vec<OutboxEntry> = self
            .entries
            .values()
            .filter(|e| e.next_attempt_at <= now && !busy.contains(&e.id))
            .cloned()
            .collect();
        v.sort_by_key(|e| (e.notification.created_at, e.next_attempt_at));
        v
    }

    pub(crate) fn delivered(&mut self, id: &str) -> Result<()> {
        if self.entries.remove(id).is_some() {
            self.journal.append::<OutboxEntry>([], [id])?;
            if self.journal.wants_compaction(self.entries.len()) {
                self.journal.compact(self.entries.values())?;
            }
        }
        Ok(())
    }

    /// Records a failed attempt; returns true when the entry became a dead letter.
    pub(crate) fn failed(
        &mut self,
        id: &str,
        error: &str,
        permanent: bool,
        retry: &RetryConfig,
        max_dead: usize,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let Some(e) = self.entries.get_mut(id) else {
            return Ok(false);
        };
        e.attempts += 1;
        e.last_error = Some(error.to_owned());
        if permanent || e.attempts >= retry.max_attempts {
            let letter = DeadLetter {
                entry: e.clone(),
                dead_at: now,
            };
            self.dead_journal.append([&letter], [])?;
            self.dead.insert(id.to_owned(), letter);
            if self.dead.len() > max_dead {
                let mut by_age: Vec<(OffsetDateTime, String)> = self
                    .dead
                    .values()
                    .map(|d| (d.dead_at, d.entry.id.clone()))
                    .collect();
                by_age.sort();
                for (_, old) in by_age.iter().take(self.dead.len() - max_dead) {
                    self.dead.remove(old);
                }
                self.dead_journal.compact(self.dead.values())?;
            }
            self.entries.remove(id);
            self.journal.append::<OutboxEntry>([], [id])?;
            return Ok(true);
        }
        e.next_attempt_at = now + backoff(retry, e.attempts, fastrand::f64());
        let e = e.clone();
        self.journal.append([&e], [])?;
        Ok(false)
    }

    pub(crate) fn pending_by_channel(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in self.entries.values() {
            *m.entry(e.channel.clone()).or_insert(0) += 1;
        }
        m
    }

    pub(crate) fn pending(&self) -> Vec<OutboxEntry> {
        self.entries.values().cloned().collect()
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut v: Vec<DeadLetter> = self.dead.values().cloned().collect();
        v.sort_by_key(|d| std::cmp::Reverse(d.dead_at));
        v
    }
}

/// Wait after the `attempts`-th failure: `initial × 2^(attempts-1)`, capped at
/// `max_backoff`, times a jitter factor in [0.5, 1.0) from `random` in [0, 1).
pub fn backoff(retry: &RetryConfig, attempts: u32, random: f64) -> Duration {
    let base = retry.initial_backoff.0.as_secs_f64()
        * 2f64.powi(attempts.saturating_sub(1).min(40) as i32);
    let capped = base.min(retry.max_backoff.0.as_secs_f64());
    Duration::seconds_f64(capped * (0.5 + random.clamp(0.0, 1.0) * 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(attempts: u32, random: f64, expected_secs: f64) {
        let got = backoff(&RetryConfig::default(), attempts, random).as_seconds_f64();
        assert!(
            (got - expected_secs).abs() < 1e-6,
            "attempts {attempts}: {got} != {expected_secs}"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        check(1, 1.0, 2.0);
        check(1, 0.0, 1.0);
        check(2, 1.0, 4.0);
        check(5, 1.0, 32.0);
        check(20, 1.0, 600.0);
        check(u32::MAX, 0.0, 300.0);
    }
}
