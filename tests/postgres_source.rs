//! The PostgreSQL change feed against a real, private PostgreSQL server (see `tests/pg`).
//!
//! Needs `CLUSTERNS_TEST_PG=<PostgreSQL bin dir>` (Debian: `/usr/lib/postgresql/15/bin`);
//! without it every test prints a note and passes.

mod pg;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use clusterns::feed::change::{ChangeTarget, UpsertRef};
use clusterns::feed::postgres::{apply_schema, decode_row, PgError, PgSource};
use clusterns::feed::{Change, Sequenced};
use clusterns::name::{check_label, Label};

/// Starts a private server with the schema applied, or skips the test.
macro_rules! server_or_skip {
    () => {
        match pg::PgServer::start_new() {
            Some(server) => {
                let mut client = server.client();
                apply_schema(&mut client).expect("apply the schema");
                (server, client)
            }
            None => {
                eprintln!("{}", pg::SKIP);
                return;
            }
        }
    };
}

fn set(seq: u64, id: &str, user: &str, slug: &str, cluster: &str) -> Sequenced {
    Sequenced {
        seq,
        change: upsert(id, user, slug, cluster),
    }
}

fn upsert(id: &str, user: &str, slug: &str, cluster: &str) -> Change {
    Change::Upsert {
        id: check_label(id).unwrap(),
        user: check_label(user).unwrap(),
        slug: check_label(slug).unwrap(),
        cluster: check_label(cluster).unwrap(),
    }
}

fn del(seq: u64, id: &str) -> Sequenced {
    Sequenced {
        seq,
        change: Change::Delete {
            id: check_label(id).unwrap(),
        },
    }
}

fn id_of(change: &Change) -> String {
    match change {
        Change::Upsert { id, .. } | Change::Delete { id } => id.to_string(),
        Change::TxtAdd { name, .. } | Change::TxtDelete { name, .. } => name.to_string(),
        Change::Health(r) => r.checker.to_string(),
    }
}

/// The whole log as the feed decodes it (bad rows left out).
fn log_in_db(client: &mut postgres::Client) -> Vec<Sequenced> {
    client
        .query(
            "SELECT seq, op, id, user_name, slug, cluster FROM repl_changes ORDER BY seq",
            &[],
        )
        .unwrap()
        .iter()
        .filter_map(|r| decode_row(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)).ok())
        .collect()
}

fn max_seq(client: &mut postgres::Client) -> u64 {
    let max: i64 = client
        .query_one(
            "SELECT coalesce(max(seq), 0)::bigint FROM repl_changes",
            &[],
        )
        .unwrap()
        .get(0);
    max as u64
}

