//! The overlay: the changes applied since the base table was built, in persistent hash maps
//! (`imbl`, structurally shared) so that publishing a snapshot clones it in O(1) while the
//! builder keeps applying changes to its own copy.
//!
//! `ids` and `names` hold the latest state of every key touched since the base (`None` hides
//! a base entry); `users` holds per-user differences to the base's app counts.

use std::sync::atomic::{AtomicU64, Ordering};

pub use super::overlay_key::Key;

/// The hasher of the overlay maps.
pub type Hasher = foldhash::fast::FixedState;

/// A persistent hash map with the overlay's hasher.
pub type HashMap<K, V> = imbl::GenericHashMap<K, V, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// An app as the overlay holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rec {
    /// Name key: slug label then user label.
    pub name: Key,
    pub cluster: u16,
}

/// The smallest filter, in bits.
const MIN_FILTER_BITS: usize = 1 << 21;

/// Changes since the base.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub(crate) ids: HashMap<Key, Option<Rec>>,
    /// Name key -> (id key, cluster) of its holder, or `None` when the name was freed.
    pub(crate) names: HashMap<Key, Option<(Key, u16)>>,
    pub(crate) users: HashMap<Key, i64>,
    /// A one-hash Bloom filter over every key in the three maps (by `hash_key`), so that a
    /// lookup of a key the overlay does not hold (nearly all of them) skips the maps.
    filter: std::sync::Arc<Filter>,
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

impl Overlay {
    /// An empty overlay over a base of `base_len` apps (its filter sized for it).
    pub fn for_base(base_len: usize) -> Overlay {
        Overlay {
            ids: HashMap::default(),
            names: HashMap::default(),
            users: HashMap::default(),
            filter: std::sync::Arc::new(Filter::for_base(base_len)),
        }
    }

    /// Whether the key with hash `hash` may be in the overlay.
    #[inline]
    pub fn may_hold(&self, hash: u64) -> bool {
        let (word, mask) = self.filter.bit(hash);
        self.filter.words[word].load(Ordering::Relaxed) & mask != 0
    }

    /// Marks `key` as (possibly) held, in every clone of this overlay.
    pub(crate) fn mark(&mut self, key: &[u8]) {
        self.filter.mark(key);
    }

    /// Recomputes the filter from the maps (after reading them from a checkpoint over a base
    /// of `base_len` apps).
    pub(crate) fn rebuild_filter(&mut self, base_len: usize) {
        let filter = Filter::for_base(base_len);
        for k in self
            .ids
            .keys()
            .chain(self.names.keys())
            .chain(self.users.keys())
        {
            filter.mark(k);
        }
        self.filter = std::sync::Arc::new(filter);
    }

    /// Whether no change has been applied since the base.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The number of ids touched since the base.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}
