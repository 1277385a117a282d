//! One term of leadership: load the last snapshot (or start empty), find the last change the
//! stream holds, follow the source from the snapshot, apply every change to the relay's own
//! table and publish those after the stream's last, in batches fenced with the stream's
//! expected last sequence; rebuild, snapshot and publish a reset when the source starts over;
//! put a snapshot on a timer.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;

use super::{sleep_unless_stopped, Ctx, Leadership, TermEnd};
use crate::feed::batch::{Event, ReadBatch};
use crate::feed::change::Sequenced;
use crate::feed::checkpoint::Position;
use crate::feed::nats::client;
use crate::feed::nats::message::{
    encode_changes, encoded_len, msg_id, Message, HEADER_MSG_ID, HEADER_RESET, HEADER_SEQ, MAX_BODY,
};
use crate::feed::nats::snapshot;
use crate::feed::source::{self, Source};
use crate::metrics::relay::RelayMetrics;
use crate::table::Table;

/// The longest one read of the source waits for changes while no batch is open.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two publish retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a step ended the term early.
enum Stop {
    End(TermEnd),
    Err(String),
}

impl From<String> for Stop {
    fn from(e: String) -> Self {
        Stop::Err(e)
    }
}

/// The term's state.
struct Term<'a> {
    ctx: &'a Ctx,
    leadership: &'a Leadership,
    table: Table,
    /// A table being rebuilt after a reset of the source (or on a first load), replacing
    /// `table` once the source is read to its end.
    rebuild: Option<Table>,
    source: Option<Box<dyn Source>>,
    /// The last change applied.
    last_seq: u64,
    /// The last change in the stream.
    published: u64,
    /// The stream's last sequence, which the next publish expects.
    expected: u64,
    pending: Vec<Sequenced>,
    pending_bytes: usize,
    /// The most bytes of changes in one message: [`MAX_BODY`], or less where the server's
    /// `max_payload` is smaller, less room for the headers.
    body_max: usize,
    first_at: Option<Instant>,
    next_snapshot: Instant,
    /// A snapshot being put in the background.
    snapshotting: Option<Snapshotting>,
    /// The sequence number the last snapshot this term put covers.
    put_seq: Option<u64>,
}

/// A snapshot being put.
struct Snapshotting {
    task: tokio::task::JoinHandle<Result<snapshot::SnapshotInfo, String>>,
    started: Instant,
    apps: usize,
}

/// Runs a term until leadership is lost, the relay is asked to stop, or (`--once`) the
/// source is published to its end.
pub(crate) async fn run(ctx: &Ctx, leadership: &Leadership) -> Result<TermEnd, String> {
    let mut t = match Term::start(ctx, leadership).await {
        Ok(t) => t,
        Err(Stop::End(end)) => return Ok(end),
        Err(Stop::Err(e)) => return Err(e),
    };
    match t.follow().await {
        Ok(()) => Ok(TermEnd::Stopped),
        Err(Stop::End(end)) => Ok(end),
        Err(Stop::Err(e)) => Err(e),
    }
}

