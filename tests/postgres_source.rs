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

use clusterns::feed::postgres::{apply_schema, decode_row, PgError, PgSource};
use clusterns::feed::{Change, Sequenced};
use clusterns::name::check_label;

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
    assert_eq!(src.oldest_seq().unwrap(), None);
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
         INSERT INTO repls VALUES ('R4', 'Bob', 'Site', 'EAST');       -- stored lower-case",
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

    assert_eq!(src.oldest_seq().unwrap(), Some(1));
    db.batch_execute("DELETE FROM repl_changes WHERE seq < 5")
        .unwrap();
    assert_eq!(src.oldest_seq().unwrap(), Some(5));
    assert_eq!(src.poll(0, Duration::ZERO, 100).unwrap(), expected[4..]);

    // A row clusterns cannot use is skipped (and logged), never fatal; it is not read again.
    db.batch_execute("INSERT INTO repls VALUES ('bad', 'no spaces allowed', 's', 'east')")
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        src.poll(9, Duration::from_millis(200), 100).unwrap(),
        vec![]
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    db.batch_execute("INSERT INTO repls VALUES ('r5', 'cy', 'x', 'west')")
        .unwrap();
    assert_eq!(
        src.poll(9, Duration::ZERO, 100).unwrap(),
        vec![set(11, "r5", "cy", "x", "west")]
    );
    // A batch made only of bad rows does not end the read.
    assert_eq!(
        src.poll(9, Duration::ZERO, 1).unwrap(),
        vec![set(11, "r5", "cy", "x", "west")]
    );
    let (apps, seq) = src.load_all().unwrap();
    assert_eq!(seq, 11);
    assert_eq!(apps.len(), 4, "the bad app is left out: {apps:?}");

    // TRUNCATE bypasses row triggers; the schema logs a delete for every app (ordered by id
    // as stored, in the C collation of this test cluster: 'R4' first).
    db.batch_execute("TRUNCATE repls").unwrap();
    assert_eq!(
        src.poll(11, Duration::ZERO, 100).unwrap(),
        vec![
            del(12, "r4"),
            del(13, "bad"),
            del(14, "r1"),
            del(15, "r2b"),
            del(16, "r5")
        ]
    );
    assert_eq!(src.load_all().unwrap(), (vec![], 16));
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
                 AND state = 'idle' AND query LIKE 'SELECT seq, op%'",
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
