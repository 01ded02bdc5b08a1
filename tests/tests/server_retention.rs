//! Retention: with `max_age_days = 1` and a one-second schedule, the day partitions of
//! events stamped ten days ago are deleted whole, and today's events stay.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use logward_e2e::Server;
use logward_e2e::grpc::{DAY_NANOS, LoadClient, batch_events};

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(0))
}

fn count(server: &Server, q: &str) -> u64 {
    server.search(&[("q", q), ("limit", "0")]).expect("search")["total"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn old_partitions_are_deleted_on_schedule_and_recent_events_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_config(
        &tmp.path().join("data"),
        "[retention]\nmax_age_days = 1\ncheck_interval_s = 1\n",
    )
    .expect("server starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let now = now_nanos();
    let acked = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let (mut c, _) = LoadClient::connect(&server.grpc_url(), "ret")
            .await
            .expect("connect");
        // Odd batches ten days ago (late events from a host with a bad clock), even ones now.
        let make = |s: u64| {
            let base = if s % 2 == 1 {
                now - 10 * DAY_NANOS
            } else {
                now - 60_000_000_000
            };
            batch_events(s, 10, base, 1)
        };
        c.send_range(1, 10, 4, make, &acked).await.expect("send");
    });
    let old_day = (now - 10 * DAY_NANOS).div_euclid(DAY_NANOS);
    let partition = tmp.path().join("data").join("partitions").join({
        let secs = old_day * 86_400;
        let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("time");
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    // The late events were stored (acked), then retention removes their partition.
    loop {
        let old = count(&server, "*").saturating_sub(50);
        if old == 0 && !partition.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old events still there after 30 s ({old})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count(&server, "*"), 50, "recent events are kept");
    let (_, metrics) = server.get("/metrics").expect("metrics");
    let text = metrics.as_str().unwrap_or("");
    assert!(
        text.contains("logward_partitions_deleted_total 1"),
        "{text}"
    );
}
