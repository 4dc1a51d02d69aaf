//! `TokenHash`: SHA-256 of an access token. The only form of a token that may be used as a
//! cache key or appear in a log line (as a short prefix); the raw token never is.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// The cache key: SHA-256 over the introspection backend's identity and the token, so an
    /// entry can only ever be found again for the backend that produced it (a reload that
    /// points at another authorization server cannot serve the old server's verdicts).
    pub fn for_backend(backend: &[u8], token: &str) -> Self {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(backend);
        ctx.update(&[0]);
        ctx.update(token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(ctx.finish().as_ref());
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Only the first 6 bytes: enough to correlate log lines, far too little to look a token up.
impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_and_case_sensitive() {
        let h = TokenHash::of("abc");
        assert_eq!(format!("{h}"), "ba7816bf8f01");
        assert_ne!(TokenHash::of("abC"), h);
        assert_ne!(
            TokenHash::for_backend(b"a", "t"),
            TokenHash::for_backend(b"b", "t")
        );
        assert_ne!(TokenHash::for_backend(b"a", "t"), TokenHash::of("t"));
    }
}
