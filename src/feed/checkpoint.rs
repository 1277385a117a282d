//! Checkpoints: the whole table (its on-disk form: see `table::persist`) and the feed
//! position it reflects, written atomically (temp file, fsync, rename, fsync of the
//! directory, through `feed::durable`) so that a restart loads it and replays only the
//! changes after it.
//!
//! Layout (little-endian): magic `CLNSCKP1`, version, last sequence number, the journal's
//! position (byte offset, line, and the file's identity: its first line's length and CRC-32,
//! the CRC-32 of the bytes before the offset), from version 3 the ACME challenge records (see
//! `put_acme`), from version 4 the health reports (`table::persist::write_health`), the table (a hash probe, cluster names, the arena, the three indexes, user
//! counts, the overlay's entries, the app count); a CRC-32 of all of it last. A version 2
//! checkpoint still loads, with no challenge records; versions 2 and 3 with no health reports.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::feed::durable;
use crate::feed::journal::JournalPos;
use crate::name::DomainName;
use crate::table::le::{
    bad, get, get_u16, get_u32, get_u64, get_u8, put_u16, put_u32, put_u64, put_u8,
};
use crate::table::{persist, AcmeStore, Clusters, HealthStore, Table};

const MAGIC: &[u8; 8] = b"CLNSCKP1";
/// Version 2 added the journal's identity to the position; version 3 the ACME challenge
/// records; version 4 the health reports.
const VERSION: u32 = 4;
/// The oldest version read.
const OLDEST: u32 = 2;

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

impl Loaded {
    /// The cluster registry the checkpoint lists, or why it is damaged: a name that is not a
    /// label or is listed twice, too many names, or an app of its base on an index beyond
    /// the list (the reader checks the overlay's).
    pub fn registry(&self) -> Result<Clusters, String> {
        let mut names = Vec::with_capacity(self.clusters.len());
        for name in &self.clusters {
            match crate::name::check_label(name) {
                Ok(l) if l.as_str() == name => names.push(l),
                _ => return Err(format!("cluster name {name:?} is not a label")),
            }
        }
        let clusters = Clusters::from_names(names)?;
        if let Some(c) = self.table.base().max_cluster() {
            if usize::from(c) >= clusters.len() {
                return Err(format!(
                    "an app refers to cluster #{c}, which it does not list"
                ));
            }
        }
        Ok(clusters)
    }

    /// The table with the cluster registry the checkpoint lists ([`Loaded::registry`]), and
    /// its position.
    pub fn into_table(self) -> Result<(Table, Position), String> {
        let clusters = self.registry()?;
        Ok((self.table.with_clusters(clusters), self.position))
    }
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

/// Reads the magic, the version (this one or back to `OLDEST`) and the position.
fn get_header(r: &mut impl Read) -> io::Result<(u32, Position)> {
    if &get::<8>(r)? != MAGIC {
        return Err(bad("not a clusterns checkpoint"));
    }
    let version = get_u32(r)?;
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(bad(format!(
            "checkpoint version {version}, expected {OLDEST} to {VERSION}"
        )));
    }
    Ok((version, get_position(r)?))
}

/// The most challenge names a checkpoint may hold (far above `[acme] max_names`' limit).
const MAX_ACME_NAMES: u32 = 1 << 22;

/// The challenge records: the number of names (u32), then per name its wire form (u8 length,
/// bytes), its values (u16 count), each its expiry (u64) and bytes (u8 length, bytes).
fn put_acme(w: &mut impl Write, acme: &AcmeStore) -> io::Result<()> {
    put_u32(w, acme.len() as u32)?;
    for e in acme.iter() {
        let name = e.name.wire();
        put_u8(w, name.len() as u8)?;
        w.write_all(name)?;
        put_u16(w, e.values.len() as u16)?;
        for (v, expires) in &e.values {
            put_u64(w, *expires)?;
            put_u8(w, v.len() as u8)?;
            w.write_all(v)?;
        }
    }
    Ok(())
}

