//! The table's on-disk form, as a checkpoint holds it between its header and its CRC: a hash
//! probe (to detect a different hash function), the cluster names, the base as it is in
//! memory (arena, the three index slot arrays, user counts), the overlay's entries in log
//! order, and the app count. Little-endian throughout (see [`super::le`]).
//!
//! Reading is in two steps so that the caller can check its checksum in between: [`read_head`]
//! streams the large arrays (the cluster names and the base), then [`Head::finish`] parses the
//! rest (overlay and app count) from memory once the caller has verified it. Every length from
//! the input is bounded by the input's size, and anything the checksum cannot vouch for
//! (shapes of keys, clusters listed, counts) is checked: a damaged file is an error, never a
//! panic nor an absurd allocation.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::table::base::{Base, Which};
use crate::table::health::{HealthStore, MAX_REPORTS};
use crate::table::index::Index;
use crate::table::key::{hash_key, is_id_key, is_label, is_name_key};
use crate::table::le::{
    bad, get_bytes, get_len, get_slice, get_u16, get_u32, get_u64, get_u8, put_bytes, put_u16,
    put_u32, put_u64, put_u8,
};
use crate::table::memory::with_capacity_huge;
use crate::table::overlay::{Overlay, Owned, Val, IDS, NAMES, USERS};
use crate::table::Table;

/// Writes `table` and the cluster names its indexes refer to.
pub(crate) fn write(w: &mut impl Write, table: &Table, clusters: &[String]) -> io::Result<()> {
    put_u64(w, hash_key(b"clusterns"))?;
    put_u32(w, clusters.len() as u32)?;
    for c in clusters {
        put_bytes(w, c.as_bytes())?;
    }
    let (arena, indexes, user_counts) = table.base().raw_parts();
    put_u64(w, arena.len() as u64)?;
    w.write_all(arena)?;
    for index in indexes {
        put_index(w, index)?;
    }
    put_u64(w, user_counts.len() as u64)?;
    for c in user_counts {
        put_u32(w, *c)?;
    }
    let o = table.overlay();
    for map in [IDS, NAMES, USERS] {
        // In the order they were written: a walk forward through the log, where the slots'
        // order jumps about it (a million cache misses at 10M apps).
        let versions = o.versions_in_log_order(map);
        put_u64(w, versions.len() as u64)?;
        for (k, v) in versions.iter().map(|&e| o.version(map, e)) {
            put_bytes(w, &k)?;
            match v {
                Owned::Rec(cluster, other) => {
                    put_u8(w, 1)?;
                    put_bytes(w, &other)?;
                    put_u16(w, cluster)?;
                }
                Owned::Gone => put_u8(w, 0)?,
                Owned::Count(n) => put_u64(w, n as u64)?,
            }
        }
    }
    put_u64(w, table.len() as u64)
}

/// The health reports (a checkpoint's, from version 4): their number (u32), then each: checker
/// and cluster (u8 length, bytes), the address (u8 family 4 or 6, then 4 or 16 bytes), up
/// (u8 0 or 1), until (u64).
pub(crate) fn write_health(w: &mut impl Write, health: &HealthStore) -> io::Result<()> {
    put_u32(w, health.len() as u32)?;
    for r in health.iter() {
        put_bytes(w, r.checker.as_str().as_bytes())?;
        put_bytes(w, r.cluster.as_str().as_bytes())?;
        match r.addr {
            std::net::IpAddr::V4(a) => {
                put_u8(w, 4)?;
                w.write_all(&a.octets())?;
            }
            std::net::IpAddr::V6(a) => {
                put_u8(w, 6)?;
                w.write_all(&a.octets())?;
            }
        }
        put_u8(w, u8::from(r.up))?;
        put_u64(w, r.until)?;
    }
    Ok(())
}

