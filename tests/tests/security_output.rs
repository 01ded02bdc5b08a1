//! Hostile content end to end (issue 9): one log line with an ANSI colour escape, CR/LF,
//! a forged `Subject:` header, a forged second log line, a NUL and invalid UTF-8 goes
//! into the real server over gRPC (a Docker json-file line cannot carry invalid UTF-8),
//! matches a Sigma rule the test writes, and comes out
//! - of the search API as valid JSON (control characters JSON-escaped),
//! - as a mail in a real SMTP server (aiosmtpd), parsed by Python's `email` package: no
//!   injected header, one `Subject`, and a body where the line stays on one line with
//!   visible escapes,
//! - as a webhook at a real HTTP receiver: valid JSON with the line's text.
//!
//! Exact bytes: when the server hands the alerter the raw line (`message_b64` in the
//! payload) or the API returns it, the test checks they are byte-exact.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use logward_e2e::Server;
use logward_e2e::grpc::LoadClient;
use logward_e2e::sinks::{Smtp, aiosmtpd_available, free_port, receiver, wait_until};
use logward_proto::{Batch, Container, Event, Source, StreamKind};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
const RULE_ID: &str = "5ec0d7e1-0a1e-4b5e-9d1c-6f2a7b3c4d5e";

/// Colour, CR/LF, a forged header and log line, NUL and bytes that are not UTF-8.
const HOSTILE: &[u8] = b"hostile-7f3a \x1b[31mRED\x1b[0m ok\r\nSubject: forged\r\nBcc: evil@example.com\r\n\r\n2024-05-01T00:00:00Z web1 sshd: fake second line\x00 bad \xff\xfe\xc3 end";

/// Parses a raw mail with Python's `email` package: header names, subject, text, HTML.
fn parse_mail(raw: &[u8]) -> Value {
    const PY: &str = r#"
import email, email.policy, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
parts = {}
for p in m.walk():
    if p.get_content_maintype() == "text":
        parts[p.get_content_subtype()] = p.get_content()
print(json.dumps({"names": list(m.keys()), "subject": str(m["subject"]),
                  "text": parts.get("plain"), "html": parts.get("html")}))
"#;
    let mut child = Command::new(PYTHON)
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(raw)
        .expect("write mail");
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success(), "python could not parse the mail");
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// Standard base64 (padded) decoding, enough for the checks here.
fn b64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = A.iter().position(|&a| a == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn config(rules_dir: &Path, smtp_port: u16, hook_port: u16) -> String {
    format!(
        r#"rules_dir = {rules_dir:?}

[alerting]
tick = "1s"
# The SMTP sink and the webhook receiver of this test listen on loopback.
allow_targets = ["127.0.0.1/32"]

[[alerting.channels]]
name = "mail"
[alerting.channels.flood]
group_wait = "0s"
realert = "0s"
[alerting.channels.email]
host = "127.0.0.1"
port = {smtp_port}
tls = "plain"
from = "logward <logward@example.com>"
to = ["oncall@example.com"]
subject = "[logward] {{level}}: {{rule_title}} on {{host}} {{container}}"

[[alerting.channels]]
name = "hook"
[alerting.channels.flood]
group_wait = "0s"
realert = "0s"
[alerting.channels.webhook]
url = "http://127.0.0.1:{hook_port}/hook"
"#
    )
}

const RULE: &str = "title: Hostile marker line
id: 5ec0d7e1-0a1e-4b5e-9d1c-6f2a7b3c4d5e
status: test
level: high
logsource: {product: docker}
detection:
  sel:
    message|contains: hostile-7f3a
  condition: sel
";

/// Sends the hostile line as collector `sec-out`; returns its event id.
fn send_hostile(server: &Server) -> String {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut client, hw) = LoadClient::connect(&server.grpc_url(), "sec-out")
            .await
            .expect("connect");
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
        let sequence = hw + 1;
        let event = Event {
            timestamp_nanos: now,
            host: "web1".to_owned(),
            source: Source::Docker as i32,
            message: HOSTILE.to_vec().into(),
            stream: StreamKind::Stdout as i32,
            container: Some(Container {
                name: "webapp\r\nX-Container: forged".to_owned(),
                image: "acme/webapp:1.4".to_owned(),
                ..Default::default()
            }),
            fields: Default::default(),
        };
        client
            .send(Batch {
                collector_id: "sec-out".to_owned(),
                sequence,
                events: vec![event],
            })
            .await
            .expect("ack");
        format!("sec-out-{sequence}-0")
    })
}

