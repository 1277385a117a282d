//! The rounds against real listeners on 127.0.0.x, with a sink that records (and fails when
//! told to).

use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::health::checker::ReportSink;
use crate::health::report::HealthReport;

/// A config with cluster `up` on 127.0.0.1 (where `port` listens, with a drained second
/// address 127.0.0.2 on the same port), `gone` on 127.0.0.3 (nothing listens on `port`
/// there: refused) and `plain` without a check.
fn config(port: u16, rise: u32, fall: u32) -> Config {
    let text = format!(
        r#"
[feed]
source = "journal"
journal = "journal.log"

[[zone]]
apex = "example.net"
ns = ["ns.example.org"]
soa = {{ rname = "hostmaster.example.net" }}

[health]
checker = "test-checker"
interval_ms = 100
timeout_ms = 80
rise = {rise}
fall = {fall}
lease_secs = 3

[[cluster]]
name = "up"
ipv4 = ["127.0.0.1", {{ address = "127.0.0.2", weight = 0 }}]
check = {{ kind = "tcp", port = {port} }}

[[cluster]]
name = "gone"
ipv4 = ["127.0.0.3"]
check = {{ kind = "tcp", port = {port} }}

[[cluster]]
name = "plain"
ipv4 = ["127.0.0.4"]
"#
    );
    Config::parse(Path::new("/tmp/c.toml"), &text).unwrap()
}

/// A listener on every loopback address (127.0.0.1 and .2 reach it; .3 is refused because
/// it binds 127.0.0.1 and 127.0.0.2 only).
fn listeners() -> (u16, Vec<TcpListener>) {
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let second = TcpListener::bind(("127.0.0.2", port)).unwrap();
    (port, vec![first, second])
}

/// Records every batch; the first `fail` writes fail.
#[derive(Clone, Default)]
struct Recorder {
    batches: Arc<Mutex<Vec<Vec<HealthReport>>>>,
    attempts: Arc<Mutex<usize>>,
    fail: usize,
}

impl ReportSink for Recorder {
    fn write(&mut self, reports: &[HealthReport]) -> Result<(), String> {
        let mut attempts = self.attempts.lock().unwrap();
        *attempts += 1;
        if *attempts <= self.fail {
            return Err("the source is away".into());
        }
        self.batches.lock().unwrap().push(reports.to_vec());
        Ok(())
    }
}

fn summary(batch: &[HealthReport]) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = batch
        .iter()
        .map(|r| (r.cluster.to_string(), r.addr.to_string(), r.up))
        .collect();
    v.sort();
    v
}

#[test]
fn once_probes_every_checked_address_drained_ones_too() {
    let (port, _l) = listeners();
    let mut c = Checker::new(&config(port, 1, 1)).unwrap();
    assert_eq!(c.name().as_str(), "test-checker");
    let got: Vec<_> = c
        .once()
        .unwrap()
        .into_iter()
        .map(|o| (o.cluster.to_string(), o.addr.to_string(), o.state, o.probe))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "up".into(),
                "127.0.0.1".into(),
                AddrState::Up,
                Some(ProbeResult::Up)
            ),
            (
                "up".into(),
                "127.0.0.2".into(),
                AddrState::Up,
                Some(ProbeResult::Up)
            ),
            (
                "gone".into(),
                "127.0.0.3".into(),
                AddrState::Down,
                Some(ProbeResult::Down("refused".into()))
            ),
        ]
    );
}

#[test]
fn once_with_rise_above_one_decides_nothing() {
    let (port, _l) = listeners();
    let mut c = Checker::new(&config(port, 2, 2)).unwrap();
    let states: Vec<_> = c.once().unwrap().into_iter().map(|o| o.state).collect();
    assert_eq!(states, vec![AddrState::Unknown; 3]);
}

#[test]
fn nothing_to_probe_is_an_error() {
    let mut cfg = config(1, 1, 1);
    for c in &mut cfg.clusters {
        c.check = None;
    }
    let e = Checker::new(&cfg).err().unwrap();
    assert!(e.contains("nothing to probe"), "{e}");
}

#[test]
fn the_host_name_names_an_unnamed_checker() {
    let mut cfg = config(1, 1, 1);
    cfg.health.checker = None;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let first = host.trim().split('.').next().unwrap().to_ascii_lowercase();
    match checker_name(&cfg.health) {
        Ok(name) => assert_eq!(name.as_str(), first),
        Err(e) => assert!(e.contains("set [health] checker"), "{e}"),
    }
}

