//! Hostile content and hostile targets: the SSRF guard against real sockets (a name that
//! resolves to loopback, a literal address, a redirect), and log lines with ANSI escapes,
//! CR/LF, a forged header, NUL and invalid UTF-8 through a real webhook receiver and a
//! real SMTP server, parsed back by Python's `email` package.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine as _;
use common::*;
use logward_alert::notify::Notifier;
use logward_alert::notify::webhook::WebhookNotifier;
use logward_alert::{Alerter, ExactMessages};
use time::OffsetDateTime;

type Seen = Arc<Mutex<Vec<Bytes>>>;

/// The hostile line: colour, CR/LF, a forged header and a forged log line, NUL, bad UTF-8.
const HOSTILE: &[u8] =
    b"\x1b[31mred\x1b[0m login ok\r\nSubject: forged\r\nBcc: evil@example.com\r\n\r\n2024-05-01 fake second line\x00 bad \xff\xfe end";

/// A receiver that records bodies and answers with `reply`.
async fn receiver(
    reply: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        post(move |b: Bytes| {
            let reply = reply.clone();
            async move {
                s.lock().unwrap().push(b);
                reply()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://localhost:{port}/hook"), seen)
}

fn ok() -> axum::response::Response {
    StatusCode::OK.into_response()
}

async fn deliver_once(alerter: &Alerter) -> logward_alert::DeliveryReport {
    let now = OffsetDateTime::now_utc();
    alerter
        .ingest(&[detection("r1", "web1", now, 1)], now)
        .unwrap();
    alerter.tick(now).unwrap();
    alerter.deliver_due(now).await
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
    let (url, seen) = receiver(ok).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(vec![webhook_channel("hook", &url, "k")]);
    cfg.allow_targets.clear();
    let alerter = Alerter::open(cfg.clone(), &dir.path().join("a")).unwrap();
    let r = deliver_once(&alerter).await;
    assert_eq!(
        (r.delivered, r.dead),
        (0, 1),
        "refused at once, not retried"
    );
    let reason = alerter.dead_letters()[0].entry.last_error.clone().unwrap();
    assert!(
        reason.contains("webhook target refused: 'localhost' resolves to a refused address")
            && reason.contains("(loopback) is not allowed"),
        "{reason}"
    );
    assert!(seen.lock().unwrap().is_empty(), "the receiver was reached");

    cfg.allow_targets = vec!["127.0.0.0/8".to_owned(), "::1".to_owned()];
    let alerter = Alerter::open(cfg, &dir.path().join("b")).unwrap();
    let r = deliver_once(&alerter).await;
    assert_eq!(
        (r.delivered, r.dead),
        (1, 0),
        "{:?}",
        alerter.dead_letters()
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_literal_loopback_url_is_refused_at_delivery_too() {
    // Config validation refuses it; a notifier built without validation refuses it as well.
    let (url, seen) = receiver(ok).await;
    let literal = url.replace("localhost", "127.0.0.1");
    let c = webhook_channel("hook", &literal, "k").webhook.unwrap();
    let n = WebhookNotifier::new(&c, Duration::from_secs(5), &[]).unwrap();
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let (map, recs) = recorders(&["hook"]);
    let alerter = Alerter::with_notifiers(
        config(vec![webhook_channel("hook", &url, "k")]),
        dir.path(),
        map,
    )
    .unwrap();
    alerter
        .ingest(&[detection("r1", "web1", now, 1)], now)
        .unwrap();
    alerter.tick(now).unwrap();
    alerter.deliver_due(now).await;
    let notification = recs[0].sent.lock().unwrap()[0].clone();
    let err = n.send(&notification, 1).await.unwrap_err();
    assert!(err.permanent, "{err}");
    assert!(
        err.message.contains("127.0.0.1 (loopback) is not allowed"),
        "{err}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (target, target_seen) = receiver(ok).await;
    let loc = target.clone();
    let (url, seen) =
        receiver(move || (StatusCode::FOUND, [(header::LOCATION, loc.clone())]).into_response())
            .await;
    let dir = tempfile::tempdir().unwrap();
    let alerter = Alerter::open(
        config_loopback(vec![webhook_channel("hook", &url, "k")]),
        dir.path(),
    )
    .unwrap();
    let r = deliver_once(&alerter).await;
    assert_eq!((r.delivered, r.dead), (0, 1));
    let reason = alerter.dead_letters()[0].entry.last_error.clone().unwrap();
    assert!(
        reason.contains("302 Found") && reason.contains("redirects are not followed"),
        "{reason}"
    );
    assert!(reason.contains(&target), "{reason}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(
        target_seen.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

fn config_loopback(
    channels: Vec<logward_alert::config::ChannelConfig>,
) -> logward_alert::AlertingConfig {
    let mut c = config(channels);
    c.allow_targets = vec!["127.0.0.0/8".to_owned(), "::1".to_owned()];
    c
}

fn hostile_detection(now: OffsetDateTime) -> (logward_alert::Detection, ExactMessages) {
    let mut d = detection("r1", "web1\r\nX-Injected: 1", now, 1);
    d.rule_title = "Rule \x1b]0;title\x07 r1".to_owned();
    d.events[0].message = String::from_utf8_lossy(HOSTILE).into_owned();
    let exact = ExactMessages::from([(d.events[0].id.clone(), HOSTILE.to_vec())]);
    (d, exact)
}

#[tokio::test]
async fn hostile_lines_reach_the_webhook_as_json_with_exact_bytes() {
    let (url, seen) = receiver(ok).await;
    let (chat_url, chat_seen) = receiver(ok).await;
    let dir = tempfile::tempdir().unwrap();
    let mut chat = webhook_channel("chat", &chat_url, "k");
    chat.webhook.as_mut().unwrap().template =
        Some(r#"{"text":"{{text}}","host":"{{host}}"}"#.to_owned());
    let alerter = Alerter::open(
        config_loopback(vec![webhook_channel("hook", &url, "k"), chat]),
        dir.path(),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let (d, exact) = hostile_detection(now);
    alerter.ingest_exact(&[d], &exact, now).unwrap();
    alerter.tick(now).unwrap();
    let r = alerter.deliver_due(now).await;
    assert_eq!(r.delivered, 2, "{:?}", alerter.dead_letters());

    let body = seen.lock().unwrap()[0].clone();
    assert!(std::str::from_utf8(&body).is_ok(), "payload is UTF-8");
    assert!(
        !body.contains(&0x1b) && !body.contains(&0) && !body.contains(&b'\r'),
        "raw control bytes in JSON"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
    let sample = &v["alerts"][0]["samples"][0];
    assert_eq!(sample["message"], String::from_utf8_lossy(HOSTILE).as_ref());
    let b64 = sample["message_b64"]
        .as_str()
        .expect("message_b64 for invalid UTF-8");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes, HOSTILE, "exact bytes recovered");
    assert_eq!(
        v["alerts"][0]["host"], "web1\r\nX-Injected: 1",
        "payload values are exact"
    );

    // The template feeds people: values are visibly escaped inside valid JSON.
    let chat_body = chat_seen.lock().unwrap()[0].clone();
    let c: serde_json::Value = serde_json::from_slice(&chat_body).expect("valid JSON");
    let text = c["text"].as_str().unwrap();
    assert!(
        text.contains(r"\u{1b}[31mred\u{1b}[0m login ok\r\nSubject: forged"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("Subject:") || l.starts_with("2024-05-01")),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\0'), "{text}");
    assert_eq!(c["host"], r"web1\r\nX-Injected: 1");
}

/// Parses a raw mail with Python's `email` package: header names, subject, text and HTML.
fn parse_mail(raw: &str) -> serde_json::Value {
    const PY: &str = r#"
import email, email.policy, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
parts = {}
for p in m.walk():
    if p.get_content_maintype() == "text":
        parts[p.get_content_subtype()] = p.get_content()
print(json.dumps({"names": list(m.keys()), "subject": str(m["subject"]), "defects": len(m.defects),
                  "text": parts.get("plain"), "html": parts.get("html")}))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", PY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn hostile_lines_in_email_forge_no_header_and_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let port = free_port();
    let Some(_smtp) = smtp(port, &maildir) else {
        return;
    };
    let mut ch = email_channel("mail", port);
    ch.email.as_mut().unwrap().subject = "[logward] {rule_title} on {host}".to_owned();
    let alerter = Alerter::open(config(vec![ch]), &dir.path().join("data")).unwrap();
    let now = OffsetDateTime::now_utc();
    let (d, exact) = hostile_detection(now);
    alerter.ingest_exact(&[d], &exact, now).unwrap();
    alerter.tick(now).unwrap();
    let r = alerter.deliver_due(now).await;
    assert_eq!(
        r.delivered,
        1,
        "{:?}",
        alerter.health().channels[0].last_error
    );

    let raw = &mails(&maildir, 1)[0];
    assert!(
        !raw.contains('\u{1b}') && !raw.contains('\0'),
        "raw control characters in the mail"
    );
    let m = parse_mail(raw);
    let names: Vec<String> = m["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_ascii_lowercase())
        .collect();
    for bad in ["bcc", "x-injected"] {
        assert!(
            !names.iter().any(|n| n == bad),
            "injected header {bad}: {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| *n == "subject").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        m["subject"],
        r"[logward] Rule \u{1b}]0;title\u{7} r1 on web1\r\nX-Injected: 1"
    );
    let text = m["text"].as_str().unwrap();
    for line in text.lines() {
        assert!(
            !line.starts_with("Subject:")
                && !line.starts_with("Bcc:")
                && !line.starts_with("2024-05-01"),
            "forged line {line:?} in {text}"
        );
    }
    assert!(text.contains(r"event ev-1: \u{1b}[31mred\u{1b}[0m login ok\r\nSubject: forged\r\nBcc: evil@example.com\r\n\r\n2024-05-01 fake second line\0 bad"), "{text}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(HOSTILE);
    assert!(
        text.contains(&format!("exact bytes (base64): {b64}")),
        "{text}"
    );
    let html = m["html"].as_str().unwrap();
    assert!(
        html.contains(r"\u{1b}[31mred") && !html.contains('\u{1b}'),
        "{html}"
    );
}
