//! The base table: an immutable, compact store of apps built in one pass, with three
//! open-addressing indexes (repl id, `<slug>.<user>`, user; see `table::index`) into one
//! byte arena.
//!
//! Each app is one record in the arena: `cluster (u16 LE) | id key | slug label | user label`.
//! The user index keeps a count of apps per user beside each slot. The layout is plain
//! integers so that a checkpoint is the arena and the slot arrays written out as they are
//! (see `table::persist`).

use crate::table::index::{part_range, Index, Part};
use crate::table::key::hash_key;
use crate::table::memory::{advise_huge, copy_huge, prefetch, with_capacity_huge};

/// Which index a lookup starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Ids,
    Names,
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
    arena: Vec<u8>,
    ids: Index,
    names: Index,
    users: Index,
    /// Apps per user, beside each user slot.
    user_counts: Vec<u32>,
    /// Arena bytes of records no index leads to any more (left by patches; not saved in
    /// checkpoints, so 0 after a load).
    garbage: usize,
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
        let off = b.append_record(id, name, cluster)?;
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
        b.index_new(off, id_hash, name_hash, name);
        Ok(())
    }

    /// The finished table.
    pub fn finish(mut self) -> Base {
        self.base.arena.shrink_to_fit();
        self.base
            .user_counts
            .resize(self.base.users.slots().len(), 0);
        self.base.advise_huge_pages();
        self.base
    }
}

impl Base {
    /// Starts a table for about `n` apps.
    pub fn builder(n: usize) -> BaseBuilder {
        BaseBuilder {
            base: Base {
                // Offset 0 marks an empty slot: the arena starts with one unused byte.
                arena: {
                    let mut a = with_capacity_huge(1 + n * 40);
                    a.push(0);
                    a
                },
                ids: Index::with_capacity(n),
                names: Index::with_capacity(n),
                users: Index::with_capacity(n / 4),
                user_counts: vec![0; Index::with_capacity(n / 4).slots().len()],
                garbage: 0,
            },
        }
    }

    /// Indexes the record at `off` (keys absent from the indexes, hashes given).
    fn index_new(&mut self, off: usize, id_hash: u64, name_hash: u64, name: &[u8]) {
        if self.ids.full() {
            self.ids.grow(&self.arena, Part::Id, None);
        }
        if self.names.full() {
            self.names.grow(&self.arena, Part::Name, None);
        }
        self.ids.insert_new(off, id_hash);
        self.names.insert_new(off, name_hash);
        let user = crate::table::key::user_of_name(name);
        let user_hash = hash_key(user);
        let slot = match self.users.find(&self.arena, Part::User, user, user_hash) {
            Some((slot, _)) => slot,
            None => {
                if self.users.full() {
                    self.users
                        .grow(&self.arena, Part::User, Some(&mut self.user_counts));
                }
                if self.user_counts.len() != self.users.slots().len() {
                    self.user_counts.resize(self.users.slots().len(), 0);
                }
                self.users.insert_new(off, user_hash)
            }
        };
        self.user_counts[slot] = self.user_counts[slot].saturating_add(1);
    }

    /// A copy of this base with room for `extra` more arena bytes, to patch.
    pub fn copy_with_room(&self, extra: usize) -> Base {
        Base {
            arena: copy_huge(&self.arena, extra),
            ids: self.ids.copy_huge(),
            names: self.names.copy_huge(),
            users: self.users.copy_huge(),
            user_counts: copy_huge(&self.user_counts, 0),
            garbage: self.garbage,
        }
    }

    /// Sets app `id`'s record to `rec` (name key and cluster; `None` deletes it). The table
    /// keeps names unique once every change of a fold is applied; in between, a name may be
    /// held twice (its new holder applied before its old one), so removals go by offset.
    pub fn patch(&mut self, id: &[u8], rec: Option<(&[u8], u16)>) -> Result<(), BuildError> {
        self.patch_hashed(id, hash_key(id), rec)
    }

