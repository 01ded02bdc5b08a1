//! The server's own security settings: TLS for both listeners, collector credentials,
//! API tokens with roles, and the checks that refuse an exposed, unprotected listener.
//!
//! The configuration lives in `[security]` (see docs/SECURITY.md). Transport and
//! authentication code builds on these types; they hold no I/O.

pub mod http_serve;
pub mod incoming;
pub mod ingest_auth;
pub mod quota;
pub mod tls;
pub mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use token::{TokenError, hash_token};

/// `[security]`: how the listeners are protected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// TLS for the gRPC and HTTP listeners. Absent means plaintext, which is refused
    /// beyond loopback unless `allow_plaintext` is set.
    pub tls: Option<TlsConfig>,
    /// Collectors allowed to send, each with a hashed token or a client-certificate
    /// name. Empty (and no `tls.client_ca`) means ingest is open, which is refused
    /// beyond loopback unless `allow_open` is set.
    pub collectors: Vec<CollectorCredential>,
    /// API tokens and their roles. Empty means the HTTP API is open, which is refused
    /// beyond loopback unless `allow_open` is set.
    pub api_tokens: Vec<ApiToken>,
    /// Allow a plaintext listener on a non-loopback address (logged as a warning at
    /// every start).
    pub allow_plaintext: bool,
    /// Allow open (unauthenticated) ingest or API on a non-loopback address (logged as
    /// a warning at every start).
    pub allow_open: bool,
}

/// `[security.tls]`: the server's certificate, and the CA that signs collectors'
/// client certificates for mTLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file of CA certificates. When set, every gRPC client must present a
    /// certificate signed by one of them (mTLS); its identity is the certificate's
    /// first DNS subject alternative name, else its common name.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Re-read `cert`, `key` and `client_ca` when they change, checked this often in
    /// seconds; 0 turns reloading off. New connections use the new files.
    #[serde(default = "default_reload_interval_s")]
    pub reload_interval_s: u64,
    /// Serve the HTTP API over TLS too (with the same certificate, no client
    /// certificates asked).
    #[serde(default = "default_true")]
    pub http: bool,
}

fn default_reload_interval_s() -> u64 {
    30
}

fn default_true() -> bool {
    true
}

/// `[[security.collectors]]`: one collector identity and how it proves itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorCredential {
    /// The authenticated identity recorded on every event this collector sends
    /// (`logward.identity`), beside the host name it claims.
    pub identity: String,
    /// Hex SHA-256 of the collector's bearer token (`logward-server token new` makes
    /// a token and its hash). The token itself is never stored.
    #[serde(default)]
    pub token_sha256: Option<String>,
}

/// `[[security.api_tokens]]`: one API client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Name of the client, used in logs and audit lines.
    pub name: String,
    /// Hex SHA-256 of the bearer token.
    pub token_sha256: String,
    /// What the token may do.
    pub role: Role,
}

/// API roles. `Admin` can do everything a `Reader` can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, tail, aggregations, detections, alerts (read only).
    Reader,
    /// Also rules, silences and alert status changes.
    Admin,
}

/// A `[security]` section that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecurityError {
    #[error("[[security.collectors]] identity must be 1 to 128 printable characters, got {0:?}")]
    BadIdentity(String),
    #[error("[[security.collectors]] identity {0:?} is listed twice")]
    DuplicateIdentity(String),
    #[error(
        "[[security.collectors]] {0:?} needs token_sha256 (or set security.tls.client_ca and use client certificates)"
    )]
    NoCredential(String),
    #[error("{what} {name:?}: token_sha256 must be 64 hex digits")]
    BadHash { what: &'static str, name: String },
    #[error("two credentials share the token hash of {0:?}")]
    DuplicateToken(String),
    #[error("[[security.api_tokens]] name must not be empty")]
    EmptyTokenName,
    #[error(
        "{what} listens on {addr} without TLS; add [security.tls], listen on loopback, or set security.allow_plaintext = true"
    )]
    Plaintext {
        what: &'static str,
        addr: SocketAddr,
    },
    #[error(
        "{what} listens on {addr} without authentication; add {fix}, listen on loopback, or set security.allow_open = true"
    )]
    Open {
        what: &'static str,
        addr: SocketAddr,
        fix: &'static str,
    },
    #[error("security.tls.{0} must not be empty")]
    EmptyPath(&'static str),
}

