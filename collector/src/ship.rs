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
use std::sync::Arc;
use std::time::Duration;

use logward_proto::{Batch, IngestClient};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::config::{Compression, Config};
use crate::metrics::Metrics;
use crate::pipeline::ShipEvent;
use crate::tls;

/// How long to wait for the server's answer to the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay; doubles per failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// First delay after a refusal that needs an operator (auth, TLS, a batch over the server's
/// limits): retrying fast changes nothing and floods both logs.
const SLOW_BACKOFF_MIN: Duration = Duration::from_secs(5);
/// Longest delay after such a refusal.
const SLOW_BACKOFF_MAX: Duration = Duration::from_secs(120);
/// Shortest delay after the server throttled this collector.
const THROTTLED_MIN: Duration = Duration::from_secs(1);

/// Exponential backoff with jitter: each delay is drawn from `[d/2, d]`, `d` doubling from
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`].
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    min: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BACKOFF_MIN, BACKOFF_MAX)
    }
}

impl Backoff {
    /// Delays from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            attempt: 0,
            min,
            max,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
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
    Disconnected(Failure),
}

/// What went wrong with a connection or stream.
enum Failure {
    /// The connection settings could not be built (TLS files).
    Setup(tls::TlsError),
    /// Connecting or streaming failed below gRPC (network, TLS); an error chain.
    Transport(String),
    /// The server answered with an error status.
    Status(tonic::Status),
}

/// What a status from the server means for the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// UNAUTHENTICATED or PERMISSION_DENIED: the token or certificate is wrong.
    Auth,
    /// A batch is over the server's size or event limits; resending it fails the same way.
    TooLarge,
    /// The server throttles this collector (rate or stream limits); it passes.
    Throttled,
    /// The server does not accept the compression used.
    Compression,
    /// Anything else (unavailable, internal, …): retried like a network error.
    Other,
}

/// Classifies a status from the server.
pub fn classify(code: tonic::Code, message: &str) -> Refusal {
    use tonic::Code;
    let lower = message.to_ascii_lowercase();
    let too_large = [
        "max_events_per_batch",
        "grpc_max_message_bytes",
        "too large",
        "too many events",
    ]
    .iter()
    .any(|n| lower.contains(n));
    match code {
        Code::Unauthenticated | Code::PermissionDenied => Refusal::Auth,
        Code::ResourceExhausted | Code::InvalidArgument | Code::OutOfRange if too_large => {
            Refusal::TooLarge
        }
        Code::ResourceExhausted => Refusal::Throttled,
        Code::Unimplemented if lower.contains("compress") => Refusal::Compression,
        _ => Refusal::Other,
    }
}

/// Sends batches to the server and reports acks.
pub struct Shipper {
    config: Config,
    collector_id: String,
    batches: mpsc::Receiver<Batch>,
    events: mpsc::Sender<ShipEvent>,
    stop: watch::Receiver<bool>,
    unacked: VecDeque<Batch>,
    capacity: usize,
    compression: Compression,
    metrics: Arc<Metrics>,
}

impl Shipper {
    /// A shipper for `config.server` with its TLS, token and compression settings.
    /// `capacity` bounds the outgoing stream buffer and must be at least the number of
    /// batches the pipeline may have in flight.
    pub fn new(
        config: &Config,
        collector_id: &str,
        batches: mpsc::Receiver<Batch>,
        events: mpsc::Sender<ShipEvent>,
        stop: watch::Receiver<bool>,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            config: config.clone(),
            collector_id: collector_id.to_owned(),
            batches,
            events,
            stop,
            unacked: VecDeque::new(),
            capacity: capacity.max(1),
            compression: config.compression,
            metrics,
        }
    }

    /// Runs until stopped: connect, handshake, resend, stream; on failure back off and repeat.
    pub async fn run(mut self) {
        let mut backoff = Backoff::default();
        let mut slow = Backoff::new(SLOW_BACKOFF_MIN, SLOW_BACKOFF_MAX);
        loop {
            if *self.stop.borrow() {
                return;
            }
            let (connected, failure) = match self.session(&mut backoff, &mut slow).await {
                Ok(SessionEnd::Stopped) => return,
                Ok(SessionEnd::Disconnected(failure)) => (true, failure),
                Err(failure) => (false, failure),
            };
            let delay = self.on_failure(connected, failure, &mut backoff, &mut slow);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => return,
            }
        }
    }

    /// Logs and counts a failure; returns how long to wait before the next attempt.
    fn on_failure(
        &mut self,
        connected: bool,
        failure: Failure,
        backoff: &mut Backoff,
        slow: &mut Backoff,
    ) -> Duration {
        let server = &self.config.server;
        let unacked = self.unacked.len();
        match failure {
            Failure::Setup(error) => {
                self.metrics.tls_failed();
                tracing::error!(%server, error = %error_chain(&error), "cannot set up TLS to the server, retrying");
                slow.next_delay()
            }
            Failure::Transport(error) => match tls::explain(&error, &self.config) {
                Some(error) => {
                    self.metrics.tls_failed();
                    tracing::error!(%server, %error, unacked, "TLS to the server failed, retrying");
                    slow.next_delay()
                }
                None if connected => {
                    tracing::warn!(%server, %error, unacked, "disconnected from server, reconnecting");
                    backoff.next_delay()
                }
                None => {
                    tracing::warn!(%server, %error, "server unreachable, retrying");
                    backoff.next_delay()
                }
            },
            Failure::Status(status) => {
                let code = status.code();
                let message = status.message();
                match classify(code, message) {
                    Refusal::Auth => {
                        self.metrics.auth_failed();
                        tracing::error!(
                            %server, ?code, %message, unacked,
                            hint = "check token_file / LOGWARD_TOKEN, and ca_file / client_cert for mTLS",
                            "the server refused this collector, nothing is delivered until it is fixed"
                        );
                        slow.next_delay()
                    }
                    Refusal::TooLarge => {
                        self.metrics.batch_rejected("too_large");
                        tracing::error!(
                            %server, ?code, %message, unacked,
                            batch_max_events = self.config.batch_max_events,
                            batch_max_bytes = self.config.batch_max_bytes,
                            hint = "lower batch_max_events / batch_max_bytes below the server's [limits], or raise those",
                            "the server rejected a batch over its limits, delivery is blocked until it accepts it"
                        );
                        slow.next_delay()
                    }
                    Refusal::Throttled => {
                        self.metrics.batch_rejected("throttled");
                        tracing::warn!(%server, ?code, %message, unacked, "the server throttles this collector, retrying");
                        backoff.next_delay().max(THROTTLED_MIN)
                    }
                    Refusal::Compression if self.compression != Compression::None => {
                        tracing::warn!(
                            %server, compression = ?self.compression, %message,
                            "the server does not accept this compression, sending uncompressed from now on; set compression = \"none\" to silence this"
                        );
                        self.compression = Compression::None;
                        BACKOFF_MIN
                    }
                    Refusal::Compression | Refusal::Other => {
                        let error = status_text(&status);
                        // A TLS alert after the handshake (e.g. a required client
                        // certificate under TLS 1.3) surfaces as a status.
                        if let Some(error) = tls::explain(&error, &self.config) {
                            self.metrics.tls_failed();
                            tracing::error!(%server, %error, unacked, "TLS to the server failed, retrying");
                            return slow.next_delay();
                        }
                        if connected {
                            tracing::warn!(%server, %error, unacked, "disconnected from server, reconnecting");
                        } else {
                            tracing::warn!(%server, %error, "server unreachable, retrying");
                        }
                        backoff.next_delay()
                    }
                }
            }
        }
    }

    /// A channel to the server: TLS files are read now, so rotated ones are picked up.
    async fn connect(&self) -> Result<Channel, Failure> {
        let mut endpoint = Endpoint::from_shared(self.config.server.clone())
            .map_err(|e| Failure::Transport(format!("bad server address: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if self.config.uses_tls() {
            let tls = tls::client_config(&self.config).map_err(Failure::Setup)?;
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Failure::Transport(format!("TLS settings: {}", error_chain(&e))))?;
        }
        endpoint
            .connect()
            .await
            .map_err(|e| Failure::Transport(error_chain(&e)))
    }

    async fn session(
        &mut self,
        backoff: &mut Backoff,
        slow: &mut Backoff,
    ) -> Result<SessionEnd, Failure> {
        let channel = self.connect().await?;
        let mut client = IngestClient::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        if let Some(encoding) = self.compression.encoding() {
            client = client.send_compressed(encoding);
        }

        let (tx, rx) = mpsc::channel(self.capacity + self.unacked.len() + 1);
        let handshake = Batch {
            collector_id: self.collector_id.clone(),
            sequence: 0,
            events: Vec::new(),
        };
        tx.send(handshake)
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.config.token {
            // Checked by `Config::validate` (printable ASCII); sensitive: never in Debug.
            let mut value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                Failure::Transport("the token is not a valid header value".to_owned())
            })?;
            value.set_sensitive(true);
            request.metadata_mut().insert("authorization", value);
        }
        let response = client.stream(request).await.map_err(Failure::Status)?;
        let mut acks = response.into_inner();
        let high_water = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acks.message()).await {
            Err(_) => return Err(Failure::Transport("no answer to the handshake".to_owned())),
            Ok(Err(status)) => return Err(Failure::Status(status)),
            Ok(Ok(None)) => {
                return Err(Failure::Transport(
                    "stream closed during the handshake".to_owned(),
                ));
            }
            Ok(Ok(Some(ack))) if ack.sequence == 0 => ack.high_water,
            Ok(Ok(Some(ack))) => {
                return Err(Failure::Transport(format!(
                    "handshake answered with sequence {}",
                    ack.sequence
                )));
            }
        };
        backoff.reset();
        slow.reset();
        tracing::info!(
            server = %self.config.server, high_water, resending = self.unacked.len(),
            tls = self.config.uses_tls(),
            token = self.config.token.is_some(), compression = ?self.compression,
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
        let closed =
            || SessionEnd::Disconnected(Failure::Transport("request stream closed".to_owned()));
        for batch in &self.unacked {
            if tx.send(batch.clone()).await.is_err() {
                return Ok(closed());
            }
        }
        loop {
            tokio::select! {
                _ = self.stop.changed() => return Ok(SessionEnd::Stopped),
                batch = self.batches.recv() => {
                    let Some(batch) = batch else { return Ok(SessionEnd::Stopped) };
                    self.unacked.push_back(batch.clone());
                    if tx.send(batch).await.is_err() {
                        return Ok(closed());
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
                    Ok(None) => {
                        return Ok(SessionEnd::Disconnected(Failure::Transport(
                            "server closed the stream".to_owned(),
                        )));
                    }
                    Err(status) => return Ok(SessionEnd::Disconnected(Failure::Status(status))),
                },
            }
        }
    }
}

/// `Code: message`, then the cause the client attached (e.g. the TLS error under a
/// `transport error`).
fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        let cause = error_chain(source);
        if cause.starts_with(status.message()) {
            text = format!("{:?}: {cause}", status.code());
        } else if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
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
        let mut slow = Backoff::new(SLOW_BACKOFF_MIN, SLOW_BACKOFF_MAX);
        assert!(slow.next_delay() >= SLOW_BACKOFF_MIN / 2);
        let slow_delays: Vec<Duration> = (0..12).map(|_| slow.next_delay()).collect();
        assert!(
            slow_delays.iter().all(|d| *d <= SLOW_BACKOFF_MAX),
            "{slow_delays:?}"
        );
        assert!(slow_delays[11] > BACKOFF_MAX, "{slow_delays:?}");
    }

    fn check(code: tonic::Code, message: &str, expected: Refusal) {
        assert_eq!(classify(code, message), expected, "{code:?} {message:?}");
    }

    #[test]
    fn statuses_are_classified() {
        use tonic::Code;
        check(
            Code::Unauthenticated,
            "unknown collector token",
            Refusal::Auth,
        );
        check(Code::PermissionDenied, "identity a is not b", Refusal::Auth);
        check(
            Code::InvalidArgument,
            "batch has 20000 events, over [limits] max_events_per_batch = 10000",
            Refusal::TooLarge,
        );
        check(
            Code::ResourceExhausted,
            "message over [limits] grpc_max_message_bytes = 16777216",
            Refusal::TooLarge,
        );
        check(
            Code::OutOfRange,
            "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
            Refusal::TooLarge,
        );
        check(
            Code::ResourceExhausted,
            "over [limits] collector_events_per_s = 1000",
            Refusal::Throttled,
        );
        check(
            Code::Unimplemented,
            "Content is compressed with `zstd` which isn't supported",
            Refusal::Compression,
        );
        check(Code::Unimplemented, "unknown service", Refusal::Other);
        check(Code::Unavailable, "too large", Refusal::Other);
    }
}
