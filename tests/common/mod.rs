//! Shared helpers for the end-to-end tests: a config in a temp dir, an in-process server on
//! 127.0.0.1 with a free port, and a DNS client built on hickory-proto (not the server's own
//! encoder).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use clusterns::config::Config;
use clusterns::feed::{Builder, BuilderHandle};
use clusterns::server::Server;

pub const JOURNAL: &str = "\
1 set r-one mark coolgame east
2 set r-two mark notes west
3 set r-three ann site east
";

pub fn config_text(extra_server: &str) -> String {
    let threads = if extra_server.contains("threads") {
        ""
    } else {
        "threads = 2"
    };
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
{threads}
{extra_server}

[feed]
source = "journal"
journal = "journal.log"

[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co", "ns.example.net"]
acme_validation_zone = "acme.example.net"
negative_ttl = 30
soa = {{ rname = "hostmaster.repl.co" }}
[[zone.host]]
name = "ns1"
a = ["192.0.2.53"]

[[cluster]]
name = "east"
ipv4 = ["203.0.113.1", "203.0.113.2"]
ipv6 = ["2001:db8::1"]

[[cluster]]
name = "west"
ipv4 = ["198.51.100.7"]
"#
    )
}

/// A config and journal in a temp dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub journal_path: PathBuf,
}

pub fn setup(extra_server: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("clusterns.toml");
    let journal_path = dir.path().join("journal.log");
    std::fs::write(&config_path, config_text(extra_server)).unwrap();
    std::fs::write(&journal_path, JOURNAL).unwrap();
    Setup {
        dir,
        config_path,
        journal_path,
    }
}

/// An in-process server with its feed thread.
pub struct Running {
    pub server: Option<Server>,
    pub feed: Option<BuilderHandle>,
    pub addr: SocketAddr,
    setup: Option<Setup>,
}

impl Running {
    /// The config and journal the server runs from.
    pub fn setup(&self) -> &Setup {
        self.setup.as_ref().expect("present until stopped")
    }

    /// Stops the server and its feed (which writes its last checkpoint) and returns the files.
    pub fn stop(mut self) -> Setup {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        if let Some(f) = self.feed.take() {
            f.stop();
        }
        self.setup.take().expect("present until stopped")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        if let Some(f) = self.feed.take() {
            f.stop();
        }
    }
}

pub fn start(extra_server: &str) -> Running {
    let setup = setup(extra_server);
    start_with(setup)
}

pub fn start_with(setup: Setup) -> Running {
    let config = Arc::new(Config::load(&setup.config_path).unwrap());
    let builder = Builder::load(config.clone()).unwrap();
    let server = Server::start(&config.server, builder.shared()).unwrap();
    let feed = builder.spawn().unwrap();
    let addr = server.local_addrs()[0];
    Running {
        server: Some(server),
        feed: Some(feed),
        addr,
        setup: Some(setup),
    }
}

pub fn query(name: &str, rtype: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

pub fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

/// Sends one datagram and waits for one answer.
pub fn udp_exchange(addr: SocketAddr, pkt: &[u8]) -> Option<Message> {
    let s = udp_client();
    s.send_to(pkt, addr).unwrap();
    let mut buf = [0u8; 65535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(Message::from_vec(&buf[..n]).expect("response parses")),
        Err(_) => None,
    }
}

pub fn udp_ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp_exchange(addr, &query(name, rtype, 0x4242, true)).expect("an answer")
}

pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

pub fn tcp_send(s: &mut TcpStream, pkt: &[u8]) {
    let mut framed = (pkt.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(pkt);
    s.write_all(&framed).unwrap();
}

pub fn tcp_read(s: &mut TcpStream) -> std::io::Result<Message> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    Ok(Message::from_vec(&buf).expect("response parses"))
}

/// The A addresses in a response's answer section.
pub fn a_records(m: &Message) -> Vec<String> {
    m.answers()
        .iter()
        .filter_map(|r| r.data().and_then(|d| d.as_a()).map(|a| a.to_string()))
        .collect()
}

/// Polls `f` every 10 ms until it returns true or `limit` passes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The real binary, serving `config`, with the addresses it printed.
pub struct Child {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

/// Starts `clusterns serve --config <config>` and reads the addresses it prints.
pub fn spawn_binary(config: &Path, expect_metrics: bool) -> Child {
    spawn_binary_logged(config, expect_metrics, None)
}

/// The same, with its log (at `info`) written to `log` when given (else at `warn`, dropped).
pub fn spawn_binary_logged(config: &Path, expect_metrics: bool, log: Option<&Path>) -> Child {
    use std::io::BufRead;
    let (level, stderr) = match log {
        Some(p) => (
            "info",
            std::process::Stdio::from(std::fs::File::create(p).unwrap()),
        ),
        None => ("warn", std::process::Stdio::null()),
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(config)])
        .env("CLUSTERNS_LOG", level)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut read_addr = |prefix: &str| -> SocketAddr {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .parse()
            .unwrap()
    };
    let addr = read_addr("clusterns: listening on ");
    let metrics = expect_metrics.then(|| read_addr("clusterns: metrics on "));
    Child {
        child,
        addr,
        metrics,
    }
}

/// Appends `text` to `path` as a writer by hand would (creating it).
pub fn append_raw(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// GETs `path` from an HTTP server and returns the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let (status, body) = http_status(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// GET `path`: the status code and the body.
pub fn http_status(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1."), "{head}");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

/// The sum of every sample of `metric` whose labels contain all of `labels`.
pub fn metric(body: &str, metric: &str, labels: &[&str]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let name = key.split('{').next()?;
            (name == metric && labels.iter().all(|want| key.contains(want)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// [`start_with`], the server taking UPDATE messages with `updates` (see
/// `Server::start_with_updates`).
pub fn start_with_updates(
    setup: Setup,
    updates: Option<Box<dyn clusterns::server::UpdateHandler>>,
) -> Running {
    let config = Arc::new(Config::load(&setup.config_path).unwrap());
    let builder = Builder::load(config.clone()).unwrap();
    let server = Server::start_with_updates(&config.server, builder.shared(), updates).unwrap();
    let feed = builder.spawn().unwrap();
    let addr = server.local_addrs()[0];
    Running {
        server: Some(server),
        feed: Some(feed),
        addr,
        setup: Some(setup),
    }
}

/// Whether `tool` runs (`tool <version_arg>`); outside CI a missing tool skips the test,
/// saying so; under `CI=true` it fails it.
pub fn have(tool: &str, version_arg: &str) -> bool {
    match std::process::Command::new(tool).arg(version_arg).output() {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("skipped: {tool} is not installed ({e})");
            false
        }
        Err(e) => panic!("{tool} is required in CI: {e}"),
    }
}

/// A port free on 127.0.0.1 for both TCP and UDP (peers started by the tests bind both; on
/// Linux it is free on every 127.0.0.x too).
pub fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
