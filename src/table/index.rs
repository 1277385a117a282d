//! The base's open-addressing indexes: slot arrays of record offsets into the arena, and the
//! parts of a record they are keyed on.
//!
//! A slot is a `u64`: the record's offset (high 32 bits, 0 = empty) and the low 32 bits of the
//! key's hash as a tag. The home slot comes from the hash's high bits by multiply-shift, so an
//! index can have any size (load factor 0.7 without rounding up to a power of two). Lookups
//! probe linearly, comparing tags before keys; removals shift later entries back.

use crate::table::key::hash_key;
use crate::table::memory::{copy_huge, with_capacity_huge};

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
    slots: Vec<u64>,
    len: usize,
}

impl Index {
    pub(crate) fn with_capacity(n: usize) -> Index {
        // Load factor at most 0.7.
        let cap = (n * 10 / 7 + 1).max(16);
        let mut slots = with_capacity_huge(cap);
        slots.resize(cap, 0);
        Index { slots, len: 0 }
    }

    /// An index of `slots` holding `len` entries (as read from a checkpoint: the caller checks
    /// them, see `Base::validate`).
    pub(crate) fn from_raw(slots: Vec<u64>, len: usize) -> Index {
        Index { slots, len }
    }

    /// A copy, in memory advised for huge pages before it is written.
    pub(crate) fn copy_huge(&self) -> Index {
        Index {
            slots: copy_huge(&self.slots, 0),
            len: self.len,
        }
    }

    /// The slot array.
    #[inline]
    pub(crate) fn slots(&self) -> &[u64] {
        &self.slots
    }

    /// The number of entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (for heap accounting).
    pub(crate) fn slots_capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The home slot of `hash` (what a lookup of it reads first).
    #[inline]
    pub(crate) fn home_slot(&self, hash: u64) -> Option<&u64> {
        self.slots.get(self.home(hash))
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

    /// The first slot on `hash`'s probe path whose entry has `hash`'s tag and whose record
    /// offset satisfies `hit`: its index and that offset.
    #[inline]
    fn probe(&self, hash: u64, mut hit: impl FnMut(usize) -> bool) -> Option<(usize, usize)> {
        let tag = hash & 0xffff_ffff;
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s & 0xffff_ffff == tag {
                let off = (s >> 32) as usize;
                if hit(off) {
                    return Some((i, off));
                }
            }
            i = self.next(i);
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
        self.probe(hash, |off| {
            let (a, b) = part_range(arena, off, part);
            &arena[a..b] == key
        })
    }

    /// Whether one more entry would pass the load factor.
    pub(crate) fn full(&self) -> bool {
        (self.len + 1) * 10 > self.slots.len() * 7
    }

    /// Places the record at `off` whose key hashes to `hash` (known to be absent).
    pub(crate) fn insert_new(&mut self, off: usize, hash: u64) -> usize {
        let mut i = self.home(hash);
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = (off as u64) << 32 | (hash & 0xffff_ffff);
        self.len += 1;
        i
    }

    /// Doubles the slot array, re-placing every entry; `counts` (if any) moves along.
    pub(crate) fn grow(&mut self, arena: &[u8], part: Part, counts: Option<&mut Vec<u32>>) {
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

    /// The slot holding the record at `off` under a key with hash `hash`.
    pub(crate) fn slot_of(&self, hash: u64, off: usize) -> Option<usize> {
        self.probe(hash, |o| o == off).map(|(i, _)| i)
    }

    /// Empties slot `i`, moving later entries of its probe run back so that every entry stays
    /// reachable from its home slot (backward-shift deletion); `counts` (if any) move along.
    pub(crate) fn remove_slot(
        &mut self,
        arena: &[u8],
        part: Part,
        i: usize,
        mut counts: Option<&mut [u32]>,
    ) {
        let mut hole = i;
        let mut j = i;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let (a, b) = part_range(arena, (s >> 32) as usize, part);
            let home = self.home(hash_key(&arena[a..b]));
            // The entry at `j` stays unless its home lies outside (hole, j], cyclically.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = s;
                if let Some(c) = counts.as_deref_mut() {
                    c[hole] = c[j];
                }
                hole = j;
            }
        }
        self.slots[hole] = 0;
        if let Some(c) = counts {
            c[hole] = 0;
        }
        self.len = self.len.saturating_sub(1);
    }

    /// Offsets of every record in the index.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != 0)
            .map(|&s| (s >> 32) as usize)
    }
}
