//! End-to-end with a real PostgreSQL (a private server per test; set CLUSTERNS_TEST_PG to
//! PostgreSQL's bin directory, e.g. /usr/lib/postgresql/15/bin): the server loads the table,
//! follows changes within milliseconds, keeps answering while the database is down, and
//! catches up with nothing skipped when it is back.

mod common;
mod pg;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::*;

/// A private PostgreSQL server with the schema and `rows` inserted, and a client; None (having
/// said why) where PostgreSQL is not available.
/// A config and journal in a temp dir, fed by `db` instead of the journal: `conn_extra` is
/// added to its connection string, `feed_extra` (lines, `\\n`-separated) to `[feed]`.
fn setup_on(db: &pg::PgServer, conn_extra: &str, feed_extra: &str) -> Setup {
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
        "source = \"journal\"\njournal = \"journal.log\"",
        &format!(
            "source = \"postgres\"\npostgres = \"{}{conn_extra}\"{feed_extra}",
            db.conninfo()
        ),
    );
    assert!(text.contains("source = \"postgres\""));
    std::fs::write(&s.config_path, text).unwrap();
    s
}

fn sql(client: &mut postgres::Client, q: &str) {
    client
        .batch_execute(q)
        .unwrap_or_else(|e| panic!("{q}: {e:?}"));
}

fn cluster_of(addr: std::net::SocketAddr, name: &str) -> Option<&'static str> {
    let m = udp_ask(addr, name, RecordType::A);
    match a_records(&m).first().map(String::as_str) {
        Some("203.0.113.1") | Some("203.0.113.2") => Some("east"),
        Some("198.51.100.7") => Some("west"),
        _ => None,
    }
}

