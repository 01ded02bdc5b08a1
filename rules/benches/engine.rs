//! Throughput at 10, 100 and 1,000 rules on realistic lines (sshd, sudo, nginx, JSON app
//! logs), and memory per correlation key (RSS growth over 100,000 keys).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logward_rules::{Engine, EngineConfig, EventRef, OwnedEvent, documents_from_str};

const WORDS: &[&str] = &[
    "invalid user",
    "segfault",
    "authentication failure",
    "reverse shell",
    "nc -e",
    "chmod 777",
    "wget http",
    "curl -s",
    "/etc/shadow",
    "base64 -d",
    "xmrig",
    "kinsing",
    "docker.sock",
    "iptables -F",
    "useradd",
    "passwd",
    "crontab",
    "ld.so.preload",
    "masscan",
    "hydra",
];

/// `n` rules: a mix of keyword rules, field rules and rules without literals, over the
/// shipped logsources, each with its own literals.
fn rules(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let w = WORDS[i % WORDS.len()];
        let body = match i % 5 {
            0 => format!(
                "logsource: {{product: linux, service: sshd}}\ndetection:\n  kw: ['{w} {i}x']\n  condition: kw"
            ),
            1 => format!(
                "logsource: {{product: linux, service: sudo}}\ndetection:\n  sel:\n    message|contains|all: ['{w}', 'rule{i}']\n  condition: sel"
            ),
            2 => format!(
                "logsource: {{product: docker}}\ndetection:\n  sel:\n    container.name: web\n    message|contains: '{w}-{i}'\n  filter: {{stream: stdout}}\n  condition: sel and not filter"
            ),
            3 => format!(
                "logsource: {{product: docker}}\ndetection:\n  sel:\n    level: error\n    msg|startswith: 'panic {i} {w}'\n  condition: sel"
            ),
            _ => format!(
                "logsource: {{product: linux}}\ndetection:\n  sel:\n    fields.SYSLOG_IDENTIFIER|endswith: 'd{i}'\n    message|re: 'user=[a-z]+{i}'\n  condition: sel"
            ),
        };
        s.push_str(&format!(
            "title: rule {i}\nid: r{i}\nlevel: medium\n{body}\n---\n"
        ));
    }
    s
}

fn events() -> Vec<OwnedEvent> {
    let lines = [
        r#"{"host":"web1","source":"journald","message":"Failed password for invalid user admin from 203.0.113.7 port 51122 ssh2","fields":{"SYSLOG_IDENTIFIER":"sshd","_SYSTEMD_UNIT":"ssh.service","_TRANSPORT":"syslog"}}"#,
        r#"{"host":"web1","source":"journald","message":"alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx","fields":{"SYSLOG_IDENTIFIER":"sudo","_TRANSPORT":"syslog"}}"#,
        r#"{"host":"web1","source":"docker","stream":"stdout","message":"203.0.113.7 - - [01/May/2024:10:00:07 +0000] \"GET /index.php?id=1 HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0\"","container":{"name":"web","image":"nginx:1.25","labels":{"app":"frontend"}}}"#,
        r#"{"host":"web1","source":"docker","stream":"stderr","message":"{\"level\":\"error\",\"msg\":\"db timeout\",\"request_id\":\"8f2c\"}","container":{"name":"api","image":"api:3"},"fields":{"level":"error","msg":"db timeout after 3000ms","request_id":"8f2c"}}"#,
        r#"{"host":"db1","source":"journald","message":"pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)","fields":{"SYSLOG_IDENTIFIER":"CRON","_TRANSPORT":"syslog"}}"#,
    ];
    lines
        .iter()
        .map(|l| OwnedEvent::from_json(&serde_json::from_str(l).unwrap_or_default()))
        .collect()
}

fn throughput(c: &mut Criterion) {
    let evs = events();
    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(evs.len() as u64));
    for n in [10, 100, 1000] {
        let docs = match documents_from_str(&rules(n)) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{:?}", &e[..1]);
                Vec::new()
            }
        };
        let mut engine = match Engine::new(&docs, &EngineConfig::default()) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{:?}", &e[..1]);
                continue;
            }
        };
        let probe = OwnedEvent::from_json(&serde_json::json!({"source": "journald",
            "message": "x invalid user 0x", "fields": {"SYSLOG_IDENTIFIER": "sshd"}}));
        let fired = engine
            .process(&probe, 0, &EventRef { index: 0, id: None })
            .len();
        eprintln!(
            "{n} rules: {} compiled, probe fired {fired}",
            engine.rule_count()
        );
        let mut i = 0u64;
        g.bench_function(format!("{n}_rules"), |b| {
            b.iter(|| {
                let mut hits = 0;
                for e in &evs {
                    i += 1;
                    hits += engine.process(e, 0, &EventRef { index: i, id: None }).len();
                }
                hits
            });
        });
    }
    g.finish();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn correlation_memory(_c: &mut Criterion) {
    let text = "title: base\nid: base\ndetection:\n  sel: {action: fail}\n  condition: sel\n---\ntitle: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [base]\n  group-by: [user]\n  timespan: 1h\n  condition: {gte: 1000000}\n";
    let docs = documents_from_str(text).unwrap_or_default();
    let mut cfg = EngineConfig::default();
    cfg.limits.max_group_keys = 1_000_000;
    let Ok(mut engine) = Engine::new(&docs, &cfg) else {
        return;
    };
    let keys = 100_000u64;
    let before = rss_bytes();
    for i in 0..keys {
        let ev = OwnedEvent::new()
            .with("action", "fail")
            .with("user", &format!("user-{i:08}"));
        engine.process(
            &ev,
            i64::try_from(i).unwrap_or(0),
            &EventRef { index: i, id: None },
        );
    }
    let after = rss_bytes();
    eprintln!(
        "correlation memory: {} keys, {} bytes/key (RSS growth, one event per key, 12-char key)",
        engine.stats().correlations[0].keys,
        after.saturating_sub(before) / keys
    );
}

criterion_group!(benches, throughput, correlation_memory);
criterion_main!(benches);
