//! The PostgreSQL change feed: the platform's database as the source of truth.
//!
//! The database holds the apps in `repls` and, filled by triggers in the same transactions, a
//! change log `repl_changes` whose sequence numbers follow commit order (see `sql/schema.sql`,
//! applied with [`apply_schema`]). [`PgSource`] reads it in two ways:
//!
//! - [`PgSource::load_all`]: one REPEATABLE READ transaction that reads every app and the highest
//!   `seq` that read reflects;
//! - [`PgSource::poll`]: the log rows after a position, in order, woken by `NOTIFY
//!   clusterns_changes` instead of polling the table in a tight loop.
//!
//! Pruning: the schema keeps, in `repl_changes_pruned`, the highest seq ever deleted from the
//! log (raised by triggers on DELETE and TRUNCATE of `repl_changes`). Every poll reads it in the
//! same snapshot as the rows it returns: if it is past the reader's position, rows the reader
//! never saw are gone, and the poll fails with [`PgError::Gap`] (the caller must
//! [`load_all`](PgSource::load_all) again). Rows pruned below the position, and seq numbers
//! that rolled-back transactions consumed, are never taken for a gap.
//!
//! TLS: libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, with libpq's meanings (see
//! [`tls`]); they are taken out of the connection string ([`conninfo`]) before the `postgres`
//! crate parses the rest.
//!
//! The `postgres` crate is synchronous over a private runtime: a `PgSource` is meant for the
//! builder thread only, never for a query worker. Every call that meets an error drops the
//! connection and returns the error; the server keeps answering from its last snapshot, and the
//! next call reconnects (and LISTENs again) after an exponential backoff of 50 ms doubling up to
//! 5 s, reset by the first call that succeeds.
//!
//! Rows that clusterns cannot use (a name that is not exactly a lower-case label, a reserved
//! name, an unknown op, a NULL) are logged with `tracing::warn!`, counted (see
//! [`PgSource::take_rejected`]) and skipped; they never stop the feed. Names are never
//! lower-cased here: `DupId` and `dupid` are different rows in PostgreSQL, and folding them into
//! one DNS name would let one of them shadow or delete the other. Values quoted in log lines
//! and errors are cut at [`QUOTE_MAX`] bytes.

use std::fmt;
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use postgres::config::SslMode as PgSslMode;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, IsolationLevel, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::feed::change::{Change, Sequenced};

/// The schema: tables, sequence and triggers (`sql/schema.sql`).
pub const SCHEMA: &str = include_str!("../../sql/schema.sql");

/// The channel the schema's triggers notify after every change to `repls`.
pub const CHANNEL: &str = "clusterns_changes";

/// The first delay before reconnecting after an error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest delay before reconnecting; the delay doubles from [`BACKOFF_MIN`] up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Used when the connection string sets no `connect_timeout`: an unreachable host must not
/// stall the builder thread for the kernel's TCP timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many buffered notifications are discarded before a read.
const MAX_DRAIN: usize = 4096;

/// The name no app may take as its id, user or slug: `_acme-challenge.<name>` is where ACME
/// DNS-01 challenges are looked up, so an app named so would shadow (or be shadowed by) them.
pub const RESERVED_LABEL: &str = "_acme-challenge";

pub use crate::name::QUOTE_MAX;

/// One poll: the pruning mark and the change rows after a position, in one statement (one
/// snapshot, one round trip). The mark's row is always there (its primary key allows one), so
/// the result has at least one row; with no changes, that row's change columns are NULL.
const CHANGES_SQL: &str = "SELECT p.pruned_upto, c.seq, c.op::text, c.id::text, \
     c.user_name::text, c.slug::text, c.cluster::text, c.value, c.expires_at, \
     host(c.addr), c.up \
     FROM repl_changes_pruned AS p LEFT JOIN LATERAL \
     (SELECT seq, op, id, user_name, slug, cluster, value, expires_at, addr, up FROM repl_changes \
      WHERE seq > $1 ORDER BY seq LIMIT $2) AS c ON true \
     ORDER BY c.seq";
