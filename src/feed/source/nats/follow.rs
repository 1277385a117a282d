//! The NATS edge source's own thread: a current-thread tokio runtime running the client. It
//! finds where the edge starts in the stream (or loads the snapshot), follows the stream with
//! an ordered push consumer, and hands decoded messages and snapshots to the builder's thread
//! through a bounded channel. It reconnects with backoff, loads a snapshot again after a reset
//! or when the stream lost what the edge needs, refuses a snapshot that does not verify, and
//! keeps the NATS metrics.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::push::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::object_store::ObjectStore;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{self, Context};
use crossbeam_channel::{Sender, TrySendError};
use futures_util::StreamExt;

use super::search::{continues, find_start, Probe, Start};
use crate::config::NatsConfig;
use crate::feed::batch::NoticeKind;
use crate::feed::nats::message::Message;
use crate::feed::nats::{client, snapshot};
use crate::metrics::nats::NatsStats;
use crate::table::Table;

/// What the thread hands the builder's thread, in stream order.
pub enum Item {
    /// A change message (resets are handled here: they arrive as [`Item::Snapshot`]).
    Changes {
        /// When the server received it (ms since the epoch).
        published_ms: u64,
        message: Message,
    },
    /// A message that did not decode (logged and counted here; skipped).
    Bad,
    /// Something for the builder's log and counters (a gap, a reload).
    Notice(NoticeKind, String),
    /// A snapshot loaded mid-run: the table starts over as this one, at `seq`.
    Snapshot { table: Table, seq: u64 },
    /// The start of an edge without a checkpoint: the snapshot's table and sequence number,
    /// or `None` to start empty from the beginning of a stream that still holds it; or why
    /// the edge cannot start.
    Started(Result<Option<(Table, u64)>, String>),
}

/// What the thread and the source share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Set by the source when dropped: the thread ends.
    pub stop: AtomicBool,
    /// The first attempt to connect and start following has ended (either way).
    pub started: AtomicBool,
    /// Connected and following the stream.
    pub up: AtomicBool,
    /// The last message handed over was the last the stream held (nothing pending).
    pub idle: AtomicBool,
}

/// The longest wait between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The first wait.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// How long an edge without a checkpoint keeps trying before its start fails.
const START_TRYING: Duration = Duration::from_secs(10);
/// How often the thread looks at the connection and the stop flag.
const TICK: Duration = Duration::from_millis(200);
/// How long a refused snapshot is not downloaded again (another one put is at once).
const REFUSED_AGAIN: Duration = Duration::from_secs(60);
/// How often the stream's last change is looked up, for the lag metrics.
const LAST_EVERY: u32 = 10;

/// Starts the thread following `cfg`'s stream for an edge at `applied` (`None`: no
/// checkpoint; the thread sends [`Item::Started`] first).
pub fn spawn(
    cfg: NatsConfig,
    applied: Option<u64>,
    tx: Sender<Item>,
    shared: Arc<Shared>,
    stats: Arc<NatsStats>,
) -> std::io::Result<()> {
    let rt = client::runtime()?;
    let follower = Follower {
        cfg,
        tx,
        shared,
        stats,
        applied,
        need: None,
        client: None,
        reported_start: applied.is_some(),
        refused: None,
    };
    std::thread::Builder::new()
        .name("nats".into())
        .spawn(move || rt.block_on(follower.run()))?;
    Ok(())
}

/// Why following stopped without an error.
enum Next {
    /// Stop: the source is gone.
    Stop,
    /// Find the start again (a snapshot is needed: a reset, or messages gone).
    Again,
}

struct Follower {
    cfg: NatsConfig,
    tx: Sender<Item>,
    shared: Arc<Shared>,
    stats: Arc<NatsStats>,
    /// The last change handed over (`None`: nothing yet, no checkpoint).
    applied: Option<u64>,
    /// A snapshot at or after this change is needed (a reset at it was met).
    need: Option<u64>,
    client: Option<async_nats::Client>,
    /// [`Item::Started`] was sent (or is not due: the edge has a checkpoint).
    reported_start: bool,
    /// The last snapshot refused (its object's nuid) and when: not downloaded again for
    /// [`REFUSED_AGAIN`] unless another is put.
    refused: Option<(String, Instant)>,
}

