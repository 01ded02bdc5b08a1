//! Ingest security against the real server: collector tokens over TLS, a server cert
//! from the wrong CA, mTLS client certificates and their identities, one identity
//! never touching another's dedup state, and the gRPC limits (events per batch,
//! message size, zstd and gzip bombs, streams per identity, event rate) refusing an
//! abusive collector while another keeps flowing.

use std::time::Duration;

use logward_e2e::Server;
use logward_e2e::grpc::{Connect, LoadClient, batch, refusal, status_of};
use logward_e2e::tls::{Ca, Leaf, collectors_toml};
use logward_proto::{Event, Source};
use serde_json::Value;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN_A: &str = "lw_test_token_alice";
const TOKEN_B: &str = "lw_test_token_bob";

/// A server with TLS on gRPC (HTTP stays plaintext on loopback for the helpers).
struct TlsServer {
    server: Server,
    ca: Ca,
    _tmp: tempfile::TempDir,
}

fn tls_server(client_ca: Option<&Ca>, extra: &str) -> TlsServer {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("logward test CA").expect("ca");
    let (cert, key) = ca
        .server()
        .expect("cert")
        .write(tmp.path(), "server")
        .expect("write");
    let client_ca = client_ca
        .map(|c| {
            let p = c.write(tmp.path(), "client-ca.pem").expect("write");
            format!("client_ca = {:?}\n", p.display().to_string())
        })
        .unwrap_or_default();
    let config = format!(
        "[security.tls]\ncert = {:?}\nkey = {:?}\nhttp = false\n{client_ca}\n{extra}",
        cert.display().to_string(),
        key.display().to_string(),
    );
    let server =
        Server::start_with_config(&tmp.path().join("data"), &config).expect("server starts");
    TlsServer {
        server,
        ca,
        _tmp: tmp,
    }
}

fn events(tag: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            timestamp_nanos: 1_714_557_600_000_000_000 + i as i64,
            host: format!("{tag}-host"),
            source: Source::Collector as i32,
            message: format!("{tag} event {i}").into_bytes().into(),
            // A collector may claim anything here; the server overwrites it.
            fields: [(
                "logward.identity".to_owned(),
                logward_proto::Values {
                    values: vec!["forged".into()],
                },
            )]
            .into(),
            ..Default::default()
        })
        .collect()
}

fn identities(server: &Server, q: &str) -> Vec<String> {
    server
        .all_events(q)
        .expect("search")
        .iter()
        .map(|h: &Value| {
            h["fields"]["logward.identity"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

#[test]
fn tokens_are_required_checked_and_stamped() {
    let extra = collectors_toml(&[("alice", Some(TOKEN_A)), ("bob", Some(TOKEN_B))]);
    let t = tls_server(None, &extra);
    let url = t.server.grpc_tls_url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (code, message) = refusal(
            LoadClient::connect_with(&url, "c1", &Connect::tls(&t.ca.cert_pem, None)).await,
        );
        assert_eq!(code, Code::Unauthenticated);
        assert_eq!(
            message,
            "missing bearer token: set token_file or LOGWARD_TOKEN on the collector"
        );
        let wrong = Connect::tls(&t.ca.cert_pem, Some("lw_not_a_known_token"));
        let (code, message) = refusal(LoadClient::connect_with(&url, "c1", &wrong).await);
        assert_eq!(
            (code, message.as_str()),
            (Code::Unauthenticated, "unknown collector token")
        );

        // A client that trusts another CA does not accept the server's certificate.
        let other = Ca::new("someone else").expect("ca");
        let result =
            LoadClient::connect_with(&url, "c1", &Connect::tls(&other.cert_pem, Some(TOKEN_A)))
                .await;
        assert!(result.is_err(), "server cert from an untrusted CA accepted");
        assert!(status_of(result.as_ref().err().expect("err")).is_none());

        let (mut alice, hw) =
            LoadClient::connect_with(&url, "c1", &Connect::tls(&t.ca.cert_pem, Some(TOKEN_A)))
                .await
                .expect("alice connects");
        assert_eq!(hw, 0);
        let ack = alice
            .send(batch("c1", 1, events("alice", 3)))
            .await
            .expect("ack");
        assert_eq!((ack.sequence, ack.duplicates), (1, 0));
    });
    t.server
        .wait_for_total("host:alice-host", 3, WAIT)
        .expect("alice's events arrive");
    assert_eq!(identities(&t.server, "host:alice-host"), vec!["alice"; 3]);
    let (_, metrics) = t.server.get("/metrics").expect("metrics");
    let text = metrics.as_str().unwrap_or_default();
    for reason in ["missing_token", "bad_token"] {
        assert!(
            text.contains(&format!(
                "logward_auth_failures_total{{surface=\"grpc\",reason=\"{reason}\"}} 1"
            )),
            "{reason} not counted:\n{text}"
        );
    }
}

#[test]
fn one_identity_cannot_touch_anothers_dedup_state() {
    let extra = collectors_toml(&[("alice", Some(TOKEN_A)), ("bob", Some(TOKEN_B))]);
    let t = tls_server(None, &extra);
    let url = t.server.grpc_tls_url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let bob_opts = Connect::tls(&t.ca.cert_pem, Some(TOKEN_B));
        let (mut bob, _) = LoadClient::connect_with(&url, "shared", &bob_opts)
            .await
            .expect("bob");
        for seq in 1..=2 {
            bob.send(batch("shared", seq, events("bob", 2)))
                .await
                .expect("bob ack");
        }
        // Alice claims bob's collector id and races his sequence ahead.
        let alice_opts = Connect::tls(&t.ca.cert_pem, Some(TOKEN_A));
        let (mut alice, hw) = LoadClient::connect_with(&url, "shared", &alice_opts)
            .await
            .expect("alice");
        assert_eq!(hw, 0, "alice sees her own high-water, not bob's");
        for seq in 1..=20 {
            let ack = alice
                .send(batch("shared", seq, events("alice", 1)))
                .await
                .expect("alice ack");
            assert_eq!(
                ack.duplicates, 0,
                "alice's batch {seq} is not bob's duplicate"
            );
        }
        drop(bob);
        let (mut bob, hw) = LoadClient::connect_with(&url, "shared", &bob_opts)
            .await
            .expect("bob again");
        assert_eq!(hw, 2, "bob's high-water is untouched by alice");
        let ack = bob
            .send(batch("shared", 3, events("bob", 2)))
            .await
            .expect("bob ack");
        assert_eq!(ack.duplicates, 0, "bob's next batch is stored");
    });
    t.server
        .wait_for_total("host:bob-host", 6, WAIT)
        .expect("bob's events");
    t.server
        .wait_for_total("host:alice-host", 20, WAIT)
        .expect("alice's events");
    assert_eq!(identities(&t.server, "host:bob-host"), vec!["bob"; 6]);
    assert_eq!(identities(&t.server, "host:alice-host"), vec!["alice"; 20]);
    let forged = t
        .server
        .search(&[("q", "fields.logward.identity:forged"), ("limit", "0")])
        .expect("search");
    assert_eq!(forged["total"], 0, "a claimed identity never survives");
    let bob = t
        .server
        .search(&[("q", "fields.logward.identity:bob"), ("limit", "0")])
        .expect("search");
    assert_eq!(bob["total"], 6, "the identity is searchable");
}