/// The position a full read reflects: the highest seq in the log, and the pruning mark (the
/// log may have been pruned empty).
const MAX_SEQ_SQL: &str = "SELECT coalesce((SELECT max(seq) FROM repl_changes), 0)::bigint, \
     (SELECT pruned_upto FROM repl_changes_pruned)";
const APPS_SQL: &str =
    "SELECT id::text, user_name::text, slug::text, cluster::text FROM repls ORDER BY id";
/// The challenge records, read with the apps at a full load.
const ACME_SQL: &str = "SELECT name::text, value, expires_at FROM acme_txt ORDER BY name, value";
/// The health reports, read with the apps at a full load.
const HEALTH_SQL: &str = "SELECT checker::text, cluster::text, host(addr), up, until \
     FROM lb_health ORDER BY checker, cluster, addr";
const PRUNED_SQL: &str = "SELECT pruned_upto FROM repl_changes_pruned";
/// Why a read found no pruning mark.
const NO_MARK: &str =
    "repl_changes_pruned (the pruning mark) has no row: apply this version's sql/schema.sql";

/// Why a call to the database failed.
#[derive(Debug)]
pub enum PgError {
    /// The database or the connection to it failed (including a bad connection string).
    Db(postgres::Error),
    /// The database returned something clusterns cannot use.
    Data(String),
    /// TLS: the connection string's TLS settings are wrong (unknown `sslmode`, a CA file that
    /// cannot be read, ...), or the handshake failed (a certificate not trusted, a host name
    /// that does not match); the message says which.
    Tls(String),
    /// Changes after the caller's position were pruned from `repl_changes` before they were
    /// read: the changes that follow cannot be applied on top of what the caller has. It must
    /// reload the whole table ([`PgSource::load_all`]). The connection stays open and no
    /// backoff follows.
    Gap {
        /// The caller's position (the last seq it read).
        after: u64,
        /// The highest seq pruned from the log (`repl_changes_pruned.pruned_upto`), greater
        /// than `after`.
        pruned_upto: u64,
    },
    /// An earlier call failed and the backoff delay has not passed yet: no connection was
    /// attempted.
    Backoff {
        /// Time left until the next attempt.
        retry_in: Duration,
        /// Failed attempts in a row so far.
        failures: u32,
    },
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Db(e) => {
                // postgres::Error's own Display is only the kind ("db error"); the server's
                // message is in the source chain.
                write!(f, "PostgreSQL: {e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    let text = s.to_string().replace('\n', "; ");
                    write!(f, ": {text}")?;
                    source = s.source();
                }
                Ok(())
            }
            PgError::Data(message) | PgError::Tls(message) => write!(f, "PostgreSQL: {message}"),
            PgError::Gap { after, pruned_upto } => write!(
                f,
                "PostgreSQL: the changes after seq {after} up to seq {pruned_upto} were pruned \
                 from repl_changes before they were read; the whole table will be reloaded"
            ),
            PgError::Backoff { retry_in, failures } => write!(
                f,
                "PostgreSQL unavailable after {failures} failed attempt(s); next attempt in {} ms",
                retry_in.as_millis()
            ),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Db(e) => Some(e),
            _ => None,
        }
    }
}

impl From<postgres::Error> for PgError {
    fn from(e: postgres::Error) -> PgError {
        PgError::Db(e)
    }
}

/// An error from the database, with a hint where a table of the schema is missing (a database
/// set up by an older `sql/schema.sql`).
fn db_error(e: postgres::Error) -> PgError {
    if e.code() == Some(&SqlState::UNDEFINED_TABLE) {
        let text = PgError::Db(e).to_string();
        let text = text.strip_prefix("PostgreSQL: ").unwrap_or(&text);
        PgError::Data(format!("{text}; apply this version's sql/schema.sql"))
    } else {
        PgError::Db(e)
    }
}

