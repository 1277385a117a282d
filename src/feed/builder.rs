//! The builder thread: owns the table, applies changes from the feed in batches and publishes
//! each batch as one new snapshot (never half a batch). When the overlay of recent changes
//! grows, a background thread (`fold`) folds it into a new base while changes keep flowing; the
//! changes applied meanwhile are replayed on top of the new base. Checkpoints are written from
//! an O(1) copy of the table, on a timer and at shutdown.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, SourceConfig};
use crate::feed::change::{Change, Sequenced};
use crate::feed::checkpoint::{self, Position};
use crate::feed::fold::RunningFold;
use crate::feed::journal::{Event, JournalReader, LineError, Notice, NoticeKind, ReadBatch};
use crate::feed::postgres::{PgError, PgSource};
use crate::feed::status::{now_ms, FeedStatus};
use crate::feed::watch::Watch;
use crate::snapshot::{self, Served, SharedSnapshot, Snapshot};
use crate::table::{Base, Lookup, Table};

/// Where changes come from.
enum Source {
    Journal(Box<JournalReader>),
    Postgres(Box<PgSource>),
}

/// Applies one change to `table`, numbering clusters as `config` does.
pub fn apply(table: &mut Table, config: &Config, change: &Change) -> Result<(), String> {
    match change {
        Change::Upsert {
            id,
            user,
            slug,
            cluster,
        } => {
            let Some(c) = config.cluster_index(cluster.as_str()) else {
                return Err(format!("cluster {cluster} is not in the configuration"));
            };
            table.upsert(id.as_str(), user.as_str(), slug.as_str(), c)
        }
        Change::Delete { id } => table.delete(id.as_str()),
    }
}

/// The table lookups that applying `change` starts with.
fn lookups_of(change: &Sequenced) -> [Option<Lookup>; 2] {
    match &change.change {
        Change::Upsert { id, user, slug, .. } => {
            Table::lookups_of_change(id.as_str(), Some((slug.as_str(), user.as_str())))
        }
        Change::Delete { id } => Table::lookups_of_change(id.as_str(), None),
    }
}

/// Owns the table and the feed.
pub struct Builder {
    config: Arc<Config>,
    served: Arc<Served>,
    table: Table,
    source: Source,
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
    /// A checkpoint is due at once (the journal was switched, or went missing).
    checkpoint_soon: bool,
    /// The journal is another file now: the idle watch must be set again.
    rewatch: bool,
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

/// Hands the allocator's free memory back to the kernel (glibc keeps what a replay or a
/// fold freed, hundreds of megabytes at 1M apps, otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How full the overlay's log may get before a fold starts (see `Overlay::fill`).
const FOLD_AT_FILL: f64 = 0.5;

/// A builder step slower than this is logged: changes wait for it.
const SLOW_STEP: Duration = Duration::from_millis(50);

/// Logs a builder step that took longer than `SLOW_STEP`.
fn slow_step(what: &str, started: Instant) {
    let took = started.elapsed();
    if took > SLOW_STEP {
        tracing::warn!(ms = took.as_millis() as u64, "builder: {what} took long");
    }
}

/// The longest an idle builder sleeps on its journal watch (it then checks its timers, the
/// stop flag, and the journal again, in case the watch missed a write).
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// How often the builder tries again to set a watch on a journal that had none.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The builder thread's watch on its journal.
#[derive(Default)]
struct JournalWatch {
    watch: Option<Watch>,
    tried: Option<Instant>,
}

/// How long a replaced snapshot is kept before the builder drops it.
const RETIRE_AFTER: Duration = Duration::from_millis(20);

/// A configuration to switch to, and where to say whether it was taken.
type ReloadRequest = (Arc<Config>, crossbeam_channel::Sender<Result<(), String>>);

/// Stops the builder thread when dropped or asked; passes it new configurations.
pub struct BuilderHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    reload: crossbeam_channel::Sender<ReloadRequest>,
}

impl BuilderHandle {
    /// Switches to `config` (zones, clusters, TTLs) in the next snapshot, or says why not
    /// (the current configuration then stays).
    pub fn reload(&self, config: Arc<Config>) -> Result<(), String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.reload
            .send((config, tx))
            .map_err(|_| "the builder thread is gone".to_string())?;
        rx.recv_timeout(Duration::from_secs(120))
            .map_err(|_| "the builder thread did not answer".to_string())?
    }

    /// Stops the thread (which writes a last checkpoint) and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BuilderHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The cluster names of a config, in index order.
