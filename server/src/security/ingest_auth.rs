//! Who a collector is: its bearer token (checked against the hashed tokens of
//! `[[security.collectors]]`) and its client certificate (mTLS), reconciled into one
//! authenticated identity, or refused with a status that says what to fix.

use tonic::Status;

use super::SecurityConfig;
use super::token::{TokenSet, bearer};

/// Identity of every collector when no collector credentials are configured.
pub const ANONYMOUS: &str = "anonymous";
/// Identity of the collector the server runs itself (`with_collector`).
pub const EMBEDDED: &str = "embedded";

/// Why a collector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: set token_file or LOGWARD_TOKEN on the collector")]
    MissingToken,
    #[error("malformed authorization metadata: expected \"Bearer <token>\"")]
    Malformed,
    #[error("unknown collector token")]
    UnknownToken,
    #[error(
        "client certificate names identity {cert:?} but the bearer token belongs to {token:?}; a collector may use only one identity"
    )]
    Conflict { cert: String, token: String },
    #[error("client certificate identity {0:?} is not listed in [[security.collectors]]")]
    NotListed(String),
}

impl AuthError {
    /// The gRPC status the collector sees.
    pub fn status(&self) -> Status {
        match self {
            AuthError::MissingToken | AuthError::Malformed | AuthError::UnknownToken => {
                Status::unauthenticated(self.to_string())
            }
            AuthError::Conflict { .. } | AuthError::NotListed(_) => {
                Status::permission_denied(self.to_string())
            }
        }
    }

    /// The `reason` label of `logward_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Malformed => "malformed_token",
            AuthError::UnknownToken => "bad_token",
            AuthError::Conflict { .. } => "identity_mismatch",
            AuthError::NotListed(_) => "cert_not_listed",
        }
    }
}

/// The collector credentials in force.
#[derive(Debug, Clone)]
pub struct IngestAuth {
    tokens: TokenSet<String>,
    /// Identities a client certificate may name; empty means any certificate the
    /// client CA signed.
    cert_identities: Vec<String>,
    /// No credentials configured: collectors without any are `anonymous`.
    open: bool,
}

impl IngestAuth {
    /// Builds the credentials of `[security]`, plus the embedded collector's token
    /// hash (identity `embedded`) when the server runs one.
    pub fn new(security: &SecurityConfig, embedded_token_sha256: Option<String>) -> Self {
        let mut pairs: Vec<(String, String)> = security
            .collectors
            .iter()
            .filter_map(|c| c.token_sha256.clone().map(|h| (h, c.identity.clone())))
            .collect();
        if let Some(h) = embedded_token_sha256 {
            pairs.push((h, EMBEDDED.to_owned()));
        }
        // Listing identities without a token turns on the certificate allow-list;
        // then any listed identity may be named by a certificate.
        let cert_identities = if security.collectors.iter().any(|c| c.token_sha256.is_none()) {
            security
                .collectors
                .iter()
                .map(|c| c.identity.clone())
                .collect()
        } else {
            Vec::new()
        };
        IngestAuth {
            tokens: TokenSet::new(pairs),
            cert_identities,
            open: !security.ingest_requires_auth(),
        }
    }

    /// The authenticated identity of a stream, from its `authorization` metadata
    /// (if any) and the verified client certificate's identity (if any).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        cert_identity: Option<&str>,
    ) -> Result<String, AuthError> {
        let by_token = match authorization {
            None => None,
            Some(value) => {
                let token = bearer(value).ok_or(AuthError::Malformed)?;
                Some(self.tokens.verify(token).ok_or(AuthError::UnknownToken)?)
            }
        };
        if let Some(cert) = cert_identity
            && !self.cert_identities.is_empty()
            && !self.cert_identities.iter().any(|i| i == cert)
        {
            return Err(AuthError::NotListed(cert.to_owned()));
        }
        match (cert_identity, by_token) {
            (Some(cert), Some(token)) if cert != token => Err(AuthError::Conflict {
                cert: cert.to_owned(),
                token: token.clone(),
            }),
            (Some(cert), _) => Ok(cert.to_owned()),
            (None, Some(token)) => Ok(token.clone()),
            (None, None) if self.open => Ok(ANONYMOUS.to_owned()),
            (None, None) => Err(AuthError::MissingToken),
        }
    }
}

