//! Command-line flags and environment variables of `logward-server`, and how they are
//! layered over the config file: flags, then environment, then file, then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

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
    /// Also run a collector for this host (Docker logs) inside the server.
    #[arg(long, env = "LOGWARD_WITH_COLLECTOR")]
    pub with_collector: bool,
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
    if args.with_collector {
        config.with_collector = true;
    }
    config.validate().context("invalid configuration")?;
    Ok(config)
}
