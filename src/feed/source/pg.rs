//! PostgreSQL as a [`Source`]: a [`PgSource`] polled after the last change applied. A load of
//! the whole table (at start-up without a usable checkpoint, and after a gap: changes pruned
//! before they were read) is handed out as ordinary batches of changes at the load's sequence
//! number, after a reset when a table is being replaced.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{from_scratch, Opened, Source};
use crate::feed::batch::{Event, NoticeKind, ReadBatch};
use crate::feed::change::{Change, Sequenced};
use crate::feed::checkpoint::Position;
use crate::feed::postgres::{PgError, PgSource};
use crate::table::Table;

/// The most changes one poll asks for.
const POLL_BATCH: usize = 10_000;

/// The most apps of a whole-table load handed out in one batch (the builder folds between
/// batches, so that a large load never piles up in the overlay).
const LOAD_BATCH: usize = 1 << 16;

/// The PostgreSQL feed.
pub struct PgFeed {
    pg: PgSource,
    label: PathBuf,
    /// A whole-table load not handed out yet.
    loading: Option<Loading>,
    /// The most apps of a load per batch ([`LOAD_BATCH`]).
    load_batch: usize,
}

/// The rest of a whole-table load.
struct Loading {
    /// What goes before the first apps: notices, a reset, the rows refused.
    head: ReadBatch,
    apps: std::vec::IntoIter<Change>,
    seq: u64,
}

impl PgFeed {
    /// Connects to the database at `conninfo`, and resumes from the checkpoint if the change
    /// log still holds every change after it (or the database cannot say: the changes after
    /// it arrive once it is back). Otherwise loads the whole table, handed out by the first
    /// reads into an empty table; that load failing fails the start.
    pub fn open(conninfo: &str, checkpoint: Option<(Table, Position)>) -> io::Result<Opened> {
        let mut feed = PgFeed {
            pg: PgSource::new(conninfo),
            label: PathBuf::from("postgres"),
            loading: None,
            load_batch: LOAD_BATCH,
        };
        let mut head = ReadBatch::default();
        if let Some((table, position)) = checkpoint {
            match feed.pg.pruned_upto() {
                Ok(pruned) if pruned > position.last_seq => head.notice(
                    NoticeKind::Gap,
                    format!(
                        "postgres: the change log was pruned past the checkpoint (at sequence {}, pruned up to {pruned}); loading the whole table",
                        position.last_seq
                    ),
                ),
                resumable => {
                    if let Err(e) = resumable {
                        // Serve the checkpoint; the changes after it arrive once the database
                        // is back.
                        tracing::warn!("postgres: {e}; starting from the checkpoint");
                    }
                    return Ok(Opened {
                        source: Box::new(feed),
                        table,
                        position,
                        resumed: true,
                    });
                }
            }
        }
        let (apps, seq) = feed
            .pg
            .load_all()
            .map_err(|e| io::Error::other(format!("postgres: {e}")))?;
        if !head.notices.is_empty() {
            head.notice(NoticeKind::Reload, reloading(apps.len(), seq));
        }
        feed.start_loading(head, apps, seq);
        // At the load's sequence number even if it holds no app.
        Ok(from_scratch(Box::new(feed), seq))
    }

    /// Queues a whole-table load, `head` first.
    fn start_loading(&mut self, mut head: ReadBatch, apps: Vec<Change>, seq: u64) {
        head.rejected += self.pg.take_rejected();
        self.loading = Some(Loading {
            head,
            apps: apps.into_iter(),
            seq,
        });
    }

    /// The next batch of a queued load, if one is queued.
    fn next_loaded(&mut self) -> Option<ReadBatch> {
        let loading = self.loading.as_mut()?;
        let seq = loading.seq;
        let mut batch = std::mem::take(&mut loading.head);
        let n = loading.apps.len().min(self.load_batch);
        batch.events.reserve(n);
        batch
            .events
            .extend(loading.apps.by_ref().take(n).map(|change| Event::Change {
                change: Sequenced { seq, change },
                line: 0,
            }));
        batch.at_end = loading.apps.len() == 0;
        if batch.at_end {
            self.loading = None;
        }
        Some(batch)
    }