/// Reads what [`write_health`] wrote, checking names (lower-case labels), addresses, states,
/// and that the store takes every report as it is (each checker once per address, within the
/// limits, none withdrawn).
pub(crate) fn read_health(r: &mut impl Read) -> io::Result<HealthStore> {
    let n = get_u32(r)?;
    if n as usize > MAX_REPORTS {
        return Err(bad(format!("{n} health reports (at most {MAX_REPORTS})")));
    }
    let mut store = HealthStore::default();
    for _ in 0..n {
        let mut label = |what: &str| -> io::Result<crate::name::Label> {
            let bytes = get_bytes(r)?;
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| crate::name::check_label(t).ok().filter(|l| l.as_str() == t))
                .ok_or_else(|| {
                    bad(format!(
                        "a health report's {what} is not a lower-case label"
                    ))
                })
        };
        let checker = label("checker")?;
        let cluster = label("cluster")?;
        let addr = match get_u8(r)? {
            4 => std::net::IpAddr::from(crate::table::le::get::<4>(r)?),
            6 => std::net::IpAddr::from(crate::table::le::get::<16>(r)?),
            f => return Err(bad(format!("a health report's address family {f}"))),
        };
        let up = match get_u8(r)? {
            0 => false,
            1 => true,
            v => return Err(bad(format!("a health report's state {v}"))),
        };
        let until = get_u64(r)?;
        if until == 0 {
            return Err(bad("a withdrawn health report (until 0)"));
        }
        let report = crate::health::report::HealthReport {
            checker,
            cluster,
            addr,
            up,
            until,
        };
        let before = store.len();
        store
            .apply(&report)
            .map_err(|e| bad(format!("health report: {e}")))?;
        if store.len() == before {
            return Err(bad(format!(
                "checker {}'s report about {} of {} is listed twice",
                report.checker, report.addr, report.cluster
            )));
        }
    }
    Ok(store)
}

fn put_index(w: &mut impl Write, index: &Index) -> io::Result<()> {
    put_u64(w, index.slots().len() as u64)?;
    put_u64(w, index.len() as u64)?;
    let mut chunk = Vec::with_capacity(64 * 1024);
    for s in index.slots().chunks(8 * 1024) {
        chunk.clear();
        for v in s {
            chunk.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&chunk)?;
    }
    Ok(())
}

/// What [`read_head`] read: the cluster names and the base, not yet validated.
pub(crate) struct Head {
    clusters: Vec<String>,
    base: Base,
}

/// Reads the hash probe, the cluster names and the base from an input of `size` bytes (no
/// length in it allocates more than that).
pub(crate) fn read_head(r: &mut impl Read, size: u64) -> io::Result<Head> {
    if get_u64(r)? != hash_key(b"clusterns") {
        return Err(bad("written with a different hash function"));
    }
    let n = get_u32(r)?;
    if n > u32::from(u16::MAX) {
        return Err(bad("too many clusters"));
    }
    let mut clusters = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        clusters.push(
            String::from_utf8(get_bytes(r)?.to_vec())
                .map_err(|_| bad("cluster name is not UTF-8"))?,
        );
    }
    let arena_len = get_len(r, u64::from(u32::MAX), "arena byte")?;
    let arena = get_vec(r, arena_len, size)?;
    let ids = get_index(r, arena_len, size)?;
    let names = get_index(r, arena_len, size)?;
    let users = get_index(r, arena_len, size)?;
    let nc = get_len(r, users.slots().len() as u64, "user count")?;
    if nc != users.slots().len() {
        return Err(bad("user counts do not match the user index"));
    }
    let mut user_counts = Vec::with_capacity(nc);
    for _ in 0..nc {
        user_counts.push(get_u32(r)?);
    }
    Ok(Head {
        clusters,
        base: Base::from_raw_parts(arena, [ids, names, users], user_counts),
    })
}

/// Reads exactly `n` bytes (`n` at most `size`, the input's length: a hostile length cannot
/// allocate more than the input holds), into memory advised for huge pages before it is
/// written, so that the base needs no collapsing afterwards.
fn get_vec(r: &mut impl Read, n: usize, size: u64) -> io::Result<Vec<u8>> {
    if n as u64 > size {
        return Err(bad(format!(
            "{n} bytes announced in a {size}-byte checkpoint"
        )));
    }
    let mut v = with_capacity_huge(n);
    r.take(n as u64).read_to_end(&mut v)?;
    if v.len() != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(v)
}

fn get_index(r: &mut impl Read, arena_len: usize, size: u64) -> io::Result<Index> {
    // The count comes from the file: no more slots than the input has bytes for.
    let n = get_len(r, size / 8, "slot")?;
    if n == 0 {
        return Err(bad("empty index"));
    }
    let len = get_len(r, n as u64, "entry")?;
    let mut slots = with_capacity_huge(n);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let take = left.min(buf.len() / 8);
        r.read_exact(&mut buf[..take * 8])?;
        for c in buf[..take * 8].chunks_exact(8) {
            let v = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
            if (v >> 32) as usize >= arena_len {
                return Err(bad("index slot points outside the arena"));
            }
            slots.push(v);
        }
        left -= take;
    }
    if slots.iter().filter(|&&s| s != 0).count() != len {
        return Err(bad("index entry count does not match its slots"));
    }
    Ok(Index::from_raw(slots, len))
}

