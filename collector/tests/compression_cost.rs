//! Measures what `compression` costs and saves on a typical batch, with the codecs and levels
//! tonic uses (gzip level 6, zstd level 3). It informs the default and is not a pass/fail
//! test: `cargo test -p logward-collector --test compression_cost -- --ignored --nocapture`.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use logward_proto::{Batch, Container, Event, Source, StreamKind, Values};
use prost::Message as _;

/// A batch like the default cut: 1000 Docker events from a few containers, a mix of access
/// logs, JSON application logs and stack-trace lines.
fn typical_batch() -> Batch {
    let containers: Vec<Container> = (0..4)
        .map(|c| Container {
            id: format!("{:064x}", 0x5eed_u64 * (c + 1)),
            name: format!("app-{c}-web"),
            image: format!("registry.example/team/app-{c}:1.{c}.3"),
            image_id: format!("sha256:{:064x}", 0xfeed_u64 * (c + 7)),
            labels: HashMap::from([
                ("com.docker.compose.project".to_owned(), "shop".to_owned()),
                ("com.docker.compose.service".to_owned(), format!("svc{c}")),
            ]),
        })
        .collect();
    let events = (0..1000u64)
        .map(|i| {
            let message = match i % 4 {
                0 => format!(
                    "10.0.{}.{} - - [06/May/2024:07:08:{:02} +0000] \"GET /api/v1/items/{} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
                    i % 7, i % 250, i % 60, i * 37 % 9973, 512 + i * 13 % 4000
                ),
                1 => format!(
                    r#"{{"level":"info","ts":"2024-05-06T07:08:{:02}.{:06}Z","msg":"request done","trace_id":"{:032x}","duration_ms":{},"status":200}}"#,
                    i % 60, i * 7919 % 1_000_000, i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i % 300
                ),
                2 => format!("WARN  [pool-{}] connection {} idle for {}s, closing", i % 8, i, i % 90),
                _ => format!("\tat com.example.shop.Service.handle(Service.java:{})", 100 + i % 50),
            };
            Event {
                timestamp_nanos: 1_714_979_289_000_000_000 + i as i64 * 1_000_003,
                host: "web-01.prod.example".to_owned(),
                source: Source::Docker as i32,
                message: message.into_bytes().into(),
                stream: StreamKind::Stdout as i32,
                container: Some(containers[(i % 4) as usize].clone()),
                fields: HashMap::from([(
                    "logward.partial".to_owned(),
                    Values { values: vec![] },
                )])
                .into_iter()
                .filter(|_| i % 50 == 0)
                .collect(),
            }
        })
        .collect();
    Batch {
        collector_id: "4b0e3c1e-6f1d-4c4e-9a63-0d5a3b9f7c21".to_owned(),
        sequence: 42,
        events,
    }
}

fn time_it(rounds: u32, mut f: impl FnMut() -> usize) -> (usize, Duration) {
    let start = Instant::now();
    let mut size = 0;
    for _ in 0..rounds {
        size = f();
    }
    (size, start.elapsed() / rounds)
}

#[test]
#[ignore = "a measurement, run by hand"]
fn compression_cost_on_a_typical_batch() {
    let raw = typical_batch().encode_to_vec();
    if let Some(path) = std::env::var_os("COMPRESSION_COST_OUT") {
        // For timing the optimised command-line codecs on the same bytes.
        std::fs::write(path, &raw).unwrap();
    }
    let rounds = 50;
    let gzip = time_it(rounds, || {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(&raw).unwrap();
        enc.finish().unwrap().len()
    });
    let zstd = time_it(rounds, || zstd::bulk::compress(&raw, 3).unwrap().len());
    eprintln!("raw batch: {} bytes", raw.len());
    for (name, (size, per_batch)) in [("gzip-6", gzip), ("zstd-3", zstd)] {
        let mib_per_s = raw.len() as f64 / per_batch.as_secs_f64() / (1024.0 * 1024.0);
        eprintln!(
            "{name}: {size} bytes ({:.1}% of raw), {per_batch:?} per batch, {mib_per_s:.0} MiB/s",
            100.0 * size as f64 / raw.len() as f64
        );
    }
}