    /// After a gap: the table is reloaded whole (aside; it replaces the served one when
    /// complete).
    fn reload(&mut self, gap: &PgError) -> ReadBatch {
        let mut head = ReadBatch::default();
        head.notice(NoticeKind::Gap, format!("postgres: {gap}"));
        match self.pg.load_all() {
            Ok((apps, seq)) => {
                head.notice(NoticeKind::Reload, reloading(apps.len(), seq));
                head.events.push(Event::Reset { seq });
                self.start_loading(head, apps, seq);
                self.next_loaded().unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!("postgres: reloading after a gap: {e}");
                head
            }
        }
    }
}

/// The notice of a whole-table load.
fn reloading(apps: usize, seq: u64) -> String {
    format!("postgres: reloading the whole table ({apps} apps at sequence {seq})")
}

impl Source for PgFeed {
    fn label(&self) -> &Path {
        &self.label
    }

    fn read(&mut self, last_seq: u64, wait: Duration) -> io::Result<ReadBatch> {
        if let Some(batch) = self.next_loaded() {
            return Ok(batch);
        }
        let mut batch = match self.pg.poll(last_seq, wait, POLL_BATCH) {
            Ok(changes) => ReadBatch {
                at_end: changes.len() < POLL_BATCH,
                events: changes
                    .into_iter()
                    .map(|change| Event::Change { change, line: 0 })
                    .collect(),
                rejected: self.pg.take_rejected(),
                ..ReadBatch::default()
            },
            Err(gap @ PgError::Gap { .. }) => self.reload(&gap),
            Err(e) => {
                // Keep answering from the last snapshot; the source reconnects itself.
                tracing::warn!("postgres: {e}");
                ReadBatch {
                    failed: true,
                    ..ReadBatch::default()
                }
            }
        };
        batch.waited = self.pg.take_waited();
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::check_label;

    fn feed(load_batch: usize) -> PgFeed {
        PgFeed {
            // Never connects: nothing here calls the database.
            pg: PgSource::new("host=/nonexistent"),
            label: PathBuf::from("postgres"),
            loading: None,
            load_batch,
        }
    }

    fn app(id: &str) -> Change {
        let l = |s: &str| check_label(s).unwrap();
        Change::Upsert {
            id: l(id),
            user: l("u"),
            slug: l(id),
            cluster: l("c"),
        }
    }

    #[test]
    fn a_load_is_handed_out_in_batches_head_first_and_ends_at_its_last() {
        let mut f = feed(2);
        let mut head = ReadBatch::default();
        head.notice(NoticeKind::Reload, reloading(5, 9));
        head.events.push(Event::Reset { seq: 9 });
        let apps = ["a", "b", "c", "d", "e"].map(app).to_vec();
        f.start_loading(head, apps.clone(), 9);
        let mut got = Vec::new();
        let first = f.next_loaded().unwrap();
        assert_eq!(first.notices.len(), 1);
        assert_eq!(first.seqs(), [None, Some(9), Some(9)]);
        assert!(!first.at_end);
        got.extend(first.changes().map(|s| s.change.clone()));
        let second = f.next_loaded().unwrap();
        assert!(second.notices.is_empty() && !second.at_end);
        got.extend(second.changes().map(|s| s.change.clone()));
        let last = f.next_loaded().unwrap();
        assert!(last.at_end);
        got.extend(last.changes().map(|s| s.change.clone()));
        assert_eq!(got, apps);
        assert!(f.next_loaded().is_none(), "then the source polls again");
    }

    #[test]
    fn an_empty_load_is_one_batch_at_its_end() {
        let mut f = feed(LOAD_BATCH);
        f.start_loading(ReadBatch::default(), Vec::new(), 4);
        let b = f.next_loaded().unwrap();
        assert!(b.events.is_empty() && b.at_end);
        assert!(f.next_loaded().is_none());
    }
}