impl Head {
    /// The table and its cluster names: this base, and the overlay and app count parsed from `body` (the rest of
    /// the input, checksum already verified, nothing after it), each overlay entry's slot
    /// fetched a few entries ahead (a million random inserts at 10M apps). Checks what the
    /// checksum cannot: entry shapes, clusters listed, counts, the base's indexes.
    pub(crate) fn finish(self, body: &[u8]) -> io::Result<(Table, Vec<String>)> {
        let Head { clusters, base } = self;
        let mut b = body;
        const AHEAD: usize = 8;
        let mut overlay = Overlay::for_base(base.len());
        // The apps of base plus overlay, counted from the overlay's side as it is read.
        let mut apps = base.len();
        for (map, what) in [
            (IDS, "overlay id"),
            (NAMES, "overlay name"),
            (USERS, "overlay user"),
        ] {
            let count = get_len(&mut b, 1 << 32, what)?;
            let (mut ahead, mut fetched) = (b, 0);
            for i in 0..count {
                while fetched < count.min(i + AHEAD) {
                    let (k, _) = get_entry(&mut ahead, map)?;
                    let hash = hash_key(k);
                    overlay.prefetch_home(map, hash);
                    if map == IDS {
                        base.prefetch_slot(Which::Ids, hash);
                    }
                    fetched += 1;
                }
                let (k, v) = get_entry(&mut b, map)?;
                check_entry(&base, &overlay, map, k, v, clusters.len())?;
                let ids = overlay.len();
                overlay
                    .put(map, k, v)
                    .map_err(|e| bad(format!("malformed {what} entry: {e}")))?;
                if map == IDS {
                    if overlay.len() == ids {
                        return Err(bad("an overlay id is listed twice"));
                    }
                    // Each id once: the base's apps are taken off at most once each.
                    apps = (apps + usize::from(matches!(v, Val::Rec { .. })))
                        .checked_sub(usize::from(base.by_id(k, hash_key(k)).is_some()))
                        .ok_or_else(|| bad("app count below zero"))?;
                }
            }
        }
        let len = get_len(&mut b, 1 << 40, "app")?;
        if !b.is_empty() {
            return Err(bad("trailing bytes"));
        }
        base.validate().map_err(bad)?;
        if len != apps {
            return Err(bad(format!(
                "app count {len} does not match the base and the overlay"
            )));
        }
        Ok((Table::from_parts(Arc::new(base), overlay, len), clusters))
    }
}

/// One overlay entry of `map`: its key and value, borrowed from the input.
fn get_entry<'a>(b: &mut &'a [u8], map: usize) -> io::Result<(&'a [u8], Val<'a>)> {
    let key = get_slice(b)?;
    let val = if map == USERS {
        Val::Count(get_u64(b)? as i64)
    } else if get_u8(b)? == 0 {
        Val::Gone
    } else {
        let aux = get_slice(b)?;
        Val::Rec {
            aux,
            cluster: get_u16(b)?,
        }
    };
    Ok((key, val))
}

/// An overlay entry must have the shape the table relies on (it slices keys by their length
/// bytes), name a cluster the checkpoint lists, and a per-user difference must leave its user
/// with a count between 0 and the number of records (so that updates cannot overflow it).
/// Checked entry by entry as the overlay is read: the base's records are not walked (that
/// would cost start-up time in proportion to the table); base lookups are bounds-safe on their
/// own. The user entries come last, once `overlay` holds every id.
fn check_entry(
    base: &Base,
    overlay: &Overlay,
    map: usize,
    k: &[u8],
    v: Val<'_>,
    clusters: usize,
) -> io::Result<()> {
    match map {
        IDS | NAMES => {
            // An id's record names its name, a name's record its id.
            type Check = fn(&[u8]) -> bool;
            let (key_ok, aux_ok, what, other): (Check, Check, _, _) = if map == IDS {
                (is_id_key, is_name_key, "id", "name")
            } else {
                (is_name_key, is_id_key, "name", "id")
            };
            let ok = key_ok(k)
                && match v {
                    Val::Rec { cluster, aux } => aux_ok(aux) && usize::from(cluster) < clusters,
                    Val::Gone => true,
                    Val::Count(_) => false,
                };
            if !ok {
                return Err(bad(format!(
                    "malformed overlay {what} entry (key, {other}, or a cluster the checkpoint does not list)"
                )));
            }
        }
        _ => {
            let Val::Count(delta) = v else {
                return Err(bad("malformed overlay user entry"));
            };
            if !is_label(k) {
                return Err(bad("malformed overlay user entry"));
            }
            let most = (base.len() + overlay.len()) as i64;
            let count = i64::from(base.user_apps(k, hash_key(k))).saturating_add(delta);
            if !(0..=most).contains(&count) {
                return Err(bad(format!("overlay user count {count} is implausible")));
            }
        }
    }
    Ok(())
}