impl Follower {
    async fn run(mut self) {
        let began = Instant::now();
        let mut backoff = BACKOFF_MIN;
        loop {
            if self.stopped() {
                return;
            }
            let result = self.session(&mut backoff).await;
            self.shared.up.store(false, Relaxed);
            self.observe();
            match result {
                Ok(Next::Stop) => return,
                Ok(Next::Again) => continue,
                Err(e) => {
                    self.shared.started.store(true, Relaxed);
                    if !self.reported_start && began.elapsed() >= START_TRYING {
                        let _ = self.tx.send(Item::Started(Err(e)));
                        return;
                    }
                    tracing::warn!("{e}; trying again in {} ms", backoff.as_millis());
                    if !self.sleep(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Relaxed)
    }

    /// Sleeps `d`, looking at the stop flag; false when stopped.
    async fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopped() {
                return false;
            }
            tokio::time::sleep(TICK.min(until - Instant::now())).await;
        }
        !self.stopped()
    }

    /// Sets the connection metrics from the client's state.
    fn observe(&self) {
        let Some(c) = &self.client else {
            self.stats.connected.store(0, Relaxed);
            return;
        };
        let connected = c.connection_state() == async_nats::connection::State::Connected;
        self.stats.connected.store(u64::from(connected), Relaxed);
        let connects = c.statistics().connects.load(Relaxed);
        self.stats
            .reconnects
            .store(connects.saturating_sub(1), Relaxed);
    }

    /// Hands `item` over, waiting (without blocking the runtime) while the channel is full.
    /// `Err`: the builder is gone or the source stopped.
    async fn send(&self, mut item: Item) -> Result<(), ()> {
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => {
                    if self.stopped() {
                        return Err(());
                    }
                    item = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(()),
            }
        }
    }

