//! `clusterns relay`: connects to JetStream, waits to become leader (the [`lease`]), then
//! publishes the source of truth's change stream (a `term` of leadership), and goes back to
//! standby when leadership is lost. Everything runs on one current-thread runtime; the
//! source's blocking reads and the snapshots' checkpoint writing run on its blocking pool.
//!
//! [`lease`]: super::lease

mod term;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;

use super::client;
use super::lease::{self, Lease};
use crate::config::{Config, NatsConfig, SourceConfig};
use crate::metrics::relay::RelayMetrics;

/// How often a standby tries to take the lease.
const STANDBY_RETRY: Duration = Duration::from_secs(1);
/// How long a relay waits before trying again after a failed term or connection.
const RETRY: Duration = Duration::from_secs(1);

/// What a relay needs, shared by its terms.
pub(crate) struct Ctx {
    pub config: Arc<Config>,
    pub nats: NatsConfig,
    pub js: jetstream::Context,
    pub stream: jetstream::stream::Stream,
    pub store: jetstream::object_store::ObjectStore,
    pub metrics: Arc<RelayMetrics>,
    pub stop: Arc<AtomicBool>,
    /// `--once`: publish what the source holds, put a snapshot, end.
    pub once: bool,
}

/// Leadership as the renewal task sees it, for the term to check before each publish.
#[derive(Default)]
pub(crate) struct Leadership {
    /// Set when a renewal failed.
    pub lost: AtomicBool,
    /// Until when the lease is ours (milliseconds after `epoch`).
    pub until_ms: AtomicU64,
    pub epoch: Option<Instant>,
}

impl Leadership {
    /// Whether this relay may publish now.
    pub fn held(&self) -> bool {
        let Some(epoch) = self.epoch else {
            return false;
        };
        !self.lost.load(Ordering::Relaxed)
            && (epoch.elapsed().as_millis() as u64) < self.until_ms.load(Ordering::Relaxed)
    }
}

/// How a term ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TermEnd {
    /// Asked to stop (a signal; `--once` done).
    Stopped,
    /// Leadership lost.
    Lost,
}

