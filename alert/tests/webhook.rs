//! Webhooks to a real HTTP receiver: signature, headers, payload, templates, dead letters.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{Hmac, Mac};
use logward_alert::Alerter;
use sha2::Sha256;
use time::OffsetDateTime;

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver that records requests and answers `status`.
async fn receiver(status: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        post(move |h: HeaderMap, b: Bytes| async move {
            s.lock().unwrap().push((h, b));
            status
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// What docs/ALERTING.md tells receivers to do, written independently of the crate.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), String> {
    let ts: i64 = headers["x-logward-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .map_err(|_| "bad ts")?;
    if (now - ts).abs() > 300 {
        return Err("stale timestamp".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let sig = headers["x-logward-signature"].to_str().unwrap();
    let hex = sig.strip_prefix("sha256=").ok_or("no prefix")?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    mac.verify_slice(&bytes)
        .map_err(|_| "signature mismatch".into())
}

#[tokio::test]
async fn signed_webhook_verifies_at_the_receiver() {
    let (url, seen) = receiver(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let alerter = Alerter::open(
        config(vec![webhook_channel("hook", &url, "s3cret")]),
        dir.path(),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    alerter
        .ingest(&[detection("r1", "web1", now, 1)], now)
        .unwrap();
    alerter.tick(now).unwrap();
    assert_eq!(alerter.deliver_due(now).await.delivered, 1);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (h, body) = &seen[0];
    let wall = OffsetDateTime::now_utc().unix_timestamp();
    verify("s3cret", h, body, wall).unwrap();
    assert!(verify("wrong", h, body, wall).is_err());
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(verify("s3cret", h, &tampered, wall).is_err());
    assert!(
        verify("s3cret", h, body, wall + 3600).is_err(),
        "replay after 5 minutes is rejected"
    );

    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["schema"], "logward.alert.v1");
    assert_eq!(
        h["x-logward-idempotency-key"].to_str().unwrap(),
        v["idempotency_key"]
    );
    assert_eq!(h["x-team"], "sec");
    assert_eq!(h["x-logward-attempt"], "1");
    assert_eq!(v["alerts"][0]["rule_id"], "r1");
    assert_eq!(v["alerts"][0]["new_since_last"], 1);
    assert!(
        v["alerts"][0]["link"]
            .as_str()
            .unwrap()
            .contains("/api/v1/search?q=")
    );
}

#[tokio::test]
async fn slack_template_and_permanent_failure_to_dead_letters() {
    let (ok_url, ok_seen) = receiver(StatusCode::OK).await;
    let (bad_url, bad_seen) = receiver(StatusCode::BAD_REQUEST).await;
    let dir = tempfile::tempdir().unwrap();
    let mut slack = webhook_channel("slack", &ok_url, "k");
    if let Some(w) = slack.webhook.as_mut() {
        w.template = Some(
            r#"{"text":"[{{level}}] {{rule_title}} on {{host}}: {{new}} new <{{link}}>"}"#
                .to_owned(),
        );
    }
    let bad = webhook_channel("bad", &bad_url, "k");
    let alerter = Alerter::open(config(vec![slack, bad]), dir.path()).unwrap();
    let now = OffsetDateTime::now_utc();
    let mut d = detection("r1", "web1", now, 1);
    d.rule_title = "quote \" and \\ backslash".to_owned();
    alerter.ingest(&[d], now).unwrap();
    alerter.tick(now).unwrap();
    let r = alerter.deliver_due(now).await;
    assert_eq!((r.delivered, r.dead), (1, 1));

    let body = ok_seen.lock().unwrap()[0].1.clone();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            // Template values are escaped for people: `\` is doubled (see escape_visible).
            .starts_with("[high] quote \" and \\\\ backslash on web1: 1 new <http"),
        "{v}"
    );
    assert_eq!(bad_seen.lock().unwrap().len(), 1, "a 400 is not retried");
    let dead = alerter.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entry.channel, "bad");
    assert!(dead[0].entry.last_error.as_deref().unwrap().contains("400"));
}

#[tokio::test]
async fn the_runner_delivers_and_stops_on_shutdown() {
    let (url, seen) = receiver(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(vec![webhook_channel("hook", &url, "k")]);
    cfg.tick = logward_alert::duration::HumanDuration(std::time::Duration::from_millis(50));
    let alerter = Alerter::open(cfg, dir.path()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(logward_alert::run(alerter.clone(), async {
        let _ = stopped.await;
    }));
    let now = OffsetDateTime::now_utc();
    alerter
        .ingest(&[detection("r1", "web1", now, 1)], now)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), runner)
        .await
        .unwrap()
        .unwrap();
    assert!(alerter.pending().is_empty());
}
