//! The journal: an append-only text file of changes, one per line, the embedded default feed.
//!
//! ```text
//! # comments and blank lines are ignored
//! <seq> set <replid> <user> <slug> <cluster>
//! <seq> delete <replid>
//! ```
//! Fields are separated by spaces or tabs; names are labels (letters, digits, `-`, `_`),
//! stored lower-case. Sequence numbers increase strictly and are at most 2^63-1; a line whose
//! number does not increase is reported and skipped. A line counts once its newline is
//! written: a last line without one is left for the next read (and looked at again only when
//! the file grows). Lines longer than [`MAX_LINE`] bytes are reported and skipped without being
//! held in memory.
//!
//! A compacted journal (`clusterns journal compact`) starts with a snapshot block, the whole
//! table as of one sequence number, followed by the changes after it:
//! ```text
//! <seq> snapshot begin <from>
//! <seq> app <replid> <user> <slug> <cluster>
//! <seq> snapshot end <count>
//! ```
//! `<from>` is the identity (8 hex digits) of the journal it was compacted from.
//!
//! The reader follows the file at its path, not the file it first opened: every read checks
//! that the path still names the file it reads, and that the bytes it has read are still
//! there (the first line, and the bytes before its position). When the journal is rotated,
//! replaced, truncated or rewritten, the reader finishes the old file, then reads the new one
//! from its start, and its first entry decides how it relates to what was applied:
//! - a change numbered after the last one applied continues the feed (a jump in numbers is
//!   reported as a gap);
//! - a snapshot compacted from the file just read, at the last sequence number applied, is
//!   skipped (the table already holds it); any other snapshot replaces the table;
//! - a change numbered at or below the last one applied, where the file before held the whole
//!   history and the new one starts where it did, is a rewritten history: the table is rebuilt
//!   from the new file;
//! - any other change at or below it overlaps what was applied without the state before the
//!   file being known: its lines up to the last one applied are taken as applied (a gap).
//!
//! A checkpoint stores the reader's [`JournalPos`] (byte offset, line, and the identity of the
//! file: a hash of its first line and of the bytes before the offset), so a restart resumes
//! only in the file it left and treats any other file by the same rules.
//!
//! `format` parses lines, `reader` follows the file, `writer` appends under the writers' lock
//! and writes snapshot blocks.

mod format;
mod reader;
mod writer;

pub use crate::feed::batch::{Event, LineError, Notice, NoticeKind, ReadBatch};
pub use format::{parse_entry, parse_line, quote, Entry, MAX_LINE, MAX_SEQ, RESERVED_LABEL};
pub use reader::{JournalPos, JournalReader, MAX_BATCH};
pub use writer::{append, lock, write_snapshot, write_snapshot_with, Appended};
