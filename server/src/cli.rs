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
    /// PEM certificate chain of the server (`security.tls.cert`); turns TLS on with
    /// `--tls-key`.
    #[arg(long, env = "LOGWARD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the server (`security.tls.key`).
    #[arg(long, env = "LOGWARD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that signs collectors' client certificates
    /// (`security.tls.client_ca`); turns mTLS on for gRPC.
    #[arg(long, env = "LOGWARD_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
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
    /// Bearer tokens for collectors and API clients.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `logward-server token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Prints a new random token and the config lines that admit it (only its
    /// SHA-256 goes into the config).
    New {
        /// Identity of the collector (or name of the API client) in the printed lines.
        #[arg(long, default_value = "collector-1")]
        identity: String,
        /// Print an `[[security.api_tokens]]` entry with this role (`reader` or
        /// `admin`) instead of a collector entry.
        #[arg(long, value_name = "ROLE")]
        api_role: Option<String>,
    },
    /// Reads a token from stdin and prints its `token_sha256`.
    Hash,
}

/// Runs a `token` subcommand on `stdin`: stdout, stderr and the exit code.
pub fn run_token(command: &TokenCommand, stdin: &mut dyn std::io::Read) -> (String, String, i32) {
    match command {
        TokenCommand::New { identity, api_role } => {
            let token = match crate::security::token::new_token() {
                Ok(t) => t,
                Err(e) => return (String::new(), format!("{e}\n"), 1),
            };
            let hash = crate::security::hash_token(&token);
            let entry = match api_role.as_deref() {
                None => format!(
                    "[[security.collectors]]\nidentity = {identity:?}\ntoken_sha256 = \"{hash}\"\n"
                ),
                Some(role @ ("reader" | "admin")) => format!(
                    "[[security.api_tokens]]\nname = {identity:?}\ntoken_sha256 = \"{hash}\"\nrole = \"{role}\"\n"
                ),
                Some(other) => {
                    return (
                        String::new(),
                        format!("--api-role must be reader or admin, got {other:?}\n"),
                        2,
                    );
                }
            };
            let out = format!(
                "token: {token}\n\n# Give the token to the client (collector: token_file or LOGWARD_TOKEN);\n# paste these lines into the server config:\n{entry}"
            );
            (out, String::new(), 0)
        }
        TokenCommand::Hash => {
            let mut text = String::new();
            if let Err(e) = stdin.read_to_string(&mut text) {
                return (String::new(), format!("cannot read stdin: {e}\n"), 1);
            }
            let token = text.trim();
            if token.is_empty() {
                return (String::new(), "no token on stdin\n".to_owned(), 1);
            }
            (
                format!(
                    "token_sha256 = \"{}\"\n",
                    crate::security::hash_token(token)
                ),
                String::new(),
                0,
            )
        }
    }
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

/// `--tls-cert`, `--tls-key`, `--tls-client-ca` over `[security.tls]`.
fn apply_tls_flags(
    args: &Args,
    security: &mut crate::security::SecurityConfig,
) -> anyhow::Result<()> {
    if args.tls_cert.is_none() && args.tls_key.is_none() && args.tls_client_ca.is_none() {
        return Ok(());
    }
    let tls = match (security.tls.take(), &args.tls_cert, &args.tls_key) {
        (Some(tls), _, _) => tls,
        (None, Some(cert), Some(key)) => crate::security::TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
            reload_interval_s: 30,
            http: true,
        },
        (None, _, _) => anyhow::bail!(
            "--tls-cert and --tls-key go together (or set [security.tls] in the config file)"
        ),
    };
    let mut tls = tls;
    if let Some(cert) = &args.tls_cert {
        tls.cert.clone_from(cert);
    }
    if let Some(key) = &args.tls_key {
        tls.key.clone_from(key);
    }
    if let Some(ca) = &args.tls_client_ca {
        tls.client_ca = Some(ca.clone());
    }
    security.tls = Some(tls);
    Ok(())
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
    apply_tls_flags(args, &mut config.security)?;
    config.validate().context("invalid configuration")?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cert, key and client CA of `[security.tls]`.
    type Tls<'a> = (&'a str, &'a str, Option<&'a str>);

    /// Parses `argv` (after the binary name) and loads; checks the TLS section or the
    /// error.
    fn check(argv: &[&str], expected: Result<Option<Tls<'_>>, &str>) {
        let args =
            Args::try_parse_from(std::iter::once("logward-server").chain(argv.iter().copied()))
                .expect("flags parse");
        let got = load(&args).map_err(|e| format!("{e:#}")).map(|c| {
            c.security.tls.map(|t| {
                (
                    t.cert.display().to_string(),
                    t.key.display().to_string(),
                    t.client_ca.map(|p| p.display().to_string()),
                )
            })
        });
        match (&got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(
                g.as_ref()
                    .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_deref())),
                e,
                "{argv:?}"
            ),
            (Err(g), Err(e)) => assert!(g.contains(e), "{argv:?}: {g:?} lacks {e:?}"),
            _ => panic!("{argv:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn tls_flags() {
        check(&[], Ok(None));
        check(
            &["--tls-cert", "c.pem", "--tls-key", "k.pem"],
            Ok(Some(("c.pem", "k.pem", None))),
        );
        check(
            &[
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--tls-client-ca",
                "ca.pem",
            ],
            Ok(Some(("c.pem", "k.pem", Some("ca.pem")))),
        );
        check(
            &["--tls-cert", "c.pem"],
            Err("--tls-cert and --tls-key go together"),
        );
        check(&["--tls-client-ca", "ca.pem"], Err("go together"));
    }

    #[test]
    fn token_commands() {
        let (out, _, code) = run_token(&TokenCommand::Hash, &mut "abc\n".as_bytes());
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "token_sha256 = \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"\n"
        );
        let (_, err, code) = run_token(&TokenCommand::Hash, &mut "  \n".as_bytes());
        assert_eq!((code, err.as_str()), (1, "no token on stdin\n"));
        let new = TokenCommand::New {
            identity: "web-1".into(),
            api_role: None,
        };
        let (out, _, code) = run_token(&new, &mut std::io::empty());
        assert_eq!(code, 0);
        let token = out
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("token: "))
            .expect("token line");
        let hash = crate::security::hash_token(token);
        assert!(out.contains(&format!("token_sha256 = \"{hash}\"")), "{out}");
        let toml_part: String = out
            .lines()
            .filter(|l| !l.starts_with("token:"))
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: Config = toml::from_str(&toml_part).expect("pasteable TOML");
        assert_eq!(parsed.security.collectors[0].identity, "web-1");
        let api = TokenCommand::New {
            identity: "grafana".into(),
            api_role: Some("reader".into()),
        };
        let (out, _, _) = run_token(&api, &mut std::io::empty());
        let toml_part: String = out
            .lines()
            .filter(|l| !l.starts_with("token:"))
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: Config = toml::from_str(&toml_part).expect("pasteable TOML");
        assert_eq!(parsed.security.api_tokens[0].name, "grafana");
    }
}
