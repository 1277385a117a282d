//! Checkpoints: the whole table (base arena and index slots as they are, plus the overlay) and
//! the feed position it reflects, written atomically (temp file, fsync, rename, fsync of the
//! directory) so that a restart loads it and replays only the changes after it.
//!
//! Layout (little-endian): magic `CLNSCKP1`, version, last sequence number, the journal's
//! position (byte offset, line, and the file's identity: its first line's length and CRC-32,
//! the CRC-32 of the bytes before the offset), a hash probe (to detect a different hash function), cluster names, the
//! arena, the three indexes, user counts, the overlay's entries; a CRC-32 of all of it last.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::feed::durable;
use crate::feed::journal::JournalPos;
use crate::table::base::{with_capacity_huge, Base, Index, Which};
use crate::table::key::{UUID_KEY_LEN, UUID_MARK};
use crate::table::overlay::{Overlay, Owned, Val, IDS, NAMES, USERS};
use crate::table::{hash_key, Table};

const MAGIC: &[u8; 8] = b"CLNSCKP1";
/// Version 2 added the journal's identity to the position.
const VERSION: u32 = 2;

/// Where a checkpoint's feed position is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The last change applied.
    pub last_seq: u64,
    /// For a journal: where the first line not yet read is, and which file that is.
    pub journal: JournalPos,
}

/// A loaded checkpoint.
pub struct Loaded {
    pub table: Table,
    pub position: Position,
    /// The cluster names the table's indexes refer to.
    pub clusters: Vec<String>,
}

struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

