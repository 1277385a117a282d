//! The overlay: the changes applied since the base table was built, in persistent hash maps
//! (`imbl`, structurally shared) so that publishing a snapshot clones it in O(1) while the
//! builder keeps applying changes to its own copy.
//!
//! `ids` and `names` hold the latest state of every key touched since the base (`None` hides
//! a base entry); `users` holds per-user differences to the base's app counts.

/// A key in wire form.
pub type Key = Box<[u8]>;

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

/// Bits in the overlay's filter.
const FILTER_BITS: usize = 1 << 21;

/// Changes since the base.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub(crate) ids: HashMap<Key, Option<Rec>>,
    /// Name key -> (id key, cluster) of its holder, or `None` when the name was freed.
    pub(crate) names: HashMap<Key, Option<(Key, u16)>>,
    pub(crate) users: HashMap<Key, i64>,
    /// A one-hash Bloom filter over every key in the three maps (by `hash_key`), so that a
    /// lookup of a key the overlay does not hold (nearly all of them) skips the maps.
    /// Copied on write: once per published snapshot at most.
    filter: std::sync::Arc<Vec<u64>>,
}

impl Default for Overlay {
    fn default() -> Self {
        Overlay {
            ids: HashMap::default(),
            names: HashMap::default(),
            users: HashMap::default(),
            filter: std::sync::Arc::new(vec![0; FILTER_BITS / 64]),
        }
    }
}

#[inline]
fn filter_bit(hash: u64) -> (usize, u64) {
    // High bits: the indexes use the low 32 for tags and the top ones for slots.
    let bit = (hash >> 20) as usize & (FILTER_BITS - 1);
    (bit / 64, 1 << (bit % 64))
}

impl Overlay {
    /// Whether the key with hash `hash` may be in the overlay.
    #[inline]
    pub fn may_hold(&self, hash: u64) -> bool {
        let (word, mask) = filter_bit(hash);
        self.filter[word] & mask != 0
    }

    /// Marks `key` as (possibly) held.
    pub(crate) fn mark(&mut self, key: &[u8]) {
        let (word, mask) = filter_bit(crate::table::key::hash_key(key));
        std::sync::Arc::make_mut(&mut self.filter)[word] |= mask;
    }

    /// Recomputes the filter from the maps (after reading them from a checkpoint).
    pub(crate) fn rebuild_filter(&mut self) {
        let keys: Vec<Key> = self
            .ids
            .keys()
            .chain(self.names.keys())
            .chain(self.users.keys())
            .cloned()
            .collect();
        self.filter = std::sync::Arc::new(vec![0; FILTER_BITS / 64]);
        for k in keys {
            self.mark(&k);
        }
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
