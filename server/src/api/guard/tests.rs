//! The guard on a real socket: the real router served by axum on loopback, spoken to
//! with plain HTTP/1.1, so that status lines, headers and JSON bodies are checked as a
//! client sees them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::api::{AppState, router_with};
use crate::detect::log::DetectionLog;
use crate::security::{ApiToken, Role, hash_token};
use crate::store::{Store, StoreOptions};

const READER: &str = "lw_reader_token";
const ADMIN: &str = "lw_admin_token";

/// A served router whose guards the test can reach (to hold slots).
struct Api {
    addr: SocketAddr,
    guards: Arc<Guards>,
    _writer: crate::store::WriterThread,
    _dir: tempfile::TempDir,
}

fn limits() -> LimitsConfig {
    LimitsConfig {
        http_max_body_bytes: 1024,
        http_request_timeout_ms: 200,
        max_concurrent_searches: 1,
        max_tail_clients: 1,
        query_max_bytes: 64,
        query_max_clauses: 4,
        ..LimitsConfig::default()
    }
}

async fn serve(with_tokens: bool) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(Metrics::new());
    let (store, writer) = Store::open(
        &dir.path().join("data"),
        &StoreOptions::for_tests(),
        metrics.clone(),
    )
    .expect("store");
    let log = DetectionLog::open(&dir.path().join("detections")).expect("log");
    let mut security = SecurityConfig::default();
    if with_tokens {
        for (name, token, role) in [
            ("grafana", READER, Role::Reader),
            ("ops", ADMIN, Role::Admin),
        ] {
            security.api_tokens.push(ApiToken {
                name: name.into(),
                token_sha256: hash_token(token),
                role,
            });
        }
    }
    let tails = crate::search::tail_hub::TailHub::start(store.clone(), metrics.clone());
    let state = AppState {
        store,
        metrics: metrics.clone(),
        detection: Arc::new(crate::detect::Shared {
            status: RwLock::new(crate::detect::rules::RulesStatus::default()),
            log: Mutex::new(log),
        }),
        alerter: None,
        limits: limits(),
        security: security.clone(),
        tails,
    };
    let mut guards = Guards::new(&limits(), &security, metrics);
    guards.searches = Slots::new(
        "max_concurrent_searches",
        1,
        Duration::from_millis(20),
        "searches are running at once",
    );
    let guards = Arc::new(guards);
    let app = router_with(state, guards.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Api {
        addr,
        guards,
        _writer: writer,
        _dir: dir,
    }
}

/// A response as a client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// Sends `raw` (a whole HTTP/1.1 request) and reads the answer to the end.
async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body,
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Answer {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: logward\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    send_raw(addr, raw.as_bytes()).await
}

/// One helper for the table: the status and a part of the `error` (empty: not checked).
async fn check(
    api: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
    expected: (u16, &str),
) -> Answer {
    let got = request(api.addr, method, path, token, body).await;
    assert_eq!(
        got.status, expected.0,
        "{method} {path} with {token:?}: {got:?}"
    );
    let error = got.body["error"].as_str().unwrap_or("");
    assert!(
        error.contains(expected.1),
        "{method} {path}: {error:?} lacks {:?}",
        expected.1
    );
    got
}

fn metrics_text(api: &Api) -> String {
    api.guards.metrics.render()
}

