//! The builder on its own thread: reads, applies and maintains until stopped, takes new
//! configurations, and writes a last checkpoint when stopped.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{slow_work, Builder};
use crate::config::Config;

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

impl Builder {
    /// Runs the builder on its own thread until stopped; a last checkpoint is written then.
    pub fn spawn(mut self) -> io::Result<BuilderHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (reload_tx, reload_rx) = crossbeam_channel::unbounded::<ReloadRequest>();
        let interval = Duration::from_millis(self.config.feed.poll_interval_ms);
        let thread = std::thread::Builder::new()
            .name("builder".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    while let Ok((config, reply)) = reload_rx.try_recv() {
                        let _ = reply.send(self.reload(config));
                    }
                    let started = Instant::now();
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
            reload: reload_tx,
        })
    }
}