    /// `patch`, with `hash_key(id)` already at hand.
    pub fn patch_hashed(
        &mut self,
        id: &[u8],
        id_hash: u64,
        rec: Option<(&[u8], u16)>,
    ) -> Result<(), BuildError> {
        if let Some((slot, off)) = self.ids.find(&self.arena, Part::Id, id, id_hash) {
            if let Some((name, cluster)) = rec {
                if self.part(off, Part::Name) == name {
                    self.arena[off..off + 2].copy_from_slice(&cluster.to_le_bytes());
                    return Ok(());
                }
            }
            self.ids.remove_slot(&self.arena, Part::Id, slot, None);
            let (a, b) = part_range(&self.arena, off, Part::Name);
            let name_hash = hash_key(&self.arena[a..b]);
            if let Some(slot) = self.names.slot_of(name_hash, off) {
                self.names.remove_slot(&self.arena, Part::Name, slot, None);
            }
            let (a, b) = part_range(&self.arena, off, Part::User);
            if let Some((slot, _)) = self.users.find(
                &self.arena,
                Part::User,
                &self.arena[a..b],
                hash_key(&self.arena[a..b]),
            ) {
                self.user_counts[slot] = self.user_counts[slot].saturating_sub(1);
                if self.user_counts[slot] == 0 {
                    self.users.remove_slot(
                        &self.arena,
                        Part::User,
                        slot,
                        Some(&mut self.user_counts),
                    );
                }
            }
            // A damaged record (from a checkpoint) clips to nothing: count none.
            self.garbage += b.saturating_sub(off);
        }
        let Some((name, cluster)) = rec else {
            return Ok(());
        };
        let off = self.append_record(id, name, cluster)?;
        self.index_new(off, id_hash, hash_key(name), name);
        Ok(())
    }

    /// Appends the record of an app to the arena (not indexed yet) and returns its offset.
    fn append_record(&mut self, id: &[u8], name: &[u8], cluster: u16) -> Result<usize, BuildError> {
        let off = self.arena.len();
        if off + 2 + id.len() + name.len() > u32::MAX as usize {
            return Err(BuildError::TooLarge);
        }
        self.arena.extend_from_slice(&cluster.to_le_bytes());
        self.arena.extend_from_slice(id);
        self.arena.extend_from_slice(name);
        Ok(off)
    }

    /// A base of the parts a checkpoint holds (see [`Base::raw_parts`]), no garbage counted.
    /// Unchecked: the caller calls [`Base::validate`] before any lookup.
    pub(crate) fn from_raw_parts(
        arena: Vec<u8>,
        [ids, names, users]: [Index; 3],
        user_counts: Vec<u32>,
    ) -> Base {
        Base {
            arena,
            ids,
            names,
            users,
            user_counts,
            garbage: 0,
        }
    }

    /// What a checkpoint saves of this base: the arena, the id, name and user indexes, and the
    /// apps per user beside each user slot.
    pub(crate) fn raw_parts(&self) -> (&[u8], [&Index; 3], &[u32]) {
        (
            &self.arena,
            [&self.ids, &self.names, &self.users],
            &self.user_counts,
        )
    }

    /// Arena bytes no record uses.
    pub fn garbage(&self) -> usize {
        self.garbage
    }

    /// Arena bytes.
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Asks the CPU to fetch the home slot of `hash` in the index `which`.
    #[inline]
    pub(crate) fn prefetch_slot(&self, which: Which, hash: u64) {
        if let Some(slot) = self.index(which).home_slot(hash) {
            prefetch(slot as *const u64 as *const u8);
        }
    }

    /// Asks the CPU to fetch the record that the home slot of `hash` in `which` points to, when
    /// its tag matches.
    #[inline]
    pub(crate) fn prefetch_record(&self, which: Which, hash: u64) {
        let Some(&s) = self.index(which).home_slot(hash) else {
            return;
        };
        if s != 0 && s & 0xffff_ffff == hash & 0xffff_ffff {
            if let Some(b) = self.arena.get((s >> 32) as usize) {
                prefetch(b);
            }
        }
    }