impl<'a> Term<'a> {
    /// Loads the snapshot, reads the stream's tail, opens the source.
    async fn start(ctx: &'a Ctx, leadership: &'a Leadership) -> Result<Term<'a>, Stop> {
        let m = &ctx.metrics;
        let snap = match snapshot::get(&ctx.store).await {
            Ok(Some((loaded, info))) => match loaded.into_table() {
                Ok((table, position)) => Some((table, position, info)),
                Err(e) => {
                    RelayMetrics::add(&m.snapshots_refused, 1);
                    tracing::error!(
                        "relay: snapshot (seq {}): {e}; refused, rebuilding from the source",
                        info.seq
                    );
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                RelayMetrics::add(&m.snapshots_refused, 1);
                tracing::error!("relay: {e}; refused, rebuilding from the source");
                None
            }
        };
        let tail = client::last_message(&ctx.stream).await?;
        let published = tail.as_ref().map_or(0, |(_, msg)| msg.last_seq());
        let expected = client::last_stream_seq(&ctx.stream).await?;
        RelayMetrics::set(&m.last_published_seq, published);
        let had_snapshot = snap.is_some();
        let snap_seq = snap.as_ref().map_or(0, |(_, p, _)| p.last_seq);
        tracing::info!(
            snapshot_seq = snap_seq,
            published,
            stream_seq = expected,
            "relay: starting from the snapshot and the stream's last change"
        );
        let checkpoint = snap.map(|(mut table, position, _)| {
            table.acme_mut().set_params(ctx.config.acme);
            (table, position)
        });
        let opened = loop {
            let config = ctx.config.clone();
            let ckpt = checkpoint.clone();
            let result = tokio::task::spawn_blocking(move || source::open(&config, ckpt))
                .await
                .map_err(|e| format!("opening the source: {e}"))?;
            match result {
                Ok(o) => break o,
                Err(e) => {
                    RelayMetrics::add(&m.source_errors, 1);
                    tracing::warn!("relay: opening the source: {e}; retrying");
                    if ctx.once {
                        return Err(Stop::Err(format!("opening the source: {e}")));
                    }
                    check_leader(leadership)?;
                    if sleep_unless_stopped(&ctx.stop, super::RETRY).await {
                        return Err(Stop::End(TermEnd::Stopped));
                    }
                }
            }
        };
        let mut table = opened.table;
        table.acme_mut().set_params(ctx.config.acme);
        // A whole-table load (PostgreSQL without a usable snapshot), or a first load into an
        // empty stream: built aside and published as a snapshot and a reset.
        let rebuild =
            (!opened.resumed && (opened.position.last_seq > 0 || published == 0)).then(|| {
                let mut t = Table::default();
                t.acme_mut().set_params(ctx.config.acme);
                t
            });
        let mut t = Term {
            ctx,
            leadership,
            table,
            rebuild,
            source: Some(opened.source),
            last_seq: opened.position.last_seq,
            published,
            expected,
            pending: Vec::new(),
            pending_bytes: 0,
            body_max: body_max(ctx),
            first_at: None,
            // A snapshot at once when there was none to start from.
            next_snapshot: if had_snapshot {
                Instant::now() + interval(ctx)
            } else {
                Instant::now()
            },
            snapshotting: None,
            put_seq: None,
        };
        if t.rebuild.is_some() {
            tracing::warn!(
                last_seq = t.last_seq,
                "relay: building the whole table from the source, to publish as a snapshot and a reset"
            );
        }
        // A snapshot put ahead of its reset by a relay that stopped in between: the reset.
        if opened.resumed && snap_seq > published && t.rebuild.is_none() {
            tracing::warn!(
                snapshot_seq = snap_seq,
                published,
                "relay: the snapshot is ahead of the stream; publishing its reset"
            );
            t.publish_reset(snap_seq).await?;
        }
        Ok(t)
    }

