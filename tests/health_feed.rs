//! Health reports through the journal and the builder: `health` lines from 2 of 3 checkers
//! make an address down and publish a new snapshot; the leases running out with no new line
//! make it unknown again and publish again; the running builder thread does the same on its
//! own, and its status (the metrics' source) follows.

mod common;

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clusterns::config::Config;
use clusterns::feed::Builder;
use clusterns::health::view::AddrState;
use clusterns::name::Label;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn config(s: &common::Setup) -> Arc<Config> {
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    Arc::new(Config::parse(&s.config_path, &text).unwrap())
}

fn append(s: &common::Setup, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.journal_path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Three checkers' reports on east's 203.0.113.1 (two down, one up) and one on 203.0.113.2,
/// from sequence 4, all until `until`.
fn reports(until: u64) -> String {
    format!(
        "4 health eu east 203.0.113.1 down {until}\n\
         5 health us east 203.0.113.1 down {until}\n\
         6 health ap east 203.0.113.1 up {until}\n\
         7 health eu east 203.0.113.2 up {until}\n"
    )
}

fn east() -> Label {
    "east".parse().unwrap()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn quorum_down_publishes_and_expiry_alone_fails_open() {
    let s = common::setup("");
    let mut b = Builder::load(config(&s)).unwrap();
    let shared = b.shared();
    let first = shared.load().generation;
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Unknown);

    let until = now() + 2;
    append(&s, &reports(until));
    assert_eq!(b.poll_once(Duration::ZERO).unwrap(), 4);
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Down);
    assert_eq!(state(&b, "203.0.113.2"), AddrState::Up);
    let after_reports = shared.load();
    assert!(after_reports.generation > first, "a new snapshot");
    assert_eq!(after_reports.last_seq, 7);
    assert_eq!(after_reports.table.health().len(), 4);
    let summary = b.status().health_summary();
    let (name, east_health) = &summary[0];
    assert_eq!(name.as_str(), "east");
    assert!(east_health.degraded && !east_health.failing_over);
    assert_eq!(
        (east_health.up, east_health.down, east_health.unknown),
        (1, 1, 1)
    );

    // Nothing new in the journal: the leases end, and that alone publishes.
    let generation = after_reports.generation;
    let deadline = Instant::now() + Duration::from_secs(6);
    while state(&b, "203.0.113.1") != AddrState::Unknown {
        assert!(Instant::now() < deadline, "the reports never expired");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(b.poll_once(Duration::ZERO).unwrap(), 0);
        b.maintain();
    }
    assert!(now() >= until);
    assert_eq!(b.health().known().count(), 0, "every address unknown");
    let expired = shared.load();
    assert!(expired.generation > generation, "the expiry was published");
    assert_eq!(expired.last_seq, 7, "with no new change");
    assert_eq!(
        expired.table.health().len(),
        4,
        "the reports are still held"
    );
    let summary = b.status().health_summary();
    assert!(!summary[0].1.degraded);
    assert_eq!(summary[0].1.unknown, 3);
    // And nothing more to do: no publication without a change of view.
    let quiet = shared.load().generation;
    b.maintain();
    assert_eq!(shared.load().generation, quiet);
}

#[test]
fn a_later_report_of_the_same_checker_replaces_its_earlier_one() {
    let s = common::setup("");
    let mut b = Builder::load(config(&s)).unwrap();
    let until = now() + 600;
    append(&s, &reports(until));
    b.poll_once(Duration::ZERO).unwrap();
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Down);
    // us changes its mind: 1 down, 2 up.
    append(&s, &format!("8 health us east 203.0.113.1 up {until}\n"));
    let generation = b.shared().load().generation;
    b.poll_once(Duration::ZERO).unwrap();
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Up);
    assert!(b.shared().load().generation > generation);
    assert_eq!(b.table().health().len(), 4);
    // A withdrawal (until 0) of eu's and ap's: 1 up of 1.
    append(
        &s,
        "9 health eu east 203.0.113.1 down 0\n10 health ap east 203.0.113.1 down 0\n",
    );
    b.poll_once(Duration::ZERO).unwrap();
    assert_eq!(b.table().health().len(), 2);
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Up);
    // A bad line is rejected and counted, the rest goes on.
    let rejected = b.rejected();
    append(&s, "11 health eu east 203.0.113.999 down 5\n");
    b.poll_once(Duration::ZERO).unwrap();
    assert_eq!(b.rejected(), rejected + 1);
}

