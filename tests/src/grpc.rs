//! A gRPC load client for the end-to-end tests: speaks `logward.v1` to the real server
//! like a collector does (handshake, numbered batches, a window of batches in flight,
//! resend after a reconnect with the same events), and records what was acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use logward_proto::{Batch, Container, Event, IngestClient, Source, StreamKind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Nanoseconds in a day.
pub const DAY_NANOS: i64 = 86_400 * 1_000_000_000;

/// The events of batch `sequence`, always the same for the same arguments, so a resend
/// carries exactly what the first send did.
pub fn batch_events(sequence: u64, per_batch: usize, base_nanos: i64, days: i64) -> Vec<Event> {
    (0..per_batch)
        .map(|i| {
            let seq = i64::try_from(sequence).unwrap_or(0);
            Event {
                timestamp_nanos: base_nanos
                    + (seq % days.max(1)) * DAY_NANOS
                    + seq * 1_000
                    + i as i64,
                host: format!("host{}", sequence % 3),
                source: Source::Docker as i32,
                message: format!("load seq {sequence} idx {i}").into_bytes().into(),
                stream: StreamKind::Stdout as i32,
                container: Some(Container {
                    name: format!("app{}", (sequence as usize + i) % 4),
                    ..Default::default()
                }),
                fields: Default::default(),
            }
        })
        .collect()
}

/// How a test client reaches the server: TLS trust, client certificate, token.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// PEM CA that verifies the server (TLS on when set; the URL must be https).
    pub ca_pem: Option<String>,
    /// Client certificate and key, PEM (mTLS).
    pub client: Option<(String, String)>,
    /// Name to verify the server certificate as; default `localhost`.
    pub server_name: Option<String>,
    /// Sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Compress batches with this encoding.
    pub compression: Option<tonic::codec::CompressionEncoding>,
}

impl Connect {
    /// A TLS client trusting `ca_pem` with `token`.
    pub fn tls(ca_pem: &str, token: Option<&str>) -> Connect {
        Connect {
            ca_pem: Some(ca_pem.to_owned()),
            token: token.map(str::to_owned),
            ..Connect::default()
        }
    }
}

/// A connected channel to `url` (eager: TLS problems show here).
pub async fn channel(url: &str, opts: &Connect) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(url.to_owned())?;
    if let Some(ca) = &opts.ca_pem {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(
                opts.server_name
                    .clone()
                    .unwrap_or_else(|| "localhost".into()),
            );
        if let Some((cert, key)) = &opts.client {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint.connect().await?)
}

/// The bearer metadata value of a token.
fn bearer(token: &str) -> anyhow::Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    Ok(format!("Bearer {token}").parse()?)
}

/// The gRPC status inside an error of this module, if the server answered one.
pub fn status_of(error: &anyhow::Error) -> Option<&tonic::Status> {
    error.downcast_ref::<tonic::Status>()
}

/// The code and message a connect or send ended with; panics unless it was a refusal
/// by the server.
pub fn refusal<T>(result: anyhow::Result<T>) -> (tonic::Code, String) {
    match result {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => match status_of(&e) {
            Some(s) => (s.code(), s.message().to_owned()),
            None => panic!("expected a gRPC status, got {e:#}"),
        },
    }
}

/// A batch of `events` from `collector_id`.
pub fn batch(collector_id: &str, sequence: u64, events: Vec<Event>) -> Batch {
    Batch {
        collector_id: collector_id.to_owned(),
        sequence,
        events,
    }
}

/// One collector's connection.
pub struct LoadClient {
    pub collector_id: String,
    tx: mpsc::Sender<Batch>,
    acks: tonic::Streaming<logward_proto::Ack>,
}

impl LoadClient {
    /// Connects and handshakes; returns the client and the server's high-water mark.
    pub async fn connect(url: &str, collector_id: &str) -> anyhow::Result<(LoadClient, u64)> {
        Self::connect_with(url, collector_id, &Connect::default()).await
    }

    /// Like [`LoadClient::connect`], with TLS, a client certificate or a token.
    pub async fn connect_with(
        url: &str,
        collector_id: &str,
        opts: &Connect,
    ) -> anyhow::Result<(LoadClient, u64)> {
        let mut client = IngestClient::new(channel(url, opts).await?);
        if let Some(encoding) = opts.compression {
            client = client.send_compressed(encoding);
        }
        let (tx, rx) = mpsc::channel(64);
        tx.send(Batch {
            collector_id: collector_id.to_owned(),
            sequence: 0,
            events: Vec::new(),
        })
        .await?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &opts.token {
            request
                .metadata_mut()
                .insert("authorization", bearer(token)?);
        }
        let mut acks = client.stream(request).await?.into_inner();
        let first = acks
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream closed before the handshake ack"))?;
        Ok((
            LoadClient {
                collector_id: collector_id.to_owned(),
                tx,
                acks,
            },
            first.high_water,
        ))
    }

    /// Sends batches `first..=last` made by `make`, at most `window` unacked at once.
    /// Every ack raises `acked` (acks come in order). Ends at the last ack or the first
    /// error (for example the server was killed).
    pub async fn send_range(
        &mut self,
        first: u64,
        last: u64,
        window: u64,
        make: impl Fn(u64) -> Vec<Event>,
        acked: &Arc<AtomicU64>,
    ) -> anyhow::Result<()> {
        let mut next = first;
        let mut waiting = 0_u64;
        while next <= last || waiting > 0 {
            if next <= last && waiting < window {
                self.tx
                    .send(Batch {
                        collector_id: self.collector_id.clone(),
                        sequence: next,
                        events: make(next),
                    })
                    .await?;
                next += 1;
                waiting += 1;
                continue;
            }
            let ack = self
                .acks
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream closed"))?;
            acked.fetch_max(ack.sequence, Ordering::SeqCst);
            waiting -= 1;
        }
        Ok(())
    }

    /// Sends one batch as it is and waits for its ack (or the stream's error).
    pub async fn send(&mut self, batch: Batch) -> anyhow::Result<logward_proto::Ack> {
        self.tx.send(batch).await?;
        self.acks
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream closed"))
    }
}