    /// Reads, applies and publishes until the term ends.
    async fn follow(&mut self) -> Result<(), Stop> {
        let ctx = self.ctx;
        let batch_wait = Duration::from_millis(ctx.config.relay.batch_wait_ms);
        loop {
            if ctx.stop.load(Ordering::Relaxed) {
                self.flush().await?;
                if let Some(running) = self.snapshotting.take() {
                    self.finish_snapshot(running).await;
                }
                tracing::info!(published = self.published, "relay: stopping");
                return Ok(());
            }
            check_leader(self.leadership)?;
            // The open batch is due.
            if self.first_at.is_some_and(|t| t.elapsed() >= batch_wait) {
                self.flush().await?;
            }
            if self
                .snapshotting
                .as_ref()
                .is_some_and(|s| s.task.is_finished())
            {
                if let Some(done) = self.snapshotting.take() {
                    self.finish_snapshot(done).await;
                }
            }
            if self.rebuild.is_none()
                && self.snapshotting.is_none()
                && Instant::now() >= self.next_snapshot
            {
                self.flush().await?;
                self.snapshotting = self.start_snapshot();
            }
            let wait = match self.first_at {
                Some(t) => batch_wait.saturating_sub(t.elapsed()),
                None => IDLE_WAIT,
            };
            let batch = self.read(wait).await?;
            if batch.failed {
                RelayMetrics::add(&ctx.metrics.source_errors, 1);
                self.flush().await?;
                if ctx.once {
                    return Err(Stop::Err("the source is away".into()));
                }
                // The loop's head sees a stop.
                sleep_unless_stopped(&ctx.stop, super::RETRY).await;
                continue;
            }
            for e in &batch.errors {
                RelayMetrics::add(&ctx.metrics.rejected, 1);
                tracing::warn!("relay: {e}");
            }
            RelayMetrics::add(&ctx.metrics.rejected, batch.rejected);
            for n in &batch.notices {
                tracing::warn!("relay: {}", n.message);
            }
            let took = batch.events.len();
            let at_end = batch.at_end;
            // Runs of changes between resets: each applied on the blocking pool, then queued.
            let mut run = Vec::new();
            for event in batch.events {
                match event {
                    Event::Reset { seq } => {
                        self.take(std::mem::take(&mut run)).await?;
                        self.flush().await?;
                        tracing::warn!(seq, "relay: the source starts over; rebuilding the table");
                        let mut t = Table::default();
                        t.acme_mut().set_params(ctx.config.acme);
                        self.rebuild = Some(t);
                        self.last_seq = seq;
                    }
                    Event::Change { change, .. } => run.push(change),
                }
            }
            self.take(run).await?;
            if let Some(seq) = self.source.as_ref().and_then(|s| s.last_seq()) {
                self.last_seq = self.last_seq.max(seq);
            }
            RelayMetrics::set(&ctx.metrics.source_seq, self.last_seq);
            if at_end && self.rebuild.is_some() {
                self.install_rebuilt().await?;
            }
            if at_end && ctx.once && self.rebuild.is_none() {
                self.flush().await?;
                // (A rebuild has just put one covering everything: not twice.)
                if self.put_seq != Some(self.last_seq) && !self.put_snapshot().await {
                    return Err(Stop::Err("--once: the snapshot could not be put".into()));
                }
                return Ok(());
            }
            if took == 0 {
                if self.first_at.is_some() {
                    let left = batch_wait
                        .saturating_sub(self.first_at.map_or(batch_wait, |t| t.elapsed()));
                    tokio::time::sleep(left.min(IDLE_WAIT)).await;
                } else {
                    self.pause().await?;
                }
            }
        }
    }

    /// Applies `changes` to the table (or the one being rebuilt) and queues each for
    /// publishing if the stream does not hold it yet.
    async fn take(&mut self, changes: Vec<Sequenced>) -> Result<(), Stop> {
        if changes.is_empty() {
            return Ok(());
        }
        let changes = self.apply(changes).await?;
        for change in changes {
            self.queue(change).await?;
        }
        Ok(())
    }

    /// Applies `changes` in order to the table (or the one being rebuilt), folding it as it
    /// grows, on the blocking pool: at millions of apps the overlay's growth and the folds
    /// take seconds, and the runtime thread must go on renewing the lease and driving the
    /// NATS connection meanwhile (applied there, a first load of 10M apps lost the lease).
    /// A change the table refuses is logged and counted, and published all the same.
    async fn apply(&mut self, changes: Vec<Sequenced>) -> Result<Vec<Sequenced>, Stop> {
        let ctx = self.ctx;
        let config = ctx.config.clone();
        let table = std::mem::take(self.rebuild.as_mut().unwrap_or(&mut self.table));
        let (table, changes, refused) = tokio::task::spawn_blocking(move || {
            let mut table = table;
            let mut refused = Vec::new();
            for change in &changes {
                let acme_ok = match change.change.acme_name() {
                    Some(name) => crate::feed::acme::check_name(&config, name).map(|_| ()),
                    None => Ok(()),
                };
                if let Err(e) =
                    acme_ok.and_then(|()| change.change.apply_to(&mut table).map(|_| ()))
                {
                    refused.push(format!("change {change}: {e}"));
                }
                if table.fold_due() {
                    table = table
                        .folded()
                        .map_err(|e| format!("folding the table: {e}"))?;
                }
            }
            Ok::<_, String>((table, changes, refused))
        })
        .await
        .map_err(|e| Stop::Err(format!("applying changes: {e}")))??;
        *self.rebuild.as_mut().unwrap_or(&mut self.table) = table;
        for r in &refused {
            tracing::warn!("relay: {r}; left out of the relay's table (published all the same)");
        }
        RelayMetrics::add(&ctx.metrics.rejected, refused.len() as u64);
        if let Some(last) = changes.last() {
            self.last_seq = self.last_seq.max(last.seq);
        }
        Ok(changes)
    }