#[test]
fn the_running_builder_follows_reports_and_leases_on_its_own() {
    let s = common::setup("");
    let b = Builder::load(config(&s)).unwrap();
    let status = b.status();
    let shared = b.shared();
    let handle = b.spawn().unwrap();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(8);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let until = now() + 2;
    append(&s, &reports(until));
    wait_for("east degraded", &|| {
        status
            .health_summary()
            .first()
            .is_some_and(|(_, h)| h.degraded)
    });
    assert_eq!(shared.load().last_seq, 7);
    wait_for("the leases to end", &|| {
        status
            .health_summary()
            .first()
            .is_some_and(|(_, h)| !h.degraded && h.unknown == 3)
    });
    assert!(now() >= until);
    handle.stop();
}

#[test]
fn compaction_keeps_the_latest_fresh_report_per_checker_and_address() {
    let s = common::setup("");
    let (fresh, old) = (now() + 600, now() - 10);
    append(
        &s,
        &format!(
            "4 health eu east 203.0.113.1 up {fresh}\n\
             5 health eu east 203.0.113.1 down {fresh}\n\
             6 health us east 203.0.113.1 down {old}\n\
             7 health us east 203.0.113.2 up {fresh}\n\
             8 health ap west 198.51.100.7 down {fresh}\n\
             9 health ap west 198.51.100.7 up 0\n"
        ),
    );
    let done = clusterns::feed::compact::compact(config(&s), None).unwrap();
    assert_eq!(done.seq, 9);
    let text = std::fs::read_to_string(&s.journal_path).unwrap();
    let held: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" health-held "))
        .collect();
    assert_eq!(
        held,
        [
            format!("9 health-held eu east 203.0.113.1 down {fresh}"),
            format!("9 health-held us east 203.0.113.2 up {fresh}"),
        ]
    );
    assert!(text.contains("9 snapshot end 5\n"), "{text}");
    // A server started on the compacted journal holds just those, and says the same.
    let b = Builder::load(config(&s)).unwrap();
    assert_eq!(b.rejected(), 0);
    assert_eq!(b.table().health().len(), 2);
    assert_eq!(b.table().apps().len(), 3);
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Down);
    assert_eq!(state(&b, "203.0.113.2"), AddrState::Up);
}

#[test]
fn a_checkpoint_carries_the_reports_across_a_restart() {
    let s = common::setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
        "journal = \"journal.log\"",
        "journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"",
    );
    std::fs::write(&s.config_path, text).unwrap();
    append(&s, &reports(now() + 600));
    let mut b = Builder::load(config(&s)).unwrap();
    b.checkpoint_now();
    let held = b.table().health().clone();
    drop(b);
    // The checkpoint file itself holds them.
    let loaded = clusterns::feed::checkpoint::read(&s.dir.path().join("table.ckpt")).unwrap();
    assert_eq!(loaded.position.last_seq, 7);
    assert_eq!(loaded.table.health(), &held);
    assert_eq!(held.len(), 4);
    // A restart resumes from it (nothing left to replay) with the same view.
    let b = Builder::load(config(&s)).unwrap();
    assert_eq!(b.table().health(), &held);
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Down);
}

#[test]
fn reports_over_the_limit_are_refused_and_counted() {
    let s = common::setup("");
    let mut b = Builder::load(config(&s)).unwrap();
    let until = now() + 600;
    let mut lines = String::new();
    for i in 0..65 {
        lines.push_str(&format!(
            "{} health c{i} east 203.0.113.1 up {until}\n",
            4 + i
        ));
    }
    // A cluster and an address the configuration lacks: kept (a reload may bring them).
    lines.push_str(&format!("69 health c0 north 192.0.2.1 down {until}\n"));
    append(&s, &lines);
    let rejected = b.rejected();
    assert_eq!(b.poll_once(Duration::ZERO).unwrap(), 65);
    assert_eq!(
        b.rejected(),
        rejected + 1,
        "the 65th checker of one address"
    );
    assert_eq!(b.table().health().len(), 65);
    assert_eq!(b.last_seq(), 69);
    assert_eq!(state(&b, "203.0.113.1"), AddrState::Up);
    let north: Label = "north".parse().unwrap();
    assert_eq!(b.health().state(&north, addr("192.0.2.1")), AddrState::Down);
    // Not in the configuration: not in the summary.
    assert_eq!(b.status().health_summary().len(), 2);
}

/// The builder's view of `address` of cluster `east`.
fn state(b: &Builder, address: &str) -> AddrState {
    b.health().state(&east(), addr(address))
}
