//! A gRPC ingest sink that acks every batch at once and counts what it got: the
//! "server that acks at once" against which the collector alone is measured.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use logward_proto::{Ack, Batch, Ingest, IngestServer};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// Counters of the sink.
#[derive(Debug, Default)]
pub struct SinkCounts {
    pub events: AtomicU64,
    pub message_bytes: AtomicU64,
    pub batches: AtomicU64,
}

struct Sink(Arc<SinkCounts>);

type AckStream = Pin<Box<dyn futures::Stream<Item = Result<Ack, Status>> + Send>>;

#[tonic::async_trait]
impl Ingest for Sink {
    type StreamStream = AckStream;

    async fn stream(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<AckStream>, Status> {
        let mut inbound = request.into_inner();
        let counts = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut high_water = 0;
            while let Some(Ok(batch)) = inbound.next().await {
                if batch.sequence > 0 {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    counts
                        .events
                        .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    let bytes: usize = batch.events.iter().map(|e| e.message.len()).sum();
                    counts
                        .message_bytes
                        .fetch_add(bytes as u64, Ordering::Relaxed);
                    high_water = high_water.max(batch.sequence);
                }
                let ack = Ack {
                    sequence: batch.sequence,
                    duplicates: 0,
                    high_water,
                };
                if tx.send(Ok(ack)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Starts the sink on 127.0.0.1:0; returns its URL and counters.
pub async fn start() -> std::io::Result<(String, Arc<SinkCounts>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counts = Arc::new(SinkCounts::default());
    let service = IngestServer::new(Sink(counts.clone())).max_decoding_message_size(64 << 20);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok((format!("http://{addr}"), counts))
}
