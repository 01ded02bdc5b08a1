//! Batch building: the batch being filled, what goes into it from the sources and in which
//! order, and when it is cut.
//!
//! Each round of [`Pipeline::fill`] first takes the events the collector made itself, then
//! one item of each source in turn, so no source starves another. An item is looked at with
//! [`Source::peek`] and taken with [`Source::take`] once it fits; one that does not fit
//! while the window is full stays in its source, first in line, until an ack frees room.
//! A batch is cut when it reaches `batch_max_events` or `batch_max_bytes` (never splitting
//! an event: a batch holds at least one), or once it lingered `batch_linger_ms`.

use std::time::{Duration, Instant};

use logward_proto::{Batch, Event};
use prost::Message as _;

use super::{InFlight, Pipeline};
use crate::Error;
use crate::checkpoint::{FileRange, JournalRecord};
use crate::source::{Offer, Position, Source};

/// Events of the batch being filled and the ranges they came from.
#[derive(Default)]
pub(super) struct Builder {
    /// Events journaled whole (made by the collector, or read from journald); they come
    /// first in the batch.
    synthetic: Vec<Event>,
    /// Events read from files, re-read from their ranges if the batch is resent.
    events: Vec<Event>,
    ranges: Vec<FileRange>,
    last_forced: bool,
    /// The journald cursor reached by the events (and filtered entries) taken so far.
    pub(super) journald_cursor: Option<String>,
    bytes: usize,
    first_at: Option<Instant>,
}

/// The sources a round of [`Pipeline::fill`] visits.
#[derive(Debug, Clone, Copy)]
enum Lane {
    /// Events the Docker source made itself (posture, gap): taken before anything else.
    Made,
    /// The journald source.
    Journald,
    /// The Docker logs.
    Docker,
}

/// What offering one source's next item to the batch did.
enum Fed {
    /// The item is in the batch.
    Took,
    /// The source had nothing.
    Empty,
    /// The item did not fit and the window is full: it stays in the source.
    Deferred,
}

impl Pipeline {
    pub(super) fn window_full(&self) -> bool {
        self.in_flight.len() >= self.config.max_in_flight
    }

    fn builder_full(&self) -> bool {
        self.builder.events.len() + self.builder.synthetic.len() >= self.config.batch_max_events
            || self.builder.bytes >= self.config.batch_max_bytes
    }

    /// Reads events into batches until the sources are drained or the window is full.
    pub fn fill(&mut self) -> Result<(), Error> {
        if !self.handshaken {
            return Ok(());
        }
        loop {
            if self.builder_full() {
                if self.window_full() {
                    return Ok(());
                }
                self.cut()?;
            }
            match self.feed(Lane::Made)? {
                Fed::Took => continue,
                Fed::Deferred => return Ok(()),
                Fed::Empty => {}
            }
            let mut took = false;
            for lane in [Lane::Journald, Lane::Docker] {
                match self.feed(lane)? {
                    Fed::Took => took = true,
                    Fed::Deferred => return Ok(()),
                    Fed::Empty => {}
                }
            }
            if !took {
                return Ok(());
            }
        }
    }

    fn source(&mut self, lane: Lane) -> Option<&mut dyn Source> {
        match lane {
            Lane::Made => self.docker.as_mut().map(|d| d.made() as &mut dyn Source),
            Lane::Journald => self.journald.as_deref_mut().map(|j| j as &mut dyn Source),
            Lane::Docker => self.docker.as_mut().map(|d| d as &mut dyn Source),
        }
    }

