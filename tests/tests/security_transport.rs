//! Transport security against the real binaries: the HTTP API over TLS, certificate
//! reload (a new certificate is picked up, a broken one keeps the old), the real
//! collector shipping a Docker json-file line over TLS with a token file, the embedded
//! collector under TLS, the `token` subcommands, and the refusal to expose a
//! plaintext listener.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logward_e2e::tls::{Ca, collectors_toml};
use logward_e2e::{DockerLine, FakeContainer, Proc, Server, collector_args, docker_time};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

/// GET `path` over HTTPS trusting only `ca_pem`; the response text.
async fn https_get(addr: &str, ca_pem: &str, path: &str) -> anyhow::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn write_tls(dir: &Path, ca: &Ca) -> (String, String) {
    let (cert, key) = ca
        .server()
        .expect("cert")
        .write(dir, "server")
        .expect("write");
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn http_over_tls_and_certificate_reload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = Ca::new("first CA").expect("ca");
    let (cert, key) = write_tls(tmp.path(), &first);
    let config = format!("[security.tls]\ncert = {cert:?}\nkey = {key:?}\nreload_interval_s = 1\n");
    let mut server =
        Server::start_with_config(&tmp.path().join("data"), &config).expect("server starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let http = server.http.clone();
    let get = |ca: &Ca| rt.block_on(https_get(&http, &ca.cert_pem, "/healthz"));
    // A client that never finishes its handshake and one that sends garbage hold up
    // no one: handshakes run beside the accept loop.
    let _stalled = std::net::TcpStream::connect(&http).expect("connect");
    let mut garbage = std::net::TcpStream::connect(&http).expect("connect");
    garbage
        .write_all(b"\x16\x03\x01\xff\xffnot tls at all")
        .expect("write");
    let page = get(&first).expect("https works");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let plain = reqwest::blocking::get(format!("http://{http}/healthz"));
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plaintext HTTP is not served beside TLS"
    );

    // A new certificate from another CA: new connections get it.
    let second = Ca::new("second CA").expect("ca");
    write_tls(tmp.path(), &second);
    let deadline = Instant::now() + WAIT;
    while get(&second).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(get(&first).is_err(), "the old certificate is gone");

    // A broken file: a warning, and the last good certificate stays.
    let warnings = |s: &Server| {
        s.proc
            .log()
            .iter()
            .filter(|l| l.contains("keeping the previous certificate"))
            .count()
    };
    let before = warnings(&server);
    std::fs::write(&cert, "not a certificate").expect("write");
    let deadline = Instant::now() + WAIT;
    while warnings(&server) == before {
        assert!(
            Instant::now() < deadline,
            "no warning about the broken file"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        get(&second)
            .expect("still served")
            .starts_with("HTTP/1.1 200")
    );
    server.proc.terminate(WAIT).expect("stops");
}

#[test]
fn real_collector_ships_over_tls_with_a_token_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("deploy CA").expect("ca");
    let (cert, key) = write_tls(tmp.path(), &ca);
    let ca_file = ca.write(tmp.path(), "ca.pem").expect("write");
    let token = "lw_e2e_collector_token";
    let config = format!(
        "[security.tls]\ncert = {cert:?}\nkey = {key:?}\nhttp = false\n\n{}",
        collectors_toml(&[("edge-1", Some(token))])
    );
    let server =
        Server::start_with_config(&tmp.path().join("data"), &config).expect("server starts");
    // A stalled TLS handshake on the gRPC port holds up no one.
    let _stalled = std::net::TcpStream::connect(&server.grpc).expect("connect");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write token");
    let docker_dir = tmp.path().join("containers");
    let id = format!("{:064x}", 0x7157_u64);
    let c =
        FakeContainer::create(&docker_dir, &id, "tlsapp", "busybox:1.36", &[]).expect("container");
    let time = docker_time(1_714_557_600, 1);
    c.append(&[DockerLine {
        log: "shipped over tls",
        stream: "stdout",
        time: &time,
        partial: false,
    }])
    .expect("append");
    let mut args = collector_args(
        &server.grpc_tls_url(),
        &docker_dir,
        &tmp.path().join("state"),
        "tls-host",
    );
    args.extend([
        "--ca-file".to_owned(),
        ca_file.display().to_string(),
        "--token-file".to_owned(),
        token_file.display().to_string(),
    ]);
    let _collector = Proc::spawn("logward-collector", &args, &[]).expect("collector starts");
    server
        .wait_for_total("container.name:tlsapp", 1, WAIT)
        .expect("the line arrives");
    let hits = server.all_events("container.name:tlsapp").expect("search");
    assert_eq!(hits[0]["message"], "shipped over tls");
    assert_eq!(hits[0]["host"], "tls-host");
    assert_eq!(hits[0]["fields"]["logward.identity"], "edge-1");
}