pub use crate::name::quote;
use decode::decode_app;
pub use decode::{decode_health_row, decode_row, decode_txt_row};

/// Runs the schema (`sql/schema.sql`: idempotent, one transaction) on `client`.
pub fn apply_schema(client: &mut Client) -> Result<(), postgres::Error> {
    let result = client.batch_execute(SCHEMA);
    if result.is_err() {
        // The file's explicit transaction may be left open and aborted; end it so that the
        // client stays usable. (Outside a transaction this is only a warning.)
        let _ = client.batch_execute("ROLLBACK");
    }
    result
}

/// An open connection, LISTENing on the channel, with the poll query prepared.
struct Conn {
    client: Client,
    changes: Statement,
}

/// The PostgreSQL change feed, for the builder thread.
///
/// Backoff: after a failed call the next connection attempt waits until the backoff delay has
/// passed (50 ms, doubling per failure in a row up to 5 s). [`poll`](PgSource::poll) waits for it
/// within its `wait` (so that a caller polling in a loop is paced, not spinning) and returns
/// [`PgError::Backoff`] if the delay is longer than `wait`; [`load_all`](PgSource::load_all),
/// [`pruned_upto`](PgSource::pruned_upto) sleep until
/// the delay has passed (at most 5 s) and then try. The first call that succeeds resets the
/// delay. [`PgError::Gap`] is an answer, not a failure: it keeps the connection and starts no
/// backoff.
pub struct PgSource {
    /// The connection string without its TLS parameters (see [`conninfo`]).
    conninfo: String,
    /// Its TLS parameters, or why they are wrong.
    tls: Result<TlsSettings, String>,
    channel: String,
    conn: Option<Conn>,
    /// Failed calls in a row.
    failures: u32,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
    /// Set after a poll that skipped bad rows at its end, so that they are not read and
    /// reported again.
    resume: Option<Resume>,
    /// Rows rejected (logged and skipped) since the last [`take_rejected`](PgSource::take_rejected).
    rejected: u64,
    /// Time spent waiting (for a notification, or out a backoff) since the last
    /// [`take_waited`](PgSource::take_waited).
    waited: Duration,
}

impl fmt::Debug for PgSource {
    /// Leaves out the connection string, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSource")
            .field("channel", &self.channel)
            .field("connected", &self.conn.is_some())
            .field("failures", &self.failures)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl PgSource {
    /// A source for the database at `conninfo` (libpq key=value or `postgresql://` URL, with
    /// libpq's TLS parameters: see [`tls`]). Does not connect yet; a bad connection string
    /// is reported by the first call.
    pub fn new(conninfo: &str) -> PgSource {
        let split = conninfo::split(conninfo);
        PgSource {
            tls: TlsSettings::from_split(&split),
            conninfo: split.rest,
            channel: CHANNEL.to_owned(),
            conn: None,
            failures: 0,
            retry_at: None,
            resume: None,
            rejected: 0,
            waited: Duration::ZERO,
        }
    }

    /// Whether a connection is open (it may still turn out to be broken on the next call).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The number of rows rejected (logged with `tracing::warn!` and skipped: names that are
    /// not lower-case labels, reserved names, unknown ops, NULLs) by [`load_all`] and
    /// [`poll`] since the last call; resets the count. (After a reconnect a poll may read a
    /// rejected row again, and count it again.)
    ///
    /// [`load_all`]: PgSource::load_all
    /// [`poll`]: PgSource::poll
    pub fn take_rejected(&mut self) -> u64 {
        std::mem::take(&mut self.rejected)
    }

    /// The time spent waiting rather than working (for a notification in [`poll`], out a
    /// backoff) since the last call.
    ///
    /// [`poll`]: PgSource::poll
    pub fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }

