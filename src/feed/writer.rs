//! Writing changes to the source of truth, durably: what the `acme` CLI and the UPDATE engine
//! (and its janitor) call so that every server fed by that source sees the change.
//!
//! [`open`] gives the writer of the configured source. [`ChangeWriter::write`] returns only once
//! the whole batch is durable (journal: appended under the writers' lock and fsynced;
//! PostgreSQL: one committed transaction), with the sequence numbers the changes took in the
//! journal (PostgreSQL numbers them in its triggers: the writer returns none there). A batch is
//! all or nothing. The writer checks nothing about the changes: callers check names and limits
//! first (`feed::acme::check_writable`, `AcmeStore::check_add`).

use std::path::{Path, PathBuf};

use crate::config::{Config, SourceConfig};
use crate::feed::change::Change;
use crate::feed::checkpoint;
use crate::feed::journal::{append, JournalPos};

/// Writes batches of changes to a source, durably.
pub trait ChangeWriter: Send {
    /// Writes `changes` in order, all or none, and returns once they are durable: the
    /// sequence numbers they took (empty where the source numbers them itself).
    fn write(&mut self, changes: &[Change]) -> Result<Vec<u64>, String>;
}

/// The writer of `config`'s feed source.
pub fn open(config: &Config) -> Result<Box<dyn ChangeWriter>, String> {
    match &config.feed.source {
        SourceConfig::Journal { path } => Ok(Box::new(JournalWriter {
            path: path.clone(),
            checkpoint: config.feed.checkpoint.clone(),
        })),
        SourceConfig::Postgres { conninfo } => {
            crate::feed::postgres::writer::PgWriter::new(conninfo).map(|w| Box::new(w) as _)
        }
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

/// Appends to the journal (`feed::journal::append`: under the lock, numbered after its last
/// line and after the checkpoint's position, fsynced).
pub struct JournalWriter {
    path: PathBuf,
    checkpoint: Option<PathBuf>,
}

impl ChangeWriter for JournalWriter {
    fn write(&mut self, changes: &[Change]) -> Result<Vec<u64>, String> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (floor, from) = journal_floor(self.checkpoint.as_deref())?;
        let appended = append(&self.path, changes, floor, from, floor == 0).map_err(|e| {
            if floor > 0 && e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "journal {} has no changes but the checkpoint is at sequence {floor}: it was \
                     deleted or rotated away; run `clusterns journal compact` (or restore it)",
                    self.path.display()
                )
            } else {
                format!("{}: {e}", self.path.display())
            }
        })?;
        if let Some(torn) = appended.dropped {
            tracing::warn!(
                "{}: removed an incomplete last line (no newline; a writer died): {torn}",
                self.path.display()
            );
        }
        Ok(appended.written.iter().map(|s| s.seq).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::journal::parse_line;

    #[test]
    fn the_journal_writer_appends_numbered_lines() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j");
        std::fs::write(&journal, "4 set r1 mark game c1\n").unwrap();
        let mut w = JournalWriter {
            path: journal.clone(),
            checkpoint: Some(dir.path().join("none.ckpt")),
        };
        let name: crate::name::DomainName = "_acme-challenge.mark.repl.co".parse().unwrap();
        let seqs = w
            .write(&[
                crate::feed::acme::add(name.clone(), b"v1", 100, 60),
                Change::TxtDelete { name, value: None },
            ])
            .unwrap();
        assert_eq!(seqs, vec![5, 6]);
        let text = std::fs::read_to_string(&journal).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "5 txt-add _acme-challenge.mark.repl.co 160 7631");
        assert_eq!(lines[2], "6 txt-del _acme-challenge.mark.repl.co");
        assert!(parse_line(lines[1]).unwrap().is_some());
        assert!(w.write(&[]).unwrap().is_empty());
    }
}
