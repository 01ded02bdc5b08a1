//! The collector's transport security against a real in-process gRPC server over real TLS,
//! with certificates made at test time: a custom CA, the bearer token, mutual TLS, and the
//! readable failures of a wrong CA, a refused token and a batch over the server's limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use logward_collector::Config;
use logward_proto::{Ack, Batch, Ingest, IngestServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Code, Request, Response, Status, Streaming};

/// A CA and the server and client certificates it signed, as PEM files in a directory.
struct Pki {
    ca: PathBuf,
    server_cert: String,
    server_key: String,
    client_cert: PathBuf,
    client_key: PathBuf,
    client_der: Vec<u8>,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn pki(dir: &Path, tag: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("logward test CA {tag}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: &[&str]| {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert, key)
    };
    let (server, server_key) = leaf(&["logward.test", "127.0.0.1"]);
    let (client, client_key) = leaf(&["collector-a.test"]);
    Pki {
        ca: write(dir, &format!("ca-{tag}.pem"), &ca.pem()),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: write(dir, &format!("client-{tag}.pem"), &client.pem()),
        client_key: write(
            dir,
            &format!("client-{tag}.key"),
            &client_key.serialize_pem(),
        ),
        client_der: client.der().to_vec(),
    }
}

/// What the server double saw.
#[derive(Default)]
struct Seen {
    /// `authorization` of every stream.
    auth: Vec<Option<String>>,
    /// `grpc-encoding` of every stream.
    encodings: Vec<Option<String>>,
    /// The client's first certificate on every stream.
    peer_certs: Vec<Option<Vec<u8>>>,
    /// Messages of stored events.
    messages: Vec<String>,
    /// Highest stored sequence.
    high_water: u64,
}

#[derive(Clone, Default)]
struct Double {
    seen: Arc<Mutex<Seen>>,
    /// Refuse every stream with this status.
    refuse: Option<(Code, &'static str)>,
    /// End the stream when a batch has more events than this.
    max_events: Option<usize>,
}

impl Double {
    fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().unwrap())
    }
}

#[tonic::async_trait]
impl Ingest for Double {
    type StreamStream = ReceiverStream<Result<Ack, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<Batch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let header = |name| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (auth, encoding) = (header("authorization"), header("grpc-encoding"));
        let peer = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.to_vec()));
        self.with(|s| {
            s.auth.push(auth);
            s.encodings.push(encoding);
            s.peer_certs.push(peer);
        });
        if let Some((code, message)) = self.refuse {
            return Err(Status::new(code, message));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let double = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(batch)) = inbound.message().await {
                if double
                    .max_events
                    .is_some_and(|max| batch.events.len() > max)
                {
                    let message = "batch has too many events, over [limits] max_events_per_batch";
                    let _ = tx.send(Err(Status::invalid_argument(message))).await;
                    return;
                }
                let ack = double.with(|s| {
                    if batch.sequence > s.high_water {
                        s.high_water = batch.sequence;
                        s.messages.extend(
                            batch
                                .events
                                .iter()
                                .map(|e| String::from_utf8_lossy(&e.message).into_owned()),
                        );
                    }
                    Ack {
                        sequence: batch.sequence,
                        duplicates: 0,
                        high_water: s.high_water,
                    }
                });
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves `double` over TLS with the server certificate of `pki`; `client_ca` makes the
/// client certificate mandatory.
async fn serve(double: Double, pki: &Pki, client_ca: bool, compression: bool) -> SocketAddr {
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(&pki.server_cert, &pki.server_key));
    if client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(std::fs::read(&pki.ca).unwrap()));
    }
    let mut service = IngestServer::new(double);
    if compression {
        service = service
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(service)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    addr
}

