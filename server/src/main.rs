//! The `logward-server` binary: parse flags, load config, run.

use anyhow::Context;
use clap::Parser;
use logward_server::cli::{Args, Command, load, run_rules, run_token};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(color())
        .init();
    let args = Args::parse();
    if let Some(Command::Rules(command)) = &args.command {
        use std::io::Write;
        let (out, err, code) = run_rules(command);
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stderr().write_all(err.as_bytes());
        std::process::exit(code);
    }
    if let Some(Command::Token(command)) = &args.command {
        use std::io::Write;
        let (out, err, code) = run_token(command, &mut std::io::stdin());
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stderr().write_all(err.as_bytes());
        std::process::exit(code);
    }
    let config = load(&args)?;
    let listeners = logward_server::Listeners::bind(&config).await?;
    logward_server::run(config, listeners, shutdown_signal())
        .await
        .context("logward-server failed")
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
fn color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}
