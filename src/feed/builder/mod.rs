//! The builder thread: owns the table, applies changes from the feed in batches and publishes
//! each batch as one new snapshot (never half a batch). When the overlay of recent changes
//! grows, a background thread (`fold`) folds it into a new base while changes keep flowing; the
//! changes applied meanwhile are replayed on top of the new base. Checkpoints are written from
//! an O(1) copy of the table, on a timer and at shutdown.
//!
//! The builder reads one [`Source`] (the journal, PostgreSQL: see `feed::source`) and knows
//! nothing of which. Here: loading and applying batches; `publish` (snapshots, folds),
//! `persist` (checkpoints), `clusters` (apps on clusters the configuration lacks, names it
//! shadows, configuration reloads), `thread` (the running thread and its handle).

mod clusters;
mod health;
mod persist;
mod publish;
mod thread;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use thread::BuilderHandle;

use crate::config::Config;
use crate::feed::batch::{Event, LineError, NoticeKind};
use crate::feed::fold::RunningFold;
use crate::feed::source::{self, Opened, Source};
use crate::feed::status::{now_ms, FeedStatus};
use crate::health::view::HealthView;
use crate::os;
use crate::snapshot::{self, Served, SharedSnapshot, Snapshot};
use crate::table::{AcmeReject, Lookup, Table};
use clusters::count_unconfigured;

/// Owns the table and the feed.
pub struct Builder {
    config: Arc<Config>,
    /// The configuration's answers, laid out by the table's cluster registry (built again
    /// when the registry grows or the configuration changes).
    served: Arc<Served>,
    table: Table,
    /// What the served table's health reports say (the answers in `served` are laid out for
    /// it), and when the next of their leases ends (unix seconds).
    health: HealthView,
    health_next: Option<u64>,
    /// The last batch applied health reports to the served table: evaluate again.
    health_touched: bool,
    /// Per index of the table's cluster registry: `None` for a cluster the running
    /// configuration has; for one it lacks, the number of apps on it (kept up as changes
    /// apply, counted again when a reload drops a cluster).
    unconfigured: Vec<Option<u64>>,
    source: Box<dyn Source>,
    shared: SharedSnapshot,
    generation: u64,
    last_seq: u64,
    rejected: u64,
    /// A fold running in the background.
    fold: Option<RunningFold>,
    /// A table being rebuilt from the start of the feed (a reset: a rewritten or compacted
    /// journal); it replaces the served one once the feed is read to its end.
    pending: Option<Table>,
    /// The last read reached the end of the feed.
    caught_up: bool,
    /// The last read failed (the database is away): loading stops waiting for the end.
    source_failed: bool,
    /// How long the last read waited for the feed rather than worked.
    last_wait: Duration,
    /// Labels the configuration answers itself (hosts, nested zones), with what answers them.
    shadowed: Vec<(String, String)>,
    /// A checkpoint is due at once (the journal was switched, or went missing).
    checkpoint_soon: bool,
    /// The smallest overlay that triggers a fold.
    fold_min: usize,
    dirty: bool,
    last_checkpoint: Instant,
    checkpointer: Option<JoinHandle<()>>,
    status: Arc<FeedStatus>,
    /// Snapshots replaced by newer ones, with when: held here a little longer than any
    /// reader holds one (a receive batch) so that the builder, not a query worker, frees
    /// them (after a fold that is the whole old base).
    retired: std::collections::VecDeque<(Instant, Arc<Snapshot>)>,
}

/// How often a long start-up load says how far it got.
const LOAD_PROGRESS: Duration = Duration::from_secs(3);

/// A builder step slower than this is logged: changes wait for it.
const SLOW_STEP: Duration = Duration::from_millis(50);

/// Logs a builder step that took longer than `SLOW_STEP`.
fn slow_step(what: &str, started: Instant) {
    slow_work(what, started.elapsed());
}

