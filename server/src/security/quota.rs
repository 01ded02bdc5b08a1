//! Per-identity ingest quotas: how many streams one collector identity may hold open,
//! and a token bucket of events per second that slows a stream (by not reading it)
//! instead of dropping what it sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open streams and event buckets of every identity.
#[derive(Debug)]
pub struct Quotas {
    max_streams: usize,
    events_per_s: u64,
    burst: u64,
    state: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    streams: usize,
    /// Events that may be sent now; negative is debt a stream waits off.
    tokens: f64,
    refilled: Instant,
}

/// One open stream of an identity; closing it (dropping) frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    quotas: Arc<Quotas>,
    identity: String,
}

impl Quotas {
    /// `events_per_s` 0 turns the rate limit off.
    pub fn new(max_streams: usize, events_per_s: u64, burst: u64) -> Arc<Quotas> {
        Arc::new(Quotas {
            max_streams,
            events_per_s,
            burst: burst.max(1),
            state: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a stream slot of `identity`, or says how many it holds already.
    pub fn open_stream(self: &Arc<Self>, identity: &str) -> Result<StreamSlot, usize> {
        let mut state = self.lock();
        let entry = state.entry(identity.to_owned()).or_insert_with(|| Entry {
            streams: 0,
            tokens: self.burst as f64,
            refilled: Instant::now(),
        });
        if entry.streams >= self.max_streams {
            return Err(entry.streams);
        }
        entry.streams += 1;
        Ok(StreamSlot {
            quotas: self.clone(),
            identity: identity.to_owned(),
        })
    }

    /// Spends `events` of `identity`'s bucket; returns how long its stream should wait
    /// before reading more (zero when within the rate).
    pub fn spend(&self, identity: &str, events: u64, now: Instant) -> Duration {
        if self.events_per_s == 0 || events == 0 {
            return Duration::ZERO;
        }
        let rate = self.events_per_s as f64;
        let mut state = self.lock();
        let Some(entry) = state.get_mut(identity) else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
        entry.tokens = (entry.tokens + elapsed * rate).min(self.burst as f64);
        entry.refilled = now;
        entry.tokens -= events as f64;
        if entry.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-entry.tokens / rate)
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut state = self.quotas.lock();
        if let Some(entry) = state.get_mut(&self.identity) {
            entry.streams = entry.streams.saturating_sub(1);
            // Forget idle identities whose bucket is full again.
            let full = self.quotas.events_per_s == 0
                || entry.tokens
                    + entry.refilled.elapsed().as_secs_f64() * self.quotas.events_per_s as f64
                    >= self.quotas.burst as f64;
            if entry.streams == 0 && full {
                state.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spends each of `batches` at time offset (ms) and expects the waits (ms).
    fn check(rate: u64, burst: u64, batches: &[(u64, u64)], expected_ms: &[u64]) {
        let quotas = Quotas::new(4, rate, burst);
        let _slot = quotas.open_stream("c").expect("slot");
        let start = Instant::now();
        let got: Vec<u64> = batches
            .iter()
            .map(|&(at, n)| {
                let wait = quotas.spend("c", n, start + Duration::from_millis(at));
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
            })
            .collect();
        assert_eq!(got, expected_ms, "rate {rate} burst {burst} {batches:?}");
    }

    #[test]
    fn buckets() {
        check(0, 1, &[(0, 1_000_000)], &[0]);
        check(100, 100, &[(0, 100), (0, 50)], &[0, 500]);
        check(100, 100, &[(0, 100), (1000, 100)], &[0, 0]);
        check(1000, 10, &[(0, 2010)], &[2000]);
    }

    #[test]
    fn stream_slots() {
        let quotas = Quotas::new(2, 0, 1);
        let a = quotas.open_stream("a").expect("first");
        let _b = quotas.open_stream("a").expect("second");
        assert_eq!(quotas.open_stream("a").unwrap_err(), 2);
        let _other = quotas.open_stream("b").expect("other identity");
        drop(a);
        assert!(
            quotas.open_stream("a").is_ok(),
            "a closed stream frees its slot"
        );
    }
}
