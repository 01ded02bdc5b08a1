//! Command-line flags and environment, and how they combine with the config file.
//!
//! Precedence, highest first: flags, environment variables, the TOML file, built-in defaults.
//! clap applies "flag over environment" itself; [`load`] lays the result over the file.
//! The token is the exception clap cannot express (two variables, one of them a secret that
//! must not be a flag), so [`load`] reads `LOGWARD_TOKEN` and `LOGWARD_TOKEN_FILE` itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::config::{Compression, Config};
use crate::security;

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

    /// PEM CA bundle that verifies the server (https:// only) [default: the public web roots]
    #[arg(long, env = "LOGWARD_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// PEM client certificate for mutual TLS, with --client-key
    #[arg(long, env = "LOGWARD_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert
    #[arg(long, env = "LOGWARD_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Name to verify in the server's certificate [default: the host of --server]
    #[arg(long, env = "LOGWARD_SERVER_NAME", value_name = "NAME")]
    pub server_name: Option<String>,

    /// File holding the bearer token [env: LOGWARD_TOKEN_FILE]; the environment variable
    /// LOGWARD_TOKEN gives the token itself (there is no flag for the value: flags show in ps)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Compression of the batches sent [default: zstd]
    #[arg(long, env = "LOGWARD_COMPRESSION", value_enum, value_name = "ALGO")]
    pub compression: Option<Compression>,

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
/// then the token, then validation.
pub fn load(args: &Args) -> anyhow::Result<Config> {
    load_with_env(args, &|name| std::env::var_os(name))
}