    /// Offers the next item of a source to the batch being filled: takes it, cutting the
    /// batch first if it does not fit, or leaves it in the source if the window is full.
    fn feed(&mut self, lane: Lane) -> Result<Fed, Error> {
        let Some(offer) = self.source(lane).and_then(Source::peek) else {
            return Ok(Fed::Empty);
        };
        let size = offer.size();
        if let Position::File { range, .. } = &offer.position {
            // Read positions move at once, so a file found again (renamed under a scan)
            // resumes where reading is, not at its acked offset.
            let (key, end) = (range.key, range.end);
            let at = self.read_from.entry(key).or_default();
            *at = (*at).max(end);
        }
        // An entry the filters dropped only moves the cursor: it always fits.
        if size > 0
            && !self.builder.is_empty()
            && self.builder.bytes + size > self.config.batch_max_bytes
        {
            if self.window_full() {
                return Ok(Fed::Deferred);
            }
            self.cut()?;
        }
        let Some(offer) = self.source(lane).and_then(Source::take) else {
            return Ok(Fed::Empty);
        };
        self.builder.push(offer, size);
        Ok(Fed::Took)
    }

    /// When the batch being filled must be cut at the latest.
    pub fn linger_deadline(&self) -> Option<Instant> {
        let first = self.builder.first_at?;
        if self.window_full() {
            return None;
        }
        Some(first + Duration::from_millis(self.config.batch_linger_ms))
    }

    /// Cuts the batch being filled if it has lingered long enough.
    pub fn on_linger(&mut self) -> Result<(), Error> {
        if self.linger_deadline().is_some_and(|d| d <= Instant::now()) {
            self.cut()?;
        }
        Ok(())
    }

    /// Cuts the batch being filled, whatever its size (if the window has room).
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.builder.is_empty() && !self.window_full() {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), Error> {
        let builder = std::mem::take(&mut self.builder);
        if builder.is_empty() {
            self.builder.journald_cursor = builder.journald_cursor;
            return Ok(());
        }
        let record = JournalRecord {
            sequence: self.next_sequence,
            journald_cursor: builder.journald_cursor,
            ranges: builder.ranges,
            synthetic: builder
                .synthetic
                .iter()
                .map(|e| encode_hex(&e.encode_to_vec()))
                .collect(),
        };
        self.next_sequence += 1;
        self.dir.append(&record)?;
        let mut events = builder.synthetic;
        events.extend(builder.events);
        self.hand_over(record, events)
    }

    /// Records a batch as in flight and gives it to the shipper.
    pub(super) fn hand_over(
        &mut self,
        record: JournalRecord,
        events: Vec<Event>,
    ) -> Result<(), Error> {
        let batch = Batch {
            collector_id: self.state.collector_id.clone(),
            sequence: record.sequence,
            events,
        };
        self.in_flight.insert(
            record.sequence,
            InFlight {
                record,
                acked: false,
            },
        );
        let Some(to_shipper) = &self.to_shipper else {
            return Err(Error::Internal("no shipper attached".to_owned()));
        };
        to_shipper
            .try_send(batch)
            .map_err(|e| Error::Internal(format!("cannot hand a batch to the shipper: {e}")))
    }
}

impl Builder {
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.synthetic.is_empty()
    }

    /// Adds an item that counts `size` bytes: a file's event with its range (merged with
    /// the range before when they touch), any other event whole, a cursor as the place
    /// reached.
    fn push(&mut self, offer: Offer, size: usize) {
        let Offer { event, position } = offer;
        match position {
            Position::File { range, forced } => {
                match self.ranges.last_mut() {
                    Some(last)
                        if last.key == range.key
                            && last.end == range.start
                            && !self.last_forced =>
                    {
                        last.end = range.end;
                    }
                    _ => self.ranges.push(range),
                }
                self.last_forced = forced;
                self.events.extend(event);
            }
            Position::Cursor(cursor) => {
                self.synthetic.extend(event);
                self.journald_cursor = Some(cursor);
            }
            Position::Unplaced => self.synthetic.extend(event),
        }
        if size > 0 {
            self.bytes += size;
            self.first_at.get_or_insert_with(Instant::now);
        }
    }
}

/// A journaled event, as text (the handshake decodes it to resend the batch).
fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