#[test]
fn embedded_collector_works_under_tls_and_auth() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("aio CA").expect("ca");
    let client_ca = Ca::new("collector CA").expect("ca");
    let (cert, key) = write_tls(tmp.path(), &ca);
    let client_ca_file = client_ca.write(tmp.path(), "client-ca.pem").expect("write");
    let docker_dir = tmp.path().join("containers");
    let config = format!(
        "with_collector = true\n[collector]\ndocker_dir = {:?}\nhostname = \"aio\"\nno_journald = true\n\
         [security.tls]\ncert = {cert:?}\nkey = {key:?}\nclient_ca = {:?}\nhttp = false\n",
        docker_dir.display().to_string(),
        client_ca_file.display().to_string(),
    );
    let server =
        Server::start_with_config(&tmp.path().join("data"), &config).expect("server starts");
    let id = format!("{:064x}", 0xe3b_u64);
    let c =
        FakeContainer::create(&docker_dir, &id, "aioapp", "busybox:1.36", &[]).expect("container");
    let time = docker_time(1_714_557_600, 2);
    c.append(&[DockerLine {
        log: "embedded line",
        stream: "stdout",
        time: &time,
        partial: false,
    }])
    .expect("append");
    server
        .wait_for_total("container.name:aioapp", 1, WAIT)
        .expect("the embedded collector ships");
    let hits = server.all_events("container.name:aioapp").expect("search");
    assert_eq!(hits[0]["fields"]["logward.identity"], "embedded");
}

#[test]
fn token_subcommands_print_pasteable_lines() {
    let out = std::process::Command::new(logward_e2e::bin_path("logward-server"))
        .args(["token", "new", "--identity", "edge-9"])
        .output()
        .expect("token new");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let token = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("token: "))
        .expect("token line")
        .to_owned();
    assert!(token.starts_with("lw_") && token.len() == 67, "{token}");
    let mut child = std::process::Command::new(logward_e2e::bin_path("logward-server"))
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("token hash");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write");
    let hashed = child.wait_with_output().expect("output");
    let line = String::from_utf8(hashed.stdout).expect("utf-8");
    assert!(text.contains(line.trim()), "{text} lacks {line}");
    assert!(text.contains("identity = \"edge-9\""), "{text}");
}

#[test]
fn plaintext_beyond_loopback_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let args: Vec<String> = [
        "--data-dir",
        &tmp.path().join("data").display().to_string(),
        "--grpc-addr",
        "0.0.0.0:0",
        "--http-addr",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut proc = Proc::spawn("logward-server", &args, &[]).expect("spawn");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = proc.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not refuse to start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = proc.log().join("\n");
    assert!(
        log.contains("refusing to start") && log.contains("without TLS"),
        "{log}"
    );

    // Allowed explicitly, it starts and says so loudly.
    let config = tmp.path().join("exposed.toml");
    std::fs::write(
        &config,
        "[security]\nallow_plaintext = true\nallow_open = true\n",
    )
    .expect("write");
    let mut allowed = args.clone();
    allowed.extend(["--config".to_owned(), config.display().to_string()]);
    let mut proc = Proc::spawn("logward-server", &allowed, &[]).expect("spawn");
    let line = proc
        .wait_for_log("gRPC ingest is plaintext beyond loopback", WAIT)
        .expect("plaintext warning");
    assert!(line.contains("WARN"), "{line}");
    proc.wait_for_log("gRPC ingest is open to anyone", WAIT)
        .expect("open warning");
    proc.terminate(WAIT).expect("stops");
}
