//! Operating the real binary: the metrics endpoint adds up under load, SIGHUP reloads a good
//! config and keeps the old one on a bad one (also when it comes during the start-up load),
//! SIGTERM lets TCP answers out and exits 0; the sampled query log reads as dig names things;
//! a closed stdout does not stop the server.

mod common;

use std::io::Write;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::*;

/// `promtool check metrics` (Debian's `prometheus` package) accepts `body`: types, names,
/// help texts. Skipped, saying so, where promtool is not installed (never in CI).
fn promtool_accepts(body: &str) {
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("promtool not installed ({e}): metrics not checked by it");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_metrics(s: &Setup) {
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    std::fs::write(
        &s.config_path,
        format!("{text}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
}

#[test]
fn metrics_add_up_to_the_queries_sent() {
    let s = setup("");
    with_metrics(&s);
    let c = spawn_binary(&s.config_path, true);
    let maddr = c.metrics.unwrap();
    let before = http_get(maddr, "/metrics");
    assert_eq!(metric(&before, "clusterns_responses_total", &[]), 0.0);
    assert_eq!(metric(&before, "clusterns_table_apps", &[]), 3.0);

    // Load from a thread while scraping.
    let addr = c.addr;
    let load = std::thread::spawn(move || {
        let client = udp_client();
        let mut buf = [0u8; 2048];
        for i in 0..300u16 {
            let pkt = match i % 3 {
                0 => query("r-one.repl.co", RecordType::A, i, true),
                1 => query("missing.repl.co", RecordType::AAAA, i, false),
                _ => vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0],
            };
            client.send_to(&pkt, addr).unwrap();
            client.recv_from(&mut buf).unwrap();
        }
    });
    let mut last = 0.0;
    for _ in 0..5 {
        let body = http_get(maddr, "/metrics");
        let n = metric(&body, "clusterns_responses_total", &["transport=\"udp\""]);
        assert!(n >= last, "counters only grow");
        last = n;
        std::thread::sleep(Duration::from_millis(5));
    }
    load.join().unwrap();
    let mut s_tcp = tcp_connect(c.addr);
    for i in 0..20 {
        tcp_send(&mut s_tcp, &query("r-two.repl.co", RecordType::A, i, false));
        tcp_read(&mut s_tcp).unwrap();
    }

    // A worker counts a batch's latency after sendmmsg returns, so the client can have the last
    // answer a moment before it is counted: wait (bounded) for the count to settle. Every other
    // counter is written before the answer is sent and is checked exactly.
    let latency_count = |body: &str| {
        metric(
            body,
            "clusterns_query_latency_seconds_count",
            &["transport=\"udp\""],
        )
    };
    let mut body = http_get(maddr, "/metrics");
    let settle = std::time::Instant::now();
    while latency_count(&body) < 300.0 && settle.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
        body = http_get(maddr, "/metrics");
    }
    let udp = |rcode: &str| {
        metric(
            &body,
            "clusterns_responses_total",
            &["transport=\"udp\"", &format!("rcode=\"{rcode}\"")],
        )
    };
    assert_eq!(udp("NOERROR"), 100.0, "{body}");
    assert_eq!(udp("NXDOMAIN"), 100.0);
    assert_eq!(udp("FORMERR"), 100.0);
    assert_eq!(
        metric(&body, "clusterns_responses_total", &["transport=\"udp\""]),
        300.0
    );
    assert_eq!(
        metric(
            &body,
            "clusterns_packets_received_total",
            &["transport=\"udp\""]
        ),
        300.0
    );
    assert_eq!(
        metric(
            &body,
            "clusterns_queries_total",
            &["transport=\"udp\"", "qtype=\"A\""]
        ),
        100.0
    );
    assert_eq!(
        metric(
            &body,
            "clusterns_queries_total",
            &["transport=\"udp\"", "qtype=\"AAAA\""]
        ),
        100.0
    );
    assert_eq!(
        metric(&body, "clusterns_malformed_total", &["transport=\"udp\""]),
        100.0
    );
    assert_eq!(
        metric(&body, "clusterns_responses_total", &["transport=\"tcp\""]),
        20.0
    );
    assert_eq!(
        metric(&body, "clusterns_tcp_connections_total", &["accepted"]),
        1.0
    );
    assert_eq!(metric(&body, "clusterns_tcp_connections_open", &[]), 1.0);
    assert_eq!(latency_count(&body), 300.0);
    let p99 = metric(
        &body,
        "clusterns_query_latency_percentile_seconds",
        &["transport=\"udp\"", "percentile=\"99\""],
    );
    assert!(p99 > 0.0 && p99 < 1.0, "{p99}");
    // A Prometheus histogram: cumulative buckets ending at +Inf = count, and a sum.
    let bucket = |le: &str| {
        metric(
            &body,
            "clusterns_query_latency_seconds_bucket",
            &["transport=\"udp\"", &format!("le=\"{le}\"")],
        )
    };
    assert_eq!(bucket("+Inf"), 300.0);
    assert!(bucket("0.000001") <= bucket("0.001") && bucket("0.001") <= bucket("0.1"));
    assert!(bucket("0.1") >= 290.0, "queries take well under 100 ms");
    let sum = metric(
        &body,
        "clusterns_query_latency_seconds_sum",
        &["transport=\"udp\""],
    );
    assert!(sum > 0.0 && sum < 300.0 * 0.1, "{sum}");
    // Build, process and feed state; no sentinel values.
    assert_eq!(metric(&body, "clusterns_build_info", &["version=\""]), 1.0);
    assert!(body.contains("\nprocess_cpu_seconds_total "), "{body}");
    let started = metric(&body, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "{started} vs {now}"
    );
    assert!(metric(&body, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(metric(&body, "process_open_fds", &[]) > 3.0);
    assert_eq!(metric(&body, "clusterns_feed_connected", &[]), 1.0);
    assert!(!body.contains(" -1\n"), "no -1 sentinels: {body}");
    assert!(
        !body.contains("clusterns_checkpoint_age_seconds"),
        "absent until a checkpoint is written"
    );
    assert!(body.contains("# TYPE clusterns_feed_changes_applied_total counter"));
    promtool_accepts(&body);

    // Health and readiness for load balancers and orchestrators.
    assert_eq!(http_get(maddr, "/health"), "ok\n");
    let ready = http_get(maddr, "/ready");
    assert!(ready.starts_with("ready: 3 apps"), "{ready}");
    // Without its journal the server still answers (the last table) but is not ready.
    std::fs::remove_file(&s.journal_path).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || http_status(maddr, "/ready").0
            == 503),
        "not ready without the journal"
    );
    assert!(http_status(maddr, "/ready")
        .1
        .contains("journal is missing"));
    assert_eq!(http_status(maddr, "/nothing").0, 404);
    assert_eq!(metric(&body, "clusterns_feed_last_seq", &[]), 3.0);
    assert!(metric(&body, "clusterns_snapshot_generation", &[]) >= 1.0);
    assert!(metric(&body, "clusterns_feed_behind_seconds", &[]) < 5.0);
}

#[test]
fn sighup_reloads_good_configs_and_keeps_the_old_on_bad_ones() {
    let s = setup("");
    let c = spawn_binary(&s.config_path, false);
    let good = std::fs::read_to_string(&s.config_path).unwrap();
    assert_eq!(
        a_records(&udp_ask(c.addr, "r-two.repl.co", RecordType::A)),
        vec!["198.51.100.7"]
    );

    // A good change: west moves to a new address, the TTL changes.
    std::fs::write(
        &s.config_path,
        good.replace("198.51.100.7", "198.51.100.99")
            .replace("negative_ttl = 30", "negative_ttl = 30\nttl = 20"),
    )
    .unwrap();
    c.signal(libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(3), || {
        a_records(&udp_ask(c.addr, "r-two.repl.co", RecordType::A)) == vec!["198.51.100.99"]
    }));
    assert_eq!(
        udp_ask(c.addr, "r-two.repl.co", RecordType::A).answers()[0].ttl(),
        20
    );

    // A broken file: nothing changes, the server lives on.
    std::fs::write(&s.config_path, "this is [not toml").unwrap();
    c.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a_records(&udp_ask(c.addr, "r-two.repl.co", RecordType::A)),
        vec!["198.51.100.99"]
    );

    // A config without a cluster that apps use is refused as well.
    let without_west = good.replace(
        "[[cluster]]\nname = \"west\"\nipv4 = [\"198.51.100.7\"]\n",
        "",
    );
    assert_ne!(without_west, good);
    std::fs::write(&s.config_path, without_west).unwrap();
    c.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a_records(&udp_ask(c.addr, "r-two.repl.co", RecordType::A)),
        vec!["198.51.100.99"]
    );
    assert_eq!(
        udp_ask(c.addr, "missing.repl.co", RecordType::A).response_code(),
        ResponseCode::NXDomain
    );
}

