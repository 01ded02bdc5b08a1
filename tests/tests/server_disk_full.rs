//! A full disk: the server's data dir on a small tmpfs fills up. Nothing is acked that is
//! not stored, the collector hears RESOURCE_EXHAUSTED, `/healthz` and `/metrics` say so,
//! and once space is back ingest resumes with every acked event stored exactly once.
//! Needs root to mount the tmpfs: skips with a message elsewhere, fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logward_e2e::grpc::LoadClient;
use logward_e2e::{Server, in_ci};
use logward_proto::{Event, Source};

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Batches of barely compressible text, so the index grows about as fast as the input.
fn events(sequence: u64) -> Vec<Event> {
    let mut x = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..50)
        .map(|i| {
            let text: String = (0..2000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'a' + (x % 26) as u8)
                })
                .collect();
            Event {
                timestamp_nanos: 1_714_557_600_000_000_000
                    + i64::try_from(sequence * 100 + i).unwrap_or(0),
                host: "full".into(),
                source: Source::Docker as i32,
                message: format!("disk seq {sequence} idx {i} {text}")
                    .into_bytes()
                    .into(),
                ..Default::default()
            }
        })
        .collect()
}

#[test]
fn a_full_disk_acks_nothing_unstored_and_ingest_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let Some(fs) = Tmpfs::mount(&data, "2m") else {
        assert!(!in_ci(), "CI=true: cannot mount a tmpfs (needs root)");
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    };
    let server = Server::start(&data, &[]).expect("server starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let acked = Arc::new(AtomicU64::new(0));
    let last = 200_u64; // about 20 MB of text: far more than 2 MiB

    let first_try = rt.block_on(async {
        let (mut client, high_water) = LoadClient::connect(&server.grpc_url(), "disk-full").await?;
        assert_eq!(high_water, 0);
        client.send_range(1, last, 4, events, &acked).await
    });
    let error = first_try
        .expect_err("a 2 MiB disk cannot hold every batch")
        .to_string();
    assert!(
        error.contains("ResourceExhausted") || error.contains("full"),
        "clear error: {error}"
    );
    let stored = acked.load(Ordering::SeqCst);
    assert!(stored < last, "acked {stored} of {last}");

    let (status, body) = server.get("/healthz").expect("healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{body}"
    );
    let (_, metrics) = server.get("/metrics").expect("metrics");
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("logward_store_healthy 0")),
        "{metrics}"
    );

    // Space comes back: resend from the server's high-water mark, as a collector would.
    fs.resize("256m");
    let deadline = Instant::now() + Duration::from_secs(60);
    let high_water = loop {
        let result = rt.block_on(async {
            let (mut client, high_water) =
                LoadClient::connect(&server.grpc_url(), "disk-full").await?;
            client
                .send_range(high_water + 1, last, 4, events, &acked)
                .await?;
            anyhow::Ok(high_water)
        });
        match result {
            Ok(h) => break h,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying after: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("ingest did not resume: {e}"),
        }
    };
    assert!(
        high_water >= stored,
        "every acked batch survived: high water {high_water}, acked {stored}"
    );
    assert_eq!(acked.load(Ordering::SeqCst), last);
    let (status, body) = server.get("/healthz").expect("healthz");
    assert_eq!(status, 200, "{body}");

    // Exactly once: every (sequence, index) is searchable once.
    let hits = server.all_events("host:full").expect("search");
    assert_eq!(hits.len() as u64, last * 50);
    let mut ids: Vec<String> = hits
        .iter()
        .map(|h| h["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, last * 50, "no duplicates");
}