    /// One connection's worth: the stream looked up, the start found (a snapshot loaded if
    /// needed), the stream followed until something ends it.
    async fn session(&mut self, backoff: &mut Duration) -> Result<Next, String> {
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let c = client::connect(&self.cfg, "clusterns-edge").await?;
                tracing::info!(servers = self.cfg.servers.join(","), "nats: connected");
                self.client = Some(c.clone());
                c
            }
        };
        self.observe();
        let js = jetstream::new(client.clone());
        let stream = client::get_stream(&js, &self.cfg).await?;
        let Some((start, caught_up)) = self.start(&js, &stream).await? else {
            return Ok(Next::Stop);
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: self.cfg.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| format!("nats: creating a consumer of {}: {e}", self.cfg.stream))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| format!("nats: subscribing to {}: {e}", self.cfg.stream))?;
        tracing::info!(
            stream = self.cfg.stream,
            from_stream_seq = start,
            applied = self.applied.unwrap_or(0),
            "nats: following the stream"
        );
        self.shared.idle.store(caught_up, Relaxed);
        self.shared.up.store(true, Relaxed);
        self.shared.started.store(true, Relaxed);
        *backoff = BACKOFF_MIN;
        let mut prev = start.saturating_sub(1);
        let mut tick = tokio::time::interval(TICK);
        let mut ticks = 0u32;
        let mut was_connected = true;
        loop {
            tokio::select! {
                m = messages.next() => {
                    let m = match m {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return Err(format!("nats: following {}: {e}", self.cfg.stream)),
                        None => return Err(format!("nats: the consumer of {} ended", self.cfg.stream)),
                    };
                    let (seq, pending, published_ms) = match m.info() {
                        Ok(i) => (
                            i.stream_sequence,
                            i.pending,
                            u64::try_from(i.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
                        ),
                        Err(e) => return Err(format!("nats: a message of {} without its metadata: {e}", self.cfg.stream)),
                    };
                    if seq <= prev {
                        continue;
                    }
                    self.stats.messages.fetch_add(1, Relaxed);
                    self.stats.received_bytes.fetch_add(m.payload.len() as u64, Relaxed);
                    match client::decode_headers(m.headers.as_ref(), &m.payload) {
                        Err(e) => {
                            self.stats.bad_messages.fetch_add(1, Relaxed);
                            tracing::error!("nats: stream {} message {seq}: {e}; skipped", self.cfg.stream);
                            prev = seq;
                            if self.send(Item::Bad).await.is_err() {
                                return Ok(Next::Stop);
                            }
                        }
                        Ok(message) => {
                            if let Some(next) = self.take(prev, seq, published_ms, message).await {
                                return Ok(next);
                            }
                            prev = seq;
                        }
                    }
                    self.shared.idle.store(pending == 0, Relaxed);
                }
                _ = tick.tick() => {
                    if self.stopped() {
                        return Ok(Next::Stop);
                    }
                    self.observe();
                    let connected = self.stats.connected.load(Relaxed) == 1;
                    self.shared.up.store(connected, Relaxed);
                    if connected && !was_connected {
                        // Our own consumer again, from the next stream sequence, at our pace
                        // (the ordered consumer's own recovery backs off to 10 s while
                        // JetStream starts).
                        tracing::info!(
                            "nats: connected again; resuming after stream sequence {prev}"
                        );
                        return Ok(Next::Again);
                    }
                    if !connected && was_connected {
                        tracing::warn!(
                            "nats: disconnected from the server; answering from the table as it is"
                        );
                    }
                    was_connected = connected;
                    ticks = ticks.wrapping_add(1);
                    if connected && ticks.is_multiple_of(LAST_EVERY) {
                        if let Ok(Some((_, last))) = client::last_message(&stream).await {
                            self.stats.stream_last_seq.store(last.last_seq(), Relaxed);
                        }
                    }
                }
            }
        }
    }

    /// Takes a decoded message at stream sequence `seq` (`prev`: the one before it seen):
    /// hands its changes over, or says that a snapshot is needed first. `None`: go on.
    async fn take(
        &mut self,
        prev: u64,
        seq: u64,
        published_ms: u64,
        message: Message,
    ) -> Option<Next> {
        let applied = self.applied.unwrap_or(0);
        let probe = probe_of(&message);
        if seq > prev + 1 && !continues(applied, false, probe) {
            // The start is found again: it finds the gap, says so and loads the snapshot.
            tracing::warn!(
                "nats: stream {} messages {}..={} are gone and message {seq} does not follow change {applied}",
                self.cfg.stream,
                prev + 1,
                seq - 1
            );
            return Some(Next::Again);
        }
        match message {
            Message::Reset { seq: at } => {
                // The reload is said when the snapshot is handed over.
                self.need = Some(at);
                tracing::warn!(
                    "nats: stream {} message {seq}: the table starts over as of change {at}; loading the snapshot",
                    self.cfg.stream
                );
                Some(Next::Again)
            }
            message @ Message::Changes { .. } => {
                let last = message.last_seq();
                self.stats.stream_last_seq.fetch_max(last, Relaxed);
                if last <= applied {
                    // Already applied (the start overlaps what the edge has).
                    return None;
                }
                self.applied = Some(last);
                let item = Item::Changes {
                    published_ms,
                    message,
                };
                match self.send(item).await {
                    Ok(()) => None,
                    Err(()) => Some(Next::Stop),
                }
            }
        }
    }

    /// Hands over a notice and asks for the start to be found again.
    async fn notice(&self, kind: NoticeKind, message: String) -> Next {
        match self.send(Item::Notice(kind, message)).await {
            Ok(()) => Next::Again,
            Err(()) => Next::Stop,
        }
    }

    /// Where to follow from (and whether that is past the stream's end), loading the
    /// snapshot first where the edge needs it; `None`: stopped.
    async fn start(
        &mut self,
        js: &Context,
        stream: &Stream,
    ) -> Result<Option<(u64, bool)>, String> {
        let info = stream
            .get_info()
            .await
            .map_err(|e| format!("nats: stream {} info: {e}", self.cfg.stream))?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let from = |s: u64| Some((s, s > last));
        let Some(applied) = self.applied else {
            return self.first_start(js, stream, first, last).await;
        };
        if self.need.is_none() {
            match self.find(stream, applied, first, last).await? {
                Start::From(s) => return Ok(from(s)),
                Start::Nothing { next } => {
                    let newer = match client::snapshot_store(js, &self.cfg, false).await {
                        Ok(store) => snapshot::info(&store)
                            .await?
                            .is_some_and(|i| i.seq > applied),
                        Err(_) => false,
                    };
                    if !newer {
                        return Ok(from(next));
                    }
                    tracing::warn!(
                        "nats: stream {} holds no message and the snapshot is newer than change {applied}: loading it",
                        self.cfg.stream
                    );
                }
                Start::Bootstrap { why, .. } => {
                    let why = format!("nats: {why}: loading the snapshot");
                    if let Next::Stop = self.notice(NoticeKind::Gap, why).await {
                        return Ok(None);
                    }
                }
            }
            // Tried again until a snapshot at least as new as the table loads (the notice
            // once).
            self.need = Some(applied);
        }
        let need = self.need.unwrap_or(0);
        let (table, seq, start) = self.bootstrap(js, stream, first, last, need).await?;
        self.shared.idle.store(false, Relaxed);
        if self.send(Item::Snapshot { table, seq }).await.is_err() {
            return Ok(None);
        }
        self.need = None;
        self.applied = Some(seq);
        self.stats.bootstraps.fetch_add(1, Relaxed);
        Ok(Some(start))
    }

    /// The start of an edge without a checkpoint: the snapshot (or the stream's beginning,
    /// when it has no snapshot and the stream still holds it), reported as
    /// [`Item::Started`].
    async fn first_start(
        &mut self,
        js: &Context,
        stream: &Stream,
        first: u64,
        last: u64,
    ) -> Result<Option<(u64, bool)>, String> {
        let store = client::snapshot_store(js, &self.cfg, false).await.ok();
        let has_snapshot = match &store {
            Some(s) => snapshot::info(s).await?.is_some(),
            None => false,
        };
        let (started, seq, start) = if has_snapshot {
            let (table, seq, start) = self.bootstrap(js, stream, first, last, 0).await?;
            self.stats.bootstraps.fetch_add(1, Relaxed);
            (Some((table, seq)), seq, start)
        } else if first <= 1 {
            tracing::warn!(
                "nats: no snapshot in {}; the stream {} holds its beginning: replaying it",
                self.cfg.snapshot_bucket,
                self.cfg.stream
            );
            (None, 0, (first.max(1), last == 0))
        } else {
            return Err(format!(
                "nats: no snapshot in {} and the stream {} no longer holds its beginning (its first message is {first}): the edge cannot start",
                self.cfg.snapshot_bucket, self.cfg.stream
            ));
        };
        if self.send(Item::Started(Ok(started))).await.is_err() {
            return Ok(None);
        }
        self.reported_start = true;
        self.applied = Some(seq);
        Ok(Some(start))
    }

    /// Downloads and verifies the snapshot, and finds where the stream continues it; the
    /// snapshot is refused (logged, counted) when it is missing, damaged, older than change
    /// `need`, or older than what the stream still holds.
    async fn bootstrap(
        &mut self,
        js: &Context,
        stream: &Stream,
        first: u64,
        last: u64,
        need: u64,
    ) -> Result<(Table, u64, (u64, bool)), String> {
        let store: ObjectStore = client::snapshot_store(js, &self.cfg, false).await?;
        let nuid = store
            .info(snapshot::OBJECT)
            .await
            .ok()
            .filter(|o| !o.deleted)
            .map(|o| o.nuid);
        if let (Some(n), Some((r, at))) = (&nuid, &self.refused) {
            if n == r && at.elapsed() < REFUSED_AGAIN {
                return Err(format!(
                    "nats: the snapshot in {} is the one refused; waiting for another",
                    self.cfg.snapshot_bucket
                ));
            }
        }
        match self.load(&store, stream, first, last, need).await {
            Ok(loaded) => {
                self.refused = None;
                Ok(loaded)
            }
            Err(Refusal::Refused(why)) => {
                self.stats.snapshots_refused.fetch_add(1, Relaxed);
                tracing::error!("nats: snapshot refused: {why}; the served table stays");
                self.refused = nuid.map(|n| (n, Instant::now()));
                Err(why)
            }
            Err(Refusal::Failed(e)) => Err(e),
        }
    }

    /// [`Self::bootstrap`]'s download, checks and search.
    async fn load(
        &self,
        store: &ObjectStore,
        stream: &Stream,
        first: u64,
        last: u64,
        need: u64,
    ) -> Result<(Table, u64, (u64, bool)), Refusal> {
        let (loaded, info) = match snapshot::get(store).await {
            Ok(Some(got)) => got,
            Ok(None) => {
                return Err(Refusal::Refused(format!(
                    "there is none in {}",
                    self.cfg.snapshot_bucket
                )))
            }
            Err(e) => return Err(Refusal::Refused(e)),
        };
        if info.seq < need {
            return Err(Refusal::Refused(format!(
                "it is at change {}, before change {need}",
                info.seq
            )));
        }
        let start = match self
            .find(stream, info.seq, first, last)
            .await
            .map_err(Refusal::Failed)?
        {
            Start::From(s) => (s, s > last),
            Start::Nothing { next } => (next, true),
            Start::Bootstrap { why, .. } => {
                return Err(Refusal::Refused(format!(
                    "the stream does not continue it (at change {}): {why}",
                    info.seq
                )))
            }
        };
        let (table, _) = loaded.into_table().map_err(Refusal::Refused)?;
        tracing::warn!(
            apps = table.len(),
            seq = info.seq,
            bytes = info.bytes,
            "nats: snapshot loaded from {}",
            self.cfg.snapshot_bucket
        );
        Ok((table, info.seq, start))
    }

    /// [`find_start`] over the stream.
    async fn find(
        &self,
        stream: &Stream,
        applied: u64,
        first: u64,
        last: u64,
    ) -> Result<Start, String> {
        find_start(applied, first, last, |s| probe_at(stream, s)).await
    }
}

/// Why a bootstrap did not happen.
enum Refusal {
    /// The snapshot is not usable (logged and counted as refused).
    Refused(String),
    /// The stream could not be read.
    Failed(String),
}

/// What a decoded message says about its place in the change sequence.
fn probe_of(m: &Message) -> Probe {
    match m {
        Message::Changes { first, last, .. } => Probe::Changes {
            first: *first,
            last: *last,
        },
        Message::Reset { seq } => Probe::Reset { seq: *seq },
    }
}

/// The message at stream sequence `s`, as a probe (missing or undecodable: says nothing).
async fn probe_at(stream: &Stream, s: u64) -> Result<Probe, String> {
    use async_nats::jetstream::stream::RawMessageErrorKind as Kind;
    match stream.get_raw_message(s).await {
        Ok(m) => Ok(client::decode_headers(Some(&m.headers), &m.payload)
            .map_or(Probe::Missing, |m| probe_of(&m))),
        Err(e) if matches!(e.kind(), Kind::NoMessageFound) => Ok(Probe::Missing),
        Err(e)
            if matches!(e.kind(), Kind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND) =>
        {
            Ok(Probe::Missing)
        }
        Err(e) => Err(format!("nats: reading stream message {s}: {e}")),
    }
}
