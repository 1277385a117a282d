//! Health-checked answers end to end, with the real binary: HTTP and TCP listeners on
//! 127.0.0.x stand in for the clusters' load-balancer addresses; two `clusterns health`
//! checkers and a `clusterns serve` share one source of truth (a journal; PostgreSQL too when
//! `CLUSTERNS_TEST_PG` is set).
//!
//! - stop one listener: its address leaves the answers within `fall x interval` + 1 s, and the
//!   answers' TTL becomes the degraded one;
//! - stop all of a cluster's listeners: its apps are answered with the failover cluster's
//!   addresses;
//! - kill both checkers: once their reports' lease has passed, the answers fail open (every
//!   address again).

mod common;
#[path = "pg/mod.rs"]
mod pg;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use common::*;

const INTERVAL_MS: u64 = 100;
const FALL: u64 = 2;
const LEASE_SECS: u64 = 3;
const APP: &str = "coolgame.mark.repl.co";

/// A listener standing in for one load-balancer address: answers every HTTP request with
/// 200 (or just accepts, for a TCP check) until stopped; then the port refuses.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(addr: SocketAddr, http: bool) -> Listener {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) if http => answer_http(s),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Listener {
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the port: connections are refused from now on.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer_http(mut s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}

fn feed_section(journal: Option<&Path>, conninfo: Option<&str>) -> String {
    match (journal, conninfo) {
        (Some(j), _) => format!("source = \"journal\"\njournal = \"{}\"", j.display()),
        (None, Some(c)) => {
            format!("source = \"postgres\"\npostgres = \"{c}\"\npoll_interval_ms = 100")
        }
        (None, None) => unreachable!(),
    }
}

/// The configuration every process shares; `checker` names a checker's reports.
fn config(feed: &str, http_port: u16, tcp_port: u16, checker: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
threads = 1

[metrics]
listen = "127.0.0.1:0"

[feed]
{feed}

[health]
checker = "{checker}"
interval_ms = {INTERVAL_MS}
timeout_ms = 80
rise = 1
fall = {FALL}
lease_secs = {LEASE_SECS}

[[zone]]
apex = "repl.co"
ttl = 60
ns = ["ns.example.net"]
soa = {{ rname = "hostmaster.repl.co" }}

[[cluster]]
name = "east"
ipv4 = ["127.0.0.2", "127.0.0.3"]
failover = "west"
[cluster.check]
kind = "http"
port = {http_port}
path = "/healthz"

[[cluster]]
name = "west"
ipv4 = ["127.0.0.4"]
[cluster.check]
kind = "tcp"
port = {tcp_port}
"#
    )
}

/// A `clusterns health` process.
struct Checker(Child);

