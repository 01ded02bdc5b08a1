//! The HTTP API's tokens, roles and limits against the real `logward-server` binary
//! (issue 9): missing and unknown tokens get 401, a reader searches but cannot change
//! silences or alerts (403), an admin can, `/healthz` stays open; an oversize body is a
//! 413, a too long or too complex query a 400 naming its `[limits]` key; `/metrics`
//! counts every refusal. A hostile line on the live tail stays one SSE event.
//!
//! The concurrent-search limit (429) is tested at the router in
//! `server/src/http_limits/tests.rs`, where the test holds the slot itself: a search
//! cannot be made slow deterministically here.

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logward_e2e::grpc::LoadClient;
use logward_e2e::{Server, encode};
use logward_proto::{Batch, Event, Source};
use serde_json::{Value, json};

/// Fixed test tokens and their SHA-256 (`printf %s <token> | sha256sum`).
const READER: &str = "lw_e2e_reader_5b1f0c";
const READER_SHA256: &str = "896c434215838e44b0ce67592097c23939498e7dd2476f44adb071a997936d80";
const ADMIN: &str = "lw_e2e_admin_9d2e7a";
const ADMIN_SHA256: &str = "4de3d6ff17ceb520f03c8b62e6b994c1c4177b8e139cb3a7248b5ba324f61317";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A server with a reader and an admin token, small HTTP limits, and alerting on (a
/// webhook channel to a local port nobody listens on), so that the alert and silence
/// routes exist.
fn start() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"[[security.api_tokens]]
name = "grafana"
token_sha256 = "{READER_SHA256}"
role = "reader"

[[security.api_tokens]]
name = "ops"
token_sha256 = "{ADMIN_SHA256}"
role = "admin"

[limits]
http_max_body_bytes = 1024
query_max_bytes = 256
query_max_clauses = 8

[alerting]
allow_targets = ["127.0.0.1/32"]

[[alerting.channels]]
name = "hook"
[alerting.channels.webhook]
url = "http://127.0.0.1:{}/hook"
"#,
        free_port()
    );
    let server =
        Server::start_with_config(&tmp.path().join("data"), &config).expect("server starts");
    (tmp, server)
}