/// Reads what [`put_acme`] wrote, checking names (challenge names, each once) and values
/// (1 to 255 bytes, each once per name).
fn get_acme(r: &mut impl Read) -> io::Result<AcmeStore> {
    let n = get_u32(r)?;
    if n > MAX_ACME_NAMES {
        return Err(bad(format!("{n} challenge names")));
    }
    let mut store = AcmeStore::default();
    for _ in 0..n {
        let len = usize::from(get_u8(r)?);
        let mut wire = vec![0; len];
        r.read_exact(&mut wire)?;
        let name = DomainName::from_wire(&wire).map_err(|e| bad(format!("challenge name: {e}")))?;
        if !crate::feed::acme::is_challenge_name(&name) || name.wire() != &wire[..] {
            return Err(bad(
                "a challenge name not in its lower-case _acme-challenge form",
            ));
        }
        if store.get(name.wire()).is_some() {
            return Err(bad(format!("challenge name {name} listed twice")));
        }
        let count = get_u16(r)?;
        if count == 0 {
            return Err(bad(format!("challenge name {name} without values")));
        }
        let mut values: Vec<(Box<[u8]>, u64)> = Vec::with_capacity(usize::from(count).min(64));
        for _ in 0..count {
            let expires = get_u64(r)?;
            let len = usize::from(get_u8(r)?);
            if len == 0 {
                return Err(bad(format!("an empty challenge value at {name}")));
            }
            let mut v = vec![0; len];
            r.read_exact(&mut v)?;
            if values.iter().any(|(o, _)| **o == *v) {
                return Err(bad(format!("a challenge value listed twice at {name}")));
            }
            values.push((v.into(), expires));
        }
        store.restore(name, values);
    }
    Ok(store)
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
    Ok(get_header(&mut r)?.1)
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
    put_acme(&mut w, table.acme())?;
    persist::write_health(&mut w, table.health())?;
    persist::write(&mut w, table, clusters)?;
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
    let (version, position) = get_header(&mut r)?;
    let acme = if version >= 3 {
        get_acme(&mut r)?
    } else {
        AcmeStore::default()
    };
    let health = if version >= 4 {
        persist::read_health(&mut r)?
    } else {
        HealthStore::default()
    };
    let head = persist::read_head(&mut r, size)?;
    // The rest: the overlay, the app count, and the CRC of everything before it, read at once
    // and checked before it is parsed.
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
    let (table, clusters) = head.finish(body)?;
    Ok(Loaded {
        table: table.with_acme(acme).with_health(health),
        position,
        clusters,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A base of `n` apps over `users` users and `clusters` clusters plus a UUID app, and an
    /// overlay on top: app `gone` deleted, `renamed` renamed, `added` added.
    fn table(n: u32, users: u32, clusters: u16, [gone, renamed, added]: [&str; 3]) -> Table {
        let mut t = Table::default();
        for i in 0..n {
            t.upsert(
                &format!("r{i}"),
                &format!("u{}", i % users),
                &format!("s{i}"),
                (i % u32::from(clusters)) as u16,
            )
            .unwrap();
        }
        t.upsert(
            "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c",
            "mark",
            "game",
            clusters - 1,
        )
        .unwrap();
        let mut t = Table::from_base(Arc::new(t.fold().unwrap()));
        t.delete(gone).unwrap();
        t.upsert(renamed, "renamed", "x", 1).unwrap();
        t.upsert(added, "new", "y", 0).unwrap();
        t
    }

    /// A position with every field set (the fixture's).
    fn position() -> Position {
        Position {
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
        }
    }

    fn sample() -> Table {
        table(300, 11, 3, ["r5", "r6", "r900"])
    }

    /// A checkpoint written by the code before the table's on-disk form moved to
    /// `table::persist` (the table of [`small`] at the position of `round_trip`).
    const FIXTURE: &str = concat!(
        "434c4e53434b5031020000004d00000000000000d20400000000000038000000000000000e000000efbeadde78563412",
        "09000000000000000a00000000000000185519ae6b626353020000000161016260000000000000000000000272300273",
        "300275300100027231027331027531000002723202733202753001000272330273330275310000027234027334027530",
        "01000272350273350275310100ff3f2b9c1e0b7a4c1e9a531d2e3f4a5b6c0467616d65046d61726b1000000000000000",
        "07000000000000000000000000000000d683094301000000000000000000000000000000000000000000000000000000",
        "00000000000000009c0bf75c0c0000009dedbb331700000016639ab6220000009e4b338d380000000000000000000000",
        "000000000000000000000000000000009c43688d2d000000e4cfb0004300000000000000000000001000000000000000",
        "07000000000000008a9d09b0380000000000000000000000000000000000000000000000000000000000000000000000",
        "d20f8ca80100000053101a102d00000029a77f5843000000700fea840c00000000000000000000000000000000000000",
        "fe956f6e22000000000000000000000000000000000000004af0efc21700000000000000000000001000000000000000",
        "030000000000000000000000000000000000000000000000000000000000000000000000000000002add51840c000000",
        "a7a0f96f0100000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000d83a96b7430000001000000000000000",
        "000000000000000000000000000000000300000003000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000010000000300000000000000030272310003027232010a01780772656e616d6564010003",
        "02723901060179036e657700000400000000000000060273310275310006027332027530000a01780772656e616d6564",
        "01030272320100060179036e657701030272390000040000000000000003027531ffffffffffffffff03027530ffffff",
        "ffffffffff080772656e616d6564010000000000000004036e65770100000000000000070000000000000033b09ff9"
    );

    fn small() -> Table {
        table(6, 2, 2, ["r1", "r2", "r9"])
    }

    #[test]
    fn the_format_is_unchanged() {
        let old: Vec<u8> = (0..FIXTURE.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&FIXTURE[i..i + 2], 16).unwrap())
            .collect();
        let pos = position();
        let clusters = vec!["a".to_string(), "b".into()];
        let l = read_from(&old[..], old.len() as u64).unwrap();
        assert_eq!(l.position, pos);
        assert_eq!(l.clusters, clusters);
        let t = small();
        assert_eq!(l.table.apps(), t.apps());
        assert_eq!(l.table.len(), 7);
        assert!(
            l.table.acme().is_empty(),
            "version 2 holds no challenge records"
        );
        // The same table written now: version 4, no challenge record and no health report
        // (two zero counts after the position), the rest the same bytes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        write(&path, &t, pos, &clusters).unwrap();
        let new = fs::read(&path).unwrap();
        let at = 8 + 4 + 8 * 5 + 4 * 3;
        assert_eq!(&new[8..12], &4u32.to_le_bytes());
        assert_eq!(&new[at..at + 8], &[0; 8]);
        assert_eq!(new[..8], old[..8]);
        assert_eq!(new[12..at], old[12..at]);
        assert_eq!(new[at + 8..new.len() - 4], old[at..old.len() - 4]);
        // Version 3 (challenge records, no health section) still loads.
        let mut v3 = new[..at + 4].to_vec();
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        v3.extend_from_slice(&new[at + 8..new.len() - 4]);
        let crc = crc32fast::hash(&v3).to_le_bytes();
        v3.extend_from_slice(&crc);
        let l = read_from(&v3[..], v3.len() as u64).unwrap();
        assert_eq!(l.table.apps(), t.apps());
        assert!(l.table.health().is_empty());
    }

    #[test]
    fn health_reports_round_trip() {
        use crate::health::report::HealthReport;
        let mut t = small();
        let report = |checker: &str, addr: &str, up: bool, until: u64| HealthReport {
            checker: checker.parse().unwrap(),
            cluster: "a".parse().unwrap(),
            addr: addr.parse().unwrap(),
            up,
            until,
        };
        for r in [
            report("eu", "10.0.0.1", false, 100),
            report("us", "10.0.0.1", true, u64::MAX),
            report("eu", "2001:db8::7", true, 5),
        ] {
            t.health_mut().apply(&r).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        write(&path, &t, position(), &["a".into(), "b".into()]).unwrap();
        let l = read(&path).unwrap();
        assert_eq!(l.table.health(), t.health());
        assert_eq!(l.table.health().len(), 3);
        assert_eq!(l.table.apps(), t.apps());
        // A damaged section (a state byte of 2), its checksum made to match: refused by name.
        let good = fs::read(&path).unwrap();
        let at = 8 + 4 + 8 * 5 + 4 * 3 + 4 + 4;
        // The first report (sorted: cluster a, 10.0.0.1, checker eu): "eu", "a", family, ip.
        let state = at + 3 + 2 + 1 + 4;
        assert_eq!(good[state], 0);
        let mut bad = good.clone();
        bad[state] = 2;
        let body_end = bad.len() - 4;
        let crc = crc32fast::hash(&bad[..body_end]).to_le_bytes();
        bad[body_end..].copy_from_slice(&crc);
        let e = read_from(&bad[..], bad.len() as u64).err().unwrap();
        assert!(e.to_string().contains("health report's state 2"), "{e}");
        // A report listed twice.
        let mut twice = good[..at].to_vec();
        twice[at - 4..at].copy_from_slice(&4u32.to_le_bytes());
        let first = &good[at..at + 3 + 2 + 1 + 4 + 1 + 8];
        twice.extend_from_slice(first);
        twice.extend_from_slice(&good[at..body_end]);
        let crc = crc32fast::hash(&twice).to_le_bytes();
        twice.extend_from_slice(&crc);
        let e = read_from(&twice[..], twice.len() as u64).err().unwrap();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }

    #[test]
    fn challenge_records_round_trip() {
        let mut t = small();
        let a: DomainName = "_acme-challenge.mark.repl.co".parse().unwrap();
        let b: DomainName = "_acme-challenge.repl.co".parse().unwrap();
        t.acme_mut().add(&a, b"one", 10).unwrap();
        t.acme_mut().add(&a, &[0, 255, b' '], 20).unwrap();
        t.acme_mut().add(&b, &[9; 255], u64::MAX).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ckpt");
        write(&path, &t, position(), &["a".into(), "b".into()]).unwrap();
        let l = read(&path).unwrap();
        assert_eq!(l.table.acme(), t.acme());
        assert_eq!(l.table.acme().get(a.wire()).unwrap().values[1].1, 20);
        assert_eq!(l.table.apps(), t.apps());
        // Damage in the section is caught by the checksum, and by the checks behind it.
        let good = fs::read(&path).unwrap();
        let at = 8 + 4 + 8 * 5 + 4 * 3;
        let mut twice = good.clone();
        // A label length inside the second name broken, the checksum made to match.
        let first_len = usize::from(good[at + 4]);
        let second = at + 4 + 1 + first_len + 2 + 2 * 9 + 3 + 3;
        assert_eq!(usize::from(good[second]), b.wire().len());
        let body_end = twice.len() - 4;
        let crc = |v: &[u8]| crc32fast::hash(v).to_le_bytes();
        twice[second + 1 + 16] = b'x';
        let c = crc(&twice[..body_end]);
        twice[body_end..].copy_from_slice(&c);
        assert!(read_from(&twice[..], twice.len() as u64).is_err());
        let mut flipped = good.clone();
        flipped[at + 10] ^= 1;
        assert!(read_from(&flipped[..], flipped.len() as u64).is_err());
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
        let pos = position();
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
        // An arena length (after the header, the empty challenge and health sections and the
        // three cluster names) far beyond the file: refused, not allocated.
        let at = 8 + 4 + 5 * 8 + 3 * 4 + 4 + 4 + 8 + 4 + 3 * 2;
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
