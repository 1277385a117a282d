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
use crate::table::{Clusters, Lookup, Moved, Table};

/// Where changes come from.
enum Source {
    Journal(Box<JournalReader>),
    Postgres(Box<PgSource>),
}

/// Applies one change to `table`. An upsert's cluster is looked up in the table's cluster
/// registry, and added to it when new, whether or not the configuration has it: what the table
/// holds depends on the feed alone (an app on a cluster the configuration lacks answers
/// SERVFAIL until a configuration with it is loaded). Refused: a name another app holds, an
/// unknown id to delete, a new cluster name once the registry is full. Returns what the change
/// did to the app's cluster, for the caller to count and report.
pub fn apply(table: &mut Table, change: &Change) -> Result<Moved, String> {
    match change {
        Change::Upsert {
            id,
            user,
            slug,
            cluster,
        } => table.upsert_named(id.as_str(), user.as_str(), slug.as_str(), cluster),
        Change::Delete { id } => table.delete_moved(id.as_str()),
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
    /// The configuration's answers, laid out by the table's cluster registry (built again
    /// when the registry grows or the configuration changes).
    served: Arc<Served>,
    table: Table,
    /// Per index of the table's cluster registry: `None` for a cluster the running
    /// configuration has; for one it lacks, the number of apps on it (kept up as changes
    /// apply, counted again when a reload drops a cluster).
    unconfigured: Vec<Option<u64>>,
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
    /// Labels the configuration answers itself (hosts, nested zones), with what answers them.
    shadowed: Vec<(String, String)>,
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

/// The cluster registry a checkpoint lists, or why it is damaged: a name that is not a label
/// or is listed twice, too many names, or an app of its base on an index beyond the list
/// (the reader checks the overlay's).
fn registry_of(loaded: &checkpoint::Loaded) -> Result<Clusters, String> {
    let mut names = Vec::with_capacity(loaded.clusters.len());
    for name in &loaded.clusters {
        match crate::name::check_label(name) {
            Ok(l) if l.as_str() == name => names.push(l),
            _ => return Err(format!("cluster name {name:?} is not a label")),
        }
    }
    let clusters = Clusters::from_names(names)?;
    if let Some(c) = loaded.table.base().max_cluster() {
        if usize::from(c) >= clusters.len() {
            return Err(format!(
                "an app refers to cluster #{c}, which it does not list"
            ));
        }
    }
    Ok(clusters)
}

/// Per index of `table`'s cluster registry: `None` where `config` has the cluster, else the
/// apps on it, taken from `known` where it has them already (counts kept for clusters the
/// previous configuration lacked too) and otherwise counted by one walk of the table (only
/// when some cluster needs it).
fn count_unconfigured(table: &Table, config: &Config, known: &[Option<u64>]) -> Vec<Option<u64>> {
    let names = table.clusters().names();
    let mut out: Vec<Option<u64>> = Vec::with_capacity(names.len());
    // The indexes to count.
    let mut walk = vec![false; names.len()];
    for (i, name) in names.iter().enumerate() {
        if config.cluster(name.as_str()).is_some() {
            out.push(None);
        } else if let Some(&Some(n)) = known.get(i) {
            out.push(Some(n));
        } else {
            out.push(Some(0));
            walk[i] = true;
        }
    }
    if walk.contains(&true) {
        let started = Instant::now();
        table.for_each_record(|_, _, c| {
            let c = usize::from(c);
            if walk.get(c) == Some(&true) {
                if let Some(Some(n)) = out.get_mut(c) {
                    *n += 1;
                }
            }
        });
        slow_step("counting the apps of clusters not configured", started);
    }
    out
}

/// Loads a checkpoint if one is configured and usable: its table, whose cluster registry is
/// the checkpoint's list of cluster names whatever the configuration has (nothing is
/// renumbered: a cluster the configuration lacks only makes its apps answer SERVFAIL), and
/// its position.
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
    let table = match registry_of(&loaded) {
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
    /// Loads the table (checkpoint plus the changes after it, or the whole feed) and publishes
    /// the first snapshot.
    pub fn load(config: Arc<Config>) -> io::Result<Builder> {
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
                            if let Err(e) = apply(&mut t, change) {
                                rejected += 1;
                                tracing::warn!("postgres row {change:?}: {e}; skipped");
                            }
                            if i % (1 << 20) == (1 << 20) - 1 {
                                t = t.folded().map_err(io::Error::other)?;
                            }
                        }
                        rejected_at_load += rejected + pg.take_rejected();
                        if rejected_at_load > 0 {
                            tracing::warn!(rejected = rejected_at_load, "rows skipped");
                        }
                        (
                            t.folded().map_err(io::Error::other)?,
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
        let served = Arc::new(Served::for_registry(&config, table.clusters().names()));
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
            unconfigured,
            source,
            shared,
            generation: 1,
            last_seq: position.last_seq,
            rejected: rejected_at_load,
            fold: None,
            pending: None,
            caught_up: false,
            source_failed: false,
            shadowed,
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
                b.table = b.table.folded().map_err(io::Error::other)?;
                b.publish();
            }
            if applied == 0 && (b.caught_up || b.source_failed) {
                break;
            }
        }
        // The first checkpoint is due as soon as the table did not come from one.
        b.dirty = b.dirty || !from_checkpoint;
        if !b.table.overlay().is_empty() && b.table.base().is_empty() {
            b.table = b.table.folded().map_err(io::Error::other)?;
        }
        b.publish();
        b.report_unconfigured();
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
                    let r = apply(table, &change.change);
                    if table.overlay().len() > (1 << 18).max(table.base().len()) {
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
                    let r = apply(&mut self.table, &change.change);
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
                    if let Some(moved) = moved {
                        self.count_move(&change, line, moved);
                    }
                    self.warn_if_shadowed(&change, line);
                }
                Err(message) => {
                    let e = self.at_change(line, format!("change {change}: {message}; skipped"));
                    self.reject(&e);
                }
            }
        }
        if let Source::Journal(r) = &self.source {
            // The reader knows the position best: a snapshot with no app (an empty table
            // compacted) moves it without a change.
            self.dirty |= r.last_seq() != self.last_seq;
            self.last_seq = r.last_seq();
        }
        if batch.at_end {
            if let Some(table) = self.pending.take() {
                let table = if table.overlay().is_empty() {
                    table
                } else {
                    table.folded().map_err(io::Error::other)?
                };
                self.table = table;
                // A registry of its own: the answers are laid out again, its clusters counted.
                self.served = Arc::new(Served::for_registry(
                    &self.config,
                    self.table.clusters().names(),
                ));
                self.unconfigured = count_unconfigured(&self.table, &self.config, &[]);
                self.report_unconfigured();
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

    /// Keeps the counts of apps on clusters the configuration lacks, and warns of a change
    /// that put an app on one (taken: its app answers SERVFAIL until a configuration with the
    /// cluster is loaded).
    fn count_move(&mut self, change: &Sequenced, line: u64, moved: Moved) {
        let names = self.table.clusters().names();
        if moved.new_cluster {
            for name in &names[self.unconfigured.len().min(names.len())..] {
                let lacks = self.config.cluster(name.as_str()).is_none();
                self.unconfigured.push(lacks.then_some(0));
            }
        }
        if let Some(Some(n)) = moved
            .from
            .and_then(|c| self.unconfigured.get_mut(usize::from(c)))
        {
            *n = n.saturating_sub(1);
        }
        let Some(to) = moved.to else {
            return;
        };
        if let Some(Some(n)) = self.unconfigured.get_mut(usize::from(to)) {
            *n += 1;
            let cluster = names.get(usize::from(to)).map_or("?", |l| l.as_str());
            let e = self.at_change(
                line,
                format!("change {change}: cluster {cluster} is not in the configuration; applied: the app answers SERVFAIL until a configuration with that cluster is loaded"),
            );
            tracing::warn!("{e}");
        }
    }

    /// Warns of a change that put an app where the configuration answers otherwise (an id or
    /// user `ns1` under a host `ns1`): taken, but unreachable by that name. The `repl` CLI
    /// refuses such names; PostgreSQL cannot know the configuration.
    fn warn_if_shadowed(&mut self, change: &Sequenced, line: u64) {
        let Change::Upsert { id, user, .. } = &change.change else {
            return;
        };
        for (what, l) in [("repl id", id), ("user", user)] {
            if let Some((_, by)) = self.shadowed.iter().find(|(s, _)| s == l.as_str()) {
                self.status.shadowed.fetch_add(1, Ordering::Relaxed);
                let e = self.at_change(
                    line,
                    format!("change {change}: {what} {l} is answered by the {by} in the configuration; the app cannot be reached by that name"),
                );
                tracing::warn!("{e}");
            }
        }
    }

    /// Logs the clusters that apps are on but the configuration lacks (they answer SERVFAIL).
    fn report_unconfigured(&self) {
        let names = self.table.clusters().names();
        for (name, n) in names.iter().zip(&self.unconfigured) {
            if let Some(n) = n.filter(|&n| n > 0) {
                tracing::warn!(
                    apps = n,
                    "cluster {name} is not in the configuration: its apps answer SERVFAIL until a configuration with it is loaded"
                );
            }
        }
    }

    /// Apps on clusters the running configuration lacks.
    pub fn apps_on_unconfigured_clusters(&self) -> u64 {
        self.unconfigured.iter().flatten().sum()
    }

    fn reject(&mut self, e: &LineError) {
        self.rejected += 1;
        tracing::warn!("{e}");
    }

    /// Where a change came from and what about it, as a rejection says it.
    fn at_change(&self, line: u64, message: String) -> LineError {
        LineError {
            file: self.source_name(),
            line,
            message,
        }
    }

    fn publish(&mut self) {
        // Registries only grow: a longer one has names the answers are not laid out for yet.
        if self.served.cluster_names.len() != self.table.clusters().len() {
            self.served = Arc::new(Served::for_registry(
                &self.config,
                self.table.clusters().names(),
            ));
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

    fn position(&self) -> Position {
        Position {
            last_seq: self.last_seq,
            journal: match &self.source {
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
        // Never while a rebuilt table is not complete, nor inside a snapshot block: the
        // position would not match what a restart can resume from.
        let in_snapshot = matches!(&self.source, Source::Journal(r) if r.in_snapshot());
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

    /// Switches to a new configuration: zones, clusters and TTLs take effect in the next
    /// snapshot. The table is left as it is (its cluster indexes refer to its own registry,
    /// not to the configuration's order): apps on a cluster the configuration now has answer
    /// with its addresses at once. Refused, leaving everything as it was, when a cluster that
    /// apps still use is gone. Listener and feed settings take effect at the next restart.
    pub fn reload(&mut self, config: Arc<Config>) -> Result<(), String> {
        let counts = count_unconfigured(&self.table, &config, &self.unconfigured);
        let names = self.table.clusters().names();
        for (i, name) in names.iter().enumerate() {
            // Configured until now (no count kept), and used.
            let was_configured = matches!(self.unconfigured.get(i), Some(None));
            if let Some(n) = counts[i].filter(|&n| n > 0 && was_configured) {
                return Err(format!(
                    "cluster {name} is gone from the new configuration but {n} apps still use it; move them first"
                ));
            }
        }
        if config.server.listen != self.config.server.listen
            || config.server.threads != self.config.server.threads
            || config.feed != self.config.feed
        {
            tracing::warn!("listener and feed settings change at the next restart");
        }
        self.served = Arc::new(Served::for_registry(&config, names));
        self.unconfigured = counts;
        self.shadowed = config.labels_answered_elsewhere();
        self.config = config;
        self.publish();
        tracing::info!(
            zones = self.config.zones.len(),
            clusters = self.config.clusters.len(),
            generation = self.generation,
            "configuration reloaded"
        );
        self.report_unconfigured();
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
            // No file to watch: a missing journal is looked for at the idle pace, not the
            // busy one.
            None if reader.is_missing() => std::thread::sleep(IDLE_WAIT),
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
