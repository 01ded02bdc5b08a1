//! Transport security settings: pure checks of the TLS and token keys, the warnings a risky
//! but allowed setup gets at start, and reading the token file.
//!
//! The server decides what it accepts (plaintext, open ingest); the collector refuses only
//! settings that cannot work, and says loudly when logs or a token would cross the network
//! in the clear.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, invalid};

/// Why the bearer token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read token_file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token (from a file or the environment) is not usable.
    #[error("bad token in {origin}: {reason}")]
    Invalid {
        /// `token_file <path>` or `LOGWARD_TOKEN`.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// Checks a bearer token: non-empty printable ASCII without spaces (it travels in an HTTP/2
/// header as `Bearer <token>`).
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token is empty".to_owned());
    }
    match token.bytes().position(|b| !b.is_ascii_graphic()) {
        Some(at) => Err(format!(
            "the token must be printable ASCII without spaces (bad byte at position {at})"
        )),
        None => Ok(()),
    }
}

/// Reads and checks the token in `path` (surrounding white space is trimmed).
pub fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim().to_owned();
    check_token(&token).map_err(|reason| TokenError::Invalid {
        origin: format!("token_file {}", path.display()),
        reason,
    })?;
    Ok(token)
}

/// A warning when a secret file (token, client key) can be read by group or others.
pub fn secret_file_warning(key: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{key} {} is readable by other users (mode {:o}); chmod 600 it and give it to the collector's user",
            path.display(),
            mode & 0o777
        )
    })
}

/// Whether `host` (as in a URL, IPv6 in brackets) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The server URL's scheme is `https`, and its host. `None` when the URL does not parse
/// (the general validation reports that).
fn scheme_and_host(server: &str) -> Option<(bool, String)> {
    let uri: tonic::codegen::http::Uri = server.parse().ok()?;
    let https = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    Some((https, uri.host()?.to_owned()))
}

/// The transport-security part of [`Config::validate`]. Pure.
pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    let Some((https, _)) = scheme_and_host(&config.server) else {
        return Ok(());
    };
    let paths = [
        ("ca_file", &config.ca_file),
        ("client_cert", &config.client_cert),
        ("client_key", &config.client_key),
        ("token_file", &config.token_file),
    ];
    for (key, path) in paths {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(invalid(key, "must not be empty"));
        }
    }
    let tls_only = [
        ("ca_file", config.ca_file.is_some()),
        ("client_cert", config.client_cert.is_some()),
        ("client_key", config.client_key.is_some()),
        ("server_name", config.server_name.is_some()),
    ];
    for (key, set) in tls_only {
        if set && !https {
            return Err(invalid(
                key,
                format!(
                    "needs TLS, but server {:?} is plaintext; use an https:// server",
                    config.server
                ),
            ));
        }
    }
    match (&config.client_cert, &config.client_key) {
        (Some(_), None) => return Err(invalid("client_key", "client_cert needs client_key")),
        (None, Some(_)) => return Err(invalid("client_cert", "client_key needs client_cert")),
        _ => {}
    }
    if let Some(name) = &config.server_name
        && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        return Err(invalid(
            "server_name",
            format!("{name:?} is not a DNS name or IP address"),
        ));
    }
    if let Some(token) = &config.token {
        check_token(token).map_err(|reason| invalid("token", reason))?;
    }
    Ok(())
}

/// Warnings for a setup that works but exposes logs or the token on the network. Pure.
pub fn warnings(config: &Config) -> Vec<String> {
    let Some((https, host)) = scheme_and_host(&config.server) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    if !https && !is_loopback_host(&host) {
        warnings.push(format!(
            "sending logs in plaintext to {host}: anyone on the path can read, drop or alter \
             them; use an https:// server (ca_file for a private CA)"
        ));
        if config.token.is_some() {
            warnings.push(format!(
                "sending the collector token in plaintext to {host}: anyone on the path can \
                 steal it and write logs as this collector; use an https:// server"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mutate` applied to a default config: `Ok(warning count)` or `Err(rejected key)`.
    fn check(mutate: fn(&mut Config), expected: Result<usize, &str>) {
        let mut config = Config::default();
        mutate(&mut config);
        let got = match config.validate() {
            Ok(()) => Ok(warnings(&config).len()),
            Err(ConfigError::Invalid { key, .. }) => Err(key),
        };
        assert_eq!(got, expected, "{config:?}");
    }

    #[test]
    fn transport_settings() {
        let https = |c: &mut Config| c.server = "https://logs.example:7420".into();
        check(|_| {}, Ok(0));
        check(|c| c.server = "http://localhost:7420".into(), Ok(0));
        check(|c| c.server = "http://[::1]:7420".into(), Ok(0));
        check(|c| c.server = "http://10.1.2.3:7420".into(), Ok(1));
        check(
            |c| {
                c.server = "http://logs.example:7420".into();
                c.token = Some("lw_abc".into());
            },
            Ok(2),
        );
        check(
            |c| {
                c.token = Some("lw_abc".into());
            },
            Ok(0),
        );
        check(https, Ok(0));
        check(
            |c| {
                c.server = "https://logs.example:7420".into();
                c.ca_file = Some("/etc/logward/ca.pem".into());
                c.client_cert = Some("/etc/logward/c.pem".into());
                c.client_key = Some("/etc/logward/c.key".into());
                c.server_name = Some("logward.internal".into());
                c.token = Some("lw_0123".into());
            },
            Ok(0),
        );
        check(|c| c.ca_file = Some("/ca.pem".into()), Err("ca_file"));
        check(|c| c.server_name = Some("x".into()), Err("server_name"));
        check(
            |c| c.client_cert = Some("/c.pem".into()),
            Err("client_cert"),
        );
        check(
            |c| {
                c.server = "https://h:1".into();
                c.client_cert = Some("/c.pem".into());
            },
            Err("client_key"),
        );
        check(
            |c| {
                c.server = "https://h:1".into();
                c.client_key = Some("/c.key".into());
            },
            Err("client_cert"),
        );
        check(
            |c| {
                c.server = "https://h:1".into();
                c.ca_file = Some(PathBuf::new());
            },
            Err("ca_file"),
        );
        check(
            |c| {
                c.server = "https://h:1".into();
                c.server_name = Some("bad name".into());
            },
            Err("server_name"),
        );
        check(|c| c.token_file = Some(PathBuf::new()), Err("token_file"));
        check(|c| c.token = Some(String::new()), Err("token"));
        check(|c| c.token = Some("has space".into()), Err("token"));
        check(|c| c.token = Some("tab\there".into()), Err("token"));
        check(|c| c.token = Some("é".into()), Err("token"));
    }

    #[test]
    fn token_files_are_trimmed_checked_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "  lw_0123abc\n").unwrap();
        assert_eq!(read_token_file(&good).unwrap(), "lw_0123abc");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "two words\n").unwrap();
        let err = read_token_file(&bad).unwrap_err().to_string();
        assert!(err.contains(bad.to_str().unwrap()), "{err}");
        let missing = dir.path().join("missing");
        let err = read_token_file(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read token_file") && err.contains("missing"),
            "{err}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(secret_file_warning("token_file", &good).is_some());
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(secret_file_warning("token_file", &good).is_none());
    }
}
