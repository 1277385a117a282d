//! The overlay: the changes applied since the base table was built, kept as versions in an
//! append-only log ([`super::versions`]) that every snapshot since the base shares. A table
//! copy is the log plus a horizon, so publishing a snapshot copies nothing, and a change
//! appends a few versions instead of copying map nodes.
//!
//! `IDS` and `NAMES` hold the latest state of every key touched since the base (gone hides a
//! base entry); `USERS` holds per-user differences to the base's app counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::key::hash_key;
use super::versions::Log;
pub use super::versions::{Bytes, Owned, PutError, Val, IDS, NAMES, USERS};

/// The smallest filter, in bits.
const MIN_FILTER_BITS: usize = 1 << 21;

/// Changes since the base, as a reader (or the builder) at one horizon sees them.
#[derive(Clone, Debug)]
pub struct Overlay {
    log: Arc<Log>,
    /// Versions this copy sees: all of the log's when it is the builder's own.
    horizon: u32,
    /// Ids touched since the base (keys of `IDS`).
    ids: usize,
    /// A one-hash Bloom filter over every key in the three maps (by `hash_key`), so that a
    /// lookup of a key the overlay does not hold (nearly all of them) skips the maps.
    filter: Arc<Filter>,
}

/// A Bloom filter whose bits are only ever set, shared by every clone of an overlay (and so
/// by every snapshot published since the base was built): publishing copies nothing, and a
/// reader's cached lines stay valid. A bit set for a later snapshot only costs an older
/// snapshot's reader a look into its maps (a false positive), never a wrong answer: the
/// builder sets a key's bit before it publishes the snapshot that holds the key, and the
/// release/acquire of the publication orders the two.
struct Filter {
    words: Box<[AtomicU64]>,
    /// Bits - 1 (a power of two less one).
    mask: usize,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Filter({} bits)", self.mask + 1)
    }
}

impl Filter {
    /// A filter for the changes that accumulate over a base of `base_len` apps before the
    /// builder folds them (a tenth of the base, three keys each, about eight bits per key).
    fn for_base(base_len: usize) -> Filter {
        let bits = (base_len / 10 * 3 * 8)
            .max(MIN_FILTER_BITS)
            .next_power_of_two();
        Filter {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits - 1,
        }
    }

    #[inline]
    fn bit(&self, hash: u64) -> (usize, u64) {
        // High bits: the indexes use the low 32 for tags and the top ones for slots.
        let bit = (hash >> 20) as usize & self.mask;
        (bit / 64, 1 << (bit % 64))
    }

    /// Sets the bit of `key`.
    fn mark(&self, key: &[u8]) {
        let (word, mask) = self.bit(crate::table::key::hash_key(key));
        let w = &self.words[word];
        // Only the builder sets bits: skip the locked write when the bit is already set.
        if w.load(Ordering::Relaxed) & mask == 0 {
            w.fetch_or(mask, Ordering::Relaxed);
        }
    }
}

impl Default for Overlay {
    fn default() -> Self {
        Overlay::for_base(0)
    }
}

/// A key looked up by the builder: its hash, where the probe ended, and the version seen.
pub(crate) struct At {
    pub(crate) hash: u64,
    probe: Option<(usize, u64)>,
    seen: Option<u32>,
}

/// The fewest keys per map a log is made for.
const MIN_KEYS: usize = 1024;

impl Overlay {
    /// An empty overlay over a base of `base_len` apps, sized (filter and log) for the tenth
    /// of it that accumulates before the builder folds.
    pub fn for_base(base_len: usize) -> Overlay {
        let keys = (base_len / 10).max(MIN_KEYS);
        Overlay {
            log: Arc::new(Log::with_capacity(keys, keys * 4)),
            horizon: 0,
            ids: 0,
            filter: Arc::new(Filter::for_base(base_len)),
        }
    }

    /// Whether the key with hash `hash` may be in the overlay.
    #[inline]
    pub fn may_hold(&self, hash: u64) -> bool {
        let (word, mask) = self.filter.bit(hash);
        self.filter.words[word].load(Ordering::Relaxed) & mask != 0
    }

