//! The gRPC ingest service: one bidirectional stream per collector, batches in, acks
//! out in batch order. Several batches of a stream are in the store at once, so one
//! commit covers a collector's whole window.
//!
//! Each stream is authenticated first (bearer token, client certificate, or open
//! mode), and every event it sends is stamped with that identity in
//! `logward.identity`. Sequence and dedup state is keyed by identity and collector id,
//! so one identity never touches another's acks. Limits: events per batch, streams per
//! identity, and an events-per-second bucket that slows a stream by not reading it.

pub mod extract;
mod normalize;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use logward_proto::{Ack, Batch, Ingest, Values};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::error::ErrorClass;
use crate::ingest::extract::Extractors;
use crate::limits::LimitsConfig;
use crate::metrics::Metrics;
use crate::security::incoming::PeerInfo;
use crate::security::ingest_auth::{IngestAuth, state_key};
use crate::security::quota::{Quotas, StreamSlot};
use crate::store::{Store, StoreError};

/// Most batches of one stream waiting for the store at once.
const MAX_PENDING_PER_STREAM: usize = 64;
/// Longest collector id accepted.
const MAX_COLLECTOR_ID: usize = 128;
/// The field every event carries with the authenticated identity of its sender.
pub const IDENTITY_FIELD: &str = "logward.identity";

/// The `logward.v1.Ingest` service. Clones share their quotas.
#[derive(Clone)]
pub struct IngestService {
    store: Store,
    metrics: Arc<Metrics>,
    /// Turns true when the server is stopping: streams stop taking batches.
    stopping: watch::Receiver<bool>,
    /// Fills structured fields before the store indexes and the rules see the events.
    extractors: Arc<Extractors>,
    /// Collector credentials.
    auth: Arc<IngestAuth>,
    /// Streams and event rates per identity.
    quotas: Arc<Quotas>,
    limits: LimitsConfig,
}

impl IngestService {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        stopping: watch::Receiver<bool>,
        extractors: Arc<Extractors>,
        auth: Arc<IngestAuth>,
        limits: &LimitsConfig,
    ) -> Self {
        IngestService {
            store,
            metrics,
            stopping,
            extractors,
            auth,
            quotas: Quotas::new(
                limits.max_streams_per_collector,
                limits.collector_events_per_s,
                limits.collector_burst_events,
            ),
            limits: limits.clone(),
        }
    }

    /// Authenticates a stream and takes a stream slot of its identity.
    fn admit<T>(&self, request: &Request<T>) -> Result<(String, StreamSlot), Status> {
        let peer = request.extensions().get::<PeerInfo>();
        let cert = peer.and_then(|p| p.cert_identity.as_deref());
        let authorization = match request.metadata().get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                self.metrics.auth_failed("grpc", "malformed_token");
                Status::unauthenticated("authorization metadata is not valid text")
            })?),
        };
        let identity = self.auth.authenticate(authorization, cert).map_err(|e| {
            self.metrics.auth_failed("grpc", e.reason());
            warn!(peer = ?peer.and_then(|p| p.remote), reason = e.reason(), error = %e, "collector refused");
            e.status()
        })?;
        let slot = self.quotas.open_stream(&identity).map_err(|open| {
            self.metrics.limit_hit("max_streams_per_collector");
            warn!(%identity, open, "collector refused: too many streams");
            Status::resource_exhausted(format!(
                "collector identity {identity:?} already has {open} ingest streams open; limits.max_streams_per_collector = {}",
                self.limits.max_streams_per_collector
            ))
        })?;
        Ok((identity, slot))
    }
}

