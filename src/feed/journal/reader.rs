//! Reading a journal while it is written, rotated, truncated, replaced or deleted: the
//! reader follows its path, checks at every read that the bytes it read are still there, and
//! decides at the first entry of every new file how it relates to what was applied (see the
//! module above). No parsing here (`format`), no writing (`writer`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::format::{parse_entry, Entry, LineError, MAX_LINE};
use crate::feed::change::Sequenced;

/// At most this many changes are returned by one read (the rest is read next time).
pub const MAX_BATCH: usize = 1 << 16;

/// How much of the journal one read takes at most.
const READ_CHUNK: usize = 256 * 1024;

/// The file's identity is a hash of its first line, up to this many bytes.
const HEAD_MAX: usize = 256;

/// And of up to this many bytes before the reader's position.
const TAIL_MAX: u64 = 64;

/// Where a reader is in its journal, and which file that is: what a checkpoint stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalPos {
    /// The byte offset and line number (1-based) of the first line not yet read.
    pub offset: u64,
    pub line: u64,
    /// The length (at most 256) and CRC-32 of the file's first line, newline included. While
    /// the file has no complete line, `head_len` is 0 and `head_crc` is the identity of the
    /// file read before (its lineage), or 0.
    pub head_len: u32,
    pub head_crc: u32,
    /// The CRC-32 of the (up to 64) bytes before `offset`.
    pub tail_crc: u32,
    /// The last sequence number applied when this file began (0: it holds the whole history
    /// or starts with a snapshot), and the file's first sequence number. While the file has
    /// no entry yet, both are the file before's (as `head_crc` is its lineage). A new file that
    /// starts at or before `first` of a file with origin 0 rewrites the whole history;
    /// otherwise what came before the file is not known, and an overlap is skipped.
    pub origin: u64,
    pub first: u64,
}

/// What happened to the journal file, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The reader moved to another file (rotated, replaced, truncated, rewritten, re-created)
    /// or found the file does not continue a checkpoint.
    Switched,
    /// The journal does not exist (deleted, moved away, never created).
    Missing,
    /// The new file continues after a jump in sequence numbers: changes may be lost.
    Gap,
    /// The table is rebuilt from the journal (a [`Event::Reset`] was emitted).
    Reload,
    /// A snapshot that repeats what the table holds was skipped.
    SnapshotSkipped,
}

/// Something that happened to the journal file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub message: String,
}

/// What a read produced, in order. (Resets are rare and small; boxing the changes would
/// allocate one per change.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A change to apply, with its line number (for reports).
    Change { change: Sequenced, line: u64 },
    /// Start the table over, empty, as of `seq`: the changes that follow rebuild it, and it
    /// replaces the served table once the reader has reached the end of the journal.
    Reset { seq: u64 },
}

/// The result of one read.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub events: Vec<Event>,
    pub errors: Vec<LineError>,
    pub notices: Vec<Notice>,
    /// Whether the read reached the end of the journal (false: more is waiting).
    pub at_end: bool,
}

impl ReadBatch {
    /// The changes read, in order (resets left out).
    pub fn changes(&self) -> impl Iterator<Item = &Sequenced> {
        self.events.iter().filter_map(|e| match e {
            Event::Change { change, .. } => Some(change),
            Event::Reset { .. } => None,
        })
    }

    fn notice(&mut self, kind: NoticeKind, message: String) {
        self.notices.push(Notice { kind, message });
    }
}

/// A snapshot block being read.
#[derive(Debug, Clone, Copy)]
struct SnapState {
    seq: u64,
    line: u64,
    count: u64,
    /// Its apps are not passed on (the table already holds them, or the block is misplaced).
    skip: bool,
}

