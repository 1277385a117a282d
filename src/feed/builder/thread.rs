//! The builder on its own thread: reads, applies and maintains until stopped, takes new
//! configurations and requests for a checkpoint now, and writes a last checkpoint when
//! stopped.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{slow_work, Builder};
use crate::config::Config;
use crate::feed::checkpoint;
use crate::feed::status::now_ms;

/// What the builder thread is asked between two reads, with where to answer.
enum Request {
    /// A configuration to switch to.
    Reload(Arc<Config>, Sender<Result<(), String>>),
    /// Write a checkpoint now.
    Checkpoint(Sender<Result<CheckpointWritten, String>>),
}

/// A checkpoint written on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointWritten {
    pub path: PathBuf,
    /// The sequence number it is at.
    pub last_seq: u64,
    pub apps: usize,
    /// How long writing it took.
    pub ms: u64,
}

/// How long a caller waits for the builder thread to answer (a checkpoint of a large table
/// takes a while).
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// Stops the builder thread when dropped or asked; passes it new configurations and
/// checkpoint requests.
pub struct BuilderHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    requests: Sender<Request>,
}

impl BuilderHandle {
    /// Switches to `config` (zones, clusters, TTLs) in the next snapshot, or says why not
    /// (the current configuration then stays).
    pub fn reload(&self, config: Arc<Config>) -> Result<(), String> {
        self.ask(|tx| Request::Reload(config, tx))
    }

    /// Writes a checkpoint of the table as it is now (in the background: changes keep being
    /// applied meanwhile) and says where and at which sequence, or why not (none configured,
    /// the write failed, or the feed is in a state a restart could not resume from).
    pub fn checkpoint(&self) -> Result<CheckpointWritten, String> {
        self.ask(Request::Checkpoint)
    }

    fn ask<T>(
        &self,
        request: impl FnOnce(Sender<Result<T, String>>) -> Request,
    ) -> Result<T, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.requests
            .send(request(tx))
            .map_err(|_| "the builder thread is gone".to_string())?;
        rx.recv_timeout(ANSWER_WITHIN)
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

impl Builder {
    /// Runs the builder on its own thread until stopped; a last checkpoint is written then.
    pub fn spawn(mut self) -> io::Result<BuilderHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (requests_tx, requests_rx) = crossbeam_channel::unbounded::<Request>();
        let interval = Duration::from_millis(self.config.feed.poll_interval_ms);
        let thread = std::thread::Builder::new()
            .name("builder".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    while let Ok(request) = requests_rx.try_recv() {
                        match request {
                            Request::Reload(config, reply) => {
                                let _ = reply.send(self.reload(config));
                            }
                            Request::Checkpoint(reply) => self.checkpoint_requested(reply),
                        }
                    }
                    let started = Instant::now();
                    // While a lease is to end, the thread looks at least once a second.
                    let interval = self.feed_wait(interval);
                    let polled = self.poll_once(interval);
                    // Only the work: a source that waits for changes inside its read (PostgreSQL
                    // waits for NOTIFY) would otherwise look slow whenever it is idle.
                    slow_work(
                        "reading and applying changes",
                        started.elapsed().saturating_sub(self.last_wait),
                    );
                    match polled {
                        // Busy: the next batch gathers; idle: the source waits to grow.
                        Ok(n) => self.source.pause(n, interval),
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
            requests: requests_tx,
        })
    }

    /// Starts writing a checkpoint of the table as it is now; the writer answers `reply`.
    fn checkpoint_requested(&mut self, reply: Sender<Result<CheckpointWritten, String>>) {
        let Some(path) = self.config.feed.checkpoint.clone() else {
            let _ = reply.send(Err(
                "no checkpoint is configured (set `checkpoint` in [feed])".into(),
            ));
            return;
        };
        // Never at a position a restart could not resume from (as for the timed ones).
        if self.pending.is_some() {
            let _ = reply.send(Err(
                "the table is being rebuilt from the feed; try again once it is served".into(),
            ));
            return;
        }
        if self.source.mid_block() {
            let _ = reply.send(Err(
                "the feed is inside a journal snapshot block; try again in a moment".into(),
            ));
            return;
        }
        // One writer at a time: the timed one first.
        self.wait_checkpoint();
        let table = self.table.clone();
        let position = self.source.position(self.last_seq);
        let clusters: Vec<String> = table
            .clusters()
            .names()
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        self.dirty = false;
        self.checkpoint_soon = false;
        self.last_checkpoint = Instant::now();
        let status = self.status.clone();
        let write = move || {
            let started = Instant::now();
            let result = match checkpoint::write(&path, &table, position, &clusters) {
                Ok(()) => {
                    status.checkpoint_at_ms.store(now_ms(), Ordering::Relaxed);
                    let written = CheckpointWritten {
                        path: path.clone(),
                        last_seq: position.last_seq,
                        apps: table.len(),
                        ms: started.elapsed().as_millis() as u64,
                    };
                    tracing::info!(
                        apps = written.apps,
                        last_seq = written.last_seq,
                        ms = written.ms,
                        "checkpoint {} written on request",
                        path.display()
                    );
                    Ok(written)
                }
                Err(e) => {
                    tracing::error!("checkpoint {}: {e}", path.display());
                    Err(format!("checkpoint {}: {e}", path.display()))
                }
            };
            let _ = reply.send(result);
        };
        match std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(write)
        {
            Ok(h) => self.checkpointer = Some(h),
            Err(e) => {
                // The reply went with the closure: the caller sees "did not answer".
                tracing::error!("cannot start a checkpoint: {e}");
            }
        }
    }
}