/// The key of a collector's sequence and dedup state: its collector id within its
/// identity. Collector ids hold no `/`, so keys of different identities never meet;
/// `anonymous` keeps the bare id (the key before identities existed).
pub fn state_key(identity: &str, collector_id: &str) -> String {
    if identity == ANONYMOUS {
        collector_id.to_owned()
    } else {
        format!("{identity}/{collector_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{CollectorCredential, TlsConfig, hash_token};

    fn security(collectors: &[(&str, Option<&str>)], client_ca: bool) -> SecurityConfig {
        SecurityConfig {
            tls: client_ca.then(|| TlsConfig {
                cert: "c".into(),
                key: "k".into(),
                client_ca: Some("ca".into()),
                reload_interval_s: 0,
                http: true,
            }),
            collectors: collectors
                .iter()
                .map(|(identity, token)| CollectorCredential {
                    identity: (*identity).to_owned(),
                    token_sha256: token.map(hash_token),
                })
                .collect(),
            ..SecurityConfig::default()
        }
    }

    fn check(
        auth: &IngestAuth,
        header: Option<&str>,
        cert: Option<&str>,
        expected: Result<&str, tonic::Code>,
    ) {
        let got = auth.authenticate(header, cert);
        match (&got, expected) {
            (Ok(id), Ok(want)) => assert_eq!(id, want, "{header:?} {cert:?}"),
            (Err(e), Err(code)) => assert_eq!(e.status().code(), code, "{header:?} {cert:?}: {e}"),
            _ => panic!("{header:?} {cert:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn open_mode() {
        let auth = IngestAuth::new(&security(&[], false), Some(hash_token("emb")));
        check(&auth, None, None, Ok("anonymous"));
        check(&auth, Some("Bearer emb"), None, Ok("embedded"));
        check(
            &auth,
            Some("Bearer nope"),
            None,
            Err(tonic::Code::Unauthenticated),
        );
    }

    #[test]
    fn tokens() {
        let auth = IngestAuth::new(
            &security(&[("a", Some("ta")), ("b", Some("tb"))], false),
            None,
        );
        check(&auth, Some("Bearer ta"), None, Ok("a"));
        check(&auth, Some("bearer tb"), None, Ok("b"));
        check(&auth, None, None, Err(tonic::Code::Unauthenticated));
        check(
            &auth,
            Some("Bearer tc"),
            None,
            Err(tonic::Code::Unauthenticated),
        );
        check(
            &auth,
            Some("Basic ta"),
            None,
            Err(tonic::Code::Unauthenticated),
        );
        assert_eq!(
            auth.authenticate(None, None).unwrap_err().to_string(),
            "missing bearer token: set token_file or LOGWARD_TOKEN on the collector"
        );
        assert_eq!(
            auth.authenticate(Some("Bearer x"), None)
                .unwrap_err()
                .to_string(),
            "unknown collector token"
        );
    }

    #[test]
    fn certificates() {
        // Any certificate of the client CA, tokens optional.
        let auth = IngestAuth::new(&security(&[("a", Some("ta"))], true), None);
        check(&auth, None, Some("web-9"), Ok("web-9"));
        check(&auth, Some("Bearer ta"), Some("a"), Ok("a"));
        check(
            &auth,
            Some("Bearer ta"),
            Some("web-9"),
            Err(tonic::Code::PermissionDenied),
        );
        check(
            &auth,
            Some("Bearer bad"),
            Some("a"),
            Err(tonic::Code::Unauthenticated),
        );
        // An allow-list: entries without tokens.
        let listed = IngestAuth::new(&security(&[("web-1", None), ("a", Some("ta"))], true), None);
        check(&listed, None, Some("web-1"), Ok("web-1"));
        check(&listed, None, Some("a"), Ok("a"));
        check(
            &listed,
            None,
            Some("web-2"),
            Err(tonic::Code::PermissionDenied),
        );
        let err = auth
            .authenticate(Some("Bearer ta"), Some("web-9"))
            .unwrap_err();
        assert!(
            err.to_string().contains("\"web-9\"") && err.to_string().contains("\"a\""),
            "{err}"
        );
    }

    #[test]
    fn state_keys() {
        assert_eq!(state_key("anonymous", "c1"), "c1");
        assert_eq!(state_key("embedded", "c1"), "embedded/c1");
        // Collector ids never hold `/`, so the last `/` splits a key unambiguously.
        assert_eq!(state_key("a/b", "c"), "a/b/c");
    }
}