/// Reads a journal incrementally: every call returns what was added since the last.
pub struct JournalReader {
    path: PathBuf,
    /// The file being read, with its device and inode.
    file: Option<(File, (u64, u64))>,
    pos: JournalPos,
    /// Bytes up to here have been looked at (beyond `pos.offset`: a line without its newline).
    scanned: u64,
    /// Inside a line longer than `MAX_LINE` (reported), looking for its end.
    skipping: bool,
    /// The highest sequence number accepted so far.
    last_seq: u64,
    /// At the start of a file not known to continue what was applied: its first entry decides.
    boundary: bool,
    /// In a file that overlaps what was applied, changes up to here are taken as applied.
    skip_upto: u64,
    snapshot: Option<SnapState>,
    /// The identity of the file read before the current one (a snapshot compacted from it at
    /// the last sequence number applied repeats the table).
    lineage: u32,
    /// The journal is missing (reported once).
    missing: bool,
    /// Size and modification time when the file's bytes were last checked.
    checked: (u64, i64, i64),
    buf: Vec<u8>,
}

impl JournalReader {
    /// A reader from the start of `path`, with nothing applied yet.
    pub fn new(path: &Path) -> JournalReader {
        JournalReader::resume(path, JournalPos::default(), 0)
    }

    /// A reader that continues at `pos`, where a checkpoint at `last_seq` left off. Whether
    /// the file there is still that file is checked when it is opened: if not, it is read from
    /// its start by the rules in the module documentation.
    pub fn resume(path: &Path, pos: JournalPos, last_seq: u64) -> JournalReader {
        let pos = JournalPos {
            line: pos.line.max(1),
            ..pos
        };
        JournalReader {
            path: path.to_path_buf(),
            file: None,
            pos,
            scanned: pos.offset,
            skipping: false,
            last_seq,
            boundary: pos.offset == 0,
            skip_upto: 0,
            snapshot: None,
            lineage: pos.head_crc,
            missing: false,
            checked: (u64::MAX, 0, 0),
            buf: Vec::new(),
        }
    }

    /// The position and identity of the file being read, as a checkpoint stores it. While the
    /// file has had no entry yet (only comments or bad lines), that is its start, with the
    /// identity, origin and first number of the file before: a reader resumed there decides
    /// again at its first entry, as this one will.
    pub fn position(&self) -> JournalPos {
        if self.boundary {
            return JournalPos {
                offset: 0,
                line: 1,
                head_len: 0,
                head_crc: self.lineage,
                tail_crc: 0,
                // Until this file's first entry, still those of the file before.
                origin: self.pos.origin,
                first: self.pos.first,
            };
        }
        self.pos
    }

    /// Whether the reader is inside a snapshot block (begun, not ended): a position there is
    /// not one to checkpoint (a reader resumed there would not know it is in a block).
    pub fn in_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// The byte offset of the first line not read yet.
    pub fn offset(&self) -> u64 {
        self.pos.offset
    }

    /// The identity of the journal this reader follows: its first line's hash, or the one of
    /// the file before while it has none.
    pub fn identity(&self) -> u32 {
        self.pos.head_crc
    }

    /// The highest sequence number read so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether the journal exists (as far as the last read saw).
    pub fn is_missing(&self) -> bool {
        self.missing
    }

    /// Bytes at the end of the file that are not a complete line yet (a torn last line).
    pub fn incomplete_tail(&self) -> u64 {
        self.scanned - self.pos.offset
    }

