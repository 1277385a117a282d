//! The `clusterns` command: serve, check a config, and change the journal by hand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use clusterns::config::{Config, SourceConfig};
use clusterns::control::protocol::Request;
use clusterns::control::{CheckpointDone, Context, ControlServer, Live};
use clusterns::feed::journal::append;
use clusterns::feed::{Builder, Change};
use clusterns::metrics::{MetricsServer, Sources};
use clusterns::name::Label;
use clusterns::server::Server;

/// `--version`: the crate version, the git revision and the optional features built in.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("CLUSTERNS_GIT_REVISION"),
    "; features: ",
    env!("CLUSTERNS_BUILD_FEATURES"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "clusterns",
    version = LONG_VERSION,
    about = "Cluster-aware authoritative DNS responder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where every command finds the configuration unless told: `--config`, else
/// `$CLUSTERNS_CONFIG`, else this.
const DEFAULT_CONFIG: &str = "/etc/clusterns/clusterns.toml";

#[derive(Subcommand)]
enum Command {
    /// Answer queries for the configured zones.
    Serve {
        /// The configuration file.
        #[arg(long, short, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Listen on this address instead of the config's (repeatable).
        #[arg(long)]
        listen: Vec<std::net::SocketAddr>,
        /// UDP worker threads (0: one per core), instead of the config's.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a configuration file and print what it would serve.
    CheckConfig {
        /// The configuration file.
        #[arg(long = "config", short, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The configuration file, given without --config (as earlier versions took it).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Answer one question offline from the configured feed (checkpoint, journal or
    /// database), as the server would, and print the response.
    Lookup {
        /// The configuration file.
        #[arg(long, short, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The name to ask for.
        name: String,
        /// The query type (A, AAAA, TXT, ...; default A).
        #[arg(default_value = "A")]
        qtype: String,
    },
    /// Maintain the journal.
    Journal {
        /// The configuration file (for the journal and checkpoint paths).
        #[arg(long, short, global = true, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Write the manual pages (one per command) into a folder, for packaging.
    Manpages {
        /// The folder (created if missing).
        dir: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Ask the running server (over its control socket, `[control] socket`): status, counters,
    /// reload, checkpoint, apps.
    Ctl {
        /// The configuration file (for the control socket's path).
        #[arg(long, short, global = true, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The control socket, instead of the configuration's.
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Seconds to wait for the server (to connect, and for each part of the reply).
        #[arg(long, global = true, default_value_t = 60)]
        timeout: u64,
        #[command(subcommand)]
        action: CtlAction,
    },
    /// List, add and remove ACME DNS-01 challenge TXT records (written to the feed's source:
    /// the journal or PostgreSQL), and expire the old ones.
    Acme {
        /// The configuration file (for the feed, the zones and the `[acme]` limits).
        #[arg(long, short, global = true, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(subcommand)]
        action: AcmeAction,
    },
    /// Change the journal: create, move, rename or delete an app.
    Repl {
        /// The configuration file (for the journal path and the cluster names).
        #[arg(long, short, global = true, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(subcommand)]
        action: Box<ReplAction>,
    },
}

#[derive(Subcommand)]
enum JournalAction {
    /// Rewrite the journal as one snapshot of the table at its last sequence number
    /// (atomically, under the writers' lock; a running server follows without a reload).
    /// With the journal missing, it is written from the checkpoint.
    Compact {
        /// Keep the old journal under this name (a hard link, in the same file system).
        #[arg(long)]
        keep_old: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CtlAction {
    /// Version, configuration, feed position and lag, snapshot, apps, last reload, uptime.
    Status,
    /// The query counters since start.
    Stats,
    /// Reload the configuration file as SIGHUP does; fails (exit 1) with the reason when the
    /// new configuration is rejected (the running one stays).
    Reload,
    /// Write a checkpoint now; prints its path and sequence number.
    Checkpoint,
    /// One app from the live table, by repl id or `slug.user` name (a user name lists the
    /// user's apps): its cluster and the addresses it is answered with.
    App {
        /// A repl id, a `slug.user` name or a user.
        name: String,
    },
    /// A user's apps (`<id> <user> <slug> <cluster>`, one a line).
    Apps {
        #[arg(long)]
        user: String,
    },
    /// Every app of the live table as journal lines (`<n> set <id> <user> <slug> <cluster>`).
    Dump,
}

#[derive(Subcommand)]
enum AcmeAction {
    /// Every challenge record: name, value (quoted as dig prints TXT), expiry (unix seconds)
    /// and seconds left.
    List,
    /// Add a value to the TXT records of `_acme-challenge.<owner>` (the name must be one a
    /// zone in `acme = "txt"` mode answers; limits as the server checks them).
    Add {
        /// The full name, `_acme-challenge.<owner>`.
        name: String,
        /// The value (one TXT string, at most `[acme] max_value_len` bytes).
        value: String,
        /// Seconds until the janitor deletes it (default `[acme] expire_secs`).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Remove one value, or every value of the name.
    Remove {
        /// The full name, `_acme-challenge.<owner>`.
        name: String,
        /// The value to remove (none: all of them).
        value: Option<String>,
    },
    /// Run the janitor once: delete (through the source) every value whose expiry has passed.
    Expire,
}

#[derive(Subcommand)]
enum ReplAction {
    /// Create or replace an app (a new user or slug renames it).
    Set {
        id: Label,
        user: Label,
        slug: Label,
        cluster: Label,
    },
    /// Move an existing app to another cluster.
    Move { id: Label, cluster: Label },
    /// Remove an app.
    Delete { id: Label },
}

fn main() -> ExitCode {
    clusterns::logs::init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // The other commands print and end: a reader that goes away ends them quietly.
        clusterns::os::default_sigpipe();
    }
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            threads,
        } => serve(config, listen, threads),
        Command::CheckConfig { config, file } => check_config(file.unwrap_or(config)),
        Command::Manpages { dir } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir))
            .map_err(|e| format!("{}: {e}", dir.display())),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "clusterns",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Lookup {
            config,
            name,
            qtype,
        } => lookup(config, &name, &qtype),
        Command::Repl { config, action } => repl(config, *action),
        Command::Acme { config, action } => acme(config, action),
        Command::Ctl {
            config,
            socket,
            timeout,
            action,
        } => ctl(&config, socket, timeout, action),
        Command::Journal {
            config,
            action: JournalAction::Compact { keep_old },
        } => compact(config, keep_old),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clusterns: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps glibc's threshold for serving large allocations with fresh pages at 256 KiB. glibc
/// raises it as large blocks are freed (a journal replay frees many), and then serves the
/// table's big zeroed arrays from recycled heap it must clear: every page resident at once,
/// where fresh pages are only resident once used (measured after loading 1M apps from a
/// journal: VmRSS 88 MiB without this, 72 MiB with it).
fn fixed_mmap_threshold() {
    clusterns::os::set_mmap_threshold(256 * 1024);
}

fn serve(
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
fn reload(
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

/// `clusterns ctl`: one request to the running server; its body lines go to stdout as they
/// come; an error reply is this command's error.
fn ctl(
    config: &Path,
    socket: Option<PathBuf>,
    timeout: u64,
    action: CtlAction,
) -> Result<(), String> {
    let socket = match socket {
        Some(s) => s,
        None => clusterns::control::client::socket_of_config(config)?,
    };
    let request = match action {
        CtlAction::Status => Request::Status,
        CtlAction::Stats => Request::Stats,
        CtlAction::Reload => Request::Reload,
        CtlAction::Checkpoint => Request::Checkpoint,
        CtlAction::App { name } => Request::App(name),
        CtlAction::Apps { user } => Request::Apps(user),
        CtlAction::Dump => Request::Dump,
    };
    // What the server would refuse is refused here, with the same words.
    let line = request.to_line();
    clusterns::control::protocol::parse_request(line.trim_end().as_bytes())
        .map_err(|e| format!("cannot ask that: {e}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    clusterns::control::client::request(
        &socket,
        &config.display().to_string(),
        &request,
        Duration::from_secs(timeout.max(1)),
        &mut out,
    )
}

/// What `serve` would only find out when it runs: the service user exists, and the checkpoint
/// can be written where it is configured (by that user, once root is dropped).
fn run_time_checks(config: &Config) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let file = config.path.display();
    // SAFETY: getuid and getgid only read the process's ids.
    let (mut uid, mut gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if let Some(user) = &config.server.user {
        (uid, gid) = clusterns::privs::lookup(user)
            .map_err(|e| format!("{file}:{}: server.user: {e}", config.user_line.unwrap_or(0)))?;
    }
    if let Some(control) = &config.control {
        let dir = match control.socket.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "{file}:{}: control.socket {}: its directory {} {}",
                control.line,
                control.socket.display(),
                dir.display(),
                if dir.exists() {
                    "is not a directory"
                } else {
                    "does not exist (the package's unit creates /run/clusterns: \
                     RuntimeDirectory=clusterns)"
                }
            ));
        }
    }
    if let Some(ckpt) = &config.feed.checkpoint {
        let line = config.feed_lines.checkpoint.unwrap_or(0);
        let at =
            |what: String| format!("{file}:{line}: feed.checkpoint {}: {what}", ckpt.display());
        if ckpt.is_dir() {
            return Err(at("is a directory; name a file in it".into()));
        }
        let dir = match ckpt.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let meta = std::fs::metadata(&dir)
            .map_err(|e| at(format!("its directory {}: {e}", dir.display())))?;
        if !meta.is_dir() {
            return Err(at(format!("{} is not a directory", dir.display())));
        }
        let mode = meta.mode();
        let writable = uid == 0
            || (meta.uid() == uid && mode & 0o300 == 0o300)
            || (meta.gid() == gid && mode & 0o030 == 0o030)
            || mode & 0o003 == 0o003;
        if !writable {
            return Err(at(format!(
                "its directory {} is not writable by uid {uid} (the service user); \
                 chown it or choose another",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Prints a line of `serve`'s start-up report on stdout. Whoever started the server may
/// have stopped reading (a closed pipe): that must not stop the server, so errors are dropped.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Tells systemd (`$NOTIFY_SOCKET`, Type=notify) about the service's state; nothing without
/// it. A failure is logged, never fatal.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!("sd_notify: {e}");
    }
}

fn check_config(path: PathBuf) -> Result<(), String> {
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    if let SourceConfig::Journal { path } = &config.feed.source {
        if !path.is_file() {
            return Err(format!(
                "{}:{}: feed.journal {} {}; create it (`touch`) or fix the path",
                config.path.display(),
                config.feed_lines.journal.unwrap_or(0),
                path.display(),
                if path.exists() {
                    "is not a file"
                } else {
                    "does not exist"
                }
            ));
        }
    }
    run_time_checks(&config)?;
    // The TSIG key file: readable, private, every grant naming a key in it.
    let update_keys = if config.update.keys.is_some() {
        Some(config.update.load().map_err(|e| e.to_string())?.0)
    } else {
        None
    };
    println!("{}: ok", path.display());
    for z in &config.zones {
        println!(
            "zone {} ttl {} negative-ttl {} ns {} acme {}",
            z.apex,
            z.ttl,
            z.negative_ttl,
            z.ns.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
            match z.acme {
                clusterns::config::AcmeMode::Txt => "txt".to_string(),
                clusterns::config::AcmeMode::Cname => z
                    .acme_validation_zone
                    .as_ref()
                    .map_or("-".to_string(), |a| format!("cname {a}")),
            },
        );
    }
    for c in &config.clusters {
        println!("cluster {} ipv4 {:?} ipv6 {:?}", c.name, c.ipv4, c.ipv6);
    }
    match &config.feed.source {
        SourceConfig::Journal { path } => {
            println!("feed journal {}", path.display())
        }
        SourceConfig::Postgres { conninfo } => println!(
            "feed postgres {}",
            clusterns::config::redact_conninfo(conninfo)
        ),
    }
    if let Some(c) = &config.feed.checkpoint {
        println!("checkpoint {}", c.display());
    }
    if let Some(c) = &config.control {
        println!("control {}", c.socket.display());
    }
    for l in &config.server.listen {
        println!("listen {l}");
    }
    println!("udp_coalesce_us {}", config.server.udp_coalesce_us);
    if let Some(keys) = update_keys {
        println!(
            "update {} keys {} ({} keys) grants {}",
            if config.update.enabled { "on" } else { "off" },
            config
                .update
                .keys
                .as_ref()
                .map_or(String::new(), |k| k.display().to_string()),
            keys.len(),
            config.update.grants.len()
        );
    }
    let a = &config.acme;
    println!(
        "acme ttl {} expire {} max_value_len {} max_values_per_name {} max_names {}",
        a.ttl_secs, a.expire_secs, a.max_value_len, a.max_values_per_name, a.max_names
    );
    Ok(())
}

fn repl(config_path: PathBuf, action: ReplAction) -> Result<(), String> {
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let SourceConfig::Journal { path } = &config.feed.source else {
        return Err(format!(
            "{}: the feed is PostgreSQL; change apps in the database (see sql/schema.sql)",
            config_path.display()
        ));
    };
    let check_cluster = |c: &Label| {
        if config.cluster_index(c.as_str()).is_none() {
            Err(format!("cluster {c} is not in {}", config_path.display()))
        } else {
            Ok(())
        }
    };
    // Every check is made on the table as the feed has it now (the checkpoint, if there is
    // one, and the journal after it), by the server's own rules.
    let mut table = Builder::load(config.clone())
        .map_err(|e| format!("loading the feed: {e}"))?
        .into_table();
    let change = match action {
        ReplAction::Set {
            id,
            user,
            slug,
            cluster,
        } => {
            check_cluster(&cluster)?;
            check_names(&config, &id, &user, &slug)?;
            let change = Change::Upsert {
                id,
                user,
                slug,
                cluster,
            };
            // Refuses a change the server would skip (a name another app holds).
            change.apply_to(&mut table)?;
            change
        }
        ReplAction::Move { id, cluster } => {
            check_cluster(&cluster)?;
            let (user, slug) = current(&table, &id)?;
            Change::Upsert {
                id,
                user,
                slug,
                cluster,
            }
        }
        ReplAction::Delete { id } => {
            current(&table, &id)?;
            Change::Delete { id }
        }
    };
    drop(table);
    // Number after the checkpoint too: a journal that lost its lines must never be numbered
    // again from where it now ends (the server would take the new lines as already applied).
    // The journal is read from where the checkpoint left it, not from its start.
    let (floor, from) = clusterns::feed::writer::journal_floor(config.feed.checkpoint.as_deref())?;
    let appended = append(path, &[change], floor, from, floor == 0).map_err(|e| {
        if floor > 0 && e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "journal {} has no changes but checkpoint {} is at sequence {floor}: the journal \
                 was deleted or rotated away. Run `clusterns journal compact --config {}` to \
                 start it again from the table (or restore it)",
                path.display(),
                config
                    .feed
                    .checkpoint
                    .as_ref()
                    .map_or(String::new(), |c| c.display().to_string()),
                config_path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    if let Some(torn) = appended.dropped {
        eprintln!(
            "clusterns: {}: removed an incomplete last line (no newline; a writer died): {torn}",
            path.display()
        );
    }
    for s in appended.written {
        println!("{s}");
    }
    Ok(())
}

/// `clusterns acme`: reads the records as the server would (checkpoint and feed), checks a
/// change as the server would, and writes it through the source's writer.
fn acme(config_path: PathBuf, action: AcmeAction) -> Result<(), String> {
    use clusterns::feed::{acme as records, writer};
    use clusterns::name::DomainName;
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let table = Builder::load(config.clone())
        .map_err(|e| format!("loading the feed: {e}"))?
        .into_table();
    let store = table.acme();
    let now = records::unix_now();
    let parse_name = |text: &str| -> Result<DomainName, String> {
        let name: DomainName = text.parse()?;
        records::check_writable(&config, &name)?;
        Ok(name)
    };
    let changes = match action {
        AcmeAction::List => {
            for e in store.iter() {
                for (value, expires) in &e.values {
                    println!(
                        "{} {} {expires} {}",
                        e.name,
                        clusterns::wire::present::txt_quoted(value),
                        expires.saturating_sub(now)
                    );
                }
            }
            return Ok(());
        }
        AcmeAction::Add {
            name,
            value,
            expires_in,
        } => {
            let name = parse_name(&name)?;
            store
                .check_add(&name, value.as_bytes())
                .map_err(|e| format!("{name}: {e}"))?;
            let secs = expires_in.unwrap_or(config.acme.expire_secs);
            vec![records::add(name, value.as_bytes(), now, secs)]
        }
        AcmeAction::Remove { name, value } => {
            let name = parse_name(&name)?;
            let held = store.get(name.wire());
            let found = match (&value, held) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(v), Some(e)) => e.values.iter().any(|(h, _)| **h == *v.as_bytes()),
            };
            if !found {
                return Err(format!("{name} holds no such value"));
            }
            vec![Change::TxtDelete {
                name,
                value: value.map(|v| v.into_bytes().into()),
            }]
        }
        AcmeAction::Expire => records::expired(store, now),
    };
    if changes.is_empty() {
        return Ok(());
    }
    let mut w = writer::open(&config)?;
    let seqs = w.write(&changes)?;
    for (i, c) in changes.into_iter().enumerate() {
        match seqs.get(i) {
            Some(&seq) => println!("{}", clusterns::feed::Sequenced { seq, change: c }),
            None => println!("{}", clusterns::feed::Sequenced { seq: 0, change: c }),
        }
    }
    Ok(())
}

/// Refuses app names that could never be reached: a reserved label, or an id or user that is
/// a configured host (or the name above one), or a zone nested in a served zone.
fn check_names(config: &Config, id: &Label, user: &Label, slug: &Label) -> Result<(), String> {
    use clusterns::feed::journal::RESERVED_LABEL;
    for (what, l) in [("repl id", id), ("user", user), ("slug", slug)] {
        if l.as_str() == RESERVED_LABEL {
            return Err(format!("{what} {RESERVED_LABEL} is reserved"));
        }
    }
    for (what, l) in [("repl id", id), ("user", user)] {
        if let Some(by) = config.answered_elsewhere(l.as_str()) {
            return Err(format!(
                "{what} {l} would be answered by the {by} in the configuration, never as an app"
            ));
        }
    }
    Ok(())
}

/// The user and slug of app `id` in `table`.
fn current(table: &clusterns::table::Table, id: &Label) -> Result<(Label, Label), String> {
    let (user, slug, _) = table
        .get(id.as_str())
        .ok_or_else(|| format!("repl {id} does not exist"))?;
    let label = |s: String| s.parse::<Label>().map_err(|e| format!("journal: {e}"));
    Ok((label(user)?, label(slug)?))
}

fn compact(config_path: PathBuf, keep_old: Option<PathBuf>) -> Result<(), String> {
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let c = clusterns::feed::compact::compact(config, keep_old.as_deref())?;
    println!(
        "{}: compacted to {} apps at sequence {} ({} -> {} bytes)",
        c.path.display(),
        c.apps,
        c.seq,
        c.bytes_before,
        c.bytes_after
    );
    Ok(())
}

/// Answers one question from the configured feed and prints the response, dig style.
fn lookup(config_path: PathBuf, name: &str, qtype: &str) -> Result<(), String> {
    use std::str::FromStr;
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let qname = domain::base::Name::<Vec<u8>>::from_str(name)
        .map_err(|e| format!("{name:?} is not a domain name: {e}"))?;
    let rtype = domain::base::iana::Rtype::from_str(qtype)
        .map_err(|_| format!("{qtype:?} is not a record type"))?;
    let mut msg = domain::base::MessageBuilder::new_vec().question();
    msg.header_mut().set_id(1);
    msg.push((&qname, rtype))
        .map_err(|e| format!("building the query: {e}"))?;
    let query = msg.finish();
    let builder = Builder::load(config).map_err(|e| format!("loading the feed: {e}"))?;
    let snap = builder.shared().load_full();
    let mut out = vec![0u8; 65535];
    let handled =
        clusterns::query::respond(&snap, &query, &mut out, clusterns::query::Transport::Tcp);
    let response = domain::base::Message::from_slice(&out[..handled.len])
        .map_err(|e| format!("response: {e}"))?;
    print!("{}", clusterns::wire::present::dig_style(response));
    Ok(())
}