/// A Docker directory with one container of `n` lines.
fn docker_dir(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let docker = dir.join("containers");
    let id = "abcd";
    let container = docker.join(id);
    std::fs::create_dir_all(&container).unwrap();
    let config = format!(
        r#"{{"ID":"{id}","Name":"/web","Created":"2024-05-06T07:00:00Z","Config":{{"Image":"img","Labels":null}},"Image":"sha256:{id}","State":{{"Running":true}}}}"#
    );
    std::fs::write(container.join("config.v2.json"), config).unwrap();
    let expected: Vec<String> = (0..n).map(|i| format!("tls line {i}")).collect();
    let log: String = expected
        .iter()
        .map(|m| {
            format!(
                r#"{{"log":"{m}\n","stream":"stdout","time":"2024-05-06T07:08:09.000000010Z"}}"#
            ) + "\n"
        })
        .collect();
    std::fs::write(container.join(format!("{id}-json.log")), log).unwrap();
    (docker, expected)
}

fn config(dir: &Path, addr: SocketAddr, pki: &Pki) -> Config {
    let (docker, _) = docker_dir(dir, 50);
    Config {
        server: format!("https://{addr}"),
        ca_file: Some(pki.ca.clone()),
        docker_dir: docker,
        state_dir: dir.join("state"),
        hostname: "tls-host".into(),
        no_journald: true,
        batch_max_events: 20,
        batch_linger_ms: 10,
        max_in_flight: 4,
        poll_interval_ms: 20,
        shutdown_grace_ms: 2000,
        ..Config::default()
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), logward_collector::Error>>,
    metrics: SocketAddr,
}