/// A response: status, `WWW-Authenticate` / `Retry-After` headers, JSON body.
struct Answer {
    status: u16,
    www_authenticate: String,
    body: Value,
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Answer {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("http://{}{}", server.http, path);
    let mut req = client.request(method.parse().expect("method"), &url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        www_authenticate,
        body,
    }
}

/// One helper for the tables: the status and a part of `error` (empty: not checked).
fn check(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
    expected: (u16, &str),
) -> Answer {
    let got = call(server, method, path, token, body);
    assert_eq!(
        got.status, expected.0,
        "{method} {path} with {token:?}: {}",
        got.body
    );
    let error = got.body["error"].as_str().unwrap_or("");
    assert!(
        error.contains(expected.1),
        "{method} {path}: {error:?} lacks {:?}",
        expected.1
    );
    got
}

fn silence() -> Option<String> {
    Some(json!({"matchers": [{"name": "rule", "value": "e2e-rule"}], "duration": "1h", "comment": "e2e"}).to_string())
}

fn metrics(server: &Server) -> String {
    let got = call(server, "GET", "/metrics", Some(READER), None);
    assert_eq!(got.status, 200);
    got.body.as_str().unwrap_or("").to_owned()
}

#[test]
fn tokens_roles_and_limits_on_the_real_server() {
    let (_tmp, server) = start();

    // Authentication.
    check(&server, "GET", "/healthz", None, None, (200, ""));
    let got = check(
        &server,
        "GET",
        "/api/v1/search",
        None,
        None,
        (401, "missing API token"),
    );
    assert_eq!(got.www_authenticate, "Bearer realm=\"logward\"");
    let got = check(
        &server,
        "GET",
        "/api/v1/search",
        Some("lw_not_a_token"),
        None,
        (401, "unknown API token"),
    );
    assert!(
        got.www_authenticate.contains("invalid_token"),
        "{}",
        got.www_authenticate
    );
    check(
        &server,
        "GET",
        "/metrics",
        None,
        None,
        (401, "missing API token"),
    );
    check(
        &server,
        "POST",
        "/api/v1/silences",
        None,
        silence(),
        (401, "missing API token"),
    );

    // A reader reads everything and changes nothing.
    for path in [
        "/api/v1/search?q=x",
        "/api/v1/count",
        "/api/v1/aggregate?field=host",
        "/api/v1/fields",
        "/api/v1/detections",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/silences",
        "/api/v1/openapi.json",
    ] {
        check(&server, "GET", path, Some(READER), None, (200, ""));
    }
    let got = check(
        &server,
        "POST",
        "/api/v1/silences",
        Some(READER),
        silence(),
        (
            403,
            "token 'grafana' has role reader; POST /api/v1/silences needs role admin",
        ),
    );
    assert_eq!(got.body["required_role"], "admin");
    check(
        &server,
        "POST",
        "/api/v1/alerts/nope/ack",
        Some(READER),
        None,
        (403, "needs role admin"),
    );
    check(
        &server,
        "POST",
        "/api/v1/alerts/nope/resolve",
        Some(READER),
        None,
        (403, "needs role admin"),
    );

    // An admin changes state.
    let created = check(
        &server,
        "POST",
        "/api/v1/silences",
        Some(ADMIN),
        silence(),
        (201, ""),
    );
    let id = created.body["id"].as_str().expect("silence id").to_owned();
    check(
        &server,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(READER),
        None,
        (403, "needs role admin"),
    );
    check(
        &server,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(ADMIN),
        None,
        (200, ""),
    );
    check(
        &server,
        "POST",
        "/api/v1/alerts/nope/ack",
        Some(ADMIN),
        None,
        (404, "nope"),
    );

    // Limits.
    let big = Some(format!("{{\"comment\": \"{}\"}}", "x".repeat(2048)));
    let got = check(
        &server,
        "POST",
        "/api/v1/silences",
        Some(ADMIN),
        big,
        (413, "limits.http_max_body_bytes (1024 bytes)"),
    );
    assert_eq!(got.body["limit"], "http_max_body_bytes");
    let long = format!("/api/v1/search?q={}", "a".repeat(300));
    let got = check(
        &server,
        "GET",
        &long,
        Some(READER),
        None,
        (
            400,
            "query is 300 bytes long; limits.query_max_bytes is 256",
        ),
    );
    assert_eq!(
        (got.body["limit"].as_str(), got.body["value"].as_u64()),
        (Some("query_max_bytes"), Some(256))
    );
    let many = format!("/api/v1/count?q={}", encode("a b c d e f g h i"));
    check(
        &server,
        "GET",
        &many,
        Some(READER),
        None,
        (400, "limits.query_max_clauses is 8"),
    );
    let deep = format!(
        "/api/v1/search?q={}",
        encode(&format!("{}a{}", "(".repeat(30), ")".repeat(30)))
    );
    check(
        &server,
        "GET",
        &deep,
        Some(READER),
        None,
        (400, "parentheses nest 30 deep"),
    );

    let text = metrics(&server);
    for line in [
        "logward_auth_failures_total{surface=\"http\",reason=\"missing_token\"} 3",
        "logward_auth_failures_total{surface=\"http\",reason=\"bad_token\"} 1",
        "logward_auth_failures_total{surface=\"http\",reason=\"forbidden\"} 4",
        "logward_limit_rejections_total{limit=\"http_max_body_bytes\"} 1",
        "logward_limit_rejections_total{limit=\"query_max_bytes\"} 1",
        "logward_limit_rejections_total{limit=\"query_max_clauses\"} 1",
        "logward_limit_rejections_total{limit=\"query_max_nesting\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from /metrics:\n{text}");
    }
    let log = server.proc.log().join("\n");
    assert!(
        !log.contains(READER) && !log.contains(ADMIN),
        "a token was logged:\n{log}"
    );
}

