//! The control interface (`clusterns ctl`, like `knotc` or `nsd-control`): a Unix socket the
//! server answers on its own thread, never on the query path. `protocol`: the request and
//! reply format (pure); `commands`: what each request does and prints; `server`: the socket
//! and its thread; `client`: the `clusterns ctl` side.
//!
//! [`Live`] is what the server and the control thread share about the running configuration:
//! the configuration in force and the last reload's outcome, whoever asked for it (SIGHUP or
//! `ctl reload`).

pub mod client;
pub mod commands;
pub mod protocol;
pub mod server;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::{Config, SourceConfig};

pub use commands::Context;
pub use server::ControlServer;

/// How long the server waits for a request, and the client for each read of the reply.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the last reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRecord {
    pub at: SystemTime,
    /// Who asked: `SIGHUP` or `control socket`.
    pub via: &'static str,
    /// `Err`: why the configuration was rejected (the running one stayed).
    pub result: Result<(), String>,
}

/// A checkpoint written on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointDone {
    pub path: PathBuf,
    pub last_seq: u64,
    pub apps: usize,
    pub ms: u64,
}

/// The running configuration and the last reload, shared by the signal loop and the control
/// thread.
pub struct Live {
    config: ArcSwap<Config>,
    last_reload: Mutex<Option<ReloadRecord>>,
    /// Held for the length of a reload: one at a time, whoever asks.
    reloading: Mutex<()>,
}

impl Live {
    pub fn new(config: Arc<Config>) -> Live {
        Live {
            config: ArcSwap::new(config),
            last_reload: Mutex::new(None),
            reloading: Mutex::new(()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Makes `config` the one in force (after the builder took it).
    pub fn set_config(&self, config: Arc<Config>) {
        self.config.store(config);
    }

    /// The last reload, if there was one.
    pub fn last_reload(&self) -> Option<ReloadRecord> {
        lock(&self.last_reload).clone()
    }

    /// Records a reload's outcome.
    pub fn record_reload(&self, via: &'static str, result: &Result<(), String>) {
        *lock(&self.last_reload) = Some(ReloadRecord {
            at: SystemTime::now(),
            via,
            result: result.clone(),
        });
    }

    /// Serialises reloads: held while one runs.
    pub fn reload_guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.reloading)
    }
}

/// Locks `m`, taking the value of a lock whose holder panicked (these hold plain values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The feed's source in words, with any password left out.
pub fn feed_text(config: &Config) -> String {
    match &config.feed.source {
        SourceConfig::Journal { path } => format!("journal {}", path.display()),
        SourceConfig::Postgres { conninfo } => {
            format!("postgres {}", crate::config::redact_conninfo(conninfo))
        }
        SourceConfig::Nats => match &config.nats {
            Some(n) => format!("nats {} stream {}", n.servers.join(","), n.stream),
            None => "nats".into(),
        },
    }
}
