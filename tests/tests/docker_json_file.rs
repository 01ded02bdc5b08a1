//! End to end: Docker json-file logs on disk → the real collector → gRPC → the real
//! server → tantivy → the search API. Every line must be searchable exactly once, with
//! its timestamp, stream, container name, image and labels.

use std::collections::BTreeMap;
use std::time::Duration;

use logward_e2e::{DockerLine, FakeContainer, Proc, Server, collector_args, docker_time};
use serde_json::Value;

const BASE: i64 = 1_714_557_600; // 2024-05-01T10:00:00Z
const WAIT: Duration = Duration::from_secs(60);

struct Expected {
    message: String,
    time: String,
    stream: &'static str,
    container: &'static str,
}

fn id(n: u8) -> String {
    format!("{:064x}", 0xabc0_u64 + u64::from(n))
}

/// Writes `count` numbered lines for a container and records what must arrive.
fn write_lines(
    c: &FakeContainer,
    name: &'static str,
    range: std::ops::Range<usize>,
    expected: &mut Vec<Expected>,
) {
    let mut lines = Vec::new();
    let owned: Vec<(String, String, &'static str)> = range
        .map(|i| {
            let stream = if i % 3 == 0 { "stderr" } else { "stdout" };
            (
                format!("{name} line {i} caf\u{e9} \u{1F680} \"quoted\""),
                docker_time(BASE, i as i64),
                stream,
            )
        })
        .collect();
    for (msg, time, stream) in &owned {
        lines.push(DockerLine {
            log: msg,
            stream,
            time,
            partial: false,
        });
        expected.push(Expected {
            message: msg.clone(),
            time: time.clone(),
            stream,
            container: name,
        });
    }
    c.append(&lines).expect("append");
}

fn collector(server: &Server, docker_dir: &std::path::Path, state_dir: &std::path::Path) -> Proc {
    let args = collector_args(&server.grpc_url(), docker_dir, state_dir, "e2e-host");
    Proc::spawn("logward-collector", &args, &[]).expect("collector starts")
}

fn check_exactly_once(server: &Server, expected: &[Expected]) {
    let hits = server.all_events("*").expect("search");
    let mut by_message: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for h in &hits {
        by_message
            .entry(h["message"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(h);
    }
    assert_eq!(hits.len(), expected.len(), "every line once, nothing more");
    for e in expected {
        let found = by_message
            .get(&e.message)
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(
            found.len(),
            1,
            "{:?} found {} times",
            e.message,
            found.len()
        );
        let h = found[0];
        assert_eq!(
            h["timestamp"],
            e.time.as_str(),
            "timestamp of {:?}",
            e.message
        );
        assert_eq!(h["stream"], e.stream);
        assert_eq!(h["host"], "e2e-host");
        assert_eq!(h["source"], "docker");
        assert_eq!(h["container"]["name"], e.container);
        let image = if e.container == "web" {
            "nginx:1.25"
        } else {
            "example/api:2.1"
        };
        assert_eq!(h["container"]["image"], image);
        let app = if e.container == "web" {
            "frontend"
        } else {
            "backend"
        };
        assert_eq!(h["container"]["labels"]["app"], app);
        assert!(h["container"]["id"].as_str().is_some_and(|s| s.len() == 64));
        assert!(h["received_at"].is_string());
        assert!(h["id"].is_string());
    }
}

#[test]
fn docker_lines_are_searchable_exactly_once_with_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docker_dir = tmp.path().join("containers");
    let data_dir = tmp.path().join("data");
    let state_dir = tmp.path().join("state");
    let web = FakeContainer::create(
        &docker_dir,
        &id(1),
        "web",
        "nginx:1.25",
        &[("app", "frontend"), ("com.example.tier", "edge")],
    )
    .expect("web");
    let api = FakeContainer::create(
        &docker_dir,
        &id(2),
        "api",
        "example/api:2.1",
        &[("app", "backend")],
    )
    .expect("api");
    let mut expected = Vec::new();
    write_lines(&web, "web", 0..300, &mut expected);
    write_lines(&api, "api", 0..200, &mut expected);

    // A long line that Docker split into 16 KiB chunks arrives as one event.
    let long = "x".repeat(40_000);
    let (a, rest) = long.split_at(16_384);
    let (b, c) = rest.split_at(16_384);
    let t = docker_time(BASE, 5_000);
    api.append(&[
        DockerLine {
            log: a,
            stream: "stdout",
            time: &t,
            partial: true,
        },
        DockerLine {
            log: b,
            stream: "stdout",
            time: &t,
            partial: true,
        },
        DockerLine {
            log: c,
            stream: "stdout",
            time: &t,
            partial: false,
        },
    ])
    .expect("append long");
    expected.push(Expected {
        message: long.clone(),
        time: t.clone(),
        stream: "stdout",
        container: "api",
    });

    let server = Server::start(&data_dir, &[]).expect("server starts");
    let mut coll = collector(&server, &docker_dir, &state_dir);
    server
        .wait_for_total("*", expected.len() as u64, WAIT)
        .expect("initial lines arrive");

    // Lines written while the collector runs are tailed too.
    write_lines(&web, "web", 300..350, &mut expected);
    server
        .wait_for_total("*", expected.len() as u64, WAIT)
        .expect("appended lines arrive");
    check_exactly_once(&server, &expected);

    // Searches by field, as the README documents them.
    let total =
        |q: &str| server.search(&[("q", q), ("limit", "0")]).expect("search")["total"].as_u64();
    assert_eq!(total("container.name:web"), Some(350));
    assert_eq!(total("container.labels.app:backend"), Some(201));
    assert_eq!(total("container.labels.com.example.tier:edge"), Some(350));
    assert_eq!(
        total("host:e2e-host AND stream:stderr AND container.name:api"),
        Some(67)
    );
    assert_eq!(total("\"web line 42\""), Some(1));
    assert_eq!(total("caf\u{e9}"), Some(550));
    let (status, body) = server.get("/api/v1/search?q=colour:red").expect("get");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("colour")),
        "{body}"
    );

    // A restart of both sides re-sends nothing twice and loses nothing.
    coll.terminate(Duration::from_secs(20))
        .expect("collector stops");
    let mut server = server;
    let status = server
        .proc
        .terminate(Duration::from_secs(20))
        .expect("server stops");
    assert!(status.success(), "server exit status {status}");
    let server = Server::start(&data_dir, &[]).expect("server restarts");
    let _coll = collector(&server, &docker_dir, &state_dir);
    write_lines(&api, "api", 200..210, &mut expected);
    server
        .wait_for_total("*", expected.len() as u64, WAIT)
        .expect("lines after restart arrive");
    std::thread::sleep(Duration::from_millis(500));
    check_exactly_once(&server, &expected);
}
