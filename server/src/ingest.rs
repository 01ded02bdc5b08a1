//! The gRPC ingest service: one bidirectional stream per collector, batches in, acks
//! out in batch order. Several batches of a stream are in the store at once, so one
//! commit covers a collector's whole window.

use std::pin::Pin;
use std::sync::Arc;

use futures::stream::{FuturesOrdered, StreamExt};
use logward_proto::{Ack, Batch, Ingest};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::error::store_status;
use crate::extract::Extractors;
use crate::metrics::Metrics;
use crate::store::Store;

/// Most batches of one stream waiting for the store at once.
const MAX_PENDING_PER_STREAM: usize = 64;
/// Longest collector id accepted.
const MAX_COLLECTOR_ID: usize = 128;

/// The `logward.v1.Ingest` service.
pub struct IngestService {
    store: Store,
    metrics: Arc<Metrics>,
    /// Turns true when the server is stopping: streams stop taking batches.
    stopping: watch::Receiver<bool>,
    /// Fills structured fields before the store indexes and the rules see the events.
    extractors: Arc<Extractors>,
}

impl IngestService {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        stopping: watch::Receiver<bool>,
        extractors: Arc<Extractors>,
    ) -> Self {
        IngestService {
            store,
            metrics,
            stopping,
            extractors,
        }
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
        let peer = request.remote_addr();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(MAX_PENDING_PER_STREAM);
        let session = Session {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            stopping: self.stopping.clone(),
            extractors: self.extractors.clone(),
            collector_id: None,
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
        while reading || !pending.is_empty() {
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
                message = inbound.message(), if reading && pending.len() < MAX_PENDING_PER_STREAM => {
                    match message {
                        Ok(Some(batch)) => match self.accept(batch) {
                            Ok(fut) => pending.push_back(fut),
                            Err(status) => {
                                end = Some(status);
                                break;
                            }
                        },
                        Ok(None) => reading = false,
                        Err(status) => {
                            debug!(%status, "collector stream ended with an error");
                            reading = false;
                        }
                    }
                }
            }
        }
        if let Some(status) = end {
            if status.code() != tonic::Code::Unavailable {
                warn!(collector = self.collector_id.as_deref().unwrap_or("?"), peer = ?peer, %status, "collector stream refused");
            }
            let _ = tx.send(Err(status)).await;
        }
        self.metrics.streams_open.dec();
        info!(collector = self.collector_id.as_deref().unwrap_or("?"), peer = ?peer, "collector stream closed");
    }

    /// Checks a batch and hands it to the store; the future yields its ack.
    fn accept(&mut self, batch: Batch) -> Result<AckFuture, Status> {
        let n = batch.events.len() as u64;
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
        let extractors = self.extractors.clone();
        if sequence == 0 {
            return Ok(Box::pin(async move {
                let high_water = store
                    .high_water(collector_id)
                    .await
                    .map_err(|e| store_status(&e))?;
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
        Ok(Box::pin(async move {
            for event in &mut events {
                extractors.apply(event);
            }
            match store.append(collector_id, sequence, events).await {
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
                info!(collector = %id, "collector stream opened");
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
