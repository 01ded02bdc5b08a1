//! The cases of the server's handshake: the server's high-water mark against what this
//! collector journaled and had acknowledged.
//!
//! - In step or behind the journal: the journaled batches are resent as they were (same
//!   sequences, same events), then reading resumes after them.
//! - Above anything this collector knows (the send journal was lost): the journal is
//!   dropped, numbering continues above the server's mark and reading restarts from the
//!   acknowledged offsets; duplicates are possible and said so.
//! - Behind what it acknowledged (it lost data or was replaced): said loudly; numbering
//!   keeps going upward.
//!
//! Only the first handshake of a run replays; later ones (reconnects) only keep the
//! numbering above the server's mark.

use logward_proto::Event;
use prost::Message as _;

use super::{Pipeline, source_options};
use crate::Error;
use crate::checkpoint::JournalRecord;
use crate::docker::DockerSource;
use crate::journald::JournaldSource;

impl Pipeline {
    pub(super) fn on_connected(&mut self, high_water: u64) -> Result<(), Error> {
        let known = self.next_sequence - 1;
        if high_water < self.state.acked_sequence {
            tracing::warn!(
                high_water,
                acked_sequence = self.state.acked_sequence,
                "server holds fewer batches than it acknowledged before: it lost data or was \
                 replaced; events acknowledged earlier may be missing there"
            );
        }
        if self.handshaken {
            if high_water > known {
                tracing::warn!(
                    high_water,
                    next_sequence = self.next_sequence,
                    "server holds sequences this collector never sent: is the state directory \
                     shared? numbering continues above them"
                );
                self.next_sequence = high_water + 1;
            }
            return Ok(());
        }
        self.handshaken = true;
        let replay = std::mem::take(&mut self.replay);
        if high_water > known {
            tracing::warn!(
                high_water,
                known_sequence = known,
                dropped_batches = replay.len(),
                "server holds batches this collector has no record of (send journal lost): \
                 re-reading from the acknowledged offsets, duplicates are possible"
            );
            self.next_sequence = high_water + 1;
            self.dir.compact(&[])?;
            self.start_journald(self.state.journald_cursor.clone());
            return Ok(());
        }
        // Journaled batches carry their journald entries whole: reading resumes after them.
        let cursor = replay
            .iter()
            .rev()
            .find_map(|r| r.journald_cursor.clone())
            .or_else(|| self.state.journald_cursor.clone());
        for record in replay {
            self.resend_recorded(record)?;
        }
        self.start_journald(cursor);
        Ok(())
    }

    /// Starts the journald source after `cursor` (after the handshake, once it is known
    /// which journaled batches are resent).
    fn start_journald(&mut self, cursor: Option<String>) {
        if self.config.no_journald || self.journald.is_some() {
            return;
        }
        tracing::info!(cursor = cursor.as_deref().unwrap_or("none"), start = ?self.config.journal_start, "journald source starting");
        self.journald = Some(Box::new(JournaldSource::start(
            &self.config,
            cursor,
            self.journald_wake.clone(),
        )));
    }

    /// Rebuilds a journaled batch from its ranges and hands it to the shipper again.
    fn resend_recorded(&mut self, record: JournalRecord) -> Result<(), Error> {
        let mut events = Vec::new();
        for hex in &record.synthetic {
            match decode_hex(hex).and_then(|bytes| Event::decode(bytes.as_slice()).ok()) {
                Some(event) => events.push(event),
                None => tracing::warn!(
                    sequence = record.sequence,
                    "unreadable collector event in the send journal, resending the batch without it"
                ),
            }
        }
        // Even with docker collection now switched off, what was read before is resent.
        let mut replay_only;
        let docker = match &mut self.docker {
            Some(docker) => Some(docker),
            None if record.ranges.is_empty() => None,
            None => {
                replay_only =
                    DockerSource::new(&self.config.docker_dir, source_options(&self.config)?);
                Some(&mut replay_only)
            }
        };
        if let Some(docker) = docker {
            for range in &record.ranges {
                match docker.replay(range) {
                    Ok(mut rebuilt) => events.append(&mut rebuilt),
                    Err(error) => tracing::warn!(
                        path = %range.path.display(), sequence = record.sequence, %error,
                        "cannot re-read a journaled range, resending the batch without it"
                    ),
                }
            }
        }
        for range in &record.ranges {
            let at = self.read_from.entry(range.key).or_default();
            *at = (*at).max(range.end);
        }
        tracing::info!(
            sequence = record.sequence,
            events = events.len(),
            "resending journaled batch"
        );
        self.hand_over(record, events)
    }
}

/// The bytes of a journaled event (the batch builder writes them as hex).
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