    /// Whether the journal holds bytes not looked at yet (false when it cannot tell).
    pub fn has_unread(&self) -> bool {
        self.file
            .as_ref()
            .and_then(|(f, _)| f.metadata().ok())
            .is_some_and(|m| m.len() > self.scanned)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was added since the last call (at most [`MAX_BATCH`] changes), after
    /// checking that the path still names the file being read and that its bytes are still
    /// there.
    pub fn read_new(&mut self) -> io::Result<ReadBatch> {
        let mut batch = ReadBatch::default();
        self.follow_path(&mut batch)?;
        match self.file.take() {
            Some((file, key)) => {
                let result = self.read_lines(&file, &mut batch, true);
                self.file = Some((file, key));
                result?;
            }
            None => batch.at_end = true,
        }
        Ok(batch)
    }

    /// Makes the reader read the file its path names now, noticing rotation, deletion,
    /// replacement, truncation and rewrites.
    fn follow_path(&mut self, batch: &mut ReadBatch) -> io::Result<()> {
        let Some((file, key)) = self.file.take() else {
            return self.open(batch);
        };
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.file = Some((file, key));
                return Err(e);
            }
        };
        if now != Some(key) {
            // Rotated, deleted or replaced: what was appended to the old file before that
            // still counts.
            self.read_lines(&file, batch, false)?;
            if self.scanned > self.pos.offset {
                batch.errors.push(self.line_error(
                    self.pos.line,
                    format!(
                        "the last line of the journal that was moved away has no newline ({} bytes); dropped",
                        self.scanned - self.pos.offset
                    ),
                ));
            }
            drop(file);
            self.start_over();
            self.open(batch)?;
            // The path may have been missing a moment ago and be there now: either way the
            // file is another one (`open` said so if there is none).
            if self.file.is_some() {
                batch.notice(
                    NoticeKind::Switched,
                    format!(
                        "journal {} is another file now (rotated or replaced); the old one was read to its end, the new one is read from its start",
                        self.path.display()
                    ),
                );
            }
            return Ok(());
        }
        let meta = file.metadata()?;
        if stamp(&meta) != self.checked {
            if meta.len() < self.pos.offset || !self.bytes_still_there(&file)? {
                let what = if meta.len() < self.pos.offset {
                    format!(
                        "was truncated (from at least {} to {} bytes)",
                        self.pos.offset,
                        meta.len()
                    )
                } else {
                    "was rewritten in place (the lines already read changed)".to_string()
                };
                batch.notice(
                    NoticeKind::Switched,
                    format!(
                        "journal {} {what}; reading it again from its start",
                        self.path.display()
                    ),
                );
                self.start_over();
            } else if meta.len() < self.scanned {
                // Only a line without its newline went (a writer removed its torn line).
                self.scanned = meta.len();
                self.skipping = false;
            }
            self.checked = stamp(&meta);
        }
        self.file = Some((file, key));
        Ok(())
    }

    /// Opens the file at the path, if there is one. A reader resuming at an offset checks that
    /// the file is the one it left.
    fn open(&mut self, batch: &mut ReadBatch) -> io::Result<()> {
        let file = match open_for_tailing(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.missing {
                    self.missing = true;
                    batch.notice(
                        NoticeKind::Missing,
                        format!(
                            "journal {} does not exist; serving the table as it is (sequence {}) until it appears",
                            self.path.display(),
                            self.last_seq
                        ),
                    );
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if self.missing {
            self.missing = false;
            batch.notice(
                NoticeKind::Switched,
                format!("journal {} appeared", self.path.display()),
            );
        }
        if self.pos.offset > 0
            && (meta.len() < self.pos.offset || !self.bytes_still_there(&file)?)
        {
            batch.notice(
                NoticeKind::Switched,
                format!(
                    "journal {} is not the file the checkpoint left at line {} (sequence {}); reading it from its start",
                    self.path.display(),
                    self.pos.line,
                    self.last_seq
                ),
            );
            self.start_over();
        }
        self.checked = stamp(&meta);
        self.file = Some((file, (meta.dev(), meta.ino())));
        Ok(())
    }

    /// Whether the first line and the bytes before the position are still what was read.
    fn bytes_still_there(&self, file: &File) -> io::Result<bool> {
        let head = self.pos.head_len as usize;
        if head > 0 && crc_at(file, 0, head)? != Some(self.pos.head_crc) {
            return Ok(false);
        }
        Ok(self.pos.offset == 0 || self.tail_crc(file)? == Some(self.pos.tail_crc))
    }

    /// The CRC-32 of the (up to `TAIL_MAX`) bytes before the position in `file`.
    fn tail_crc(&self, file: &File) -> io::Result<Option<u32>> {
        let tail = TAIL_MAX.min(self.pos.offset);
        crc_at(file, self.pos.offset - tail, tail as usize)
    }

    /// Reads the file at the path from its start next, as a file of its own (the boundary
    /// rules decide at its first entry), keeping the identity of the one before as lineage.
    fn start_over(&mut self) {
        self.lineage = self.pos.head_crc;
        self.pos = JournalPos {
            offset: 0,
            line: 1,
            head_len: 0,
            head_crc: self.pos.head_crc,
            tail_crc: 0,
            // Until this file has an entry: the file before's, as its head is the lineage.
            origin: self.pos.origin,
            first: self.pos.first,
        };
        self.scanned = 0;
        self.skipping = false;
        self.boundary = true;
        self.skip_upto = 0;
        self.snapshot = None;
        self.checked = (u64::MAX, 0, 0);
    }

    fn line_error(&self, line: u64, message: String) -> LineError {
        LineError {
            file: self.path.clone(),
            line,
            message,
        }
    }

    /// Reads the complete lines from the position on, through one buffer kept between calls.
    /// With `limit`, stops after [`MAX_BATCH`] changes.
    fn read_lines(&mut self, file: &File, batch: &mut ReadBatch, limit: bool) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0; READ_CHUNK];
        }
        let mut buf = std::mem::take(&mut self.buf);
        let before = self.pos.offset;
        let result = self.read_lines_into(file, &mut buf, batch, limit);
        self.buf = buf;
        if self.pos.offset != before {
            if let Some(crc) = self.tail_crc(file)? {
                self.pos.tail_crc = crc;
            }
        }
        result
    }

    fn read_lines_into(
        &mut self,
        file: &File,
        buf: &mut [u8],
        batch: &mut ReadBatch,
        limit: bool,
    ) -> io::Result<()> {
        let mut changes = 0;
        loop {
            let from = if self.skipping {
                self.scanned
            } else {
                self.pos.offset
            };
            let n = file.read_at(buf, from)?;
            if n == 0 {
                self.scanned = self.scanned.max(from);
                batch.at_end = true;
                return Ok(());
            }
            let mut start = 0;
            if self.skipping {
                match memchr::memchr(b'\n', &buf[..n]) {
                    Some(i) => {
                        self.skipping = false;
                        self.pos.offset = from + i as u64 + 1;
                        self.pos.line += 1;
                        start = i + 1;
                    }
                    None => {
                        self.scanned = from + n as u64;
                        if n < buf.len() {
                            batch.at_end = true;
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            while let Some(end) = memchr::memchr(b'\n', &buf[start..n]) {
                let line = &buf[start..start + end];
                if self.pos.offset == 0 {
                    let len = (end + 1).min(HEAD_MAX);
                    self.pos.head_len = len as u32;
                    self.pos.head_crc = crc32fast::hash(&buf[start..start + len]);
                }
                start += end + 1;
                self.pos.offset += end as u64 + 1;
                let line_no = self.pos.line;
                self.pos.line += 1;
                if line.len() > MAX_LINE {
                    batch.errors.push(self.line_error(
                        line_no,
                        format!(
                            "line is longer than {MAX_LINE} bytes ({}); skipped",
                            line.len()
                        ),
                    ));
                } else if self.take_line(line, line_no, batch) {
                    changes += 1;
                }
                if limit && changes >= MAX_BATCH {
                    self.scanned = self.pos.offset;
                    return Ok(());
                }
            }
            let rest = (n - start) as u64;
            self.scanned = self.pos.offset + rest;
            if rest > MAX_LINE as u64 {
                batch.errors.push(self.line_error(
                    self.pos.line,
                    format!(
                        "line is longer than {MAX_LINE} bytes and has no newline yet; skipped to its end"
                    ),
                ));
                self.skipping = true;
            }
            if n < buf.len() {
                batch.at_end = true;
                return Ok(());
            }
        }
    }

    /// Takes one complete line (without its newline) into `batch`; returns whether it was a
    /// change passed on.
    fn take_line(&mut self, line: &[u8], line_no: u64, batch: &mut ReadBatch) -> bool {
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

/// What tells a file's content changed without reading it: size and modification time.
fn stamp(meta: &std::fs::Metadata) -> (u64, i64, i64) {
    (meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// The CRC-32 of `len` bytes of `file` at `at` (None if the file is shorter).
fn crc_at(file: &File, at: u64, len: usize) -> io::Result<Option<u32>> {
    let mut b = [0u8; HEAD_MAX];
    let b = &mut b[..len.min(HEAD_MAX)];
    match file.read_exact_at(b, at) {
        Ok(()) => Ok(Some(crc32fast::hash(b))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a journal for reading without updating its access time on every read (O_NOATIME,
/// which only the file's owner or root may ask for; others get a plain open).
fn open_for_tailing(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
