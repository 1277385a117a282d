//! The edge side of the NATS fan-out end to end: a private `nats-server -js`, the test
//! publishing change and reset messages and putting snapshots itself (no relay), and the real
//! binary serving with `feed.source = "nats"`. An edge with no checkpoint bootstraps from the
//! snapshot and follows; it keeps answering while nats-server is down and catches up when it
//! is back; a bad message is skipped; a damaged snapshot is refused (metric, log) while the
//! table stays, and the next good one is loaded; an edge whose checkpoint is older than what
//! the stream still holds bootstraps (one within it resumes); an edge started while
//! nats-server is down serves its checkpoint and catches up; without a snapshot an edge
//! replays a whole stream, and refuses to start on a purged one. Skipped, saying so, where
//! nats-server is missing (never in CI).

mod common;
mod natsd;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use async_nats::HeaderMap;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::*;
use natsd::{Natsd, Pub};

/// An edge's config in a temp dir: `feed.source = "nats"`, a checkpoint, metrics.
fn edge_setup(n: &Natsd) -> Setup {
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
        "source = \"journal\"\njournal = \"journal.log\"",
        "source = \"nats\"\ncheckpoint = \"table.ckpt\"\ncheckpoint_interval_secs = 1",
    );
    assert!(text.contains("source = \"nats\""));
    std::fs::write(
        &s.config_path,
        format!(
            "{text}\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
            n.section()
        ),
    )
    .unwrap();
    s
}

/// Which cluster answers `name` (None: no address, e.g. NXDOMAIN).
fn cluster_of(addr: SocketAddr, name: &str) -> Option<&'static str> {
    let m = udp_ask(addr, name, RecordType::A);
    match a_records(&m).first().map(String::as_str) {
        Some("203.0.113.1") | Some("203.0.113.2") => Some("east"),
        Some("198.51.100.7") => Some("west"),
        _ => None,
    }
}

fn metrics(c: &Child, name: &str) -> f64 {
    metric(&http_get(c.metrics.unwrap(), "/metrics"), name, &[])
}

/// Waits (bounded) until `name` is answered from `cluster`.
fn until_answers(c: &Child, name: &str, cluster: Option<&str>, limit: Duration) {
    assert!(
        wait_for(limit, || cluster_of(c.addr, name) == cluster),
        "{name}: wanted {cluster:?}, got {:?}",
        cluster_of(c.addr, name)
    );
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(text))
}

