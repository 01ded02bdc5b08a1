//! Tests of `[security]` parsing, validation and the exposure check.

use super::*;

const HASH_A: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const HASH_B: &str = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";

fn check(toml_text: &str, expected: Result<(), &str>) {
    let parsed: Result<SecurityConfig, String> =
        toml::from_str(toml_text).map_err(|e: toml::de::Error| e.to_string());
    let got = parsed.and_then(|c| c.validate().map_err(|e| e.to_string()));
    match (&got, expected) {
        (Ok(()), Ok(())) => {}
        (Err(g), Err(e)) => assert!(g.contains(e), "{toml_text:?}: {g:?} lacks {e:?}"),
        _ => panic!("{toml_text:?}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn sections() {
    check("", Ok(()));
    check(
        &format!("[[collectors]]\nidentity = \"web-1\"\ntoken_sha256 = \"{HASH_A}\""),
        Ok(()),
    );
    check(
        "[[collectors]]\nidentity = \"web-1\"",
        Err("needs token_sha256"),
    );
    check(
        "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n[[collectors]]\nidentity = \"web-1\"",
        Ok(()),
    );
    check(
        "[[collectors]]\nidentity = \"web 1\"\ntoken_sha256 = \"00\"",
        Err("identity must be"),
    );
    check(
        "[[collectors]]\nidentity = \"w\"\ntoken_sha256 = \"00\"",
        Err("64 hex digits"),
    );
    check(
        &format!(
            "[[collectors]]\nidentity = \"a\"\ntoken_sha256 = \"{HASH_A}\"\n[[collectors]]\nidentity = \"a\"\ntoken_sha256 = \"{HASH_B}\""
        ),
        Err("listed twice"),
    );
    check(
        &format!(
            "[[collectors]]\nidentity = \"a\"\ntoken_sha256 = \"{HASH_A}\"\n[[api_tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{HASH_A}\""
        ),
        Err("share the token hash"),
    );
    check(
        &format!("[[api_tokens]]\nname = \"ops\"\nrole = \"root\"\ntoken_sha256 = \"{HASH_A}\""),
        Err("unknown variant `root`"),
    );
    check("[tls]\ncert = \"c.pem\"", Err("missing field `key`"));
    check("colour = 1", Err("unknown field `colour`"));
}

#[test]
fn exposure() {
    let lo: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let any: SocketAddr = "0.0.0.0:2".parse().expect("addr");
    let open = SecurityConfig::default();
    assert_eq!(open.check_exposure(lo, lo), Ok(()));
    let e = open.check_exposure(any, lo).expect_err("plaintext");
    assert!(
        e.to_string()
            .contains("gRPC ingest listens on 0.0.0.0:2 without TLS")
    );
    let plain = SecurityConfig {
        allow_plaintext: true,
        ..SecurityConfig::default()
    };
    let e = plain.check_exposure(lo, any).expect_err("open API");
    assert!(
        e.to_string()
            .contains("HTTP API listens on 0.0.0.0:2 without authentication")
    );
    let both = SecurityConfig {
        allow_plaintext: true,
        allow_open: true,
        ..SecurityConfig::default()
    };
    assert_eq!(both.check_exposure(any, any), Ok(()));
    let secured: SecurityConfig = toml::from_str(&format!(
        "[tls]\ncert = \"c\"\nkey = \"k\"\n[[collectors]]\nidentity = \"a\"\ntoken_sha256 = \"{HASH_A}\"\n[[api_tokens]]\nname = \"r\"\nrole = \"reader\"\ntoken_sha256 = \"{HASH_B}\""
    ))
    .expect("parses");
    assert_eq!(secured.check_exposure(any, any), Ok(()));
    assert!(Role::Admin > Role::Reader);
}
