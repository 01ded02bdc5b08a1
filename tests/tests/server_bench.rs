//! Ad-hoc measurement, not a CI test (ignored): ingest rate, batch send→ack latency
//! (an ack means committed and searchable) and term + time-range search latency over
//! 1M events. Run: `cargo test --release -p logward-e2e --test server_bench -- --ignored --nocapture`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use logward_e2e::grpc::{LoadClient, batch_events};
use logward_e2e::{Server, encode};

const BASE: i64 = 1_714_557_600_000_000_000;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

#[test]
#[ignore = "measurement; run by hand in release"]
fn measure_ingest_ack_and_search_over_a_million_events() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(tmp.path(), &[]).expect("server");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (clients, batches, per) = (4_u64, 250_u64, 1000_usize);
    let started = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let url = server.grpc_url();
            tasks.push(tokio::spawn(async move {
                let (mut client, _) = LoadClient::connect(&url, &format!("bench{c}"))
                    .await
                    .expect("connect");
                let acked = Arc::new(AtomicU64::new(0));
                let mut lat = Vec::new();
                // Windows of 4 batches; each window's time is the send→ack latency of its last batch.
                for w in 0..batches / 4 {
                    let t = Instant::now();
                    client
                        .send_range(
                            w * 4 + 1,
                            w * 4 + 4,
                            4,
                            |s| batch_events(s, per, BASE, 7),
                            &acked,
                        )
                        .await
                        .expect("send");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let elapsed = started.elapsed();
    let events = clients * batches * per as u64;
    let mut lat = latencies;
    eprintln!(
        "ingest: {events} events in {elapsed:?} = {:.0} events/s; window send→ack p50 {:?} p99 {:?}",
        events as f64 / elapsed.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    let q = encode("host:host1 AND container.name:app2");
    let (s, e) = (
        BASE / 1_000_000 + 86_400_000,
        BASE / 1_000_000 + 3 * 86_400_000,
    );
    let mut search = Vec::new();
    let mut total = 0;
    for _ in 0..30 {
        let t = Instant::now();
        let (status, body) = server
            .get(&format!("/api/v1/search?q={q}&start={s}&end={e}&limit=100"))
            .expect("search");
        search.push(t.elapsed());
        assert_eq!(status, 200);
        total = body["total"].as_u64().unwrap_or(0);
    }
    eprintln!(
        "search term+range ({total} matches, 100 hits): p50 {:?} p99 {:?}",
        pct(&mut search, 0.5),
        pct(&mut search, 0.99)
    );
}
