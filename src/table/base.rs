//! The base table: an immutable, compact store of apps built in one pass, with three
//! open-addressing indexes (repl id, `<slug>.<user>`, user) into one byte arena.
//!
//! Each app is one record in the arena: `cluster (u16 LE) | id key | slug label | user label`.
//! An index slot is a `u64`: the record's offset (high 32 bits, 0 = empty) and the low 32 bits
//! of the key's hash as a tag. The home slot comes from the hash's high bits by multiply-shift,
//! so an index can have any size (load factor 0.7 without rounding up to a power of two).
//! Lookups probe linearly, comparing tags before keys. The user index keeps
//! a count of apps per user beside each slot. The layout is plain integers so that a checkpoint
//! is the arena and the slot arrays written out as they are.

use crate::table::key::hash_key;

/// Which part of a record an index is keyed on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Part {
    Id,
    Name,
    User,
}

/// The byte range of `part` in the record at `off`. Total: a malformed record (only possible
/// in a damaged checkpoint) gives an empty or clipped range, never a panic.
#[inline]
pub(crate) fn part_range(arena: &[u8], off: usize, part: Part) -> (usize, usize) {
    let len_at = |pos: usize| arena.get(pos).map(|&l| usize::from(l) + 1);
    let id = off + 2;
    let id_len = match arena.get(id) {
        Some(&crate::table::key::UUID_MARK) => crate::table::key::UUID_KEY_LEN,
        Some(&l) => usize::from(l) + 1,
        None => return (0, 0),
    };
    let clip = |a: usize, b: usize| (a.min(arena.len()), b.min(arena.len()));
    if part == Part::Id {
        return clip(id, id + id_len);
    }
    let slug = id + id_len;
    let Some(slug_len) = len_at(slug) else {
        return (0, 0);
    };
    let user = slug + slug_len;
    let Some(user_len) = len_at(user) else {
        return (0, 0);
    };
    let end = user + user_len;
    match part {
        Part::Name => clip(slug, end),
        _ => clip(user, end),
    }
}

/// An open-addressing index of record offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Index {
    pub(crate) slots: Vec<u64>,
    pub(crate) len: usize,
}

impl Index {
    pub(crate) fn with_capacity(n: usize) -> Index {
        // Load factor at most 0.7.
        let cap = (n * 10 / 7 + 1).max(16);
        Index {
            slots: vec![0; cap],
            len: 0,
        }
    }

    /// The slot a hash starts probing at.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot after `i`, wrapping around.
    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// The slot index and record offset of `key`.
    #[inline]
    pub(crate) fn find(
        &self,
        arena: &[u8],
        part: Part,
        key: &[u8],
        hash: u64,
    ) -> Option<(usize, usize)> {
        let tag = hash & 0xffff_ffff;
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s & 0xffff_ffff == tag {
                let off = (s >> 32) as usize;
                let (a, b) = part_range(arena, off, part);
                if &arena[a..b] == key {
                    return Some((i, off));
                }
            }
            i = self.next(i);
        }
    }

    /// Whether one more entry would pass the load factor.
    fn full(&self) -> bool {
        (self.len + 1) * 10 > self.slots.len() * 7
    }

    /// Places the record at `off` whose key hashes to `hash` (known to be absent).
    fn insert_new(&mut self, off: usize, hash: u64) -> usize {
        let mut i = self.home(hash);
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = (off as u64) << 32 | (hash & 0xffff_ffff);
        self.len += 1;
        i
    }

    /// Doubles the slot array, re-placing every entry; `counts` (if any) moves along.
    fn grow(&mut self, arena: &[u8], part: Part, counts: Option<&mut Vec<u32>>) {
        let old = std::mem::take(&mut self.slots);
        let old_counts = counts.as_ref().map(|c| c.to_vec());
        self.slots = vec![0; old.len() * 3 / 2 + 1];
        self.len = 0;
        let mut new_counts = vec![0; self.slots.len()];
        for (i, &s) in old.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let off = (s >> 32) as usize;
            let (a, b) = part_range(arena, off, part);
            let slot = self.insert_new(off, hash_key(&arena[a..b]));
            if let Some(oc) = &old_counts {
                new_counts[slot] = oc[i];
            }
        }
        if let Some(c) = counts {
            *c = new_counts;
        }
    }

    /// Offsets of every record in the index.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != 0)
            .map(|&s| (s >> 32) as usize)
    }
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Two apps claim the same `<slug>.<user>`.
    DuplicateName(String),
    /// The same repl id appears twice.
    DuplicateId(String),
    /// The arena would pass 4 GiB.
    TooLarge,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::DuplicateName(n) => write!(f, "two apps are named {n}"),
            BuildError::DuplicateId(id) => write!(f, "repl id {id} appears twice"),
            BuildError::TooLarge => f.write_str("table too large (arena over 4 GiB)"),
        }
    }
}

