//! Writing a journal: appending changes under the writers' lock (numbered after the journal
//! and a floor, a torn last line removed first), and the snapshot block a compaction writes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::format::{quote, MAX_SEQ};
use super::reader::{JournalPos, JournalReader};
use crate::feed::change::{Change, Sequenced};

/// Opens the journal for appending and takes the writers' exclusive `flock` on it, making
/// sure the lock is on the file the path names (a compaction may have replaced it while this
/// waited). `create`: whether a missing journal may be created.
pub fn lock(path: &Path, create: bool) -> io::Result<File> {
    for _ in 0..100 {
        let file = OpenOptions::new()
            .create(create)
            .read(true)
            .append(true)
            .open(path)?;
        crate::os::lock_exclusive(&file)?;
        let locked = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == (locked.dev(), locked.ino()) => return Ok(file),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} keeps being replaced; could not lock it",
        path.display()
    )))
}

/// What [`append`] wrote.
#[derive(Debug)]
pub struct Appended {
    pub written: Vec<Sequenced>,
    /// A last line without its newline (left by a writer that died) that was removed first,
    /// quoted.
    pub dropped: Option<String>,
}

/// Appends changes to a journal as whole lines, under the writers' lock (see [`lock`]),
/// numbered after the larger of the journal's last sequence number and `floor` (a
/// checkpoint's, so that a journal that lost its lines is never numbered again from 1). A
/// journal that holds no change while `floor` is above 0 is refused (`NotFound`, as a missing
/// one is when `create` is false). A
/// last line without its newline was never complete: it is removed (and returned) before
/// the new lines are written, so that it can neither swallow them nor be applied.
///
/// `from`: where a checkpoint at `floor` left the journal. The journal is then read from there,
/// not from its start (if it is no longer that file, the reader finds out and reads it whole),
/// so that an append costs what the journal grew by since the checkpoint, not its length.
pub fn append(
    path: &Path,
    changes: &[Change],
    floor: u64,
    from: Option<JournalPos>,
    create: bool,
) -> io::Result<Appended> {
    let mut file = lock(path, create)?;
    let mut reader = match from {
        Some(pos) => JournalReader::resume(path, pos, floor),
        None => JournalReader::new(path),
    };
    while !reader.read_new()?.at_end {}
    // Resumed, the reader starts at `floor`: whether the file holds an entry is whether it
    // is past its start.
    let holds_entries = match from {
        Some(_) => reader.position().offset > 0,
        None => reader.last_seq() > 0,
    };
    if floor > 0 && !holds_entries {
        // Changes were applied (the floor says so) but the journal holds none: it was
        // deleted or rotated away, and its numbers would start again below the floor.
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} holds no change but changes up to sequence {floor} were applied",
                path.display()
            ),
        ));
    }
    let keep = reader.offset();
    let len = file.metadata()?.len();
    let mut dropped = None;
    if len > keep {
        let mut torn = vec![0u8; (len - keep).min(200) as usize];
        file.read_exact_at(&mut torn, keep)?;
        dropped = Some(quote(&String::from_utf8_lossy(&torn)));
        file.set_len(keep)?;
    }
    let last = reader.last_seq().max(floor);
    if changes.len() as u64 > MAX_SEQ - last {
        return Err(io::Error::other(format!(
            "{}: sequence number {last} leaves no room for {} more (at most {MAX_SEQ})",
            path.display(),
            changes.len()
        )));
    }
    let mut text = String::new();
    let mut written = Vec::with_capacity(changes.len());
    for (seq, change) in (last + 1..).zip(changes) {
        let s = Sequenced {
            seq,
            change: change.clone(),
        };
        text.push_str(&s.to_string());
        text.push('\n');
        written.push(s);
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    Ok(Appended { written, dropped })
}

/// Writes a compacted journal to `w`: a comment naming where it came from, the snapshot block
/// of `apps` (id, user, slug, cluster) as of `seq`, compacted from the journal with identity
/// `from`. Returns the number of apps written.
pub fn write_snapshot<'a, W: Write>(
    w: &mut W,
    comment: &str,
    seq: u64,
    from: u32,
    apps: impl IntoIterator<Item = [&'a str; 4]>,
) -> io::Result<u64> {
    write_snapshot_with(w, comment, seq, from, apps, std::iter::empty())
}

