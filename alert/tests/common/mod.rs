//! Shared test helpers: detections, configs, a recording notifier and a real SMTP server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logward_alert::config::{AlertingConfig, ChannelConfig, EmailConfig, SmtpTls, WebhookConfig};
use logward_alert::notification::Notification;
use logward_alert::notify::{Notifier, NotifyError, SendFuture};
use logward_alert::{Detection, Level, SampleEvent};
use time::OffsetDateTime;

pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_714_557_600).unwrap()
}

pub fn detection(rule: &str, host: &str, at: OffsetDateTime, n: usize) -> Detection {
    Detection {
        rule_id: rule.to_owned(),
        rule_title: format!("Rule {rule}"),
        level: Level::High,
        tags: vec!["attack.t1059".to_owned()],
        group_key: BTreeMap::from([("host".to_owned(), host.to_owned())]),
        timestamp: at,
        host: host.to_owned(),
        container_name: Some("nginx".to_owned()),
        container_image: Some("nginx:1.25".to_owned()),
        events: vec![SampleEvent {
            id: format!("ev-{n}"),
            message: format!("GET /x?id={n} <script>alert(1)</script>"),
        }],
        fields: BTreeMap::new(),
        query: None,
    }
}

/// A channel config with a dummy webhook (the tests plug their own notifier in).
pub fn channel(name: &str) -> ChannelConfig {
    let mut c: ChannelConfig = toml::from_str(&format!(
        "name = \"{name}\"\n[webhook]\nurl = \"http://127.0.0.1:9/\"\n"
    ))
    .unwrap();
    c.retry.initial_backoff = logward_alert::duration::HumanDuration::secs(1);
    c
}

pub fn email_channel(name: &str, port: u16) -> ChannelConfig {
    let mut c = channel(name);
    c.webhook = None;
    c.email = Some(EmailConfig {
        host: "127.0.0.1".to_owned(),
        port: Some(port),
        tls: SmtpTls::Plain,
        ca_file: None,
        username: None,
        password: None,
        from: "logward <logward@example.com>".to_owned(),
        to: vec!["oncall@example.com".to_owned()],
        cc: vec!["audit@example.com".to_owned()],
        subject: "[logward] {level}: {rule_title} on {host}".to_owned(),
    });
    c.flood.group_wait = logward_alert::duration::HumanDuration::default();
    c
}

pub fn webhook_channel(name: &str, url: &str, secret: &str) -> ChannelConfig {
    let mut c = channel(name);
    c.webhook = Some(WebhookConfig {
        url: url.to_owned(),
        headers: BTreeMap::from([("x-team".to_owned(), "sec".to_owned())]),
        secret: Some(secret.to_owned()),
        template: None,
        allow_targets: Vec::new(),
    });
    c.flood.group_wait = logward_alert::duration::HumanDuration::default();
    c
}

pub fn config(channels: Vec<ChannelConfig>) -> AlertingConfig {
    AlertingConfig {
        channels,
        // The receivers of these tests listen on loopback, which the SSRF guard refuses
        // unless allow-listed.
        allow_targets: vec!["127.0.0.1/32".to_owned()],
        ..AlertingConfig::default()
    }
}

/// The test double of a channel: records what it is asked to send; can be made to fail.
#[derive(Default)]
pub struct Recorder {
    pub sent: Mutex<Vec<Notification>>,
    pub fail: Mutex<bool>,
}

impl Notifier for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn send<'a>(&'a self, n: &'a Notification, _attempt: u32) -> SendFuture<'a> {
        Box::pin(async move {
            if *self.fail.lock().unwrap() {
                return Err(NotifyError::transient("recorder is down"));
            }
            self.sent.lock().unwrap().push(n.clone());
            Ok(())
        })
    }
}

pub type Notifiers = BTreeMap<String, Arc<dyn Notifier>>;

pub fn recorders(names: &[&str]) -> (Notifiers, Vec<Arc<Recorder>>) {
    let recs: Vec<Arc<Recorder>> = names
        .iter()
        .map(|_| Arc::new(Recorder::default()))
        .collect();
    let map = names
        .iter()
        .zip(&recs)
        .map(|(n, r)| ((*n).to_owned(), Arc::clone(r) as Arc<dyn Notifier>))
        .collect();
    (map, recs)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server: Debian's aiosmtpd writing every message into a Maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_with_aiosmtpd() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts aiosmtpd on `port`; `None` (with a message) when it is not installed, a panic
/// when it is missing under `CI=true`.
pub fn smtp(port: u16, maildir: &Path) -> Option<Smtp> {
    let Some(py) = python_with_aiosmtpd() else {
        let msg =
            "aiosmtpd is not installed (apt-get install python3-aiosmtpd): skipping the SMTP test";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg}, which CI=true forbids"
        );
        eprintln!("{msg}");
        return None;
    };
    let child = Command::new(py)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn aiosmtpd");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Smtp {
        child,
        port,
        maildir: maildir.to_owned(),
    })
}

/// The raw messages in the Maildir, waiting up to 30 s for at least `n`.
pub fn mails(maildir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut out: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .map(|rd| {
                rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if out.len() >= n || Instant::now() > deadline {
            out.sort();
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
