//! Fuzzes the journal reader as a server meets it: arbitrary bytes drive a sequence of file
//! operations on a journal in a temp dir (appends of arbitrary bytes, truncations, rotations,
//! replacements, deletions) with a `JournalReader` reading after each, resumed now and then
//! from its own position (as after a restart from a checkpoint, which is never taken inside a
//! snapshot block).
//!
//! Checks that nothing panics and that
//! - every message (line errors, notices) is short, whatever the lines hold;
//! - a reader never hands on a change at or below the last sequence number it passed on,
//!   except after announcing a reset (`Event::Reset`, with a `Reload` notice);
//! - while the journal is only appended to, the changes read are exactly those a plain
//!   line-by-line parse of its complete lines gives (sequence numbers increasing), and the
//!   reader's position is the end of the last complete line.

#![no_main]

use std::fs::OpenOptions;
use std::io::Write;

use clusterns::feed::journal::{parse_entry, Entry, Event, JournalReader, NoticeKind, MAX_LINE};
use clusterns::feed::Sequenced;
use libfuzzer_sys::fuzz_target;

/// The changes a fresh reader takes from `text` when it is only ever appended to: complete
/// lines, a snapshot block at the start, then changes with increasing numbers.
fn model(text: &[u8]) -> Vec<Sequenced> {
    let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    let mut last = 0;
    let mut first = true;
    let mut snapshot: Option<u64> = None;
    for line in text[..end].split(|&b| b == b'\n') {
        if line.len() > MAX_LINE {
            continue;
        }
        let Ok(Ok(Some(entry))) = std::str::from_utf8(line).map(parse_entry) else {
            continue;
        };
        let was_first = first;
        match entry {
            Entry::SnapshotBegin { seq, .. } => {
                if was_first {
                    first = false;
                    last = seq;
                    snapshot = Some(seq);
                } else {
                    snapshot = Some(0); // misplaced: its apps are skipped
                }
            }
            Entry::SnapshotApp(s) => {
                if snapshot == Some(s.seq) && s.seq == last {
                    out.push(s);
                }
            }
            Entry::SnapshotEnd { .. } => snapshot = None,
            Entry::Change(s) => {
                first = false;
                snapshot = None;
                if s.seq > last {
                    last = s.seq;
                    out.push(s);
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j.log");
    let mut reader = JournalReader::new(&path);
    let mut written: Vec<u8> = Vec::new();
    let mut append_only = true;
    let mut got: Vec<Sequenced> = Vec::new();
    let mut last_passed = 0u64;
    let mut rest = data;
    let mut ops = 0;
    while let Some((&op, tail)) = rest.split_first() {
        ops += 1;
        if ops > 64 {
            break;
        }
        let len = usize::from(tail.first().copied().unwrap_or(0)) * 4;
        let body = tail.get(1..).unwrap_or_default();
        let chunk = &body[..len.min(body.len())];
        rest = &body[chunk.len()..];
        match op % 8 {
            0..=3 => {
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .expect("open");
                f.write_all(chunk).expect("append");
                written.extend_from_slice(chunk);
            }
            4 => {
                if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                    let to = u64::from(op) % (written.len() as u64 + 1);
                    f.set_len(to).expect("truncate");
                    written.truncate(to as usize);
                    append_only = false;
                }
            }
            5 => {
                // Replaced: a new file renamed over the journal.
                let tmp = dir.path().join("tmp");
                std::fs::write(&tmp, chunk).expect("write");
                std::fs::rename(&tmp, &path).expect("rename");
                written = chunk.to_vec();
                append_only = false;
            }
            6 => {
                let _ = std::fs::remove_file(&path);
                written.clear();
                append_only = false;
            }
            _ if reader.in_snapshot() => {} // never checkpointed there
            _ => {
                // A restart from the reader's own position.
                let pos = reader.position();
                reader = JournalReader::resume(&path, pos, reader.last_seq());
            }
        }
        loop {
            let batch = match reader.read_new() {
                Ok(b) => b,
                Err(_) => break,
            };
            for e in &batch.errors {
                assert!(e.message.len() < 600, "long message: {} bytes", e.message.len());
            }
            let mut reloaded = false;
            for n in &batch.notices {
                assert!(n.message.len() < 600, "long notice");
                reloaded |= n.kind == NoticeKind::Reload;
            }
            for ev in batch.events {
                match ev {
                    Event::Reset { seq } => {
                        assert!(reloaded, "a reset without its notice");
                        last_passed = seq;
                        append_only = false;
                    }
                    Event::Change { change, .. } => {
                        assert!(
                            change.seq > last_passed
                                // A snapshot's lines (apps, challenge values, health reports) share its number.
                                || (change.seq == last_passed
                                    && matches!(
                                        change.change,
                                        clusterns::feed::Change::Upsert { .. }
                                            | clusterns::feed::Change::TxtAdd { .. }
                                            | clusterns::feed::Change::Health(_)
                                    )),
                            "change {} after {last_passed}",
                            change.seq
                        );
                        last_passed = change.seq;
                        got.push(change);
                    }
                }
            }
            if batch.at_end {
                break;
            }
        }
        if append_only {
            assert_eq!(got, model(&written), "append-only journal read differently");
            let end = written.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            assert_eq!(reader.offset(), end as u64);
        }
    }
});