/// [`write_snapshot`] with the challenge TXT values and health reports too:
/// `<seq> txt <name> <expires> <hex>` and `<seq> health-held <checker> <cluster> <addr>
/// up|down <until>` lines after the apps (`txt`: `Change::TxtAdd`s and `Change::Health`s;
/// other changes are left out), counted with them.
pub fn write_snapshot_with<'a, W: Write>(
    w: &mut W,
    comment: &str,
    seq: u64,
    from: u32,
    apps: impl IntoIterator<Item = [&'a str; 4]>,
    txt: impl IntoIterator<Item = Change>,
) -> io::Result<u64> {
    writeln!(w, "# {}", comment.replace('\n', " "))?;
    let mut count = 0;
    if seq == 0 {
        // Nothing was ever applied: an empty journal says so.
        return Ok(count);
    }
    writeln!(w, "{seq} snapshot begin {from:08x}")?;
    for [id, user, slug, cluster] in apps {
        writeln!(w, "{seq} app {id} {user} {slug} {cluster}")?;
        count += 1;
    }
    for change in txt {
        // The change line's form, its verb made the snapshot's.
        let (from, to) = match change {
            Change::TxtAdd { .. } => (" txt-add ", " txt "),
            Change::Health(_) => (" health ", " health-held "),
            _ => continue,
        };
        let line = Sequenced { seq, change }.to_string();
        writeln!(w, "{}", line.replacen(from, to, 1))?;
        count += 1;
    }
    writeln!(w, "{seq} snapshot end {count}")?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::batch::{Event, NoticeKind, ReadBatch};

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    fn seqs(b: &ReadBatch) -> Vec<u64> {
        b.changes().map(|c| c.seq).collect()
    }

    fn kinds(b: &ReadBatch) -> Vec<NoticeKind> {
        b.notices.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn a_snapshot_carries_challenge_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let name: crate::name::DomainName = "_acme-challenge.mark.repl.co".parse().unwrap();
        let txt = vec![
            Change::TxtAdd {
                name: name.clone(),
                value: Box::from(&b"tok"[..]),
                expires: 77,
            },
            // Not a snapshot line: left out.
            Change::TxtDelete { name, value: None },
            Change::Health(crate::health::report::HealthReport {
                checker: "eu".parse().unwrap(),
                cluster: "c1".parse().unwrap(),
                addr: "10.0.0.1".parse().unwrap(),
                up: false,
                until: 99,
            }),
        ];
        let mut out = Vec::new();
        let n =
            write_snapshot_with(&mut out, "t", 9, 1, [["r1", "mark", "game", "c1"]], txt).unwrap();
        assert_eq!(n, 3);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\n9 txt _acme-challenge.mark.repl.co 77 746f6b\n9 health-held eu c1 10.0.0.1 down 99\n9 snapshot end 3\n"),
            "{text}"
        );
        write(&path, &text);
        let mut r = JournalReader::new(&path);
        let b = r.read_new().unwrap();
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        let changes: Vec<&Change> = b.changes().map(|c| &c.change).collect();
        assert_eq!(changes.len(), 3);
        assert!(matches!(changes[1], Change::TxtAdd { expires: 77, .. }));
        assert!(matches!(changes[2], Change::Health(r) if r.until == 99 && !r.up));
    }

    fn delete(id: &str) -> Change {
        Change::Delete {
            id: id.parse().unwrap(),
        }
    }

    #[test]
    fn append_from_a_checkpoint_position_reads_only_what_came_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        write(&path, "1 set a u s c\n2 set b u t c\n");
        let mut reader = JournalReader::new(&path);
        while !reader.read_new().unwrap().at_end {}
        let (pos, floor) = (reader.position(), reader.last_seq());
        assert_eq!(floor, 2);
        // Lines after the checkpoint, the last one torn.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"3 delete a\n4 set c")
            .unwrap();
        let w = append(&path, &[delete("b")], floor, Some(pos), false).unwrap();
        assert_eq!(w.written[0].seq, 4);
        assert!(w.dropped.as_deref().unwrap().contains("4 set c"));
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("3 delete a\n4 delete b\n"));
        // Another file at the path (the position's identity no longer matches): read whole.
        write(&path, "7 set a u s c\n8 set b u t c\n9 delete a\n");
        let w = append(&path, &[delete("b")], floor, Some(pos), false).unwrap();
        assert_eq!(w.written[0].seq, 10);
        // Emptied at the path while the checkpoint is at 2: refused, not numbered from 3.
        write(&path, "");
        let e = append(&path, &[delete("b")], floor, Some(pos), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn append_numbers_after_the_last_and_drops_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        // A complete-looking last line without its newline was never committed.
        write(&path, "5 set a u s c\n6 set b u t c");
        let w = append(&path, &[delete("a")], 0, None, false).unwrap();
        assert_eq!(w.written[0].seq, 6);
        assert!(w.dropped.as_deref().unwrap().contains("6 set b"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "5 set a u s c\n6 delete a\n"
        );
        // The floor (a checkpoint's sequence number) wins over a shorter journal.
        let w = append(&path, &[delete("b")], 40, None, false).unwrap();
        assert_eq!(w.written[0].seq, 41);
        // A line at the largest sequence number is refused, not wrapped past.
        write(&path, &format!("{MAX_SEQ} delete a\n"));
        let e = append(&path, &[delete("a")], 0, None, false).unwrap_err();
        assert!(e.to_string().contains("no room"), "{e}");
        // And the line above it is a bad line, not a block.
        write(&path, "1 delete a\n18446744073709551615 delete a\n");
        let w = append(&path, &[delete("a")], 0, None, false).unwrap();
        assert_eq!(w.written[0].seq, 2);
        // A missing journal is only created when asked to.
        let missing = dir.path().join("none.log");
        assert!(append(&missing, &[delete("a")], 0, None, false).is_err());
        assert_eq!(
            append(&missing, &[delete("a")], 0, None, true)
                .unwrap()
                .written[0]
                .seq,
            1
        );
    }

    #[test]
    fn a_reader_does_not_mistake_a_removed_torn_line_for_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        write(&path, "1 set a u s c\n2 set b u");
        let mut r = JournalReader::new(&path);
        assert_eq!(seqs(&r.read_new().unwrap()), vec![1]);
        append(&path, &[delete("a")], 0, None, false).unwrap();
        let b = r.read_new().unwrap();
        assert_eq!(kinds(&b), vec![]);
        assert_eq!(seqs(&b), vec![2]);
        assert!(
            matches!(&b.events[0], Event::Change { change, .. } if change.change == delete("a"))
        );
    }

    #[test]
    fn append_refuses_a_journal_with_no_change_below_a_floor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        write(&path, "# rotated: nothing yet\n4 set a u s");
        let e = append(&path, &[delete("a")], 7, None, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# rotated: nothing yet\n4 set a u s",
            "nothing written, the torn line left"
        );
        // Without a floor it is a journal like any.
        assert_eq!(
            append(&path, &[delete("a")], 0, None, false)
                .unwrap()
                .written[0]
                .seq,
            1
        );
    }
}
