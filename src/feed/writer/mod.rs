//! Writing changes to the source of truth, durably: what the `acme` CLI and the UPDATE engine
//! (and its janitor) call so that every server fed by that source sees the change.
//!
//! [`open`] gives the writer of the configured source. [`ChangeWriter::write`] returns only once
//! the whole batch is durable (journal: appended under the writers' lock and fsynced;
//! PostgreSQL: one committed transaction), with the sequence numbers the changes took in the
//! journal (PostgreSQL numbers them in its triggers: the writer returns none there). A batch is
//! all or nothing. The writer checks nothing about the changes: callers check names and limits
//! first (`feed::acme::check_writable`, `AcmeStore::check_add`).

mod journal;
mod pg;

use std::path::Path;

pub use journal::JournalWriter;
pub use pg::PgWriter;

use crate::config::{Config, SourceConfig};
use crate::feed::change::Change;
use crate::feed::checkpoint;
use crate::feed::journal::JournalPos;

/// Writes batches of changes to a source, durably.
pub trait ChangeWriter: Send {
    /// Writes `changes` in order, all or none, and returns once they are durable: the
    /// sequence numbers they took (empty where the source numbers them itself).
    fn write(&mut self, changes: &[Change]) -> Result<Vec<u64>, String>;
}

/// The writer of `config`'s feed source.
pub fn open(config: &Config) -> Result<Box<dyn ChangeWriter>, String> {
    match &config.feed.source {
        SourceConfig::Journal { path } => Ok(Box::new(JournalWriter::new(
            path.clone(),
            config.feed.checkpoint.clone(),
        ))),
        SourceConfig::Postgres { conninfo } => PgWriter::new(conninfo).map(|w| Box::new(w) as _),
        SourceConfig::Nats => Err(
            "feed source \"nats\" is fed by relays: changes are written to the source of \
             truth (a journal or PostgreSQL), whose configuration the writer needs"
                .into(),
        ),
    }
}

/// The checker's sink (`clusterns health`): each report written as a `Change::Health` to the
/// configured source, a batch at a time (`health::checker::ReportSink`).
pub struct ReportWriter(Box<dyn ChangeWriter>);

impl ReportWriter {
    /// The report writer of `config`'s feed source.
    pub fn open(config: &Config) -> Result<ReportWriter, String> {
        open(config).map(ReportWriter)
    }

    /// Reports written through `writer`.
    pub fn new(writer: Box<dyn ChangeWriter>) -> ReportWriter {
        ReportWriter(writer)
    }
}

impl crate::health::checker::ReportSink for ReportWriter {
    fn write(&mut self, reports: &[crate::health::report::HealthReport]) -> Result<(), String> {
        let changes: Vec<Change> = reports.iter().cloned().map(Change::Health).collect();
        self.0.write(&changes).map(|_| ())
    }
}

/// Where an append to the journal starts: the checkpoint's sequence number (a journal that
/// lost its lines is never numbered again from where it now ends) and its position in the
/// journal (read from there, not from the start); `(0, None)` without a written checkpoint.
pub fn journal_floor(checkpoint: Option<&Path>) -> Result<(u64, Option<JournalPos>), String> {
    match checkpoint {
        Some(c) if c.exists() => {
            let p = checkpoint::read_position(c)
                .map_err(|e| format!("checkpoint {}: {e}", c.display()))?;
            Ok((p.last_seq, Some(p.journal)))
        }
        _ => Ok((0, None)),
    }
}
