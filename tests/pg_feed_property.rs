//! A seeded randomized test of the whole PostgreSQL feed: a private PostgreSQL server, random
//! writes to `repls` (creates, moves, renames, new ids, deletes, swaps of names, transactions
//! that roll back, and writes the schema must refuse: name clashes, mixed case,
//! `_acme-challenge`), prunes of `repl_changes` (below and past the builder's position, in the
//! middle, TRUNCATE), and a clusterns `Builder` that is paused (does not poll while the writes
//! happen), checkpointed, folded, dropped and loaded again with and without its checkpoint.
//! After every step the builder polls until it has caught up, and its table must be the
//! `repls` table exactly (id -> user, slug, cluster).
//!
//! Needs `CLUSTERNS_TEST_PG=<PostgreSQL bin dir>` (else it prints a note and passes). The seed
//! is random and printed; `CLUSTERNS_PROP_SEED=<seed>` replays one. About 20 s at most.
//!
//! When its source reports `PgError::Gap` (changes it had not read were pruned), the builder
//! reloads the whole table; the steps with such prunes check that.

mod pg;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterns::config::Config;
use clusterns::feed::postgres::apply_schema;
use clusterns::feed::Builder;

/// At most this many random operations (writes, prunes and builder actions).
const MAX_OPS: usize = 400;
/// Stop drawing operations after this long (the server's start-up not counted).
const TIME_BUDGET: Duration = Duration::from_secs(15);
/// How long the builder may take to catch up after a step.
const CATCH_UP: Duration = Duration::from_secs(3);

/// The clusters of the config (the table's cluster numbers are indexes into this list there).
const CLUSTERS: [&str; 3] = ["east", "west", "ap-south"];

/// A plain xorshift64 generator: the same seed gives the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a str {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Ids, users, slugs and clusters to draw from: few enough names (5 users x 6 slugs) for 34
/// ids that names clash often. Some ids are UUIDs (stored as 16 bytes in the table).
struct Names {
    ids: Vec<String>,
    users: Vec<String>,
    slugs: Vec<String>,
    clusters: Vec<String>,
}

impl Names {
    fn new() -> Names {
        let mut ids: Vec<String> = (0..30).map(|i| format!("a{i}")).collect();
        for i in 0..4 {
            ids.push(format!("3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b{i:02}"));
        }
        Names {
            ids,
            users: (0..5).map(|i| format!("u{i}")).collect(),
            slugs: (0..6).map(|i| format!("s{i}")).collect(),
            // And one the config lacks: the table keeps its apps like any other.
            clusters: CLUSTERS
                .iter()
                .chain(&["north"])
                .map(|c| c.to_string())
                .collect(),
        }
    }
}

fn config_text(conninfo: &str, checkpoint: bool) -> String {
    let checkpoint = if checkpoint {
        "checkpoint = \"table.ckpt\""
    } else {
        ""
    };
    let mut clusters = String::new();
    for (i, name) in CLUSTERS.iter().enumerate() {
        writeln!(
            clusters,
            "[[cluster]]\nname = \"{name}\"\nipv4 = [\"203.0.113.{}\"]\n",
            i + 1
        )
        .unwrap();
    }
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
threads = 1

[feed]
source = "postgres"
postgres = "{conninfo} connect_timeout=5"
{checkpoint}

[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co"]
soa = {{ rname = "hostmaster.repl.co" }}
[[zone.host]]
name = "ns1"
a = ["192.0.2.53"]

{clusters}"#
    )
}

fn config(dir: &Path, conninfo: &str, checkpoint: bool) -> Arc<Config> {
    let path = dir.join("clusterns.toml");
    let text = config_text(conninfo, checkpoint);
    Arc::new(Config::parse(&path, &text).unwrap_or_else(|e| panic!("config: {e}\n{text}")))
}

type Apps = BTreeMap<String, (String, String, String)>;

/// The builder's table as id -> (user, slug, cluster name). The only place that turns the
/// table's cluster numbers into names: they index the table's cluster registry.
fn builder_apps(builder: &Builder) -> Apps {
    let table = builder.table();
    let names = table.clusters().names();
    table
        .apps()
        .into_iter()
        .map(|(id, user, slug, c)| {
            let cluster = names
                .get(usize::from(c))
                .map_or_else(|| format!("#{c}?"), |n| n.as_str().to_string());
            (id, (user, slug, cluster))
        })
        .collect()
}

