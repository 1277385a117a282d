//! The immutable app table: repl id, `<slug>.<user>` and user lookups, built once per snapshot.
//!
//! All keys live in one byte arena in wire form (length-prefixed, lower-case labels); three
//! open-addressing tables (`hashbrown::HashTable`) hold 8-byte slots pointing into it. A query
//! hashes its lower-cased key once and probes one table (two for a single label: repl id, then
//! user).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::name::Label;

/// One app: where `<id>.<zone>` and `<slug>.<user>.<zone>` point.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct App {
    pub id: Label,
    pub user: Label,
    pub slug: Label,
    /// Index into the snapshot's clusters.
    pub cluster: u16,
}

/// The hash used for every key: fixed seed so that a key's hash is the same in every table.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x636c_7573_7465_726e).hash_one(key)
}

/// A slot: where the key is in the arena, and the value (cluster index, or app count for users).
#[derive(Clone, Copy)]
struct Slot {
    off: u32,
    len: u8,
    value: u32,
}

/// A read-only map from wire-form keys in the arena to a `u32`.
#[derive(Default)]
struct KeyMap {
    slots: HashTable<Slot>,
}

impl KeyMap {
    fn with_capacity(n: usize) -> KeyMap {
        KeyMap {
            slots: HashTable::with_capacity(n),
        }
    }

    #[inline]
    fn get(&self, arena: &[u8], key: &[u8], hash: u64) -> Option<u32> {
        self.slots
            .find(hash, |s| {
                usize::from(s.len) == key.len() && &arena[s.off as usize..][..key.len()] == key
            })
            .map(|s| s.value)
    }

    /// Inserts or returns the existing slot's value for update.
    fn entry(&mut self, arena: &[u8], key_off: u32, key_len: u8) -> &mut u32 {
        let key = &arena[key_off as usize..][..usize::from(key_len)];
        let hash = hash_key(key);
        let entry = self.slots.entry(
            hash,
            |s| usize::from(s.len) == key.len() && &arena[s.off as usize..][..key.len()] == key,
            |s| hash_key(&arena[s.off as usize..][..usize::from(s.len)]),
        );
        &mut entry
            .or_insert(Slot {
                off: key_off,
                len: key_len,
                value: u32::MAX,
            })
            .into_mut()
            .value
    }

    fn len(&self) -> usize {
        self.slots.len()
    }
}

/// The immutable table of apps.
#[derive(Default)]
pub struct Table {
    arena: Vec<u8>,
    ids: KeyMap,
    names: KeyMap,
    users: KeyMap,
}

/// Why an app could not be put in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Two apps claim the same `<slug>.<user>`.
    DuplicateName { slug: Label, user: Label },
    /// The same repl id appears twice.
    DuplicateId(Label),
    /// The arena would pass 4 GiB.
    TooLarge,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::DuplicateName { slug, user } => {
                write!(f, "two apps are named {slug}.{user}")
            }
            BuildError::DuplicateId(id) => write!(f, "repl id {id} appears twice"),
            BuildError::TooLarge => f.write_str("table too large"),
        }
    }
}

impl std::error::Error for BuildError {}

fn push_label(arena: &mut Vec<u8>, label: &Label) {
    arena.push(label.as_str().len() as u8);
    arena.extend_from_slice(label.as_str().as_bytes());
}

