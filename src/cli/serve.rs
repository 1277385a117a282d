//! Running the server: `serve` (start-up, signals, systemd notifications, stop) and the
//! reload that SIGHUP and `ctl reload` share.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use clusterns::config::Config;
use clusterns::control::{CheckpointDone, Context, ControlServer, Live};
use clusterns::feed::Builder;
use clusterns::metrics::{MetricsServer, Sources};
use clusterns::server::Server;

use crate::cli::args::*;

/// Keeps glibc's threshold for serving large allocations with fresh pages at 256 KiB. glibc
/// raises it as large blocks are freed (a journal replay frees many), and then serves the
/// table's big zeroed arrays from recycled heap it must clear: every page resident at once,
/// where fresh pages are only resident once used (measured after loading 1M apps from a
/// journal: VmRSS 88 MiB without this, 72 MiB with it).
pub(crate) fn fixed_mmap_threshold() {
    clusterns::os::set_mmap_threshold(256 * 1024);
}

pub(crate) fn serve(
    path: PathBuf,
    listen: Vec<std::net::SocketAddr>,
    threads: Option<usize>,
) -> Result<(), String> {
    fixed_mmap_threshold();
    let mut config = Config::load(&path).map_err(|e| e.to_string())?;
    if !listen.is_empty() {
        config.server.listen = listen;
    }
    if let Some(t) = threads {
        config.server.threads = t;
    }
    let config = Arc::new(config);
    let started = Instant::now();
    tracing::info!(
        version = LONG_VERSION,
        config = %path.display(),
        feed = %clusterns::control::feed_text(&config),
        "clusterns starting"
    );
    // SIGHUP must not kill the server while it loads (`systemctl reload` right after a
    // restart): it waits in `signals` and becomes a reload once the feed runs. SIGTERM and
    // SIGINT keep their default action until the load is done, so a long load can be stopped.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    // The control socket before the load: a second server on it stops here, not after loading
    // the table; requests meanwhile are told the server is loading.
    let control_ctx = Arc::new(OnceLock::new());
    let control = match &config.control {
        Some(c) => {
            let owner = match &config.server.user {
                // SAFETY: geteuid only reads the process's id.
                Some(user) if unsafe { libc::geteuid() } == 0 => Some(
                    clusterns::privs::lookup(user)
                        .map_err(|e| format!("switching to user {user}: {e}"))?,
                ),
                _ => None,
            };
            let handle = ControlServer::bind(&c.socket, owner)?
                .start(control_ctx.clone())
                .map_err(|e| format!("starting the control thread: {e}"))?;
            tracing::info!(socket = %c.socket.display(), "control socket");
            Some(handle)
        }
        None => None,
    };
    let builder = Builder::load(config.clone()).map_err(|e| format!("loading the feed: {e}"))?;
    let shared = builder.shared();
    let feed_status = builder.status();
    // The configuration in force: reloads replace it; the control socket and the update
    // service read it.
    let live = Arc::new(Live::new(config.clone()));
    // UPDATE (opcode 5) goes to the update thread where the config takes updates.
    let (updates, update_counters) = if config.update.enabled {
        let writer = clusterns::feed::writer::open(&config)
            .map_err(|e| format!("updates: opening the writer of the feed source: {e}"))?;
        let service =
            clusterns::update::service::UpdateService::new(live.clone(), shared.clone(), writer)?;
        let counters = service.counters();
        (
            Some(Box::new(service) as Box<dyn clusterns::server::UpdateHandler>),
            Some(counters),
        )
    } else {
        (None, None)
    };
    let server = Server::start_with_updates(&config.server, shared.clone(), updates)
        .map_err(|e| e.to_string())?;
    let metrics = match config.metrics {
        Some(addr) => Some(
            MetricsServer::start(
                addr,
                Sources {
                    workers: server.stats().to_vec(),
                    shared: shared.clone(),
                    feed: feed_status.clone(),
                    updates: server.update_stats().cloned().zip(update_counters).map(
                        |(server, service)| clusterns::metrics::UpdateSources { server, service },
                    ),
                },
            )
            .map_err(|e| format!("metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    if let Some(user) = &config.server.user {
        clusterns::privs::drop_to(user).map_err(|e| format!("switching to user {user}: {e}"))?;
        tracing::info!(user, "dropped privileges");
    }
    // Handlers before "listening": a SIGHUP sent as soon as the server says it answers must
    // reload it, not kill it (the default action).
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signals
            .add_signal(sig)
            .map_err(|e| format!("installing signal handlers: {e}"))?;
    }
    let feed = Arc::new(builder.spawn().map_err(|e| e.to_string())?);
    if control.is_some() {
        let (reload_feed, checkpoint_feed) = (feed.clone(), feed.clone());
        let (reload_live, reload_path, running) = (live.clone(), path.clone(), config.clone());
        let ctx = Context {
            version: LONG_VERSION,
            live: live.clone(),
            shared: shared.clone(),
            feed: feed_status,
            workers: server.stats().to_vec(),
            started,
            reload: Box::new(move || {
                reload(
                    &reload_path,
                    &running,
                    &reload_feed,
                    &reload_live,
                    "control socket",
                )
            }),
            checkpoint: Box::new(move || {
                checkpoint_feed.checkpoint().map(|w| CheckpointDone {
                    path: w.path,
                    last_seq: w.last_seq,
                    apps: w.apps,
                    ms: w.ms,
                })
            }),
        };
        if control_ctx.set(ctx).is_err() {
            tracing::error!("control: the context was set twice");
        }
    }
    for addr in server.local_addrs() {
        tracing::info!(%addr, zones = config.zones.len(), apps = shared.load().table.len(), "answering over udp and tcp");
        say(format_args!("clusterns: listening on {addr}"));
    }
    if let Some(m) = &metrics {
        tracing::info!(addr = %m.addr(), "metrics endpoint");
        say(format_args!("clusterns: metrics on {}", m.addr()));
    }
    // Type=notify: ready once the table is loaded and every socket answers.
    let snap = shared.load();
    let status = format!(
        "answering: {} apps, sequence {}",
        snap.table.len(),
        snap.last_seq
    );
    drop(snap);
    // Signals that came while loading (one of each at most: they coalesce), taken once.
    let early: Vec<i32> = signals.pending().collect();
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    if early.contains(&signal_hook::consts::SIGHUP) {
        tracing::info!("SIGHUP came while loading: reloading now");
    }
    for sig in early.into_iter().chain(signals.forever()) {
        if sig == signal_hook::consts::SIGHUP {
            let _ = reload(&path, &config, &feed, &live, "SIGHUP");
            continue;
        }
        tracing::info!(signal = sig, "stopping");
        notify(&[sd_notify::NotifyState::Stopping]);
        break;
    }
    // Stop accepting and finish in-flight TCP answers, then checkpoint. The control thread
    // first: it holds the feed's handle (for reloads and checkpoints).
    if let Some(c) = control {
        c.stop();
    }
    drop(control_ctx);
    server.stop();
    match Arc::try_unwrap(feed) {
        Ok(feed) => feed.stop(),
        // Dropping the last handle stops the feed as well.
        Err(_) => tracing::warn!("the feed is still referenced; it stops when released"),
    }
    if let Some(m) = metrics {
        m.stop();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the configuration file at `path`, as SIGHUP and `ctl reload` ask (`via` says
/// which), telling systemd (RELOADING, then READY): the listeners and threads stay those of
/// `running`; zones, clusters and TTLs switch in the next snapshot. On error the running
/// configuration stays, and the error says why (file and line).
pub(crate) fn reload(
    path: &Path,
    running: &Config,
    feed: &clusterns::feed::BuilderHandle,
    live: &Live,
    via: &'static str,
) -> Result<(), String> {
    let _one_at_a_time = live.reload_guard();
    let mut reloading = vec![sd_notify::NotifyState::Reloading];
    reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
    notify(&reloading);
    let result = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|mut new| {
            new.server.listen = running.server.listen.clone();
            new.server.threads = running.server.threads;
            if new.control != running.control {
                tracing::warn!("{via}: the control socket changes at the next restart");
            }
            if new.update.enabled && !running.update.enabled {
                tracing::warn!("{via}: updates are taken from the next restart on");
            }
            // A key file that does not load rejects the reload (the running keys stay).
            if new.update.enabled {
                new.update.load().map_err(|e| e.to_string())?;
            }
            let new = Arc::new(new);
            feed.reload(new.clone())?;
            live.set_config(new);
            Ok(())
        });
    match &result {
        Ok(()) => tracing::info!("{via}: configuration {} reloaded", path.display()),
        Err(e) => tracing::error!("{via}: keeping the running configuration: {e}"),
    }
    live.record_reload(via, &result);
    notify(&[sd_notify::NotifyState::Ready]);
    result
}

/// Prints a line of `serve`'s start-up report on stdout. Whoever started the server may
/// have stopped reading (a closed pipe): that must not stop the server, so errors are dropped.
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Tells systemd (`$NOTIFY_SOCKET`, Type=notify) about the service's state; nothing without
/// it. A failure is logged, never fatal.
pub(crate) fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!("sd_notify: {e}");
    }
}
