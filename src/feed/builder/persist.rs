//! The builder's checkpoints: loading the one configured at start-up (its table, with the
//! cluster registry it lists), and writing new ones in the background, on a timer and at
//! shutdown.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Builder;
use crate::config::Config;
use crate::feed::checkpoint::{self, Position};
use crate::feed::status::now_ms;
use crate::table::Table;

/// The cluster names a table's indexes refer to (its registry), in index order: what a
/// checkpoint lists.
fn cluster_names(table: &Table) -> Vec<String> {
    table
        .clusters()
        .names()
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// Loads a checkpoint if one is configured and usable: its table, whose cluster registry is
/// the checkpoint's list of cluster names whatever the configuration has (nothing is
/// renumbered: a cluster the configuration lacks only makes its apps answer SERVFAIL), and
/// its position.
pub(super) fn load_checkpoint(config: &Config) -> Option<(Table, Position)> {
    let path = config.feed.checkpoint.as_ref()?;
    if !path.exists() {
        return None;
    }
    let started = Instant::now();
    let loaded = match checkpoint::read(path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                "checkpoint {}: {e}; replaying the whole feed",
                path.display()
            );
            return None;
        }
    };
    let table = match loaded.registry() {
        Ok(clusters) => loaded.table.with_clusters(clusters),
        Err(p) => {
            tracing::warn!(
                "checkpoint {}: {p}; replaying the whole feed",
                path.display()
            );
            return None;
        }
    };
    tracing::info!(
        apps = table.len(),
        last_seq = loaded.position.last_seq,
        ms = started.elapsed().as_millis() as u64,
        "checkpoint {} loaded",
        path.display()
    );
    Some((table, loaded.position))
}

impl Builder {
    /// Waits for a checkpoint being written in the background.
    pub fn wait_checkpoint(&mut self) {
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }

    fn position(&self) -> Position {
        self.source.position(self.last_seq)
    }

    /// Writes a checkpoint in the background when one is due.
    pub(super) fn manage_checkpoint(&mut self, force: bool) {
        let Some(path) = self.config.feed.checkpoint.clone() else {
            return;
        };
        if let Some(t) = &self.checkpointer {
            if !t.is_finished() && !force {
                return;
            }
            if let Some(t) = self.checkpointer.take() {
                let _ = t.join();
            }
        }
        let due = self.checkpoint_soon
            || self.last_checkpoint.elapsed()
                >= Duration::from_secs(self.config.feed.checkpoint_interval_secs);
        // Never while a rebuilt table is not complete, nor inside a snapshot block: the
        // position would not match what a restart can resume from.
        let in_snapshot = self.source.mid_block();
        if !self.dirty || !(due || force) || self.pending.is_some() || in_snapshot {
            return;
        }
        self.checkpoint_soon = false;
        let (table, position, clusters) = (
            self.table.clone(),
            self.position(),
            cluster_names(&self.table),
        );
        self.dirty = false;
        self.last_checkpoint = Instant::now();
        let status = self.status.clone();
        let write = move || {
            let started = Instant::now();
            match checkpoint::write(&path, &table, position, &clusters) {
                Ok(()) => {
                    status.checkpoint_at_ms.store(now_ms(), Ordering::Relaxed);
                    tracing::info!(
                        apps = table.len(),
                        last_seq = position.last_seq,
                        ms = started.elapsed().as_millis() as u64,
                        "checkpoint {} written",
                        path.display()
                    )
                }
                Err(e) => tracing::error!("checkpoint {}: {e}", path.display()),
            }
        };
        if force {
            write();
        } else {
            match std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(write)
            {
                Ok(h) => self.checkpointer = Some(h),
                Err(e) => tracing::error!("cannot start a checkpoint: {e}"),
            }
        }
    }

    /// Writes a checkpoint now (if configured and anything changed since the last).
    pub fn checkpoint_now(&mut self) {
        self.manage_checkpoint(true);
    }
}