fn put_u8(w: &mut impl Write, v: u8) -> io::Result<()> {
    w.write_all(&[v])
}
fn put_u16(w: &mut impl Write, v: u16) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn put_u32(w: &mut impl Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn put_u64(w: &mut impl Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn put_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    put_u8(w, b.len() as u8)?;
    w.write_all(b)
}

fn put_index(w: &mut impl Write, index: &Index) -> io::Result<()> {
    put_u64(w, index.slots.len() as u64)?;
    put_u64(w, index.len as u64)?;
    let mut chunk = Vec::with_capacity(64 * 1024);
    for s in index.slots.chunks(8 * 1024) {
        chunk.clear();
        for v in s {
            chunk.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&chunk)?;
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn get<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}
fn get_u8(r: &mut impl Read) -> io::Result<u8> {
    Ok(get::<1>(r)?[0])
}
fn get_u16(r: &mut impl Read) -> io::Result<u16> {
    Ok(u16::from_le_bytes(get(r)?))
}
fn get_u32(r: &mut impl Read) -> io::Result<u32> {
    Ok(u32::from_le_bytes(get(r)?))
}
fn get_u64(r: &mut impl Read) -> io::Result<u64> {
    Ok(u64::from_le_bytes(get(r)?))
}
fn get_len(r: &mut impl Read, limit: u64, what: &str) -> io::Result<usize> {
    let n = get_u64(r)?;
    if n > limit {
        return Err(bad(format!("{what} count {n} is implausible")));
    }
    Ok(n as usize)
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

fn get_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let n = usize::from(get_u8(r)?);
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// A length-prefixed byte string, borrowed from the input.
fn get_slice<'a>(b: &mut &'a [u8]) -> io::Result<&'a [u8]> {
    let n = usize::from(get_u8(b)?);
    if b.len() < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
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
    Ok(Index { slots, len })
}

fn put_position(w: &mut impl Write, p: &Position) -> io::Result<()> {
    put_u64(w, p.last_seq)?;
    put_u64(w, p.journal.offset)?;
    put_u64(w, p.journal.line)?;
    put_u32(w, p.journal.head_len)?;
    put_u32(w, p.journal.head_crc)?;
    put_u32(w, p.journal.tail_crc)?;
    put_u64(w, p.journal.origin)?;
    put_u64(w, p.journal.first)
}

/// Reads the magic, the version (only this one) and the position.
fn get_header(r: &mut impl Read) -> io::Result<Position> {
    if &get::<8>(r)? != MAGIC {
        return Err(bad("not a clusterns checkpoint"));
    }
    let version = get_u32(r)?;
    if version != VERSION {
        return Err(bad(format!(
            "checkpoint version {version}, expected {VERSION}"
        )));
    }
    get_position(r)
}

fn get_position(r: &mut impl Read) -> io::Result<Position> {
    Ok(Position {
        last_seq: get_u64(r)?,
        journal: JournalPos {
            offset: get_u64(r)?,
            line: get_u64(r)?,
            head_len: get_u32(r)?,
            head_crc: get_u32(r)?,
            tail_crc: get_u32(r)?,
            origin: get_u64(r)?,
            first: get_u64(r)?,
        },
    })
}

/// Reads only the position at the head of a checkpoint, without checking the rest (the
/// `repl` CLI numbers its changes after it). A file that is not a checkpoint of this version
/// is an error.
pub fn read_position(path: &Path) -> io::Result<Position> {
    let mut r = BufReader::with_capacity(256, File::open(path)?);
    get_header(&mut r)
}

/// Writes `table` at `position` to `path` atomically. On any error the temp file is removed.
pub fn write(
    path: &Path,
    table: &Table,
    position: Position,
    clusters: &[String],
) -> io::Result<()> {
    let tmp = durable::beside(path, ".tmp");
    let result = write_to(&tmp, path, table, position, clusters);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_to(
    tmp: &Path,
    path: &Path,
    table: &Table,
    position: Position,
    clusters: &[String],
) -> io::Result<()> {
    let file = File::create(tmp)?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    put_u32(&mut w, VERSION)?;
    put_position(&mut w, &position)?;
    put_u64(&mut w, hash_key(b"clusterns"))?;
    put_u32(&mut w, clusters.len() as u32)?;
    for c in clusters {
        put_bytes(&mut w, c.as_bytes())?;
    }
    let base = table.base();
    put_u64(&mut w, base.arena.len() as u64)?;
    w.write_all(&base.arena)?;
    put_index(&mut w, &base.ids)?;
    put_index(&mut w, &base.names)?;
    put_index(&mut w, &base.users)?;
    put_u64(&mut w, base.user_counts.len() as u64)?;
    for c in &base.user_counts {
        put_u32(&mut w, *c)?;
    }
    let o = table.overlay();
    for map in [IDS, NAMES, USERS] {
        // In the order they were written: a walk forward through the log, where the slots'
        // order jumps about it (a million cache misses at 10M apps).
        let versions = o.versions_in_log_order(map);
        put_u64(&mut w, versions.len() as u64)?;
        for (k, v) in versions.iter().map(|&e| o.version(map, e)) {
            put_bytes(&mut w, &k)?;
            match v {
                Owned::Rec(cluster, other) => {
                    put_u8(&mut w, 1)?;
                    put_bytes(&mut w, &other)?;
                    put_u16(&mut w, cluster)?;
                }
                Owned::Gone => put_u8(&mut w, 0)?,
                Owned::Count(n) => put_u64(&mut w, n as u64)?,
            }
        }
    }
    put_u64(&mut w, table.len() as u64)?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)?;
    durable::sync_dir_of(path)
}

/// Reads a checkpoint. Any damage (truncation, a bad checksum, an inconsistent index, a
/// different hash function) is an error: the caller then replays the whole feed.
pub fn read(path: &Path) -> io::Result<Loaded> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    read_from(BufReader::with_capacity(1 << 20, file), size)
}

