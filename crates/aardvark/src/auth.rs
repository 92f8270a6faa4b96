//! API tokens (`API_TOKENS`): the secrets a client must present when authentication is on.
//! Each token is kept only as its SHA-256 digest, settings may give the digest itself
//! (`sha256:<hex>`) so that a settings file need not carry the secret, and a presented token
//! is checked against every digest in constant time. Tokens never reach a log line or an error
//! message: the type's `Debug` shows how many there are, nothing else.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of a token given as its digest.
pub const DIGEST_PREFIX: &str = "sha256:";

/// The accepted tokens, as SHA-256 digests; empty when authentication is off.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiTokens(Vec<[u8; 32]>);

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} tokens)", self.0.len())
    }
}

/// Why a token entry was refused; never contains the entry itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("an empty token")]
    Empty,
    #[error("a token with white space or control characters in it")]
    Blank,
    #[error("a `sha256:` entry whose digest is not 64 hexadecimal digits")]
    BadDigest,
}

impl ApiTokens {
    /// Tokens from settings entries: a token itself, or `sha256:` and its digest in hex.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, TokenError> {
        entries
            .into_iter()
            .map(|entry| match entry.strip_prefix(DIGEST_PREFIX) {
                Some(hex) => parse_digest(hex),
                None if entry.is_empty() => Err(TokenError::Empty),
                None if entry.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                    Err(TokenError::Blank)
                }
                None => Ok(digest(entry)),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether authentication is on.
    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every digest is compared, in constant time,
    /// so the time taken says nothing about which token, or how much of one, matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented = Sha256::digest(presented);
        let matched = self
            .0
            .iter()
            .fold(subtle::Choice::from(0), |matched, token| {
                matched | token.ct_eq(presented.as_slice())
            });
        bool::from(matched)
    }
}

/// The digest of a token, as `sha256:<hex>` (what `aardvark config` and the docs tell
/// operators to put in a settings file).
pub fn digest_entry(token: &str) -> String {
    let digest = digest(token);
    let mut entry = String::from(DIGEST_PREFIX);
    for byte in digest {
        entry.push_str(&format!("{byte:02x}"));
    }
    entry
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Result<[u8; 32], TokenError> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return Err(TokenError::BadDigest);
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| TokenError::BadDigest)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| TokenError::BadDigest)?;
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_and_digests_accept_the_same_secret() {
        let entry = digest_entry("s3cret-token");
        assert_eq!(
            entry,
            "sha256:a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e"
        );
        for tokens in [
            ApiTokens::parse(["s3cret-token"]).unwrap(),
            ApiTokens::parse([entry.as_str()]).unwrap(),
            ApiTokens::parse([
                "other",
                entry.to_uppercase().replace("SHA256:", "sha256:").as_str(),
            ])
            .unwrap(),
        ] {
            assert!(tokens.is_enabled());
            assert!(tokens.accepts(b"s3cret-token"));
            assert!(!tokens.accepts(b"s3cret-toke"));
            assert!(!tokens.accepts(b"s3cret-token "));
            assert!(!tokens.accepts(b""));
        }
        assert!(!ApiTokens::default().is_enabled());
        assert!(!ApiTokens::default().accepts(b""));
    }

    #[test]
    fn bad_entries_are_refused_without_showing_them() {
        assert_eq!(ApiTokens::parse([""]), Err(TokenError::Empty));
        assert_eq!(ApiTokens::parse(["two words"]), Err(TokenError::Blank));
        assert_eq!(ApiTokens::parse(["sha256:abc"]), Err(TokenError::BadDigest));
        assert_eq!(
            ApiTokens::parse([format!("sha256:{}", "g".repeat(64)).as_str()]),
            Err(TokenError::BadDigest)
        );
        let tokens = ApiTokens::parse(["hidden-secret"]).unwrap();
        assert_eq!(format!("{tokens:?}"), "ApiTokens(1 tokens)");
    }
}
