//! Tests of `reader`.

use super::*;
use crate::feed::batch::Event;
use crate::feed::journal::writer::write_snapshot;
use std::io::Write;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn add(path: &Path, text: &str) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn seqs(b: &ReadBatch) -> Vec<u64> {
    b.changes().map(|c| c.seq).collect()
}

fn kinds(b: &ReadBatch) -> Vec<NoticeKind> {
    b.notices.iter().map(|n| n.kind).collect()
}

#[test]
fn reads_incrementally_and_reports_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(
        &path,
        "1 set a u s c\n2 bogus\n2 delete a\n1 delete a\n3 set b u",
    );
    let mut r = JournalReader::new(&path);
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![1, 2]);
    assert_eq!(
        b.events
            .iter()
            .map(|e| match e {
                Event::Change { line, .. } => *line,
                Event::Reset { .. } => 0,
            })
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(b.errors.len(), 2);
    assert!(b.errors[0].to_string().contains("j.log:2: unknown verb"));
    assert_eq!(b.errors[1].line, 4);
    assert!(b.errors[1].message.contains("does not follow"));
    assert!(b.at_end);
    // The torn last line is not read until it is complete, and not looked at again
    // until the file grows (an idle reader must not spin on it).
    assert_eq!(r.incomplete_tail(), 9);
    assert!(!r.has_unread());
    add(&path, " s c\n4 delete b\n");
    assert!(r.has_unread());
    let b = r.read_new().unwrap();
    assert_eq!(b.errors, vec![]);
    assert_eq!(seqs(&b), vec![3, 4]);
    assert_eq!(r.last_seq(), 4);
    assert!(r.read_new().unwrap().events.is_empty());
}

#[test]
fn long_lines_are_skipped_without_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n");
    add(&path, &"#".repeat(3 * READ_CHUNK));
    let mut r = JournalReader::new(&path);
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![1]);
    assert_eq!(b.errors.len(), 1, "{:?}", b.errors);
    assert!(b.errors[0].message.contains("longer than"));
    assert_eq!(b.errors[0].line, 2);
    assert!(b.errors[0].to_string().len() < 200);
    assert_eq!(r.buf.len(), READ_CHUNK, "the buffer never grows");
    assert!(!r.has_unread());
    // More garbage: nothing new reported; then its end and a good line.
    add(&path, &"x".repeat(READ_CHUNK));
    assert!(r.read_new().unwrap().errors.is_empty());
    add(&path, "\n2 delete a\n");
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![2]);
    assert!(b.errors.is_empty());
    assert_eq!(r.position().line, 4);
    // A complete over-long line read at once is reported too.
    add(
        &path,
        &format!("{}\n3 delete b\n", "y".repeat(MAX_LINE + 1)),
    );
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![3]);
    assert_eq!(b.errors[0].line, 4);
}

#[test]
fn reads_across_chunks_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    let mut text = String::new();
    let n = MAX_BATCH as u64 + 100;
    for seq in 1..=n {
        text.push_str(&format!("{seq} set app{seq} u{} s{seq} c\n", seq % 97));
    }
    write(&path, &text);
    let mut r = JournalReader::new(&path);
    let b = r.read_new().unwrap();
    assert!(!b.at_end);
    assert_eq!(b.changes().count(), MAX_BATCH);
    let b = r.read_new().unwrap();
    assert!(b.at_end);
    assert_eq!(seqs(&b), (MAX_BATCH as u64 + 1..=n).collect::<Vec<_>>());
    assert_eq!(r.position().offset, text.len() as u64);
    assert_eq!(r.position().line, n + 1);
}

#[test]
fn rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n");
    let mut r = JournalReader::new(&path);
    assert_eq!(seqs(&r.read_new().unwrap()), vec![1]);
    // A writer still holding the old file appends after the rename.
    let mut old = OpenOptions::new().append(true).open(&path).unwrap();
    std::fs::rename(&path, dir.path().join("j.log.1")).unwrap();
    old.write_all(b"2 set b u t c\n").unwrap();
    write(&path, "3 delete a\n");
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![2, 3]);
    assert_eq!(kinds(&b), vec![NoticeKind::Switched]);
    // The new file continued at 3; a later rotation that skips numbers is a gap.
    std::fs::rename(&path, dir.path().join("j.log.2")).unwrap();
    write(&path, "7 delete b\n");
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![7]);
    assert_eq!(kinds(&b), vec![NoticeKind::Switched, NoticeKind::Gap]);
    assert!(b.notices[1].message.contains("4 to 6"), "{:?}", b.notices);
}

#[test]
fn deletion_is_noticed_once_and_a_new_file_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n");
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    std::fs::remove_file(&path).unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Missing]);
    assert!(r.is_missing());
    assert!(r.read_new().unwrap().notices.is_empty(), "reported once");
    write(&path, "2 delete a\n");
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched]);
    assert_eq!(seqs(&b), vec![2]);
}

#[test]
fn truncation_then_growth_reads_the_new_lines_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n2 set b u t c\n3 set c u v c\n");
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    // copytruncate: truncated, then more lines than there were bytes before.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    add(&path, "4 delete a\n5 delete b\n6 delete c\n7 set d u w c\n");
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched]);
    assert_eq!(seqs(&b), vec![4, 5, 6, 7]);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    // Truncated and still short: noticed once, not at every read.
    f.set_len(0).unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched]);
    for _ in 0..3 {
        assert!(r.read_new().unwrap().notices.is_empty());
    }
    add(&path, "8 delete d\n");
    assert_eq!(seqs(&r.read_new().unwrap()), vec![8]);
}