    /// Consistent full read (one REPEATABLE READ transaction): every app as [`Change::Upsert`]
    /// (ordered by id), and the position that the read reflects: the highest seq in
    /// `repl_changes`, or the pruning mark if that is higher (the log may have been pruned
    /// empty), 0 for a database that never logged a change. Polling from that position never
    /// reports a [`PgError::Gap`] for what was pruned before the read. Apps whose names are not
    /// exactly lower-case labels, or are reserved, are logged, counted (see
    /// [`take_rejected`](PgSource::take_rejected)) and left out.
    pub fn load_all(&mut self) -> Result<(Vec<Change>, u64), PgError> {
        self.wait_backoff(None)?;
        let result = self.load_all_inner();
        self.finish(result)
    }

    /// The changes after the caller's position `after` (the last seq it applied), in order (at
    /// most `limit`, at least 1). If there are none, waits up to `wait` for a notification and
    /// reads again; returns an empty list if nothing came. Bad rows are logged, counted and
    /// skipped. Re-LISTENs after reconnecting.
    ///
    /// Every read also reads the pruning mark, in the same snapshot: if changes after `after`
    /// were pruned before they were read, returns [`PgError::Gap`] (and no changes); the caller
    /// must [`load_all`](PgSource::load_all) and poll from the position that returns. On any
    /// other error the connection is dropped and the error returned; see [`PgSource`] for the
    /// backoff.
    pub fn poll(
        &mut self,
        after: u64,
        wait: Duration,
        limit: usize,
    ) -> Result<Vec<Sequenced>, PgError> {
        let now = Instant::now();
        // A `wait` too long to add (Duration::MAX) waits a year.
        let deadline = now
            .checked_add(wait)
            .unwrap_or(now + Duration::from_secs(365 * 86_400));
        self.wait_backoff(Some(wait))?;
        let result = self.poll_inner(after, deadline, limit.max(1));
        self.finish(result)
    }

    /// The pruning mark: the highest seq ever deleted from `repl_changes` (by DELETE or
    /// TRUNCATE; 0 if none). A reader whose position is below it has missed changes and must
    /// [`load_all`](PgSource::load_all) again; one at or past it has not (rows pruned below a
    /// position, and seq numbers that rolled-back transactions consumed, do not count).
    /// [`poll`](PgSource::poll) checks this itself on every read; this is for a caller that
    /// wants to know before it polls, e.g. whether a checkpoint at `last_seq` is still usable
    /// (`pruned_upto()? <= last_seq`).
    pub fn pruned_upto(&mut self) -> Result<u64, PgError> {
        self.wait_backoff(None)?;
        let result = self.pruned_inner();
        self.finish(result)
    }

