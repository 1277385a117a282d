//! The builder thread: owns the master table, applies changes from the feed in batches and
//! publishes each batch as one new snapshot (never half a batch).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, FeedConfig};
use crate::feed::journal::{JournalReader, LineError};
use crate::feed::master::Master;
use crate::snapshot::{self, Served, SharedSnapshot, Snapshot};

/// Owns the master table and the feed reader.
pub struct Builder {
    config: Arc<Config>,
    served: Arc<Served>,
    master: Master,
    reader: JournalReader,
    shared: SharedSnapshot,
    generation: u64,
    rejected: u64,
}

/// Stops the builder thread when dropped or asked.
pub struct BuilderHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BuilderHandle {
    /// Stops the thread and waits for it.
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
    /// Loads the whole feed and publishes the first snapshot.
    pub fn load(config: Arc<Config>) -> io::Result<Builder> {
        let FeedConfig::Journal { path } = &config.feed;
        let served = Arc::new(Served::from_config(&config));
        let reader = JournalReader::new(path, 0);
        let table = Arc::new(crate::table::Table::default());
        let shared = snapshot::shared(Snapshot::new(served.clone(), table, 0));
        let mut b = Builder {
            config,
            served,
            master: Master::new(),
            reader,
            shared,
            generation: 1,
            rejected: 0,
        };
        b.poll()?;
        tracing::info!(
            apps = b.master.len(),
            last_seq = b.master.last_seq(),
            rejected = b.rejected,
            journal = %b.reader.path().display(),
            "table loaded"
        );
        Ok(b)
    }

    /// The published snapshot.
    pub fn shared(&self) -> SharedSnapshot {
        self.shared.clone()
    }

    /// Changes rejected so far (bad lines and changes that could not be applied).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Reads what the feed has added, applies it and publishes a snapshot if anything changed.
    /// Returns the number of changes applied.
    pub fn poll(&mut self) -> io::Result<usize> {
        let batch = self.reader.read_new()?;
        for e in &batch.errors {
            self.reject(e);
        }
        let mut applied = 0;
        for change in &batch.changes {
            let config = &self.config;
            match self
                .master
                .apply(change, |c| config.cluster_index(c).is_some())
            {
                Ok(()) => applied += 1,
                Err(message) => self.reject(&LineError {
                    file: self.reader.path().to_path_buf(),
                    line: 0,
                    message: format!("change {change}: {message}; skipped"),
                }),
            }
        }
        if applied > 0 || self.generation == 1 {
            self.publish();
        }
        Ok(applied)
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
        let config = &self.config;
        let table = match self.master.table(|c| config.cluster_index(c)) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(
                    "cannot build the table ({e}); still answering from generation {}",
                    self.generation
                );
                return;
            }
        };
        self.generation += 1;
        let snap = Snapshot {
            generation: self.generation,
            last_seq: self.master.last_seq(),
            served: self.served.clone(),
            table: Arc::new(table),
        };
        self.shared.store(Arc::new(snap));
    }

    /// Runs the builder on its own thread, polling the feed every `interval`.
    pub fn spawn(mut self, interval: Duration) -> io::Result<BuilderHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("builder".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if let Err(e) = self.poll() {
                        tracing::error!("feed {}: {e}", self.reader.path().display());
                    }
                    std::thread::sleep(interval);
                }
            })?;
        Ok(BuilderHandle {
            stop,
            thread: Some(thread),
        })
    }
}
