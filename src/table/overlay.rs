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

/// Changes since the base.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    pub(crate) ids: HashMap<Key, Option<Rec>>,
    /// Name key -> (id key, cluster) of its holder, or `None` when the name was freed.
    pub(crate) names: HashMap<Key, Option<(Key, u16)>>,
    pub(crate) users: HashMap<Key, i64>,
}

impl Overlay {
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
