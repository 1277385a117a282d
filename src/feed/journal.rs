//! The journal: an append-only text file of changes, one per line, the embedded default feed.
//!
//! ```text
//! # comments and blank lines are ignored
//! <seq> set <replid> <user> <slug> <cluster>
//! <seq> delete <replid>
//! ```
//! Fields are separated by spaces or tabs; names are labels (letters, digits, `-`, `_`),
//! stored lower-case. Sequence numbers increase strictly; a line whose number does not is
//! reported and skipped. A last line without its newline is incomplete (a writer may be half
//! way through it) and is left for the next read.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::feed::change::{Change, Sequenced};
use crate::name::check_label;

/// A bad journal line: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub file: PathBuf,
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Parses one line (without its newline). `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str) -> Result<Option<Sequenced>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split_ascii_whitespace();
    let seq_text = fields.next().unwrap_or_default();
    let seq: u64 = seq_text
        .parse()
        .map_err(|_| format!("sequence number {seq_text:?} is not a whole number"))?;
    if seq == 0 {
        return Err("sequence numbers start at 1".into());
    }
    let verb = fields.next().ok_or("missing verb (set or delete)")?;
    let mut label = |what: &str| -> Result<_, String> {
        let text = fields
            .next()
            .ok_or_else(|| format!("{verb}: missing {what}"))?;
        check_label(text).map_err(|e| format!("{what}: {e}"))
    };
    let change = match verb {
        "set" => Change::Upsert {
            id: label("repl id")?,
            user: label("user")?,
            slug: label("slug")?,
            cluster: label("cluster")?,
        },
        "delete" => Change::Delete {
            id: label("repl id")?,
        },
        other => return Err(format!("unknown verb {other:?} (expected set or delete)")),
    };
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected field {extra:?} after the {verb} change"
        ));
    }
    Ok(Some(Sequenced { seq, change }))
}

/// Reads a journal incrementally: every call returns the complete lines added since the last.
pub struct JournalReader {
    path: PathBuf,
    /// The journal, kept open between reads once it exists.
    file: Option<File>,
    /// Byte offset of the first unread line.
    offset: u64,
    /// Line number of the first unread line (1-based).
    line: u64,
    /// The highest sequence number accepted so far.
    last_seq: u64,
    /// Lines at or below this sequence number are already applied (from a checkpoint) and
    /// are skipped without complaint.
    skip_upto: u64,
    /// The read buffer, kept between reads.
    buf: Vec<u8>,
}

/// The result of one read.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub changes: Vec<Sequenced>,
    pub errors: Vec<LineError>,
}

impl JournalReader {
    /// A reader from the start of `path` that accepts only sequence numbers above `after_seq`
    /// (lines at or below it are skipped silently: they are already applied).
    pub fn new(path: &Path, after_seq: u64) -> JournalReader {
        JournalReader {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            line: 1,
            last_seq: after_seq,
            skip_upto: after_seq,
            buf: Vec::new(),
        }
    }

    /// A reader that continues at byte `offset` (line number `line`), where a checkpoint at
    /// `last_seq` left off. Fails if the journal does not match: shorter than `offset`, or
    /// `offset` not at the start of a line.
    pub fn resume(path: &Path, offset: u64, line: u64, last_seq: u64) -> io::Result<JournalReader> {
        if offset > 0 {
            let mut f = File::open(path)?;
            if f.metadata()?.len() < offset {
                return Err(io::Error::other(format!(
                    "{} is shorter than the checkpoint's position {offset}",
                    path.display()
                )));
            }
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(offset - 1))?;
            f.read_exact(&mut b)?;
            if b[0] != b'\n' {
                return Err(io::Error::other(format!(
                    "{}: the checkpoint's position {offset} is not at the start of a line",
                    path.display()
                )));
            }
        }
        Ok(JournalReader {
            path: path.to_path_buf(),
            file: None,
            offset,
            line,
            last_seq,
            skip_upto: last_seq,
            buf: Vec::new(),
        })
    }

    /// The byte offset and line number of the first line not yet read.
    pub fn position(&self) -> (u64, u64) {
        (self.offset, self.line)
    }

    /// The highest sequence number read so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether the journal holds bytes not read yet (false when it cannot tell).
    pub fn has_unread(&self) -> bool {
        self.file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.len() > self.offset)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every complete line added since the last call. A missing file reads as empty.
    pub fn read_new(&mut self) -> io::Result<ReadBatch> {
        let mut batch = ReadBatch::default();
        if self.file.is_none() {
            match open_for_tailing(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(batch),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.take() else {
            return Ok(batch);
        };
        let result = self.read_lines(&file, &mut batch);
        self.file = Some(file);
        result.map(|()| batch)
    }

    /// Reads the complete lines from the current offset on, in chunks through one buffer kept
    /// between calls (a poll of a busy journal allocates nothing for the reading).
    fn read_lines(&mut self, file: &File, batch: &mut ReadBatch) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.buf.is_empty() {
            self.buf = vec![0; READ_CHUNK];
        }
        loop {
            let n = file.read_at(&mut self.buf, self.offset)?;
            if n == 0 {
                let len = file.metadata()?.len();
                if len < self.offset {
                    return Err(io::Error::other(format!(
                        "{} shrank from {} to {len} bytes: journals are append-only",
                        self.path.display(),
                        self.offset
                    )));
                }
                return Ok(());
            }
            let buf = std::mem::take(&mut self.buf);
            let mut start = 0;
            while let Some(end) = buf[start..n].iter().position(|&b| b == b'\n') {
                let line = &buf[start..start + end];
                start += end + 1;
                self.offset += end as u64 + 1;
                self.take_line(line, batch);
            }
            let full = n == buf.len();
            self.buf = buf;
            if !full {
                // The end of the file as it was a moment ago (perhaps with a line still being
                // written, read next time): another read now would most likely find nothing.
                return Ok(());
            }
            if start == 0 {
                // A line longer than the buffer: make room for it.
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
    }

    /// Parses one complete line (without its newline) into `batch`.
    fn take_line(&mut self, line: &[u8], batch: &mut ReadBatch) {
        let line_no = self.line;
        self.line += 1;
        let result = match std::str::from_utf8(line) {
            Ok(text) => parse_line(text),
            Err(_) => Err("line is not valid UTF-8".into()),
        };
        match result {
            Ok(None) => {}
            Ok(Some(change)) if change.seq <= self.skip_upto => {}
            Ok(Some(change)) if change.seq <= self.last_seq => {
                batch.errors.push(LineError {
                    file: self.path.clone(),
                    line: line_no,
                    message: format!(
                        "sequence number {} does not follow {}; line skipped",
                        change.seq, self.last_seq
                    ),
                });
            }
            Ok(Some(change)) => {
                self.last_seq = change.seq;
                batch.changes.push(change);
            }
            Err(message) => batch.errors.push(LineError {
                file: self.path.clone(),
                line: line_no,
                message,
            }),
        }
    }
}

/// How much of the journal one read takes at most (longer lines get a larger buffer).
const READ_CHUNK: usize = 256 * 1024;

/// Appends changes to a journal as whole lines, under an exclusive `flock` so that concurrent
/// writers never interleave, numbering them after the journal's last sequence number.
pub fn append(path: &Path, changes: &[Change]) -> io::Result<Vec<Sequenced>> {
    use std::os::unix::io::AsRawFd;
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // SAFETY: flock on a file descriptor we own; released when `file` is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reader = JournalReader::new(path, 0);
    reader.read_new()?;
    let last_seq = reader.last_seq();
    // A torn last line (a writer that died mid-line) must not swallow ours: end it first.
    let len = file.metadata()?.len();
    let mut text = String::new();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    let mut written = Vec::with_capacity(changes.len());
    for (seq, change) in (last_seq + 1..).zip(changes) {
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
    Ok(written)
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

    #[test]
    fn parses_lines() {
        assert_eq!(parse_line("  # comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        let s = parse_line("7 set R1 Mark coolgame us-east")
            .unwrap()
            .unwrap();
        assert_eq!(s.seq, 7);
        assert_eq!(s.to_string(), "7 set r1 mark coolgame us-east");
        let d = parse_line("8\tdelete r1").unwrap().unwrap();
        assert_eq!(d.to_string(), "8 delete r1");
    }

    #[test]
    fn reports_bad_lines() {
        for (line, needle) in [
            ("x set a b c d", "not a whole number"),
            ("0 set a b c d", "start at 1"),
            ("1", "missing verb"),
            ("1 move a", "unknown verb"),
            ("1 set a b c", "missing cluster"),
            ("1 set a b.c d e", "user"),
            ("1 delete a extra", "unexpected field"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn reads_incrementally_and_reports_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        std::fs::write(
            &path,
            "1 set a u s c\n2 bogus\n2 delete a\n1 delete a\n3 set b u",
        )
        .unwrap();
        let mut r = JournalReader::new(&path, 0);
        let b = r.read_new().unwrap();
        assert_eq!(b.changes.len(), 2);
        assert_eq!(b.errors.len(), 2);
        assert_eq!(b.errors[0].line, 2);
        assert!(b.errors[0].to_string().contains("j.log:2: unknown verb"));
        assert_eq!(b.errors[1].line, 4);
        assert!(b.errors[1].message.contains("does not follow"));
        // The torn last line is not read until it is complete.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b" s c\n4 delete b\n").unwrap();
        let b = r.read_new().unwrap();
        assert_eq!(b.errors, vec![]);
        assert_eq!(
            b.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(r.last_seq(), 4);
        assert!(r.read_new().unwrap().changes.is_empty());
    }

    #[test]
    fn reads_across_chunks_long_lines_and_refuses_a_shrunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        // More than two chunks of lines, then a comment longer than a chunk, then one more.
        let mut text = String::new();
        let mut seq = 0;
        while text.len() < 2 * READ_CHUNK + 100 {
            seq += 1;
            text.push_str(&format!(
                "{seq} set app{seq} user{} slug{seq} c{}\n",
                seq % 97,
                seq % 8
            ));
        }
        text.push('#');
        text.push_str(&"x".repeat(READ_CHUNK + 7));
        text.push('\n');
        text.push_str(&format!("{} delete app1\n", seq + 1));
        std::fs::write(&path, &text).unwrap();
        let mut r = JournalReader::new(&path, 0);
        let b = r.read_new().unwrap();
        assert_eq!(b.errors, vec![]);
        assert_eq!(b.changes.len(), seq + 1);
        assert!(b
            .changes
            .iter()
            .enumerate()
            .all(|(i, c)| c.seq == i as u64 + 1));
        assert_eq!(r.position(), (text.len() as u64, seq as u64 + 3));
        std::fs::write(&path, "1 delete a\n").unwrap();
        let e = r.read_new().unwrap_err();
        assert!(e.to_string().contains("shrank"), "{e}");
    }

    #[test]
    fn append_numbers_and_repairs_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        std::fs::write(&path, "5 set a u s c\n6 set b u").unwrap();
        let w = append(
            &path,
            &[Change::Delete {
                id: "a".parse().unwrap(),
            }],
        )
        .unwrap();
        assert_eq!(w[0].seq, 6);
        let mut r = JournalReader::new(&path, 0);
        let b = r.read_new().unwrap();
        assert_eq!(b.changes.len(), 2);
        assert_eq!(
            b.errors.len(),
            1,
            "the torn line is reported: {:?}",
            b.errors
        );
        assert_eq!(b.changes[1].to_string(), "6 delete a");
    }

    #[test]
    fn skips_already_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        std::fs::write(&path, "1 set a u s c\n2 set b u t c\n3 delete a\n").unwrap();
        let mut r = JournalReader::new(&path, 2);
        let b = r.read_new().unwrap();
        assert_eq!(b.changes.len(), 1);
        assert_eq!(b.changes[0].seq, 3);
    }
}
