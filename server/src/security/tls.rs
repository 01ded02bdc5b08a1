//! TLS for the listeners: builds rustls server configurations from the PEM files of
//! `[security.tls]`, re-reads them when they change (new connections get the new
//! configuration, a broken file keeps the old one), and names the peer of a client
//! certificate (first DNS subject alternative name, else common name).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use super::TlsConfig;

/// A TLS file set that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("key {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {message}")]
    NoKey { path: PathBuf, message: String },
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

/// The bytes of the configured files, kept to notice changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// The server configurations built from one file set.
#[derive(Clone)]
pub struct TlsConfigs {
    /// gRPC: ALPN `h2`, client certificates required when `client_ca` is set.
    pub grpc: Arc<ServerConfig>,
    /// HTTP API: ALPN `http/1.1`, no client certificates.
    pub http: Arc<ServerConfig>,
}

/// The current TLS configurations, replaced when the files change.
pub struct TlsState {
    config: TlsConfig,
    current: RwLock<(Files, TlsConfigs)>,
}

impl TlsState {
    /// Reads and checks the files; fails when they cannot serve.
    pub fn load(config: &TlsConfig) -> Result<Arc<TlsState>, TlsError> {
        let files = read_files(config)?;
        let configs = build(&files, config)?;
        Ok(Arc::new(TlsState {
            config: config.clone(),
            current: RwLock::new((files, configs)),
        }))
    }

    /// The configurations new connections use.
    pub fn current(&self) -> TlsConfigs {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// Whether gRPC clients must present a certificate.
    pub fn mtls(&self) -> bool {
        self.config.client_ca.is_some()
    }

    /// Re-reads the files; swaps the configurations when they changed and still work.
    /// Returns whether a new configuration is in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let files = read_files(&self.config)?;
        let unchanged = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            == files;
        if unchanged {
            return Ok(false);
        }
        let configs = build(&files, &self.config)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (files, configs);
        Ok(true)
    }

    /// Checks the files every `reload_interval_s` until the task is aborted.
    pub fn spawn_reloader(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.config.reload_interval_s;
        if every == 0 {
            return None;
        }
        let state = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match state.reload() {
                    Ok(true) => {
                        info!(cert = %state.config.cert.display(), "tls certificate reloaded; new connections use it");
                    }
                    Ok(false) => {}
                    Err(error) => {
                        warn!(%error, "tls files changed but cannot be used; keeping the previous certificate");
                    }
                }
            }
        }))
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn read_files(config: &TlsConfig) -> Result<Files, TlsError> {
    Ok(Files {
        cert: read("certificate", &config.cert)?,
        key: read("key", &config.key)?,
        client_ca: match &config.client_ca {
            Some(p) => Some(read("client CA", p)?),
            None => None,
        },
    })
}

/// The PEM certificates of `bytes`, at least one.
pub fn parse_certs(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            what,
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(files: &Files, config: &TlsConfig) -> Result<TlsConfigs, TlsError> {
    let chain = parse_certs("certificate", &config.cert, &files.cert)?;
    let key = |bytes: &[u8]| {
        PrivateKeyDer::from_pem_slice(bytes).map_err(|e| TlsError::NoKey {
            path: config.key.clone(),
            message: e.to_string(),
        })
    };
    let rustls_err = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let builder = || {
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)
    };
    let grpc_builder = match (&files.client_ca, &config.client_ca) {
        (Some(ca), Some(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in parse_certs("client CA", path, ca)? {
                roots.add(cert).map_err(rustls_err)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder()?.with_client_cert_verifier(verifier)
        }
        _ => builder()?.with_no_client_auth(),
    };
    let mut grpc = grpc_builder
        .with_single_cert(chain.clone(), key(&files.key)?)
        .map_err(rustls_err)?;
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    let mut http = builder()?
        .with_no_client_auth()
        .with_single_cert(chain, key(&files.key)?)
        .map_err(rustls_err)?;
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConfigs {
        grpc: Arc::new(grpc),
        http: Arc::new(http),
    })
}

/// The identity a client certificate names: its first DNS subject alternative name,
/// else its subject common name.
pub fn cert_identity(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                return Some((*dns).to_owned());
            }
        }
    }
    cert.subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_owned))
}

/// The first DNS name (else common name) of the leaf certificate in a PEM file, to
/// verify the server as.
pub fn pem_leaf_name(path: &Path) -> Result<Option<String>, TlsError> {
    let bytes = read("certificate", path)?;
    let certs = parse_certs("certificate", path, &bytes)?;
    Ok(certs.first().and_then(|c| cert_identity(c)))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
