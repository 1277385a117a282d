//! The command line: every command, its options and their help (clap), also the source of the
//! man pages and shell completions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use clusterns::dnssec::key::{Algorithm, Role};
use clusterns::name::{DomainName, Label};

/// `--version`: the crate version, the git revision and the optional features built in.
pub(crate) const LONG_VERSION: &str = concat!(
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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where every command finds the configuration unless told: `--config`, else
/// `$CLUSTERNS_CONFIG`, else this.
const DEFAULT_CONFIG: &str = "/etc/clusterns/clusterns.toml";

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Ask with DO set (EDNS, DNSSEC OK): a signed zone's answer with its RRSIGs, or
        /// its compact denial (NSEC with NXNAME).
        #[arg(long)]
        dnssec: bool,
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
    /// Probe the clusters' addresses (`[cluster.check]`, `[health]`) and write their state
    /// (changes, and lease renewals every third of the lease) to the feed's source of truth,
    /// until SIGTERM or SIGINT.
    Health {
        /// The configuration file.
        #[arg(long, short, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Probe every address once, print `<cluster> <address> up|down|unknown [(reason)]`
        /// and exit 0; nothing is written. The state is the one rise/fall decide after one
        /// probe: with `rise` or `fall` above 1, an address shows unknown.
        #[arg(long)]
        once: bool,
        /// Print the reports to stdout as journal lines
        /// (`<seq> health <checker> <cluster> <address> up|down <until>`) instead of writing
        /// them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Publish the source of truth's change stream (`[feed]`: a journal or PostgreSQL) to a
    /// NATS JetStream stream (`[nats]`, `[relay]`), with table snapshots in its object store,
    /// for edges with `feed.source = "nats"`. Several relays may run: one leads (a lease),
    /// the others stand by. Runs until SIGTERM or SIGINT.
    Relay {
        /// The configuration file.
        #[arg(long, short, env = "CLUSTERNS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Publish what the source holds now, put a snapshot, and exit 0.
        #[arg(long)]
        once: bool,
    },
    /// DNSSEC keys: generate one, print a key file's DNSKEY and DS records.
    Dnssec {
        #[command(subcommand)]
        action: DnssecAction,
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
pub(crate) enum JournalAction {
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
pub(crate) enum CtlAction {
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
pub(crate) enum AcmeAction {
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
pub(crate) enum ReplAction {
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

#[derive(Subcommand)]
pub(crate) enum DnssecAction {
    /// Generate a signing key into a new file (mode 0600; an existing file is never
    /// overwritten) and print its path, its DNSKEY record and, for a csk or ksk, the DS record
    /// to give to the parent zone.
    Keygen {
        /// The zone the key signs.
        #[arg(long)]
        zone: DomainName,
        /// The signing algorithm.
        #[arg(long, default_value = "ecdsap256sha256", value_parser = algorithm_parser())]
        algorithm: Algorithm,
        /// csk: signs everything; ksk: the DNSKEY, CDS and CDNSKEY records only; zsk:
        /// everything else.
        #[arg(long, default_value = "csk", value_parser = role_parser())]
        role: Role,
        /// The key file (default `K<zone>+<algorithm>+<key tag>.key` in the current folder,
        /// as BIND names them).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The TTL of the printed records.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// Print the DNSKEY record of a key file and, for a csk or ksk, its DS record.
    Show {
        /// The key file.
        file: PathBuf,
        /// The TTL of the printed records.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
}

/// `--algorithm`: its values listed in the help and the completions.
fn algorithm_parser() -> impl clap::builder::TypedValueParser<Value = Algorithm> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new([
        Algorithm::EcdsaP256Sha256.name(),
        Algorithm::Ed25519.name(),
    ])
    .try_map(|s| s.parse::<Algorithm>())
}

/// `--role`: its values listed in the help and the completions.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new([Role::Csk.name(), Role::Ksk.name(), Role::Zsk.name()])
        .try_map(|s| s.parse::<Role>())
}