fn cluster_names(config: &Config) -> Vec<String> {
    config
        .clusters
        .iter()
        .map(|c| c.name.as_str().to_string())
        .collect()
}

/// Loads a checkpoint if one is configured and usable: its table (clusters renumbered to the
/// config's) and position.
fn load_checkpoint(config: &Config) -> Option<(Table, Position)> {
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
    let mut map = Vec::with_capacity(loaded.clusters.len());
    for name in &loaded.clusters {
        match config.cluster_index(name) {
            Some(i) => map.push(i),
            None => {
                tracing::warn!(
                    "checkpoint {}: cluster {name} is no longer configured; replaying the whole feed",
                    path.display()
                );
                return None;
            }
        }
    }
    let table = if map.iter().enumerate().all(|(i, &c)| usize::from(c) == i) {
        loaded.table
    } else {
        let mut b = Base::builder(loaded.table.len());
        let mut problem = None;
        loaded.table.for_each_record(|id, name, c| {
            if problem.is_some() {
                return;
            }
            // A cluster the checkpoint does not list is damage: replay the feed instead.
            match map.get(usize::from(c)) {
                Some(&to) => problem = b.push(id, name, to).err().map(|e| e.to_string()),
                None => {
                    problem = Some(format!(
                        "an app refers to cluster #{c}, which it does not list"
                    ))
                }
            }
        });
        if let Some(p) = problem {
            tracing::warn!(
                "checkpoint {}: {p}; replaying the whole feed",
                path.display()
            );
            return None;
        }
        Table::from_base(Arc::new(b.finish()))
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
    /// Loads the table (checkpoint plus the changes after it, or the whole feed) and publishes
    /// the first snapshot.
    pub fn load(config: Arc<Config>) -> io::Result<Builder> {
        let served = Arc::new(Served::from_config(&config));
        let started = Instant::now();
        let ckpt = load_checkpoint(&config);
        let from_checkpoint = ckpt.is_some();
        let mut rejected_at_load = 0;
        let mut gaps_at_load = 0;
        let (table, position, source) = match &config.feed.source {
            SourceConfig::Journal { path } => match ckpt {
                // The reader checks that the journal is still the file the checkpoint left.
                Some((t, p)) => (
                    t,
                    p,
                    Source::Journal(Box::new(JournalReader::resume(path, p.journal, p.last_seq))),
                ),
                None => (
                    Table::default(),
                    Position::default(),
                    Source::Journal(Box::new(JournalReader::new(path))),
                ),
            },
            SourceConfig::Postgres { conninfo } => {
                let mut pg = PgSource::new(conninfo);
                let resumed = match ckpt {
                    Some((t, p)) => match pg.pruned_upto() {
                        Ok(pruned) if pruned <= p.last_seq => Some((t, p)),
                        Ok(pruned) => {
                            tracing::error!(
                                checkpoint_seq = p.last_seq,
                                pruned_upto = pruned,
                                "the change log was pruned past the checkpoint; loading the whole table"
                            );
                            gaps_at_load += 1;
                            None
                        }
                        Err(e) => {
                            // Serve the checkpoint; the changes after it arrive once the
                            // database is back.
                            tracing::warn!("postgres: {e}; starting from the checkpoint");
                            Some((t, p))
                        }
                    },
                    None => None,
                };
                let (t, p) = match resumed {
                    Some(x) => x,
                    None => {
                        let (apps, seq) = pg
                            .load_all()
                            .map_err(|e| io::Error::other(format!("postgres: {e}")))?;
                        let mut t = Table::default();
                        let mut rejected = 0;
                        for (i, change) in apps.iter().enumerate() {
                            if let Err(e) = apply(&mut t, &config, change) {
                                rejected += 1;
                                tracing::warn!("postgres row {change:?}: {e}; skipped");
                            }
                            if i % (1 << 20) == (1 << 20) - 1 {
                                t = Table::from_base(Arc::new(t.fold().map_err(io::Error::other)?));
                            }
                        }
                        rejected_at_load += rejected + pg.take_rejected();
                        if rejected_at_load > 0 {
                            tracing::warn!(rejected = rejected_at_load, "rows skipped");
                        }
                        (
                            Table::from_base(Arc::new(t.fold().map_err(io::Error::other)?)),
                            Position {
                                last_seq: seq,
                                ..Position::default()
                            },
                        )
                    }
                };
                (t, p, Source::Postgres(Box::new(pg)))
            }
        };
        let shared = snapshot::shared(Snapshot::new(
            served.clone(),
            Arc::new(table.clone()),
            position.last_seq,
        ));
        let mut b = Builder {
            config,
            served,
            table,
            source,
            shared,
            generation: 1,
            last_seq: position.last_seq,
            rejected: rejected_at_load,
            fold: None,
            pending: None,
            caught_up: false,
            source_failed: false,
            checkpoint_soon: false,
            rewatch: false,
            fold_min: 100_000,
            dirty: false,
            last_checkpoint: Instant::now(),
            checkpointer: None,
            retired: std::collections::VecDeque::new(),
            status: Arc::new(FeedStatus {
                gaps: gaps_at_load.into(),
                reloads: gaps_at_load.into(),
                ..FeedStatus::default()
            }),
        };
        // Catch up with what the feed holds beyond the checkpoint, folding as we go so that a
        // long replay does not leave a huge overlay.
        loop {
            let applied = b.poll_once(Duration::ZERO)?;
            if b.table.overlay().len() > (1 << 18).max(b.table.base().len()) {
                b.table = Table::from_base(Arc::new(b.table.fold().map_err(io::Error::other)?));
                b.publish();
            }
            if applied == 0 && (b.caught_up || b.source_failed) {
                break;
            }
        }
        // The first checkpoint is due as soon as the table did not come from one.
        b.dirty = b.dirty || !from_checkpoint;
        if !b.table.overlay().is_empty() && b.table.base().is_empty() {
            b.table = Table::from_base(Arc::new(b.table.fold().map_err(io::Error::other)?));
        }
        b.publish();
        // Nothing reads the replaced snapshots yet: free them, and what the replay left.
        b.retired.clear();
        release_free_memory();
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

    /// Whether the last read reached the end of the feed (and no rebuilt table is pending).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Waits for a checkpoint being written in the background.
    pub fn wait_checkpoint(&mut self) {
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }

    /// The identity of the journal being followed (see `JournalReader::identity`); None for
    /// other sources.
    pub fn journal_identity(&self) -> Option<u32> {
        match &self.source {
            Source::Journal(r) => Some(r.identity()),
            Source::Postgres(_) => None,
        }
    }

    /// The sequence number of the last change applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Reads what the feed has (waiting up to `wait` for it where the source can wait),
    /// applies it and publishes a snapshot if anything changed. Returns the number applied.
    pub fn poll_once(&mut self, wait: Duration) -> io::Result<usize> {
        const PG_BATCH: usize = 10_000;
        self.source_failed = false;
        let batch = match &mut self.source {
            Source::Journal(r) => r.read_new()?,
            Source::Postgres(pg) => match pg.poll(self.last_seq, wait, PG_BATCH) {
                Ok(changes) => {
                    self.rejected += pg.take_rejected();
                    ReadBatch {
                        at_end: changes.len() < PG_BATCH,
                        events: changes
                            .into_iter()
                            .map(|change| Event::Change { change, line: 0 })
                            .collect(),
                        ..ReadBatch::default()
                    }
                }
                Err(gap @ PgError::Gap { .. }) => {
                    // Changes the server never read were pruned: the table is reloaded whole
                    // (aside; it replaces the served one when complete).
                    let mut batch = ReadBatch::default();
                    batch.notices.push(Notice {
                        kind: NoticeKind::Gap,
                        message: format!("postgres: {gap}"),
                    });
                    match pg.load_all() {
                        Ok((apps, seq)) => {
                            self.rejected += pg.take_rejected();
                            batch.notices.push(Notice {
                                kind: NoticeKind::Reload,
                                message: format!(
                                    "postgres: reloading the whole table ({} apps at sequence {seq})",
                                    apps.len()
                                ),
                            });
                            batch.events.reserve(apps.len() + 1);
                            batch.events.push(Event::Reset { seq });
                            batch
                                .events
                                .extend(apps.into_iter().map(|change| Event::Change {
                                    change: Sequenced { seq, change },
                                    line: 0,
                                }));
                            batch.at_end = true;
                        }
                        Err(e) => tracing::warn!("postgres: reloading after a gap: {e}"),
                    }
                    batch
                }
                Err(e) => {
                    // Keep answering from the last snapshot; the source reconnects itself.
                    tracing::warn!("postgres: {e}");
                    self.source_failed = true;
                    ReadBatch::default()
                }
            },
        };
        let file = self.source_name();
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
        let mut applied = 0;
        // The keys' slots and records are fetched a few changes ahead, so that a batch's
        // lookups overlap their memory latency instead of paying it one after another.
        const AHEAD: usize = 2;
        let lookups: Vec<[Option<Lookup>; 2]> = batch
            .events
            .iter()
            .map(|e| match e {
                Event::Change { change, .. } => lookups_of(change),
                Event::Reset { .. } => [None, None],
            })
            .collect();
        for (i, event) in batch.events.into_iter().enumerate() {
            let (change, line) = match event {
                Event::Reset { seq } => {
                    // Start over; the served table stays until the new one is complete.
                    self.pending = Some(Table::default());
                    self.fold = None;
                    self.last_seq = seq;
                    continue;
                }
                Event::Change { change, line } => (change, line),
            };
            self.last_seq = self.last_seq.max(change.seq);
            let result = match &mut self.pending {
                Some(table) => {
                    let r = apply(table, &self.config, &change.change);
                    if table.overlay().len() > (1 << 18).max(table.base().len()) {
                        *table =
                            Table::from_base(Arc::new(table.fold().map_err(io::Error::other)?));
                    }
                    r
                }
                None => {
                    for l in lookups.get(i + 2 * AHEAD).into_iter().flatten().flatten() {
                        self.table.prefetch_change_slot(l);
                    }
                    for l in lookups.get(i + AHEAD).into_iter().flatten().flatten() {
                        self.table.prefetch_change_record(l);
                    }
                    let r = apply(&mut self.table, &self.config, &change.change);
                    if r.is_ok() {
                        if let Some(fold) = &self.fold {
                            fold.send(change.change.clone());
                        }
                    }
                    r
                }
            };
            match result {
                Ok(()) => applied += 1,
                Err(message) => self.reject(&LineError {
                    file: file.clone(),
                    line,
                    message: format!("change {change}: {message}; skipped"),
                }),
            }
        }
        if batch.at_end {
            if let Some(table) = self.pending.take() {
                let table = if table.overlay().is_empty() {
                    table
                } else {
                    Table::from_base(Arc::new(table.fold().map_err(io::Error::other)?))
                };
                self.table = table;
                self.dirty = true;
                self.checkpoint_soon = true;
                tracing::warn!(
                    apps = self.table.len(),
                    last_seq = self.last_seq,
                    "{}: the table was rebuilt from the feed and is served now",
                    file.display()
                );
                applied = applied.max(1);
            }
        }
        if applied > 0 && self.pending.is_none() {
            self.dirty = true;
            self.publish();
        }
        let st = &self.status;
        st.applied.fetch_add(applied as u64, Ordering::Relaxed);
        st.rejected.store(self.rejected, Ordering::Relaxed);
        self.caught_up = batch.at_end && self.pending.is_none();
        if self.caught_up {
            st.caught_up_at_ms.store(now_ms(), Ordering::Relaxed);
        }
        Ok(applied)
    }

    /// Where changes come from, for messages.
    fn source_name(&self) -> std::path::PathBuf {
        match &self.source {
            Source::Journal(r) => r.path().to_path_buf(),
            Source::Postgres(_) => "postgres".into(),
        }
    }

    /// Logs and counts something that happened to the feed's file.
    fn notice(&mut self, kind: NoticeKind, message: &str) {
        let st = &self.status;
        match kind {
            NoticeKind::Switched => {
                st.journal_switches.fetch_add(1, Ordering::Relaxed);
                st.journal_missing.store(0, Ordering::Relaxed);
                self.rewatch = true;
                self.checkpoint_soon = true;
                tracing::warn!("{message}");
            }
            NoticeKind::Missing => {
                st.journal_missing.store(1, Ordering::Relaxed);
                self.rewatch = true;
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
        if e.line == 0 {
            tracing::warn!("{}: {}", e.file.display(), e.message);
        } else {
            tracing::warn!("{e}");
        }
    }

    fn publish(&mut self) {
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
            release_free_memory();
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
            match f.finish(&self.config) {
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
            match RunningFold::start(self.table.clone(), self.config.clone()) {
                Ok(f) => self.fold = Some(f),
                Err(e) => tracing::error!("cannot start a fold: {e}"),
            }
        }
    }

    fn position(&mut self) -> Position {
        Position {
            last_seq: self.last_seq,
            journal: match &mut self.source {
                Source::Journal(r) => r.position(),
                Source::Postgres(_) => Default::default(),
            },
        }
    }

    /// Writes a checkpoint in the background when one is due.
    fn manage_checkpoint(&mut self, force: bool) {
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
        // Never while a rebuilt table is not complete: the position would not match.
        if !self.dirty || !(due || force) || self.pending.is_some() {
            return;
        }
        self.checkpoint_soon = false;
        let (table, position, clusters) = (
            self.table.clone(),
            self.position(),
            cluster_names(&self.config),
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

    /// Switches to a new configuration: zones, clusters and TTLs take effect in the next
    /// snapshot. Refused, leaving everything as it was, when a cluster that apps still use is
    /// gone. Listener and feed settings take effect at the next restart.
    pub fn reload(&mut self, config: Arc<Config>) -> Result<(), String> {
        let old = cluster_names(&self.config);
        let mut in_use = vec![0u64; old.len()];
        self.table.for_each_record(|_, _, c| {
            if let Some(n) = in_use.get_mut(usize::from(c)) {
                *n += 1;
            }
        });
        let mut map = Vec::with_capacity(old.len());
        for (i, name) in old.iter().enumerate() {
            match config.cluster_index(name) {
                Some(j) => map.push(j),
                None if in_use[i] > 0 => {
                    return Err(format!(
                        "cluster {name} is gone from the new configuration but {} apps still use it; move them first",
                        in_use[i]
                    ))
                }
                None => map.push(u16::MAX),
            }
        }
        if config.server.listen != self.config.server.listen
            || config.server.threads != self.config.server.threads
            || config.feed != self.config.feed
        {
            tracing::warn!("listener and feed settings change at the next restart");
        }
        if map
            .iter()
            .enumerate()
            .any(|(i, &j)| usize::from(j) != i && in_use[i] > 0)
        {
            let mut b = Base::builder(self.table.len());
            let mut failed = None;
            self.table.for_each_record(|id, name, c| {
                if failed.is_none() {
                    failed = b.push(id, name, map[usize::from(c)]).err();
                }
            });
            if let Some(e) = failed {
                return Err(format!("renumbering clusters: {e}"));
            }
            self.table = Table::from_base(Arc::new(b.finish()));
            // A running fold is of the old numbering: let it go.
            self.fold = None;
            self.dirty = true;
        }
        self.served = Arc::new(Served::from_config(&config));
        self.config = config;
        self.publish();
        tracing::info!(
            zones = self.config.zones.len(),
            clusters = self.config.clusters.len(),
            generation = self.generation,
            "configuration reloaded"
        );
        Ok(())
    }

    /// Writes a checkpoint now (if configured and anything changed since the last).
    pub fn checkpoint_now(&mut self) {
        self.manage_checkpoint(true);
    }

    /// Waits, with nothing left to read in the journal, until a writer appends (or, without a
    /// watch, for a poll interval).
    fn journal_idle(&mut self, watch: &mut JournalWatch, interval: Duration) {
        if std::mem::take(&mut self.rewatch) {
            *watch = JournalWatch::default();
        }
        let Source::Journal(reader) = &self.source else {
            return;
        };
        if watch.watch.is_none() && watch.tried.is_none_or(|t| t.elapsed() >= WATCH_RETRY) {
            watch.tried = Some(Instant::now());
            watch.watch = Watch::new(reader.path());
        }
        match &watch.watch {
            Some(w) => {
                // Events of the lines already read go; a write after this is caught by the
                // look that follows or wakes the wait.
                w.drain();
                if !reader.has_unread() {
                    w.wait(IDLE_WAIT);
                }
            }
            None => std::thread::sleep(interval),
        }
    }

    /// Runs the builder on its own thread until stopped; a last checkpoint is written then.
    pub fn spawn(mut self) -> io::Result<BuilderHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (reload_tx, reload_rx) = crossbeam_channel::unbounded::<ReloadRequest>();
        let interval = Duration::from_millis(self.config.feed.poll_interval_ms);
        let thread = std::thread::Builder::new()
            .name("builder".into())
            .spawn(move || {
                let mut watch = JournalWatch::default();
                while !flag.load(Ordering::Relaxed) {
                    while let Ok((config, reply)) = reload_rx.try_recv() {
                        let _ = reply.send(self.reload(config));
                    }
                    let started = Instant::now();
                    let polled = self.poll_once(interval);
                    slow_step("reading and applying changes", started);
                    match polled {
                        Ok(n) if matches!(self.source, Source::Journal(_)) => {
                            if n > 0 {
                                // Busy: let the next batch gather for a poll interval.
                                std::thread::sleep(interval);
                            } else {
                                self.journal_idle(&mut watch, interval);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!("feed: {e}");
                            std::thread::sleep(interval.max(Duration::from_millis(100)));
                        }
                    }
                    self.maintain();
                }
                self.checkpoint_now();
            })?;
        Ok(BuilderHandle {
            stop,
            thread: Some(thread),
            reload: reload_tx,
        })
    }
}