#[tokio::test]
async fn tokens_and_roles_decide_every_request() {
    let api = serve(true).await;
    let big = "x".repeat(2048);
    check(&api, "GET", "/healthz", None, "", (200, "")).await;
    let got = check(
        &api,
        "GET",
        "/api/v1/search",
        None,
        "",
        (401, "missing API token"),
    )
    .await;
    assert!(
        got.head
            .contains("www-authenticate: bearer realm=\"logward\""),
        "{}",
        got.head
    );
    assert_eq!(got.body["reason"], "missing_token");
    let got = check(
        &api,
        "GET",
        "/api/v1/search",
        Some("lw_nope"),
        "",
        (401, "unknown API token"),
    )
    .await;
    assert!(got.head.contains("error=\"invalid_token\""), "{}", got.head);
    check(&api, "GET", "/metrics", None, "", (401, "missing")).await;
    check(&api, "GET", "/metrics", Some(READER), "", (200, "")).await;
    check(
        &api,
        "GET",
        "/api/v1/search?q=error",
        Some(READER),
        "",
        (200, ""),
    )
    .await;
    check(&api, "GET", "/api/v1/rules", Some(READER), "", (200, "")).await;
    check(
        &api,
        "GET",
        "/api/v1/nothing",
        Some(READER),
        "",
        (404, "no such endpoint"),
    )
    .await;
    check(&api, "GET", "/api/v1/nothing", None, "", (401, "")).await;
    let got = check(
        &api,
        "POST",
        "/api/v1/silences",
        Some(READER),
        "{}",
        (
            403,
            "token 'grafana' has role reader; POST /api/v1/silences needs role admin",
        ),
    )
    .await;
    assert_eq!(
        (
            got.body["required_role"].as_str(),
            got.body["token"].as_str()
        ),
        (Some("admin"), Some("grafana"))
    );
    check(
        &api,
        "DELETE",
        "/api/v1/silences/s1",
        Some(READER),
        "",
        (403, "needs role admin"),
    )
    .await;
    check(
        &api,
        "POST",
        "/api/v1/alerts/a1/ack",
        Some(READER),
        "",
        (403, "needs role admin"),
    )
    .await;
    // Past the guard, alerting (off here) answers.
    check(
        &api,
        "POST",
        "/api/v1/silences",
        Some(ADMIN),
        "{}",
        (503, "alerting is off"),
    )
    .await;
    // The body limit is checked after authentication, for admins too.
    let got = check(
        &api,
        "POST",
        "/api/v1/silences",
        Some(ADMIN),
        &big,
        (413, "limits.http_max_body_bytes (1024 bytes)"),
    )
    .await;
    assert_eq!(
        (got.body["limit"].as_str(), got.body["value"].as_u64()),
        (Some("http_max_body_bytes"), Some(1024))
    );
    check(&api, "POST", "/api/v1/silences", None, &big, (401, "")).await;
    let text = metrics_text(&api);
    for line in [
        "logward_auth_failures_total{surface=\"http\",reason=\"missing_token\"} 4",
        "logward_auth_failures_total{surface=\"http\",reason=\"bad_token\"} 1",
        "logward_auth_failures_total{surface=\"http\",reason=\"forbidden\"} 3",
        "logward_limit_rejections_total{limit=\"http_max_body_bytes\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn without_tokens_the_api_is_open_but_still_limited() {
    let api = serve(false).await;
    check(&api, "GET", "/metrics", None, "", (200, "")).await;
    check(
        &api,
        "GET",
        "/api/v1/search",
        Some("anything"),
        "",
        (200, ""),
    )
    .await;
    check(
        &api,
        "POST",
        "/api/v1/silences",
        None,
        "{}",
        (503, "alerting is off"),
    )
    .await;
    check(
        &api,
        "POST",
        "/api/v1/silences",
        None,
        &"x".repeat(1025),
        (413, ""),
    )
    .await;
}

#[tokio::test]
async fn query_limits_and_slots_refuse_with_the_limit_named() {
    let api = serve(true).await;
    let long = format!("/api/v1/search?q={}", "a".repeat(65));
    let got = check(
        &api,
        "GET",
        &long,
        Some(READER),
        "",
        (400, "query is 65 bytes long; limits.query_max_bytes is 64"),
    )
    .await;
    assert_eq!(got.body["limit"], "query_max_bytes");
    check(
        &api,
        "GET",
        "/api/v1/count?q=a+b+c+d",
        Some(READER),
        "",
        (400, "limits.query_max_clauses is 4"),
    )
    .await;
    check(
        &api,
        "GET",
        "/api/v1/aggregate?field=host&q=a+b+c+d",
        Some(READER),
        "",
        (400, "query_max_clauses"),
    )
    .await;
    check(
        &api,
        "GET",
        "/api/v1/tail?q=a+b+c+d",
        Some(READER),
        "",
        (400, "query_max_clauses"),
    )
    .await;
    let deep = format!("/api/v1/search?q={}a{}", "(".repeat(20), ")".repeat(20));
    check(&api, "GET", &deep, Some(READER), "", (400, "nest 20 deep")).await;

    // All search slots taken: a search waits briefly, then gets a 429.
    let held = api
        .guards
        .searches
        .acquire(&api.guards.metrics)
        .await
        .expect("slot");
    for path in [
        "/api/v1/search",
        "/api/v1/count",
        "/api/v1/aggregate?field=host",
    ] {
        let got = check(
            &api,
            "GET",
            path,
            Some(READER),
            "",
            (429, "limits.max_concurrent_searches is 1"),
        )
        .await;
        assert!(got.head.contains("retry-after: 1"), "{}", got.head);
    }
    drop(held);
    check(&api, "GET", "/api/v1/search", Some(READER), "", (200, "")).await;
    assert_eq!(
        api.guards.searches.available(),
        1,
        "the slot is back after the search"
    );

    // All tail slots taken.
    let held = api
        .guards
        .tails
        .acquire(&api.guards.metrics)
        .await
        .expect("slot");
    check(
        &api,
        "GET",
        "/api/v1/tail",
        Some(READER),
        "",
        (429, "limits.max_tail_clients is 1"),
    )
    .await;
    drop(held);

    let text = metrics_text(&api);
    for line in [
        "logward_limit_rejections_total{limit=\"query_max_bytes\"} 1",
        "logward_limit_rejections_total{limit=\"query_max_clauses\"} 3",
        "logward_limit_rejections_total{limit=\"query_max_nesting\"} 1",
        "logward_limit_rejections_total{limit=\"max_concurrent_searches\"} 3",
        "logward_limit_rejections_total{limit=\"max_tail_clients\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out_but_a_tail_streams_on() {
    let api = serve(true).await;
    // Content-Length promises a body that never comes: 408 at http_request_timeout_ms.
    let raw = format!(
        "POST /api/v1/silences HTTP/1.1\r\nHost: logward\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 100\r\n\r\n{{"
    );
    let mut s = TcpStream::connect(api.addr).await.expect("connect");
    s.write_all(raw.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("}") {
        let n = s.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("limits.http_request_timeout_ms (200 ms)"),
        "{text}"
    );
    assert!(
        metrics_text(&api)
            .contains("logward_limit_rejections_total{limit=\"http_request_timeout_ms\"} 1")
    );

    // The live tail is exempt: its heartbeat comes after the 200 ms request timeout.
    let raw = format!(
        "GET /api/v1/tail?heartbeat=1 HTTP/1.1\r\nHost: logward\r\nAuthorization: Bearer {READER}\r\n\r\n"
    );
    let mut s = TcpStream::connect(api.addr).await.expect("connect");
    s.write_all(raw.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(": heartbeat") {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "tail closed: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert_eq!(
        api.guards.tails.available(),
        0,
        "the open tail holds its slot"
    );
}

#[tokio::test]
async fn slots_are_bounded_and_come_back() {
    let metrics = Metrics::new();
    let slots = Slots::new(
        "max_concurrent_searches",
        2,
        Duration::from_millis(5),
        "searches are running at once",
    );
    let a = slots.acquire(&metrics).await.expect("first");
    let b = slots.acquire(&metrics).await.expect("second");
    let refused = slots.acquire(&metrics).await.expect_err("full");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.body(),
        serde_json::json!({
            "error": "2 searches are running at once; limits.max_concurrent_searches is 2: retry in a moment",
            "limit": "max_concurrent_searches",
            "value": 2,
        })
    );
    drop(a);
    let c = slots.acquire(&metrics).await.expect("freed");
    drop((b, c));
    assert_eq!(slots.available(), 2);
    assert!(
        metrics
            .render()
            .contains("logward_limit_rejections_total{limit=\"max_concurrent_searches\"} 1")
    );
}
