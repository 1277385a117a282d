//! Where changes come from: one trait, [`Source`], that the builder reads through, and one
//! factory, [`open`], that opens the configured source (resumed from a checkpoint where it can
//! be). The journal ([`JournalFeed`]), PostgreSQL ([`PgFeed`]) and NATS JetStream
//! ([`NatsFeed`]) are its implementations; another source is another implementation and another arm in [`open`],
//! nothing in the builder.

mod journal;
mod nats;
mod pg;

use std::io;
use std::path::Path;
use std::time::Duration;

pub use journal::JournalFeed;
pub use nats::NatsFeed;
pub use pg::PgFeed;

use crate::config::{Config, SourceConfig};
use crate::feed::batch::ReadBatch;
use crate::feed::checkpoint::Position;
use crate::table::Table;

/// A feed of changes, as the builder reads it.
pub trait Source: Send {
    /// What logs, metrics and rejections call this source (the journal's path, `postgres`).
    fn label(&self) -> &Path;

    /// Reads what the feed holds after `last_seq` (the last change the builder applied),
    /// waiting up to `wait` for it where the source waits itself. A source that is away for a
    /// while (a database) says so in [`ReadBatch::failed`]; an error is one the builder
    /// reports (loading fails on it).
    fn read(&mut self, last_seq: u64, wait: Duration) -> io::Result<ReadBatch>;

    /// The last sequence number the source has read, where it keeps the count itself and knows
    /// better than the changes it returned (a journal snapshot with no app moves it); `None`:
    /// the builder's count of the changes it applied stands.
    fn last_seq(&self) -> Option<u64> {
        None
    }

    /// What a checkpoint stores, with `last_seq` the last change applied: where a restart
    /// resumes.
    fn position(&self, last_seq: u64) -> Position {
        Position {
            last_seq,
            ..Position::default()
        }
    }

    /// Whether a checkpoint now would record a position a restart cannot resume from (inside
    /// a journal's snapshot block).
    fn mid_block(&self) -> bool {
        false
    }

    /// The identity of the journal file followed (see `JournalReader::identity`); `None` for
    /// sources without files.
    fn journal_identity(&self) -> Option<u32> {
        None
    }

    /// What the builder's thread does after a read that applied `applied` changes, before the
    /// next read: wait for a batch to gather, or for the feed to grow; nothing where the read
    /// waits itself.
    fn pause(&mut self, applied: usize, interval: Duration) {
        let _ = (applied, interval);
    }
}

/// An opened source, and the table and position the builder starts from.
pub struct Opened {
    pub source: Box<dyn Source>,
    pub table: Table,
    pub position: Position,
    /// Whether the table and position are the checkpoint's (else an empty table; the
    /// source's first reads then bring the whole table).
    pub resumed: bool,
}

/// Opens the source `config`'s `[feed]` names (with its `[nats]` for a NATS source), resumed
/// from `checkpoint` (its table and position) where the source can continue it.
pub fn open(config: &Config, checkpoint: Option<(Table, Position)>) -> io::Result<Opened> {
    match &config.feed.source {
        SourceConfig::Journal { path } => Ok(JournalFeed::open(path, checkpoint)),
        SourceConfig::Postgres { conninfo } => PgFeed::open(conninfo, checkpoint),
        SourceConfig::Nats => match &config.nats {
            Some(cfg) => NatsFeed::open(cfg, checkpoint),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "feed source \"nats\" needs a [nats] section",
            )),
        },
    }
}

/// What a source starts from with no usable checkpoint: an empty table, at `last_seq` (0, or
/// the sequence number of a whole-table load the source hands out first).
fn from_scratch(source: Box<dyn Source>, last_seq: u64) -> Opened {
    Opened {
        source,
        table: Table::default(),
        position: Position {
            last_seq,
            ..Position::default()
        },
        resumed: false,
    }
}