impl std::error::Error for BuildError {}

/// The immutable base table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub(crate) arena: Vec<u8>,
    pub(crate) ids: Index,
    pub(crate) names: Index,
    pub(crate) users: Index,
    /// Apps per user, beside each user slot.
    pub(crate) user_counts: Vec<u32>,
}

impl Default for Base {
    fn default() -> Self {
        Base::builder(0).finish()
    }
}

/// Accumulates records; indexes are filled as they come.
pub struct BaseBuilder {
    base: Base,
}

impl BaseBuilder {
    /// Adds an app: `id` is its id key, `name` its name key (slug then user label).
    pub fn push(&mut self, id: &[u8], name: &[u8], cluster: u16) -> Result<(), BuildError> {
        let b = &mut self.base;
        let off = b.arena.len();
        if off + 2 + id.len() + name.len() > u32::MAX as usize {
            return Err(BuildError::TooLarge);
        }
        b.arena.extend_from_slice(&cluster.to_le_bytes());
        b.arena.extend_from_slice(id);
        b.arena.extend_from_slice(name);
        // Check both keys before touching an index, so that a refusal leaves no trace.
        let (id_hash, name_hash) = (hash_key(id), hash_key(name));
        if b.ids.find(&b.arena, Part::Id, id, id_hash).is_some() {
            b.arena.truncate(off);
            return Err(BuildError::DuplicateId(crate::table::key::id_text(id)));
        }
        if b.names
            .find(&b.arena, Part::Name, name, name_hash)
            .is_some()
        {
            b.arena.truncate(off);
            let user = crate::table::key::user_of_name(name);
            let slug = &name[..name.len() - user.len()];
            return Err(BuildError::DuplicateName(format!(
                "{}.{}",
                crate::table::key::label_text(slug),
                crate::table::key::label_text(user)
            )));
        }
        if b.ids.full() {
            b.ids.grow(&b.arena, Part::Id, None);
        }
        if b.names.full() {
            b.names.grow(&b.arena, Part::Name, None);
        }
        b.ids.insert_new(off, id_hash);
        b.names.insert_new(off, name_hash);
        let user = crate::table::key::user_of_name(name);
        let user_hash = hash_key(user);
        let slot = match b.users.find(&b.arena, Part::User, user, user_hash) {
            Some((slot, _)) => slot,
            None => {
                if b.users.full() {
                    b.users.grow(&b.arena, Part::User, Some(&mut b.user_counts));
                }
                if b.user_counts.len() != b.users.slots.len() {
                    b.user_counts.resize(b.users.slots.len(), 0);
                }
                b.users.insert_new(off, user_hash)
            }
        };
        b.user_counts[slot] += 1;
        Ok(())
    }

    /// The finished table.
    pub fn finish(mut self) -> Base {
        self.base.arena.shrink_to_fit();
        self.base.user_counts.resize(self.base.users.slots.len(), 0);
        self.base.advise_huge_pages();
        self.base
    }
}

