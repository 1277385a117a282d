//! The journal's [`ChangeWriter`]: appends under the writers' lock, numbered after the journal's
//! last line and the checkpoint's position, fsynced before `write` returns.

use std::path::PathBuf;

use super::{journal_floor, ChangeWriter};
use crate::feed::change::Change;
use crate::feed::journal::append;

/// Appends to the journal (`feed::journal::append`: under the lock, numbered after its last
/// line and after the checkpoint's position, fsynced).
pub struct JournalWriter {
    path: PathBuf,
    checkpoint: Option<PathBuf>,
}

impl JournalWriter {
    /// A writer appending to the journal at `path`, numbered after `checkpoint`'s position.
    pub fn new(path: PathBuf, checkpoint: Option<PathBuf>) -> JournalWriter {
        JournalWriter { path, checkpoint }
    }
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

    #[test]
    fn the_report_writer_appends_health_lines() {
        use crate::health::checker::ReportSink;
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j");
        std::fs::write(&journal, "4 set r1 mark game c1\n").unwrap();
        let mut w =
            super::super::ReportWriter::new(Box::new(JournalWriter::new(journal.clone(), None)));
        let report = |up: bool, until: u64| crate::health::report::HealthReport {
            checker: "eu-1".parse().unwrap(),
            cluster: "c1".parse().unwrap(),
            addr: "2001:db8::5".parse().unwrap(),
            up,
            until,
        };
        w.write(&[report(false, 90), report(true, 120)]).unwrap();
        let text = std::fs::read_to_string(&journal).unwrap();
        assert_eq!(
            text,
            "4 set r1 mark game c1\n5 health eu-1 c1 2001:db8::5 down 90\n6 health eu-1 c1 2001:db8::5 up 120\n"
        );
    }
}