fn with_client(ca: &Ca, leaf: &Leaf, token: Option<&str>) -> Connect {
    Connect {
        client: Some((leaf.cert_pem.clone(), leaf.key_pem.clone())),
        ..Connect::tls(&ca.cert_pem, token)
    }
}

#[test]
fn mtls_client_certificates_name_the_collector() {
    let client_ca = Ca::new("collector CA").expect("ca");
    let foreign_ca = Ca::new("foreign CA").expect("ca");
    // `web-1` is listed without a token (a certificate allow-list); `tok` by token.
    let extra = collectors_toml(&[("web-1", None), ("tok", Some(TOKEN_A))]);
    let t = tls_server(Some(&client_ca), &extra);
    let url = t.server.grpc_tls_url();
    let web1 = client_ca.client("web-1").expect("cert");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut c, _) = LoadClient::connect_with(&url, "m1", &with_client(&t.ca, &web1, None))
            .await
            .expect("listed certificate connects");
        c.send(batch("m1", 1, events("web1", 2)))
            .await
            .expect("ack");

        let web2 = client_ca.client("web-2").expect("cert");
        let (code, message) =
            refusal(LoadClient::connect_with(&url, "m2", &with_client(&t.ca, &web2, None)).await);
        assert_eq!(code, Code::PermissionDenied);
        assert!(message.contains("\"web-2\" is not listed"), "{message}");

        let (code, message) = refusal(
            LoadClient::connect_with(&url, "m1", &with_client(&t.ca, &web1, Some(TOKEN_A))).await,
        );
        assert_eq!(code, Code::PermissionDenied);
        assert!(
            message.contains("\"web-1\"") && message.contains("\"tok\""),
            "names both identities: {message}"
        );

        let stranger = foreign_ca.client("web-1").expect("cert");
        let result =
            LoadClient::connect_with(&url, "m3", &with_client(&t.ca, &stranger, None)).await;
        assert!(result.is_err(), "a certificate of another CA is refused");
        let result =
            LoadClient::connect_with(&url, "m4", &Connect::tls(&t.ca.cert_pem, Some(TOKEN_A)))
                .await;
        assert!(
            result.is_err(),
            "no client certificate is refused under mTLS"
        );
    });
    t.server
        .wait_for_total("host:web1-host", 2, WAIT)
        .expect("events");
    assert_eq!(identities(&t.server, "host:web1-host"), vec!["web-1"; 2]);
}