type AckStream = Pin<Box<dyn futures::Stream<Item = Result<Ack, Status>> + Send>>;
type AckFuture = Pin<Box<dyn Future<Output = Result<Ack, Status>> + Send>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    type StreamStream = AckStream;

    async fn stream(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<AckStream>, Status> {
        let (identity, slot) = self.admit(&request)?;
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.remote)
            .or_else(|| request.remote_addr());
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(MAX_PENDING_PER_STREAM);
        let session = Session {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            stopping: self.stopping.clone(),
            extractors: self.extractors.clone(),
            collector_id: None,
            identity,
            quotas: self.quotas.clone(),
            _slot: slot,
            max_events: self.limits.max_events_per_batch,
            max_message_bytes: self.limits.grpc_max_message_bytes,
        };
        tokio::spawn(session.run(inbound, tx, peer));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Session {
    store: Store,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
    extractors: Arc<Extractors>,
    collector_id: Option<String>,
    /// The authenticated identity of the stream.
    identity: String,
    quotas: Arc<Quotas>,
    /// Held while the stream is open.
    _slot: StreamSlot,
    max_events: usize,
    max_message_bytes: usize,
}

impl Session {
    async fn run(
        mut self,
        mut inbound: Streaming<Batch>,
        tx: mpsc::Sender<Result<Ack, Status>>,
        peer: Option<std::net::SocketAddr>,
    ) {
        self.metrics.streams_open.inc();
        let mut pending: FuturesOrdered<AckFuture> = FuturesOrdered::new();
        let mut reading = true;
        let mut end: Option<Status> = None;
        // Set while the identity is over its event rate: reading waits until then.
        let mut paused_until: Option<tokio::time::Instant> = None;
        while reading || !pending.is_empty() {
            let resume = paused_until;
            tokio::select! {
                biased;
                Some(ack) = pending.next(), if !pending.is_empty() => match ack {
                    Ok(ack) => {
                        if tx.send(Ok(ack)).await.is_err() {
                            break; // the collector went away
                        }
                    }
                    Err(status) => {
                        end = Some(status);
                        break;
                    }
                },
                changed = self.stopping.changed(), if reading => {
                    if changed.is_err() || *self.stopping.borrow() {
                        reading = false;
                        end = Some(Status::unavailable("server is shutting down; reconnect later"));
                    }
                }
                () = sleep_until(resume), if reading && resume.is_some() => paused_until = None,
                message = inbound.message(), if reading && paused_until.is_none() && pending.len() < MAX_PENDING_PER_STREAM => {
                    match message {
                        Ok(Some(batch)) => {
                            let n = batch.events.len() as u64;
                            match self.accept(batch) {
                                Ok(fut) => pending.push_back(fut),
                                Err(status) => {
                                    // Batches taken before still get their acks first.
                                    end = Some(status);
                                    reading = false;
                                    continue;
                                }
                            }
                            let wait = self.quotas.spend(&self.identity, n, std::time::Instant::now());
                            if wait > Duration::ZERO {
                                self.metrics.limit_hit("collector_events_per_s");
                                debug!(identity = %self.identity, wait_ms = wait.as_millis() as u64, "collector over its event rate; pausing its stream");
                                paused_until = Some(tokio::time::Instant::now() + wait);
                            }
                        }
                        Ok(None) => reading = false,
                        Err(status) => {
                            // Acks of what was taken still go out, then the refusal.
                            reading = false;
                            match self.decode_limit(&status) {
                                Some(refusal) => end = Some(refusal),
                                None => debug!(%status, "collector stream ended with an error"),
                            }
                        }
                    }
                }
            }
        }
        let collector = self.collector_id.as_deref().unwrap_or("?");
        if let Some(status) = end {
            if status.code() != tonic::Code::Unavailable {
                warn!(collector, identity = %self.identity, peer = ?peer, %status, "collector stream refused");
            }
            let _ = tx.send(Err(status)).await;
        }
        self.metrics.streams_open.dec();
        info!(collector, identity = %self.identity, peer = ?peer, "collector stream closed");
    }

    /// The refusal to send for a message the decoder refused by size, if it was that.
    fn decode_limit(&self, status: &Status) -> Option<Status> {
        let too_large = match status.code() {
            tonic::Code::OutOfRange => status.message().contains("message length too large"),
            tonic::Code::ResourceExhausted => status.message().contains("size limit"),
            _ => false,
        };
        if !too_large {
            return None;
        }
        self.metrics.limit_hit("grpc_max_message_bytes");
        Some(Status::resource_exhausted(format!(
            "message larger than limits.grpc_max_message_bytes = {} bytes (after decompression); send smaller batches",
            self.max_message_bytes
        )))
    }

    /// Checks a batch and hands it to the store; the future yields its ack.
    fn accept(&mut self, batch: Batch) -> Result<AckFuture, Status> {
        let n = batch.events.len() as u64;
        if batch.events.len() > self.max_events {
            self.metrics.events_rejected.inc_by(n);
            self.metrics.limit_hit("max_events_per_batch");
            return Err(Status::invalid_argument(format!(
                "batch of {n} events exceeds limits.max_events_per_batch = {}",
                self.max_events
            )));
        }
        if let Err(message) = self.check(&batch) {
            self.metrics.events_rejected.inc_by(n);
            return Err(Status::invalid_argument(message));
        }
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let Batch {
            collector_id,
            sequence,
            mut events,
        } = batch;
        let key = state_key(&self.identity, &collector_id);
        let extractors = self.extractors.clone();
        if sequence == 0 {
            return Ok(Box::pin(async move {
                let high_water = store.high_water(key).await.map_err(|e| store_status(&e))?;
                Ok(Ack {
                    sequence: 0,
                    duplicates: 0,
                    high_water,
                })
            }));
        }
        metrics.batches_received.inc();
        metrics.events_received.inc_by(n);
        metrics
            .bytes_received
            .inc_by(events.iter().map(|e| e.message.len() as u64).sum());
        let identity = self.identity.clone();
        Ok(Box::pin(async move {
            let mut out_of_range = 0_u64;
            for event in &mut events {
                extractors.apply(event);
                out_of_range += u64::from(normalize::normalize(event));
                // The server's word, whatever the collector or an extractor put there.
                event.fields.insert(
                    IDENTITY_FIELD.to_owned(),
                    Values {
                        values: vec![identity.clone()],
                    },
                );
            }
            if out_of_range > 0 {
                metrics.events_out_of_range.inc_by(out_of_range);
                warn!(
                    identity = %identity,
                    sequence,
                    events = out_of_range,
                    "event timestamps outside 1970..2200; stored at their receive time with logward.timestamp_original"
                );
            }
            match store.append(key, sequence, events).await {
                Ok(info) => Ok(Ack {
                    sequence: info.sequence,
                    duplicates: info.duplicates,
                    high_water: info.high_water,
                }),
                Err(e) => {
                    metrics.events_rejected.inc_by(n);
                    Err(store_status(&e))
                }
            }
        }))
    }

    fn check(&mut self, batch: &Batch) -> Result<(), String> {
        let id = &batch.collector_id;
        if id.is_empty() || id.len() > MAX_COLLECTOR_ID {
            return Err(format!(
                "collector_id must be 1 to {MAX_COLLECTOR_ID} characters long"
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(format!(
                "collector_id {id:?} may hold only letters, digits and - _ . :"
            ));
        }
        match &self.collector_id {
            None => {
                info!(collector = %id, identity = %self.identity, "collector stream opened");
                self.collector_id = Some(id.clone());
            }
            Some(first) if first != id => {
                return Err(format!(
                    "collector_id changed within one stream, from {first:?} to {id:?}"
                ));
            }
            Some(_) => {}
        }
        if batch.sequence == 0 && !batch.events.is_empty() {
            return Err(
                "sequence 0 is the handshake and carries no events; number batches from 1".into(),
            );
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The gRPC status for a store failure. Nothing is acked in these cases, so the
/// collector keeps the batch and retries: every class but a full storage is answered
/// as `UNAVAILABLE`, which collectors retry at once.
fn store_status(e: &StoreError) -> Status {
    match (e.status(), e) {
        (ErrorClass::StorageFull, StoreError::Commit { message, .. }) => ErrorClass::StorageFull
            .grpc_status(format!(
                "server storage full, batch not stored; resend later: {message}"
            )),
        (_, StoreError::Closed) => {
            ErrorClass::Unavailable.grpc_status("server is shutting down; retry")
        }
        (_, other) => ErrorClass::Unavailable.grpc_status(format!("batch not stored: {other}")),
    }
}
