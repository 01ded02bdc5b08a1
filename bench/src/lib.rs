//! logward-bench: one reproducible harness that measures every stage of logward beside
//! a reference measured in the same run (the decode limit, raw tantivy, tantivy
//! in-process), and writes docs/BENCHMARKS.md and a JSON file.

pub mod datagen;
pub mod hook;
pub mod peer;
pub mod procstat;
pub mod report;
pub mod sink;
pub mod w1;
pub mod w2;
pub mod w4;
pub mod w5;

use std::path::PathBuf;
use std::time::Duration;

use report::{Report, Row};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Opts {
    pub quick: bool,
    /// Workloads to run (`w1`, `w2` (with W3), `w4`, `w5` (with W6)); empty runs all.
    pub only: Vec<String>,
    /// Raw log bytes for W1, spread over the files.
    pub w1_bytes: u64,
    /// W1 is also run with this many files (besides 20).
    pub w1_many_files: usize,
    /// Events sent in W2 (and searched in W3).
    pub w2_events: usize,
    /// Runs per W3 query.
    pub search_runs: usize,
    /// Events through the rules engine per W4 case.
    pub w4_events: usize,
    pub w5_samples: usize,
    pub w5_load_lps: u64,
    pub w6_window: Duration,
}

impl Opts {
    /// `--quick` finishes in well under two minutes; the full run takes longer.
    pub fn new(quick: bool) -> Opts {
        if quick {
            Opts {
                quick,
                only: Vec::new(),
                w1_bytes: 16 << 20,
                w1_many_files: 0,
                w2_events: 15_000,
                search_runs: 5,
                w4_events: 2_000,
                w5_samples: 5,
                w5_load_lps: 1000,
                w6_window: Duration::from_secs(2),
            }
        } else {
            Opts {
                quick,
                only: Vec::new(),
                w1_bytes: 1 << 30,
                w1_many_files: 100,
                w2_events: 1_000_000,
                search_runs: 50,
                w4_events: 200_000,
                w5_samples: 50,
                w5_load_lps: 2000,
                w6_window: Duration::from_secs(10),
            }
        }
    }
}

/// Runs every workload and returns the report.
pub fn run_all(opts: &Opts) -> anyhow::Result<Report> {
    let rt = tokio::runtime::Runtime::new()?;
    let mut rows: Vec<Row> = Vec::new();
    let timed = |name: &str, started: std::time::Instant| {
        eprintln!(
            "logward-bench: {name} done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    };
    let load_before = loadavg();
    let wanted = |w: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == w);
    if wanted("w1") {
        let t = std::time::Instant::now();
        rows.extend(rt.block_on(w1::run(opts, 20))?);
        if opts.w1_many_files > 0 {
            rows.extend(rt.block_on(w1::run(opts, opts.w1_many_files))?);
        }
        timed("W1", t);
    }
    if wanted("w2") {
        let t = std::time::Instant::now();
        rows.extend(w2::run(opts, &rt)?);
        timed("W2+W3", t);
    }
    if wanted("w4") {
        let t = std::time::Instant::now();
        rows.extend(w4::run(opts)?);
        timed("W4", t);
    }
    if wanted("w5") {
        let t = std::time::Instant::now();
        rows.extend(w5::run(opts)?);
        timed("W5+W6", t);
    }
    Ok(Report {
        date: time::OffsetDateTime::now_utc().date().to_string(),
        mode: if opts.quick { "quick" } else { "full" },
        machine: machine(),
        load: format!(
            "load average (1, 5, 15 min) {load_before} at the start, {} at the end",
            loadavg()
        ),
        commit: command_output("git", &["rev-parse", "--short", "HEAD"])
            .unwrap_or_else(|| "unknown".into()),
        rows,
    })
}

/// Makes sure the binaries next to this one are built, when run through cargo, and
/// points the process helpers at them.
pub fn prepare_binaries() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir: PathBuf = exe.parent().map(PathBuf::from).unwrap_or_default();
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = std::process::Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "logward-server",
            "-p",
            "logward-collector",
            "--bins",
        ]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status()?;
        anyhow::ensure!(
            status.success(),
            "building logward-server and logward-collector failed"
        );
    }
    logward_e2e::use_bin_dir(dir);
    Ok(())
}

/// The first three fields of /proc/loadavg: other work on this shared machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "unknown".into())
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// CPU model, cores and memory of this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{model}, {cores} cores, {mem} GiB")
}