    fn index(&self, which: Which) -> &Index {
        match which {
            Which::Ids => &self.ids,
            Which::Names => &self.names,
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

    /// The highest cluster index of an app (`None`: no app). Reads every record the id index
    /// points to (garbage records left by patches are not looked at), fetching each a few
    /// slots ahead, and a large table's slots in parallel parts: at 10M apps about a tenth of
    /// a second of random reads, spread over the CPUs.
    pub fn max_cluster(&self) -> Option<u16> {
        self.max_cluster_in_parts(1 << 20)
    }

    /// `max_cluster`, with at most `part` slots per thread.
    fn max_cluster_in_parts(&self, part: usize) -> Option<u16> {
        let slots = self.ids.slots();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
            .min(slots.len().div_ceil(part.max(1)));
        if threads <= 1 {
            return self.max_cluster_of(slots);
        }
        let chunk = slots.len().div_ceil(threads);
        std::thread::scope(|s| {
            let mut max = None;
            let mut running = Vec::with_capacity(threads);
            for part in slots.chunks(chunk) {
                // Where no thread can be had, the part is read here.
                match std::thread::Builder::new()
                    .name("max-cluster".into())
                    .spawn_scoped(s, move || self.max_cluster_of(part))
                {
                    Ok(h) => running.push(h),
                    Err(_) => max = max.max(self.max_cluster_of(part)),
                }
            }
            for h in running {
                max = max.max(h.join().unwrap_or(None));
            }
            max
        })
    }

    /// The highest cluster index of the records `slots` (part of an index) point to.
    fn max_cluster_of(&self, slots: &[u64]) -> Option<u16> {
        const AHEAD: usize = 32;
        let mut max = None;
        for (i, &s) in slots.iter().enumerate() {
            if let Some(&next) = slots.get(i + AHEAD) {
                if next != 0 {
                    if let Some(b) = self.arena.get((next >> 32) as usize) {
                        prefetch(b);
                    }
                }
            }
            if s != 0 {
                let off = (s >> 32) as usize;
                // An offset is checked by `validate`; one that is not (a damaged table) counts
                // as no cluster rather than a panic.
                if let Some(c) = self.arena.get(off..off + 2) {
                    let c = u16::from_le_bytes([c[0], c[1]]);
                    max = Some(max.map_or(c, |m: u16| m.max(c)));
                }
            }
        }
        max
    }

    /// The number of apps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no app.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of distinct users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Asks the kernel to back the large arrays (arena and indexes) with transparent huge
    /// pages: lookups land at random places in tens or hundreds of megabytes, and with 2 MiB
    /// pages most of them hit the TLB. Best effort: where the kernel says no, nothing changes.
    pub fn advise_huge_pages(&self) {
        advise_huge(self.arena.as_ptr(), self.arena.len());
        for index in [&self.ids, &self.names, &self.users] {
            advise_huge(
                index.slots().as_ptr().cast(),
                std::mem::size_of_val(index.slots()),
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
            if index.len() >= index.slots().len() {
                return Err(format!("{name} index is full"));
            }
            let mut used = 0;
            for off in index.offsets() {
                if off == 0 || off + 2 > self.arena.len() {
                    return Err(format!("{name} index points outside the arena ({off})"));
                }
                used += 1;
            }
            // Probes stop at an empty slot: there must be one, and the count that decides
            // when the index grows must be the true one.
            if used != index.len() {
                return Err(format!(
                    "{name} index holds {used} entries but says {}",
                    index.len()
                ));
            }
        }
        if self.user_counts.len() != self.users.slots().len() {
            return Err("user counts do not match the user index".into());
        }
        Ok(())
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + 8 * (self.ids.slots_capacity()
                + self.names.slots_capacity()
                + self.users.slots_capacity())
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

    #[test]
    fn patches_equal_a_fresh_build() {
        // A small index (many collisions and wrap-arounds) patched with moves, renames,
        // deletes and new apps, against the same apps built from scratch.
        let app = |i: u32, gen: u32| {
            (
                id_key_of(&format!("id{i}")),
                name_key_of(&format!("s{i}g{gen}"), &format!("u{}", (i + gen) % 13)),
                ((i + gen) % 7) as u16,
            )
        };
        let mut live: std::collections::BTreeMap<u32, (Vec<u8>, Vec<u8>, u16)> =
            (0..300).map(|i| (i, app(i, 0))).collect();
        let mut b = Base::builder(300);
        for (id, name, c) in live.values() {
            b.push(id, name, *c).unwrap();
        }
        let mut base = b.finish();
        for round in 1..6u32 {
            let mut next = base.copy_with_room(0);
            for i in (round..400).step_by(round as usize + 1) {
                let (id, _, _) = app(i, 0);
                let change = match i % 4 {
                    0 => None,
                    1 => live.get(&i).map(|(_, n, c)| (n.clone(), (c + 1) % 7)),
                    _ => Some((app(i, round).1, app(i, round).2)),
                };
                next.patch(&id, change.as_ref().map(|(n, c)| (&n[..], *c)))
                    .unwrap();
                match change {
                    Some((n, c)) => live.insert(i, (id, n, c)),
                    None => live.remove(&i),
                };
            }
            let mut fresh = Base::builder(live.len());
            for (id, name, c) in live.values() {
                fresh.push(id, name, *c).unwrap();
            }
            let fresh = fresh.finish();
            assert_eq!(next.len(), fresh.len(), "round {round}");
            assert_eq!(next.user_count(), fresh.user_count(), "round {round}");
            for i in 0..400 {
                let (id, _, _) = app(i, 0);
                let want = live.get(&i).map(|(_, _, c)| *c);
                assert_eq!(next.by_id(&id, hash_key(&id)).map(|x| x.0), want, "id{i}");
                for gen in 0..=round {
                    let name = app(i, gen).1;
                    assert_eq!(
                        next.by_name(&name, hash_key(&name)).map(|x| x.0),
                        fresh.by_name(&name, hash_key(&name)).map(|x| x.0),
                        "name of id{i} gen {gen}"
                    );
                }
            }
            for u in 0..13 {
                let t = format!("u{u}");
                let k = [&[t.len() as u8][..], t.as_bytes()].concat();
                assert_eq!(
                    next.user_apps(&k, hash_key(&k)),
                    fresh.user_apps(&k, hash_key(&k)),
                    "user {t}"
                );
            }
            let mut recs: Vec<_> = next
                .records()
                .map(|(a, b, c)| (a.to_vec(), b.to_vec(), c))
                .collect();
            recs.sort();
            let mut want: Vec<_> = live.values().cloned().collect();
            want.sort();
            assert_eq!(recs, want, "round {round}");
            assert!(next.garbage() > 0);
            next.validate().unwrap();
            base = next;
        }
    }

    #[test]
    fn a_name_can_pass_to_another_app_within_one_patch() {
        let (a, b) = (id_key_of("ra"), id_key_of("rb"));
        let (n, other) = (name_key_of("game", "mark"), name_key_of("old", "mark"));
        let mut builder = Base::builder(2);
        builder.push(&a, &n, 1).unwrap();
        builder.push(&b, &other, 2).unwrap();
        let mut base = builder.finish().copy_with_room(0);
        // rb takes the name before ra lets it go: for a moment two records hold it.
        base.patch(&b, Some((&n, 3))).unwrap();
        base.patch(&a, None).unwrap();
        assert_eq!(base.by_name(&n, hash_key(&n)).map(|x| x.0), Some(3));
        assert_eq!(base.by_name(&other, hash_key(&other)), None);
        assert_eq!(base.by_id(&a, hash_key(&a)), None);
        assert_eq!(base.len(), 1);
        assert_eq!(base.user_apps(b"\x04mark", hash_key(b"\x04mark")), 1);
        base.patch(&b, None).unwrap();
        assert_eq!(base.user_count(), 0);
        assert_eq!(base.user_apps(b"\x04mark", hash_key(b"\x04mark")), 0);
    }

    #[test]
    fn max_cluster_looks_at_live_records_only() {
        assert_eq!(Base::default().max_cluster(), None);
        let mut builder = Base::builder(100);
        for i in 0..100u16 {
            let (id, name) = (
                id_key_of(&format!("r{i}")),
                name_key_of("s", &format!("u{i}")),
            );
            builder
                .push(&id, &name, if i == 37 { 900 } else { i % 5 })
                .unwrap();
        }
        let mut base = builder.finish().copy_with_room(0);
        assert_eq!(base.max_cluster(), Some(900));
        // Moved off cluster 900: the old record stays in the arena as garbage.
        let (id, name) = (id_key_of("r37"), name_key_of("s", "u37"));
        base.patch(&id, Some((&name, 2))).unwrap();
        assert_eq!(base.max_cluster(), Some(4));
        base.patch(&id, Some((&name_key_of("t", "u37"), 3)))
            .unwrap();
        assert!(base.garbage() > 0);
        assert_eq!(base.max_cluster(), Some(4));
        // Read in parts, on several threads where there are CPUs for them.
        let (id, name) = (id_key_of("r99"), name_key_of("s", "u99"));
        base.patch(&id, Some((&name, 7))).unwrap();
        for part in [1, 7, 64, 1 << 20] {
            assert_eq!(base.max_cluster_in_parts(part), Some(7), "parts of {part}");
        }
    }
}
