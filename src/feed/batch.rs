//! What one read of a feed produces, whatever the source: the changes (and resets) in order,
//! the lines or rows refused, and what happened to the feed itself (a switched or missing
//! file, a gap, a reload), for the builder to apply, count and log.

use std::path::PathBuf;

use crate::feed::change::Sequenced;

/// A bad journal line (or a change of another source, at line 0): where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub file: PathBuf,
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Line 0: about the feed as a whole, or a source without lines (PostgreSQL).
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            n => write!(f, "{}:{n}: {}", self.file.display(), self.message),
        }
    }
}

/// What happened to the feed (the journal file, the database's change log), for the log and
/// the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The reader moved to another file (rotated, replaced, truncated, rewritten, re-created)
    /// or found the file does not continue a checkpoint.
    Switched,
    /// The journal does not exist (deleted, moved away, never created).
    Missing,
    /// The feed continues after a jump in sequence numbers (a new journal file, a pruned
    /// change log): changes may be lost.
    Gap,
    /// The table is rebuilt from the feed (a [`Event::Reset`] was emitted).
    Reload,
    /// A snapshot that repeats what the table holds was skipped.
    SnapshotSkipped,
}

/// Something that happened to the feed.
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
    /// replaces the served table once the reader has reached the end of the feed.
    Reset { seq: u64 },
}

/// The result of one read.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub events: Vec<Event>,
    pub errors: Vec<LineError>,
    pub notices: Vec<Notice>,
    /// Whether the read reached the end of the feed (false: more is waiting).
    pub at_end: bool,
    /// Changes the source refused and reported itself (rows it could not decode), to count.
    pub rejected: u64,
    /// The read failed and the source will try again (the database is away): the served
    /// table stays, and loading stops waiting for the end of the feed.
    pub failed: bool,
    /// How long the read waited for the feed to grow (or for a retry), not working: the
    /// builder leaves it out of its slow-step timing.
    pub waited: std::time::Duration,
}

impl ReadBatch {
    /// The changes read, in order (resets left out).
    pub fn changes(&self) -> impl Iterator<Item = &Sequenced> {
        self.events.iter().filter_map(|e| match e {
            Event::Change { change, .. } => Some(change),
            Event::Reset { .. } => None,
        })
    }

    /// Adds a notice.
    pub fn notice(&mut self, kind: NoticeKind, message: String) {
        self.notices.push(Notice { kind, message });
    }
}

#[cfg(test)]
impl ReadBatch {
    /// The sequence number of each event read, `None` for a reset (for tests).
    pub(crate) fn seqs(&self) -> Vec<Option<u64>> {
        self.events
            .iter()
            .map(|e| match e {
                Event::Change { change, .. } => Some(change.seq),
                Event::Reset { .. } => None,
            })
            .collect()
    }
}
