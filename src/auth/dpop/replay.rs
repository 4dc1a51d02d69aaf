//! `jti` replay detection (RFC 9449 section 11.1): a proof's `jti` is remembered for the whole
//! acceptance window, keyed by a hash of (key thumbprint, jti) so that memory per entry is fixed
//! whatever the client sends. The check-and-insert is one atomic operation (moka's entry API),
//! so two concurrent copies of one proof cannot both pass.

use std::time::Duration;

pub struct ReplayStore {
    seen: moka::sync::Cache<[u8; 32], ()>,
}

impl ReplayStore {
    pub fn new(window: Duration, capacity: u64) -> Self {
        Self {
            seen: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
        }
    }

    /// True the first time a (thumbprint, jti) pair is seen within the window.
    pub fn first_use(&self, thumbprint: &str, jti: &str) -> bool {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(thumbprint.as_bytes());
        ctx.update(b"\0");
        ctx.update(jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        self.seen.entry(key).or_insert(()).is_fresh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_refused_and_keys_are_separate() {
        let store = ReplayStore::new(Duration::from_secs(60), 100);
        assert!(store.first_use("k1", "j"));
        assert!(!store.first_use("k1", "j"));
        assert!(store.first_use("k2", "j"));
    }
}
