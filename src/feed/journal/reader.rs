//! Reading a journal while it is written, rotated, truncated, replaced or deleted: the
//! reader follows its path, checks at every read that the bytes it read are still there, and
//! decides at the first entry of every new file how it relates to what was applied (see the
//! module above). No parsing here (`format`), no writing (`writer`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::format::MAX_LINE;
use crate::feed::batch::{LineError, NoticeKind, ReadBatch};

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

mod entries;
#[cfg(test)]
mod tests;