#[test]
fn sigterm_finishes_tcp_answers_and_exits_zero() {
    let s = setup("");
    let mut c = spawn_binary(&s.config_path, false);
    let mut conn = tcp_connect(c.addr);
    let mut burst = Vec::new();
    for i in 0..300u16 {
        let q = query("r-one.repl.co", RecordType::A, i, false);
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    conn.write_all(&burst).unwrap();
    // The first answer shows the server has the queries; then stop it.
    assert_eq!(tcp_read(&mut conn).unwrap().id(), 0);
    c.signal(libc::SIGTERM);
    for i in 1..300u16 {
        assert_eq!(tcp_read(&mut conn).unwrap().id(), i);
    }
    let status = c.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // No more answers: the connection is closed.
    assert!(tcp_read(&mut conn).is_err());
}

#[test]
fn the_query_log_names_things_as_dig_does() {
    let s = setup("query_log_sample = 1");
    let log = s.dir.path().join("server.log");
    let c = spawn_binary_logged(&s.config_path, false, Some(&log));
    udp_ask(c.addr, "coolgame.mark.repl.co", RecordType::A);
    udp_ask(c.addr, "missing.repl.co", RecordType::SOA);
    let logged = |needle: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().any(|l| l.contains(needle))
    };
    assert!(
        wait_for(Duration::from_secs(5), || logged("missing.repl.co.")),
        "both queries logged"
    );
    drop(c);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("query")).collect();
    let hit = lines
        .iter()
        .find(|l| l.contains("coolgame.mark.repl.co."))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(hit.contains("qtype=A rcode=NOERROR"), "{hit}");
    assert!(hit.contains("client=127.0.0.1:"), "{hit}");
    let nx = lines
        .iter()
        .find(|l| l.contains("missing.repl.co."))
        .unwrap();
    assert!(nx.contains("qtype=SOA rcode=NXDOMAIN"), "{nx}");
    assert!(!text.contains("Some("), "no Rust debug values: {text}");
}