    /// Queues an applied change for publishing if the stream does not hold it yet.
    async fn queue(&mut self, change: Sequenced) -> Result<(), Stop> {
        let ctx = self.ctx;
        if self.rebuild.is_some() || change.seq <= self.published {
            return Ok(());
        }
        if let Some(last) = self.pending.last() {
            if change.seq <= last.seq {
                tracing::warn!(
                    "relay: change {change} does not follow {}; not published",
                    last.seq
                );
                return Ok(());
            }
        }
        let len = encoded_len(&change);
        if !self.pending.is_empty()
            && (self.pending.len() >= ctx.config.relay.batch_max
                || self.pending_bytes + len > self.body_max)
        {
            self.flush().await?;
        }
        self.pending_bytes += len;
        self.pending.push(change);
        self.first_at.get_or_insert_with(Instant::now);
        if self.pending.len() >= ctx.config.relay.batch_max {
            self.flush().await?;
        }
        Ok(())
    }

    /// Once the source is read to its end after a reset: the rebuilt table replaces the
    /// relay's, and if it is ahead of the stream, it is put as a snapshot and a reset
    /// published.
    async fn install_rebuilt(&mut self) -> Result<(), Stop> {
        let Some(mut table) = self.rebuild.take() else {
            return Ok(());
        };
        if !table.overlay().is_empty() {
            table = fold(table).await?;
        }
        self.table = table;
        let seq = self.last_seq;
        tracing::warn!(
            apps = self.table.len(),
            seq,
            published = self.published,
            "relay: the table was rebuilt from the source"
        );
        if seq <= self.published {
            return Ok(());
        }
        if !self.put_snapshot().await {
            return Err(Stop::Err(format!(
                "the snapshot of the rebuilt table (seq {seq}) could not be put"
            )));
        }
        self.publish_reset(seq).await
    }

    /// Puts a snapshot of the table at the last change applied (the batch flushed first by
    /// the caller) and waits for it, after any snapshot still being put. Returns whether it
    /// was put; a failure is logged, counted, and tried again later.
    async fn put_snapshot(&mut self) -> bool {
        if let Some(running) = self.snapshotting.take() {
            self.finish_snapshot(running).await;
        }
        match self.start_snapshot() {
            Some(running) => self.finish_snapshot(running).await,
            None => false,
        }
    }

    /// Starts putting a snapshot of the table at the last change applied, in the background
    /// (the table is cloned; its checkpoint written on the blocking pool, then uploaded),
    /// unless the source is inside a block a restart could not resume from.
    fn start_snapshot(&mut self) -> Option<Snapshotting> {
        let ctx = self.ctx;
        let source = self.source.as_ref()?;
        if source.mid_block() {
            return None;
        }
        self.next_snapshot = Instant::now() + interval(ctx);
        let position = Position {
            last_seq: self.last_seq,
            ..source.position(self.last_seq)
        };
        let table = self.table.clone();
        let apps = table.len();
        let store = ctx.store.clone();
        let task = tokio::spawn(async move {
            let bytes = tokio::task::spawn_blocking(move || {
                let clusters = snapshot::cluster_names(&table);
                snapshot::checkpoint_bytes(&table, position, &clusters)
            })
            .await;
            match bytes {
                Ok(Ok(bytes)) => snapshot::put_raw(&store, &bytes, position.last_seq).await,
                Ok(Err(e)) => Err(format!("writing the snapshot: {e}")),
                Err(e) => Err(format!("writing the snapshot: {e}")),
            }
        });
        Some(Snapshotting {
            task,
            started: Instant::now(),
            apps,
        })
    }

