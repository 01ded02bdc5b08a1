//! The source interface: what the pipeline needs of a source to batch what it read.
//!
//! A source offers one item at a time. The pipeline looks at it with [`Source::peek`] and
//! takes it with [`Source::take`] once it fits the batch being filled; an item peeked and not
//! taken stays first in line. Deferring an item is therefore not taking it, the one way the
//! pipeline puts anything back.

use std::collections::VecDeque;

use logward_proto::Event;
use prost::Message as _;

use crate::checkpoint::FileRange;

/// Bytes counted per event beside its encoded length, a margin for its framing in a batch.
const EVENT_OVERHEAD: usize = 8;

/// Where an offered item was read, which is what the checkpoint moves over once it is acked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Nowhere that can be read again (events the collector made itself, lines that were not
    /// journal entries): the event is journaled whole.
    Unplaced,
    /// Bytes of a log file: the event is re-read from them if its batch is resent.
    File {
        /// The bytes.
        range: FileRange,
        /// The range must not be merged with the next one.
        forced: bool,
    },
    /// A journald entry: the event is journaled whole and reading resumes after the cursor.
    Cursor(String),
}

/// One item a source offers the pipeline.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The event to ship; `None` when only the position moves (an entry the filters dropped).
    pub event: Option<Event>,
    /// Where it was read.
    pub position: Position,
}

impl Offer {
    /// An event with no position.
    pub fn unplaced(event: Event) -> Self {
        Self {
            event: Some(event),
            position: Position::Unplaced,
        }
    }

    /// The bytes the event counts for in a batch (0 without an event).
    pub fn size(&self) -> usize {
        self.event
            .as_ref()
            .map_or(0, |e| e.encoded_len() + EVENT_OVERHEAD)
    }
}

/// A source the pipeline batches from.
pub trait Source {
    /// The next item, left in place; the same one until it is taken.
    fn peek(&mut self) -> Option<&Offer>;
    /// Takes the item [`Self::peek`] shows (or the next one, without a peek).
    fn take(&mut self) -> Option<Offer>;
}

/// A queue of ready items, such as the events a source makes itself.
#[derive(Debug, Default)]
pub struct Queue {
    items: VecDeque<Offer>,
}

impl Queue {
    /// Adds an item at the back.
    pub fn push(&mut self, offer: Offer) {
        self.items.push_back(offer);
    }
}

impl Source for Queue {
    fn peek(&mut self) -> Option<&Offer> {
        self.items.front()
    }

    fn take(&mut self) -> Option<Offer> {
        self.items.pop_front()
    }
}