    fn load_all_inner(&mut self) -> Result<(Vec<Change>, u64), PgError> {
        self.resume = None;
        let mut skipped = 0u64;
        let result = self.with_conn(|conn| {
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let row = tx.query_one(MAX_SEQ_SQL, &[]).map_err(db_error)?;
            let max: i64 = row.try_get(0)?;
            let pruned: Option<i64> = row.try_get(1)?;
            let max = seq_of(max)?;
            let pruned = seq_of(pruned.ok_or_else(|| PgError::Data(NO_MARK.into()))?)?;
            let seq = max.max(pruned);
            let mut apps = Vec::new();
            {
                let mut rows = tx
                    .query_raw(APPS_SQL, std::iter::empty::<i32>())
                    .map_err(db_error)?;
                while let Some(row) = rows.next()? {
                    let id: Option<&str> = row.try_get(0)?;
                    let id = id.unwrap_or_default();
                    let decoded = decode_app(id, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                    match decoded {
                        Ok(change) => apps.push(change),
                        Err(e) => {
                            skipped += 1;
                            tracing::warn!(
                                "repls row with id {} left out (load at seq {seq}): {e}",
                                quote(id)
                            );
                        }
                    }
                }
            }
            {
                let mut rows = tx
                    .query_raw(ACME_SQL, std::iter::empty::<i32>())
                    .map_err(db_error)?;
                while let Some(row) = rows.next()? {
                    let name: &str = row.try_get(0)?;
                    let value: &[u8] = row.try_get(1)?;
                    let expires: i64 = row.try_get(2)?;
                    match decode_txt_row(
                        seq.max(1) as i64,
                        "txt-add",
                        name,
                        Some(value),
                        Some(expires),
                    ) {
                        Ok(s) => apps.push(s.change),
                        Err(e) => {
                            skipped += 1;
                            tracing::warn!("acme_txt row left out (load at seq {seq}): {e}");
                        }
                    }
                }
            }
            {
                let mut rows = tx
                    .query_raw(HEALTH_SQL, std::iter::empty::<i32>())
                    .map_err(db_error)?;
                while let Some(row) = rows.next()? {
                    let checker: &str = row.try_get(0)?;
                    match decode_health_row(
                        seq.max(1) as i64,
                        checker,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                    ) {
                        Ok(s) => apps.push(s.change),
                        Err(e) => {
                            skipped += 1;
                            tracing::warn!("lb_health row left out (load at seq {seq}): {e}");
                        }
                    }
                }
            }
            tx.commit()?;
            Ok((apps, seq))
        });
        if result.is_ok() {
            // Counted once the read is complete: a failed load is retried and would count its
            // rows again.
            self.rejected += skipped;
            if skipped > 0 {
                tracing::warn!(
                    skipped,
                    "apps in repls left out: names that are not lower-case labels, or reserved"
                );
            }
        }
        result
    }

    fn poll_inner(
        &mut self,
        after: u64,
        deadline: Instant,
        limit: usize,
    ) -> Result<Vec<Sequenced>, PgError> {
        let from = match self.resume {
            Some((a, resume_from)) if a == after => resume_from,
            _ => after,
        };
        let mut rejected = 0;
        let mut waited = Duration::ZERO;
        let result = self.with_conn(|conn| {
            read_changes(
                conn,
                after,
                from,
                deadline,
                limit,
                &mut rejected,
                &mut waited,
            )
        });
        self.rejected += rejected;
        self.waited += waited;
        match result {
            Ok((changes, resume)) => {
                self.resume = resume;
                Ok(changes)
            }
            Err(e) => {
                self.resume = None;
                Err(e)
            }
        }
    }

    fn pruned_inner(&mut self) -> Result<u64, PgError> {
        self.with_conn(|conn| {
            let row = conn.client.query_opt(PRUNED_SQL, &[]).map_err(db_error)?;
            let pruned: i64 = row
                .ok_or_else(|| PgError::Data(NO_MARK.into()))?
                .try_get(0)?;
            seq_of(pruned)
        })
    }

    /// Runs `f` on the open connection, or on a new one that LISTENs on the channel. The
    /// connection is kept if `f` succeeds or finds a gap.
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = f(&mut conn);
        if matches!(result, Ok(_) | Err(PgError::Gap { .. })) {
            self.conn = Some(conn);
        }
        result
    }

