//! The `logward-collector` binary: flags, config, tracing, signals; the work is in the library.

use anyhow::Context as _;
use clap::Parser as _;
use logward_collector::cli::{self, Args};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match real_main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole chain on one line, without a backtrace.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(color())
        .init();
    let args = Args::parse();
    let config = cli::load(&args)?;
    tracing::info!(
        server = %config.server, hostname = %config.hostname,
        state_dir = %config.state_dir.display(), "logward-collector starting"
    );
    let metrics = match config.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
        ),
        None => None,
    };
    logward_collector::run_with_listener(config, metrics, shutdown_signal())
        .await
        .context("logward-collector failed")
}

/// Resolves on SIGINT or SIGTERM. If the handlers cannot be installed, the collector runs
/// until killed (its state is crash-safe).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("received SIGTERM"),
                _ = int.recv() => tracing::info!("received SIGINT"),
            }
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "cannot install signal handlers, stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
fn color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}
