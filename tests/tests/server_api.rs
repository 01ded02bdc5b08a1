//! The search API against the real server binary fed over gRPC: aggregations checked
//! against counts computed here, the live tail (latency, heartbeat, Last-Event-ID
//! resume), cursor paging while ingest continues, hostile queries answered 400 fast,
//! and the OpenAPI document matching the routes.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use logward_e2e::grpc::{DAY_NANOS, LoadClient, batch_events};
use logward_e2e::{Server, encode};
use serde_json::Value;

const BASE: i64 = 1_714_557_600_000_000_000; // 2024-05-01T10:00:00Z

fn start() -> (tempfile::TempDir, Server, tokio::runtime::Runtime) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), &[]).expect("server starts");
    (
        tmp,
        server,
        tokio::runtime::Runtime::new().expect("runtime"),
    )
}

fn send(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    id: &str,
    make: impl Fn(u64) -> Vec<logward_proto::Event>,
    batches: u64,
) {
    let acked = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let (mut c, hw) = LoadClient::connect(&server.grpc_url(), id)
            .await
            .expect("connect");
        c.send_range(hw + 1, hw + batches, 8, make, &acked)
            .await
            .expect("send");
    });
}

#[test]
fn aggregations_match_counts_computed_independently() {
    let (_tmp, server, rt) = start();
    let per = 25;
    send(&rt, &server, "agg", |s| batch_events(s, per, BASE, 2), 40);
    let mut by_host: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_app: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_hour: BTreeMap<i64, u64> = BTreeMap::new();
    for s in 1..=40 {
        for e in batch_events(s, per, BASE, 2) {
            *by_host.entry(e.host.clone()).or_default() += 1;
            let name = e
                .container
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            if e.host == "host1" {
                *by_app.entry(name).or_default() += 1;
            }
            *by_hour
                .entry(e.timestamp_nanos.div_euclid(3_600_000_000_000))
                .or_default() += 1;
        }
    }
    let (status, body) = server
        .get("/api/v1/aggregate?type=terms&field=host&size=10")
        .expect("get");
    assert_eq!(status, 200, "{body}");
    let got: BTreeMap<String, u64> = body["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap_or("").to_owned(),
                b["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, by_host);
    assert_eq!(body["total"], 1000);
    let q = encode("host:host1");
    let (status, body) = server
        .get(&format!("/api/v1/aggregate?field=container.name&q={q}"))
        .expect("get");
    assert_eq!(status, 200, "{body}");
    let got: BTreeMap<String, u64> = body["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap_or("").to_owned(),
                b["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, by_app);
    // A histogram over two days, hourly, filtered by the time range.
    let (start_ms, end_ms) = (BASE / 1_000_000, (BASE + 2 * DAY_NANOS) / 1_000_000);
    let (status, body) = server
        .get(&format!(
            "/api/v1/aggregate?type=date_histogram&interval=1h&start={start_ms}&end={end_ms}"
        ))
        .expect("get");
    assert_eq!(status, 200, "{body}");
    let got: BTreeMap<i64, u64> = body["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter(|b| b["count"].as_u64() != Some(0))
        .map(|b| {
            (
                b["key_ms"].as_i64().unwrap_or(0) / 3_600_000,
                b["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, by_hour);
    let (status, body) = server
        .get("/api/v1/aggregate?type=date_histogram")
        .expect("auto");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["buckets"].as_array().map(|b| b
            .iter()
            .map(|x| x["count"].as_u64().unwrap_or(0))
            .sum::<u64>()),
        Some(1000)
    );
    let (_, body) = server.get(&format!("/api/v1/count?q={q}")).expect("count");
    assert_eq!(body["count"].as_u64(), Some(by_host["host1"]));
}

/// Reads an SSE stream on a thread; lines arrive with the time they were read.
fn sse(server: &Server, path: &str, last_id: Option<&str>) -> mpsc::Receiver<(Instant, String)> {
    let url = format!("http://{}{}", server.http, path);
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("client");
    let mut req = client.get(url);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().expect("tail");
    assert_eq!(resp.status().as_u16(), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(resp).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for the next `data:` event; returns (id, event, arrival).
fn next_event(rx: &mpsc::Receiver<(Instant, String)>) -> (String, Value, Instant) {
    let mut id = String::new();
    loop {
        let (at, line) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an event within 10 s");
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ")
            && let Ok(event) = serde_json::from_str::<Value>(v)
            && event.get("message").is_some()
        {
            return (id, event, at);
        }
    }
}

#[test]
fn tail_streams_new_matching_events_within_a_second_and_resumes() {
    let (_tmp, server, rt) = start();
    let rx = sse(&server, "/api/v1/tail?q=host:host2&heartbeat=1", None);
    // A heartbeat arrives while nothing happens.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, line) = rx.recv_timeout(Duration::from_secs(10)).expect("heartbeat");
        if line.starts_with(':') {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat");
    }
    let sent = Instant::now();
    // Batch 2 has host2 (sequence % 3).
    send(&rt, &server, "tail", |s| batch_events(s, 5, BASE, 1), 2);
    let (first_id, event, at) = next_event(&rx);
    let first_event = event["id"].as_str().unwrap_or("").to_owned();
    let latency = at.duration_since(sent);
    eprintln!("tail latency (send of two batches to SSE receipt): {latency:?}");
    assert!(latency < Duration::from_secs(3), "tail took {latency:?}");
    assert_eq!(event["host"], "host2");
    for _ in 1..5 {
        let (_, e, _) = next_event(&rx);
        assert_eq!(e["host"], "host2");
    }
    drop(rx);
    // While disconnected: batches 3..=5, of which batch 5 is host2.
    send(&rt, &server, "tail", |s| batch_events(s, 5, BASE, 1), 3);
    let rx = sse(&server, "/api/v1/tail?q=host:host2", Some(&first_id));
    let mut resumed = Vec::new();
    for _ in 0..9 {
        resumed.push(next_event(&rx).1["id"].as_str().unwrap_or("").to_owned());
    }
    // Within a batch events go out in id-hash order: all but the first one seen remain.
    let expected: Vec<String> = [2, 5]
        .iter()
        .flat_map(|s| (0..5).map(move |i| format!("tail-{s}-{i}")))
        .filter(|id| *id != first_event)
        .collect();
    let mut sorted = resumed.clone();
    sorted.sort();
    let mut exp_sorted = expected.clone();
    exp_sorted.sort();
    assert_eq!(
        sorted, exp_sorted,
        "resume after {first_id} sends the rest, nothing twice"
    );
}

#[test]
fn cursor_paging_visits_every_event_once_while_ingest_continues() {
    let (_tmp, server, rt) = start();
    send(&rt, &server, "page", |s| batch_events(s, 20, BASE, 3), 30);
    let before: HashSet<String> = server
        .all_events("*")
        .expect("all")
        .iter()
        .map(|h| h["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(before.len(), 600);
    let url = server.grpc_url();
    let more = rt.spawn(async move {
        let acked = Arc::new(AtomicU64::new(0));
        let (mut c, hw) = LoadClient::connect(&url, "page-more")
            .await
            .expect("connect");
        c.send_range(hw + 1, hw + 60, 2, |s| batch_events(s, 20, BASE, 3), &acked)
            .await
            .expect("send");
    });
    for order in ["asc", "desc"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = vec![("order", order), ("limit", "37")];
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let body = server.search(&p).expect("page");
            seen.extend(
                body["hits"]
                    .as_array()
                    .expect("hits")
                    .iter()
                    .map(|h| h["id"].as_str().unwrap_or("").to_owned()),
            );
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{order}: no event twice");
        assert!(
            before.iter().all(|id| unique.contains(id)),
            "{order}: every event present at the start is visited"
        );
    }
    rt.block_on(more).expect("load");
}

#[test]
fn hostile_queries_get_fast_400s_that_say_what_is_wrong() {
    let (_tmp, server, rt) = start();
    send(
        &rt,
        &server,
        "hostile",
        |s| batch_events(s, 50, BASE, 1),
        10,
    );
    let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
    let very_deep = "(".repeat(16_000);
    let many = (0..400)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("/api/v1/search?q={}", encode("(error")),
            "syntax error",
        ),
        (
            format!("/api/v1/search?q={}", encode("colour:red")),
            "unknown field 'colour'",
        ),
        (
            format!("/api/v1/search?q={}", encode("message:/.*a.*b.*c/")),
            "invalid query",
        ),
        (
            format!("/api/v1/search?q={}", encode("message:a*")),
            "too broad",
        ),
        (
            format!("/api/v1/search?q={}", encode(&deep)),
            "nest 40 deep",
        ),
        (format!("/api/v1/search?q={}", encode(&very_deep)), "nest"),
        (
            format!("/api/v1/search?q={}", encode(&many)),
            "limits.query_max_clauses is 64",
        ),
        (
            "/api/v1/search?limit=99999999999999999999".into(),
            "parameter 'limit'",
        ),
        ("/api/v1/search?limit=-5".into(), "parameter 'limit'"),
        ("/api/v1/search?start=yesterday".into(), "parameter 'start'"),
        (
            "/api/v1/search?start=now&end=now-1h".into(),
            "later than start",
        ),
        (
            "/api/v1/search?start=now-99999999999999w".into(),
            "out of range",
        ),
        (
            "/api/v1/search?fields=colour".into(),
            "unknown field 'colour'",
        ),
        ("/api/v1/count?q=a&q=b".into(), "more than once"),
        (
            "/api/v1/aggregate?field=message".into(),
            "cannot be aggregated",
        ),
        (
            "/api/v1/aggregate?field=host&size=1000000".into(),
            "from 1 to 1000",
        ),
        (
            "/api/v1/aggregate?type=date_histogram&interval=1ms&start=now-1y".into(),
            "parameter 'start'",
        ),
        (
            "/api/v1/aggregate?type=date_histogram&interval=1ms&start=now-30d&end=now".into(),
            "more than 10000 buckets",
        ),
        (
            "/api/v1/aggregate?type=date_histogram&interval=1ms".into(),
            "more than 10000 buckets",
        ),
        ("/api/v1/tail?q=colour:x".into(), "unknown field 'colour'"),
        ("/api/v1/tail?heartbeat=0".into(), "parameter 'heartbeat'"),
        ("/api/v1/fields?x=1".into(), "unknown parameter 'x'"),
    ];
    let mut slowest = Duration::ZERO;
    for (path, expected) in &cases {
        let started = Instant::now();
        let (status, body) = server.get(path).expect("get");
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["error"].as_str().unwrap_or("");
        assert!(msg.contains(expected), "{path}: {msg:?} lacks {expected:?}");
        assert!(took < Duration::from_secs(5), "{path} took {took:?}");
    }
    eprintln!("slowest hostile answer: {slowest:?}");
    let (status, body) = server.get("/healthz").expect("healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[test]
fn openapi_lists_every_route_and_fields_projection_and_highlight_work() {
    let (_tmp, server, rt) = start();
    send(&rt, &server, "doc", |s| batch_events(s, 10, BASE, 1), 3);
    let (status, doc) = server.get("/api/v1/openapi.json").expect("openapi");
    assert_eq!(status, 200);
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    for path in &paths {
        let url = if path.ends_with("/tail") {
            continue;
        } else {
            path.clone()
        };
        let (status, body) = server.get(&url).expect("get");
        assert!(
            status != 404 && status != 405,
            "{path} is documented but answers {status}: {body}"
        );
    }
    for path in [
        "/api/v1/search",
        "/api/v1/count",
        "/api/v1/aggregate",
        "/api/v1/tail",
        "/api/v1/fields",
        "/api/v1/openapi.json",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            paths.iter().any(|p| p == path),
            "{path} is served but not documented"
        );
    }
    let (status, _) = server.get("/api/v1/nope").expect("get");
    assert_eq!(status, 404);
    let (_, fields) = server.get("/api/v1/fields").expect("fields");
    let host = fields["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "host")
        .cloned();
    assert_eq!(
        host,
        Some(
            serde_json::json!({"name": "host", "type": "keyword", "searchable": true, "aggregatable": true})
        )
    );
    let body = server
        .search(&[
            ("q", "\"seq 2\""),
            ("fields", "id,container.name"),
            ("highlight", "true"),
            ("limit", "1"),
            ("order", "asc"),
        ])
        .expect("search");
    let hit = &body["hits"][0];
    assert_eq!(hit["id"], "doc-2-0");
    assert_eq!(hit["container"], serde_json::json!({"name": "app2"}));
    assert!(hit.get("message").is_none());
    assert_eq!(
        hit["highlight"]["message"]["html"],
        "load <b>seq</b> <b>2</b> idx 0"
    );
}