async fn start(config: Config) -> Running {
    log_capture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(logward_collector::run_with_listener(
        config,
        Some(listener),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        stop,
        task,
        metrics,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("collector stops in time")
            .unwrap()
            .unwrap();
    }

    /// The value of the metric line starting with `name` (labels included), 0 when absent.
    async fn metric(&self, name: &str) -> f64 {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Everything the collectors of this test binary logged (all tests share it: look for lines
/// with a test's own server address).
fn log_capture() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("logward_collector=info")
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines about `addr` that contain every one of `parts`.
fn logged(addr: SocketAddr, parts: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned();
    let server = format!("server=https://{addr}");
    text.lines()
        .filter(|l| l.contains(&server) && parts.iter().all(|p| l.contains(p)))
        .map(str::to_owned)
        .collect()
}

fn acked_sequence(config: &Config) -> u64 {
    let path = config.state_dir.join("state.json");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["acked_sequence"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_ca_delivers_batches_with_the_bearer_token() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path(), "good");
    let double = Double::default();
    let addr = serve(double.clone(), &pki, false, true).await;
    let mut cfg = config(tmp.path(), addr, &pki);
    // The certificate holds 127.0.0.1 and logward.test: verify the name, not the address.
    cfg.server_name = Some("logward.test".into());
    cfg.token_file = Some(write(tmp.path(), "token", "lw_collector_a_secret\n"));
    let running = start(cfg.clone()).await;
    wait_for("every event", async || {
        double.with(|s| s.messages.len()) >= 50
    })
    .await;
    running.stop().await;

    let (_, expected) = docker_dir(&tmp.path().join("again"), 50);
    double.with(|s| {
        assert_eq!(s.messages, expected);
        assert!(!s.auth.is_empty());
        for auth in &s.auth {
            assert_eq!(auth.as_deref(), Some("Bearer lw_collector_a_secret"));
        }
        assert_eq!(s.encodings[0].as_deref(), Some("zstd"), "zstd by default");
        assert_eq!(s.peer_certs[0], None, "no client certificate without mTLS");
    });
    assert_eq!(acked_sequence(&cfg), 3, "50 events in batches of 20");
    let text = String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned();
    assert!(
        !text.contains("lw_collector_a_secret"),
        "the token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_is_refused_readably_and_nothing_is_acked() {
    let tmp = tempfile::tempdir().unwrap();
    let good = pki(tmp.path(), "server");
    let other = pki(tmp.path(), "other");
    let double = Double::default();
    let addr = serve(double.clone(), &good, false, true).await;
    let cfg = config(tmp.path(), addr, &other);
    let running = start(cfg.clone()).await;
    wait_for("a TLS failure", async || {
        running.metric("logward_collector_tls_errors_total").await >= 1.0
    })
    .await;
    running.stop().await;

    let lines = logged(
        addr,
        &[
            "ERROR",
            "server certificate not trusted",
            "set ca_file to the CA that signed it",
        ],
    );
    assert!(!lines.is_empty(), "a readable error");
    assert!(lines[0].contains("ca-other.pem"), "{}", lines[0]);
    double.with(|s| assert!(s.messages.is_empty() && s.auth.is_empty()));
    assert_eq!(acked_sequence(&cfg), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_presents_the_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path(), "mtls");
    let double = Double::default();
    let addr = serve(double.clone(), &pki, true, true).await;

    // Without a client certificate the server refuses the handshake. Under TLS 1.3 the
    // client finishes its side first and learns of the refusal from an alert after it;
    // when the server's reset overtakes that alert the failure can only look like a
    // dropped connection. Either way nothing is delivered; when the alert arrives (nearly
    // always) the error says what is missing.
    let bare = config(&tmp.path().join("bare"), addr, &pki);
    let running = start(bare.clone()).await;
    wait_for("a refused connection", async || {
        running.metric("logward_collector_tls_errors_total").await >= 1.0
            || logged(addr, &["WARN"]).len() >= 3
    })
    .await;
    let tls_errors = running.metric("logward_collector_tls_errors_total").await;
    running.stop().await;
    if tls_errors >= 1.0 {
        assert!(
            !logged(addr, &["ERROR", "client certificate"]).is_empty(),
            "the error says a client certificate is needed"
        );
    }
    double.with(|s| assert!(s.messages.is_empty(), "nothing reached the server"));
    assert_eq!(acked_sequence(&bare), 0);

    let mut cfg = config(&tmp.path().join("mtls"), addr, &pki);
    cfg.client_cert = Some(pki.client_cert.clone());
    cfg.client_key = Some(pki.client_key.clone());
    let running = start(cfg.clone()).await;
    wait_for("every event", async || {
        double.with(|s| s.messages.len()) >= 50
    })
    .await;
    running.stop().await;
    double.with(|s| {
        let presented = s.peer_certs.last().unwrap().as_ref();
        assert_eq!(
            presented,
            Some(&pki.client_der),
            "the server saw our certificate"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_takes_the_auth_failure_path() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path(), "auth");
    let double = Double {
        refuse: Some((Code::Unauthenticated, "unknown collector token")),
        ..Double::default()
    };
    let addr = serve(double.clone(), &pki, false, true).await;
    let mut cfg = config(tmp.path(), addr, &pki);
    cfg.token = Some("lw_wrong".into());
    let running = start(cfg.clone()).await;
    wait_for("an auth failure", async || {
        running
            .metric("logward_collector_auth_failures_total")
            .await
            >= 1.0
    })
    .await;
    running.stop().await;

    let lines = logged(
        addr,
        &["ERROR", "unknown collector token", "check token_file"],
    );
    assert!(!lines.is_empty(), "an error naming the server's message");
    double.with(|s| {
        assert_eq!(s.auth[0].as_deref(), Some("Bearer lw_wrong"));
        assert!(s.messages.is_empty());
    });
    assert_eq!(acked_sequence(&cfg), 0, "the checkpoint never moves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_server_limit_are_loud_and_uncompressed_fallback_works() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path(), "limits");
    // This server accepts no compression and at most 10 events per batch.
    let double = Double {
        max_events: Some(10),
        ..Double::default()
    };
    let addr = serve(double.clone(), &pki, false, false).await;
    let cfg = config(tmp.path(), addr, &pki);
    let running = start(cfg.clone()).await;
    wait_for("a rejected batch", async || {
        running
            .metric("logward_collector_batch_rejections_total{reason=\"too_large\"}")
            .await
            >= 1.0
    })
    .await;
    running.stop().await;
    assert!(
        !logged(addr, &["WARN", "sending uncompressed"]).is_empty(),
        "fell back to no compression"
    );
    let lines = logged(addr, &["ERROR", "max_events_per_batch", "batch_max_events"]);
    assert!(!lines.is_empty(), "a loud error with the hint");
    assert_eq!(acked_sequence(&cfg), 0);
}