/// Runs the checker against `sink` for `secs`, then stops it; returns its metrics text.
fn run_for(cfg: &Config, sink: &mut Recorder, secs: f64) -> (Checker, Duration) {
    let mut c = Checker::new(cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs));
        flag.store(true, Relaxed);
        Instant::now()
    });
    c.run(sink, &stop).unwrap();
    let stopped_at = timer.join().unwrap();
    (c, stopped_at.elapsed())
}

#[test]
fn run_reports_changes_then_renewals_and_stops_when_told() {
    let (port, listeners) = listeners();
    let mut sink = Recorder::default();
    let cfg = config(port, 1, 1);
    // Lease 3 s: renewals every second; 2.5 s see the first reports and two renewals.
    let before = unix_now();
    let (c, stop_lag) = run_for(&cfg, &mut sink, 2.5);
    assert!(
        stop_lag < Duration::from_millis(500),
        "stopped {stop_lag:?} late"
    );
    let batches = sink.batches.lock().unwrap().clone();
    assert_eq!(
        summary(&batches[0]),
        vec![
            ("gone".into(), "127.0.0.3".into(), false),
            ("up".into(), "127.0.0.1".into(), true),
            ("up".into(), "127.0.0.2".into(), true),
        ]
    );
    assert!(batches[0]
        .iter()
        .all(|r| r.checker.as_str() == "test-checker"));
    // The lease: 3 s from the report.
    assert!(batches[0]
        .iter()
        .all(|r| r.until >= before + 3 && r.until <= before + 4));
    // Renewals: every address again, about a second apart (rounds of 100 ms).
    assert!(
        (3..=4).contains(&batches.len()),
        "{} batches",
        batches.len()
    );
    for (i, b) in batches.iter().enumerate().skip(1) {
        assert_eq!(summary(b), summary(&batches[0]));
        assert!(
            b[0].until >= batches[i - 1][0].until,
            "renewals extend the lease"
        );
    }
    assert!(batches.last().unwrap()[0].until > batches[0][0].until);
    let text = c.metrics().render(Instant::now());
    assert!(text.contains(r#"clusterns_health_address_up{cluster="gone",address="127.0.0.3"} 0"#));
    assert!(text.contains(r#"clusterns_health_address_up{cluster="up",address="127.0.0.1"} 1"#));
    assert!(text.contains("clusterns_health_write_errors_total 0"));
    drop(listeners);
}

#[test]
fn a_failed_write_is_retried_and_a_down_is_not_lost() {
    let (port, listeners) = listeners();
    let mut sink = Recorder {
        fail: 3,
        ..Recorder::default()
    };
    let cfg = config(port, 1, 1);
    let (c, _) = run_for(&cfg, &mut sink, 0.8);
    let batches = sink.batches.lock().unwrap().clone();
    // Three rounds failed; the fourth wrote everything that was due.
    assert_eq!(
        *sink.attempts.lock().unwrap(),
        4,
        "one write per round until it works"
    );
    assert_eq!(batches.len(), 1);
    assert!(summary(&batches[0]).contains(&("gone".into(), "127.0.0.3".into(), false)));
    assert_eq!(c.metrics().write_errors(), 3);
    drop(listeners);
}

#[test]
fn a_listener_that_stops_is_reported_down() {
    let (port, mut listeners) = listeners();
    let mut sink = Recorder::default();
    let cfg = config(port, 1, 2);
    let mut c = Checker::new(&cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let recorded = sink.batches.clone();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        // 127.0.0.2 stops listening.
        listeners.truncate(1);
        let closed = Instant::now();
        // Fall 2 at 100 ms: reported within two or three rounds.
        let deadline = closed + Duration::from_secs(2);
        let mut seen = None;
        while Instant::now() < deadline && seen.is_none() {
            std::thread::sleep(Duration::from_millis(20));
            let batches = recorded.lock().unwrap();
            if batches
                .iter()
                .flatten()
                .any(|r| r.addr.to_string() == "127.0.0.2" && !r.up)
            {
                seen = Some(closed.elapsed());
            }
        }
        flag.store(true, Relaxed);
        seen
    });
    c.run(&mut sink, &stop).unwrap();
    let seen = closer.join().unwrap().expect("a down report for 127.0.0.2");
    assert!(
        seen >= Duration::from_millis(100),
        "after {seen:?}: fall 2 needs two probes"
    );
    assert!(seen < Duration::from_millis(600), "after {seen:?}");
}
