//! Durability under `kill -9`: a gRPC client streams batches (spread over several day
//! partitions) to the real server binary, which is killed at random moments 20 times.
//! After every restart the server's high-water mark covers every acked batch and the
//! index holds exactly the events of the batches up to it; at the end the set of
//! searchable ids equals the set of acked ids: lost = 0, duplicated = 0.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logward_e2e::Server;
use logward_e2e::grpc::{LoadClient, batch_events};

const ROUNDS: usize = 20;
const PER_BATCH: usize = 20;
const BASE: i64 = 1_714_557_600_000_000_000;
const COLLECTOR: &str = "durability-client";

fn make(seq: u64) -> Vec<logward_proto::Event> {
    batch_events(seq, PER_BATCH, BASE, 3)
}

fn total(server: &Server) -> u64 {
    server.search(&[("limit", "0")]).expect("search")["total"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[test]
fn acked_events_survive_kill_9_exactly_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill schedule seed {seed}");
    let mut rng = seed;
    let mut next_rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let acked = Arc::new(AtomicU64::new(0));
    for round in 0..=ROUNDS {
        let mut server = Server::start(tmp.path(), &[]).expect("server starts");
        let url = server.grpc_url();
        let (mut client, hw) = rt
            .block_on(LoadClient::connect(&url, COLLECTOR))
            .expect("handshake");
        let before = acked.load(Ordering::SeqCst);
        assert!(
            hw >= before,
            "round {round}: acked up to {before}, server holds only {hw}"
        );
        assert_eq!(
            total(&server),
            hw * PER_BATCH as u64,
            "round {round}: the index holds exactly the batches up to the high-water mark {hw}"
        );
        if round == ROUNDS {
            // Last round: finish cleanly and compare the sets.
            let last = hw + 50;
            rt.block_on(client.send_range(hw + 1, last, 8, make, &acked))
                .expect("final batches");
            let hits = server.all_events("*").expect("all events");
            let ids: Vec<String> = hits
                .iter()
                .map(|h| h["id"].as_str().unwrap_or("").to_owned())
                .collect();
            let unique: HashSet<&String> = ids.iter().collect();
            let expected: HashSet<String> = (1..=last)
                .flat_map(|s| (0..PER_BATCH).map(move |i| format!("{COLLECTOR}-{s}-{i}")))
                .collect();
            let found: HashSet<String> = ids.iter().cloned().collect();
            let lost = expected.difference(&found).count();
            let duplicated = ids.len() - unique.len();
            eprintln!(
                "after {ROUNDS} kills: acked batches {last}, events {}, lost {lost}, duplicated {duplicated}",
                ids.len()
            );
            assert_eq!((lost, duplicated, ids.len()), (0, 0, expected.len()));
            let status = server
                .proc
                .terminate(Duration::from_secs(30))
                .expect("stops");
            assert!(status.success());
            return;
        }
        let acked_bg = acked.clone();
        let load = rt.spawn(async move {
            let _ = client
                .send_range(hw + 1, u64::MAX / 2, 8, make, &acked_bg)
                .await;
        });
        let delay = Duration::from_millis(100 + next_rand() % 900);
        let started = Instant::now();
        std::thread::sleep(delay);
        server.proc.kill9();
        let _ = rt.block_on(load);
        eprintln!(
            "round {round}: killed after {:?}, acked up to batch {}",
            started.elapsed(),
            acked.load(Ordering::SeqCst)
        );
    }
}
