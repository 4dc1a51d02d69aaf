//! The token cache (DESIGN.md section 4): positive entries keyed by `TokenHash`, living until
//! `min(max_ttl, token expiry)`; negative entries in their own bounded store so a flood of
//! junk tokens cannot evict good ones; concurrent misses for one token coalesced into a single
//! introspection by `moka`'s `try_get_with`; errors never cached.

use super::{AuthError, Grant, TokenHash};
use moka::Expiry;
use moka::future::Cache;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub max_entries: u64,
    pub max_ttl: Duration,
    pub negative_ttl: Duration,
    pub negative_max_entries: u64,
}

/// What an introspection call concluded.
#[derive(Debug, Clone)]
pub enum Verdict {
    Active(Arc<Grant>),
    /// The token is refused; `remember` says whether the refusal is a property of the token
    /// alone (and may be cached) or depends on how it was presented.
    Refused {
        error: AuthError,
        remember: bool,
    },
}

#[derive(Clone)]
struct Cached {
    grant: Arc<Grant>,
    ttl: Duration,
}

struct GrantExpiry;

impl Expiry<TokenHash, Cached> for GrantExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// How long a positive result may be served: never past the token's own expiry, never longer
/// than `max_ttl`. A pure function of `now` so that it can be tested without a clock.
pub fn positive_ttl(
    now: SystemTime,
    expires_at: Option<SystemTime>,
    max_ttl: Duration,
) -> Duration {
    match expires_at {
        Some(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(max_ttl),
        None => max_ttl,
    }
}

/// How a lookup was answered (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Introspection,
}

pub struct TokenCache {
    positive: Cache<TokenHash, Cached>,
    negative: Cache<TokenHash, AuthError>,
    max_ttl: Duration,
}

impl TokenCache {
    pub fn new(settings: &CacheSettings) -> Self {
        Self {
            positive: Cache::builder()
                .max_capacity(settings.max_entries)
                .expire_after(GrantExpiry)
                .build(),
            negative: Cache::builder()
                .max_capacity(settings.negative_max_entries)
                .time_to_live(settings.negative_ttl.max(Duration::from_millis(1)))
                .build(),
            max_ttl: settings.max_ttl,
        }
    }

    /// Returns the token's grant from the cache, or runs `introspect` (once for all concurrent
    /// callers with the same hash) and caches what it may.
    ///
    /// `introspect` makes the introspection future only on a miss, and that path is boxed: an
    /// introspection future (an HTTP client call) is kilobytes, and an unboxed one would make
    /// every request's future that large, cache hits included.
    pub async fn get_or_introspect<F, Fut>(
        &self,
        key: TokenHash,
        introspect: F,
    ) -> (Result<Arc<Grant>, AuthError>, Source)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Verdict, AuthError>>,
    {
        if let Some(hit) = self.positive.get(&key).await {
            return (Ok(hit.grant), Source::Cache);
        }
        if let Some(error) = self.negative.get(&key).await {
            return (Err(error), Source::Cache);
        }
        Box::pin(self.introspect_and_cache(key, introspect())).await
    }

    async fn introspect_and_cache(
        &self,
        key: TokenHash,
        introspect: impl Future<Output = Result<Verdict, AuthError>>,
    ) -> (Result<Arc<Grant>, AuthError>, Source) {
        let negative = &self.negative;
        let max_ttl = self.max_ttl;
        let result = self
            .positive
            .try_get_with(key, async move {
                match introspect.await? {
                    Verdict::Active(grant) => {
                        let ttl = positive_ttl(SystemTime::now(), grant.expires_at, max_ttl);
                        Ok(Cached { grant, ttl })
                    }
                    Verdict::Refused { error, remember } => {
                        if remember {
                            negative.insert(key, error.clone()).await;
                        }
                        Err(error)
                    }
                }
            })
            .await;
        match result {
            Ok(cached) => (Ok(cached.grant), Source::Introspection),
            Err(shared) => (Err(AuthError::clone(&shared)), Source::Introspection),
        }
    }

    /// Replaces a token's positive entry, e.g. once its DPoP key is learned. The TTL is
    /// computed as for an introspection result.
    pub async fn insert(&self, key: TokenHash, grant: Arc<Grant>) {
        let ttl = positive_ttl(SystemTime::now(), grant.expires_at, self.max_ttl);
        self.positive.insert(key, Cached { grant, ttl }).await;
    }

    /// Positive plus negative entries (approximate, as moka's counts are).
    pub fn entry_count(&self) -> u64 {
        self.positive.entry_count() + self.negative.entry_count()
    }

    /// Applies pending evictions; tests use it to read exact counts.
    pub async fn sync(&self) {
        self.positive.run_pending_tasks().await;
        self.negative.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_capped_by_expiry_and_max() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let max = Duration::from_secs(300);
        assert_eq!(
            positive_ttl(now, Some(now + Duration::from_secs(10)), max),
            Duration::from_secs(10)
        );
        assert_eq!(
            positive_ttl(now, Some(now + Duration::from_secs(10_000)), max),
            max
        );
        assert_eq!(
            positive_ttl(now, Some(now - Duration::from_secs(1)), max),
            Duration::ZERO
        );
        assert_eq!(positive_ttl(now, None, max), max);
    }

    fn settings() -> CacheSettings {
        CacheSettings {
            max_entries: 100,
            max_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(60),
            negative_max_entries: 100,
        }
    }

    #[tokio::test]
    async fn errors_are_not_cached_but_refusals_are() {
        let cache = TokenCache::new(&settings());
        let key = TokenHash::of("t");
        let (r, _) = cache
            .get_or_introspect(key, || async { Err(AuthError::Unavailable("down")) })
            .await;
        assert!(matches!(r, Err(AuthError::Unavailable(_))));
        let (r, src) = cache
            .get_or_introspect(key, || async {
                Ok(Verdict::Refused {
                    error: AuthError::InvalidToken,
                    remember: true,
                })
            })
            .await;
        assert!(matches!(r, Err(AuthError::InvalidToken)) && src == Source::Introspection);
        let (r, src) = cache
            .get_or_introspect(key, || async { Err(AuthError::Unavailable("unused")) })
            .await;
        assert!(matches!(r, Err(AuthError::InvalidToken)) && src == Source::Cache);
    }

    #[tokio::test]
    async fn presentation_dependent_refusals_are_not_remembered() {
        let cache = TokenCache::new(&settings());
        let key = TokenHash::of("bound");
        let (r, _) = cache
            .get_or_introspect(key, || async {
                Ok(Verdict::Refused {
                    error: AuthError::BindingRequired,
                    remember: false,
                })
            })
            .await;
        assert!(matches!(r, Err(AuthError::BindingRequired)));
        let grant = Arc::new(Grant::new(Some("s".into()), None, vec![], None));
        let (r, src) = cache
            .get_or_introspect(key, || async { Ok(Verdict::Active(grant)) })
            .await;
        assert!(r.is_ok() && src == Source::Introspection);
    }
}