#[test]
fn a_rewritten_history_resets_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n2 set b u t c\n");
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    // sed -i: a new file with the history edited.
    let tmp = dir.path().join("tmp");
    write(&tmp, "1 set a u s d\n2 set b u t c\n");
    std::fs::rename(&tmp, &path).unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched, NoticeKind::Reload]);
    assert_eq!(b.events[0], Event::Reset { seq: 0 });
    assert_eq!(seqs(&b), vec![1, 2]);
    // In place, same length, same inode: the bytes before the position changed.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"1 set a u s e", 0).unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched, NoticeKind::Reload]);
    assert_eq!(seqs(&b), vec![1, 2]);
}

#[test]
fn resume_checks_the_file_is_the_one_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n2 set b u t c\n");
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    let pos = r.position();
    add(&path, "3 delete a\n");
    // The same file: only what follows.
    let mut r = JournalReader::resume(&path, pos, 2);
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![]);
    assert_eq!(seqs(&b), vec![3]);
    // Rotated while stopped: the new file continues.
    std::fs::rename(&path, dir.path().join("old")).unwrap();
    write(&path, "3 delete a\n4 delete b\n");
    let mut r = JournalReader::resume(&path, pos, 2);
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched]);
    assert_eq!(seqs(&b), vec![3, 4]);
    // A journal with a rewritten history: rebuilt from it.
    write(&path, "1 set x u s c\n");
    let mut r = JournalReader::resume(&path, pos, 2);
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched, NoticeKind::Reload]);
    assert_eq!(b.events[0], Event::Reset { seq: 0 });
    // Missing: said so, and followed once it appears.
    std::fs::remove_file(&path).unwrap();
    let mut r = JournalReader::resume(&path, pos, 2);
    assert_eq!(kinds(&r.read_new().unwrap()), vec![NoticeKind::Missing]);
}

fn compacted(seq: u64, from: u32, apps: &[[&str; 4]]) -> String {
    let mut out = Vec::new();
    write_snapshot(&mut out, "test", seq, from, apps.iter().copied()).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_snapshot_of_the_same_history_is_skipped_any_other_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n2 set b u t c\n3 delete a\n");
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    let id = r.identity();
    let tmp = dir.path().join("tmp");
    write(
        &tmp,
        &(compacted(3, id, &[["b", "u", "t", "c"]]) + "4 delete b\n"),
    );
    std::fs::rename(&tmp, &path).unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(
        kinds(&b),
        vec![NoticeKind::Switched, NoticeKind::SnapshotSkipped]
    );
    assert_eq!(seqs(&b), vec![4]);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    // A fresh reader loads it (no reset: nothing applied yet).
    let mut fresh = JournalReader::new(&path);
    let b = fresh.read_new().unwrap();
    assert_eq!(seqs(&b), vec![3, 4]);
    assert_eq!(kinds(&b), vec![]);
    // A snapshot of another history, or past the table, replaces the table.
    let ahead = compacted(9, id, &[["z", "u", "z", "c"]]);
    let mut r2 = JournalReader::resume(
        &path,
        JournalPos {
            head_crc: id,
            ..JournalPos::default()
        },
        3,
    );
    write(&tmp, &ahead);
    std::fs::rename(&tmp, &path).unwrap();
    let b = r2.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Reload]);
    assert_eq!(b.events[0], Event::Reset { seq: 9 });
    assert_eq!(seqs(&b), vec![9]);
    assert_eq!(r2.last_seq(), 9);
    // A damaged block is reported.
    write(
        &path,
        "5 snapshot begin 00000000\n5 app a u s c\n5 snapshot end 7\n",
    );
    let b = JournalReader::new(&path).read_new().unwrap();
    assert_eq!(b.errors.len(), 1);
    assert!(b.errors[0].message.contains("damaged"));
}

#[test]
fn a_file_overlapping_what_was_applied_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "1 set a u s c\n2 set b u t c\n3 delete a\n");
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    let tmp = dir.path().join("tmp");
    write(&tmp, "2 set b u t c\n3 delete a\n4 delete b\n");
    std::fs::rename(&tmp, &path).unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched, NoticeKind::Gap]);
    assert_eq!(seqs(&b), vec![4]);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
}

#[test]
fn a_read_between_the_rename_and_the_new_file_reports_both_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    std::fs::write(&path, "1 set a u s c\n").unwrap();
    let mut r = JournalReader::new(&path);
    r.read_new().unwrap();
    let mut old = OpenOptions::new().append(true).open(&path).unwrap();
    std::fs::rename(&path, dir.path().join("j.log.1")).unwrap();
    old.write_all(b"2 set b u t c\n").unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Missing]);
    assert_eq!(seqs(&b), vec![2]);
    std::fs::write(&path, "3 delete a\n").unwrap();
    let b = r.read_new().unwrap();
    assert_eq!(kinds(&b), vec![NoticeKind::Switched]);
    assert_eq!(seqs(&b), vec![3]);
}

#[test]
fn a_reader_resumed_before_the_first_entry_still_decides_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    write(&path, "garbage\n# comment\n");
    let mut r = JournalReader::new(&path);
    assert_eq!(r.read_new().unwrap().errors.len(), 1);
    let pos = r.position();
    assert_eq!(pos.offset, 0, "no entry yet: the start");
    add(
        &path,
        "5 snapshot begin 0000abcd\n5 app a u s c\n5 snapshot end 1\n",
    );
    let mut resumed = JournalReader::resume(&path, pos, r.last_seq());
    let b = resumed.read_new().unwrap();
    assert_eq!(seqs(&b), vec![5], "{:?}", b.errors);
    let b = r.read_new().unwrap();
    assert_eq!(seqs(&b), vec![5], "{:?}", b.errors);
}
