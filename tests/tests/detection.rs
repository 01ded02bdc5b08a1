//! Live detection end to end: the real server with a rules directory, events over gRPC,
//! detections in `/api/v1/detections`; hot reload (add, break, fix a rule file); and a
//! restart (graceful and `kill -9`) that re-fires nothing for resent batches.

use std::path::Path;
use std::time::{Duration, Instant};

use logward_e2e::Server;
use logward_e2e::grpc::LoadClient;
use logward_proto::{Event, Source, Values};
use serde_json::Value;

const COLLECTOR: &str = "detect-e2e";

const SSH_RULES: &str = r"title: Test root ssh failure
id: test-root-fail
status: test
level: high
logsource: {product: linux, service: sshd}
detection:
  sel: {ssh.event: failed_password, ssh.user: root}
  condition: sel
---
title: Test failed login
id: test-failed-login
name: test_failed_login
status: test
level: low
logsource: {product: linux, service: sshd}
detection:
  sel: {ssh.event: failed_password}
  condition: sel
---
title: Test brute force
id: test-brute
status: test
level: critical
correlation:
  type: event_count
  rules: [test_failed_login]
  group-by: [ssh.src_ip]
  timespan: 5m
  condition: {gte: 3}
";

const SUDO_RULE: &str = r"title: Test sudo shell
id: test-sudo-shell
status: test
level: medium
logsource: {product: linux, service: sudo}
detection:
  sel: {sudo.event: command, sudo.command|endswith: [/bash, /sh]}
  condition: sel
";

fn journald(identifier: &str, message: &str, i: i64) -> Event {
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "SYSLOG_IDENTIFIER".to_owned(),
        Values {
            values: vec![identifier.to_owned()],
        },
    );
    let now = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0);
    Event {
        timestamp_nanos: now + i,
        host: "web1".into(),
        source: Source::Journald as i32,
        message: message.as_bytes().to_vec().into(),
        stream: 0,
        container: None,
        fields,
    }
}

fn failures(ip: &str) -> Vec<Event> {
    (0..3)
        .map(|i| {
            journald(
                "sshd",
                &format!(
                    "Failed password for root from {ip} port {} ssh2",
                    50_000 + i
                ),
                i,
            )
        })
        .collect()
}

/// Sends one batch with `sequence` and waits for its ack.
fn send(rt: &tokio::runtime::Runtime, server: &Server, sequence: u64, events: Vec<Event>) {
    let url = server.grpc_url();
    rt.block_on(async move {
        let (mut client, _) = LoadClient::connect(&url, COLLECTOR).await.expect("connect");
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let batch = std::sync::Mutex::new(Some(events));
        client
            .send_range(
                sequence,
                sequence,
                1,
                |_| batch.lock().expect("lock").take().unwrap_or_default(),
                &acked,
            )
            .await
            .expect("send");
    });
}

fn detections(server: &Server, query: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/api/v1/detections?{query}"))
        .expect("get detections");
    assert_eq!(status, 200, "{body}");
    body["detections"].as_array().cloned().unwrap_or_default()
}