    /// Waits for a snapshot being put; logs and counts how it went.
    async fn finish_snapshot(&mut self, running: Snapshotting) -> bool {
        let ctx = self.ctx;
        let result = match running.task.await {
            Ok(r) => r,
            Err(e) => Err(format!("putting the snapshot: {e}")),
        };
        match result {
            Ok(info) => {
                RelayMetrics::add(&ctx.metrics.snapshots, 1);
                RelayMetrics::set(&ctx.metrics.snapshot_seq, info.seq);
                self.put_seq = Some(info.seq);
                tracing::info!(
                    seq = info.seq,
                    bytes = info.bytes,
                    apps = running.apps,
                    ms = running.started.elapsed().as_millis() as u64,
                    "relay: snapshot put"
                );
                true
            }
            Err(e) => {
                RelayMetrics::add(&ctx.metrics.snapshot_errors, 1);
                tracing::error!("relay: {e}");
                false
            }
        }
    }

    /// Publishes the open batch (if any), until the stream acknowledges it.
    async fn flush(&mut self) -> Result<(), Stop> {
        self.first_at = None;
        while !self.pending.is_empty() {
            let (seq, body) = encode_changes(&self.pending);
            let first = self.pending[0].seq;
            let last = self.pending[self.pending.len() - 1].seq;
            let id = msg_id(&Message::Changes {
                first,
                last,
                changes: Vec::new(),
            });
            let n = self.pending.len() as u64;
            let len = body.len() as u64;
            if self.publish(HEADER_SEQ, &seq, &id, body, last).await? {
                let m = &self.ctx.metrics;
                RelayMetrics::add(&m.published_changes, n);
                RelayMetrics::add(&m.bytes, len);
                self.pending.clear();
            } else {
                // The stream moved on: keep only what it does not hold.
                let published = self.published;
                self.pending.retain(|c| c.seq > published);
            }
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Publishes a reset at `seq` (its snapshot is in the object store).
    async fn publish_reset(&mut self, seq: u64) -> Result<(), Stop> {
        let id = msg_id(&Message::Reset { seq });
        loop {
            if self
                .publish(HEADER_RESET, &seq.to_string(), &id, Vec::new(), seq)
                .await?
            {
                RelayMetrics::add(&self.ctx.metrics.resets, 1);
                tracing::warn!(seq, "relay: reset published; edges load the snapshot");
                return Ok(());
            }
            if self.published >= seq {
                return Ok(());
            }
        }
    }

    /// Publishes one message covering changes up to `last`, fenced with the stream's expected
    /// last sequence, retrying (the same message id: JetStream drops a copy) until it is
    /// acknowledged. `Ok(false)`: the stream's last sequence was not the expected one; the
    /// tail was read again (`published`, `expected`) and the caller decides what is left.
    async fn publish(
        &mut self,
        header: &str,
        value: &str,
        id: &str,
        body: Vec<u8>,
        last: u64,
    ) -> Result<bool, Stop> {
        use async_nats::jetstream::context::PublishErrorKind;
        let ctx = self.ctx;
        let mut backoff = Duration::from_millis(50);
        loop {
            check_leader(self.leadership)?;
            let mut headers = HeaderMap::new();
            headers.insert(header, value);
            headers.insert(HEADER_MSG_ID, id);
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                self.expected.to_string().as_str(),
            );
            let sent = ctx
                .js
                .publish_with_headers(ctx.nats.subject.clone(), headers, body.clone().into())
                .await;
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => {
                    self.expected = if ack.duplicate {
                        client::last_stream_seq(&ctx.stream).await?
                    } else {
                        ack.sequence
                    };
                    self.published = self.published.max(last);
                    RelayMetrics::add(&ctx.metrics.messages, 1);
                    RelayMetrics::set(&ctx.metrics.last_published_seq, self.published);
                    return Ok(true);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    RelayMetrics::add(&ctx.metrics.publish_errors, 1);
                    let tail = client::last_message(&ctx.stream).await?;
                    let published = tail.as_ref().map_or(0, |(_, m)| m.last_seq());
                    let expected = client::last_stream_seq(&ctx.stream).await?;
                    tracing::warn!(
                        msg_id = id,
                        expected = self.expected,
                        stream_seq = expected,
                        published,
                        "relay: the stream's last sequence is not the expected one; resuming after its tail"
                    );
                    self.expected = expected;
                    self.published = published;
                    RelayMetrics::set(&ctx.metrics.last_published_seq, published);
                    return Ok(false);
                }
                Err(e) => {
                    RelayMetrics::add(&ctx.metrics.publish_errors, 1);
                    tracing::warn!(msg_id = id, "relay: publishing: {e}; retrying");
                    if sleep_unless_stopped(&ctx.stop, backoff).await {
                        tracing::error!(
                            msg_id = id,
                            "relay: stopping with a batch not published (the next leader publishes it)"
                        );
                        return Err(Stop::End(TermEnd::Stopped));
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One read of the source (on the blocking pool).
    async fn read(&mut self, wait: Duration) -> Result<ReadBatch, Stop> {
        let mut source = self.source.take().ok_or("the source is gone".to_string())?;
        let last = self.last_seq;
        let (source, result) = tokio::task::spawn_blocking(move || {
            let r = source.read(last, wait);
            (source, r)
        })
        .await
        .map_err(|e| format!("reading the source: {e}"))?;
        self.source = Some(source);
        result.map_err(|e: io::Error| Stop::Err(format!("reading the source: {e}")))
    }

    /// Waits for the source to grow (on the blocking pool).
    async fn pause(&mut self) -> Result<(), Stop> {
        let mut source = self.source.take().ok_or("the source is gone".to_string())?;
        let source = tokio::task::spawn_blocking(move || {
            source.pause(0, IDLE_WAIT);
            source
        })
        .await
        .map_err(|e| format!("waiting for the source: {e}"))?;
        self.source = Some(source);
        Ok(())
    }
}

/// Room left in a message for its headers.
const HEADER_ROOM: usize = 1024;

/// `table` with its overlay folded into a new base, built on a blocking thread: at millions
/// of apps a fold takes seconds, and the runtime thread must go on renewing the lease and
/// driving the NATS connection meanwhile (a fold there lost the lease at 10M apps).
async fn fold(table: Table) -> Result<Table, Stop> {
    tokio::task::spawn_blocking(move || table.folded())
        .await
        .map_err(|e| Stop::Err(format!("folding the table: {e}")))?
        .map_err(|e| Stop::Err(format!("folding the table: {e}")))
}

/// The most bytes of changes in one message (see `Term::body_max`).
fn body_max(ctx: &Ctx) -> usize {
    let server = ctx.js.client().server_info().max_payload;
    let max = if server == 0 {
        MAX_BODY
    } else {
        MAX_BODY.min(server)
    };
    max.saturating_sub(HEADER_ROOM).max(HEADER_ROOM)
}

/// The source is dropped off the runtime: PostgreSQL's blocking client runs a runtime of its
/// own to close its connection, which cannot start inside this one.
impl Drop for Term<'_> {
    /// A snapshot still being put is abandoned (the object store keeps the one before).
    fn drop(&mut self) {
        if let Some(running) = self.snapshotting.take() {
            running.task.abort();
        }
        if let Some(source) = self.source.take() {
            let _ = std::thread::Builder::new()
                .name("relay-source-close".into())
                .spawn(move || drop(source));
        }
    }
}

/// The snapshot interval.
fn interval(ctx: &Ctx) -> Duration {
    Duration::from_secs(ctx.config.relay.snapshot_interval_secs)
}

/// Ends the term if leadership is lost.
fn check_leader(leadership: &Leadership) -> Result<(), Stop> {
    if leadership.held() {
        Ok(())
    } else {
        Err(Stop::End(TermEnd::Lost))
    }
}
