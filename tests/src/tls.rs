//! Certificates for the TLS tests, made by rcgen at test time: a CA, server
//! certificates for `localhost`/127.0.0.1, and client certificates by name. Written
//! as PEM files for the binaries.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A test certificate authority.
pub struct Ca {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// Makes a CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    fn leaf(
        &self,
        sans: &[&str],
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> anyhow::Result<Leaf> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> anyhow::Result<Leaf> {
        self.leaf(
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose identity (first DNS name) is `name`.
    pub fn client(&self, name: &str) -> anyhow::Result<Leaf> {
        self.leaf(&[name], name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Writes the CA certificate to `dir/<file>` and returns the path.
    pub fn write(&self, dir: &Path, file: &str) -> anyhow::Result<PathBuf> {
        write(dir, file, &self.cert_pem)
    }
}

impl Leaf {
    /// Writes `dir/<stem>.pem` and `dir/<stem>.key`; returns (cert path, key path).
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        Ok((
            write(dir, &format!("{stem}.pem"), &self.cert_pem)?,
            write(dir, &format!("{stem}.key"), &self.key_pem)?,
        ))
    }
}

fn write(dir: &Path, file: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(file);
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// The `token_sha256` of a token (hex SHA-256), as `logward-server token hash` prints.
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[[security.collectors]]` entries: identity and token (none: a certificate name).
pub fn collectors_toml(entries: &[(&str, Option<&str>)]) -> String {
    entries
        .iter()
        .map(|(identity, token)| match token {
            Some(t) => format!(
                "[[security.collectors]]\nidentity = \"{identity}\"\ntoken_sha256 = \"{}\"\n",
                token_sha256(t)
            ),
            None => format!("[[security.collectors]]\nidentity = \"{identity}\"\n"),
        })
        .collect()
}
