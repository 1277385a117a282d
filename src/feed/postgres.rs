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
//! The `postgres` crate is synchronous over a private runtime: a `PgSource` is meant for the
//! builder thread only, never for a query worker. Every call that meets an error drops the
//! connection and returns the error; the server keeps answering from its last snapshot, and the
//! next call reconnects (and LISTENs again) after an exponential backoff of 50 ms doubling up to
//! 5 s, reset by the first call that succeeds.
//!
//! Rows that clusterns cannot use (a name that is not a label, an unknown op, a NULL) are logged
//! with `tracing::warn!` and skipped; they never stop the feed.

use std::fmt;
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, IsolationLevel, NoTls, Statement};

use crate::feed::change::{Change, Sequenced};
use crate::name::{check_label, Label};

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

const CHANGES_SQL: &str = "SELECT seq, op::text, id::text, user_name::text, slug::text, \
     cluster::text FROM repl_changes WHERE seq > $1 ORDER BY seq LIMIT $2";
const MAX_SEQ_SQL: &str = "SELECT coalesce(max(seq), 0)::bigint FROM repl_changes";
const APPS_SQL: &str =
    "SELECT id::text, user_name::text, slug::text, cluster::text FROM repls ORDER BY id";
const OLDEST_SQL: &str = "SELECT min(seq) FROM repl_changes";

/// Why a call to the database failed.
#[derive(Debug)]
pub enum PgError {
    /// The database or the connection to it failed (including a bad connection string).
    Db(postgres::Error),
    /// The database returned something clusterns cannot use.
    Data(String),
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
            PgError::Data(message) => write!(f, "PostgreSQL: {message}"),
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

/// Decodes one `repl_changes` row, validating every name as a label (lower-cased).
///
/// A `set` needs `user`, `slug` and `cluster`; a `delete` uses only the id (the other fields
/// hold the app's last values, for the record, and are ignored).
pub fn decode_row(
    seq: i64,
    op: &str,
    id: &str,
    user: Option<&str>,
    slug: Option<&str>,
    cluster: Option<&str>,
) -> Result<Sequenced, String> {
    let seq = u64::try_from(seq)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("repl_changes seq {seq}: sequence numbers start at 1"))?;
    let change = match op {
        "set" => decode_app(id, user, slug, cluster),
        "delete" => label("id", Some(id)).map(|id| Change::Delete { id }),
        other => Err(format!("unknown op {other:?} (expected 'set' or 'delete')")),
    };
    change
        .map(|change| Sequenced { seq, change })
        .map_err(|e| format!("repl_changes seq {seq} ({op} of app {id:?}): {e}"))
}

/// An app's four columns as an upsert.
fn decode_app(
    id: &str,
    user: Option<&str>,
    slug: Option<&str>,
    cluster: Option<&str>,
) -> Result<Change, String> {
    Ok(Change::Upsert {
        id: label("id", Some(id))?,
        user: label("user_name", user)?,
        slug: label("slug", slug)?,
        cluster: label("cluster", cluster)?,
    })
}