fn db_apps(db: &mut postgres::Client) -> Apps {
    db.query("SELECT id, user_name, slug, cluster FROM repls", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

/// The position a reader that has everything is at: the last seq logged, or pruned.
fn db_position(db: &mut postgres::Client) -> u64 {
    let v: i64 = db
        .query_one(
            "SELECT greatest(coalesce(max(seq), 0), \
                    (SELECT pruned_upto FROM repl_changes_pruned)) FROM repl_changes",
            &[],
        )
        .unwrap()
        .get(0);
    v as u64
}

fn log_bounds(db: &mut postgres::Client) -> (u64, u64) {
    let r = db
        .query_one(
            "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM repl_changes",
            &[],
        )
        .unwrap();
    (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)
}

/// The outcome of a write the database may refuse: which SQLSTATE refused it.
fn outcome(result: Result<(), postgres::Error>) -> Result<(), String> {
    result.map_err(|e| {
        e.code()
            .map_or_else(|| format!("{e:?}"), |c| c.code().to_string())
    })
}

/// A write that may be refused for a name clash or a taken id (23505), nothing else.
fn may_clash(what: &str, result: Result<(), postgres::Error>) -> String {
    match outcome(result) {
        Ok(()) => what.to_string(),
        Err(code) if code == "23505" => format!("{what} (refused: taken)"),
        Err(other) => panic!("{what}: unexpected error {other}"),
    }
}

/// One random write to `repls` (or a transaction of several). Returns what it did.
fn random_write(rng: &mut Rng, names: &Names, db: &mut postgres::Client) -> String {
    let id = rng.pick(&names.ids).to_string();
    let user = rng.pick(&names.users).to_string();
    let slug = rng.pick(&names.slugs).to_string();
    let cluster = rng.pick(&names.clusters).to_string();
    match rng.below(100) {
        0..=29 => may_clash(
            &format!("insert {id} {user} {slug} {cluster}"),
            db.execute(
                "INSERT INTO repls VALUES ($1, $2, $3, $4)",
                &[&id, &user, &slug, &cluster],
            )
            .map(drop),
        ),
        30..=49 => may_clash(
            &format!("move {id} to {cluster}"),
            db.execute(
                "UPDATE repls SET cluster = $2 WHERE id = $1",
                &[&id, &cluster],
            )
            .map(drop),
        ),
        50..=59 => may_clash(
            &format!("rename {id} to {slug}.{user}"),
            db.execute(
                "UPDATE repls SET user_name = $2, slug = $3 WHERE id = $1",
                &[&id, &user, &slug],
            )
            .map(drop),
        ),
        60..=64 => {
            let to = rng.pick(&names.ids).to_string();
            may_clash(
                &format!("new id {id} -> {to}"),
                db.execute("UPDATE repls SET id = $2 WHERE id = $1", &[&id, &to])
                    .map(drop),
            )
        }
        65..=79 => {
            db.execute("DELETE FROM repls WHERE id = $1", &[&id])
                .unwrap();
            format!("delete {id}")
        }
        80..=83 => {
            // Many apps at once, in one statement.
            let prefix = format!("a{}", rng.below(3) + 1);
            db.execute(
                "UPDATE repls SET cluster = $2 WHERE id LIKE $1 || '%'",
                &[&prefix, &cluster],
            )
            .unwrap();
            format!("move {prefix}* to {cluster}")
        }
        84..=87 => {
            // Two apps swap their names in one transaction, through a free name.
            let other = rng.pick(&names.ids).to_string();
            let mut tx = db.transaction().unwrap();
            let rows = tx
                .query(
                    "SELECT id, user_name, slug FROM repls WHERE id IN ($1, $2) ORDER BY id",
                    &[&id, &other],
                )
                .unwrap();
            if rows.len() != 2 {
                return format!("swap {id} {other} (not both there)");
            }
            let (a, b): (String, String) = (rows[0].get(0), rows[1].get(0));
            let (ua, sa): (String, String) = (rows[0].get(1), rows[0].get(2));
            let (ub, sb): (String, String) = (rows[1].get(1), rows[1].get(2));
            let rename = "UPDATE repls SET user_name = $2, slug = $3 WHERE id = $1";
            tx.execute(rename, &[&a, &"swap-tmp", &"swap-tmp"]).unwrap();
            tx.execute(rename, &[&b, &ua, &sa]).unwrap();
            tx.execute(rename, &[&a, &ub, &sb]).unwrap();
            tx.commit().unwrap();
            format!("swap names of {a} and {b}")
        }
        88..=92 => {
            // Several changes that roll back: their seq numbers are used up, never seen.
            let mut tx = db.transaction().unwrap();
            let n = rng.below(3) + 1;
            for i in 0..n {
                let _ = tx.execute(
                    "INSERT INTO repls VALUES ($1, 'rolled', $2, 'east')",
                    &[&format!("rb{i}"), &format!("rb{i}")],
                );
            }
            let _ = tx.execute("UPDATE repls SET cluster = 'west' WHERE id = $1", &[&id]);
            tx.rollback().unwrap();
            format!("{n} inserts and a move of {id}, rolled back")
        }
        _ => {
            // Writes the schema refuses: names that are not lower-case labels, or reserved.
            const INSERT: &str = "INSERT INTO repls VALUES ($1, $2, $3, $4)";
            let (what, statement, params): (&str, &str, Vec<String>) = match rng.below(6) {
                0 => (
                    "insert with a mixed-case id",
                    INSERT,
                    vec![id.to_ascii_uppercase(), user, slug, cluster],
                ),
                1 => (
                    "insert with a mixed-case user",
                    INSERT,
                    vec![format!("x{id}"), format!("U{user}"), slug, cluster],
                ),
                2 => (
                    "insert with a reserved slug",
                    INSERT,
                    vec![format!("x{id}"), user, "_acme-challenge".into(), cluster],
                ),
                3 => (
                    "insert with a reserved id",
                    INSERT,
                    vec!["_acme-challenge".into(), user, format!("x{slug}"), cluster],
                ),
                4 => (
                    "move to a mixed-case cluster",
                    "UPDATE repls SET cluster = $2 WHERE id = $1",
                    vec![id, cluster.to_ascii_uppercase()],
                ),
                _ => (
                    "rename to a mixed-case slug",
                    "UPDATE repls SET slug = $2 WHERE id = $1",
                    vec![id, format!("S{slug}")],
                ),
            };
            let sql_params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                .collect();
            match outcome(db.execute(statement, &sql_params).map(drop)) {
                // An update that matched no row checks nothing.
                Ok(()) if statement.starts_with("UPDATE") => {
                    let n: i64 = db
                        .query_one("SELECT count(*) FROM repls WHERE id = $1", &[&params[0]])
                        .unwrap()
                        .get(0);
                    assert_eq!(n, 0, "{what} {params:?}: the schema took it");
                    format!("{what} {params:?} (no such app)")
                }
                Ok(()) => panic!("{what} {params:?}: the schema took it"),
                Err(code) if code == "23514" => format!("{what} {params:?} (refused: check)"),
                Err(code) if code == "23505" => format!("{what} {params:?} (refused: taken)"),
                Err(other) => panic!("{what} {params:?}: unexpected error {other}"),
            }
        }
    }
}

/// Prunes the log: below or past the builder's position, a range in the middle, everything.
fn random_prune(rng: &mut Rng, db: &mut postgres::Client, builder_at: u64) -> String {
    let (min, max) = log_bounds(db);
    if max == 0 {
        return "prune (log empty)".into();
    }
    match rng.below(10) {
        0..=3 => {
            // Up to somewhere the builder has read.
            let upto = min.max(1) - 1 + rng.below(builder_at.saturating_sub(min) + 2);
            db.execute(
                "DELETE FROM repl_changes WHERE seq <= $1",
                &[&(upto as i64)],
            )
            .unwrap();
            format!("prune to {upto} (builder at {builder_at})")
        }
        4..=6 => {
            let upto = min + rng.below(max - min + 1);
            db.execute(
                "DELETE FROM repl_changes WHERE seq <= $1",
                &[&(upto as i64)],
            )
            .unwrap();
            format!("prune to {upto} (builder at {builder_at}, log {min}..={max})")
        }
        7 | 8 => {
            let from = min + rng.below(max - min + 1);
            let to = from + rng.below(4);
            db.execute(
                "DELETE FROM repl_changes WHERE seq BETWEEN $1 AND $2",
                &[&(from as i64), &(to as i64)],
            )
            .unwrap();
            format!("prune {from}..={to} (builder at {builder_at})")
        }
        _ => {
            db.batch_execute("TRUNCATE repl_changes").unwrap();
            format!("truncate the log (builder at {builder_at}, log {min}..={max})")
        }
    }
}

/// Polls until the builder has everything the database has logged (or pruned).
fn catch_up(builder: &mut Builder, db: &mut postgres::Client, context: &dyn Fn() -> String) {
    let target = db_position(db);
    let deadline = Instant::now() + CATCH_UP;
    loop {
        builder
            .poll_once(Duration::ZERO)
            .unwrap_or_else(|e| panic!("poll_once: {e}\n{}", context()));
        if builder.last_seq() >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the builder is stuck at seq {} of {target}\n{}",
            builder.last_seq(),
            context()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_builder_follows_postgres_through_random_writes_prunes_and_restarts() {
    let Some(server) = pg::PgServer::start_new() else {
        eprintln!("{}", pg::SKIP);
        return;
    };
    let seed = std::env::var("CLUSTERNS_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("pg_feed_property: seed {seed} (replay: CLUSTERNS_PROP_SEED={seed})");
    let mut rng = Rng(seed);
    let names = Names::new();
    let mut db = server.client();
    apply_schema(&mut db).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conninfo = server.conninfo();
    let with_ckpt = config(dir.path(), &conninfo, true);
    let without = config(dir.path(), &conninfo, false);
    let ckpt_path = dir.path().join("table.ckpt");

    // Some apps to begin with, before the builder's first load.
    for _ in 0..20 {
        random_write(&mut rng, &names, &mut db);
    }
    let mut builder = Builder::load(with_ckpt.clone()).unwrap();
    builder.set_fold_min(8);

    let started = Instant::now();
    let mut history: Vec<String> = Vec::new();
    let mut ops = 0;
    let mut steps = 0;
    let mut gaps_made = 0;
    while ops < MAX_OPS && started.elapsed() < TIME_BUDGET {
        steps += 1;
        // The builder is paused (does not poll) for a few operations.
        let longest = if rng.chance(20) { 40 } else { 6 };
        let paused_for = 1 + rng.below(longest);
        for _ in 0..paused_for {
            ops += 1;
            let done = if rng.chance(12) {
                let position = db_position(&mut db);
                let done = random_prune(&mut rng, &mut db, builder.last_seq());
                let pruned: i64 = db
                    .query_one("SELECT pruned_upto FROM repl_changes_pruned", &[])
                    .unwrap()
                    .get(0);
                if pruned as u64 > builder.last_seq() && position > builder.last_seq() {
                    gaps_made += 1;
                }
                done
            } else {
                random_write(&mut rng, &names, &mut db)
            };
            history.push(format!("{ops}: {done} [log at {}]", db_position(&mut db)));
        }
        // Then something happens to the builder.
        let action = match rng.below(100) {
            0..=49 => "poll".to_string(),
            50..=59 => {
                builder.maintain();
                builder.finish_fold();
                "fold".to_string()
            }
            60..=74 => {
                builder.checkpoint_now();
                format!("checkpoint at {}", builder.last_seq())
            }
            75..=89 => {
                drop(builder);
                let had = ckpt_path.exists();
                builder = Builder::load(with_ckpt.clone())
                    .unwrap_or_else(|e| panic!("load (seed {seed}): {e}"));
                builder.set_fold_min(8);
                format!("restart from the checkpoint (there: {had})")
            }
            _ => {
                drop(builder);
                builder = Builder::load(without.clone())
                    .unwrap_or_else(|e| panic!("load (seed {seed}): {e}"));
                builder.set_fold_min(8);
                "restart without a checkpoint".to_string()
            }
        };
        history.push(format!("step {steps}: {action}"));
        let context = || {
            let tail = history.len().saturating_sub(40);
            format!(
                "seed {seed} (replay: CLUSTERNS_PROP_SEED={seed}), step {steps}, last operations:\n  {}",
                history[tail..].join("\n  ")
            )
        };
        catch_up(&mut builder, &mut db, &context);
        let want = db_apps(&mut db);
        let got = builder_apps(&builder);
        if got != want {
            let mut diff = String::new();
            for (id, w) in &want {
                match got.get(id) {
                    Some(g) if g == w => {}
                    g => writeln!(diff, "  {id}: database {w:?}, builder {g:?}").unwrap(),
                }
            }
            for (id, g) in &got {
                if !want.contains_key(id) {
                    writeln!(diff, "  {id}: database None, builder {g:?}").unwrap();
                }
            }
            panic!(
                "the builder's table differs from repls (builder at seq {}):\n{diff}{}",
                builder.last_seq(),
                context()
            );
        }
    }
    eprintln!(
        "pg_feed_property: seed {seed}: {ops} operations in {steps} steps, {gaps_made} prunes \
         past the builder, {} apps at the end, {:?}",
        builder.table().len(),
        started.elapsed()
    );
}
