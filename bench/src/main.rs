//! The `logward-bench` binary: `logward-bench all [--quick]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// logward's benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "logward-bench", about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every workload and writes the Markdown report and the JSON.
    All {
        /// Small sizes; finishes in under two minutes.
        #[arg(long)]
        quick: bool,
        /// Run only these workloads, comma-separated: w1, w2 (with W3), w4, w5 (with W6).
        /// The report then goes to target/bench/partial.md unless --out says otherwise.
        #[arg(long, value_delimiter = ',', value_parser = ["w1", "w2", "w4", "w5"])]
        only: Vec<String>,
        /// Markdown output [default: docs/BENCHMARKS.md, or target/bench/quick.md with --quick].
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON output [default: docs/benchmarks.json, or target/bench/quick.json with --quick].
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::All {
        quick,
        only,
        out,
        json,
    } = Args::parse().command;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (out, json) = if quick || !only.is_empty() {
        let dir = root.join("target").join("bench");
        let name = if only.is_empty() { "quick" } else { "partial" };
        (
            out.unwrap_or_else(|| dir.join(format!("{name}.md"))),
            json.unwrap_or_else(|| dir.join(format!("{name}.json"))),
        )
    } else {
        let dir = root.join("docs");
        (
            out.unwrap_or_else(|| dir.join("BENCHMARKS.md")),
            json.unwrap_or_else(|| dir.join("benchmarks.json")),
        )
    };
    logward_bench::prepare_binaries()?;
    let opts = logward_bench::Opts {
        only,
        ..logward_bench::Opts::new(quick)
    };
    let report = logward_bench::run_all(&opts)?;
    for path in [&out, &json] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
    }
    std::fs::write(&out, logward_bench::report::document(&report))
        .with_context(|| format!("write {}", out.display()))?;
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("write {}", json.display()))?;
    eprintln!("{}", report.markdown());
    eprintln!("wrote {} and {}", out.display(), json.display());
    Ok(())
}
