//! NATS JetStream as a [`Source`] (`feed.source = "nats"`): an edge following the stream
//! relays publish. The client runs on its own thread (`follow`); the builder's reads take
//! what it hands over from a bounded channel and turn it into events: change messages into
//! changes (skipping what the table already has), a snapshot loaded mid-run into a reset and
//! the snapshot's contents (`load`). Where to start is `search`.

mod follow;
mod load;
mod search;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{from_scratch, Opened, Source};
use crate::config::NatsConfig;
use crate::feed::batch::{Event, NoticeKind, ReadBatch};
use crate::feed::change::{Change, Sequenced};
use crate::feed::checkpoint::Position;
use crate::feed::nats::message::Message;
use crate::metrics::nats::{stats, NatsStats};
use crate::table::Table;
use follow::{Item, Shared};

/// Messages the thread may hand over ahead of the builder.
const CHANNEL: usize = 64;

/// The most changes one read hands out (the builder publishes between reads).
const READ_MAX: usize = 10_000;

/// The most changes of a snapshot handed out in one batch (the builder folds between
/// batches).
const LOAD_BATCH: usize = 1 << 16;

/// How long a read waits, at least, while the thread has not yet connected (the builder's
/// start-up reads do not wait; this keeps them from spinning).
const STARTING_WAIT: Duration = Duration::from_millis(50);

/// How long an edge without a checkpoint waits for its snapshot at start-up.
const START_WITHIN: Duration = Duration::from_secs(300);

/// The NATS feed.
pub struct NatsFeed {
    rx: Receiver<Item>,
    shared: Arc<Shared>,
    stats: Arc<NatsStats>,
    label: PathBuf,
    /// A snapshot loaded mid-run, not all handed out yet.
    loading: Option<Loading>,
}

/// The rest of a snapshot's contents.
struct Loading {
    /// What goes before: the changes read before it, notices, the reset.
    head: ReadBatch,
    changes: std::vec::IntoIter<Change>,
    seq: u64,
}

impl NatsFeed {
    /// Starts following the stream of `cfg`. With a checkpoint: serves it and continues it
    /// (or loads the snapshot once connected, if the stream no longer continues it). Without:
    /// loads the snapshot first (its table served as the start), or replays the stream from
    /// its beginning when there is no snapshot and the stream still holds it; otherwise the
    /// start fails.
    pub fn open(cfg: &NatsConfig, checkpoint: Option<(Table, Position)>) -> io::Result<Opened> {
        let stats = stats();
        stats.active.store(true, Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let shared = Arc::new(Shared::default());
        let applied = checkpoint.as_ref().map(|(_, p)| p.last_seq);
        follow::spawn(cfg.clone(), applied, tx, shared.clone(), stats.clone())?;
        let feed = NatsFeed {
            rx,
            shared,
            stats,
            label: PathBuf::from("nats"),
            loading: None,
        };
        if let Some((table, position)) = checkpoint {
            feed.stats.applied_seq.store(position.last_seq, Relaxed);
            return Ok(Opened {
                source: Box::new(feed),
                table,
                position,
                resumed: true,
            });
        }
        let started = match feed.rx.recv_timeout(START_WITHIN) {
            Ok(Item::Started(started)) => started.map_err(io::Error::other)?,
            Ok(_) => return Err(io::Error::other("nats: the client thread did not start")),
            Err(_) => {
                return Err(io::Error::other(format!(
                    "nats: no snapshot within {} s",
                    START_WITHIN.as_secs()
                )))
            }
        };
        match started {
            Some((table, seq)) => {
                feed.stats.applied_seq.store(seq, Relaxed);
                // Not the checkpoint's: a first checkpoint is due (`resumed` false), so that a
                // restart does not download the snapshot again.
                Ok(Opened {
                    source: Box::new(feed),
                    table,
                    position: Position {
                        last_seq: seq,
                        ..Position::default()
                    },
                    resumed: false,
                })
            }
            None => Ok(from_scratch(Box::new(feed), 0)),
        }
    }

    /// Queues a snapshot's contents, `head` (ending with the reset) first.
    fn start_loading(&mut self, head: ReadBatch, table: &Table, seq: u64) {
        let now = crate::feed::status::now_ms() / 1000;
        match load::changes_of(table, now) {
            Ok(changes) => {
                self.loading = Some(Loading {
                    head,
                    changes: changes.into_iter(),
                    seq,
                })
            }
            Err(e) => {
                // Cannot happen for a verified snapshot; said loudly all the same.
                self.stats.snapshots_refused.fetch_add(1, Relaxed);
                tracing::error!("nats: snapshot at change {seq}: {e}; refused");
                let mut head = head;
                head.events.retain(|e| !matches!(e, Event::Reset { .. }));
                self.loading = Some(Loading {
                    head,
                    changes: Vec::new().into_iter(),
                    seq,
                });
            }
        }
    }

    /// The next batch of a queued snapshot, if one is queued.
    fn next_loaded(&mut self) -> Option<ReadBatch> {
        let loading = self.loading.as_mut()?;
        let seq = loading.seq;
        let mut batch = std::mem::take(&mut loading.head);
        let n = loading.changes.len().min(LOAD_BATCH);
        batch.events.reserve(n);
        batch.events.extend(
            loading
                .changes
                .by_ref()
                .take(n)
                .map(|change| Event::Change {
                    change: Sequenced { seq, change },
                    line: 0,
                }),
        );
        let done = loading.changes.len() == 0;
        if done {
            self.loading = None;
        }
        batch.at_end = done && self.rx.is_empty() && self.shared.idle.load(Relaxed);
        Some(batch)
    }
}

impl Drop for NatsFeed {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
    }
}

