//! `clusterns journal compact`: rewrites the journal as one snapshot of the table (from the
//! checkpoint and the journal, read as the server reads them; of the health reports, the latest
//! per checker and address that is still within its lease) at its last sequence number,
//! atomically and under the writers' lock, so that the journal stops growing without losing
//! a change. A running server sees a compacted file of its own history and skips the
//! snapshot (see `journal`'s module documentation); writers waiting for the lock find the new
//! file and write there.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, SourceConfig};
use crate::feed::Builder;
use crate::feed::{durable, journal};

/// What a compaction did.
#[derive(Debug)]
pub struct Compacted {
    pub path: PathBuf,
    /// The sequence number the snapshot is at.
    pub seq: u64,
    pub apps: u64,
    /// The journal's size before (0: there was none) and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Compacts the configured journal. `keep_old`: where to keep the old journal (a hard link,
/// made before the new file replaces it).
pub fn compact(config: Arc<Config>, keep_old: Option<&Path>) -> Result<Compacted, String> {
    let SourceConfig::Journal { path } = &config.feed.source else {
        return Err("the feed is not a journal: nothing to compact".into());
    };
    let path = path.clone();
    let at = |e: io::Error| format!("{}: {e}", path.display());
    // Held until the new file is in place: writers wait, then find the new file.
    let lock = match journal::lock(&path, false) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(at(e)),
    };
    let bytes_before = match &lock {
        Some(f) => f.metadata().map_err(at)?.len(),
        None => 0,
    };
    let builder = Builder::load(config.clone()).map_err(|e| format!("loading the feed: {e}"))?;
    let seq = builder.last_seq();
    let from = builder.journal_identity().unwrap_or(0);
    let names = builder.table().clusters().names().to_vec();
    let apps = builder.table().apps();
    let acme = builder.table().acme().clone();
    // The health reports still within their lease; expired ones say nothing any more.
    let now = crate::feed::status::now_ms() / 1000;
    let health: Vec<crate::feed::Change> = builder
        .table()
        .health()
        .iter()
        .filter(|r| r.until > now)
        .map(crate::feed::Change::Health)
        .collect();
    let tmp = durable::beside(&path, ".compact.tmp");
    let written = (|| -> io::Result<u64> {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let comment = format!(
            "clusterns journal compacted from {} at sequence {seq} ({} ms since the epoch, pid {})",
            path.display(),
            crate::feed::status::now_ms(),
            std::process::id()
        );
        let rows = apps.iter().map(|(id, user, slug, c)| {
            let cluster = names.get(usize::from(*c)).map_or("-", |s| s.as_str());
            [id.as_str(), user.as_str(), slug.as_str(), cluster]
        });
        let txt = acme.iter().flat_map(|e| {
            e.values
                .iter()
                .map(|(value, expires)| crate::feed::Change::TxtAdd {
                    name: e.name.clone(),
                    value: value.clone(),
                    expires: *expires,
                })
        });
        let txt = txt.chain(health);
        let n = journal::write_snapshot_with(&mut w, &comment, seq, from, rows, txt)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(n)
    })();
    let result = written.and_then(|n| {
        if let Some(keep) = keep_old {
            if lock.is_some() {
                fs::hard_link(&path, keep)?;
            }
        }
        if lock.is_some() {
            fs::rename(&tmp, &path)?;
        } else {
            // No journal to replace: never over one that appeared meanwhile.
            fs::hard_link(&tmp, &path)?;
            fs::remove_file(&tmp)?;
        }
        durable::sync_dir_of(&path)?;
        Ok(n)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let n = result.map_err(at)?;
    let bytes_after = fs::metadata(&path).map_err(at)?.len();
    drop(lock);
    Ok(Compacted {
        path,
        seq,
        apps: n,
        bytes_before,
        bytes_after,
    })
}