/// A SIGHUP while the table loads (`systemctl reload` right after a restart) must not kill
/// the server: it comes up, and reloads once the feed runs.
#[test]
fn sighup_during_the_start_up_load_is_a_reload_not_a_kill() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let s = setup("threads = 1");
    // Enough changes that loading takes a good while in a debug build.
    let mut journal = String::new();
    for i in 1..=200_000u32 {
        journal.push_str(&format!("{i} set r{i} u{} s{i} east\n", i % 5000));
    }
    std::fs::write(&s.journal_path, journal).unwrap();
    let log = s.dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(&s.config_path)])
        .env("CLUSTERNS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("clusterns: listening on ")
        .unwrap_or_else(|| panic!("the server died: {:?}, log: {text}", child.try_wait()))
        .parse()
        .unwrap();
    let m = udp_ask(addr, "s7.u7.repl.co", RecordType::A);
    assert_eq!(a_records(&m), ["203.0.113.1", "203.0.113.2"]);
    assert!(
        wait_for(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).unwrap().contains("reloaded")
        }),
        "the SIGHUP became a reload"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("SIGHUP came while loading"),
        "the signal came during the load: {text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Type=notify: READY=1 once the table is loaded and the sockets answer (not before),
/// RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM; the first log line says
/// the version, the config and the feed.
#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};
    let s = setup("");
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let log = s.dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(&s.config_path)])
        .env("CLUSTERNS_LOG", "info")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let recv = |buf: &mut [u8]| {
        let n = sock.recv(buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = recv(&mut buf);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(ready.contains("STATUS=answering: 3 apps"), "{ready}");
    // Ready means answering.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("clusterns: listening on ")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        a_records(&udp_ask(addr, "r-one.repl.co", RecordType::A)).len(),
        2
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let reloading = recv(&mut buf);
    assert!(reloading.contains("RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    assert!(recv(&mut buf).contains("READY=1"));
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(recv(&mut buf).contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains("clusterns starting"), "{first}");
    assert!(
        first.contains("version=") && first.contains("feed=journal"),
        "{first}"
    );
}

/// Whoever started the server may stop reading its stdout (a pipe closed at once here): the
/// start-up report then goes nowhere, and the server still answers (it used to panic on the
/// closed pipe as it printed "listening on").
#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    let s = setup("");
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two new descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just made by pipe(2) and are owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let log = s.dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(&s.config_path)])
        .env("CLUSTERNS_LOG", "info")
        .stdout(Stdio::from(write_end))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = {
        let mut found = None;
        assert!(
            wait_for(Duration::from_secs(10), || {
                let text = std::fs::read_to_string(&log).unwrap();
                found = text
                    .lines()
                    .find(|l| l.contains("answering over udp and tcp"))
                    .and_then(|l| l.split("addr=").nth(1))
                    .and_then(|a| a.split_whitespace().next())
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                found.is_some()
            }),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        found.unwrap()
    };
    assert_eq!(
        a_records(&udp_ask(addr, "r-one.repl.co", RecordType::A)).len(),
        2
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