/// [`load`] with the token variables read through `env`.
pub fn load_with_env(
    args: &Args,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Config> {
    let base = match &args.config {
        Some(path) => read_file(path)?,
        None => Config::default(),
    };
    let mut config = apply(base, args);
    resolve_token(&mut config, args, env)?;
    config.validate().context("invalid configuration")?;
    Ok(config)
}

/// Fills `config.token`: `--token-file`, else `LOGWARD_TOKEN` or `LOGWARD_TOKEN_FILE` (not
/// both), else the file's `token_file`.
fn resolve_token(
    config: &mut Config,
    args: &Args,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<()> {
    let var = |name| env(name).filter(|v| !v.is_empty());
    let (env_token, env_file) = (var("LOGWARD_TOKEN"), var("LOGWARD_TOKEN_FILE"));
    if let Some(path) = &args.token_file {
        config.token_file = Some(path.clone());
    } else if env_token.is_some() && env_file.is_some() {
        anyhow::bail!("set either LOGWARD_TOKEN or LOGWARD_TOKEN_FILE, not both");
    } else if let Some(token) = env_token {
        let token = token
            .into_string()
            .map_err(|_| security::TokenError::Invalid {
                origin: "LOGWARD_TOKEN".to_owned(),
                reason: "not UTF-8".to_owned(),
            })?;
        security::check_token(&token).map_err(|reason| security::TokenError::Invalid {
            origin: "LOGWARD_TOKEN".to_owned(),
            reason,
        })?;
        config.token_file = None;
        config.token = Some(token);
        return Ok(());
    } else if let Some(path) = env_file {
        config.token_file = Some(PathBuf::from(path));
    }
    if let Some(path) = &config.token_file {
        config.token = Some(security::read_token_file(path)?);
    }
    Ok(())
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
    if let Some(path) = &args.ca_file {
        config.ca_file = Some(path.clone());
    }
    if let Some(path) = &args.client_cert {
        config.client_cert = Some(path.clone());
    }
    if let Some(path) = &args.client_key {
        config.client_key = Some(path.clone());
    }
    if let Some(name) = &args.server_name {
        config.server_name = Some(name.clone());
    }
    if let Some(compression) = args.compression {
        config.compression = compression;
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

    /// Token from `file_toml` (a config file's text), `argv` and `env`: `Ok(token)` or
    /// `Err(part of the error)`.
    fn check(
        file_toml: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        expected: Result<Option<&str>, &str>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let file_token = write("file-token", "lw_from_config_file\n");
        let flag_token = write("flag-token", "lw_from_flag\n");
        let env_token = write("env-token", " lw_from_env_file ");
        let bad_token = write("bad-token", "not a token\n");
        let subst = |s: &str| {
            s.replace("FILE_TOKEN", &file_token)
                .replace("FLAG_TOKEN", &flag_token)
                .replace("ENV_TOKEN", &env_token)
                .replace("BAD_TOKEN", &bad_token)
        };
        let config_path = write("collector.toml", &subst(file_toml));
        let mut full = vec!["--config".to_owned(), config_path];
        full.extend(argv.iter().map(|a| subst(a)));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), subst(v)))
            .collect();
        let lookup = move |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        };
        let got = load_with_env(&parse(&refs), &lookup);
        match (got, expected) {
            (Ok(config), Ok(token)) => {
                assert_eq!(config.token.as_deref(), token, "{argv:?} {file_toml:?}");
            }
            (Err(err), Err(part)) => {
                let text = format!("{err:#}");
                assert!(text.contains(part), "{text:?} should contain {part:?}");
            }
            (got, expected) => panic!("{argv:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn token_sources_and_precedence() {
        let in_file = "token_file = \"FILE_TOKEN\"\n";
        check("", &[], &[], Ok(None));
        check(in_file, &[], &[], Ok(Some("lw_from_config_file")));
        check(
            in_file,
            &[],
            &[("LOGWARD_TOKEN", "lw_env_value")],
            Ok(Some("lw_env_value")),
        );
        check(
            in_file,
            &[],
            &[("LOGWARD_TOKEN_FILE", "ENV_TOKEN")],
            Ok(Some("lw_from_env_file")),
        );
        check(
            in_file,
            &["--token-file", "FLAG_TOKEN"],
            &[("LOGWARD_TOKEN", "lw_env_value")],
            Ok(Some("lw_from_flag")),
        );
        check("", &[], &[("LOGWARD_TOKEN", "")], Ok(None));
        check(
            "",
            &[],
            &[
                ("LOGWARD_TOKEN", "lw_a"),
                ("LOGWARD_TOKEN_FILE", "ENV_TOKEN"),
            ],
            Err("set either LOGWARD_TOKEN or LOGWARD_TOKEN_FILE"),
        );
        check(
            "",
            &[],
            &[("LOGWARD_TOKEN", "two words")],
            Err("bad token in LOGWARD_TOKEN"),
        );
        check(
            "",
            &["--token-file", "BAD_TOKEN"],
            &[],
            Err("bad token in token_file"),
        );
        check(
            "",
            &["--token-file", "/nonexistent/token"],
            &[],
            Err("cannot read token_file /nonexistent/token"),
        );
    }

    #[test]
    fn tls_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(
            &path,
            "server = \"https://logs.example:7420\"\nca_file = \"/file/ca.pem\"\ncompression = \"gzip\"\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let none = |_: &str| None;
        let config = load_with_env(&parse(&["--config", path]), &none).unwrap();
        assert_eq!(config.ca_file, Some(PathBuf::from("/file/ca.pem")));
        assert_eq!(config.compression, Compression::Gzip);
        let config = load_with_env(
            &parse(&[
                "--config",
                path,
                "--ca-file",
                "/flag/ca.pem",
                "--client-cert",
                "/c.pem",
                "--client-key",
                "/c.key",
                "--server-name",
                "logward.internal",
                "--compression",
                "none",
            ]),
            &none,
        )
        .unwrap();
        assert_eq!(config.ca_file, Some(PathBuf::from("/flag/ca.pem")));
        assert_eq!(config.client_key, Some(PathBuf::from("/c.key")));
        assert_eq!(config.server_name.as_deref(), Some("logward.internal"));
        assert_eq!(config.compression, Compression::None);
        let err = load_with_env(
            &parse(&["--config", path, "--client-cert", "/c.pem"]),
            &none,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid `client_key`"),
            "{err:#}"
        );
        let err = load_with_env(&parse(&["--ca-file", "/ca.pem"]), &none).unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid `ca_file`: needs TLS"),
            "{err:#}"
        );
        assert!(Args::try_parse_from(["logward-collector", "--compression", "brotli"]).is_err());
        assert!(Args::try_parse_from(["logward-collector", "--token", "x"]).is_err());
    }
}