impl Checker {
    fn start(config: &Path, log: &Path) -> Checker {
        let child = Command::new(env!("CARGO_BIN_EXE_clusterns"))
            .args(["health", "--config", path_str(config)])
            .env("CLUSTERNS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Checker(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The A addresses answered for the app (sorted) and their TTL.
fn answer(server: SocketAddr) -> (Vec<String>, u32) {
    let m = udp_ask(server, APP, RecordType::A);
    let mut a = a_records(&m);
    a.sort();
    let ttl = m.answers().first().map_or(0, |r| r.ttl());
    (a, ttl)
}

/// Waits (up to `limit`) for the answer to be `want`; returns how long it took.
fn wait_answer(server: SocketAddr, want: &[&str], limit: Duration, what: &str) -> (Duration, u32) {
    let start = Instant::now();
    loop {
        let (a, ttl) = answer(server);
        if a == want {
            return (start.elapsed(), ttl);
        }
        assert!(
            start.elapsed() < limit,
            "{what}: still answering {a:?} after {limit:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Files {
    _dir: tempfile::TempDir,
    server_config: PathBuf,
    checker_configs: [PathBuf; 2],
    logs: [PathBuf; 2],
    http_port: u16,
    tcp_port: u16,
}

fn files(journal: bool, conninfo: Option<&str>) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("journal.log");
    if journal {
        std::fs::write(&j, "1 set r-one mark coolgame east\n").unwrap();
    }
    let feed = feed_section(journal.then_some(j.as_path()), conninfo);
    let (http_port, tcp_port) = (free_port(), free_port());
    let write = |name: &str, checker: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, config(&feed, http_port, tcp_port, checker)).unwrap();
        p
    };
    Files {
        server_config: write("server.toml", "edge"),
        checker_configs: [write("a.toml", "check-a"), write("b.toml", "check-b")],
        logs: [dir.path().join("a.log"), dir.path().join("b.log")],
        _dir: dir,
        http_port,
        tcp_port,
    }
}

/// The whole scenario over one source of truth.
fn scenario(f: &Files) {
    let addr = |host: &str, port: u16| -> SocketAddr { format!("{host}:{port}").parse().unwrap() };
    let mut east2 = Listener::start(addr("127.0.0.2", f.http_port), true);
    let mut east3 = Listener::start(addr("127.0.0.3", f.http_port), true);
    let _west = Listener::start(addr("127.0.0.4", f.tcp_port), false);

    let server = spawn_binary(&f.server_config, true);
    let metrics = server.metrics.expect("a metrics endpoint");
    let gauge = |name: &str, cluster: &str| {
        metric(
            &http_get(metrics, "/metrics"),
            name,
            &[&format!("cluster=\"{cluster}\"")],
        )
    };
    let mut checkers = [
        Checker::start(&f.checker_configs[0], &f.logs[0]),
        Checker::start(&f.checker_configs[1], &f.logs[1]),
    ];
    let healthy = ["127.0.0.2", "127.0.0.3"];
    let (_, ttl) = wait_answer(server.addr, &healthy, Duration::from_secs(10), "at start");
    assert_eq!(ttl, 60, "healthy answers carry the zone's TTL");
    assert_eq!(gauge("clusterns_cluster_degraded", "east"), 0.0);
    // Let both checkers report every address up before anything fails.
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    // One address stops: it leaves the answers within fall x interval + 1 s.
    east3.stop();
    let bound = Duration::from_millis(FALL * INTERVAL_MS + 1000);
    let (took, ttl) = wait_answer(server.addr, &["127.0.0.2"], bound, "one address down");
    assert_eq!(ttl, 30, "a degraded cluster's answers carry half the TTL");
    println!("an address left the answers {took:?} after its listener stopped (bound {bound:?})");
    assert_eq!(gauge("clusterns_cluster_degraded", "east"), 1.0);
    assert_eq!(gauge("clusterns_cluster_failing_over", "east"), 0.0);

    // The whole cluster stops: its apps are answered with the failover cluster's address.
    east2.stop();
    let (took, ttl) = wait_answer(server.addr, &["127.0.0.4"], bound, "cluster down");
    assert_eq!(ttl, 30, "failing over is degraded");
    println!("failover {took:?} after the cluster's last listener stopped");
    assert_eq!(gauge("clusterns_cluster_failing_over", "east"), 1.0);
    assert_eq!(gauge("clusterns_cluster_degraded", "west"), 0.0);

    // The checkers die: after the lease, nobody vouches for anything: fail open.
    for c in &mut checkers {
        c.kill();
    }
    let limit = Duration::from_secs(LEASE_SECS + 3);
    let (took, ttl) = wait_answer(server.addr, &healthy, limit, "checkers gone");
    assert_eq!(ttl, 60, "unknown health is not degraded");
    assert!(
        took >= Duration::from_millis(500),
        "answers failed open at once ({took:?}): the reports' lease was not honoured"
    );
    println!("answers failed open {took:?} after the checkers died (lease {LEASE_SECS} s)");
    assert_eq!(gauge("clusterns_cluster_degraded", "east"), 0.0);
}

#[test]
fn journal_checkers_steer_the_answers() {
    let f = files(true, None);
    scenario(&f);
}

#[test]
fn postgres_checkers_steer_the_answers() {
    let Some((db, _client)) =
        pg::with_schema("INSERT INTO repls VALUES ('r-one', 'mark', 'coolgame', 'east')")
    else {
        return;
    };
    let f = files(false, Some(&db.conninfo()));
    scenario(&f);
}
