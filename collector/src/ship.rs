//! The gRPC client: one bidirectional `Ingest/Stream`, resent batches after reconnects.
//!
//! The shipper owns every batch that was handed to it and not yet acknowledged (at most the
//! window, `max_in_flight`, plus whatever a restart replays from the journal). After each
//! (re)connect it performs the handshake, reports the server's high-water mark, resends its
//! unacknowledged batches in sequence order with their original sequence numbers, then
//! forwards new batches as they come. Acks are passed back to the pipeline, which alone
//! decides when offsets move.

use std::collections::VecDeque;
use std::hash::BuildHasher as _;
use std::time::Duration;

use logward_proto::{Batch, IngestClient};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// How long to wait for the server's answer to the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay; doubles per failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What the shipper tells the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipEvent {
    /// A stream is up and the handshake answered.
    Connected {
        /// Highest sequence of this collector the server holds.
        high_water: u64,
    },
    /// The server holds the batch durably.
    Acked {
        /// The batch.
        sequence: u64,
        /// How many of its events the server already had.
        duplicates: u32,
    },
}

/// Exponential backoff with jitter: each delay is drawn from `[d/2, d]`, `d` doubling from
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`].
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = BACKOFF_MIN
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(BACKOFF_MAX);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter = std::collections::hash_map::RandomState::new().hash_one(self.attempt);
        let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_nanos(jitter % half_nanos)
    }

    /// Back to the shortest delay after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Why a session ended.
enum SessionEnd {
    /// Asked to stop, or the pipeline went away.
    Stopped,
    /// The stream broke after the handshake.
    Disconnected(String),
}

/// Sends batches to the server and reports acks.
pub struct Shipper {
    server: String,
    collector_id: String,
    batches: mpsc::Receiver<Batch>,
    events: mpsc::Sender<ShipEvent>,
    stop: watch::Receiver<bool>,
    unacked: VecDeque<Batch>,
    capacity: usize,
}

impl Shipper {
    /// A shipper for `server`. `capacity` bounds the outgoing stream buffer and must be at
    /// least the number of batches the pipeline may have in flight.
    pub fn new(
        server: &str,
        collector_id: &str,
        batches: mpsc::Receiver<Batch>,
        events: mpsc::Sender<ShipEvent>,
        stop: watch::Receiver<bool>,
        capacity: usize,
    ) -> Self {
        Self {
            server: server.to_owned(),
            collector_id: collector_id.to_owned(),
            batches,
            events,
            stop,
            unacked: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Runs until stopped: connect, handshake, resend, stream; on failure back off and repeat.
    pub async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            if *self.stop.borrow() {
                return;
            }
            match self.session(&mut backoff).await {
                Ok(SessionEnd::Stopped) => return,
                Ok(SessionEnd::Disconnected(error)) => tracing::warn!(
                    server = %self.server, %error, unacked = self.unacked.len(),
                    "disconnected from server, reconnecting"
                ),
                Err(error) => tracing::warn!(
                    server = %self.server, %error, "server unreachable, retrying"
                ),
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => return,
            }
        }
    }

    async fn session(&mut self, backoff: &mut Backoff) -> Result<SessionEnd, String> {
        let endpoint = Endpoint::from_shared(self.server.clone())
            .map_err(|e| format!("bad server address: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
        let mut client = IngestClient::new(channel);

        let (tx, rx) = mpsc::channel(self.capacity + self.unacked.len() + 1);
        let handshake = Batch {
            collector_id: self.collector_id.clone(),
            sequence: 0,
            events: Vec::new(),
        };
        tx.send(handshake).await.map_err(|e| e.to_string())?;
        let response = client
            .stream(ReceiverStream::new(rx))
            .await
            .map_err(|s| status_text(&s))?;
        let mut acks = response.into_inner();
        let high_water = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acks.message()).await {
            Err(_) => return Err("no answer to the handshake".to_owned()),
            Ok(Err(status)) => return Err(status_text(&status)),
            Ok(Ok(None)) => return Err("stream closed during the handshake".to_owned()),
            Ok(Ok(Some(ack))) if ack.sequence == 0 => ack.high_water,
            Ok(Ok(Some(ack))) => {
                return Err(format!("handshake answered with sequence {}", ack.sequence));
            }
        };
        backoff.reset();
        tracing::info!(
            server = %self.server, high_water, resending = self.unacked.len(),
            "connected to server"
        );
        if self
            .events
            .send(ShipEvent::Connected { high_water })
            .await
            .is_err()
        {
            return Ok(SessionEnd::Stopped);
        }
        for batch in &self.unacked {
            if tx.send(batch.clone()).await.is_err() {
                return Ok(SessionEnd::Disconnected("request stream closed".to_owned()));
            }
        }
        loop {
            tokio::select! {
                _ = self.stop.changed() => return Ok(SessionEnd::Stopped),
                batch = self.batches.recv() => {
                    let Some(batch) = batch else { return Ok(SessionEnd::Stopped) };
                    self.unacked.push_back(batch.clone());
                    if tx.send(batch).await.is_err() {
                        return Ok(SessionEnd::Disconnected("request stream closed".to_owned()));
                    }
                }
                message = acks.message() => match message {
                    Ok(Some(ack)) => {
                        if ack.sequence == 0 {
                            continue;
                        }
                        let Some(index) = self.unacked.iter().position(|b| b.sequence == ack.sequence)
                        else {
                            tracing::debug!(sequence = ack.sequence, "ack for a batch not in flight");
                            continue;
                        };
                        self.unacked.remove(index);
                        let event = ShipEvent::Acked { sequence: ack.sequence, duplicates: ack.duplicates };
                        if self.events.send(event).await.is_err() {
                            return Ok(SessionEnd::Stopped);
                        }
                    }
                    Ok(None) => return Ok(SessionEnd::Disconnected("server closed the stream".to_owned())),
                    Err(status) => return Ok(SessionEnd::Disconnected(status_text(&status))),
                },
            }
        }
    }
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(
            delays[0] >= BACKOFF_MIN / 2 && delays[0] <= BACKOFF_MIN,
            "{delays:?}"
        );
        assert!(delays[3] >= Duration::from_millis(400), "{delays:?}");
        for delay in &delays {
            assert!(*delay <= BACKOFF_MAX, "{delays:?}");
        }
        assert!(delays[11] >= BACKOFF_MAX / 2, "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_MIN);
    }
}
