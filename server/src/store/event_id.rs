//! The id of an event: (collector, batch sequence, index in the batch), written
//! `<collector>-<sequence>-<index>`. Collector ids may hold `-`; the last two parts
//! never do, so the text form parses back from the right.

use std::fmt;
use std::str::FromStr;

/// An event's identity, unique across the store (see ARCHITECTURE.md, "Delivery").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The collector's id (for authenticated collectors, keyed by identity).
    pub collector: String,
    /// The batch's sequence number.
    pub sequence: u64,
    /// The event's index in its batch.
    pub index: usize,
}

impl EventId {
    pub fn new(collector: &str, sequence: u64, index: usize) -> Self {
        EventId {
            collector: collector.to_owned(),
            sequence,
            index,
        }
    }

    /// A stable 64-bit hash of the text form (FNV-1a), used only to order ties.
    pub fn uid(&self) -> u64 {
        event_uid(&self.to_string())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.collector, self.sequence, self.index)
    }
}

/// The text is not `<collector>-<sequence>-<index>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an event id (<collector>-<sequence>-<index>)")]
pub struct BadEventId(pub String);

impl FromStr for EventId {
    type Err = BadEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEventId(s.to_owned());
        let mut parts = s.rsplitn(3, '-');
        let index = parts.next().ok_or_else(bad)?;
        let sequence = parts.next().ok_or_else(bad)?;
        let collector = parts.next().filter(|c| !c.is_empty()).ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(sequence) {
            return Err(bad());
        }
        Ok(EventId {
            collector: collector.to_owned(),
            sequence: sequence.parse().map_err(|_| bad())?,
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

/// A stable 64-bit hash of an event id's text (FNV-1a), used only to order ties.
pub fn event_uid(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<(&str, u64, usize)>) {
        let got = text.parse::<EventId>().ok();
        let want = expected.map(|(c, s, i)| EventId::new(c, s, i));
        assert_eq!(got, want, "{text:?}");
        if let Some(id) = got {
            assert_eq!(id.to_string(), text, "round trip of {text:?}");
        }
    }

    #[test]
    fn ids_parse_from_the_right() {
        check("c1-7-0", Some(("c1", 7, 0)));
        check(
            "0b6f3c1e-8d2a-4f00-9a6e-3a2b1c0d9e8f-12-999",
            Some(("0b6f3c1e-8d2a-4f00-9a6e-3a2b1c0d9e8f", 12, 999)),
        );
        check("embedded/abc-1-2", Some(("embedded/abc", 1, 2)));
        check("c1-7", None);
        check("-7-0", None);
        check("c1-x-0", None);
        check("c1-7-+1", None);
        check("c1-18446744073709551616-0", None);
        check("", None);
    }

    #[test]
    fn uid_is_the_hash_of_the_text() {
        let id = EventId::new("c1", 7, 0);
        assert_eq!(id.uid(), event_uid("c1-7-0"));
    }
}
