//! Email through a real SMTP server (aiosmtpd on loopback), and the outbox across a restart.

mod common;

use common::*;
use logward_alert::Alerter;
use time::{Duration, OffsetDateTime};

/// Decodes quoted-printable soft breaks and `=XX` escapes (enough for these checks).
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'=', Some(v)) = (b[i], hex) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn email_arrives_in_the_mailbox_with_escaped_content() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let port = free_port();
    let Some(_smtp) = smtp(port, &maildir) else {
        return;
    };
    let alerter = Alerter::open(
        config(vec![email_channel("mail", port)]),
        &dir.path().join("data"),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let mut d = detection("r1", "web1\r\nBcc: evil@example.com", now, 1);
    d.events[0].message = "GET /?q=<img src=x onerror=alert(1)> & \"quoted\"".to_owned();
    alerter.ingest(&[d], now).unwrap();
    assert_eq!(alerter.tick(now).unwrap(), 1);
    let r = alerter.deliver_due(now).await;
    assert_eq!(
        r.delivered,
        1,
        "{:?} {:?}",
        r,
        alerter.health().channels[0].last_error
    );

    let mails = mails(&maildir, 1);
    assert_eq!(mails.len(), 1);
    let raw = &mails[0];
    let headers = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or(raw)
        .split("\n\n")
        .next()
        .unwrap_or(raw);
    assert!(headers.contains("To: oncall@example.com"), "{headers}");
    assert!(headers.contains("Cc: audit@example.com"), "{headers}");
    assert!(
        headers.contains("Subject: [logward] high: Rule r1 on web1"),
        "{headers}"
    );
    assert!(
        !raw.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "header injection: {raw}"
    );
    let key = &alerter.alerts(&Default::default())[0];
    assert_eq!(key.count, 1);
    let body = unqp(raw);
    assert!(
        body.contains("text/plain") && body.contains("text/html"),
        "{body}"
    );
    assert!(
        body.contains("&lt;img src=3Dx")
            || body.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;"),
        "{body}"
    );
    let html = body.split("text/html").nth(1).unwrap_or_default();
    assert!(
        !html.contains("<img"),
        "unescaped markup in the HTML part: {html}"
    );
    assert!(html.contains("/api/v1/search?q="), "{html}");
    assert!(
        body.contains("1 more since the last notification"),
        "{body}"
    );
}

#[tokio::test]
async fn outbox_survives_a_restart_while_the_relay_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let data = dir.path().join("data");
    let port = free_port();
    let now = OffsetDateTime::now_utc();
    {
        // Relay down: the attempt fails, the notification stays in the outbox.
        let alerter = Alerter::open(config(vec![email_channel("mail", port)]), &data).unwrap();
        alerter
            .ingest(
                &[
                    detection("r1", "web1", now, 1),
                    detection("r2", "web2", now, 2),
                ],
                now,
            )
            .unwrap();
        assert_eq!(alerter.tick(now).unwrap(), 2);
        let r = alerter.deliver_due(now).await;
        assert_eq!((r.delivered, r.failed), (0, 2));
        let h = alerter.health();
        assert_eq!(h.down(), ["mail"]);
        assert!(
            h.channels[0]
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("smtp")
        );
        assert_eq!(alerter.pending().len(), 2);
        // Dropped mid-way: no shutdown, nothing flushed beyond what ingest/tick synced.
    }
    let Some(_smtp) = smtp(port, &maildir) else {
        return;
    };
    let alerter = Alerter::open(config(vec![email_channel("mail", port)]), &data).unwrap();
    let pending = alerter.pending();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|e| e.attempts == 1));
    let r = alerter.deliver_due(now + Duration::hours(1)).await;
    assert_eq!(
        r.delivered,
        2,
        "{:?}",
        alerter.health().channels[0].last_error
    );
    assert!(alerter.pending().is_empty());
    let mails = mails(&maildir, 2);
    assert_eq!(mails.len(), 2);
    for e in &pending {
        assert!(
            mails
                .iter()
                .any(|m| m.contains(&format!("<{}@logward>", e.id))),
            "idempotency key as Message-ID"
        );
    }
    assert!(alerter.health().all_up());
    assert_eq!(
        alerter.alerts(&Default::default()).len(),
        2,
        "alerts survive too"
    );
}

#[tokio::test]
async fn starttls_to_a_relay_without_tls_fails_and_never_sends_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let port = free_port();
    let Some(_smtp) = smtp(port, &maildir) else {
        return;
    };
    let mut ch = email_channel("mail", port);
    if let Some(e) = ch.email.as_mut() {
        e.tls = logward_alert::config::SmtpTls::Starttls;
    }
    let alerter = Alerter::open(config(vec![ch]), &dir.path().join("data")).unwrap();
    let now = OffsetDateTime::now_utc();
    alerter
        .ingest(&[detection("r1", "web1", now, 1)], now)
        .unwrap();
    alerter.tick(now).unwrap();
    let r = alerter.deliver_due(now).await;
    assert_eq!((r.delivered, r.failed), (0, 1));
    assert_eq!(alerter.pending().len(), 1, "kept for a retry");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(got, 0, "a message went out without TLS");
}