#[test]
fn hostile_line_is_escaped_in_api_email_and_webhook() {
    if !aiosmtpd_available("the hostile output test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("hostile.yml"), RULE).expect("rule");
    let (smtp_port, hook_port) = (free_port(), free_port());
    let maildir = tmp.path().join("maildir");
    let _smtp = Smtp::start(smtp_port, &maildir);
    let hooks = receiver(hook_port);
    let server = Server::start_with_config(
        &tmp.path().join("data"),
        &config(&rules, smtp_port, hook_port),
    )
    .expect("server");
    let id = send_hostile(&server);
    let lossy = String::from_utf8_lossy(HOSTILE).into_owned();

    // (a) The search API: valid JSON, control characters escaped by JSON, text exact up to
    // the invalid bytes.
    let q = format!("id:\"{id}\"");
    server
        .wait_for_total(&q, 1, Duration::from_secs(30))
        .expect("event searchable");
    let url = format!(
        "http://{}/api/v1/search?q={}",
        server.http,
        logward_e2e::encode(&q)
    );
    let raw = reqwest::blocking::get(&url)
        .and_then(|r| r.bytes())
        .expect("search");
    assert!(
        !raw.iter().any(|&b| b < 0x20),
        "raw control bytes in the API's JSON"
    );
    let body: Value = serde_json::from_slice(&raw).expect("the API answers valid JSON");
    let hit = &body["hits"][0];
    assert_eq!(hit["message"], lossy.as_str(), "{hit}");
    assert_eq!(hit["fields"]["logward.invalid_utf8"], "true", "{hit}");
    let b64 = hit["message_b64"]
        .as_str()
        .unwrap_or_else(|| panic!("no message_b64 for an invalid UTF-8 line: {hit}"));
    assert_eq!(b64_decode(b64), HOSTILE, "API exact bytes");

    // (b) The webhook: valid JSON, the line's text, exact bytes when the server passes them.
    let hook = wait_until("webhook", Duration::from_secs(60), || {
        hooks.lock().expect("lock").first().map(|h| h.body.clone())
    });
    assert!(
        !hook.iter().any(|&b| b < 0x20),
        "raw control bytes in the webhook JSON"
    );
    let v: Value = serde_json::from_slice(&hook).expect("the webhook is valid JSON");
    let alert = &v["alerts"][0];
    assert_eq!(alert["rule_id"], RULE_ID, "{v}");
    let sample = &alert["samples"][0];
    assert_eq!(sample["id"], id.as_str());
    assert_eq!(sample["message"], lossy.as_str(), "{sample}");
    assert_eq!(alert["container"], "webapp\r\nX-Container: forged");
    let b64 = sample["message_b64"]
        .as_str()
        .unwrap_or_else(|| panic!("no message_b64 in the webhook sample: {sample}"));
    assert_eq!(b64_decode(b64), HOSTILE, "webhook exact bytes");

    // (b) The mail: one Subject, no injected header, the line kept on one line, escaped.
    let mail = wait_until("mail", Duration::from_secs(60), || {
        let dir = std::fs::read_dir(maildir.join("new")).ok()?;
        dir.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .next()
    });
    assert!(
        !mail.iter().any(|&b| b == 0x1b || b == 0),
        "raw ESC or NUL in the mail"
    );
    let m = parse_mail(&mail);
    let names: Vec<String> = m["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_ascii_lowercase())
        .collect();
    for bad in ["bcc", "x-container"] {
        assert!(!names.iter().any(|n| n == bad), "injected {bad}: {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| *n == "subject").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        m["subject"],
        r"[logward] high: Hostile marker line on web1 webapp\r\nX-Container: forged"
    );
    let text = m["text"].as_str().expect("text part");
    for line in text.lines() {
        assert!(
            !line.starts_with("Subject:")
                && !line.starts_with("Bcc:")
                && !line.starts_with("2024-05-01T00:00:00Z"),
            "forged line {line:?} in\n{text}"
        );
    }
    let escaped = format!(
        r"event {id}: hostile-7f3a \u{{1b}}[31mRED\u{{1b}}[0m ok\r\nSubject: forged\r\nBcc: evil@example.com\r\n\r\n2024-05-01T00:00:00Z web1 sshd: fake second line\0 bad "
    );
    assert!(text.contains(&escaped), "{text}");
    let html = m["html"].as_str().expect("html part");
    assert!(html.contains(r"\u{1b}[31mRED"), "{html}");
    assert!(!html.contains('\u{1b}') && !html.contains('\0'), "{html}");
}