/// `advise_huge_pages` for the whole 2 MiB pages inside `len` bytes at `ptr`.
fn advise_huge(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end <= start {
        return;
    }
    for advice in [libc::MADV_HUGEPAGE, libc::MADV_COLLAPSE] {
        // SAFETY: [start, end) lies inside one live allocation owned by the caller; these
        // advices change how its pages are backed, never their contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
    }
}

impl Base {
    /// Starts a table for about `n` apps.
    pub fn builder(n: usize) -> BaseBuilder {
        BaseBuilder {
            base: Base {
                // Offset 0 marks an empty slot: the arena starts with one unused byte.
                arena: {
                    let mut a = Vec::with_capacity(1 + n * 40);
                    a.push(0);
                    a
                },
                ids: Index::with_capacity(n),
                names: Index::with_capacity(n),
                users: Index::with_capacity(n / 4),
                user_counts: vec![0; Index::with_capacity(n / 4).slots.len()],
            },
        }
    }

    /// The cluster and record offset of the app with id key `key`.
    #[inline]
    pub fn by_id(&self, key: &[u8], hash: u64) -> Option<(u16, usize)> {
        self.ids
            .find(&self.arena, Part::Id, key, hash)
            .map(|(_, off)| (self.cluster_at(off), off))
    }

    /// The cluster and record offset of the app with name key `key`.
    #[inline]
    pub fn by_name(&self, key: &[u8], hash: u64) -> Option<(u16, usize)> {
        self.names
            .find(&self.arena, Part::Name, key, hash)
            .map(|(_, off)| (self.cluster_at(off), off))
    }

    /// How many apps the user with key `key` has.
    #[inline]
    pub fn user_apps(&self, key: &[u8], hash: u64) -> u32 {
        self.users
            .find(&self.arena, Part::User, key, hash)
            .map_or(0, |(slot, _)| self.user_counts[slot])
    }

