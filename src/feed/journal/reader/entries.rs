//! What each journal entry means to the reader: changes passed on, snapshot blocks (passed on
//! after a reset, or skipped when they repeat what the table holds), and the decision that
//! the first entry of a new file makes about how the file relates to what was applied (see
//! the journal module).

use super::{JournalReader, SnapState};
use crate::feed::batch::{Event, NoticeKind, ReadBatch};
use crate::feed::journal::format::{parse_entry, Entry};

impl JournalReader {
    /// Takes one complete line (without its newline) into `batch`; returns whether it was a
    /// change passed on.
    pub(super) fn take_line(&mut self, line: &[u8], line_no: u64, batch: &mut ReadBatch) -> bool {
        let entry = match std::str::from_utf8(line) {
            Ok(text) => parse_entry(text),
            Err(_) => Err("line is not valid UTF-8".into()),
        };
        let entry = match entry {
            Ok(Some(e)) => e,
            Ok(None) => return false,
            Err(message) => {
                batch.errors.push(self.line_error(line_no, message));
                return false;
            }
        };
        if self.boundary {
            self.decide(&entry, line_no, batch);
        }
        match entry {
            Entry::SnapshotBegin { seq, .. } => {
                if matches!(self.snapshot, Some(s) if s.line == line_no) {
                    // Begun at the file's start: `decide` took it.
                    return false;
                }
                if let Some(open) = self.snapshot {
                    batch.errors.push(self.line_error(
                        line_no,
                        format!(
                            "a snapshot begins inside the one begun at line {}",
                            open.line
                        ),
                    ));
                }
                batch.errors.push(
                    self.line_error(
                        line_no,
                        "a snapshot is only valid at the start of a journal; its apps are skipped"
                            .into(),
                    ),
                );
                self.snapshot = Some(SnapState {
                    seq,
                    line: line_no,
                    count: 0,
                    skip: true,
                });
                false
            }
            Entry::SnapshotApp(s) => {
                let Some(snap) = &mut self.snapshot else {
                    batch.errors.push(
                        self.line_error(line_no, "an app line outside a snapshot; skipped".into()),
                    );
                    return false;
                };
                if s.seq != snap.seq {
                    let message = format!(
                        "an app line numbered {} in the snapshot of sequence {}; skipped",
                        s.seq, snap.seq
                    );
                    batch.errors.push(self.line_error(line_no, message));
                    return false;
                }
                snap.count += 1;
                if snap.skip {
                    return false;
                }
                batch.events.push(Event::Change {
                    change: s,
                    line: line_no,
                });
                true
            }
            Entry::SnapshotEnd { seq, count } => {
                match self.snapshot.take() {
                    Some(snap) if snap.seq == seq && snap.count == count => {}
                    Some(snap) => batch.errors.push(self.line_error(
                        line_no,
                        format!(
                            "the snapshot begun at line {} (sequence {}, {} apps) ends as sequence {seq} with {count} apps: damaged",
                            snap.line, snap.seq, snap.count
                        ),
                    )),
                    None => batch.errors.push(
                        self.line_error(line_no, "a snapshot end without its begin".into()),
                    ),
                }
                false
            }
            Entry::Change(s) => {
                if let Some(snap) = self.snapshot.take() {
                    batch.errors.push(self.line_error(
                        line_no,
                        format!(
                            "the snapshot begun at line {} has no end before this change: damaged",
                            snap.line
                        ),
                    ));
                }
                if s.seq <= self.skip_upto {
                    return false;
                }
                if s.seq <= self.last_seq {
                    batch.errors.push(self.line_error(
                        line_no,
                        format!(
                            "sequence number {} does not follow {}; line skipped",
                            s.seq, self.last_seq
                        ),
                    ));
                    return false;
                }
                self.last_seq = s.seq;
                batch.events.push(Event::Change {
                    change: s,
                    line: line_no,
                });
                true
            }
        }
    }

    /// The first entry of a file not known to continue what was applied decides how it does.
    fn decide(&mut self, entry: &Entry, line_no: u64, batch: &mut ReadBatch) {
        let path = self.path.display();
        let last = self.last_seq;
        match *entry {
            Entry::SnapshotBegin { seq, from } => {
                self.boundary = false;
                let skip = last > 0 && seq == last && from == self.lineage;
                if skip {
                    batch.notice(
                        NoticeKind::SnapshotSkipped,
                        format!(
                            "journal {path} was compacted at sequence {seq}, where the table is: snapshot skipped"
                        ),
                    );
                } else if last > 0 {
                    batch.notice(
                        NoticeKind::Reload,
                        format!(
                            "journal {path} starts with a snapshot at sequence {seq} (compacted from {from:08x}) but the table is at sequence {last} of {:08x}: rebuilding the table from the journal",
                            self.lineage
                        ),
                    );
                    batch.events.push(Event::Reset { seq });
                }
                self.last_seq = seq;
                self.pos.origin = 0;
                self.pos.first = seq;
                self.snapshot = Some(SnapState {
                    seq,
                    line: line_no,
                    count: 0,
                    skip,
                });
            }
            Entry::Change(ref s) => {
                self.boundary = false;
                // Until now, those of the file before (see `start_over`).
                let (origin, first) = (self.pos.origin, self.pos.first);
                self.pos.first = s.seq;
                if s.seq > last {
                    if last > 0 && s.seq != last + 1 {
                        batch.notice(
                            NoticeKind::Gap,
                            format!(
                                "journal {path} continues at sequence {} after {last}: changes {} to {} are missing (rotated away unread?)",
                                s.seq,
                                last + 1,
                                s.seq - 1
                            ),
                        );
                    }
                    self.pos.origin = last;
                } else if origin == 0 && s.seq <= first.max(1) {
                    batch.notice(
                        NoticeKind::Reload,
                        format!(
                            "journal {path} starts at sequence {} where the journal before it began, and {last} was already applied: its history was rewritten; rebuilding the table from it",
                            s.seq
                        ),
                    );
                    batch.events.push(Event::Reset { seq: 0 });
                    self.last_seq = 0;
                    self.pos.origin = 0;
                } else {
                    batch.notice(
                        NoticeKind::Gap,
                        format!(
                            "journal {path} starts at sequence {}, at or below {last} which was already applied, and the table before it is not known: its lines up to {last} are taken as applied (edits to them are not seen; compact the journal before editing it)",
                            s.seq
                        ),
                    );
                    self.skip_upto = last;
                    self.pos.origin = last;
                }
            }
            // Stray snapshot lines decide nothing: the first real entry will.
            Entry::SnapshotApp(_) | Entry::SnapshotEnd { .. } => {}
        }
    }
}
