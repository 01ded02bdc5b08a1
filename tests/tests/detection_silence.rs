//! Absence detection end to end: a host that sent events and then falls silent for
//! longer than `[rules] silent_host_after_s` raises one "host stopped sending"
//! detection; a host that keeps sending does not.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use logward_e2e::Server;
use logward_e2e::grpc::LoadClient;
use logward_proto::{Event, Source};

fn event(host: &str, n: u64) -> Vec<Event> {
    vec![Event {
        host: host.to_owned(),
        source: Source::Docker as i32,
        message: format!("heartbeat {n}").into_bytes().into(),
        ..Default::default()
    }]
}

#[test]
fn a_silent_host_is_reported_once_and_a_live_one_never() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        &tmp.path().join("data"),
        "[rules]\nbuiltin = false\nsilent_host_after_s = 2\nadvance_interval_ms = 200\n",
    )
    .expect("server starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let acked = Arc::new(AtomicU64::new(0));
    let url = server.grpc_url();
    rt.block_on(async {
        let (mut quiet, _) = LoadClient::connect(&url, "quiet-host").await?;
        quiet
            .send_range(1, 1, 1, |n| event("quiet", n), &acked)
            .await?;
        let (mut live, _) = LoadClient::connect(&url, "live-host").await?;
        // The live host keeps sending every half second for six seconds.
        for n in 1..=12 {
            live.send_range(n, n, 1, |n| event("live", n), &acked)
                .await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::Ok(())
    })
    .expect("events sent");

    let deadline = Instant::now() + Duration::from_secs(20);
    let detections = loop {
        let (status, body) = server
            .get("/api/v1/detections?rule=logward-host-stopped-sending")
            .expect("detections");
        assert_eq!(status, 200, "{body}");
        let list = body["detections"].as_array().cloned().unwrap_or_default();
        if !list.is_empty() || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(detections.len(), 1, "{detections:?}");
    let d = &detections[0];
    assert_eq!(d["rule_title"], "Host stopped sending");
    assert_eq!(d["group"]["host"], "quiet");
    assert_eq!(d["host"], "quiet");
    assert_eq!(d["level"], "high");
}
