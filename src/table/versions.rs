//! Append-only multi-version hash maps: the store behind the overlay.
//!
//! One writer (the builder) appends versions of keys; any number of readers look keys up at
//! the same time, each at its own *horizon* (the number of versions its snapshot was taken
//! at), and see exactly the versions appended before it. Nothing a reader can see is ever
//! changed or freed while the log lives, so a change costs a few word writes (no path
//! copying, no allocation) and publishing a snapshot copies nothing but a number.
//!
//! Three maps share one log of versions and one word arena for key bytes: `IDS` (id key ->
//! name key + cluster, or gone), `NAMES` (name key -> id key + cluster, or gone) and `USERS`
//! (user label -> difference of its app count to the base). Each map is an open-addressing
//! table of slots, `tag << 32 | newest version + 1`; a version links to the key's previous
//! one, and a reader walks that chain down to its horizon. Sharing is by atomics only: the
//! writer stores a version's words first and links it into its slot with `Release`; a reader
//! loads slots with `Acquire`, so whatever a slot leads to is complete.
//!
//! One `unsafe` block, in `zeroed`: a zeroed `Box<[u64]>` reinterpreted as `[AtomicU64]` (same
//! size, alignment and bit validity), so that the slot and word arrays come from the
//! allocator's zeroed pages instead of being written element by element (untouched pages then
//! cost no resident memory). Its prefetch hints go through `memory::prefetch`, whose `unsafe`
//! is there.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Map numbers.
pub const IDS: usize = 0;
pub const NAMES: usize = 1;
pub const USERS: usize = 2;
const MAPS: usize = 3;

/// Words per version: [key offset | key len << 32 | aux len << 40 | present << 48],
/// [previous version + 1 | cluster << 32], [aux offset, or a count].
const ENTRY_WORDS: usize = 3;

/// The longest key or aux value (two labels of up to 63 bytes with their length bytes).
pub const MAX_BYTES: usize = 128;

/// What a version says of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val<'a> {
    /// The key is gone (hides a base entry).
    Gone,
    /// A record: its cluster and the other key (name of an id, id of a name).
    Rec { cluster: u16, aux: &'a [u8] },
    /// A number (a user's app-count difference).
    Count(i64),
}

/// Why a version could not be appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutError {
    /// Another version was appended after the caller's horizon: its view is not the newest.
    Stale,
    /// No room: the log must be rebuilt larger.
    Full,
    /// A key or aux value longer than `MAX_BYTES`.
    TooLong,
}

/// A short owned byte string read out of the log.
#[derive(Clone, Copy)]
pub struct Bytes {
    len: u8,
    buf: [u8; MAX_BYTES],
}

impl Bytes {
    fn new() -> Bytes {
        Bytes {
            len: 0,
            buf: [0; MAX_BYTES],
        }
    }
}

impl From<&[u8]> for Bytes {
    /// The first `MAX_BYTES` of `v`. Table keys are never longer; only a damaged checkpoint's
    /// record can be, and it is cut, not a panic.
    fn from(v: &[u8]) -> Bytes {
        let mut b = Bytes::new();
        let n = v.len().min(MAX_BYTES);
        b.buf[..n].copy_from_slice(&v[..n]);
        b.len = n as u8;
        b
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Zeroed atomics, from the allocator's zeroed memory: untouched pages cost no resident memory.
fn zeroed(n: usize) -> Box<[AtomicU64]> {
    // `vec![0; n]` asks the allocator for zeroed memory (calloc, fresh pages for large sizes);
    // a `map(|_| AtomicU64::new(0))` would write every page.
    let v: Box<[u64]> = vec![0u64; n].into_boxed_slice();
    const _: () = assert!(
        std::mem::size_of::<u64>() == std::mem::size_of::<AtomicU64>()
            && std::mem::align_of::<u64>() == std::mem::align_of::<AtomicU64>()
    );
    // SAFETY: `AtomicU64` has the same size and bit validity as `u64` (documented), and the
    // same alignment here (asserted above), so the allocation is a valid `[AtomicU64]` of the
    // same layout and is freed with it. Measured: converting element by element writes every
    // page (hundreds of megabytes resident at 10M apps before any change arrives).
    unsafe { Box::from_raw(Box::into_raw(v) as *mut [AtomicU64]) }
}

/// The log: three maps over one version log.
pub struct Log {
    slots: [Box<[AtomicU64]>; MAPS],
    mask: usize,
    entries: Box<[AtomicU64]>,
    words: Box<[AtomicU64]>,
    /// Versions appended (the writer's horizon); claimed by compare-and-swap, so that only a
    /// holder of the newest view can append.
    len: AtomicU32,
    used_words: AtomicUsize,
    keys: [AtomicUsize; MAPS],
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Log({} versions, {} slots per map)",
            self.len(),
            self.mask + 1
        )
    }
}

