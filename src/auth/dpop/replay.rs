//! `jti` replay detection (RFC 9449 section 11.1). A proof is remembered for as long as its
//! `iat` could still pass the verifier's time check (`iat + window`, window = max age + skew),
//! keyed by a 64-bit SipHash (random per-process key, so collisions cannot be aimed at) of
//! (key thumbprint, jti): memory per entry is fixed (8 bytes plus table overhead) whatever the
//! client sends.
//!
//! Entries are grouped by `iat` into a few time slices per shard; a slice is dropped whole once
//! every `iat` in it has become too old to be accepted, so expiry costs nothing per request.
//! The check-and-insert is one atomic operation under the shard's lock, so two concurrent copies
//! of one proof cannot both pass.
//!
//! Bounded without ever forgetting silently: when a shard is full, its oldest slice is dropped
//! and the shard's `floor` rises past it; a proof whose `iat` is below the floor is refused
//! (it may have been seen), so under a flood the effective acceptance window shrinks instead of
//! replays becoming possible. Fresh proofs (`iat` close to now) keep being accepted unless one
//! slice's worth of time alone fills the shard.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const SHARDS: usize = 16;
/// Slices per window: a check probes at most `SLICES + 2` small sets.
const SLICES: i64 = 4;
/// Seconds a slice is kept beyond what the time check needs.
const CLOCK_MARGIN: i64 = 2;

pub struct ReplayStore {
    keyer: RandomState,
    /// Seconds after its `iat` during which a proof can still be accepted.
    window: i64,
    /// Seconds of `iat` per slice.
    slice: i64,
    shard_capacity: usize,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    /// (slice number = iat / slice length, keys of proofs whose iat falls in it); a handful.
    slices: Vec<(i64, HashSet<u64, BuildHasherDefault<Prehashed>>)>,
    len: usize,
    /// Proofs with an `iat` below this are refused: their slice was dropped to stay bounded.
    floor: i64,
}