fn label(column: &str, value: Option<&str>) -> Result<Label, String> {
    let value = value.ok_or_else(|| format!("{column} is NULL"))?;
    check_label(value).map_err(|e| format!("{column}: {e}"))
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
/// [`PgError::Backoff`] if the delay is longer than `wait`; [`load_all`](PgSource::load_all) and
/// [`oldest_seq`](PgSource::oldest_seq) sleep until the delay has passed (at most 5 s) and then
/// try. The first call that succeeds resets the delay.
pub struct PgSource {
    conninfo: String,
    channel: String,
    conn: Option<Conn>,
    /// Failed calls in a row.
    failures: u32,
    /// No connection attempt before this instant.
    retry_at: Option<Instant>,
    /// Set after a poll that skipped bad rows at its end, so that they are not read and
    /// reported again.
    resume: Option<Resume>,
}

impl fmt::Debug for PgSource {
    /// Leaves out the connection string, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSource")
            .field("channel", &self.channel)
            .field("connected", &self.conn.is_some())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl PgSource {
    /// A source for the database at `conninfo` (libpq key=value or `postgresql://` URL). Does
    /// not connect yet; a bad connection string is reported by the first call.
    pub fn new(conninfo: &str) -> PgSource {
        PgSource {
            conninfo: conninfo.to_owned(),
            channel: CHANNEL.to_owned(),
            conn: None,
            failures: 0,
            retry_at: None,
            resume: None,
        }
    }

    /// Whether a connection is open (it may still turn out to be broken on the next call).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Consistent full read (one REPEATABLE READ transaction): every app as [`Change::Upsert`]
    /// (ordered by id), and the highest seq in `repl_changes` (0 if empty) that the read
    /// reflects. Apps whose names are not labels are logged and left out.
    pub fn load_all(&mut self) -> Result<(Vec<Change>, u64), PgError> {
        self.wait_backoff(None)?;
        let result = self.load_all_inner();
        self.finish(result)
    }

    /// The changes with seq > `after`, in order (at most `limit`, at least 1). If there are none,
    /// waits up to `wait` for a notification and reads again; returns an empty list if nothing
    /// came. Bad rows are logged and skipped. Re-LISTENs after reconnecting. On any error the
    /// connection is dropped and the error returned; see [`PgSource`] for the backoff.
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

    /// The lowest seq still in `repl_changes` (None if empty). If it is greater than `after + 1`
    /// for the caller's position `after`, rows were pruned that the caller has not read: it must
    /// [`load_all`](PgSource::load_all) again. (A rolled-back transaction leaves a gap in seq, so
    /// right after pruning this can also ask for a reload that was not needed; never the
    /// reverse.)
    pub fn oldest_seq(&mut self) -> Result<Option<u64>, PgError> {
        self.wait_backoff(None)?;
        let result = self.oldest_inner();
        self.finish(result)
    }

    fn load_all_inner(&mut self) -> Result<(Vec<Change>, u64), PgError> {
        self.resume = None;
        self.with_conn(|conn| {
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let max: i64 = tx.query_one(MAX_SEQ_SQL, &[])?.try_get(0)?;
            let max = u64::try_from(max)
                .map_err(|_| PgError::Data(format!("repl_changes holds a negative seq ({max})")))?;
            let mut apps = Vec::new();
            let mut skipped = 0u64;
            {
                let mut rows = tx.query_raw(APPS_SQL, std::iter::empty::<i32>())?;
                while let Some(row) = rows.next()? {
                    let id: Option<&str> = row.try_get(0)?;
                    let decoded = decode_app(
                        id.unwrap_or_default(),
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                    );
                    match decoded {
                        Ok(change) => apps.push(change),
                        Err(e) => {
                            skipped += 1;
                            tracing::warn!("repls row {id:?} left out: {e}");
                        }
                    }
                }
            }
            tx.commit()?;
            if skipped > 0 {
                tracing::warn!(skipped, "apps in repls left out: names that are not labels");
            }
            Ok((apps, max))
        })
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
        let (changes, resume) =
            self.with_conn(|conn| read_changes(conn, after, from, deadline, limit))?;
        self.resume = resume;
        Ok(changes)
    }

    fn oldest_inner(&mut self) -> Result<Option<u64>, PgError> {
        self.with_conn(|conn| {
            let oldest: Option<i64> = conn.client.query_one(OLDEST_SQL, &[])?.try_get(0)?;
            oldest
                .map(|s| {
                    u64::try_from(s).map_err(|_| {
                        PgError::Data(format!("repl_changes holds a negative seq ({s})"))
                    })
                })
                .transpose()
        })
    }

    /// Runs `f` on the open connection, or on a new one that LISTENs on the channel. The
    /// connection is kept only if `f` succeeds.
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = f(&mut conn);
        if result.is_ok() {
            self.conn = Some(conn);
        }
        result
    }

    fn connect(&self) -> Result<Conn, PgError> {
        let mut config = Config::from_str(&self.conninfo)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("clusterns");
        }
        let mut client = config.connect(NoTls)?;
        client.batch_execute(&format!("LISTEN \"{}\"", self.channel.replace('"', "\"\"")))?;
        let changes = client.prepare(CHANGES_SQL)?;
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
                    return Err(PgError::Backoff {
                        retry_in: left - max,
                        failures: self.failures,
                    });
                }
                _ => thread::sleep(left),
            }
        }
        self.retry_at = None;
        Ok(())
    }

    /// Records the outcome of a call: success resets the backoff; an error drops the
    /// connection and doubles the delay before the next attempt.
    fn finish<T>(&mut self, result: Result<T, PgError>) -> Result<T, PgError> {
        match &result {
            Ok(_) => {
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

/// After a poll whose last rows were bad (skipped): a call with `after == .0` goes on from `.1`.
type Resume = (u64, u64);

/// One poll on an open connection: the changes with seq > `from` (`after` is the caller's
/// position, `from` may be past it where bad rows were skipped), waiting for a notification
/// until `deadline` if there are none. Also returns the new resume point.
fn read_changes(
    conn: &mut Conn,
    after: u64,
    mut from: u64,
    deadline: Instant,
    limit: usize,
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
        let mut out = Vec::with_capacity(rows.len());
        let mut last_read = from;
        for row in &rows {
            let seq: i64 = row.try_get(0)?;
            let op: &str = row.try_get(1)?;
            let id: &str = row.try_get(2)?;
            match decode_row(
                seq,
                op,
                id,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
            ) {
                Ok(change) => out.push(change),
                Err(e) => tracing::warn!("change skipped: {e}"),
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
        if rows.len() == limit {
            // A whole batch of bad rows: there may be good ones right behind it.
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok((out, resume));
        }
        // Wakes on the first notification, at the deadline, or at once if the connection has
        // closed (the read that follows then fails). Reads once more in every case.
        conn.client
            .notifications()
            .timeout_iter(deadline - now)
            .next()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Label {
        check_label(s).unwrap()
    }

    #[test]
    fn decodes_set_and_lowercases() {
        let s = decode_row(
            7,
            "set",
            "R-One",
            Some("Mark"),
            Some("Cool_Game"),
            Some("EAST"),
        )
        .unwrap();
        assert_eq!(
            s,
            Sequenced {
                seq: 7,
                change: Change::Upsert {
                    id: l("r-one"),
                    user: l("mark"),
                    slug: l("cool_game"),
                    cluster: l("east"),
                },
            }
        );
        assert_eq!(s.to_string(), "7 set r-one mark cool_game east");
    }

    #[test]
    fn decodes_delete_ignoring_the_rest() {
        let s = decode_row(9, "delete", "r-one", None, None, None).unwrap();
        assert_eq!(
            s,
            Sequenced {
                seq: 9,
                change: Change::Delete { id: l("r-one") },
            }
        );
        // The trigger records the last values of a deleted app; they are not used, not even
        // validated.
        let s = decode_row(10, "delete", "r-two", Some("a b"), Some(""), Some("x")).unwrap();
        assert_eq!(s.change, Change::Delete { id: l("r-two") });
    }

    #[test]
    fn rejects_bad_rows_with_a_clear_message() {
        type Case<'a> = (
            i64,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case] = &[
            (0, "set", "r", Some("u"), Some("s"), Some("c"), "start at 1"),
            (-3, "delete", "r", None, None, None, "start at 1"),
            (
                5,
                "upsert",
                "r",
                Some("u"),
                Some("s"),
                Some("c"),
                "unknown op \"upsert\"",
            ),
            (
                5,
                "set",
                "r",
                None,
                Some("s"),
                Some("c"),
                "user_name is NULL",
            ),
            (5, "set", "r", Some("u"), None, Some("c"), "slug is NULL"),
            (5, "set", "r", Some("u"), Some("s"), None, "cluster is NULL"),
            (
                5,
                "set",
                "r.x",
                Some("u"),
                Some("s"),
                Some("c"),
                "id: label \"r.x\"",
            ),
            (
                5,
                "set",
                "r",
                Some("a b"),
                Some("s"),
                Some("c"),
                "user_name: label",
            ),
            (
                5,
                "set",
                "r",
                Some("u"),
                Some(""),
                Some("c"),
                "slug: empty label",
            ),
            (5, "delete", "", None, None, None, "id: empty label"),
        ];
        for &(seq, op, id, user, slug, cluster, expected) in cases {
            let err = decode_row(seq, op, id, user, slug, cluster).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
            if seq > 0 {
                assert!(
                    err.starts_with(&format!("repl_changes seq {seq} ")),
                    "{err:?} should name the row"
                );
            }
        }
        let long = "a".repeat(64);
        let err = decode_row(1, "set", "r", Some("u"), Some(&long), Some("c")).unwrap_err();
        assert!(err.contains("longer than 63 bytes"), "{err}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut src = PgSource::new("host=127.0.0.1 port=1");
        let mut delays = Vec::new();
        for _ in 0..10 {
            let before = Instant::now();
            let _ = src.finish::<()>(Err(PgError::Data("x".into())));
            delays.push(src.retry_at.unwrap() - before);
        }
        assert!(delays[0] >= BACKOFF_MIN && delays[0] < BACKOFF_MIN * 2);
        assert!(delays[1] >= BACKOFF_MIN * 2 && delays[1] < BACKOFF_MIN * 3);
        assert!(delays[9] <= BACKOFF_MAX + Duration::from_millis(1));
        assert!(delays[9] >= BACKOFF_MAX);
        // In backoff, poll gives up within its wait without connecting.
        let start = Instant::now();
        let err = src.poll(0, Duration::from_millis(20), 10).unwrap_err();
        assert!(
            matches!(err, PgError::Backoff { failures: 10, .. }),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(err.to_string().contains("next attempt in"), "{err}");
        let _ = src.finish(Ok(()));
        assert_eq!(src.failures, 0);
        assert!(src.retry_at.is_none());
    }

    #[test]
    fn connection_errors_are_returned_not_panicked() {
        let mut src = PgSource::new("host=127.0.0.1 port=1 user=x connect_timeout=2");
        let err = src.poll(0, Duration::ZERO, 10).unwrap_err();
        assert!(matches!(err, PgError::Db(_)), "{err}");
        assert!(!src.is_connected());
        // An endless wait is not an overflow; it sleeps out the backoff (50 ms) and tries.
        let err = src.poll(0, Duration::MAX, 10).unwrap_err();
        assert!(matches!(err, PgError::Db(_)), "{err}");
        let mut bad = PgSource::new("this is not = a conninfo = string");
        assert!(bad.oldest_seq().is_err());
    }

    #[test]
    fn schema_is_embedded() {
        assert!(SCHEMA.contains("CREATE TABLE IF NOT EXISTS repls"));
        assert!(SCHEMA.contains(CHANNEL));
    }
}