    fn connect(&self) -> Result<Conn, PgError> {
        let settings = self.tls.as_ref().map_err(|e| PgError::Tls(e.clone()))?;
        let mut config = Config::from_str(&self.conninfo)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("clusterns");
        }
        let mut client = connect_tls(&mut config, settings)?;
        client.batch_execute(&format!("LISTEN \"{}\"", self.channel.replace('"', "\"\"")))?;
        let changes = client.prepare(CHANGES_SQL).map_err(db_error)?;
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "reconnected to PostgreSQL, listening on {}",
                self.channel
            );
        }
        Ok(Conn { client, changes })
    }

    /// Waits out the backoff: entirely if `max` is None, else for at most `max`, returning
    /// [`PgError::Backoff`] if it has not passed by then.
    fn wait_backoff(&mut self, max: Option<Duration>) -> Result<(), PgError> {
        let Some(retry_at) = self.retry_at else {
            return Ok(());
        };
        let now = Instant::now();
        if now < retry_at {
            let left = retry_at - now;
            match max {
                Some(max) if max < left => {
                    thread::sleep(max);
                    self.waited += max;
                    return Err(PgError::Backoff {
                        retry_in: left - max,
                        failures: self.failures,
                    });
                }
                _ => {
                    thread::sleep(left);
                    self.waited += left;
                }
            }
        }
        self.retry_at = None;
        Ok(())
    }

    /// Records the outcome of a call: success (or a gap, which the database answered) resets
    /// the backoff; an error drops the connection and doubles the delay before the next
    /// attempt.
    fn finish<T>(&mut self, result: Result<T, PgError>) -> Result<T, PgError> {
        match &result {
            Ok(_) | Err(PgError::Gap { .. }) => {
                self.failures = 0;
                self.retry_at = None;
            }
            Err(_) => {
                self.conn = None;
                self.resume = None;
                self.failures = self.failures.saturating_add(1);
                let delay = BACKOFF_MIN
                    .saturating_mul(1 << (self.failures - 1).min(16))
                    .min(BACKOFF_MAX);
                self.retry_at = Some(Instant::now() + delay);
            }
        }
        result
    }
}

/// A plain connection to `conninfo` (libpq's TLS parameters honoured, no LISTEN), for writers.
pub(crate) fn connect_plain(conninfo: &str) -> Result<Client, PgError> {
    let split = conninfo::split(conninfo);
    let settings = TlsSettings::from_split(&split).map_err(PgError::Tls)?;
    let mut config = Config::from_str(&split.rest)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("clusterns");
    }
    connect_tls(&mut config, &settings)
}

/// Opens a connection to `config` with the TLS of `settings`. In `sslmode=prefer`, a failed
/// handshake is followed by a connection without TLS, as libpq does (logged).
fn connect_tls(config: &mut Config, settings: &TlsSettings) -> Result<Client, PgError> {
    let mode = settings.prepare(config).map_err(PgError::Tls)?;
    if mode == PgSslMode::Disable {
        return config.connect(NoTls).map_err(unencrypted_refused);
    }
    let connector = MakeRustlsConnect::new(settings.client_config().map_err(PgError::Tls)?);
    match config.connect(connector) {
        Ok(client) => Ok(client),
        Err(e) if mode == PgSslMode::Prefer && tls::rustls_error(&e).is_some() => {
            let why = settings.explain(&e).unwrap_or_default();
            tracing::warn!("PostgreSQL: {why}; sslmode=prefer: connecting without TLS");
            config.ssl_mode(PgSslMode::Disable);
            config.connect(NoTls).map_err(|plain| {
                let plain = PgError::Db(plain).to_string();
                let plain = plain.strip_prefix("PostgreSQL: ").unwrap_or(&plain);
                PgError::Tls(format!("{why}; then without TLS (sslmode=prefer): {plain}"))
            })
        }
        Err(e) => Err(match settings.explain(&e) {
            Some(why) => PgError::Tls(why),
            None => PgError::Db(e),
        }),
    }
}

/// The error of a connection without TLS, with a hint where the server refused it for that
/// (pg_hba.conf takes only `hostssl` connections from this client).
fn unencrypted_refused(e: postgres::Error) -> PgError {
    let refused = e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        && e.as_db_error()
            .is_some_and(|db| db.message().contains("no encryption"));
    if !refused {
        return PgError::Db(e);
    }
    let text = PgError::Db(e).to_string();
    let text = text.strip_prefix("PostgreSQL: ").unwrap_or(&text);
    PgError::Tls(format!(
        "{text}; the server takes only TLS connections from here: use sslmode=require or \
         stronger"
    ))
}

/// A seq or pruning mark read from the database, which must not be negative.
fn seq_of(value: i64) -> Result<u64, PgError> {
    u64::try_from(value)
        .map_err(|_| PgError::Data(format!("repl_changes holds a negative seq ({value})")))
}