/// Logs a builder step whose work (waiting left out) took longer than `SLOW_STEP`.
fn slow_work(what: &str, took: Duration) {
    if took > SLOW_STEP {
        tracing::warn!(ms = took.as_millis() as u64, "builder: {what} took long");
    }
}

impl Builder {
    /// Loads the table (checkpoint plus the changes after it, or the whole feed) and publishes
    /// the first snapshot.
    pub fn load(config: Arc<Config>) -> io::Result<Builder> {
        let started = Instant::now();
        let ckpt = persist::load_checkpoint(&config);
        let Opened {
            source,
            mut table,
            position,
            resumed,
        } = source::open(&config, ckpt)?;
        table.acme_mut().set_params(config.acme);
        let now = health::unix_now();
        let health = HealthView::evaluate(table.health(), now);
        let served = Arc::new(Served::for_registry_health(
            &config,
            table.clusters().names(),
            &health,
        ));
        let unconfigured = count_unconfigured(&table, &config, &[]);
        let shared = snapshot::shared(Snapshot::new(
            served.clone(),
            Arc::new(table.clone()),
            position.last_seq,
        ));
        let shadowed = config.labels_answered_elsewhere();
        let mut b = Builder {
            config,
            served,
            table,
            health,
            health_next: None,
            health_touched: true,
            unconfigured,
            source,
            shared,
            generation: 1,
            last_seq: position.last_seq,
            rejected: 0,
            fold: None,
            pending: None,
            caught_up: false,
            source_failed: false,
            last_wait: Duration::ZERO,
            shadowed,
            checkpoint_soon: false,
            fold_min: 100_000,
            dirty: false,
            last_checkpoint: Instant::now(),
            checkpointer: None,
            retired: std::collections::VecDeque::new(),
            status: Arc::new(FeedStatus::default()),
        };
        // Catch up with what the feed holds beyond the checkpoint, folding as we go so that a
        // long replay does not leave a huge overlay.
        let mut progress_at = Instant::now();
        loop {
            let applied = b.poll_once(Duration::ZERO)?;
            if progress_at.elapsed() >= LOAD_PROGRESS {
                progress_at = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    apps = b.table.len(),
                    last_seq = b.last_seq,
                    per_sec = (b.table.len() as f64 / secs) as u64,
                    secs = secs as u64,
                    "loading the table"
                );
            }
            if b.table.fold_due() {
                b.table = b.table.folded().map_err(io::Error::other)?;
                b.publish();
            }
            if applied == 0 && (b.caught_up || b.source_failed) {
                break;
            }
        }
        // The first checkpoint is due as soon as the table did not come from one.
        b.dirty = b.dirty || !resumed;
        if !b.table.overlay().is_empty() && b.table.base().is_empty() {
            b.table = b.table.folded().map_err(io::Error::other)?;
        }
        b.health_touched = false;
        b.evaluate_health(health::unix_now());
        b.store_health_summary();
        b.publish();
        b.report_unconfigured();
        // Nothing reads the replaced snapshots yet: free them, and what the replay left.
        b.retired.clear();
        os::release_free_memory();
        tracing::info!(
            apps = b.table.len(),
            last_seq = b.last_seq,
            rejected = b.rejected,
            ms = started.elapsed().as_millis() as u64,
            "table loaded"
        );
        Ok(b)
    }

    /// The feed's progress, for metrics.
    pub fn status(&self) -> Arc<FeedStatus> {
        self.status.clone()
    }

    /// The published snapshot.
    pub fn shared(&self) -> SharedSnapshot {
        self.shared.clone()
    }

    /// Changes rejected so far (bad lines and changes that could not be applied).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The table as the builder has it.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The table as the builder has it, the builder given up (for a command that only reads
    /// the feed once).
    pub fn into_table(self) -> Table {
        self.table
    }

    /// Whether the last read reached the end of the feed (and no rebuilt table is pending).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The identity of the journal being followed (see `JournalReader::identity`); None for
    /// other sources.
    pub fn journal_identity(&self) -> Option<u32> {
        self.source.journal_identity()
    }

    /// The sequence number of the last change applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Reads what the feed has (waiting up to `wait` for it where the source can wait),
    /// applies it and publishes a snapshot if anything changed. Returns the number applied.
    pub fn poll_once(&mut self, wait: Duration) -> io::Result<usize> {
        self.source_failed = false;
        let batch = self.source.read(self.last_seq, wait)?;
        self.source_failed = batch.failed;
        self.last_wait = batch.waited;
        self.rejected += batch.rejected;
        if !(batch.events.is_empty() && batch.errors.is_empty() && batch.notices.is_empty()) {
            // The position moved (even if every change was rejected): a checkpoint must
            // record it, or the CLI would number a change again.
            self.dirty = true;
        }
        for n in &batch.notices {
            self.notice(n.kind, &n.message);
        }
        for e in &batch.errors {
            self.reject(e);
        }
        let mut applied = self.apply_events(batch.events)?;
        if let Some(seq) = self.source.last_seq() {
            // The source knows the position best (a journal snapshot with no app moves it
            // without a change).
            self.dirty |= seq != self.last_seq;
            self.last_seq = seq;
        }
        if batch.at_end && self.install_rebuilt()? {
            applied = applied.max(1);
        }
        if self.health_touched && self.pending.is_none() {
            self.health_touched = false;
            self.evaluate_health(health::unix_now());
        }
        if applied > 0 && self.pending.is_none() {
            self.dirty = true;
            self.publish();
        }
        let st = &self.status;
        st.source_up
            .store(u64::from(!self.source_failed), Ordering::Relaxed);
        st.applied.fetch_add(applied as u64, Ordering::Relaxed);
        st.rejected.store(self.rejected, Ordering::Relaxed);
        self.caught_up = batch.at_end && self.pending.is_none();
        if self.caught_up {
            st.caught_up_at_ms.store(now_ms(), Ordering::Relaxed);
        }
        Ok(applied)
    }

    /// Applies a read's events to the table (or to the table being rebuilt); returns the
    /// number of changes taken.
    fn apply_events(&mut self, events: Vec<Event>) -> io::Result<usize> {
        let mut applied = 0;
        // The keys' slots and records are fetched a few changes ahead, so that a batch's
        // lookups overlap their memory latency instead of paying it one after another.
        const AHEAD: usize = 2;
        let lookups: Vec<[Option<Lookup>; 2]> = events
            .iter()
            .map(|e| match e {
                Event::Change { change, .. } => change.change.lookups(),
                Event::Reset { .. } => [None, None],
            })
            .collect();
        for (i, event) in events.into_iter().enumerate() {
            let (change, line) = match event {
                Event::Reset { seq } => {
                    // Start over; the served table stays until the new one is complete.
                    let mut fresh = Table::default();
                    fresh.acme_mut().set_params(self.config.acme);
                    self.pending = Some(fresh);
                    self.fold = None;
                    self.last_seq = seq;
                    continue;
                }
                Event::Change { change, line } => (change, line),
            };
            self.last_seq = self.last_seq.max(change.seq);
            if let Some(name) = change.change.acme_name() {
                if let Err(message) = crate::feed::acme::check_name(&self.config, name) {
                    let e = self.at_change(line, format!("change {change}: {message}; skipped"));
                    self.reject_acme(&e, AcmeReject::BadName);
                    continue;
                }
            }
            let result = match &mut self.pending {
                Some(table) => {
                    let r = change.change.apply_to(table);
                    if table.fold_due() {
                        *table = table.folded().map_err(io::Error::other)?;
                    }
                    // Its clusters are counted when it is swapped in.
                    r.map(|_| None)
                }
                None => {
                    for l in lookups.get(i + 2 * AHEAD).into_iter().flatten().flatten() {
                        self.table.prefetch_change_slot(l);
                    }
                    for l in lookups.get(i + AHEAD).into_iter().flatten().flatten() {
                        self.table.prefetch_change_record(l);
                    }
                    let r = change.change.apply_to(&mut self.table);
                    if r.is_ok() {
                        if let Some(fold) = &self.fold {
                            fold.send(change.change.clone());
                        }
                    }
                    r.map(Some)
                }
            };
            match result {
                Ok(moved) => {
                    applied += 1;
                    if change.change.health_report().is_some() {
                        self.health_touched = true;
                        self.status.health_applied.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(moved) = moved {
                        self.count_move(&change, line, moved);
                    }
                    self.warn_if_shadowed(&change, line);
                }
                Err(message) => {
                    let e = self.at_change(line, format!("change {change}: {message}; skipped"));
                    match acme_reason(&change.change, &message) {
                        Some(r) => self.reject_acme(&e, r),
                        None => self.reject(&e),
                    }
                }
            }
        }
        Ok(applied)
    }

    /// Once the feed is read to its end, serves the table rebuilt after a reset, if there is
    /// one. Returns whether there was.
    fn install_rebuilt(&mut self) -> io::Result<bool> {
        let Some(table) = self.pending.take() else {
            return Ok(false);
        };
        let table = if table.overlay().is_empty() {
            table
        } else {
            table.folded().map_err(io::Error::other)?
        };
        self.table = table;
        // A registry and reports of its own: the answers are laid out again, its clusters
        // counted.
        self.health_touched = false;
        self.evaluate_health(health::unix_now());
        self.lay_out();
        self.unconfigured = count_unconfigured(&self.table, &self.config, &[]);
        self.report_unconfigured();
        self.dirty = true;
        self.checkpoint_soon = true;
        tracing::warn!(
            apps = self.table.len(),
            last_seq = self.last_seq,
            "{}: the table was rebuilt from the feed and is served now",
            self.source.label().display()
        );
        Ok(true)
    }

    /// Where changes come from, for messages.
    fn source_name(&self) -> std::path::PathBuf {
        self.source.label().to_path_buf()
    }

    /// Logs and counts something that happened to the feed.
    fn notice(&mut self, kind: NoticeKind, message: &str) {
        let st = &self.status;
        match kind {
            NoticeKind::Switched => {
                st.journal_switches.fetch_add(1, Ordering::Relaxed);
                st.journal_missing.store(0, Ordering::Relaxed);
                self.checkpoint_soon = true;
                tracing::warn!("{message}");
            }
            NoticeKind::Missing => {
                st.journal_missing.store(1, Ordering::Relaxed);
                self.checkpoint_soon = true;
                tracing::error!("{message}");
            }
            NoticeKind::Gap => {
                st.gaps.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{message}");
            }
            NoticeKind::Reload => {
                st.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{message}");
            }
            NoticeKind::SnapshotSkipped => tracing::info!("{message}"),
        }
    }

    fn reject(&mut self, e: &LineError) {
        self.rejected += 1;
        tracing::warn!("{e}");
    }

    /// Rejects a challenge record change, counted by reason too.
    fn reject_acme(&mut self, e: &LineError, reason: AcmeReject) {
        self.reject(e);
        self.status.acme_rejected(reason);
    }

    /// Where a change came from and what about it, as a rejection says it.
    fn at_change(&self, line: u64, message: String) -> LineError {
        LineError {
            file: self.source_name(),
            line,
            message,
        }
    }
}

/// Why applying a challenge record change failed, from its message (`Table::txt_add` ends it
/// with the reason's label); None for an app change.
fn acme_reason(change: &crate::feed::Change, message: &str) -> Option<AcmeReject> {
    change.acme_name()?;
    AcmeReject::ALL
        .into_iter()
        .find(|r| message.ends_with(&format!("({})", r.reason())))
        .or(Some(AcmeReject::BadName))
}
