//! The journal as a [`Source`]: a [`JournalReader`] following the file, and the inotify watch
//! that lets an idle builder sleep until a writer appends.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{from_scratch, Opened, Source};
use crate::feed::batch::{NoticeKind, ReadBatch};
use crate::feed::checkpoint::Position;
use crate::feed::journal::JournalReader;
use crate::feed::watch::Watch;
use crate::table::Table;

/// The longest an idle builder sleeps on its journal watch (it then checks its timers, the
/// stop flag, and the journal again, in case the watch missed a write).
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// How often the builder tries again to set a watch on a journal that had none.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The journal feed.
pub struct JournalFeed {
    reader: JournalReader,
    /// The watch on the journal file, once set.
    watch: Option<Watch>,
    /// When setting one was last tried.
    tried: Option<Instant>,
}

impl JournalFeed {
    /// Follows the journal at `path`, from the checkpoint's position if there is one (the
    /// reader checks that the journal is still the file the checkpoint left).
    pub fn open(path: &Path, checkpoint: Option<(Table, Position)>) -> Opened {
        match checkpoint {
            Some((table, position)) => Opened {
                source: Box::new(JournalFeed::new(JournalReader::resume(
                    path,
                    position.journal,
                    position.last_seq,
                ))),
                table,
                position,
                resumed: true,
            },
            None => from_scratch(Box::new(JournalFeed::new(JournalReader::new(path))), 0),
        }
    }

    fn new(reader: JournalReader) -> JournalFeed {
        JournalFeed {
            reader,
            watch: None,
            tried: None,
        }
    }
}

impl Source for JournalFeed {
    fn label(&self) -> &Path {
        self.reader.path()
    }

    fn read(&mut self, _last_seq: u64, _wait: Duration) -> io::Result<ReadBatch> {
        let batch = self.reader.read_new()?;
        if batch
            .notices
            .iter()
            .any(|n| matches!(n.kind, NoticeKind::Switched | NoticeKind::Missing))
        {
            // The journal is another file now (or none): the watch is set again.
            self.watch = None;
            self.tried = None;
        }
        Ok(batch)
    }

    fn last_seq(&self) -> Option<u64> {
        // The reader knows the position best: a snapshot with no app (an empty table
        // compacted) moves it without a change.
        Some(self.reader.last_seq())
    }

    fn position(&self, last_seq: u64) -> Position {
        Position {
            last_seq,
            journal: self.reader.position(),
        }
    }

    fn mid_block(&self) -> bool {
        self.reader.in_snapshot()
    }

    fn journal_identity(&self) -> Option<u32> {
        Some(self.reader.identity())
    }

    /// Busy (changes applied): lets the next batch gather for a poll interval. Idle: waits,
    /// with nothing left to read, until a writer appends (or, without a watch, for a poll
    /// interval).
    fn pause(&mut self, applied: usize, interval: Duration) {
        if applied > 0 {
            std::thread::sleep(interval);
            return;
        }
        if self.watch.is_none() && self.tried.is_none_or(|t| t.elapsed() >= WATCH_RETRY) {
            self.tried = Some(Instant::now());
            self.watch = Watch::new(self.reader.path());
        }
        match &self.watch {
            Some(w) => {
                // Events of the lines already read go; a write after this is caught by the
                // look that follows or wakes the wait.
                w.drain();
                if !self.reader.has_unread() {
                    w.wait(IDLE_WAIT);
                }
            }
            // No file to watch: a missing journal is looked for at the idle pace, not the
            // busy one.
            None if self.reader.is_missing() => std::thread::sleep(IDLE_WAIT),
            None => std::thread::sleep(interval),
        }
    }
}