/// After a poll whose last rows were bad (skipped): a call with `after == .0` goes on from `.1`.
type Resume = (u64, u64);

/// One poll on an open connection: the changes with seq > `from` (`after` is the caller's
/// position, `from` may be past it where bad rows were skipped), waiting for a notification
/// until `deadline` if there are none. Also returns the new resume point. Fails with
/// [`PgError::Gap`] if the log was pruned past `from`; adds the rows it skipped as bad to
/// `rejected`.
fn read_changes(
    conn: &mut Conn,
    after: u64,
    mut from: u64,
    deadline: Instant,
    limit: usize,
    rejected: &mut u64,
    waited: &mut Duration,
) -> Result<(Vec<Sequenced>, Option<Resume>), PgError> {
    let limit_param = i64::try_from(limit).unwrap_or(i64::MAX);
    loop {
        // Notifications already here are for commits this read will see: drop them, so that
        // only later commits wake the wait below. (One that slips in between only causes a
        // read that finds nothing.)
        {
            let mut notifications = conn.client.notifications();
            let mut pending = notifications.iter();
            let mut drained = 0;
            while drained < MAX_DRAIN && pending.next()?.is_some() {
                drained += 1;
            }
        }

        let from_param = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = conn
            .client
            .query(&conn.changes, &[&from_param, &limit_param])?;
        // The mark and the rows come from one snapshot: a prune either happened before it
        // (its rows are gone and the mark counts them) or after (its rows are here).
        let Some(first) = rows.first() else {
            return Err(PgError::Data(NO_MARK.into()));
        };
        let pruned = seq_of(first.try_get(0)?)?;
        if pruned > from {
            // Rows in (from, pruned] existed and were deleted before this reader saw them.
            // (Those up to `from` were read, or skipped as bad, already.)
            return Err(PgError::Gap {
                after,
                pruned_upto: pruned,
            });
        }
        let mut out = Vec::with_capacity(rows.len());
        let mut last_read = from;
        let mut read = 0;
        for row in &rows {
            // NULL: no change after `from` (the mark's row alone).
            let Some(seq) = row.try_get::<_, Option<i64>>(1)? else {
                continue;
            };
            read += 1;
            let op: &str = row.try_get(2)?;
            let id: &str = row.try_get(3)?;
            let decoded = if op.starts_with("txt-") {
                decode_txt_row(seq, op, id, row.try_get(7)?, row.try_get(8)?)
            } else if op == "health" {
                decode_health_row(
                    seq,
                    id,
                    row.try_get(6)?,
                    row.try_get(9)?,
                    row.try_get(10)?,
                    row.try_get(8)?,
                )
            } else {
                decode_row(
                    seq,
                    op,
                    id,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                )
            };
            match decoded {
                Ok(change) => out.push(change),
                Err(e) => {
                    *rejected += 1;
                    tracing::warn!("change skipped: {e}");
                }
            }
            // seq > from >= 0 here, so the conversion cannot fail.
            last_read = u64::try_from(seq).unwrap_or(last_read);
        }
        let last_returned = out.last().map_or(after, |s| s.seq);
        let resume = (last_read > last_returned).then_some((last_returned, last_read));
        if !out.is_empty() {
            return Ok((out, resume));
        }
        from = last_read;
        if read == limit {
            // A whole batch of bad rows: there may be good ones right behind it.
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok((out, resume));
        }
        // Wakes on the first notification, at the deadline, or at once if the connection has
        // closed (the read that follows then fails). Reads once more in every case.
        let woken = conn
            .client
            .notifications()
            .timeout_iter(deadline - now)
            .next();
        *waited += now.elapsed();
        woken?;
    }
}

pub mod conninfo;
mod decode;
#[cfg(test)]
mod tests;
pub mod tls;

use tls::TlsSettings;