    #[inline]
    pub(crate) fn cluster_at(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.arena[off], self.arena[off + 1]])
    }

    /// The bytes of `part` of the record at `off`.
    #[inline]
    pub(crate) fn part(&self, off: usize, part: Part) -> &[u8] {
        let (a, b) = part_range(&self.arena, off, part);
        &self.arena[a..b]
    }

    /// Every app as (id key, name key, cluster).
    pub fn records(&self) -> impl Iterator<Item = (&[u8], &[u8], u16)> + '_ {
        self.ids.offsets().map(|off| {
            (
                self.part(off, Part::Id),
                self.part(off, Part::Name),
                self.cluster_at(off),
            )
        })
    }

    /// The number of apps.
    pub fn len(&self) -> usize {
        self.ids.len
    }

    /// Whether there is no app.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of distinct users.
    pub fn user_count(&self) -> usize {
        self.users.len
    }

    /// Asks the kernel to back the large arrays (arena and indexes) with transparent huge
    /// pages, and to collapse what is already there into them (MADV_COLLAPSE, Linux 6.1+):
    /// lookups land at random places in tens or hundreds of megabytes, and with 2 MiB pages
    /// most of them hit the TLB. Best effort: where the kernel says no, nothing changes.
    pub fn advise_huge_pages(&self) {
        advise_huge(self.arena.as_ptr(), self.arena.len());
        for index in [&self.ids, &self.names, &self.users] {
            advise_huge(
                index.slots.as_ptr().cast(),
                std::mem::size_of_val(index.slots.as_slice()),
            );
        }
    }

    /// Checks that every index slot points at a whole record inside the arena (for data read
    /// from a file: afterwards lookups cannot index out of bounds).
    pub fn validate(&self) -> Result<(), String> {
        // Records are only read through `part_range` and `cluster_at`, which cannot go out of
        // bounds once every offset leaves room for the cluster field: no arena walk needed.
        for (name, index) in [
            ("id", &self.ids),
            ("name", &self.names),
            ("user", &self.users),
        ] {
            if index.len >= index.slots.len() {
                return Err(format!("{name} index is full"));
            }
            if let Some(off) = index
                .offsets()
                .find(|&off| off == 0 || off + 2 > self.arena.len())
            {
                return Err(format!("{name} index points outside the arena ({off})"));
            }
        }
        if self.user_counts.len() != self.users.slots.len() {
            return Err("user counts do not match the user index".into());
        }
        Ok(())
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + 8 * (self.ids.slots.capacity()
                + self.names.slots.capacity()
                + self.users.slots.capacity())
            + 4 * self.user_counts.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::key::{id_key_of, name_key_of};

    fn build(apps: &[(&str, &str, &str, u16)]) -> Result<Base, BuildError> {
        let mut b = Base::builder(apps.len());
        for (id, slug, user, c) in apps {
            b.push(&id_key_of(id), &name_key_of(slug, user), *c)?;
        }
        Ok(b.finish())
    }

    #[test]
    fn lookups_by_every_key() {
        let uuid = "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c";
        let base = build(&[
            ("r1", "game", "mark", 3),
            (uuid, "site", "mark", 1),
            ("r3", "game", "ann", 2),
        ])
        .unwrap();
        assert_eq!(base.len(), 3);
        assert_eq!(base.user_count(), 2);
        let k = id_key_of(uuid);
        assert_eq!(base.by_id(&k, hash_key(&k)).map(|x| x.0), Some(1));
        let k = name_key_of("game", "ann");
        assert_eq!(base.by_name(&k, hash_key(&k)).map(|x| x.0), Some(2));
        let k = b"\x04mark";
        assert_eq!(base.user_apps(k, hash_key(k)), 2);
        let k = b"\x04nope";
        assert_eq!(base.user_apps(k, hash_key(k)), 0);
        assert_eq!(base.by_id(k, hash_key(k)), None);
        let mut recs: Vec<_> = base
            .records()
            .map(|(i, n, c)| (crate::table::key::id_text(i), n.to_vec(), c))
            .collect();
        recs.sort();
        assert_eq!(recs[0].0, uuid);
        assert_eq!(recs[1], ("r1".to_string(), name_key_of("game", "mark"), 3));
    }

    #[test]
    fn duplicates_are_refused_and_leave_no_trace() {
        let mut b = Base::builder(4);
        b.push(&id_key_of("a"), &name_key_of("s", "u"), 0).unwrap();
        assert!(matches!(
            b.push(&id_key_of("a"), &name_key_of("t", "u"), 0),
            Err(BuildError::DuplicateId(_))
        ));
        assert!(matches!(
            b.push(&id_key_of("b"), &name_key_of("s", "u"), 0),
            Err(BuildError::DuplicateName(n)) if n == "s.u"
        ));
        b.push(&id_key_of("b"), &name_key_of("t", "u"), 1).unwrap();
        let base = b.finish();
        assert_eq!(base.len(), 2);
        let k = id_key_of("b");
        assert_eq!(base.by_id(&k, hash_key(&k)).map(|x| x.0), Some(1));
    }

    #[test]
    fn many_entries_probe_correctly() {
        let mut b = Base::builder(10_000);
        for i in 0..10_000u32 {
            b.push(
                &id_key_of(&format!("id{i}")),
                &name_key_of(&format!("s{i}"), &format!("u{}", i % 97)),
                (i % 7) as u16,
            )
            .unwrap();
        }
        let base = b.finish();
        for i in (0..10_000u32).step_by(37) {
            let k = id_key_of(&format!("id{i}"));
            assert_eq!(
                base.by_id(&k, hash_key(&k)).map(|x| x.0),
                Some((i % 7) as u16)
            );
        }
        let k = id_key_of("id10000");
        assert_eq!(base.by_id(&k, hash_key(&k)), None);
        let k = b"\x02u5";
        // i % 97 == 5 for i = 5, 102, ..., 9996: 104 apps.
        assert_eq!(base.user_apps(k, hash_key(k)), 104);
    }
}
