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
        /// Markdown output [default: docs/BENCHMARKS.md, or target/bench/quick.md with --quick].
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON output [default: docs/benchmarks.json, or target/bench/quick.json with --quick].
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::All { quick, out, json } = Args::parse().command;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (out, json) = if quick {
        let dir = root.join("target").join("bench");
        (
            out.unwrap_or_else(|| dir.join("quick.md")),
            json.unwrap_or_else(|| dir.join("quick.json")),
        )
    } else {
        let dir = root.join("docs");
        (
            out.unwrap_or_else(|| dir.join("BENCHMARKS.md")),
            json.unwrap_or_else(|| dir.join("benchmarks.json")),
        )
    };
    logward_bench::prepare_binaries()?;
    let report = logward_bench::run_all(&logward_bench::Opts::new(quick))?;
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