/// Reads a checkpoint of `size` bytes from `r` (to its end: trailing bytes are damage), as
/// [`read`] does. No length in the input allocates more than `size` bytes.
pub fn read_from<R: Read>(r: R, size: u64) -> io::Result<Loaded> {
    let mut r = CrcReader {
        inner: r,
        crc: crc32fast::Hasher::new(),
    };
    let position = get_header(&mut r)?;
    if get_u64(&mut r)? != hash_key(b"clusterns") {
        return Err(bad("written with a different hash function"));
    }
    let n = get_u32(&mut r)?;
    if n > u32::from(u16::MAX) {
        return Err(bad("too many clusters"));
    }
    let mut clusters = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        clusters.push(
            String::from_utf8(get_bytes(&mut r)?.to_vec())
                .map_err(|_| bad("cluster name is not UTF-8"))?,
        );
    }
    let arena_len = get_len(&mut r, u64::from(u32::MAX), "arena byte")?;
    let arena = get_vec(&mut r, arena_len, size)?;
    let ids = get_index(&mut r, arena_len, size)?;
    let names = get_index(&mut r, arena_len, size)?;
    let users = get_index(&mut r, arena_len, size)?;
    let nc = get_len(&mut r, users.slots.len() as u64, "user count")?;
    if nc != users.slots.len() {
        return Err(bad("user counts do not match the user index"));
    }
    let mut user_counts = Vec::with_capacity(nc);
    for _ in 0..nc {
        user_counts.push(get_u32(&mut r)?);
    }
    let base = Base {
        arena,
        ids,
        names,
        users,
        user_counts,
        garbage: 0,
    };
    // The rest: the overlay, the app count, and the CRC of everything before it, read at once
    // and checked before it is parsed; parsed from memory, with each entry's slot fetched a
    // few entries ahead (a million random inserts at 10M apps).
    let mut rest = Vec::new();
    (&mut r.inner).take(size).read_to_end(&mut rest)?;
    let Some(body_len) = rest.len().checked_sub(4) else {
        return Err(io::ErrorKind::UnexpectedEof.into());
    };
    let (body, stored) = rest.split_at(body_len);
    r.crc.update(body);
    let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
    if r.crc.clone().finalize() != stored {
        return Err(bad("checksum mismatch"));
    }
    let mut b: &[u8] = body;
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
    let table = Table::from_parts(Arc::new(base), overlay, len);
    Ok(Loaded {
        table,
        position,
        clusters,
    })
}

/// Whether `k` is an id key: a label of 1 to 63 bytes, or a compressed UUID.
fn is_id_key(k: &[u8]) -> bool {
    match k.first() {
        Some(&UUID_MARK) => k.len() == UUID_KEY_LEN,
        _ => is_label(k),
    }
}

/// Whether `k` is one label of 1 to 63 bytes in wire form.
fn is_label(k: &[u8]) -> bool {
    matches!(k.first(), Some(&n) if (1..=63).contains(&n) && k.len() == usize::from(n) + 1)
}

