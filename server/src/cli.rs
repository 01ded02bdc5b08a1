//! Command-line flags and environment variables of `logward-server`, and how they are
//! layered over the config file: flags, then environment, then file, then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// logward-server: receives collectors' streams, indexes every event, serves search.
#[derive(Debug, Parser)]
#[command(name = "logward-server", version, about)]
pub struct Args {
    /// TOML config file; flags and environment override its keys.
    #[arg(long, env = "LOGWARD_SERVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the index and state live [default: ./logward-data].
    #[arg(long, env = "LOGWARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC ingest address for collectors [default: 127.0.0.1:7420].
    #[arg(long, env = "LOGWARD_GRPC_ADDR", value_name = "ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// HTTP API address [default: 127.0.0.1:7421].
    #[arg(long, env = "LOGWARD_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Sigma rules loaded beside the built-in pack, hot-reloaded when files change.
    #[arg(long, env = "LOGWARD_RULES_DIR", value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    /// Also run a collector for this host (Docker logs) inside the server.
    #[arg(long, env = "LOGWARD_WITH_COLLECTOR")]
    pub with_collector: bool,
    /// Tools instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one, the server runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sigma rules: validate them, or run them over events.
    #[command(subcommand)]
    Rules(RulesCommand),
}

/// `logward-server rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validates rule, correlation and filter files (and directories of them); prints
    /// every error by file, rule and construct; exits 1 on any error.
    Check {
        /// Files or directories (`*.yml`, `*.yaml`).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Runs rules over events given as JSON lines (logward's event JSON or flat field
    /// maps) and prints one JSON line per detection.
    Test {
        /// A rule file or a directory of rules.
        #[arg(value_name = "RULES_PATH")]
        rules: PathBuf,
        /// One JSON object per line.
        #[arg(value_name = "EVENTS.jsonl")]
        events: PathBuf,
        /// Run every rule on every event, whatever its log source.
        #[arg(long)]
        ignore_logsource: bool,
    },
}

/// Runs a `rules` subcommand: what to print on stdout and stderr, and the exit code.
pub fn run_rules(command: &RulesCommand) -> (String, String, i32) {
    match command {
        RulesCommand::Check { paths } => {
            let report = logward_rules::check_paths(paths);
            let code = report.exit_code();
            let mut text = report.to_string();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            if code == 0 {
                (text, String::new(), 0)
            } else {
                (String::new(), text, code)
            }
        }
        RulesCommand::Test {
            rules,
            events,
            ignore_logsource,
        } => {
            let bytes = match std::fs::read(events) {
                Ok(b) => b,
                Err(e) => {
                    return (
                        String::new(),
                        format!("cannot read {}: {e}\n", events.display()),
                        1,
                    );
                }
            };
            match logward_rules::test_events(rules, &bytes, *ignore_logsource) {
                Ok(lines) => (
                    lines.iter().map(|l| format!("{l}\n")).collect(),
                    String::new(),
                    0,
                ),
                Err(e) => (String::new(), format!("{e}\n"), 1),
            }
        }
    }
}

/// Reads the file (if any), applies environment and flags, and validates.
pub fn load(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        None => Config::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir.clone_from(dir);
    }
    if let Some(addr) = args.grpc_addr {
        config.grpc_addr = addr;
    }
    if let Some(addr) = args.http_addr {
        config.http_addr = addr;
    }
    if let Some(dir) = &args.rules_dir {
        config.rules_dir = Some(dir.clone());
    }
    if args.with_collector {
        config.with_collector = true;
    }
    config.validate().context("invalid configuration")?;
    Ok(config)
}