/// Key bytes as little-endian words, zero-padded.
#[inline]
fn word_of(bytes: &[u8], i: usize) -> u64 {
    let chunk = &bytes[i * 8..bytes.len().min(i * 8 + 8)];
    let mut w = [0u8; 8];
    w[..chunk.len()].copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

fn words_for(len: usize) -> usize {
    len.div_ceil(8)
}

impl Log {
    /// A log for about `keys` keys per map (slots for twice that) and `versions` versions.
    pub fn with_capacity(keys: usize, versions: usize) -> Log {
        let slots = (keys.max(64) * 2).next_power_of_two();
        let versions = versions.clamp(64, u32::MAX as usize / 2);
        Log {
            slots: [zeroed(slots), zeroed(slots), zeroed(slots)],
            mask: slots - 1,
            entries: zeroed(versions * ENTRY_WORDS),
            // Keys are new to the log at most once per version, with one aux value each.
            words: zeroed(versions * 6),
            len: AtomicU32::new(0),
            used_words: AtomicUsize::new(0),
            keys: Default::default(),
        }
    }

    /// Versions appended so far.
    pub fn len(&self) -> u32 {
        self.len.load(Ordering::Acquire)
    }

    /// How many versions it can hold.
    pub fn capacity(&self) -> usize {
        self.entries.len() / ENTRY_WORDS
    }

    /// How full the log is, from 0 to 1: the largest share used of its versions, its words
    /// and any map's keys (a put that finds one of them exhausted fails with `Full`).
    pub fn fill(&self) -> f64 {
        let share = |used: usize, cap: usize| used as f64 / cap.max(1) as f64;
        let keys = self
            .keys
            .iter()
            .map(|k| k.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        share(self.len() as usize, self.capacity())
            .max(share(
                self.used_words.load(Ordering::Relaxed),
                self.words.len(),
            ))
            .max(share(keys, self.key_capacity()))
    }

    /// Keys a map can hold before the log must be rebuilt larger.
    pub fn key_capacity(&self) -> usize {
        (self.mask + 1) * 5 / 8
    }

    #[inline]
    fn entry(&self, e: u32, w: usize) -> u64 {
        self.entries[e as usize * ENTRY_WORDS + w].load(Ordering::Relaxed)
    }

    #[inline]
    fn bytes_eq(&self, off: usize, len: usize, key: &[u8]) -> bool {
        len == key.len()
            && (0..words_for(len))
                .all(|i| self.words[off + i].load(Ordering::Relaxed) == word_of(key, i))
    }

    fn read_bytes(&self, off: usize, len: usize) -> Bytes {
        let mut b = Bytes::new();
        b.len = len as u8;
        for i in 0..words_for(len) {
            let w = self.words[off + i].load(Ordering::Relaxed).to_le_bytes();
            let n = (len - i * 8).min(8);
            b.buf[i * 8..i * 8 + n].copy_from_slice(&w[..n]);
        }
        b
    }

    /// Where `key` (hash `hash`) sits in `map`: its slot index and the slot's value, or the
    /// empty slot it would take.
    #[inline]
    pub fn probe(&self, map: usize, key: &[u8], hash: u64) -> (usize, u64) {
        let slots = &self.slots[map];
        let tag = hash >> 32;
        let mut pos = hash as usize & self.mask;
        loop {
            let s = slots[pos].load(Ordering::Acquire);
            if s == 0 {
                return (pos, 0);
            }
            if s >> 32 == tag {
                let head = s as u32 - 1;
                let w0 = self.entry(head, 0);
                if self.bytes_eq(w0 as u32 as usize, (w0 >> 32) as u8 as usize, key) {
                    return (pos, s);
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Asks the CPU to fetch the home slot of `hash` in `map` (a hint, for the builder).
    #[inline]
    pub fn prefetch_home(&self, map: usize, hash: u64) {
        let slots = &self.slots[map];
        if let Some(s) = slots.get(hash as usize & self.mask) {
            super::memory::prefetch(s as *const AtomicU64 as *const u8);
        }
    }

    /// Asks the CPU to fetch the newest version the home slot of `hash` in `map` leads to,
    /// when the slot's tag matches (after `prefetch_home`, once the slot is here).
    #[inline]
    pub fn prefetch_head(&self, map: usize, hash: u64) {
        let Some(slot) = self.slots[map].get(hash as usize & self.mask) else {
            return;
        };
        let s = slot.load(Ordering::Relaxed);
        if s != 0 && s >> 32 == hash >> 32 {
            let head = (s as u32 - 1) as usize;
            if let Some(e) = self.entries.get(head * ENTRY_WORDS) {
                super::memory::prefetch(e as *const AtomicU64 as *const u8);
            }
        }
    }

    /// The newest version at or below a chain's head that is older than `horizon`.
    #[inline]
    pub fn visible(&self, head: u32, horizon: u32) -> Option<u32> {
        let mut e = head;
        while e >= horizon {
            let prev = self.entry(e, 1) as u32;
            if prev == 0 {
                return None;
            }
            e = prev - 1;
        }
        Some(e)
    }

    /// The version of `key` that a reader at `horizon` sees.
    #[inline]
    pub fn find(&self, map: usize, key: &[u8], hash: u64, horizon: u32) -> Option<u32> {
        match self.probe(map, key, hash) {
            (_, 0) => None,
            (_, s) => self.visible(s as u32 - 1, horizon),
        }
    }

    /// Version `e`'s cluster, or `None` when it says the key is gone.
    #[inline]
    pub fn cluster(&self, e: u32) -> Option<u16> {
        if self.entry(e, 0) >> 48 & 1 == 0 {
            None
        } else {
            Some((self.entry(e, 1) >> 32) as u16)
        }
    }

    /// Version `e`'s count.
    #[inline]
    pub fn count(&self, e: u32) -> i64 {
        self.entry(e, 2) as i64
    }

    /// Version `e`'s key.
    pub fn key(&self, e: u32) -> Bytes {
        let w0 = self.entry(e, 0);
        self.read_bytes(w0 as u32 as usize, (w0 >> 32) as u8 as usize)
    }

    /// Whether version `e` is a record whose aux value is `bytes`.
    pub fn aux_is(&self, e: u32, bytes: &[u8]) -> bool {
        let w0 = self.entry(e, 0);
        w0 >> 48 & 1 == 1
            && self.bytes_eq(self.entry(e, 2) as usize, (w0 >> 40) as u8 as usize, bytes)
    }

    /// Version `e`'s record (cluster and aux value), or `None` when the key is gone.
    pub fn record(&self, e: u32) -> Option<(u16, Bytes)> {
        let cluster = self.cluster(e)?;
        let w0 = self.entry(e, 0);
        let aux = self.read_bytes(self.entry(e, 2) as usize, (w0 >> 40) as u8 as usize);
        Some((cluster, aux))
    }

    /// Appends a version of `key` in `map` for a writer whose view is `horizon` (which must be
    /// the newest); on success the writer's horizon is `horizon + 1`. Returns whether the key
    /// is new to the map.
    pub fn put(
        &self,
        map: usize,
        key: &[u8],
        hash: u64,
        horizon: u32,
        val: Val<'_>,
    ) -> Result<bool, PutError> {
        self.put_hinted(map, key, hash, horizon, val, None)
    }

    /// `put`, with what an earlier `probe` of the same key returned (used when the slot still
    /// holds what it held then).
    pub fn put_hinted(
        &self,
        map: usize,
        key: &[u8],
        hash: u64,
        horizon: u32,
        val: Val<'_>,
        hint: Option<(usize, u64)>,
    ) -> Result<bool, PutError> {
        let aux = match val {
            Val::Rec { aux, .. } => aux,
            _ => &[],
        };
        if key.len() > MAX_BYTES || aux.len() > MAX_BYTES {
            return Err(PutError::TooLong);
        }
        if self.len.load(Ordering::Acquire) != horizon {
            return Err(PutError::Stale);
        }
        let (pos, slot) = match hint {
            Some((pos, slot)) if self.slots[map][pos].load(Ordering::Acquire) == slot => {
                (pos, slot)
            }
            _ => self.probe(map, key, hash),
        };
        let prev = if slot == 0 {
            None
        } else {
            Some(slot as u32 - 1)
        };
        // Reuse the previous version's key words, and its aux words when they are the same.
        let (key_off, new_key_words) = match prev {
            Some(p) => (self.entry(p, 0) as u32 as usize, 0),
            None => (usize::MAX, words_for(key.len())),
        };
        let reuse_aux = match (prev, val) {
            (Some(p), Val::Rec { .. }) => {
                let w0 = self.entry(p, 0);
                let aux_len = (w0 >> 40) as u8 as usize;
                (w0 >> 48 & 1 == 1 && self.bytes_eq(self.entry(p, 2) as usize, aux_len, aux))
                    .then(|| self.entry(p, 2) as usize)
            }
            _ => None,
        };
        let new_aux_words = if reuse_aux.is_some() {
            0
        } else {
            words_for(aux.len())
        };
        let used = self.used_words.load(Ordering::Relaxed);
        if horizon as usize + 1 > self.capacity()
            || used + new_key_words + new_aux_words > self.words.len()
            || (prev.is_none() && self.keys[map].load(Ordering::Relaxed) + 1 > self.key_capacity())
        {
            return Err(PutError::Full);
        }
        if self
            .len
            .compare_exchange(horizon, horizon + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(PutError::Stale);
        }
        // This thread now owns version `horizon` and the words after `used`.
        let mut next_word = used;
        let mut write = |bytes: &[u8]| {
            let off = next_word;
            for i in 0..words_for(bytes.len()) {
                self.words[off + i].store(word_of(bytes, i), Ordering::Relaxed);
            }
            next_word += words_for(bytes.len());
            off
        };
        let key_off = if prev.is_some() { key_off } else { write(key) };
        let (present, cluster, w2) = match val {
            Val::Gone => (0u64, 0u16, 0u64),
            Val::Rec { cluster, aux } => {
                let off = reuse_aux.unwrap_or_else(|| write(aux));
                (1, cluster, off as u64)
            }
            Val::Count(n) => (1, 0, n as u64),
        };
        self.used_words.store(next_word, Ordering::Relaxed);
        let e = horizon as usize * ENTRY_WORDS;
        self.entries[e].store(
            key_off as u64 | (key.len() as u64) << 32 | (aux.len() as u64) << 40 | present << 48,
            Ordering::Relaxed,
        );
        self.entries[e + 1].store(
            prev.map_or(0, |p| u64::from(p) + 1) | u64::from(cluster) << 32,
            Ordering::Relaxed,
        );
        self.entries[e + 2].store(w2, Ordering::Relaxed);
        self.slots[map][pos].store(
            (hash >> 32) << 32 | u64::from(horizon + 1),
            Ordering::Release,
        );
        if prev.is_none() {
            self.keys[map].fetch_add(1, Ordering::Relaxed);
        }
        Ok(prev.is_none())
    }

    /// Every key of `map` that a reader at `horizon` sees, with its visible version.
    pub fn visible_keys(&self, map: usize, horizon: u32) -> impl Iterator<Item = u32> + '_ {
        self.slots[map].iter().filter_map(move |s| {
            let s = s.load(Ordering::Acquire);
            if s == 0 {
                None
            } else {
                self.visible(s as u32 - 1, horizon)
            }
        })
    }

    /// Version `e` as a value to put elsewhere, in `map`'s terms, with its key.
    pub fn copy_of(&self, map: usize, e: u32) -> (Bytes, Owned) {
        let val = if map == USERS {
            Owned::Count(self.count(e))
        } else {
            match self.record(e) {
                Some((cluster, aux)) => Owned::Rec(cluster, aux),
                None => Owned::Gone,
            }
        };
        (self.key(e), val)
    }
}

/// A version's value, owned.
#[derive(Clone, Copy, Debug)]
pub enum Owned {
    Gone,
    Rec(u16, Bytes),
    Count(i64),
}

impl Owned {
    /// As a value to put.
    pub fn as_val(&self) -> Val<'_> {
        match self {
            Owned::Gone => Val::Gone,
            Owned::Rec(cluster, aux) => Val::Rec {
                cluster: *cluster,
                aux,
            },
            Owned::Count(n) => Val::Count(*n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::key::hash_key;

    fn put(log: &Log, h: &mut u32, map: usize, key: &[u8], val: Val<'_>) -> bool {
        let new = log.put(map, key, hash_key(key), *h, val).unwrap();
        *h += 1;
        new
    }

    #[test]
    fn fill_is_the_fullest_of_versions_and_keys() {
        let log = Log::with_capacity(16, 64);
        let mut h = 0;
        assert_eq!(log.fill(), 0.0);
        // One key changed 32 times: half the versions, one key.
        for i in 0..32u16 {
            put(
                &log,
                &mut h,
                IDS,
                b"k",
                Val::Rec {
                    cluster: i % 8,
                    aux: b"a",
                },
            );
        }
        assert!((log.fill() - 0.5).abs() < 1e-9, "{}", log.fill());
        // Every key a map can hold, in a log with room for many more versions: the keys are
        // what is full.
        let log = Log::with_capacity(16, 4096);
        let mut h = 0;
        let cap = log.key_capacity();
        for i in 0..cap {
            let key = format!("key{i}");
            put(&log, &mut h, NAMES, key.as_bytes(), Val::Gone);
        }
        assert!((log.fill() - 1.0).abs() < 1e-9, "{}", log.fill());
        assert!(log
            .put(NAMES, b"one more", hash_key(b"one more"), h, Val::Gone)
            .is_err());
    }

    #[test]
    fn readers_see_exactly_their_horizon() {
        let log = Log::with_capacity(16, 64);
        let mut h = 0;
        assert!(put(
            &log,
            &mut h,
            IDS,
            b"\x02r1",
            Val::Rec {
                cluster: 1,
                aux: b"\x04game\x04mark"
            }
        ));
        let h1 = h;
        assert!(!put(
            &log,
            &mut h,
            IDS,
            b"\x02r1",
            Val::Rec {
                cluster: 5,
                aux: b"\x04game\x04mark"
            }
        ));
        let h2 = h;
        put(&log, &mut h, IDS, b"\x02r1", Val::Gone);
        let k = b"\x02r1";
        let hash = hash_key(k);
        assert_eq!(log.find(IDS, k, hash, 0), None);
        let e1 = log.find(IDS, k, hash, h1).unwrap();
        assert_eq!(log.cluster(e1), Some(1));
        assert_eq!(&*log.record(e1).unwrap().1, b"\x04game\x04mark");
        assert_eq!(log.cluster(log.find(IDS, k, hash, h2).unwrap()), Some(5));
        let gone = log.find(IDS, k, hash, h).unwrap();
        assert_eq!(log.cluster(gone), None);
        assert_eq!(log.record(gone).map(|r| r.0), None);
        assert_eq!(&*log.key(gone), k);
        // Other maps and other keys are separate.
        assert_eq!(log.find(NAMES, k, hash, h), None);
        assert_eq!(log.find(IDS, b"\x02r2", hash_key(b"\x02r2"), h), None);
        // The key and the unchanged aux value were stored once.
        assert_eq!(log.used_words.load(Ordering::Relaxed), 1 + 2);
    }

    #[test]
    fn only_the_newest_view_appends_and_a_full_log_says_so() {
        let log = Log::with_capacity(4, 1024);
        let mut h = 0;
        put(&log, &mut h, USERS, b"\x04mark", Val::Count(3));
        assert_eq!(
            log.put(USERS, b"\x04mark", hash_key(b"\x04mark"), 0, Val::Count(1)),
            Err(PutError::Stale)
        );
        let e = log
            .find(USERS, b"\x04mark", hash_key(b"\x04mark"), h)
            .unwrap();
        assert_eq!(log.count(e), 3);
        let cap = log.key_capacity();
        for i in 1..cap {
            let k = [1, i as u8];
            put(&log, &mut h, USERS, &k, Val::Count(-1));
        }
        assert_eq!(
            log.put(USERS, &[1, 200], hash_key(&[1, 200]), h, Val::Count(1)),
            Err(PutError::Full)
        );
        // An existing key still takes new versions.
        put(&log, &mut h, USERS, b"\x04mark", Val::Count(4));
        assert_eq!(log.visible_keys(USERS, h).count(), cap);
        assert_eq!(
            log.put(IDS, &[0; 129], 1, h, Val::Gone),
            Err(PutError::TooLong)
        );
    }

    #[test]
    fn long_keys_and_colliding_hashes_stay_apart() {
        let log = Log::with_capacity(64, 256);
        let mut h = 0;
        let long: Vec<u8> = (0..MAX_BYTES as u8).collect();
        // The same hash for every key: all of them share one probe sequence and tag.
        for i in 0..40u8 {
            let mut k = long.clone();
            k[0] = i;
            log.put(
                NAMES,
                &k[..usize::from(i) + 80],
                7,
                h,
                Val::Rec {
                    cluster: u16::from(i),
                    aux: &k[..9],
                },
            )
            .unwrap();
            h += 1;
        }
        for i in 0..40u8 {
            let mut k = long.clone();
            k[0] = i;
            let e = log.find(NAMES, &k[..usize::from(i) + 80], 7, h).unwrap();
            let (c, aux) = log.record(e).unwrap();
            assert_eq!(c, u16::from(i));
            assert_eq!(&*aux, &k[..9]);
            assert_eq!(&*log.key(e), &k[..usize::from(i) + 80]);
        }
    }

    #[test]
    fn concurrent_readers_see_complete_versions() {
        let log = std::sync::Arc::new(Log::with_capacity(1024, 1 << 16));
        let published = std::sync::Arc::new(AtomicU32::new(0));
        let reader = {
            let (log, published) = (log.clone(), published.clone());
            std::thread::spawn(move || {
                let mut checks = 0u64;
                loop {
                    let h = published.load(Ordering::Acquire);
                    for i in 0..32u32 {
                        let k = [2, b'r', i as u8];
                        if let Some(e) = log.find(IDS, &k, hash_key(&k), h) {
                            // Every version of key i names cluster i % 8 and the same aux.
                            let (c, aux) = log.record(e).unwrap();
                            assert_eq!(u32::from(c) % 8, i % 8);
                            assert_eq!(&*aux, &[1, i as u8]);
                            assert!(e < h);
                            checks += 1;
                        }
                    }
                    if h as usize >= 20_000 {
                        return checks;
                    }
                }
            })
        };
        let mut h = 0u32;
        for n in 0..20_000u32 {
            let i = n % 32;
            let k = [2, b'r', i as u8];
            let cluster = (i % 8 + 8 * (n % 5)) as u16;
            log.put(
                IDS,
                &k,
                hash_key(&k),
                h,
                Val::Rec {
                    cluster,
                    aux: &[1, i as u8],
                },
            )
            .unwrap();
            h += 1;
            published.store(h, Ordering::Release);
        }
        assert!(reader.join().unwrap() > 0);
    }
}
