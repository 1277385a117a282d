//! A worker's signature cache and its limit on signing.
//!
//! The cache maps a 64-bit keyed hash of what a signature covers (window, key, owner, type,
//! TTL, rdatas) to the signature. It is a fixed array of 4-way buckets, allocated once, so
//! a hit or an insert allocates nothing and a full cache evicts round-robin within the
//! bucket. It belongs to one worker thread: no lock, no sharing. Two different contents
//! share a tag with probability 2^-64 per lookup; the hash key is random per cache, so a
//! client cannot aim at one.
//!
//! The [`MissLimiter`] is a token bucket on signatures made: a random-subdomain flood
//! misses the cache on every query, and must not become a flood of 20 us signatures.

use std::hash::{BuildHasher, Hasher};

use crate::dnssec::key::SIGNATURE_LEN;

const WAYS: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    /// 0: empty.
    tag: u64,
    sig: [u8; SIGNATURE_LEN],
}

const EMPTY: Entry = Entry {
    tag: 0,
    sig: [0; SIGNATURE_LEN],
};

/// A fixed-size signature cache.
pub struct SigCache {
    entries: Box<[Entry]>,
    /// Per bucket, the way the next insert replaces.
    next: Box<[u8]>,
    buckets_mask: usize,
    hasher: foldhash::fast::RandomState,
}

impl SigCache {
    /// How many signatures a cache made for `entries` holds: `entries` rounded up to a
    /// power of two, at least 4.
    pub fn capacity_for(entries: usize) -> usize {
        (entries.max(WAYS) / WAYS).next_power_of_two() * WAYS
    }

    /// A cache of [`SigCache::capacity_for`] `entries` signatures.
    pub fn new(entries: usize) -> SigCache {
        let buckets = SigCache::capacity_for(entries) / WAYS;
        SigCache {
            entries: vec![EMPTY; buckets * WAYS].into_boxed_slice(),
            next: vec![0; buckets].into_boxed_slice(),
            buckets_mask: buckets - 1,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// How many signatures it holds at most.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// A hasher for a cache key: write what the signature covers, then [`SigCache::tag`].
    #[inline]
    pub fn hasher(&self) -> foldhash::fast::FoldHasher {
        self.hasher.build_hasher()
    }

    /// The tag of a finished key hash (never 0, the empty mark).
    #[inline]
    pub fn tag(h: &foldhash::fast::FoldHasher) -> u64 {
        h.finish().max(1)
    }

    #[inline]
    fn bucket(&self, tag: u64) -> usize {
        // The high bits pick the bucket (foldhash mixes them well); the tag is kept whole.
        ((tag >> 32) as usize ^ tag as usize) & self.buckets_mask
    }

    /// The signature cached under `tag`.
    #[inline]
    pub fn get(&self, tag: u64) -> Option<&[u8; SIGNATURE_LEN]> {
        let b = self.bucket(tag) * WAYS;
        self.entries[b..b + WAYS]
            .iter()
            .find(|e| e.tag == tag)
            .map(|e| &e.sig)
    }

    /// Caches `sig` under `tag`, replacing the bucket's oldest insert when it is full.
    pub fn put(&mut self, tag: u64, sig: &[u8; SIGNATURE_LEN]) {
        let bucket = self.bucket(tag);
        let b = bucket * WAYS;
        let slot = match self.entries[b..b + WAYS]
            .iter()
            .position(|e| e.tag == 0 || e.tag == tag)
        {
            Some(i) => i,
            None => {
                let i = usize::from(self.next[bucket]) % WAYS;
                self.next[bucket] = ((i + 1) % WAYS) as u8;
                i
            }
        };
        self.entries[b + slot] = Entry { tag, sig: *sig };
    }
}

/// A token bucket: `rate` signatures a second, bursts of `rate` (at least 1).
#[derive(Debug, Clone)]
pub struct MissLimiter {
    rate: u64,
    /// Tokens, in nanosecond-units: one signature costs 1e9.
    tokens: u64,
    last: u64,
}

impl MissLimiter {
    pub fn new(rate: u32, now_nanos: u64) -> MissLimiter {
        let rate = u64::from(rate.max(1));
        MissLimiter {
            rate,
            tokens: rate * 1_000_000_000,
            last: now_nanos,
        }
    }

    /// The rate it was made with.
    pub fn rate(&self) -> u32 {
        self.rate as u32
    }

    /// Takes one signature's token at `now_nanos`; false when none is left.
    #[inline]
    pub fn allow(&mut self, now_nanos: u64) -> bool {
        let cap = self.rate * 1_000_000_000;
        let elapsed = now_nanos.saturating_sub(self.last);
        self.last = self.last.max(now_nanos);
        self.tokens = (self.tokens + elapsed.saturating_mul(self.rate)).min(cap);
        if self.tokens >= 1_000_000_000 {
            self.tokens -= 1_000_000_000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_of(c: &SigCache, s: &str) -> u64 {
        let mut h = c.hasher();
        h.write(s.as_bytes());
        SigCache::tag(&h)
    }

    #[test]
    fn hits_what_was_put_and_misses_the_rest() {
        let mut c = SigCache::new(1000);
        assert_eq!(c.capacity(), 1024);
        let a = tag_of(&c, "a");
        assert!(c.get(a).is_none());
        c.put(a, &[7; SIGNATURE_LEN]);
        assert_eq!(c.get(a), Some(&[7; SIGNATURE_LEN]));
        assert!(c.get(tag_of(&c, "b")).is_none());
        // Putting again replaces in place.
        c.put(a, &[8; SIGNATURE_LEN]);
        assert_eq!(c.get(a), Some(&[8; SIGNATURE_LEN]));
    }

    #[test]
    fn a_full_cache_evicts_within_a_bucket_and_keeps_recent_entries() {
        let mut c = SigCache::new(4);
        let tags: Vec<u64> = (0..8).map(|i| tag_of(&c, &i.to_string())).collect();
        for (i, t) in tags.iter().enumerate() {
            c.put(*t, &[i as u8; SIGNATURE_LEN]);
        }
        // One bucket of 4: the last four are there, the first four are gone.
        for (i, t) in tags.iter().enumerate() {
            assert_eq!(c.get(*t).is_some(), i >= 4, "entry {i}");
        }
    }

    #[test]
    fn the_limiter_allows_its_rate_and_no_more() {
        let mut l = MissLimiter::new(100, 0);
        let allowed = (0..1000).filter(|_| l.allow(0)).count();
        assert_eq!(allowed, 100, "the burst");
        assert!(!l.allow(0));
        // Half a second later: 50 more.
        let allowed = (0..1000).filter(|_| l.allow(500_000_000)).count();
        assert_eq!(allowed, 50);
        // A long pause refills to the burst, not beyond.
        let allowed = (0..1000).filter(|_| l.allow(100_000_000_000)).count();
        assert_eq!(allowed, 100);
    }
}