    /// Prefetches the filter word of `hash`.
    #[inline]
    pub fn prefetch_filter(&self, hash: u64) {
        let (word, _) = self.filter.bit(hash);
        if let Some(w) = self.filter.words.get(word) {
            super::memory::prefetch(w as *const AtomicU64 as *const u8);
        }
    }

    /// Prefetches the filter word and the home slot in `map` of `hash` (for the builder,
    /// which then reads both for every change).
    #[inline]
    pub fn prefetch_home(&self, map: usize, hash: u64) {
        if !self.is_empty() {
            self.prefetch_filter(hash);
            self.log.prefetch_home(map, hash);
        }
    }

    /// Prefetches the newest version of the key with hash `hash` in `map`, if the filter
    /// lets it be there (after `prefetch_home`, once the filter word and slot are here).
    #[inline]
    pub fn prefetch_head(&self, map: usize, hash: u64) {
        if !self.is_empty() && self.may_hold(hash) {
            self.log.prefetch_head(map, hash);
        }
    }

    /// Whether no change has been applied since the base.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.horizon == 0
    }

    /// The number of ids touched since the base.
    pub fn len(&self) -> usize {
        self.ids
    }

    /// How full the log under this overlay is (0 to 1). Changes that keep hitting the same
    /// apps add versions but no ids, so this, not `len`, says when the log runs out of room;
    /// a full log is copied larger by the next change, which stalls the builder.
    pub fn fill(&self) -> f64 {
        self.log.fill()
    }

    /// The version of `key` in `map` that this copy sees, when the filter lets it be there.
    #[inline]
    fn find(&self, map: usize, key: &[u8], hash: u64) -> Option<u32> {
        if self.is_empty() || !self.may_hold(hash) {
            return None;
        }
        self.log.find(map, key, hash, self.horizon)
    }

    /// What the overlay says of an id or name key: `None` when it does not hold the key, else
    /// its cluster (`None` when the key is gone).
    #[inline]
    pub fn cluster(&self, map: usize, key: &[u8], hash: u64) -> Option<Option<u16>> {
        self.find(map, key, hash).map(|e| self.log.cluster(e))
    }

    /// An id's or name's record: `None` when the overlay does not hold the key, else its
    /// cluster and other key (`None` when the key is gone).
    pub fn record(&self, map: usize, key: &[u8]) -> Option<Option<(u16, Bytes)>> {
        self.find(map, key, hash_key(key))
            .map(|e| self.log.record(e))
    }

    /// A user's difference to the base's app count.
    #[inline]
    pub fn user_delta(&self, user: &[u8], hash: u64) -> i64 {
        self.find(USERS, user, hash)
            .map_or(0, |e| self.log.count(e))
    }

    /// Where `key` is in `map`, and the version of it this copy sees, for the builder to read
    /// and then replace without looking it up again.
    pub(crate) fn at(&self, map: usize, key: &[u8]) -> At {
        let hash = hash_key(key);
        if self.is_empty() || !self.may_hold(hash) {
            return At {
                hash,
                probe: None,
                seen: None,
            };
        }
        let (pos, slot) = self.log.probe(map, key, hash);
        let seen = (slot != 0)
            .then(|| self.log.visible(slot as u32 - 1, self.horizon))
            .flatten();
        At {
            hash,
            probe: Some((pos, slot)),
            seen,
        }
    }

    /// What the overlay says of a key looked up with `at`: `None` when it does not hold it,
    /// `Some(None)` when the key is gone, else its version.
    pub(crate) fn state(&self, at: &At) -> Option<Option<u32>> {
        at.seen.map(|e| self.log.cluster(e).map(|_| e))
    }

    /// Whether version `e` is a record whose other key is `bytes`.
    pub(crate) fn aux_is(&self, e: u32, bytes: &[u8]) -> bool {
        self.log.aux_is(e, bytes)
    }

    /// Version `e`'s cluster (of a record; `None` when it says the key is gone).
    pub(crate) fn cluster_of(&self, e: u32) -> Option<u16> {
        self.log.cluster(e)
    }

    /// Version `e`'s other key (of a record).
    pub(crate) fn aux(&self, e: u32) -> Bytes {
        self.log
            .record(e)
            .map(|(_, aux)| aux)
            .unwrap_or_else(|| Bytes::from(&[][..]))
    }

    /// Records a new version of `key` in `map`.
    pub(crate) fn put(&mut self, map: usize, key: &[u8], val: Val<'_>) -> Result<(), String> {
        let at = At {
            hash: hash_key(key),
            probe: None,
            seen: None,
        };
        self.put_at(map, key, &at, val)
    }

    /// Records a new version of `key` in `map`, looked up with `at` since.
    pub(crate) fn put_at(
        &mut self,
        map: usize,
        key: &[u8],
        at: &At,
        val: Val<'_>,
    ) -> Result<(), String> {
        self.filter.mark(key);
        let hash = at.hash;
        let mut hint = at.probe;
        loop {
            match self
                .log
                .put_hinted(map, key, hash, self.horizon, val, hint.take())
            {
                Ok(new) => {
                    self.horizon += 1;
                    if new && map == IDS {
                        self.ids += 1;
                    }
                    return Ok(());
                }
                // An older copy being changed (not the builder's own): it gets a log of its own.
                Err(PutError::Stale) => self.rebuild(false),
                Err(PutError::Full) => self.rebuild(true),
                Err(PutError::TooLong) => return Err("a key is longer than two labels".into()),
            }
        }
    }

    /// Replaces the log by one holding only what this copy sees (larger when `grow`).
    fn rebuild(&mut self, grow: bool) {
        let most = [IDS, NAMES, USERS]
            .iter()
            .map(|&m| self.log.visible_keys(m, self.horizon).count())
            .max()
            .unwrap_or(0);
        let mut keys = (self.log.key_capacity() * 4 / 5).max(most * 2);
        if grow {
            keys *= 2;
        }
        loop {
            let versions = self.log.capacity().max(keys * 4);
            if let Some((log, horizon)) = self.copied(Log::with_capacity(keys, versions)) {
                self.log = Arc::new(log);
                self.horizon = horizon;
                return;
            }
            keys *= 2;
        }
    }

    /// `log` holding what this copy sees, with its horizon, or `None` when it has no room.
    fn copied(&self, log: Log) -> Option<(Log, u32)> {
        let mut horizon = 0;
        for map in [IDS, NAMES, USERS] {
            for e in self.log.visible_keys(map, self.horizon) {
                let (key, val) = self.log.copy_of(map, e);
                log.put(map, &key, hash_key(&key), horizon, val.as_val())
                    .ok()?;
                horizon += 1;
            }
        }
        Some((log, horizon))
    }

    /// Every key of `map` this copy sees, with its value, in the order they were written
    /// (see [`Overlay::versions_in_log_order`]: a checkpoint and its load read all of them).
    pub fn entries(&self, map: usize) -> impl Iterator<Item = (Bytes, Owned)> + '_ {
        self.versions_in_log_order(map)
            .into_iter()
            .map(move |e| self.log.copy_of(map, e))
    }

    /// The versions of `map`'s keys that this copy sees, in the order they were written: read
    /// with [`Overlay::version`] in this order, they walk the log forward instead of jumping
    /// about it (a fold reads a million of them).
    pub fn versions_in_log_order(&self, map: usize) -> Vec<u32> {
        let mut v: Vec<u32> = self.log.visible_keys(map, self.horizon).collect();
        v.sort_unstable();
        v
    }

    /// Version `e` of `map` (from [`Overlay::versions_in_log_order`]): its key and value.
    pub fn version(&self, map: usize, e: u32) -> (Bytes, Owned) {
        self.log.copy_of(map, e)
    }

    /// Version `e`'s key alone (what [`Overlay::version`] returns first, without the value).
    pub fn version_key(&self, e: u32) -> Bytes {
        self.log.key(e)
    }
}
