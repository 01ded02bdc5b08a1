//! W1: the collector tailing Docker json-file logs and shipping them to a sink that
//! acks at once, beside the decode limit (plain read + JSON decode of the same bytes).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use logward_e2e::{Proc, collector_args};

use crate::datagen::{DockerData, write_docker_dir};
use crate::procstat::usage;
use crate::report::Row;
use crate::{Opts, peer, sink};

const MIB: f64 = 1024.0 * 1024.0;

/// Runs W1 for `files` containers.
pub async fn run(opts: &Opts, files: usize) -> anyhow::Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    let per_file = opts.w1_bytes / files as u64;
    let data = write_docker_dir(&tmp.path().join("containers"), files, per_file, 1)?;
    let (decode, lines) = decode_limit(&data)?;

    let (url, counts) = sink::start().await?;
    let state = tmp.path().join("state");
    let args = collector_args(&url, &data.dir, &state, "bench");
    let started = Instant::now();
    let mut proc = Proc::spawn("logward-collector", &args, &[("RUST_LOG", "warn")])?;
    let deadline = started + Duration::from_secs(600);
    while counts.events.load(Ordering::Relaxed) < data.events {
        if Instant::now() > deadline {
            bail!(
                "W1: only {} of {} events after 600 s",
                counts.events.load(Ordering::Relaxed),
                data.events
            );
        }
        if proc.child.try_wait()?.is_some() {
            bail!("W1: the collector exited:\n{}", proc.log().join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let u = usage(proc.child.id()).context("collector /proc")?;
    proc.kill9();
    let gib = data.raw_bytes as f64 / (1024.0 * MIB);
    let mib_s = data.raw_bytes as f64 / MIB / secs;
    let label = format!("{files} files");
    let peer = peer_rows(&data, tmp.path(), lines, &label, mib_s).await?;
    let mut rows = vec![
        Row::new(
            "W1",
            format!(
                "collector → sink, {label}, {:.0} MiB raw",
                data.raw_bytes as f64 / MIB
            ),
            mib_s,
            "MiB/s",
        )
        .baseline("read + JSON decode", decode)
        .target("≥ 150 MiB/s")
        .note(format!("{:.0} events/s", data.events as f64 / secs)),
        Row::new(
            "W1",
            format!("collector CPU, {label}"),
            u.cpu_secs / gib,
            "CPU-s/GiB",
        ),
        Row::new(
            "W1",
            format!("collector peak RSS, {label}"),
            u.peak_rss_kib as f64 / 1024.0,
            "MiB",
        )
        .target("≤ 32 MiB"),
    ];
    rows.extend(peer);
    Ok(rows)
}

/// The Debian peer over the same files, and logward beside it.
async fn peer_rows(
    data: &DockerData,
    scratch: &std::path::Path,
    lines: u64,
    label: &str,
    logward_mib_s: f64,
) -> anyhow::Result<Vec<Row>> {
    let Some(rsyslogd) = peer::rsyslogd() else {
        return Ok(vec![
            Row::new(
                "W1",
                format!("collector vs Debian peer, {label}"),
                logward_mib_s,
                "MiB/s",
            )
            .baseline(
                "rsyslog not installed (scripts/setup-bench-deps.sh): not measured",
                0.0,
            )
            .target("≥ 2× peer"),
        ]);
    };
    let (secs, u) = peer::run_rsyslog(&rsyslogd, &data.dir, scratch, lines).await?;
    let gib = data.raw_bytes as f64 / (1024.0 * MIB);
    let peer_mib_s = data.raw_bytes as f64 / MIB / secs;
    Ok(vec![
        Row::new(
            "W1",
            format!("rsyslog imfile → omfwd TCP → sink, {label}"),
            peer_mib_s,
            "MiB/s",
        )
        .note(format!(
            "{:.2} CPU-s/GiB, peak RSS {:.1} MiB; raw lines forwarded, no JSON decode",
            u.cpu_secs / gib,
            u.peak_rss_kib as f64 / 1024.0
        )),
        Row::new(
            "W1",
            format!("collector vs Debian peer, {label}"),
            logward_mib_s,
            "MiB/s",
        )
        .baseline("rsyslog (same files, same run)", peer_mib_s)
        .target("≥ 2× peer"),
    ])
}

/// Reads every log file and decodes every line with the collector's own decoder: the
/// ceiling of what tailing can reach on one core. Also returns the number of json-file
/// lines (a split line counts once per piece).
fn decode_limit(data: &DockerData) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut decoded = 0u64;
    let mut lines = 0u64;
    for entry in std::fs::read_dir(&data.dir)? {
        let dir = entry?.path();
        let Some(id) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let bytes = std::fs::read(dir.join(format!("{id}-json.log")))?;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines += 1;
            if logward_collector::docker::decode::decode_line(line).is_ok() {
                decoded += 1;
            }
        }
    }
    std::hint::black_box(decoded);
    Ok((
        data.raw_bytes as f64 / MIB / started.elapsed().as_secs_f64(),
        lines,
    ))
}