/// Stops an edge with SIGTERM (it writes its last checkpoint), waiting (bounded) for it.
fn stop(mut c: Child) {
    c.signal(libc::SIGTERM);
    let exited = wait_for(Duration::from_secs(10), || {
        c.child.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(exited, "the edge did not stop on SIGTERM");
}

const START: &str = "\
1 set r-one mark coolgame east
2 set r-two mark notes west
";

#[test]
fn bootstraps_follows_through_an_outage_and_refuses_a_damaged_snapshot() {
    let Some(mut n) = Natsd::start_new() else {
        return;
    };
    let p = Pub::new(&n);
    p.put_snapshot(START, 2);
    p.publish("3 set r-three ann site east\n");

    let s = edge_setup(&n);
    let log = s.dir.path().join("edge.log");
    let c = spawn_binary_logged(&s.config_path, true, Some(&log));
    // The snapshot, then the message after it.
    until_answers(&c, "r-one.repl.co", Some("east"), Duration::from_secs(5));
    until_answers(&c, "r-three.repl.co", Some("east"), Duration::from_secs(5));
    assert_eq!(cluster_of(c.addr, "r-two.repl.co"), Some("west"));
    assert_eq!(metrics(&c, "clusterns_nats_bootstraps_total"), 1.0);
    assert_eq!(metrics(&c, "clusterns_nats_connected"), 1.0);

    // Followed within moments; a message overlapping what is applied is taken once.
    p.publish("4 set r-one mark coolgame west\n5 delete r-two\n");
    p.publish("5 delete r-two\n6 set r-four ann blog west\n");
    until_answers(&c, "r-four.repl.co", Some("west"), Duration::from_secs(3));
    assert_eq!(cluster_of(c.addr, "r-one.repl.co"), Some("west"));
    let m = udp_ask(c.addr, "r-two.repl.co", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(wait_for(Duration::from_secs(5), || metrics(
        &c,
        "clusterns_feed_last_seq"
    ) == 6.0));
    assert_eq!(metrics(&c, "clusterns_nats_messages_total"), 3.0);
    assert!(metrics(&c, "clusterns_nats_received_bytes_total") > 60.0);
    assert_eq!(metrics(&c, "clusterns_feed_changes_rejected_total"), 0.0);

    // nats-server away for a few seconds: answers go on from the table.
    n.stop();
    let down = std::time::Instant::now();
    let mut answered = 0;
    while down.elapsed() < Duration::from_secs(3) {
        assert_eq!(cluster_of(c.addr, "r-one.repl.co"), Some("west"));
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered > 20);
    assert!(wait_for(Duration::from_secs(5), || metrics(
        &c,
        "clusterns_nats_connected"
    ) == 0.0));
    n.start();
    // Catches up with what is published after the restart.
    p.publish("7 set r-one mark coolgame east\n");
    until_answers(&c, "r-one.repl.co", Some("east"), Duration::from_secs(15));
    assert_eq!(metrics(&c, "clusterns_nats_connected"), 1.0);
    assert!(metrics(&c, "clusterns_nats_reconnects_total") >= 1.0);

    // A message that does not decode is skipped, loudly; the next one is taken.
    let mut h = HeaderMap::new();
    h.insert("Clusterns-Seq", "8-8");
    p.publish_raw(h, b"8 frobnicate r-one\n".to_vec());
    p.publish("9 set r-five ann www east\n");
    until_answers(&c, "r-five.repl.co", Some("east"), Duration::from_secs(3));
    assert_eq!(metrics(&c, "clusterns_nats_bad_messages_total"), 1.0);
    assert!(wait_for(Duration::from_secs(3), || log_has(
        &log,
        "message 8"
    ) || log_has(
        &log,
        "unknown verb"
    )));

    // A reset whose snapshot is damaged: refused, the table stays, answers go on.
    let t = natsd::table("10 set r-six zed app east\n");
    let clusters = vec!["east".to_string()];
    let ckpt = s.dir.path().join("good.ckpt");
    let pos = clusterns::feed::checkpoint::Position {
        last_seq: 10,
        ..Default::default()
    };
    clusterns::feed::checkpoint::write(&ckpt, &t, pos, &clusters).unwrap();
    let good = std::fs::read(&ckpt).unwrap();
    let mut damaged = good.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x5a;
    p.put_raw_snapshot(&damaged, 10);
    p.reset(10);
    assert!(
        wait_for(Duration::from_secs(5), || metrics(
            &c,
            "clusterns_nats_snapshots_refused_total"
        ) >= 1.0),
        "the damaged snapshot was not refused"
    );
    assert!(log_has(&log, "snapshot refused"));
    for _ in 0..10 {
        assert_eq!(cluster_of(c.addr, "r-one.repl.co"), Some("east"));
        assert_eq!(cluster_of(c.addr, "r-six.repl.co"), None);
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refused once: the same object is not downloaded again and again.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(metrics(&c, "clusterns_nats_snapshots_refused_total"), 1.0);
    // The good one is loaded when tried again: the table is the snapshot's.
    p.put_raw_snapshot(&good, 10);
    until_answers(&c, "r-six.repl.co", Some("east"), Duration::from_secs(10));
    assert_eq!(cluster_of(c.addr, "r-one.repl.co"), None);
    assert_eq!(metrics(&c, "clusterns_nats_bootstraps_total"), 2.0);
    // And following goes on after it.
    p.publish("11 set r-seven zed web west\n");
    until_answers(&c, "r-seven.repl.co", Some("west"), Duration::from_secs(3));
    assert!(wait_for(Duration::from_secs(3), || metrics(
        &c,
        "clusterns_nats_lag_changes"
    ) == 0.0));
}

#[test]
fn an_edge_behind_the_streams_retention_bootstraps_and_one_within_it_does_not() {
    let Some(n) = Natsd::start_new() else {
        return;
    };
    let p = Pub::new(&n);
    p.put_snapshot(START, 2);
    p.publish("3 set r-three ann site east\n");

    // An edge runs, then stops at change 3 (its checkpoint).
    let s = edge_setup(&n);
    let c = spawn_binary_logged(&s.config_path, true, None);
    until_answers(&c, "r-three.repl.co", Some("east"), Duration::from_secs(5));
    stop(c);
    let ckpt = s.dir.path().join("table.ckpt");
    let at = clusterns::feed::checkpoint::read_position(&ckpt).unwrap();
    assert_eq!(at.last_seq, 3);

    // Within the retention: it resumes from its checkpoint, no snapshot.
    p.publish("4 set r-four ann blog west\n");
    let c = spawn_binary_logged(&s.config_path, true, None);
    until_answers(&c, "r-four.repl.co", Some("west"), Duration::from_secs(5));
    assert_eq!(metrics(&c, "clusterns_nats_bootstraps_total"), 0.0);
    stop(c);

    // Away past the retention: changes 5..=8 published, the stream's head purged (its first
    // message now starts at change 7), a snapshot at 8.
    p.publish("5 set r-one mark coolgame west\n6 delete r-two\n");
    let first_kept = p.publish("7 set r-five ann www east\n");
    p.publish("8 set r-six zed app west\n");
    p.put_snapshot(
        &format!("{START}3 set r-three ann site east\n4 set r-four ann blog west\n5 set r-one mark coolgame west\n6 delete r-two\n7 set r-five ann www east\n8 set r-six zed app west\n"),
        8,
    );
    p.rt.block_on(async { p.stream.purge().sequence(first_kept).await })
        .unwrap();
    p.publish("9 set r-seven zed web east\n");

    let log = s.dir.path().join("edge.log");
    let c = spawn_binary_logged(&s.config_path, true, Some(&log));
    until_answers(&c, "r-seven.repl.co", Some("east"), Duration::from_secs(10));
    // The changes the stream lost are in: the table is the snapshot's, then 9.
    assert_eq!(cluster_of(c.addr, "r-one.repl.co"), Some("west"));
    assert_eq!(cluster_of(c.addr, "r-two.repl.co"), None);
    assert_eq!(cluster_of(c.addr, "r-six.repl.co"), Some("west"));
    assert_eq!(metrics(&c, "clusterns_nats_bootstraps_total"), 1.0);
    assert!(log_has(&log, "loading the snapshot"));
}

#[test]
fn an_edge_starting_while_nats_is_down_answers_from_its_checkpoint_then_catches_up() {
    let Some(mut n) = Natsd::start_new() else {
        return;
    };
    let p = Pub::new(&n);
    p.put_snapshot(START, 2);
    p.publish("3 set r-three ann site east\n");
    let s = edge_setup(&n);
    let c = spawn_binary_logged(&s.config_path, true, None);
    until_answers(&c, "r-three.repl.co", Some("east"), Duration::from_secs(5));
    stop(c);

    n.stop();
    let log = s.dir.path().join("edge.log");
    let c = spawn_binary_logged(&s.config_path, true, Some(&log));
    // Serving the checkpoint, not connected, not ready.
    assert_eq!(cluster_of(c.addr, "r-three.repl.co"), Some("east"));
    assert_eq!(cluster_of(c.addr, "r-one.repl.co"), Some("east"));
    assert_eq!(metrics(&c, "clusterns_nats_connected"), 0.0);
    assert!(wait_for(Duration::from_secs(5), || metrics(
        &c,
        "clusterns_feed_connected"
    ) == 0.0));
    let (status, _) = http_status(c.metrics.unwrap(), "/ready");
    assert_eq!(status, 503);

    n.start();
    p.publish("4 set r-one mark coolgame west\n");
    until_answers(&c, "r-one.repl.co", Some("west"), Duration::from_secs(15));
    assert_eq!(metrics(&c, "clusterns_nats_connected"), 1.0);
    assert_eq!(metrics(&c, "clusterns_nats_bootstraps_total"), 0.0);
    assert!(wait_for(Duration::from_secs(5), || http_status(
        c.metrics.unwrap(),
        "/ready"
    )
    .0 == 200));
}

#[test]
fn without_a_snapshot_an_edge_replays_a_whole_stream_and_refuses_to_start_on_a_purged_one() {
    let Some(n) = Natsd::start_new() else {
        return;
    };
    let p = Pub::new(&n);
    p.publish(START);
    let first_kept = p.publish("3 set r-three ann site east\n");
    let s = edge_setup(&n);
    let c = spawn_binary_logged(&s.config_path, true, None);
    until_answers(&c, "r-one.repl.co", Some("east"), Duration::from_secs(5));
    until_answers(&c, "r-three.repl.co", Some("east"), Duration::from_secs(5));
    assert_eq!(metrics(&c, "clusterns_nats_bootstraps_total"), 0.0);
    drop(c);

    // Its beginning purged: an edge without a checkpoint has nothing to start from.
    p.rt.block_on(async { p.stream.purge().sequence(first_kept).await })
        .unwrap();
    let s = edge_setup(&n);
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(&s.config_path)])
        .env("CLUSTERNS_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no snapshot in clusterns-snapshots"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