impl SecurityConfig {
    /// Checks the section without touching the system: well-formed hashes, unique
    /// identities and tokens.
    pub fn validate(&self) -> Result<(), SecurityError> {
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() {
                return Err(SecurityError::EmptyPath("cert"));
            }
            if tls.key.as_os_str().is_empty() {
                return Err(SecurityError::EmptyPath("key"));
            }
        }
        let mut identities: Vec<&str> = Vec::new();
        let mut hashes: Vec<(&str, &str)> = Vec::new();
        for c in &self.collectors {
            let ok = !c.identity.is_empty()
                && c.identity.len() <= 128
                && c.identity
                    .chars()
                    .all(|ch| !ch.is_control() && !ch.is_whitespace());
            if !ok {
                return Err(SecurityError::BadIdentity(c.identity.clone()));
            }
            if identities.contains(&c.identity.as_str()) {
                return Err(SecurityError::DuplicateIdentity(c.identity.clone()));
            }
            identities.push(&c.identity);
            match &c.token_sha256 {
                Some(h) => {
                    check_hash(h, "[[security.collectors]]", &c.identity)?;
                    hashes.push((h, &c.identity));
                }
                None if self.client_ca_set() => {}
                None => return Err(SecurityError::NoCredential(c.identity.clone())),
            }
        }
        for t in &self.api_tokens {
            if t.name.is_empty() {
                return Err(SecurityError::EmptyTokenName);
            }
            check_hash(&t.token_sha256, "[[security.api_tokens]]", &t.name)?;
            hashes.push((&t.token_sha256, &t.name));
        }
        for (i, (h, name)) in hashes.iter().enumerate() {
            if hashes[..i].iter().any(|(o, _)| o.eq_ignore_ascii_case(h)) {
                return Err(SecurityError::DuplicateToken((*name).to_owned()));
            }
        }
        Ok(())
    }

    /// Whether collectors must authenticate (tokens or client certificates).
    pub fn ingest_requires_auth(&self) -> bool {
        !self.collectors.is_empty() || self.client_ca_set()
    }

    /// Whether API requests must carry a token.
    pub fn api_requires_auth(&self) -> bool {
        !self.api_tokens.is_empty()
    }

    fn client_ca_set(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.client_ca.is_some())
    }

    /// Refuses exposed listeners that are plaintext or open unless explicitly allowed.
    /// Pure: takes the bound addresses.
    pub fn check_exposure(&self, grpc: SocketAddr, http: SocketAddr) -> Result<(), SecurityError> {
        let http_tls = self.tls.as_ref().is_some_and(|t| t.http);
        for (what, addr, tls) in [
            ("gRPC ingest", grpc, self.tls.is_some()),
            ("HTTP API", http, http_tls),
        ] {
            if !addr.ip().is_loopback() && !tls && !self.allow_plaintext {
                return Err(SecurityError::Plaintext { what, addr });
            }
        }
        if !grpc.ip().is_loopback() && !self.ingest_requires_auth() && !self.allow_open {
            return Err(SecurityError::Open {
                what: "gRPC ingest",
                addr: grpc,
                fix: "[[security.collectors]] or security.tls.client_ca",
            });
        }
        if !http.ip().is_loopback() && !self.api_requires_auth() && !self.allow_open {
            return Err(SecurityError::Open {
                what: "HTTP API",
                addr: http,
                fix: "[[security.api_tokens]]",
            });
        }
        Ok(())
    }
}

fn check_hash(h: &str, what: &'static str, name: &str) -> Result<(), SecurityError> {
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(SecurityError::BadHash {
            what,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