impl ReplayStore {
    /// `window`: how long after its `iat` a proof is still acceptable (max age + clock skew);
    /// `capacity`: the most proofs remembered at once.
    pub fn new(window: Duration, capacity: u64) -> Self {
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 4);
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(SHARDS);
        Self {
            keyer: RandomState::new(),
            window,
            slice: (window / SLICES).max(1),
            shard_capacity: capacity.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// True the first time a (thumbprint, jti) pair is seen while its proof (issued at `iat`)
    /// can be accepted; false on a replay, or when the store cannot vouch for it (see the
    /// module docs). `now` and `iat` are seconds since the Unix epoch.
    pub fn first_use(&self, thumbprint: &str, jti: &str, iat: i64, now: i64) -> bool {
        let mut hasher = self.keyer.build_hasher();
        hasher.write(thumbprint.as_bytes());
        hasher.write_u8(0);
        hasher.write(jti.as_bytes());
        let key = hasher.finish();
        // Bits the shard's own table does not use to place the key (it uses the low bits and
        // the top seven), so that keys stay evenly spread inside each shard.
        let shard = &self.shards[(key >> 40) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.check_and_insert(key, iat, now, self.window, self.slice, self.shard_capacity)
    }

    /// Proofs remembered now (all shards).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    fn check_and_insert(
        &mut self,
        key: u64,
        iat: i64,
        now: i64,
        window: i64,
        slice: i64,
        capacity: usize,
    ) -> bool {
        // Drop slices whose newest possible iat can no longer pass the time check (with a
        // margin for requests that read the clock a moment before this one).
        let oldest_live = now.saturating_sub(window).saturating_sub(CLOCK_MARGIN);
        if self
            .slices
            .iter()
            .any(|(n, _)| slice_end(*n, slice) < oldest_live)
        {
            let len = &mut self.len;
            self.slices.retain(|(n, keys)| {
                let live = slice_end(*n, slice) >= oldest_live;
                if !live {
                    *len -= keys.len();
                }
                live
            });
        }
        if iat < self.floor || self.slices.iter().any(|(_, keys)| keys.contains(&key)) {
            return false;
        }
        while self.len >= capacity {
            let Some(oldest) = (0..self.slices.len()).min_by_key(|&i| self.slices[i].0) else {
                break;
            };
            let (n, keys) = self.slices.swap_remove(oldest);
            self.len -= keys.len();
            self.floor = self.floor.max(slice_end(n, slice).saturating_add(1));
            if iat < self.floor {
                return false;
            }
        }
        let n = iat.div_euclid(slice);
        let keys = match self.slices.iter().position(|(m, _)| *m == n) {
            Some(i) => &mut self.slices[i].1,
            None => {
                self.slices.push((n, HashSet::default()));
                let last = self.slices.len() - 1;
                &mut self.slices[last].1
            }
        };
        keys.insert(key);
        self.len += 1;
        true
    }
}

/// The newest `iat` that falls in slice `n`.
fn slice_end(n: i64, slice: i64) -> i64 {
    n.saturating_mul(slice).saturating_add(slice - 1)
}

/// The keys are already uniform (SipHash output): the table uses them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are stored; kept correct for any other input anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn second_use_is_refused_and_keys_are_separate() {
        let store = ReplayStore::new(Duration::from_secs(60), 100);
        assert!(store.first_use("k1", "j", NOW, NOW));
        assert!(!store.first_use("k1", "j", NOW, NOW));
        assert!(!store.first_use("k1", "j", NOW, NOW + 30));
        assert!(store.first_use("k2", "j", NOW, NOW));
        assert!(store.first_use("k1", "j2", NOW, NOW));
        // Thumbprint and jti are delimited: ("k", "1j") is not ("k1", "j").
        assert!(store.first_use("k", "1j", NOW, NOW));
    }

    #[test]
    fn a_proof_is_remembered_while_its_iat_is_acceptable_then_forgotten() {
        let store = ReplayStore::new(Duration::from_secs(60), 1000);
        assert!(store.first_use("k", "j", NOW, NOW));
        for later in [NOW + 1, NOW + 30, NOW + 60] {
            assert!(
                !store.first_use("k", "j", NOW, later),
                "at +{}",
                later - NOW
            );
        }
        // Well past iat + window (the verifier's time check refuses such a proof anyway),
        // the slice is dropped and memory is returned (by each shard as it is next used).
        for i in 0..500 {
            assert!(store.first_use("k", &format!("later-{i}"), NOW + 200, NOW + 200));
        }
        assert_eq!(store.len(), 500);
        assert!(!store.is_empty());
    }

    #[test]
    fn the_store_is_bounded_and_refuses_what_it_cannot_vouch_for() {
        let capacity = 16 * 8;
        let store = ReplayStore::new(Duration::from_secs(60), capacity);
        let mut accepted = Vec::new();
        // A flood of distinct proofs, 100 per second of iat, over the whole window.
        for t in 0..60 {
            for i in 0..100 {
                let jti = format!("{t}-{i}");
                if store.first_use("k", &jti, NOW + t, NOW + t) {
                    accepted.push((NOW + t, jti));
                }
                assert!(store.len() as u64 <= capacity);
            }
        }
        // Whatever was accepted is never accepted twice, even though most were dropped.
        for (iat, jti) in &accepted {
            assert!(!store.first_use("k", jti, *iat, NOW + 60), "{jti} replayed");
        }
        // Fresh proofs are accepted again once the flood stops (from the next slice on).
        assert!(store.first_use("k", "fresh", NOW + 80, NOW + 80));
        assert!(!store.first_use("k", "fresh", NOW + 80, NOW + 80));
    }

    #[test]
    fn concurrent_copies_of_one_proof_pass_once() {
        let store = Arc::new(ReplayStore::new(Duration::from_secs(60), 1_000_000));
        for round in 0..50 {
            let passed = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (store, passed) = (store.clone(), passed.clone());
                    std::thread::spawn(move || {
                        for j in 0..50 {
                            if store.first_use("k", &format!("{round}-{j}"), NOW, NOW) {
                                passed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(passed.load(Ordering::Relaxed), 50);
        }
    }
}