/// Whether `k` is a name key: two labels.
fn is_name_key(k: &[u8]) -> bool {
    match k.first() {
        Some(&n) if usize::from(n) < k.len() => {
            let split = usize::from(n) + 1;
            is_label(&k[..split]) && is_label(&k[split..])
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::default();
        for i in 0..300 {
            t.upsert(
                &format!("r{i}"),
                &format!("u{}", i % 11),
                &format!("s{i}"),
                (i % 3) as u16,
            )
            .unwrap();
        }
        t.upsert("3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c", "mark", "game", 2)
            .unwrap();
        let mut t = Table::from_base(Arc::new(t.fold().unwrap()));
        t.delete("r5").unwrap();
        t.upsert("r6", "renamed", "x", 1).unwrap();
        t.upsert("r900", "new", "y", 0).unwrap();
        t
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a non-empty directory.
        let path = dir.path().join("t.ckpt");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("x"), "x").unwrap();
        assert!(write(&path, &sample(), Position::default(), &["a".into()]).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("t.ckpt")]);
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        let t = sample();
        let pos = Position {
            last_seq: 77,
            journal: JournalPos {
                offset: 1234,
                line: 56,
                head_len: 14,
                head_crc: 0xdead_beef,
                tail_crc: 0x1234_5678,
                origin: 9,
                first: 10,
            },
        };
        let clusters = vec!["a".to_string(), "b".into(), "c".into()];
        write(&path, &t, pos, &clusters).unwrap();
        assert_eq!(read_position(&path).unwrap(), pos);
        let l = read(&path).unwrap();
        assert_eq!(l.position, pos);
        assert_eq!(l.clusters, clusters);
        assert_eq!(l.table.apps(), t.apps());
        assert_eq!(l.table.len(), t.len());
        assert!(!dir.path().join("t.ckpt.tmp").exists());
    }

    #[test]
    fn damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        write(&path, &sample(), Position::default(), &["a".into()]).unwrap();
        let good = fs::read(&path).unwrap();
        // Truncated.
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(read(&path).is_err());
        // A flipped byte in the middle.
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        fs::write(&path, &flipped).unwrap();
        assert!(read(&path).is_err());
        // Not a checkpoint.
        fs::write(&path, b"hello").unwrap();
        assert!(read(&path).is_err());
    }

    /// `good` with the 8-byte little-endian field at `at` (from the end, CRC excluded) set to
    /// `v`, and the CRC made to match.
    fn patched(good: &[u8], at: usize, v: u64) -> Vec<u8> {
        let mut body = good[..good.len() - 4].to_vec();
        let n = body.len();
        body[n - at..n - at + 8].copy_from_slice(&v.to_le_bytes());
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn an_overlay_id_listed_twice_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        let mut t = Table::default();
        t.upsert("r1", "mark", "game", 1).unwrap();
        write(&path, &t, Position::default(), &["a".into(), "b".into()]).unwrap();
        let good = fs::read(&path).unwrap();
        // The id section: a count of 1, then r1's entry (key, record flag, name, cluster 1;
        // key and name with their lengths).
        let entry: Vec<u8> = [
            &b"\x03\x02r1\x01\x0a\x04game\x04mark"[..],
            &1u16.to_le_bytes(),
        ]
        .concat();
        let section = [&1u64.to_le_bytes()[..], &entry].concat();
        let at = good
            .windows(section.len())
            .position(|w| w == section)
            .expect("the id section");
        let mut twice = good[..at].to_vec();
        twice.extend_from_slice(&2u64.to_le_bytes());
        twice.extend_from_slice(&entry);
        twice.extend_from_slice(&good[at + 8..good.len() - 4]);
        let crc = crc32fast::hash(&twice);
        twice.extend_from_slice(&crc.to_le_bytes());
        assert!(read_from(&good[..], good.len() as u64).is_ok());
        let e = read_from(&twice[..], twice.len() as u64).err().unwrap();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }

    #[test]
    fn read_from_checks_what_the_checksum_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        let t = sample();
        write(
            &path,
            &t,
            Position::default(),
            &["a".into(), "b".into(), "c".into()],
        )
        .unwrap();
        let good = fs::read(&path).unwrap();
        let size = good.len() as u64;
        let l = read_from(&good[..], size).unwrap();
        assert_eq!(l.table.apps(), t.apps());
        // The app count, last field before the CRC: one more or one less than the apps.
        for len in [t.len() as u64 + 1, t.len() as u64 - 1, 1 << 40] {
            let e = read_from(&patched(&good, 8, len)[..], size).err().unwrap();
            assert!(e.to_string().contains("app count"), "{e}");
        }
        // An arena length (after the header and the three cluster names) far beyond the
        // file: refused, not allocated.
        let at = 8 + 4 + 5 * 8 + 3 * 4 + 8 + 4 + 3 * 2;
        assert_eq!(
            &good[at..at + 8],
            &(t.base().arena_len() as u64).to_le_bytes()
        );
        let mut hostile = good.clone();
        hostile[at..at + 8].copy_from_slice(&(u64::from(u32::MAX) - 1).to_le_bytes());
        let e = read_from(&hostile[..], size).err().unwrap();
        assert!(e.to_string().contains("announced"), "{e}");
        // Trailing bytes, and a checkpoint cut anywhere.
        let mut long = good.clone();
        long.push(0);
        assert!(read_from(&long[..], size + 1).is_err());
        for cut in (0..good.len()).step_by(7) {
            assert!(read_from(&good[..cut], cut as u64).is_err(), "cut at {cut}");
            // Lengths from the file larger than it are refused before anything is allocated.
            assert!(read_from(&good[..cut], size).is_err(), "cut at {cut}");
        }
        // The same table listing too few clusters for its overlay (r6 moved to cluster 1).
        write(&path, &t, Position::default(), &["a".into()]).unwrap();
        let e = read(&path).err().unwrap();
        assert!(e.to_string().contains("malformed overlay"), "{e}");
    }
}
