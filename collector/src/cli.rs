//! Command-line flags and environment, and how they combine with the config file.
//!
//! Precedence, highest first: flags, environment variables, the TOML file, built-in defaults.
//! clap applies "flag over environment" itself; [`load`] lays the result over the file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::config::Config;

/// logward-collector: tails Docker json-file logs and the systemd journal and ships them to a logward server.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "logward-collector", version, about)]
pub struct Args {
    /// TOML config file; every flag has a key of the same name in snake_case.
    #[arg(long, env = "LOGWARD_COLLECTOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// gRPC address of the logward server [default: http://127.0.0.1:7420]
    #[arg(long, env = "LOGWARD_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Docker's containers directory [default: /var/lib/docker/containers]
    #[arg(long, env = "LOGWARD_DOCKER_DIR", value_name = "DIR")]
    pub docker_dir: Option<PathBuf>,

    /// Do not collect Docker container logs
    #[arg(
        long,
        env = "LOGWARD_NO_DOCKER",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub no_docker: Option<bool>,

    /// Do not collect the systemd journal
    #[arg(
        long,
        env = "LOGWARD_NO_JOURNALD",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub no_journald: Option<bool>,

    /// Read the journal files of this directory instead of the system journal
    #[arg(long, env = "LOGWARD_JOURNAL_DIR", value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,

    /// Directory for the collector's identity, checkpoint and send journal
    /// [default: ./logward-collector-state]
    #[arg(long, env = "LOGWARD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Host name stamped on every event [default: this machine's host name]
    #[arg(long, env = "LOGWARD_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,

    /// Address of the collector's own /metrics and /healthz listener [default: off]
    #[arg(long, env = "LOGWARD_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Builds the effective configuration: the file (if any), then environment and flags over it,
/// then validation.
pub fn load(args: &Args) -> anyhow::Result<Config> {
    let base = match &args.config {
        Some(path) => read_file(path)?,
        None => Config::default(),
    };
    let config = apply(base, args);
    config.validate().context("invalid configuration")?;
    Ok(config)
}

fn read_file(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("cannot parse config file {}", path.display()))
}

/// Lays the flags (clap already folded the environment into them) over `config`.
fn apply(mut config: Config, args: &Args) -> Config {
    if let Some(server) = &args.server {
        config.server.clone_from(server);
    }
    if let Some(dir) = &args.docker_dir {
        config.docker_dir.clone_from(dir);
    }
    if let Some(no_docker) = args.no_docker {
        config.no_docker = no_docker;
    }
    if let Some(no_journald) = args.no_journald {
        config.no_journald = no_journald;
    }
    if let Some(dir) = &args.journal_dir {
        config.journal_dir = Some(dir.clone());
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir.clone_from(dir);
    }
    if let Some(hostname) = &args.hostname {
        config.hostname.clone_from(hostname);
    }
    if let Some(addr) = args.metrics_addr {
        config.metrics_addr = Some(addr);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Args {
        let mut full = vec!["logward-collector"];
        full.extend_from_slice(argv);
        Args::try_parse_from(full).unwrap()
    }

    #[test]
    fn flags_parse() {
        let args = parse(&["--server", "http://h:1", "--no-docker", "--hostname", "box"]);
        assert_eq!(args.server.as_deref(), Some("http://h:1"));
        assert_eq!(args.no_docker, Some(true));
        assert_eq!(args.hostname.as_deref(), Some("box"));
        let args = parse(&["--no-journald=false"]);
        assert_eq!(args.no_journald, Some(false));
        let args = parse(&["--metrics-addr", "127.0.0.1:0"]);
        assert_eq!(args.metrics_addr, Some("127.0.0.1:0".parse().unwrap()));
        assert!(Args::try_parse_from(["logward-collector", "--metrics-addr", "nope"]).is_err());
    }

    #[test]
    fn unknown_flags_are_rejected() {
        assert!(Args::try_parse_from(["logward-collector", "--journal-dirs", "/x"]).is_err());
        let args = parse(&["--journal-dir", "/var/log/journal/remote"]);
        assert_eq!(
            apply(Config::default(), &args).journal_dir,
            Some(PathBuf::from("/var/log/journal/remote"))
        );
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(
            &path,
            "server = \"http://file:1\"\nhostname = \"from-file\"\nno_docker = true\n\
             batch_max_events = 7\n",
        )
        .unwrap();
        let path_str = path.to_str().unwrap();

        let config = load(&parse(&["--config", path_str])).unwrap();
        assert_eq!(config.server, "http://file:1");
        assert_eq!(config.hostname, "from-file");
        assert!(config.no_docker);
        assert_eq!(config.batch_max_events, 7);
        assert_eq!(config.state_dir, Config::default().state_dir);

        let config = load(&parse(&[
            "--config",
            path_str,
            "--server",
            "http://flag:2",
            "--no-docker=false",
        ]))
        .unwrap();
        assert_eq!(config.server, "http://flag:2");
        assert!(!config.no_docker);
        assert_eq!(config.hostname, "from-file");
    }

    #[test]
    fn bad_file_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let err = load(&parse(&["--config", missing.to_str().unwrap()])).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read config file"),
            "{err:#}"
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "no_such_key = 1\n").unwrap();
        let err = load(&parse(&["--config", bad.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("no_such_key"), "{err:#}");

        let err = load(&parse(&["--server", "nope"])).unwrap_err();
        assert!(format!("{err:#}").contains("invalid `server`"), "{err:#}");
    }
}