/// Polls until `query` lists at least `n` detections; returns them and the time taken.
fn wait_detections(server: &Server, query: &str, n: usize) -> (Vec<Value>, Duration) {
    let started = Instant::now();
    loop {
        let list = detections(server, query);
        if list.len() >= n {
            return (list, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} of {n} detections for {query}: {list:?}",
            list.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rules(server: &Server) -> Value {
    let (status, body) = server.get("/api/v1/rules").expect("get rules");
    assert_eq!(status, 200, "{body}");
    body
}

fn wait_rules(server: &Server, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let body = rules(server);
        if ok(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "rules never {what}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has_rule(body: &Value, id: &str) -> bool {
    body["rules"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x["id"] == id))
}

fn start(data: &Path, config: &Path) -> Server {
    Server::start(data, &["--config".into(), config.display().to_string()]).expect("server starts")
}

#[test]
fn live_detection_hot_reload_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let dir = tmp.path().join("rules");
    std::fs::create_dir_all(&dir).expect("rules dir");
    std::fs::write(dir.join("ssh.yml"), SSH_RULES).expect("write rules");
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "rules_dir = {:?}\n[rules]\nbuiltin = false\nreload_interval_ms = 200\n",
            dir.display().to_string()
        ),
    )
    .expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut server = start(&data, &config);

    // Extraction feeds the rules: three failures fire the rule thrice and the correlation once.
    let sent = Instant::now();
    send(&rt, &server, 1, failures("203.0.113.5"));
    let (brute, latency) = wait_detections(&server, "rule=test-brute", 1);
    eprintln!(
        "detection latency (send to listed, incl. ack): {latency:?} / {:?}",
        sent.elapsed()
    );
    assert_eq!(brute.len(), 1);
    assert_eq!(brute[0]["group"]["ssh.src_ip"], "203.0.113.5");
    assert_eq!(brute[0]["level"], "critical");
    assert_eq!(brute[0]["event_ids"].as_array().map(Vec::len), Some(3));
    assert_eq!(brute[0]["event_ids"][0], format!("{COLLECTOR}-1-0"));
    let (single, _) = wait_detections(&server, "rule=test-root-fail", 3);
    assert_eq!(single.len(), 3);
    assert!(
        detections(&server, "rule=test-failed-login").is_empty(),
        "correlated rule without generate fires alone"
    );
    assert_eq!(detections(&server, "level=critical").len(), 1);
    assert_eq!(detections(&server, "level=high,critical").len(), 4);
    assert_eq!(detections(&server, "limit=2").len(), 2);
    assert!(detections(&server, "until=now-1h").is_empty());
    for bad in [
        "level=severe",
        "limit=0",
        "limit=x",
        "since=yesterday",
        "colour=red",
        "rule=a&rule=b",
    ] {
        let (status, body) = server
            .get(&format!("/api/v1/detections?{bad}"))
            .expect("get");
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // The extracted fields are indexed.
    server
        .wait_for_total(
            "fields.ssh.src_ip:\"203.0.113.5\"",
            3,
            Duration::from_secs(10),
        )
        .expect("extracted fields searchable");

    // Hot reload: add a file.
    std::fs::write(dir.join("sudo.yml"), SUDO_RULE).expect("write sudo rule");
    wait_rules(&server, "lists the new file", |b| {
        has_rule(b, "test-sudo-shell")
    });
    let sudo = "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash";
    send(&rt, &server, 2, vec![journald("sudo", sudo, 0)]);
    wait_detections(&server, "rule=test-sudo-shell", 1);
    // Break it: the previous version stays active, the error is listed.
    std::fs::write(
        dir.join("sudo.yml"),
        SUDO_RULE.replace("condition: sel", "condition: sel and nothing"),
    )
    .expect("break");
    let body = wait_rules(&server, "reports the broken file", |b| {
        b["errors"].as_array().is_some_and(|e| {
            e.iter().any(|x| {
                x["source"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("sudo.yml"))
            })
        })
    });
    assert!(has_rule(&body, "test-sudo-shell"), "{body}");
    send(&rt, &server, 3, vec![journald("sudo", sudo, 1)]);
    wait_detections(&server, "rule=test-sudo-shell", 2);
    // Fix it (with a new level): the error is gone and the new version is active.
    std::fs::write(
        dir.join("sudo.yml"),
        SUDO_RULE.replace("level: medium", "level: high"),
    )
    .expect("fix");
    wait_rules(&server, "clears the error", |b| {
        b["errors"].as_array().is_some_and(Vec::is_empty)
            && b["rules"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|x| x["id"] == "test-sudo-shell" && x["level"] == "high")
            })
    });
    send(&rt, &server, 4, vec![journald("sudo", sudo, 2)]);
    let (list, _) = wait_detections(&server, "rule=test-sudo-shell", 3);
    assert_eq!(list[0]["level"], "high");

    // Graceful restart, then the same batches again: nothing fires twice.
    let before = detections(&server, "limit=10000").len();
    server
        .proc
        .terminate(Duration::from_secs(20))
        .expect("terminate");
    let mut server = start(&data, &config);
    assert_eq!(
        detections(&server, "limit=10000").len(),
        before,
        "detections survive a restart"
    );
    send(&rt, &server, 1, failures("203.0.113.5"));
    send(&rt, &server, 2, vec![journald("sudo", sudo, 0)]);

    // kill -9 right after a detection, then the collector resends the batch.
    send(&rt, &server, 5, failures("198.51.100.9"));
    wait_detections(&server, "rule=test-brute", 2);
    let before = detections(&server, "limit=10000").len();
    server.proc.kill9();
    let server = start(&data, &config);
    send(&rt, &server, 5, failures("198.51.100.9"));
    // Then a fresh brute force: once its detection is there, the detector has seen
    // everything sent before it (batches are evaluated in order).
    send(&rt, &server, 6, failures("192.0.2.77"));
    wait_detections(&server, "rule=test-brute", 3);
    let after = detections(&server, "limit=10000");
    let marker = |d: &Value| {
        d["event_ids"].as_array().is_some_and(|ids| {
            ids.iter()
                .any(|i| i.as_str().is_some_and(|i| i.contains("-6-")))
        })
    };
    let old: Vec<&Value> = after.iter().filter(|d| !marker(d)).collect();
    assert_eq!(
        old.len(),
        before,
        "a restart re-fired detections: {after:?}"
    );
    assert_eq!(detections(&server, "rule=test-brute").len(), 3);
}
