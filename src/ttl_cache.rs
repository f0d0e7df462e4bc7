//! A bounded cache whose entries live a fixed time, keyed by a 128-bit hash
//! of two strings; used for authorize answers (per cname and token) and for
//! verified JWT grants.
//!
//! Keys are hashes, not the strings, so an entry costs the same whatever
//! the token's length. Two ahash hashers with independent random keys (one
//! pair per process) give the 128 bits: a collision would need two (cname,
//! token) pairs agreeing on both 64-bit halves under keys an outsider never
//! sees. Plain synchronous code: callers bring their own lock and clock.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

/// Hashes (a, b) string pairs into 128-bit keys with per-process random keys.
pub struct KeyHasher {
    high: ahash::RandomState,
    low: ahash::RandomState,
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

impl KeyHasher {
    /// Two hashers with fresh random keys.
    pub fn new() -> KeyHasher {
        KeyHasher {
            high: ahash::RandomState::new(),
            low: ahash::RandomState::new(),
        }
    }

    /// The key of `(a, b)`; `("ab", "c")` and `("a", "bc")` differ (a `str`
    /// hashes with a terminator).
    pub fn key(&self, a: &str, b: &str) -> u128 {
        self.key_of(&(a, b))
    }

    /// The key of any hashable value (a tuple of strings and an address...).
    pub fn key_of<T: Hash + ?Sized>(&self, value: &T) -> u128 {
        let high = self.high.hash_one(value);
        let low = self.low.hash_one(value);
        (u128::from(high) << 64) | u128::from(low)
    }
}

/// Keys are already uniform hashes: use their low bits as they are.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; fold whatever comes anyway.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// At most `max` entries, each living `ttl` from its insertion; when full,
/// the oldest insertion goes first. Since every entry lives the same time,
/// the oldest is also the next to expire.
pub struct TtlCache<V> {
    map: HashMap<u128, (V, Instant), BuildHasherDefault<IdentityHasher>>,
    /// Insertion order: (key, inserted at). A record whose time differs from
    /// the map's is stale (the key was removed and inserted again).
    order: VecDeque<(u128, Instant)>,
    max: usize,
    ttl: Duration,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache of at most `max` entries (at least 1) living `ttl`.
    pub fn new(max: usize, ttl: Duration) -> TtlCache<V> {
        TtlCache {
            map: HashMap::default(),
            order: VecDeque::new(),
            max: max.max(1),
            ttl,
        }
    }

    /// The value for `key` if it was inserted less than `ttl` before `now`.
    pub fn get(&mut self, key: u128, now: Instant) -> Option<V> {
        match self.map.get(&key) {
            Some((value, at)) if now.saturating_duration_since(*at) < self.ttl => Some(value.clone()),
            Some(_) => {
                self.map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `key` from `now`, first dropping expired entries
    /// and, when full, the oldest ones.
    pub fn insert(&mut self, key: u128, value: V, now: Instant) {
        while let Some(&(old, at)) = self.order.front() {
            let expired = now.saturating_duration_since(at) >= self.ttl;
            let stale = self.map.get(&old).is_none_or(|(_, t)| *t != at);
            if !(expired || stale || self.map.len() >= self.max) {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.map.remove(&old);
            }
        }
        self.map.insert(key, (value, now));
        self.order.push_back((key, now));
    }

    /// Entries held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_ttl() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(10, Duration::from_secs(5));
        c.insert(1, "a", t0);
        assert_eq!(c.get(1, t0 + Duration::from_secs(4)), Some("a"));
        assert_eq!(c.get(1, t0 + Duration::from_secs(5)), None);
        assert!(c.is_empty(), "an expired entry is dropped when looked up");
        assert_eq!(c.get(2, t0), None);
    }

    #[test]
    fn full_cache_evicts_the_oldest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = TtlCache::new(3, Duration::from_secs(100));
        for k in 0..3u32 {
            c.insert(u128::from(k), k, t0 + s * k);
        }
        c.insert(3, 3, t0 + s * 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(0, t0 + s * 3), None, "the oldest went");
        assert_eq!(c.get(1, t0 + s * 3), Some(1));
        assert_eq!(c.get(3, t0 + s * 3), Some(3));
    }

    #[test]
    fn reinserted_key_is_not_evicted_by_its_old_record() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = TtlCache::new(2, Duration::from_secs(10));
        c.insert(7, "old", t0);
        assert_eq!(c.get(7, t0 + s * 10), None, "expired");
        c.insert(7, "new", t0 + s * 10);
        c.insert(8, "other", t0 + s * 11);
        // The stale record (7, t0) is dropped without removing the new 7.
        assert_eq!(c.get(7, t0 + s * 12), Some("new"));
        assert_eq!(c.get(8, t0 + s * 12), Some("other"));
        assert!(c.order.len() <= 2, "stale records do not pile up: {}", c.order.len());
    }

    #[test]
    fn order_stays_bounded_under_churn() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(100, Duration::from_millis(50));
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            c.insert(u128::from(i % 300), i, now);
            assert!(c.len() <= 100);
            assert!(c.order.len() <= 101, "order {} at {i}", c.order.len());
        }
    }

    #[test]
    fn keys_separate_pairs() {
        let h = KeyHasher::new();
        assert_eq!(h.key("room", "tok"), h.key("room", "tok"));
        assert_ne!(h.key("ab", "c"), h.key("a", "bc"));
        assert_ne!(h.key("room", "tok"), h.key("tok", "room"));
        assert_ne!(
            KeyHasher::new().key("x", "y"),
            h.key("x", "y"),
            "keys differ per hasher"
        );
    }
}