/// This relay's name in the lease: `[relay] name`, else the host name and process id.
pub fn relay_name(config: &Config) -> String {
    if let Some(n) = &config.relay.name {
        return n.as_str().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "relay".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Runs the relay until `stop` is set (or, `once`, until what the source holds now is
/// published and a snapshot put). Errors: a configuration a relay cannot run with, and (in
/// `once` mode) any failure.
pub fn run(
    config: Arc<Config>,
    once: bool,
    stop: Arc<AtomicBool>,
    metrics: Arc<RelayMetrics>,
) -> Result<(), String> {
    let nats = config
        .nats
        .clone()
        .ok_or("relay: the configuration has no [nats] section")?;
    if matches!(config.feed.source, SourceConfig::Nats) {
        return Err("relay: [feed] source = \"nats\": a relay reads the source of truth (a journal or postgres) and publishes it to NATS; it cannot read NATS itself".into());
    }
    let rt = client::runtime().map_err(|e| format!("relay: starting the runtime: {e}"))?;
    rt.block_on(run_async(config, nats, once, stop, metrics))
}

async fn run_async(
    config: Arc<Config>,
    nats: NatsConfig,
    once: bool,
    stop: Arc<AtomicBool>,
    metrics: Arc<RelayMetrics>,
) -> Result<(), String> {
    let name = relay_name(&config);
    let lease_len = Duration::from_secs(config.relay.lease_secs);
    // Connected, with the stream, the snapshot store and the lease bucket.
    let (ctx, kv) = loop {
        match setup(&nats, &name, lease_len).await {
            Ok((js, stream, store, kv)) => {
                break (
                    Ctx {
                        config: config.clone(),
                        nats: nats.clone(),
                        js,
                        stream,
                        store,
                        metrics: metrics.clone(),
                        stop: stop.clone(),
                        once,
                    },
                    kv,
                )
            }
            Err(e) if once => return Err(e),
            Err(e) => {
                tracing::warn!("relay {name}: {e}; retrying");
                if sleep_unless_stopped(&stop, RETRY * 2).await {
                    return Ok(());
                }
            }
        }
    };
    tracing::info!(
        relay = name,
        stream = nats.stream,
        servers = nats.servers.join(","),
        "relay connected; standing by for the lease"
    );
    loop {
        let Some(held) = standby(&ctx, &kv, &name, lease_len).await? else {
            return Ok(());
        };
        RelayMetrics::set(&metrics.leader, 1);
        RelayMetrics::add(&metrics.leadership_changes, 1);
        tracing::warn!(relay = name, "relay: leader now, publishing");
        let leadership = Arc::new(Leadership {
            epoch: Some(Instant::now()),
            ..Leadership::default()
        });
        leadership
            .until_ms
            .store(held.remaining().as_millis() as u64, Ordering::Relaxed);
        let (give_back, back) = tokio::sync::oneshot::channel();
        let renewer = tokio::spawn(renew(kv.clone(), held, leadership.clone(), back));
        let end = term::run(&ctx, &leadership).await;
        let _ = give_back.send(());
        let held = renewer.await.ok().flatten();
        RelayMetrics::set(&metrics.leader, 0);
        RelayMetrics::add(&metrics.leadership_changes, 1);
        let release = |held: Option<Lease>| async {
            if let Some(l) = held {
                match l.release(&kv).await {
                    Ok(()) => tracing::info!(relay = name, "relay: lease released"),
                    Err(e) => tracing::warn!(relay = name, "relay: {e}"),
                }
            }
        };
        match end {
            Ok(TermEnd::Stopped) => {
                release(held).await;
                return Ok(());
            }
            Ok(TermEnd::Lost) => {
                tracing::error!(
                    relay = name,
                    "relay: leadership lost; publishing stopped, standing by"
                );
                release(held).await;
            }
            Err(e) => {
                tracing::error!(
                    relay = name,
                    "relay: {e}; giving up leadership and starting over"
                );
                release(held).await;
                if once {
                    return Err(e);
                }
                if sleep_unless_stopped(&stop, RETRY).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Connects and gets (or creates) the stream, the snapshot store and the lease bucket.
async fn setup(
    nats: &NatsConfig,
    name: &str,
    lease_len: Duration,
) -> Result<
    (
        jetstream::Context,
        jetstream::stream::Stream,
        jetstream::object_store::ObjectStore,
        jetstream::kv::Store,
    ),
    String,
> {
    let client = client::connect(nats, &format!("clusterns-relay {name}")).await?;
    let js = jetstream::new(client);
    let stream = client::ensure_stream(&js, nats).await?;
    let store = client::snapshot_store(&js, nats, true).await?;
    let kv = lease::bucket(&js, nats, lease_len).await?;
    Ok((js, stream, store, kv))
}

/// Waits to become leader; `None`: asked to stop first.
async fn standby(
    ctx: &Ctx,
    kv: &jetstream::kv::Store,
    name: &str,
    lease_len: Duration,
) -> Result<Option<Lease>, String> {
    let mut said = None;
    loop {
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match Lease::acquire(kv, name, lease_len).await {
            Ok(Some(l)) => return Ok(Some(l)),
            Ok(None) => {
                let holder = Lease::holder(kv).await;
                if holder != said {
                    tracing::info!(
                        relay = name,
                        leader = holder.as_deref().unwrap_or("?"),
                        "relay: standing by (another relay holds the lease)"
                    );
                    said = holder;
                }
            }
            Err(e) => {
                tracing::warn!(relay = name, "relay: {e}");
                if ctx.once {
                    return Err(e);
                }
            }
        }
        if sleep_unless_stopped(&ctx.stop, STANDBY_RETRY).await {
            return Ok(None);
        }
    }
}

/// Renews the lease every third of it until told to give it back (then hands it back) or a
/// renewal fails (then marks leadership lost and returns nothing).
async fn renew(
    kv: jetstream::kv::Store,
    mut held: Lease,
    leadership: Arc<Leadership>,
    mut give_back: tokio::sync::oneshot::Receiver<()>,
) -> Option<Lease> {
    let every = held.lease_len() / 3;
    let epoch = leadership.epoch?;
    loop {
        tokio::select! {
            _ = &mut give_back => return Some(held),
            () = tokio::time::sleep(every) => {}
        }
        match held.renew(&kv).await {
            Ok(()) => {
                let until = epoch.elapsed() + held.remaining();
                leadership
                    .until_ms
                    .store(until.as_millis() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                leadership.lost.store(true, Ordering::Relaxed);
                tracing::error!("relay: {e}; leadership lost");
                return None;
            }
        }
    }
}

/// Sleeps for `d` in short steps; returns whether `stop` was set meanwhile.
pub(crate) async fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}
