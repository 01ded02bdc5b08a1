//! Tests of TLS loading, reloading and client-certificate names, with certificates
//! made by rcgen at test time.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

struct Made {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn make(sans: &[&str], cn: Option<&str>) -> Made {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    Made {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

fn config(dir: &Path) -> TlsConfig {
    TlsConfig {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        client_ca: None,
        reload_interval_s: 0,
        http: true,
    }
}

/// Writes `files` (name, text) into a temp dir and loads TLS from it.
fn check(files: &[(&str, &str)], expected: Result<(), &str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let got = TlsState::load(&config(dir.path()))
        .map(|_| ())
        .map_err(|e| e.to_string());
    match (&got, expected) {
        (Ok(()), Ok(())) => {}
        (Err(g), Err(e)) => assert!(g.contains(e), "{g:?} lacks {e:?}"),
        _ => panic!("got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn loading() {
    let m = make(&["server.test"], None);
    check(
        &[("cert.pem", &m.cert_pem), ("key.pem", &m.key_pem)],
        Ok(()),
    );
    check(&[("key.pem", &m.key_pem)], Err("cannot read certificate"));
    check(
        &[("cert.pem", "junk"), ("key.pem", &m.key_pem)],
        Err("holds no PEM certificate"),
    );
    check(
        &[("cert.pem", &m.cert_pem), ("key.pem", "junk")],
        Err("holds no PEM private key"),
    );
    let other = make(&["other.test"], None);
    check(
        &[("cert.pem", &m.cert_pem), ("key.pem", &other.key_pem)],
        Err("TLS configuration refused"),
    );
}

#[test]
fn identities() {
    let cases: [(&[&str], Option<&str>, Option<&str>); 4] = [
        (
            &["web-1.collectors.test", "alt.test"],
            Some("cn"),
            Some("web-1.collectors.test"),
        ),
        (&[], Some("db-2"), Some("db-2")),
        (&["10.0.0.1"], Some("ip-only"), Some("ip-only")),
        (&[], None, None),
    ];
    for (sans, cn, expected) in cases {
        let m = make(sans, cn);
        assert_eq!(
            cert_identity(&m.der).as_deref(),
            expected,
            "{sans:?} {cn:?}"
        );
    }
    assert_eq!(cert_identity(b"not a certificate"), None);
}

#[test]
fn reload_swaps_good_files_and_keeps_old_on_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let first = make(&["one.test"], None);
    std::fs::write(&cfg.cert, &first.cert_pem).expect("write");
    std::fs::write(&cfg.key, &first.key_pem).expect("write");
    let state = TlsState::load(&cfg).expect("load");
    assert_eq!(state.reload(), Ok(false), "unchanged files are not rebuilt");
    let before = state.current().grpc;

    std::fs::write(&cfg.cert, "broken").expect("write");
    assert!(state.reload().is_err());
    assert!(
        Arc::ptr_eq(&before, &state.current().grpc),
        "old config kept"
    );

    let second = make(&["two.test"], None);
    std::fs::write(&cfg.cert, &second.cert_pem).expect("write");
    std::fs::write(&cfg.key, &second.key_pem).expect("write");
    assert_eq!(state.reload(), Ok(true));
    assert!(
        !Arc::ptr_eq(&before, &state.current().grpc),
        "new config in use"
    );
    assert_eq!(
        pem_leaf_name(&cfg.cert).expect("read").as_deref(),
        Some("two.test")
    );
}
