//! `clusterns health --dry-run` end to end: real TCP and HTTP listeners on 127.0.0.x stand in
//! for load-balancer addresses; the binary's report lines on stdout say which are up and down,
//! follow a listener that stops, renew their leases, and the metrics endpoint counts the
//! probes. SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LEASE: u64 = 3;

/// One report line: `<seq> health <checker> <cluster> <addr> up|down <until>`, and when it
/// was read.
#[derive(Debug, Clone)]
struct Line {
    seq: u64,
    checker: String,
    cluster: String,
    addr: IpAddr,
    up: bool,
    until: u64,
    at: Instant,
}

fn parse(text: &str, at: Instant) -> Line {
    let f: Vec<&str> = text.split(' ').collect();
    assert_eq!(f.len(), 7, "line {text:?}");
    assert_eq!(f[1], "health", "line {text:?}");
    assert!(f[5] == "up" || f[5] == "down", "line {text:?}");
    Line {
        seq: f[0].parse().unwrap(),
        checker: f[2].into(),
        cluster: f[3].into(),
        addr: f[4].parse().unwrap(),
        up: f[5] == "up",
        until: f[6].parse().unwrap(),
        at,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HTTP responder on `ip:port` answering every request with `status`.
fn http_responder(ip: &str, port: u16, status: u16) -> u16 {
    let listener = TcpListener::bind((ip, port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            });
        }
    });
    port
}

/// The child, killed if the test fails before it is stopped.
struct Checker(Child);

impl Drop for Checker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line matching `f` among those read (keeping them all in `seen`).
fn wait_line(
    rx: &mpsc::Receiver<Line>,
    seen: &mut Vec<Line>,
    limit: Duration,
    f: impl Fn(&Line) -> bool,
) -> Option<Line> {
    if let Some(l) = seen.iter().find(|l| f(l)) {
        return Some(l.clone());
    }
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(l) = rx.recv_timeout(left) else { break };
        seen.push(l.clone());
        if f(&l) {
            return Some(l);
        }
    }
    None
}

fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("{prefix} missing in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_checker_reports_up_down_changes_and_renewals() {
    // tcp: 127.0.0.2 listens, 127.0.0.3 (same port) refuses.
    let tcp = TcpListener::bind("127.0.0.2:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    // web: 127.0.0.4 answers 200, 127.0.0.5 (same port) answers 503.
    let web_port = http_responder("127.0.0.4", 0, 200);
    http_responder("127.0.0.5", web_port, 503);
    let metrics_addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = checker_config(
        dir.path(),
        "e2e-a",
        LEASE,
        &format!("metrics = \"{metrics_addr}\""),
        &format!(
            r#"
[[cluster]]
name = "tcp"
ipv4 = ["127.0.0.2", "127.0.0.3"]
check = {{ kind = "tcp", port = {tcp_port} }}

[[cluster]]
name = "web"
ipv4 = ["127.0.0.4", {{ address = "127.0.0.5", weight = 0 }}]
check = {{ kind = "http", port = {web_port}, path = "/healthz", expect_status = 200 }}
"#
        ),
    );
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let started = unix_now();
    let mut child = Checker(
        Command::new(env!("CARGO_BIN_EXE_clusterns"))
            .args(["health", "--dry-run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(parse(&line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let wait = Duration::from_secs(5);
    let is = |cluster: &'static str, addr: &'static str, up: bool| {
        let addr: IpAddr = addr.parse().unwrap();
        move |l: &Line| l.cluster == cluster && l.addr == addr && l.up == up
    };

    // The first states: up where something answers as expected, down elsewhere.
    let first_up = wait_line(&rx, &mut seen, wait, is("tcp", "127.0.0.2", true));
    let first_up = first_up.expect("127.0.0.2 reported up");
    wait_line(&rx, &mut seen, wait, is("tcp", "127.0.0.3", false)).expect("127.0.0.3 down");
    let web_up = wait_line(&rx, &mut seen, wait, is("web", "127.0.0.4", true));
    let web_up = web_up.expect("127.0.0.4 up");
    wait_line(&rx, &mut seen, wait, is("web", "127.0.0.5", false)).expect("503: down");
    for l in &seen {
        assert_eq!(l.checker, "e2e-a");
        assert!(
            l.until >= started + LEASE && l.until <= unix_now() + LEASE,
            "{l:?}"
        );
    }
    assert!(
        first_up.until <= started + LEASE + 1,
        "a lease from the report's time"
    );

    // Stop the TCP listener: a down line within fall x interval + 1 s.
    drop(tcp);
    let stopped = Instant::now();
    let down = wait_line(&rx, &mut seen, wait, |l| {
        l.at >= stopped && is("tcp", "127.0.0.2", false)(l)
    })
    .expect("127.0.0.2 reported down after its listener stopped");
    let took = down.at - stopped;
    assert!(took <= Duration::from_millis(1100), "down after {took:?}");

    // Renewals: the unchanged address is reported again, a third of the lease later, with a
    // later lease.
    let renewal = wait_line(&rx, &mut seen, wait, |l| {
        l.seq > web_up.seq && is("web", "127.0.0.4", true)(l)
    })
    .expect("a renewal of 127.0.0.4");
    let gap = renewal.at - web_up.at;
    assert!(
        gap >= Duration::from_millis(800) && gap <= Duration::from_millis(2000),
        "renewed after {gap:?} (lease {LEASE} s)"
    );
    assert!(renewal.until > web_up.until);

    // The lines are numbered in order, none missing.
    for (i, l) in seen.iter().enumerate() {
        assert_eq!(l.seq, i as u64 + 1, "{l:?}");
    }

    // The metrics endpoint.
    let text = metrics(metrics_addr);
    let probes =
        r#"clusterns_health_probes_total{cluster="web",address="127.0.0.5",result="down"}"#;
    assert!(metric(&text, probes) >= 3.0, "{text}");
    let up = r#"clusterns_health_address_up{cluster="tcp",address="127.0.0.2"}"#;
    assert_eq!(metric(&text, up), 0.0);
    let up = r#"clusterns_health_address_up{cluster="web",address="127.0.0.4"}"#;
    assert_eq!(metric(&text, up), 1.0);
    let age = r#"clusterns_health_seconds_since_report{cluster="web",address="127.0.0.4"}"#;
    assert!(metric(&text, age) < 1.5, "{text}");
    assert_eq!(metric(&text, "clusterns_health_write_errors_total"), 0.0);

    // SIGTERM: a clean exit.
    let pid = libc::pid_t::try_from(child.0.id()).unwrap();
    // SAFETY: kill(2) on the child this test started and still owns (not yet waited for).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status:?}");
    reader.join().unwrap();
}

#[test]
fn once_prints_every_address_and_exits() {
    let tcp = TcpListener::bind("127.0.0.6:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = checker_config(
        dir.path(),
        "e2e-once",
        3,
        "",
        &format!(
            r#"
[[cluster]]
name = "one"
ipv4 = ["127.0.0.6", "127.0.0.7"]
check = {{ kind = "tcp", port = {port} }}
"#
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["health", "--once", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "one 127.0.0.6 up\none 127.0.0.7 down (refused)\n"
    );
    drop(tcp);
}

/// A checker's configuration in `dir` (a journal feed, one zone, `[health]` probing every
/// 100 ms with rise and fall 1 and a lease of `lease` seconds, `health_extra` lines added to
/// it) with the `clusters` sections; returns its path.
fn checker_config(
    dir: &std::path::Path,
    checker: &str,
    lease: u64,
    health_extra: &str,
    clusters: &str,
) -> std::path::PathBuf {
    let config = dir.join("clusterns.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[feed]
source = "journal"
journal = "journal.log"

[[zone]]
apex = "example.net"
ns = ["ns.example.org"]
soa = {{ rname = "hostmaster.example.net" }}

[health]
checker = "{checker}"
interval_ms = 100
timeout_ms = 80
rise = 1
fall = 1
lease_secs = {lease}
{health_extra}
{clusters}"#
        ),
    )
    .unwrap();
    config
}
