//! The HTTP API through the router (no network needed), and the documented config example.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use logward_alert::{Alerter, AlertingConfig};
use time::OffsetDateTime;
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn alerts_silences_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (notifiers, _) = recorders(&["ops"]);
    let alerter =
        Alerter::with_notifiers(config(vec![channel("ops")]), dir.path(), notifiers).unwrap();
    let now = OffsetDateTime::now_utc();
    alerter
        .ingest(
            &[
                detection("r1", "web1", now, 1),
                detection("r2", "web2", now, 2),
            ],
            now,
        )
        .unwrap();
    let app = logward_alert::router(alerter.clone());

    let (s, v) = call(
        &app,
        "GET",
        "/api/v1/alerts?rule=r1&level=high&status=open&limit=10",
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    let id = v["alerts"][0]["id"].as_str().unwrap().to_owned();
    let (s, v) = call(&app, "GET", &format!("/api/v1/alerts/{id}"), "").await;
    assert_eq!((s, v["rule_id"].as_str()), (StatusCode::OK, Some("r1")));
    let (s, v) = call(&app, "POST", &format!("/api/v1/alerts/{id}/ack"), "").await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("acknowledged"))
    );
    let (s, v) = call(&app, "POST", &format!("/api/v1/alerts/{id}/resolve"), "").await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let (_, v) = call(&app, "GET", "/api/v1/alerts?status=open", "").await;
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);

    for (method, uri, body, status) in [
        ("GET", "/api/v1/alerts/nope", "", StatusCode::NOT_FOUND),
        ("POST", "/api/v1/alerts/nope/ack", "", StatusCode::NOT_FOUND),
        (
            "GET",
            "/api/v1/alerts?level=loud",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/alerts?since=yesterday",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/alerts?colour=red",
            "",
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/api/v1/silences", "{", StatusCode::BAD_REQUEST),
        (
            "POST",
            "/api/v1/silences",
            r#"{"matchers":[],"duration":"1h","comment":"x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/silences",
            r#"{"matchers":[{"name":"host","value":"(","op":"=~"}],"duration":"1h","comment":"x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("DELETE", "/api/v1/silences/nope", "", StatusCode::NOT_FOUND),
    ] {
        let (s, v) = call(&app, method, uri, body).await;
        assert_eq!(s, status, "{method} {uri} {body}: {v}");
        assert!(v["error"].is_string(), "{method} {uri}: {v}");
    }

    let body = r#"{"matchers":[{"name":"rule","value":"r2"},{"name":"host","op":"=~","value":"web.*"}],"duration":"2h","comment":"deploy"}"#;
    let (s, v) = call(&app, "POST", "/api/v1/silences", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sid = v["id"].as_str().unwrap().to_owned();
    let (_, v) = call(&app, "GET", "/api/v1/silences", "").await;
    assert_eq!(v["silences"][0]["state"], "active");
    let (s, _) = call(&app, "DELETE", &format!("/api/v1/silences/{sid}"), "").await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&app, "GET", "/api/v1/silences", "").await;
    assert_eq!(v["silences"][0]["state"], "expired");
    let (s, v) = call(&app, "GET", "/api/v1/alerts/dead-letters", "").await;
    assert_eq!(
        (s, v["dead_letters"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
}

/// The example in docs/ALERTING.md parses and validates.
#[test]
fn documented_config_example_is_valid() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ALERTING.md"))
        .unwrap();
    let start =
        doc.find("```toml\n[alerting]").expect("example in docs") + "```toml\n[alerting]\n".len();
    let toml_text = &doc[start..start + doc[start..].find("```").unwrap()];
    let toml_text = toml_text
        .replace("[[alerting.", "[[")
        .replace("[alerting.", "[");
    let cfg: AlertingConfig = toml::from_str(&toml_text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.channels.len(), 3);

    let bad = |extra: &str| {
        toml::from_str::<AlertingConfig>(extra)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map_err(|e| e.to_string()))
    };
    assert!(bad("colour = 1").is_err());
    assert!(bad("[[channels]]\nname = \"x\"\n").is_err());
    assert!(bad("[[channels]]\nname = \"x\"\n[channels.webhook]\nurl = \"ftp://x\"\n").is_err());
    assert!(bad("[[channels]]\nname = \"x\"\n[channels.webhook]\nurl = \"http://x\"\ntemplate = \"{\\\"a\\\": {{text}}}\"\n").is_err());
    assert!(bad("[[channels]]\nname = \"x\"\n[channels.email]\nhost = \"h\"\nfrom = \"not an address\"\nto = [\"a@b.c\"]\n").is_err());
    assert!(bad("dedup_window = \"5 minutes\"").is_err());
    // The SSRF guard at config load: literal addresses and metadata names.
    let hook = |url: &str, extra: &str| {
        bad(&format!(
            "{extra}\n[[channels]]\nname = \"x\"\n[channels.webhook]\nurl = \"{url}\"\n"
        ))
    };
    let err = hook("http://127.0.0.1:9/", "").unwrap_err();
    assert!(err.contains("127.0.0.1 (loopback) is not allowed"), "{err}");
    assert!(err.contains("allow_targets"), "{err}");
    assert!(hook("http://127.0.0.1:9/", "allow_targets = [\"127.0.0.1/32\"]").is_ok());
    assert!(
        hook("http://[::ffff:169.254.169.254]/", "")
            .unwrap_err()
            .contains("cloud metadata")
    );
    assert!(
        hook("http://2130706433/", "")
            .unwrap_err()
            .contains("loopback")
    );
    assert!(
        hook(
            "http://metadata.google.internal/",
            "allow_targets = [\"0.0.0.0/0\"]"
        )
        .unwrap_err()
        .contains("metadata")
    );
    assert!(hook("http://hooks.example.com/", "").is_ok());
    assert!(
        hook("http://localhost/", "").is_ok(),
        "names are checked at delivery"
    );
    assert!(
        hook("http://x/", "allow_targets = [\"not-a-cidr\"]")
            .unwrap_err()
            .contains("not-a-cidr")
    );
}