impl Source for NatsFeed {
    fn label(&self) -> &Path {
        &self.label
    }

    fn read(&mut self, last_seq: u64, wait: Duration) -> io::Result<ReadBatch> {
        if let Some(batch) = self.next_loaded() {
            return Ok(batch);
        }
        let began = Instant::now();
        let starting = !self.shared.started.load(Relaxed);
        let wait = if starting {
            wait.max(STARTING_WAIT)
        } else {
            wait
        };
        let mut next = match self.rx.recv_timeout(wait) {
            Ok(item) => Some(item),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("nats: the client thread has stopped"))
            }
        };
        let mut batch = ReadBatch {
            waited: began.elapsed(),
            ..ReadBatch::default()
        };
        // The last change the table has, as this batch goes.
        let mut floor = last_seq;
        let mut taken = 0;
        while let Some(item) = next.take() {
            match item {
                Item::Changes {
                    message: Message::Changes { changes, .. },
                    published_ms,
                    ..
                } => {
                    for change in changes {
                        if change.seq <= floor {
                            continue;
                        }
                        floor = change.seq;
                        batch.events.push(Event::Change { change, line: 0 });
                        taken += 1;
                    }
                    self.stats.applied_published_ms.store(published_ms, Relaxed);
                }
                // The thread turns resets into snapshots.
                Item::Changes { .. } | Item::Started(_) => {}
                Item::Bad => batch.rejected += 1,
                Item::Notice(kind, message) => batch.notice(kind, message),
                Item::Snapshot { table, seq } => {
                    batch.notice(
                        NoticeKind::Reload,
                        format!(
                            "nats: reloading the whole table from the snapshot ({} apps at change {seq})",
                            table.len()
                        ),
                    );
                    batch.events.push(Event::Reset { seq });
                    self.stats.applied_seq.store(seq, Relaxed);
                    self.start_loading(batch, &table, seq);
                    return Ok(self.next_loaded().unwrap_or_default());
                }
            }
            if taken >= READ_MAX {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        self.stats.applied_seq.store(floor, Relaxed);
        let empty = self.rx.is_empty();
        batch.at_end = empty && self.shared.idle.load(Relaxed);
        batch.failed = empty
            && self.shared.started.load(Relaxed)
            && !self.shared.up.load(Relaxed)
            && batch.events.is_empty();
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::journal::parse_line;
    use crossbeam_channel::Sender;

    fn feed() -> (NatsFeed, Sender<Item>) {
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let shared = Arc::new(Shared::default());
        shared.started.store(true, Relaxed);
        shared.up.store(true, Relaxed);
        let feed = NatsFeed {
            rx,
            shared,
            stats: Arc::new(NatsStats::default()),
            label: PathBuf::from("nats"),
            loading: None,
        };
        (feed, tx)
    }

    fn changes(lines: &[&str]) -> Item {
        let changes: Vec<Sequenced> = lines
            .iter()
            .map(|l| parse_line(l).unwrap().unwrap())
            .collect();
        Item::Changes {
            published_ms: 1_000,
            message: Message::Changes {
                first: changes[0].seq,
                last: changes[changes.len() - 1].seq,
                changes,
            },
        }
    }

    #[test]
    fn changes_after_the_table_are_taken_once_and_bad_messages_counted() {
        let (mut f, tx) = feed();
        tx.send(changes(&["4 delete r1", "5 delete r2", "6 delete r3"]))
            .unwrap();
        // Overlaps the one before: only 7 is new.
        tx.send(changes(&["6 delete r3", "7 delete r4"])).unwrap();
        tx.send(Item::Bad).unwrap();
        let b = f.read(4, Duration::ZERO).unwrap();
        assert_eq!(b.seqs(), [Some(5), Some(6), Some(7)]);
        assert_eq!(b.rejected, 1);
        // Not idle yet: more may be pending in the stream.
        assert!(!b.at_end && !b.failed);
        assert_eq!(f.stats.applied_seq.load(Relaxed), 7);
        assert_eq!(f.stats.applied_published_ms.load(Relaxed), 1_000);
        f.shared.idle.store(true, Relaxed);
        let b = f.read(7, Duration::from_millis(1)).unwrap();
        assert!(b.events.is_empty() && b.at_end && !b.failed);
        // Disconnected, nothing waiting: failed (the table stays).
        f.shared.up.store(false, Relaxed);
        assert!(f.read(7, Duration::ZERO).unwrap().failed);
    }

    #[test]
    fn a_snapshot_mid_run_is_a_reset_then_its_contents_then_what_follows() {
        let (mut f, tx) = feed();
        f.shared.idle.store(true, Relaxed);
        tx.send(changes(&["4 delete r1"])).unwrap();
        let mut table = Table::default();
        for l in ["9 set r1 mark game east", "9 set r2 ann site west"] {
            let s = parse_line(l).unwrap().unwrap();
            s.change.apply_to(&mut table).unwrap();
        }
        tx.send(Item::Snapshot { table, seq: 9 }).unwrap();
        tx.send(changes(&["9 delete r2", "10 delete r1"])).unwrap();
        let b = f.read(3, Duration::ZERO).unwrap();
        // The change before it, the reset, the snapshot's two apps at its sequence number; the
        // table being rebuilt is not complete until the read after.
        assert_eq!(b.seqs(), [Some(4), None, Some(9), Some(9)]);
        assert_eq!(b.notices.len(), 1);
        assert!(!b.at_end, "more is waiting");
        let b = f.read(9, Duration::ZERO).unwrap();
        assert_eq!(b.seqs(), [Some(10)]);
        assert!(b.at_end);
    }

    #[test]
    fn a_large_snapshot_is_handed_out_in_batches() {
        let (mut f, _tx) = feed();
        f.shared.idle.store(true, Relaxed);
        let mut table = Table::default();
        for i in 0..LOAD_BATCH + 5 {
            let s = parse_line(&format!("9 set r{i} u{i} s east"))
                .unwrap()
                .unwrap();
            s.change.apply_to(&mut table).unwrap();
        }
        f.start_loading(ReadBatch::default(), &table, 9);
        let first = f.next_loaded().unwrap();
        assert_eq!(first.events.len(), LOAD_BATCH);
        assert!(!first.at_end);
        let last = f.read(9, Duration::ZERO).unwrap();
        assert_eq!(last.events.len(), 5);
        assert!(last.at_end);
        assert!(f.loading.is_none());
    }
}