#[test]
fn load_all_and_poll_follow_the_table() {
    let (_server, mut db) = server_or_skip!();
    // The schema can be applied again (every deploy does).
    apply_schema(&mut db).expect("apply the schema a second time");

    let mut src = PgSource::new(&_server.conninfo());
    assert_eq!(src.load_all().unwrap(), (vec![], 0));
    assert_eq!(src.pruned_upto().unwrap(), 0);
    assert_eq!(src.poll(0, Duration::ZERO, 100).unwrap(), vec![]);

    db.batch_execute(
        "INSERT INTO repls VALUES ('r1', 'mark', 'coolgame', 'east'), \
                                  ('r2', 'mark', 'notes', 'west'), \
                                  ('r3', 'ann', 'site', 'east');
         UPDATE repls SET slug = 'coolgame2' WHERE id = 'r1';          -- rename
         UPDATE repls SET cluster = 'ap-south' WHERE id = 'r2';        -- move
         DELETE FROM repls WHERE id = 'r3';
         UPDATE repls SET id = 'r2b' WHERE id = 'r2';                  -- new id
         UPDATE repls SET slug = slug, cluster = cluster;              -- changes nothing
         INSERT INTO repls VALUES ('r4', 'bob', 'site', 'east');",
    )
    .unwrap();
    let expected = vec![
        set(1, "r1", "mark", "coolgame", "east"),
        set(2, "r2", "mark", "notes", "west"),
        set(3, "r3", "ann", "site", "east"),
        set(4, "r1", "mark", "coolgame2", "east"),
        set(5, "r2", "mark", "notes", "ap-south"),
        del(6, "r3"),
        del(7, "r2"),
        set(8, "r2b", "mark", "notes", "ap-south"),
        set(9, "r4", "bob", "site", "east"),
    ];
    assert_eq!(src.poll(0, Duration::ZERO, 100).unwrap(), expected);
    assert_eq!(src.poll(0, Duration::ZERO, 4).unwrap(), expected[..4]);
    assert_eq!(src.poll(4, Duration::ZERO, 100).unwrap(), expected[4..]);
    assert_eq!(src.poll(9, Duration::ZERO, 100).unwrap(), vec![]);

    let (mut apps, seq) = src.load_all().unwrap();
    apps.sort_by_key(id_of);
    assert_eq!(seq, 9);
    assert_eq!(
        apps,
        vec![
            upsert("r1", "mark", "coolgame2", "east"),
            upsert("r2b", "mark", "notes", "ap-south"),
            upsert("r4", "bob", "site", "east"),
        ]
    );
    assert_eq!(src.take_rejected(), 0);

    // Pruning: a reader at 4 or later misses nothing; one before it has lost changes.
    db.batch_execute("DELETE FROM repl_changes WHERE seq < 5")
        .unwrap();
    assert_eq!(src.pruned_upto().unwrap(), 4);
    assert_eq!(src.poll(4, Duration::ZERO, 100).unwrap(), expected[4..]);
    assert_gap(src.poll(0, Duration::ZERO, 100), 0, 4);
    assert_gap(src.poll(3, Duration::ZERO, 100), 3, 4);
    assert!(src.is_connected(), "a gap is an answer, not a failure");
    assert_eq!(src.poll(4, Duration::ZERO, 100).unwrap(), expected[4..]);

    // A row clusterns cannot use is skipped (and logged, and counted), never fatal; it is not
    // read again. (The schema refuses such rows now; a table from before it may hold them.)
    db.batch_execute(
        "ALTER TABLE repls DROP CONSTRAINT repls_user_name_label;
         INSERT INTO repls VALUES ('bad', 'no spaces allowed', 's', 'east')",
    )
    .unwrap();
    let start = Instant::now();
    assert_eq!(
        src.poll(9, Duration::from_millis(200), 100).unwrap(),
        vec![]
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(src.take_rejected(), 1);
    db.batch_execute("INSERT INTO repls VALUES ('r5', 'cy', 'x', 'west')")
        .unwrap();
    assert_eq!(
        src.poll(9, Duration::ZERO, 100).unwrap(),
        vec![set(11, "r5", "cy", "x", "west")]
    );
    assert_eq!(src.take_rejected(), 0, "the bad row was not read again");
    // A batch made only of bad rows does not end the read.
    assert_eq!(
        src.poll(9, Duration::ZERO, 1).unwrap(),
        vec![set(11, "r5", "cy", "x", "west")]
    );
    assert_eq!(src.take_rejected(), 1);
    // Pruning a bad row that the reader skipped is no gap for it.
    db.batch_execute("INSERT INTO repls VALUES ('bad2', 'x y', 's', 'east')")
        .unwrap();
    assert_eq!(src.poll(11, Duration::ZERO, 100).unwrap(), vec![]);
    assert_eq!(src.take_rejected(), 1);
    db.batch_execute("DELETE FROM repl_changes WHERE seq = 12")
        .unwrap();
    assert_eq!(src.poll(11, Duration::ZERO, 100).unwrap(), vec![]);
    // A reader that had not read it has a gap.
    assert_gap(
        PgSource::new(&_server.conninfo()).poll(11, Duration::ZERO, 100),
        11,
        12,
    );
    // The log ends at 11 now, but the read reflects the pruned change 12.
    let (apps, seq) = src.load_all().unwrap();
    assert_eq!(seq, 12);
    assert_eq!(apps.len(), 4, "the bad apps are left out: {apps:?}");
    assert_eq!(src.take_rejected(), 2);

    // TRUNCATE bypasses row triggers; the schema logs a delete for every app (ordered by id
    // as stored, in the C collation of this test cluster).
    db.batch_execute("TRUNCATE repls").unwrap();
    assert_eq!(
        src.poll(12, Duration::ZERO, 100).unwrap(),
        vec![
            del(13, "bad"),
            del(14, "bad2"),
            del(15, "r1"),
            del(16, "r2b"),
            del(17, "r4"),
            del(18, "r5")
        ]
    );
    assert_eq!(src.take_rejected(), 0);
    assert_eq!(src.load_all().unwrap(), (vec![], 18));
}

/// Asserts that a poll found the gap (after, pruned_upto).
fn assert_gap(got: Result<Vec<Sequenced>, PgError>, after: u64, pruned_upto: u64) {
    match got {
        Err(PgError::Gap {
            after: a,
            pruned_upto: p,
        }) => assert_eq!((a, p), (after, pruned_upto)),
        other => panic!("expected a gap after {after} up to {pruned_upto}, got {other:?}"),
    }
}

#[test]
fn a_notify_wakes_a_waiting_poll() {
    let (server, mut db) = server_or_skip!();
    let mut src = PgSource::new(&server.conninfo());

    // Nothing to read: poll waits its whole wait, then returns nothing.
    let start = Instant::now();
    assert_eq!(src.poll(0, Duration::from_millis(300), 10).unwrap(), vec![]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    for round in 0..3u64 {
        let poller = thread::spawn(move || {
            let start = Instant::now();
            let got = src.poll(round, Duration::from_secs(20), 10);
            (src, got, start.elapsed())
        });
        thread::sleep(Duration::from_millis(300));
        let written = Instant::now();
        db.execute(
            "INSERT INTO repls VALUES ($1, 'u', $1, 'east')",
            &[&format!("app{round}")],
        )
        .unwrap();
        let (back, got, waited) = poller.join().unwrap();
        src = back;
        let id = format!("app{round}");
        assert_eq!(got.unwrap(), vec![set(round + 1, &id, "u", &id, "east")]);
        assert!(
            waited < Duration::from_secs(5),
            "poll took {waited:?} of its 20 s wait"
        );
        eprintln!(
            "round {round}: woken {:?} after the commit",
            written.elapsed()
        );
    }
}

#[test]
fn seq_order_is_commit_order() {
    let (server, _db) = server_or_skip!();
    let mut src = PgSource::new(&server.conninfo());

    // Writer A changes an app and holds its transaction open: writer B must wait for it, so B,
    // which commits later, cannot get a smaller seq than A.
    let mut a = server.client();
    let mut tx = a.transaction().unwrap();
    tx.execute("INSERT INTO repls VALUES ('a', 'u', 'a', 'east')", &[])
        .unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let conninfo = server.conninfo();
    let b = thread::spawn(move || {
        let mut b = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
        b.execute("INSERT INTO repls VALUES ('b', 'u', 'b', 'east')", &[])
            .unwrap();
        done_tx.send(()).unwrap();
    });
    assert!(
        done_rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "writer B committed while A held the change lock"
    );
    assert_eq!(src.poll(0, Duration::ZERO, 10).unwrap(), vec![]);
    tx.commit().unwrap();
    done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    b.join().unwrap();
    assert_eq!(
        src.poll(0, Duration::ZERO, 10).unwrap(),
        vec![set(1, "a", "u", "a", "east"), set(2, "b", "u", "b", "east")]
    );
}

#[test]
fn concurrent_writers_reach_a_poller_completely_and_in_order() {
    const WRITERS: usize = 4;
    const EACH: usize = 200;
    let (server, mut db) = server_or_skip!();
    let conninfo = server.conninfo();

    // The poller reads until it reaches the last seq written (known once the writers are
    // done): a change it skipped would show as a short count, not as a hang.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let poller = {
        let conninfo = conninfo.clone();
        let target = target.clone();
        thread::spawn(move || {
            let mut src = PgSource::new(&conninfo);
            let mut last = 0;
            let mut got = Vec::new();
            let end = Instant::now() + Duration::from_secs(120);
            while last < target.load(Ordering::SeqCst) && Instant::now() < end {
                for s in src.poll(last, Duration::from_millis(200), 37).unwrap() {
                    assert!(s.seq > last, "seq {} after {last}", s.seq);
                    last = s.seq;
                    got.push(s);
                }
            }
            got
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let conninfo = conninfo.clone();
            thread::spawn(move || {
                let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
                for i in 0..EACH {
                    let id = format!("w{w}-{i}");
                    let mut tx = c.transaction().unwrap();
                    tx.execute(
                        "INSERT INTO repls VALUES ($1, $2, $3, 'east')",
                        &[&id, &format!("user{w}"), &format!("app{i}")],
                    )
                    .unwrap();
                    if i % 25 == 0 {
                        // Commit late: without the change lock this is where a smaller seq
                        // would become visible after a larger one.
                        thread::sleep(Duration::from_millis(3));
                    }
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    target.store(max_seq(&mut db), Ordering::SeqCst);
    let got = poller.join().unwrap();

    assert_eq!(got.len(), WRITERS * EACH, "the poller missed changes");
    for (i, s) in got.iter().enumerate() {
        assert_eq!(s.seq, i as u64 + 1, "gap or reordering at {i}");
    }
    let ids: HashSet<String> = got.iter().map(|s| id_of(&s.change)).collect();
    assert_eq!(ids.len(), WRITERS * EACH);
    assert_eq!(got, log_in_db(&mut db));
}

#[test]
fn every_change_arrives_exactly_once_across_a_database_outage() {
    let (mut server, mut db) = server_or_skip!();
    let conninfo = server.conninfo();

    enum Event {
        Changes(Vec<Sequenced>),
        Error(String),
    }
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let (events_tx, events) = mpsc::channel();
    let poller = {
        let target = target.clone();
        thread::spawn(move || {
            let mut src = PgSource::new(&conninfo);
            let mut last = 0;
            let give_up = Instant::now() + Duration::from_secs(120);
            while last < target.load(Ordering::SeqCst) && Instant::now() < give_up {
                // A long wait: after the restart, only a NOTIFY (on a re-LISTENed connection)
                // brings the new changes in time.
                match src.poll(last, Duration::from_secs(30), 7) {
                    Ok(batch) => {
                        if let Some(s) = batch.last() {
                            last = s.seq;
                        }
                        events_tx.send(Event::Changes(batch)).unwrap();
                        // Some work per batch, as the builder does: the reader lags the writer.
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        assert!(!matches!(e, PgError::Data(_)), "{e}");
                        events_tx.send(Event::Error(e.to_string())).unwrap();
                    }
                }
            }
            last
        })
    };
    let mut received: Vec<Sequenced> = Vec::new();
    let mut errors = Vec::new();
    let drain = |timeout: Duration, received: &mut Vec<Sequenced>, errors: &mut Vec<String>| {
        while let Ok(event) = events.recv_timeout(timeout) {
            match event {
                Event::Changes(batch) => received.extend(batch),
                Event::Error(e) => errors.push(e),
            }
            if timeout.is_zero() {
                continue;
            }
            return;
        }
    };

    // Phase 1: many changes at once, then the database goes away while the poller is busy.
    db.batch_execute(
        "INSERT INTO repls SELECT 'p1-' || i, 'user', 'app' || i, 'east'
         FROM generate_series(1, 300) AS i",
    )
    .unwrap();
    db.batch_execute("UPDATE repls SET cluster = 'west' WHERE id LIKE 'p1-1%'")
        .unwrap();
    let phase1_end = max_seq(&mut db);
    drop(db);
    server.stop();
    drain(Duration::ZERO, &mut received, &mut errors);
    eprintln!(
        "database stopped after the poller had {} of {phase1_end} changes",
        received.last().map_or(0, |s| s.seq)
    );
    let end = Instant::now() + Duration::from_secs(20);
    while errors.is_empty() && Instant::now() < end {
        drain(Duration::from_millis(100), &mut received, &mut errors);
    }
    assert!(!errors.is_empty(), "poll did not report the outage");
    thread::sleep(Duration::from_millis(700));
    drain(Duration::ZERO, &mut received, &mut errors);
    eprintln!("errors while down: {errors:#?}");

    // Back up: the poller reconnects (after its backoff) and catches up.
    server.start();
    let mut db = server.client();
    let caught_up = pg::wait_until(Duration::from_secs(30), || {
        drain(Duration::ZERO, &mut received, &mut errors);
        received.last().map_or(0, |s| s.seq) >= phase1_end
    });
    assert!(caught_up, "the poller did not catch up after the restart");
    // Wait until it is idle on its new connection (LISTENing, its last read done).
    let idle = pg::wait_until(Duration::from_secs(10), || {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'clusterns' \
                 AND state = 'idle' AND query LIKE 'SELECT p.pruned_upto%'",
                &[],
            )
            .unwrap()
            .get(0);
        n == 1
    });
    assert!(idle, "the poller is not waiting on a new connection");

    // Phase 2: more changes of every kind, visible promptly (NOTIFY after re-LISTEN).
    let written = Instant::now();
    db.batch_execute(
        "UPDATE repls SET cluster = 'ap-south' WHERE id IN ('p1-1', 'p1-2', 'p1-3');
         UPDATE repls SET slug = 'renamed' WHERE id = 'p1-4';
         DELETE FROM repls WHERE id IN ('p1-5', 'p1-6');
         UPDATE repls SET id = 'p2-7' WHERE id = 'p1-7';
         INSERT INTO repls SELECT 'p2-' || i, 'other', 'app' || i, 'west'
         FROM generate_series(100, 140) AS i;",
    )
    .unwrap();
    let phase2_end = max_seq(&mut db);
    target.store(phase2_end, Ordering::SeqCst);
    let done = pg::wait_until(Duration::from_secs(30), || {
        drain(Duration::ZERO, &mut received, &mut errors);
        received.last().map_or(0, |s| s.seq) >= phase2_end
    });
    assert!(done, "phase 2 did not arrive");
    let lag = written.elapsed();
    assert!(lag < Duration::from_secs(10), "phase 2 took {lag:?}");
    eprintln!("phase 2 arrived {lag:?} after the commit");
    assert_eq!(poller.join().unwrap(), phase2_end);
    drain(Duration::ZERO, &mut received, &mut errors);

    // Exactly once, in order, nothing missed: the received stream is the database's log.
    let log = log_in_db(&mut db);
    assert_eq!(log.len() as u64, phase2_end, "no seq should be missing");
    assert_eq!(received.len(), log.len());
    assert_eq!(received, log);
}

/// The SQLSTATE of a failed statement ("23514": a CHECK refused the row).
fn sqlstate(e: &postgres::Error) -> &str {
    e.code().map_or("", |c| c.code())
}

#[test]
fn a_prune_past_a_lagging_reader_is_a_gap_at_its_next_poll() {
    let (server, mut db) = server_or_skip!();
    db.batch_execute(
        "INSERT INTO repls SELECT 'app' || i, 'u' || (i % 7), 's' || i, 'east' \
         FROM generate_series(1, 1000) AS i",
    )
    .unwrap();
    let mut src = PgSource::new(&server.conninfo());
    let (apps, mut pos) = src.load_all().unwrap();
    assert_eq!((apps.len(), pos), (1000, 1000));

    // Following along: changes, and prunes of what the reader has read, are no gap.
    db.batch_execute("UPDATE repls SET cluster = 'west' WHERE id IN ('app1', 'app2')")
        .unwrap();
    let got = src.poll(pos, Duration::ZERO, 10_000).unwrap();
    assert_eq!(got.len(), 2);
    pos = got.last().unwrap().seq;
    assert_eq!(pos, 1002);
    db.batch_execute("DELETE FROM repl_changes WHERE seq <= 1002")
        .unwrap();
    assert_eq!(src.poll(pos, Duration::ZERO, 100).unwrap(), vec![]);
    assert_eq!(src.pruned_upto().unwrap(), 1002);

    // Paused (not polling): 795 apps move, and the log is pruned past the reader's position.
    db.batch_execute(
        "UPDATE repls SET cluster = 'west' \
         WHERE id IN (SELECT 'app' || i FROM generate_series(101, 895) AS i)",
    )
    .unwrap();
    assert_eq!(max_seq(&mut db), 1797);
    db.batch_execute("DELETE FROM repl_changes WHERE seq <= 1500")
        .unwrap();
    // Resumed: the next poll says so, at once even with a long wait, and keeps saying so.
    let start = Instant::now();
    assert_gap(src.poll(pos, Duration::from_secs(20), 100), 1002, 1500);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_gap(src.poll(pos, Duration::ZERO, 100), 1002, 1500);
    assert!(src.is_connected(), "a gap is an answer, not a failure");
    assert_eq!(src.pruned_upto().unwrap(), 1500);
    let text = src.poll(pos, Duration::ZERO, 100).unwrap_err().to_string();
    assert!(
        text.contains("after seq 1002 up to seq 1500 were pruned"),
        "{text}"
    );

    // A reload gives the table and the position to go on from.
    let (apps, pos) = src.load_all().unwrap();
    assert_eq!(pos, 1797);
    let west = apps
        .iter()
        .filter(|a| matches!(a, Change::Upsert { cluster, .. } if cluster.as_str() == "west"))
        .count();
    assert_eq!(west, 797);
    assert_eq!(src.poll(pos, Duration::ZERO, 100).unwrap(), vec![]);
    db.batch_execute("DELETE FROM repls WHERE id = 'app1'")
        .unwrap();
    assert_eq!(
        src.poll(pos, Duration::ZERO, 100).unwrap(),
        vec![del(1798, "app1")]
    );
}

#[test]
fn rollbacks_and_prunes_below_the_position_are_no_gap() {
    let (server, mut db) = server_or_skip!();
    let rollback = |db: &mut postgres::Client, ids: &[&str]| {
        let mut tx = db.transaction().unwrap();
        for id in ids {
            tx.execute("INSERT INTO repls VALUES ($1, 'rb', $1, 'east')", &[id])
                .unwrap();
        }
        tx.rollback().unwrap();
    };
    let mut src = PgSource::new(&server.conninfo());
    db.batch_execute(
        "INSERT INTO repls VALUES ('a', 'u', 'a', 'east'), ('b', 'u', 'b', 'east'), \
         ('c', 'u', 'c', 'east')",
    )
    .unwrap();
    rollback(&mut db, &["x", "y"]); // seq 4 and 5, never visible
    let got = src.poll(0, Duration::ZERO, 100).unwrap();
    assert_eq!(got.len(), 3);
    let pos = 3;
    rollback(&mut db, &["x", "y"]); // 6, 7
    db.batch_execute("INSERT INTO repls VALUES ('d', 'u', 'd', 'east')")
        .unwrap(); // 8
    db.batch_execute("DELETE FROM repl_changes WHERE seq <= 3")
        .unwrap();
    // The oldest row left is 8, far past 3 + 1: the rule that looked only at it asked this
    // reader to reload. Nothing it has not read was pruned.
    let oldest: i64 = db
        .query_one("SELECT min(seq) FROM repl_changes", &[])
        .unwrap()
        .get(0);
    assert_eq!(oldest, 8);
    assert_eq!(src.pruned_upto().unwrap(), 3);
    assert_eq!(
        src.poll(pos, Duration::ZERO, 100).unwrap(),
        vec![set(8, "d", "u", "d", "east")]
    );
    let pos = 8;

    // The whole log pruned after it was read, then rolled-back numbers past it.
    db.batch_execute("DELETE FROM repl_changes").unwrap();
    rollback(&mut db, &["z"]); // 9
    assert_eq!(src.pruned_upto().unwrap(), 8);
    assert_eq!(src.poll(pos, Duration::ZERO, 100).unwrap(), vec![]);
    // A reload of an empty log reflects the pruned changes: polling on from it is no gap.
    let (apps, seq) = src.load_all().unwrap();
    assert_eq!((apps.len(), seq), (4, 8));
    assert_eq!(src.poll(seq, Duration::ZERO, 100).unwrap(), vec![]);
    rollback(&mut db, &["z", "w"]); // 10, 11
    db.batch_execute("UPDATE repls SET cluster = 'west' WHERE id = 'a'")
        .unwrap(); // 12
    assert_eq!(
        src.poll(seq, Duration::ZERO, 100).unwrap(),
        vec![set(12, "a", "u", "a", "west")]
    );
    // Pruning rows in the middle of the log is a gap only for a reader before them.
    db.batch_execute(
        "INSERT INTO repls VALUES ('e', 'u', 'e', 'east'), ('f', 'u', 'f', 'east'), \
         ('g', 'u', 'g', 'east');
         DELETE FROM repl_changes WHERE seq = 14",
    )
    .unwrap();
    assert_gap(src.poll(12, Duration::ZERO, 100), 12, 14);
    assert_gap(src.poll(13, Duration::ZERO, 100), 13, 14);
    assert_eq!(
        src.poll(14, Duration::ZERO, 100).unwrap(),
        vec![set(15, "g", "u", "g", "east")]
    );
    // A DELETE that removes nothing changes nothing.
    db.batch_execute("DELETE FROM repl_changes WHERE seq > 1000")
        .unwrap();
    assert_eq!(src.pruned_upto().unwrap(), 14);
}

#[test]
fn truncating_the_log_counts_as_pruning() {
    let (server, mut db) = server_or_skip!();
    let mut src = PgSource::new(&server.conninfo());
    db.batch_execute(
        "INSERT INTO repls SELECT 't' || i, 'u', 's' || i, 'east' FROM generate_series(1, 5) AS i",
    )
    .unwrap();
    assert_eq!(src.poll(0, Duration::ZERO, 100).unwrap().len(), 5);
    db.batch_execute("TRUNCATE repl_changes").unwrap();
    assert_eq!(src.pruned_upto().unwrap(), 5);
    assert_gap(src.poll(2, Duration::ZERO, 100), 2, 5);
    assert_eq!(src.poll(5, Duration::ZERO, 100).unwrap(), vec![]);

    // Numbers that rolled back after the last row are not taken for pruned rows.
    {
        let mut tx = db.transaction().unwrap();
        tx.batch_execute("INSERT INTO repls VALUES ('rb', 'u', 'rb', 'east')")
            .unwrap(); // 6
        tx.rollback().unwrap();
    }
    db.batch_execute("TRUNCATE repl_changes").unwrap();
    assert_eq!(src.pruned_upto().unwrap(), 5);
    assert_eq!(src.poll(5, Duration::ZERO, 100).unwrap(), vec![]);

    // One statement that truncates both tables: the deletes that the repls trigger logs go
    // with the log, whichever table comes first.
    for (round, statement) in [
        "TRUNCATE repl_changes, repls",
        "TRUNCATE repls, repl_changes",
    ]
    .into_iter()
    .enumerate()
    {
        db.batch_execute(
            "INSERT INTO repls SELECT 'n' || i, 'u', 'n' || i, 'east' FROM generate_series(1, 3) AS i",
        )
        .unwrap();
        let (apps, pos) = src.load_all().unwrap();
        db.batch_execute(statement).unwrap();
        let deleted_to = max_seq_handed_out(&mut db);
        assert_eq!(
            deleted_to,
            pos + apps.len() as u64,
            "round {round}: a delete logged for every app"
        );
        assert_eq!(src.pruned_upto().unwrap(), deleted_to, "{statement}");
        assert_gap(src.poll(pos, Duration::ZERO, 100), pos, deleted_to);
        assert_eq!(src.load_all().unwrap(), (vec![], deleted_to));
    }

    // RESTART IDENTITY would restart the sequence that the log's seq comes from: seq numbers
    // must never go back, or readers would skip every change up to their position.
    db.batch_execute("INSERT INTO repls VALUES ('r', 'u', 'r', 'east')")
        .unwrap();
    let (_, pos) = src.load_all().unwrap();
    db.batch_execute("TRUNCATE repl_changes RESTART IDENTITY")
        .unwrap();
    assert_eq!(src.pruned_upto().unwrap(), pos);
    db.batch_execute("UPDATE repls SET cluster = 'west' WHERE id = 'r'")
        .unwrap();
    assert_eq!(
        src.poll(pos, Duration::ZERO, 100).unwrap(),
        vec![set(pos + 1, "r", "u", "r", "west")]
    );
}

/// The last value the log's sequence handed out.
fn max_seq_handed_out(db: &mut postgres::Client) -> u64 {
    let v: i64 = db
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM repl_changes_seq",
            &[],
        )
        .unwrap()
        .get(0);
    v as u64
}

/// Drops the name CHECKs, as in a table set up before the schema had them.
const DROP_NAME_CHECKS: &str = "ALTER TABLE repls DROP CONSTRAINT repls_id_label, \
     DROP CONSTRAINT repls_user_name_label, DROP CONSTRAINT repls_slug_label, \
     DROP CONSTRAINT repls_cluster_label";

#[test]
fn names_that_differ_only_in_case_are_never_merged() {
    let (server, mut db) = server_or_skip!();
    db.batch_execute(DROP_NAME_CHECKS).unwrap();
    db.batch_execute(
        "INSERT INTO repls VALUES ('dupid', 'mark', 'game', 'east');            -- 1
         INSERT INTO repls VALUES ('DupId', 'mark', 'game2', 'east');           -- 2
         INSERT INTO repls VALUES ('r2', 'Mark', 'game', 'east');               -- 3
         INSERT INTO repls VALUES ('r3', 'ann', '_acme-challenge', 'east');     -- 4
         INSERT INTO repls VALUES ('r4', 'ann', 'ok', 'EAST');                  -- 5
         INSERT INTO repls VALUES ('_acme-challenge', 'ann', 'x', 'east');      -- 6",
    )
    .unwrap();
    // The schema still applies over them (and refuses new ones from now on).
    apply_schema(&mut db).unwrap();

    let mut src = PgSource::new(&server.conninfo());
    let dupid = upsert("dupid", "mark", "game", "east");
    assert_eq!(src.load_all().unwrap(), (vec![dupid.clone()], 6));
    assert_eq!(src.take_rejected(), 5);
    assert_eq!(src.take_rejected(), 0);
    assert_eq!(
        src.poll(0, Duration::ZERO, 100).unwrap(),
        vec![set(1, "dupid", "mark", "game", "east")]
    );
    assert_eq!(src.take_rejected(), 5);

    // Deleting the mixed-case row does not delete the lower-case one.
    db.batch_execute("DELETE FROM repls WHERE id = 'DupId'")
        .unwrap(); // 7
    assert_eq!(src.poll(1, Duration::ZERO, 100).unwrap(), vec![]);
    assert_eq!(src.take_rejected(), 1);
    assert_eq!(src.load_all().unwrap(), (vec![dupid], 7));
    assert_eq!(src.take_rejected(), 4);

    // A bad row cannot be made worse, only fixed; fixed, it is served.
    let err = db
        .batch_execute("UPDATE repls SET user_name = 'MARK' WHERE id = 'dupid'")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err:?}");
    db.batch_execute("UPDATE repls SET cluster = 'east' WHERE id = 'r4'")
        .unwrap(); // 8
    assert_eq!(
        src.poll(7, Duration::ZERO, 100).unwrap(),
        vec![set(8, "r4", "ann", "ok", "east")]
    );

    // Deleting the lower-case one removes it alone.
    db.batch_execute("DELETE FROM repls WHERE id = 'dupid'")
        .unwrap(); // 9
    assert_eq!(
        src.poll(8, Duration::ZERO, 100).unwrap(),
        vec![del(9, "dupid")]
    );
    let (apps, _) = src.load_all().unwrap();
    assert_eq!(apps, vec![upsert("r4", "ann", "ok", "east")]);
    assert_eq!(
        src.take_rejected(),
        3,
        "r2, r3 and _acme-challenge are still there"
    );
}

#[test]
fn the_schema_and_the_loader_agree_on_names() {
    let (_server, mut db) = server_or_skip!();
    let long = "a".repeat(63);
    let too_long = "a".repeat(64);
    let candidates: Vec<&str> = vec![
        "a",
        "app-1",
        "_x",
        "-",
        "_",
        "0",
        "a_b-c9",
        &long,
        &too_long,
        "",
        "A",
        "aB",
        "a.b",
        "a b",
        "a\n",
        "\na",
        "a/b",
        "é",
        "\u{212a}", // KELVIN SIGN, which lower-cases to 'k' in Unicode
        "ǅ",
        "_acme-challenge",
        "_ACME-challenge",
        "_acme-challenge-2",
        "x_acme-challenge",
    ];
    for col in 0..4 {
        for &value in &candidates {
            let mut row = ["id0", "user0", "slug0", "east"];
            row[col] = value;
            let mut tx = db.transaction().unwrap();
            let stored = tx
                .execute(
                    "INSERT INTO repls (id, user_name, slug, cluster) VALUES ($1, $2, $3, $4)",
                    &[&row[0], &row[1], &row[2], &row[3]],
                )
                .map_err(|e| {
                    assert_eq!(sqlstate(&e), "23514", "{value:?} in column {col}: {e:?}");
                });
            tx.rollback().unwrap();
            let decoded = decode_row(1, "set", row[0], Some(row[1]), Some(row[2]), Some(row[3]));
            assert_eq!(
                stored.is_ok(),
                decoded.is_ok(),
                "{value:?} in column {col}: the schema says {stored:?}, the loader {decoded:?}"
            );
        }
    }
}

#[test]
fn the_schema_applies_over_an_older_database() {
    let (server, mut db) = server_or_skip!();
    // What this version added, taken away again: the database as an older version left it.
    let make_old = |db: &mut postgres::Client| {
        db.batch_execute(&format!(
            "DROP TRIGGER clusterns_changes_deleted ON repl_changes;
             DROP TRIGGER clusterns_changes_truncate_before ON repl_changes;
             DROP TRIGGER clusterns_changes_truncate_after ON repl_changes;
             DROP TABLE repl_changes_pruned;
             {DROP_NAME_CHECKS}"
        ))
        .unwrap()
    };
    make_old(&mut db);
    db.batch_execute(
        "INSERT INTO repls VALUES ('Old1', 'u', 'a', 'east');                  -- 1
         INSERT INTO repls VALUES ('old2', 'u', '_acme-challenge', 'east');    -- 2
         INSERT INTO repls VALUES ('ok1', 'u', 'b', 'east');                   -- 3",
    )
    .unwrap();
    db.batch_execute("BEGIN; INSERT INTO repls VALUES ('gone', 'u', 'g', 'east'); ROLLBACK") // 4
        .unwrap();
    db.batch_execute(
        "INSERT INTO repls VALUES ('ok2', 'u', 'c', 'east');                   -- 5
         UPDATE repls SET cluster = 'west' WHERE id = 'ok1';                   -- 6
         DELETE FROM repl_changes WHERE seq <= 3;                              -- pruned",
    )
    .unwrap();
    assert_eq!(max_seq_handed_out(&mut db), 6);

    // This version does not read a database without the pruning mark: it would not see gaps.
    let conninfo = server.conninfo();
    for err in [
        PgSource::new(&conninfo).load_all().unwrap_err(),
        PgSource::new(&conninfo)
            .poll(0, Duration::ZERO, 10)
            .unwrap_err(),
        PgSource::new(&conninfo).pruned_upto().unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, PgError::Data(_)), "{text}");
        assert!(
            text.starts_with(
                "PostgreSQL: db error: ERROR: relation \"repl_changes_pruned\" does not exist"
            ) && text.ends_with("; apply this version's sql/schema.sql"),
            "{text}"
        );
    }

    apply_schema(&mut db).expect("the schema applies over old rows it would refuse now");
    let mut src = PgSource::new(&server.conninfo());
    // Rows below the oldest one left may have been pruned: a reader before 4 reloads.
    assert_eq!(src.pruned_upto().unwrap(), 4);
    assert_gap(src.poll(0, Duration::ZERO, 100), 0, 4);
    assert_gap(src.poll(3, Duration::ZERO, 100), 3, 4);
    assert_eq!(
        src.poll(4, Duration::ZERO, 100).unwrap(),
        vec![
            set(5, "ok2", "u", "c", "east"),
            set(6, "ok1", "u", "b", "west")
        ]
    );
    let (mut apps, seq) = src.load_all().unwrap();
    apps.sort_by_key(id_of);
    assert_eq!(seq, 6);
    assert_eq!(
        apps,
        vec![
            upsert("ok1", "u", "b", "west"),
            upsert("ok2", "u", "c", "east")
        ]
    );
    assert_eq!(src.take_rejected(), 2);

    // The old rows stay; new and updated rows are checked.
    let checks: Vec<(String, bool)> = db
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint \
             WHERE conrelid = 'repls'::regclass AND contype = 'c' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        checks,
        vec![
            ("repls_cluster_label".to_string(), false),
            ("repls_id_label".to_string(), false),
            ("repls_slug_label".to_string(), false),
            ("repls_user_name_label".to_string(), false),
        ]
    );
    let n: i64 = db
        .query_one("SELECT count(*) FROM repls", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
    for bad in [
        "INSERT INTO repls VALUES ('New1', 'u', 'n', 'east')",
        "INSERT INTO repls VALUES ('new2', 'U', 'n', 'east')",
        "INSERT INTO repls VALUES ('new3', 'u', 'N', 'east')",
        "INSERT INTO repls VALUES ('new4', 'u', 'n', 'East')",
        "INSERT INTO repls VALUES ('_acme-challenge', 'u', 'n', 'east')",
        "INSERT INTO repls VALUES ('new5', '_acme-challenge', 'n', 'east')",
        "INSERT INTO repls VALUES ('new6', 'u', '_acme-challenge', 'east')",
        "UPDATE repls SET cluster = 'west' WHERE id = 'Old1'",
        "UPDATE repls SET slug = 'OK' WHERE id = 'ok1'",
    ] {
        let err = db.batch_execute(bad).unwrap_err();
        assert_eq!(sqlstate(&err), "23514", "{bad}: {err:?}");
    }
    db.batch_execute("INSERT INTO repls VALUES ('new7', 'u', 'n', 'east')")
        .unwrap();
    // Once the old rows are fixed or gone, the checks can cover every row.
    db.batch_execute(
        "DELETE FROM repls WHERE id IN ('Old1', 'old2');
         ALTER TABLE repls VALIDATE CONSTRAINT repls_id_label,
                           VALIDATE CONSTRAINT repls_user_name_label,
                           VALIDATE CONSTRAINT repls_slug_label,
                           VALIDATE CONSTRAINT repls_cluster_label;",
    )
    .unwrap();
    apply_schema(&mut db).unwrap();

    // An older database whose log was pruned empty: everything the sequence handed out
    // counts as pruned.
    make_old(&mut db);
    db.batch_execute("DELETE FROM repl_changes").unwrap();
    let handed_out = max_seq_handed_out(&mut db);
    assert_eq!(handed_out, 9);
    apply_schema(&mut db).unwrap();
    let mut src = PgSource::new(&server.conninfo());
    assert_eq!(src.pruned_upto().unwrap(), handed_out);
    assert_gap(src.poll(8, Duration::ZERO, 100), 8, 9);
    assert_eq!(src.poll(9, Duration::ZERO, 100).unwrap(), vec![]);
    assert_eq!(src.load_all().unwrap().1, 9);
}

/// The schema's objects and the mark, as text, to compare before and after applying it again.
fn schema_state(db: &mut postgres::Client) -> Vec<String> {
    db.query(
        "SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' \
                || pg_get_constraintdef(oid) || ' ' || convalidated \
         FROM pg_constraint \
         WHERE conrelid IN ('repls'::regclass, 'repl_changes'::regclass, \
                            'repl_changes_pruned'::regclass) \
         UNION ALL SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger \
         WHERE NOT tgisinternal \
         UNION ALL SELECT 'function ' || proname || ' ' || md5(prosrc) FROM pg_proc \
         WHERE proname LIKE 'clusterns%' \
         UNION ALL SELECT 'index ' || indexrelid::regclass FROM pg_index \
         WHERE indrelid IN ('repls'::regclass, 'repl_changes'::regclass, \
                            'repl_changes_pruned'::regclass) \
         UNION ALL SELECT 'table ' || relname || ' ' || relkind::text FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace \
         UNION ALL SELECT 'mark ' || pruned_upto FROM repl_changes_pruned \
         UNION ALL SELECT 'sequence ' || last_value FROM repl_changes_seq \
         UNION ALL SELECT 'apps ' || count(*) FROM repls \
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn applying_the_schema_again_changes_nothing() {
    let (server, mut db) = server_or_skip!();
    db.batch_execute(
        "INSERT INTO repls VALUES ('a', 'u', 'a', 'east'), ('b', 'u', 'b', 'east');
         UPDATE repls SET cluster = 'west' WHERE id = 'a';
         DELETE FROM repl_changes WHERE seq <= 2",
    )
    .unwrap();
    let before = schema_state(&mut db);
    assert!(before.contains(&"mark 2".to_string()), "{before:#?}");
    assert_eq!(
        before.iter().filter(|l| l.starts_with("trigger ")).count(),
        15,
        "{before:#?}"
    );
    assert_eq!(
        before
            .iter()
            .filter(|l| l.starts_with("constraint "))
            .count(),
        11,
        "{before:#?}"
    );
    apply_schema(&mut db).unwrap();
    apply_schema(&mut db).unwrap();
    assert_eq!(schema_state(&mut db), before);

    // And the feed goes on as before.
    let mut src = PgSource::new(&server.conninfo());
    assert_eq!(src.load_all().unwrap().1, 3);
    db.batch_execute("DELETE FROM repls WHERE id = 'b'")
        .unwrap();
    assert_eq!(src.poll(3, Duration::ZERO, 10).unwrap(), vec![del(4, "b")]);
}

/// Apps as a reader rebuilds them: id -> (user, slug, cluster).
#[derive(Debug, Default, PartialEq)]
struct Mirror(std::collections::BTreeMap<String, (String, String, String)>);

/// Every change taken as it comes (the database keeps the names unique).
impl ChangeTarget for Mirror {
    type Outcome = ();

    fn upsert(&mut self, app: UpsertRef<'_>) {
        let value = (
            app.user.to_string(),
            app.slug.to_string(),
            app.cluster.to_string(),
        );
        self.0.insert(app.id.to_string(), value);
    }

    fn delete(&mut self, id: &Label) {
        self.0.remove(id.as_str());
    }
    // Challenge records are not apps: this model leaves them out.
    fn txt_add(&mut self, _: &clusterns::name::DomainName, _: &[u8], _: u64) {}

    fn txt_delete(&mut self, _: &clusterns::name::DomainName, _: Option<&[u8]>) {}

    // Health reports are not apps either.
    fn health(&mut self, _: &clusterns::health::report::HealthReport) {}
}

fn db_mirror(db: &mut postgres::Client) -> Mirror {
    let apps = db
        .query("SELECT id, user_name, slug, cluster FROM repls", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    Mirror(apps)
}

#[test]
fn a_pruner_racing_a_reader_is_seen_exactly() {
    let (server, mut db) = server_or_skip!();
    db.batch_execute(
        "INSERT INTO repls SELECT 'p' || i, 'u' || (i % 5), 's' || i, 'east' \
         FROM generate_series(1, 50) AS i",
    )
    .unwrap();
    let conninfo = server.conninfo();
    for aggressive in [false, true] {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The reader's position, published after it applied everything up to it.
        let reader_at = Arc::new(AtomicU64::new(0));
        let writer = {
            let (conninfo, done) = (conninfo.clone(), done.clone());
            thread::spawn(move || {
                let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
                for i in 0..300u32 {
                    let id = format!("p{}", i % 50 + 1);
                    let cluster = ["east", "west", "north"][(i % 3) as usize];
                    let mut tx = c.transaction().unwrap();
                    tx.execute(
                        "UPDATE repls SET cluster = $2 WHERE id = $1",
                        &[&id, &cluster],
                    )
                    .unwrap();
                    if i % 7 == 0 {
                        tx.execute("DELETE FROM repls WHERE id = $1", &[&id])
                            .unwrap();
                        tx.execute(
                            "INSERT INTO repls VALUES ($1, 'again', $1, $2)",
                            &[&id, &cluster],
                        )
                        .unwrap();
                    }
                    if i % 11 == 0 {
                        tx.rollback().unwrap();
                    } else {
                        tx.commit().unwrap();
                    }
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let pruner = {
            let (conninfo, done, reader_at) = (conninfo.clone(), done.clone(), reader_at.clone());
            thread::spawn(move || {
                let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
                let mut prunes = 0;
                while !done.load(Ordering::SeqCst) {
                    let upto = if aggressive {
                        // Whatever is there, read or not.
                        let max: i64 = c
                            .query_one("SELECT coalesce(max(seq), 0) FROM repl_changes", &[])
                            .unwrap()
                            .get(0);
                        max - 2
                    } else {
                        reader_at.load(Ordering::SeqCst) as i64
                    };
                    c.execute("DELETE FROM repl_changes WHERE seq <= $1", &[&upto])
                        .unwrap();
                    prunes += 1;
                    thread::sleep(Duration::from_millis(3));
                }
                prunes
            })
        };

        let mut src = PgSource::new(&conninfo);
        let (apps, mut pos) = src.load_all().unwrap();
        let mut mirror = Mirror::default();
        apps.iter().for_each(|a| a.apply_to(&mut mirror));
        let mut gaps = 0;
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < end, "the reader did not catch up");
            let finished = done.load(Ordering::SeqCst);
            match src.poll(pos, Duration::from_millis(20), 13) {
                Ok(batch) => {
                    for s in &batch {
                        assert!(s.seq > pos);
                        s.change.apply_to(&mut mirror);
                        pos = s.seq;
                    }
                    reader_at.store(pos, Ordering::SeqCst);
                    if batch.is_empty() && finished {
                        break;
                    }
                    if aggressive {
                        // A slow reader: the pruner gets ahead of it.
                        thread::sleep(Duration::from_millis(5));
                    }
                }
                Err(PgError::Gap { after, pruned_upto }) => {
                    assert!(aggressive, "a gap after {after} up to {pruned_upto}, but only rows the reader had read were pruned");
                    assert_eq!(after, pos);
                    gaps += 1;
                    let (apps, seq) = src.load_all().unwrap();
                    assert!(seq >= pruned_upto);
                    mirror.0.clear();
                    apps.iter().for_each(|a| a.apply_to(&mut mirror));
                    pos = seq;
                }
                Err(e) => panic!("{e}"),
            }
        }
        writer.join().unwrap();
        let prunes = pruner.join().unwrap();
        assert_eq!(
            mirror,
            db_mirror(&mut db),
            "aggressive pruner: {aggressive}"
        );
        eprintln!("aggressive pruner: {aggressive}: {prunes} prunes, {gaps} gaps, at seq {pos}");
        if aggressive {
            assert!(
                gaps > 0,
                "the aggressive pruner never got ahead of the reader"
            );
        }
    }
}
