//! Bearer tokens: made at random, stored only as SHA-256 hashes, and checked in
//! constant time against every known hash.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Prefix of tokens made by `new_token`, so that leaked ones are easy to scan for.
pub const TOKEN_PREFIX: &str = "lw_";

/// Makes a new random token: `lw_` and 64 hex digits (256 bits).
pub fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The hex SHA-256 of a token, as written in `token_sha256`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Known tokens, by hash, each with what it grants.
#[derive(Debug, Clone)]
pub struct TokenSet<T> {
    entries: Vec<([u8; 32], T)>,
}

impl<T> TokenSet<T> {
    /// Builds the set from `(hex hash, grant)` pairs; hashes that are not 64 hex
    /// digits are skipped (configuration validation refuses them first).
    pub fn new(pairs: impl IntoIterator<Item = (String, T)>) -> Self {
        let entries = pairs
            .into_iter()
            .filter_map(|(h, grant)| {
                let mut raw = [0u8; 32];
                hex::decode_to_slice(h.as_bytes(), &mut raw).ok()?;
                Some((raw, grant))
            })
            .collect();
        TokenSet { entries }
    }

    /// Whether the set has no tokens.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What `presented` grants, if it is a known token. Every stored hash is compared,
    /// in constant time, whatever matches, so timing tells nothing about which
    /// bytes were right.
    pub fn verify(&self, presented: &str) -> Option<&T> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (hash, grant) in &self.entries {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(grant);
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer <token>` value, if it is one.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn new_tokens_are_random_and_prefixed() {
        let a = new_token().expect("random");
        let b = new_token().expect("random");
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 3 + 64, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn verify_finds_only_known_tokens() {
        let set = TokenSet::new([(hash_token("one"), 1), (hash_token("two"), 2)]);
        assert_eq!(set.verify("one"), Some(&1));
        assert_eq!(set.verify("two"), Some(&2));
        assert_eq!(set.verify("three"), None);
        assert_eq!(set.verify(""), None);
        let upper = TokenSet::new([(hash_token("x").to_uppercase(), ())]);
        assert!(upper.verify("x").is_some(), "hex case does not matter");
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
