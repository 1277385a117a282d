//! Publishing the builder's table as snapshots, dropping the replaced ones once no reader can
//! hold them, and folding the overlay into a new base in the background.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{slow_step, Builder};
use crate::feed::fold::RunningFold;
use crate::os;
use crate::snapshot::Snapshot;

/// How full the overlay's log may get before a fold starts (see `Overlay::fill`).
const FOLD_AT_FILL: f64 = 0.5;

/// How long a replaced snapshot is kept before the builder drops it.
const RETIRE_AFTER: Duration = Duration::from_millis(20);

impl Builder {
    pub(super) fn publish(&mut self) {
        // Registries only grow: a longer one has names the answers are not laid out for yet.
        if self.served.cluster_names.len() != self.table.clusters().len() {
            self.lay_out();
        }
        if *self.table.acme().params() != self.config.acme {
            // A reload changed them, or a fold started before it carried the old ones.
            self.table.acme_mut().set_params(self.config.acme);
        }
        self.generation += 1;
        let snap = Snapshot {
            generation: self.generation,
            last_seq: self.last_seq,
            served: self.served.clone(),
            table: Arc::new(self.table.clone()),
            published: std::time::SystemTime::now(),
        };
        let old = self.shared.swap(Arc::new(snap));
        self.retired.push_back((Instant::now(), old));
        self.drop_retired();
        self.status.last_seq.store(self.last_seq, Ordering::Relaxed);
        self.status
            .apps
            .store(self.table.len() as u64, Ordering::Relaxed);
        self.status
            .acme_names
            .store(self.table.acme().len() as u64, Ordering::Relaxed);
        self.status
            .apps_unknown_cluster
            .store(self.apps_on_unconfigured_clusters(), Ordering::Relaxed);
    }

    /// Drops the replaced snapshots that no reader can still be using (unless it stalled for
    /// longer than `RETIRE_AFTER`: then that reader frees it, which is only slower).
    fn drop_retired(&mut self) {
        let mut freed_base = false;
        while let Some((at, _)) = self.retired.front() {
            if at.elapsed() < RETIRE_AFTER {
                break;
            }
            if let Some((_, snap)) = self.retired.pop_front() {
                // The last holder of its base (never the current one, which the builder's
                // own table holds): dropping it frees that base.
                freed_base |= Arc::strong_count(snap.table.base()) == 1;
            }
        }
        if freed_base {
            os::release_free_memory();
        }
    }

    /// The overlay size at which a fold into a new base starts.
    fn fold_threshold(&self) -> usize {
        self.fold_min.max(self.table.base().len() / 10)
    }

    /// Sets the smallest overlay that triggers a background fold (default 100,000 changes;
    /// a tenth of the table when that is larger).
    pub fn set_fold_min(&mut self, n: usize) {
        self.fold_min = n;
    }

    /// Folds and checkpoints as the running thread would (for tests and benchmarks that drive
    /// the builder by hand).
    pub fn maintain(&mut self) {
        let started = Instant::now();
        self.drop_retired();
        slow_step("dropping retired snapshots", started);
        let started = Instant::now();
        self.manage_fold();
        slow_step("starting or installing a fold", started);
        let started = Instant::now();
        self.manage_checkpoint(false);
        slow_step("starting a checkpoint", started);
        let started = Instant::now();
        self.health_due();
        slow_step("looking at the health leases", started);
    }

    /// Waits for a running fold to finish and installs it.
    pub fn finish_fold(&mut self) {
        if let Some(f) = &self.fold {
            while !f.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.manage_fold();
        }
    }

    /// Starts a fold when the overlay is large; installs a finished one.
    fn manage_fold(&mut self) {
        if let Some(f) = &self.fold {
            if !f.is_finished() {
                return;
            }
            let f = self.fold.take().expect("checked above");
            match f.finish() {
                Ok(table) => {
                    self.table = table;
                    self.publish();
                    tracing::debug!(apps = self.table.len(), "overlay folded into a new base");
                }
                Err(e) => tracing::error!("{e}"),
            }
            return;
        }
        // A fold also when the overlay's log is half full, long before it would have to be
        // copied larger in the middle of a batch (changes that keep moving the same apps
        // fill the log without adding ids).
        let overlay = self.table.overlay();
        if overlay.len() > self.fold_threshold() || overlay.fill() > FOLD_AT_FILL {
            match RunningFold::start(self.table.clone()) {
                Ok(f) => self.fold = Some(f),
                Err(e) => tracing::error!("cannot start a fold: {e}"),
            }
        }
    }
}