#[test]
fn follows_postgres_through_an_outage() {
    let Some((mut db, mut client)) = pg::with_schema("") else {
        return;
    };
    let mut values = Vec::new();
    for i in 0..50 {
        values.push(format!("('a{i}', 'u{}', 's{i}', 'east')", i % 5));
    }
    sql(
        &mut client,
        &format!(
            "INSERT INTO repls (id, user_name, slug, cluster) VALUES {}",
            values.join(",")
        ),
    );

    let s = setup_on(
        &db,
        " connect_timeout=2",
        "\npoll_interval_ms = 200\ncheckpoint = \"table.ckpt\"",
    );
    let r = start_with(s);

    assert_eq!(cluster_of(r.addr, "a0.repl.co"), Some("east"));
    assert_eq!(cluster_of(r.addr, "s7.u2.repl.co"), Some("east"));

    // A move is visible within milliseconds (a NOTIFY wakes the feed).
    sql(
        &mut client,
        "UPDATE repls SET cluster = 'west' WHERE id = 'a0'",
    );
    assert!(wait_for(Duration::from_secs(2), || cluster_of(
        r.addr,
        "a0.repl.co"
    ) == Some("west")));

    // Keep querying all along: every query must be answered.
    let stop = Arc::new(AtomicBool::new(false));
    let missed = Arc::new(AtomicU64::new(0));
    let asked = Arc::new(AtomicU64::new(0));
    let prober = {
        let (stop, missed, asked, addr) = (stop.clone(), missed.clone(), asked.clone(), r.addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                asked.fetch_add(1, Ordering::Relaxed);
                let q = query("a1.repl.co", RecordType::A, 9, true);
                if udp_exchange(addr, &q).is_none_or(|m| m.answers().is_empty()) {
                    missed.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // Stream moves; kill the database in the middle; bring it back; go on.
    for i in 1..50 {
        if i == 20 {
            drop(client);
            db.stop();
            std::thread::sleep(Duration::from_millis(700));
            db.start();
            client = db.client();
        }
        sql(
            &mut client,
            &format!("UPDATE repls SET cluster = 'west' WHERE id = 'a{i}'"),
        );
    }
    sql(&mut client, "DELETE FROM repls WHERE id = 'a49'");
    sql(
        &mut client,
        "UPDATE repls SET slug = 'renamed' WHERE id = 'a48'",
    );

    assert!(
        wait_for(Duration::from_secs(15), || {
            udp_ask(r.addr, "a49.repl.co", RecordType::A).response_code() == ResponseCode::NXDomain
        }),
        "caught up after the outage"
    );
    for i in 0..49 {
        assert_eq!(
            cluster_of(r.addr, &format!("a{i}.repl.co")),
            Some("west"),
            "a{i}"
        );
    }
    assert_eq!(cluster_of(r.addr, "renamed.u3.repl.co"), Some("west"));
    assert_eq!(
        udp_ask(r.addr, "s48.u3.repl.co", RecordType::A).response_code(),
        ResponseCode::NXDomain
    );
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    assert!(asked.load(Ordering::Relaxed) > 50);
    assert_eq!(missed.load(Ordering::Relaxed), 0, "answers never stopped");
}

#[test]
fn starts_from_a_checkpoint_and_catches_up() {
    let Some((db, mut client)) = pg::with_schema(
        "INSERT INTO repls VALUES ('b1', 'ann', 'one', 'east'), ('b2', 'ann', 'two', 'east')",
    ) else {
        return;
    };
    let s = setup_on(&db, "", "\ncheckpoint = \"table.ckpt\"");
    let ckpt = s.dir.path().join("table.ckpt");
    let r = start_with(s);
    assert_eq!(cluster_of(r.addr, "b1.repl.co"), Some("east"));
    // Stopping writes a checkpoint.
    let setup = r.stop();
    assert!(ckpt.exists());
    sql(
        &mut client,
        "UPDATE repls SET cluster = 'west' WHERE id = 'b2'",
    );
    let r = start_with(setup);
    assert_eq!(cluster_of(r.addr, "b1.repl.co"), Some("east"));
    assert!(wait_for(Duration::from_secs(2), || cluster_of(
        r.addr,
        "two.ann.repl.co"
    ) == Some("west")));
}

/// Issue 13 item 7, against the real binary: changes pruned while the server is stopped
/// (SIGSTOP) are never read, and the server notices at its next read, reloads, answers right,
/// and says so in its log and metrics.
#[test]
fn a_prune_past_a_paused_server_is_noticed_and_reloaded_loudly() {
    let Some((db, mut client)) = pg::with_schema("") else {
        return;
    };
    let values: Vec<String> = (0..800)
        .map(|i| format!("('a{i}', 'u{}', 's{i}', 'east')", i % 7))
        .collect();
    sql(
        &mut client,
        &format!("INSERT INTO repls VALUES {}", values.join(",")),
    );
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
        "source = \"journal\"\njournal = \"journal.log\"",
        &format!(
            "source = \"postgres\"\npostgres = \"{} connect_timeout=2\"\npoll_interval_ms = 100\ncheckpoint = \"table.ckpt\"",
            db.conninfo()
        ),
    );
    std::fs::write(
        &s.config_path,
        format!("{text}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let log = s.dir.path().join("server.log");
    let c = spawn_binary_logged(&s.config_path, true, Some(&log));
    let metrics = |name: &str| metric(&http_get(c.metrics.unwrap(), "/metrics"), name, &[]);
    assert_eq!(cluster_of(c.addr, "a5.repl.co"), Some("east"));
    c.signal(libc::SIGSTOP);
    sql(
        &mut client,
        "UPDATE repls SET cluster = 'west' WHERE id IN (SELECT 'a' || g FROM generate_series(0, 794) g)",
    );
    sql(&mut client, "DELETE FROM repl_changes");
    c.signal(libc::SIGCONT);
    assert!(wait_for(Duration::from_secs(10), || {
        cluster_of(c.addr, "a5.repl.co") == Some("west")
            && cluster_of(c.addr, "a794.repl.co") == Some("west")
    }));
    assert_eq!(cluster_of(c.addr, "a795.repl.co"), Some("east"));
    assert_eq!(cluster_of(c.addr, "s799.u1.repl.co"), Some("east"));
    assert!(metrics("clusterns_feed_gaps_total") >= 1.0);
    assert!(metrics("clusterns_feed_reloads_total") >= 1.0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("pruned"), "{text}");
    // Every app answers as the database says.
    for i in (0..800).step_by(37) {
        let want = if i < 795 { "west" } else { "east" };
        assert_eq!(
            cluster_of(c.addr, &format!("a{i}.repl.co")),
            Some(want),
            "a{i}"
        );
    }
}

/// The whole-table loads (at start-up, and after a prune past the builder: running, and past
/// its checkpoint while stopped) come in batches; a table larger than one batch arrives whole,
/// at the load's sequence number, and the gaps and reloads are counted once each.
#[test]
fn a_table_larger_than_a_batch_loads_and_reloads_whole() {
    let Some((db, mut client)) = pg::with_schema("") else {
        return;
    };
    const N: usize = 150_000;
    sql(
        &mut client,
        &format!(
            "INSERT INTO repls SELECT 'a' || g, 'u' || (g % 97), 's' || g, 'east' \
             FROM generate_series(0, {}) g",
            N - 1
        ),
    );
    let s = setup_on(&db, " connect_timeout=2", "\ncheckpoint = \"table.ckpt\"");
    let config = Arc::new(clusterns::config::Config::load(&s.config_path).unwrap());
    let head = |client: &mut postgres::Client| -> u64 {
        let seq: i64 = client
            .query_one("SELECT max(seq) FROM repl_changes", &[])
            .unwrap()
            .get(0);
        seq as u64
    };
    let clusters = |b: &clusterns::feed::Builder| {
        let names = b.table().clusters().names().to_vec();
        let mut west = 0;
        for (_, _, _, c) in b.table().apps() {
            west += usize::from(names[usize::from(c)].as_str() == "west");
        }
        west
    };

    let mut b = clusterns::feed::Builder::load(config.clone()).unwrap();
    assert_eq!(b.table().len(), N);
    assert_eq!(b.last_seq(), head(&mut client));
    assert!(b.caught_up());
    assert_eq!(b.status().gaps.load(Ordering::Relaxed), 0);

    // Running: changes pruned before they are read.
    sql(
        &mut client,
        "UPDATE repls SET cluster = 'west' WHERE id IN (SELECT 'a' || g FROM generate_series(0, 99999) g)",
    );
    let seq = head(&mut client);
    sql(&mut client, "DELETE FROM repl_changes");
    for _ in 0..100 {
        b.poll_once(Duration::ZERO).unwrap();
        if b.caught_up() {
            break;
        }
    }
    assert!(b.caught_up());
    assert_eq!(b.last_seq(), seq);
    assert_eq!(b.table().len(), N);
    assert_eq!(clusters(&b), 100_000);
    assert_eq!(b.status().gaps.load(Ordering::Relaxed), 1);
    assert_eq!(b.status().reloads.load(Ordering::Relaxed), 1);
    b.checkpoint_now();
    b.wait_checkpoint();
    drop(b);

    // Stopped: pruned past the checkpoint.
    sql(
        &mut client,
        "UPDATE repls SET cluster = 'west' WHERE id IN (SELECT 'a' || g FROM generate_series(100000, 109999) g)",
    );
    let seq = head(&mut client);
    sql(&mut client, "DELETE FROM repl_changes");
    let b = clusterns::feed::Builder::load(config).unwrap();
    assert_eq!(b.last_seq(), seq);
    assert_eq!(b.table().len(), N);
    assert_eq!(clusters(&b), 110_000);
    assert_eq!(b.status().gaps.load(Ordering::Relaxed), 1);
    assert_eq!(b.status().reloads.load(Ordering::Relaxed), 1);
}

/// An idle PostgreSQL feed waits for NOTIFY inside its read: that wait is not work, and the
/// builder's slow-step warning must not fire for it (it did every second).
#[test]
fn an_idle_feed_is_not_reported_as_slow() {
    let Some((db, mut client)) =
        pg::with_schema("INSERT INTO repls VALUES ('a1', 'u1', 's1', 'east')")
    else {
        return;
    };
    let s = setup_on(&db, " connect_timeout=2", "\npoll_interval_ms = 400");
    let log = s.dir.path().join("server.log");
    let c = spawn_binary_logged(&s.config_path, false, Some(&log));
    assert_eq!(cluster_of(c.addr, "a1.repl.co"), Some("east"));
    // Several idle waits of 400 ms, then a change that must still arrive at once.
    std::thread::sleep(Duration::from_millis(1500));
    sql(
        &mut client,
        "UPDATE repls SET cluster = 'west' WHERE id = 'a1'",
    );
    assert!(wait_for(Duration::from_secs(5), || {
        cluster_of(c.addr, "a1.repl.co") == Some("west")
    }));
    drop(c);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "the log is written: {text}");
    assert!(!text.contains("took long"), "{text}");
}