/// CR/LF, a forged SSE event and field, ANSI, NUL and bytes that are not UTF-8.
const HOSTILE: &[u8] = b"tail-c41e \x1b[31mRED\x1b[0m\r\n\r\nevent: forged\r\ndata: {\"owned\":true}\r\n\r\nid: 1\n\nretry: 1 \x00 \xff end";

#[test]
fn a_hostile_line_stays_one_event_on_the_live_tail() {
    let (_tmp, server) = start();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let url = format!("http://{}/api/v1/tail?q=tail-c41e&heartbeat=1", server.http);
    let resp = client.get(&url).send().expect("tail");
    assert_eq!(resp.status().as_u16(), 401, "the tail needs a token too");
    let mut resp = client
        .get(&url)
        .header("authorization", format!("Bearer {READER}"))
        .send()
        .expect("tail");
    assert_eq!(resp.status().as_u16(), 200);
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = resp.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    // The stream is subscribed once its first heartbeat arrives.
    let text = || String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned();
    wait_until("first heartbeat", || text().contains(": heartbeat"));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut c, _) = LoadClient::connect(&server.grpc_url(), "tail-hostile")
            .await
            .expect("connect");
        let event = Event {
            host: "web1".into(),
            source: Source::Docker as i32,
            timestamp_nanos: 1_714_557_600_000_000_000,
            message: HOSTILE.to_vec().into(),
            ..Event::default()
        };
        c.send(Batch {
            collector_id: "tail-hostile".into(),
            sequence: 1,
            events: vec![event],
        })
        .await
        .expect("ack");
    });
    // The event, then a heartbeat after it: the event is complete.
    wait_until("the event and a heartbeat after it", || {
        let t = text();
        t.find("tail-c41e")
            .is_some_and(|at| t[at..].contains(": heartbeat"))
    });
    let body = text();
    let events: Vec<&str> = body
        .split("\n\n")
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with(": heartbeat"))
        .collect();
    assert_eq!(events.len(), 1, "one event, nothing forged: {body:?}");
    let lines: Vec<&str> = events[0].lines().collect();
    assert_eq!(lines.len(), 2, "an id and one data line: {lines:?}");
    assert!(
        lines[0].starts_with("id: ") && lines[1].starts_with("data: "),
        "{lines:?}"
    );
    let data: Value = serde_json::from_str(&lines[1]["data: ".len()..]).expect("data is JSON");
    let message = data["message"].as_str().expect("message");
    assert!(
        message.starts_with("tail-c41e \u{1b}[31mRED\u{1b}[0m\r\n\r\nevent: forged"),
        "{message:?}"
    );
    assert!(message.ends_with("end"), "{message:?}");
    assert!(
        !body.contains("\nevent: forged") && !body.contains('\r'),
        "{body:?}"
    );
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that sends its request headers too slowly ("slowloris") is disconnected
/// after `http_header_timeout_ms`, while an honest request on another connection is
/// answered meanwhile.
#[test]
fn slow_headers_are_cut_off() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        &tmp.path().join("data"),
        "[limits]\nhttp_header_timeout_ms = 300\n",
    )
    .expect("server starts");
    let mut slow = std::net::TcpStream::connect(&server.http).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("send part of the headers");
    // The headers never end. The server must close the connection; the read times
    // out (a failure) only if it keeps it open far past the limit.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let healthy = reqwest::blocking::get(format!("http://{}/healthz", server.http))
        .expect("an honest request is served meanwhile");
    assert_eq!(healthy.status().as_u16(), 200);
    let mut rest = Vec::new();
    match slow.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the slow connection was not closed: {e}"),
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("200 OK"),
        "a request with unfinished headers was answered: {text}"
    );
}