impl Table {
    /// Builds a table from apps whose ids and names are unique.
    pub fn build<'a>(apps: impl IntoIterator<Item = &'a App>) -> Result<Table, BuildError> {
        let apps = apps.into_iter();
        let n = apps.size_hint().0;
        let mut t = Table {
            arena: Vec::with_capacity(n * 40),
            ids: KeyMap::with_capacity(n),
            names: KeyMap::with_capacity(n),
            users: KeyMap::with_capacity(n / 2),
        };
        for app in apps {
            t.insert(app)?;
        }
        t.arena.shrink_to_fit();
        Ok(t)
    }

    fn insert(&mut self, app: &App) -> Result<(), BuildError> {
        let id_off = self.arena.len();
        push_label(&mut self.arena, &app.id);
        let name_off = self.arena.len();
        push_label(&mut self.arena, &app.slug);
        let user_off = self.arena.len();
        push_label(&mut self.arena, &app.user);
        let end = self.arena.len();
        if end > u32::MAX as usize {
            return Err(BuildError::TooLarge);
        }
        let id_len = (name_off - id_off) as u8;
        let name_len = (end - name_off) as u8;
        let user_len = (end - user_off) as u8;

        let v = self.ids.entry(&self.arena, id_off as u32, id_len);
        if *v != u32::MAX {
            self.arena.truncate(id_off);
            return Err(BuildError::DuplicateId(app.id.clone()));
        }
        *v = u32::from(app.cluster);
        let v = self.names.entry(&self.arena, name_off as u32, name_len);
        if *v != u32::MAX {
            // Undo the id insertion so that the table stays consistent.
            let key = self.arena[id_off..name_off].to_vec();
            let hash = hash_key(&key);
            if let Ok(e) = self.ids.slots.find_entry(hash, |s| s.off == id_off as u32) {
                e.remove();
            }
            self.arena.truncate(id_off);
            return Err(BuildError::DuplicateName {
                slug: app.slug.clone(),
                user: app.user.clone(),
            });
        }
        *v = u32::from(app.cluster);
        let count = self.users.entry(&self.arena, user_off as u32, user_len);
        *count = if *count == u32::MAX { 1 } else { *count + 1 };
        Ok(())
    }

    /// The cluster of the app whose repl id is the single wire label `key`.
    #[inline]
    pub fn by_id(&self, key: &[u8], hash: u64) -> Option<u16> {
        self.ids.get(&self.arena, key, hash).map(|v| v as u16)
    }

    /// The cluster of the app whose `<slug>.<user>` is the two wire labels `key`.
    #[inline]
    pub fn by_name(&self, key: &[u8], hash: u64) -> Option<u16> {
        self.names.get(&self.arena, key, hash).map(|v| v as u16)
    }

    /// Whether the user whose name is the single wire label `key` has any app.
    #[inline]
    pub fn has_user(&self, key: &[u8], hash: u64) -> bool {
        self.users.get(&self.arena, key, hash).is_some()
    }

    /// The number of apps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the table holds no app.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of distinct users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Bytes held by the table (arena and slots), for reporting.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<Slot>() + 1;
        self.arena.capacity()
            + (self.ids.slots.capacity()
                + self.names.slots.capacity()
                + self.users.slots.capacity())
                * slot
    }
}

/// The wire form of one label (`\x05hello`) in a stack buffer, for lookups by text.
pub fn label_key(label: &str, buf: &mut [u8; 64]) -> usize {
    let b = label.as_bytes();
    let n = b.len().min(63);
    buf[0] = n as u8;
    for (d, s) in buf[1..=n].iter_mut().zip(b) {
        *d = s.to_ascii_lowercase();
    }
    n + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, user: &str, slug: &str, cluster: u16) -> App {
        App {
            id: id.parse().unwrap(),
            user: user.parse().unwrap(),
            slug: slug.parse().unwrap(),
            cluster,
        }
    }

    fn key(labels: &[&str]) -> Vec<u8> {
        let mut k = Vec::new();
        for l in labels {
            k.push(l.len() as u8);
            k.extend_from_slice(l.as_bytes());
        }
        k
    }

    #[test]
    fn lookups() {
        let apps = [
            app("r1", "mark", "coolgame", 0),
            app("r2", "mark", "other", 1),
            app("r3", "ann", "coolgame", 2),
        ];
        let t = Table::build(&apps).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.user_count(), 2);
        let k = key(&["r2"]);
        assert_eq!(t.by_id(&k, hash_key(&k)), Some(1));
        let k = key(&["coolgame", "ann"]);
        assert_eq!(t.by_name(&k, hash_key(&k)), Some(2));
        let k = key(&["coolgame", "nobody"]);
        assert_eq!(t.by_name(&k, hash_key(&k)), None);
        let k = key(&["mark"]);
        assert!(t.has_user(&k, hash_key(&k)));
        assert_eq!(t.by_id(&k, hash_key(&k)), None);
        let k = key(&["r9"]);
        assert_eq!(t.by_id(&k, hash_key(&k)), None);
        assert!(!t.has_user(&k, hash_key(&k)));
        assert!(t.heap_bytes() > 0);
    }

    #[test]
    fn duplicates_are_rejected() {
        let e = Table::build(&[app("r1", "a", "s", 0), app("r1", "b", "t", 0)]).err();
        assert!(matches!(e, Some(BuildError::DuplicateId(_))));
        let e = Table::build(&[app("r1", "a", "s", 0), app("r2", "a", "s", 0)]).err();
        assert!(matches!(e, Some(BuildError::DuplicateName { .. })));
    }

    #[test]
    fn label_key_lowercases() {
        let mut buf = [0u8; 64];
        let n = label_key("MaRk", &mut buf);
        assert_eq!(&buf[..n], b"\x04mark");
    }
}
