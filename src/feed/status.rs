//! What the builder thread reports about the feed, for metrics: plain atomics it writes and a
//! scrape reads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::health::view::ClusterHealth;
use crate::name::Label;
use crate::table::AcmeReject;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The feed's progress.
#[derive(Debug, Default)]
pub struct FeedStatus {
    /// The last sequence number applied.
    pub last_seq: AtomicU64,
    /// Changes applied and rejected since start.
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
    /// When the feed last had nothing left to read (ms since the epoch).
    pub caught_up_at_ms: AtomicU64,
    /// When the last checkpoint was written (0: never).
    pub checkpoint_at_ms: AtomicU64,
    /// Apps in the table.
    pub apps: AtomicU64,
    /// Times the journal became another file (rotated, replaced, truncated, rewritten,
    /// re-created) or did not continue the checkpoint.
    pub journal_switches: AtomicU64,
    /// 1 while the journal file does not exist.
    pub journal_missing: AtomicU64,
    /// Discontinuities: changes that may be missing (a journal continuing after a jump in
    /// sequence numbers, or overlapping what was applied; a pruned PostgreSQL log).
    pub gaps: AtomicU64,
    /// Times the table was rebuilt from the feed (a rewritten or compacted journal, a
    /// PostgreSQL reload).
    pub reloads: AtomicU64,
    /// Changes that put an app id or user where the configuration answers otherwise (a host
    /// or a nested zone of that name).
    pub shadowed: AtomicU64,
    /// Apps on a cluster the running configuration does not have (they answer SERVFAIL).
    pub apps_unknown_cluster: AtomicU64,
    /// 1 while the last read of the source succeeded (0: the database is away).
    pub source_up: AtomicU64,
    /// ACME challenge names holding TXT values in the served table.
    pub acme_names: AtomicU64,
    /// Challenge record changes rejected, by reason (`AcmeReject::ALL`'s order); they count
    /// in `rejected` too.
    pub acme_rejected_by: [AtomicU64; AcmeReject::ALL.len()],
    /// Health reports applied since start (they count in `applied` too).
    pub health_applied: AtomicU64,
    /// Health reports held in the served table, and of them those within their lease when
    /// the builder last looked.
    pub health_reports: AtomicU64,
    pub health_fresh: AtomicU64,
    /// What the current health view says of each configured cluster (set by the builder when
    /// the view or the configuration changes; read by a scrape).
    health_summary: Mutex<Vec<(Label, ClusterHealth)>>,
}

impl FeedStatus {
    /// Counts a rejected challenge record change.
    pub fn acme_rejected(&self, reason: AcmeReject) {
        self.acme_rejected_by[reason.index()].fetch_add(1, Relaxed);
    }

    /// Sets the per-cluster health summary.
    pub fn set_health_summary(&self, summary: Vec<(Label, ClusterHealth)>) {
        if let Ok(mut s) = self.health_summary.lock() {
            *s = summary;
        }
    }

    /// The per-cluster health summary (configured clusters, in configuration order).
    pub fn health_summary(&self) -> Vec<(Label, ClusterHealth)> {
        self.health_summary
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Sets the counts of health reports held and fresh.
    pub fn set_health_reports(&self, held: u64, fresh: u64) {
        self.health_reports.store(held, Relaxed);
        self.health_fresh.store(fresh, Relaxed);
    }

    /// Seconds the feed may be behind its source: 0 right after it found nothing new to read.
    pub fn behind_secs(&self) -> f64 {
        let at = self.caught_up_at_ms.load(Relaxed);
        if at == 0 {
            return 0.0;
        }
        now_ms().saturating_sub(at) as f64 / 1000.0
    }

    /// Seconds since the last checkpoint (None: never written).
    pub fn checkpoint_age_secs(&self) -> Option<f64> {
        match self.checkpoint_at_ms.load(Relaxed) {
            0 => None,
            at => Some(now_ms().saturating_sub(at) as f64 / 1000.0),
        }
    }
}
