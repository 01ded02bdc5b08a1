//! TLS to the server: the CA bundle, the client identity and the name to verify, read from
//! their files at every connect (so rotated files are picked up on the next reconnect), and
//! TLS failures turned into sentences that say what to fix.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::Config;

/// Why the TLS settings could not be loaded. Every variant names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {key} {path}")]
    Read {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable PEM object of the kind needed.
    #[error("{key} {path}: {reason}")]
    Invalid {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn bad(key: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        key,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads the PEM certificates of `path`; at least one, each a valid X.509 certificate.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(key, path)?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(key, path, format!("not valid PEM: {e}")))?;
        count += 1;
        // A trust store parses each certificate as a trust anchor: the same check works for
        // a CA and for a leaf.
        let mut store = rustls::RootCertStore::empty();
        store.add(cert).map_err(|e| {
            bad(
                key,
                path,
                format!("certificate {count} is not a valid X.509 certificate: {e}"),
            )
        })?;
    }
    if count == 0 {
        return Err(bad(
            key,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(pem)
}

/// The client TLS settings for `config` (whose server is `https://`), read from the files now.
pub fn client_config(config: &Config) -> Result<ClientTlsConfig, TlsError> {
    // ALPN may be missing on a TLS terminator; gRPC is always HTTP/2.
    let mut tls = ClientTlsConfig::new().assume_http2(true);
    tls = match &config.ca_file {
        Some(path) => tls.ca_certificate(Certificate::from_pem(certificates("ca_file", path)?)),
        None => tls.with_webpki_roots(),
    };
    if let (Some(cert_path), Some(key_path)) = (&config.client_cert, &config.client_key) {
        let cert = certificates("client_cert", cert_path)?;
        let key = read("client_key", key_path)?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
            bad(
                "client_key",
                key_path,
                format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
            )
        })?;
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    if let Some(name) = &config.server_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(tls)
}

/// Loads the TLS settings once at start so that a wrong path fails fast, and returns the
/// warnings about secret files readable by others.
pub fn preflight(config: &Config) -> Result<Vec<String>, TlsError> {
    if !config.uses_tls() {
        return Ok(Vec::new());
    }
    client_config(config)?;
    Ok(config
        .client_key
        .iter()
        .filter_map(|p| crate::security::secret_file_warning("client_key", p))
        .collect())
}

/// A TLS failure in words that say what to fix, or `None` when `error` (an error chain as
/// text) is not about TLS.
pub fn explain(error: &str, config: &Config) -> Option<String> {
    let has = |needles: &[&str]| needles.iter().any(|n| error.contains(n));
    let fix = if has(&["UnknownIssuer", "unknown issuer", "BadSignature"]) {
        match &config.ca_file {
            Some(path) => format!(
                "server certificate not trusted: it was not signed by a CA in ca_file {}; set ca_file to the CA that signed it",
                path.display()
            ),
            None => "server certificate not trusted: it was not signed by a public CA; set ca_file to the CA that signed it".to_owned(),
        }
    } else if has(&["NotValidForName", "not valid for name"]) {
        "server certificate does not hold the name connected to; set server_name to a name in the certificate, or use that name in server".to_owned()
    } else if has(&["Expired", "expired", "NotValidYet", "not valid yet"]) {
        "server certificate is expired or not yet valid; renew it, and check this host's clock"
            .to_owned()
    } else if has(&["CertificateRequired"]) {
        "the server requires a client certificate; set client_cert and client_key".to_owned()
    } else if has(&[
        "UnknownCA",
        "BadCertificate",
        "CertificateUnknown",
        "AccessDenied",
    ]) {
        if config.client_cert.is_some() {
            "the server rejected the client certificate; use one signed by the server's client_ca"
                .to_owned()
        } else {
            "the server refused the TLS handshake; it may require a client certificate (client_cert, client_key)".to_owned()
        }
    } else if has(&["InvalidContentType", "corrupt message"]) {
        "the server does not speak TLS on this port; use an http:// server or enable TLS on the server".to_owned()
    } else if has(&[
        "HandshakeFailure",
        "handshake",
        "peer certificate",
        "PeerIncompatible",
    ]) {
        "TLS handshake with the server failed".to_owned()
    } else {
        return None;
    };
    Some(format!("{fix} ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: &str, config: &Config, expected: Option<&str>) {
        let got = explain(error, config);
        match (got.as_deref(), expected) {
            (None, None) => {}
            (Some(text), Some(start)) => {
                assert!(
                    text.starts_with(start),
                    "{text:?} should start with {start:?}"
                );
                assert!(
                    text.ends_with(&format!("({error})")),
                    "{text:?} keeps the cause"
                );
            }
            (got, _) => panic!("{error:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn tls_errors_say_what_to_fix() {
        let plain = Config::default();
        let with_ca = Config {
            ca_file: Some("/etc/logward/ca.pem".into()),
            client_cert: Some("/c.pem".into()),
            ..Config::default()
        };
        let unknown = "transport error: invalid peer certificate: UnknownIssuer";
        check(
            unknown,
            &plain,
            Some("server certificate not trusted: it was not signed by a public CA"),
        );
        check(
            unknown,
            &with_ca,
            Some(
                "server certificate not trusted: it was not signed by a CA in ca_file /etc/logward/ca.pem",
            ),
        );
        check(
            "invalid peer certificate: certificate not valid for name \"x\"",
            &plain,
            Some("server certificate does not hold the name"),
        );
        check(
            "invalid peer certificate: Expired",
            &plain,
            Some("server certificate is expired"),
        );
        check(
            "received fatal alert: CertificateRequired",
            &plain,
            Some("the server requires a client certificate"),
        );
        check(
            "received fatal alert: UnknownCA",
            &with_ca,
            Some("the server rejected the client certificate"),
        );
        check(
            "received corrupt message of type InvalidContentType",
            &plain,
            Some("the server does not speak TLS"),
        );
        check(
            "transport error: Connection refused (os error 111)",
            &plain,
            None,
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let config = |ca: &Path| Config {
            server: "https://h:1".into(),
            ca_file: Some(ca.to_owned()),
            ..Config::default()
        };
        let err = client_config(&config(&junk)).unwrap_err().to_string();
        assert!(
            err.starts_with("ca_file ")
                && err.contains("junk.pem")
                && err.contains("no PEM certificate"),
            "{err}"
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(&config(&broken)).unwrap_err().to_string();
        assert!(
            err.contains("broken.pem") && err.contains("not a valid X.509"),
            "{err}"
        );
        let err = client_config(&config(&dir.path().join("gone.pem")))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read ca_file") && err.contains("gone.pem"),
            "{err}"
        );
    }
}
