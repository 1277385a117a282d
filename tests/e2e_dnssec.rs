//! DNSSEC end to end: Debian's `unbound` validates what the real binary signs.
//!
//! `clusterns dnssec keygen` makes a CSK for `repl.co`; `clusterns serve` answers the zone
//! with it (a journal of apps and one ACME challenge value); a private `unbound` (temp dir,
//! free port on 127.0.0.1, foreground, no chroot) holds the key's DS as its trust anchor and
//! reaches the zone through a `stub-zone`, with `use-caps-for-id` on (the query name's case
//! must be echoed). Its root hints name an address on loopback where nothing listens, so it
//! never asks the internet. Every kind of answer must come back secure (AD set): app A by
//! both names, NODATA, non-existent names (RFC 9824 compact denial), an empty non-terminal,
//! the apex SOA/NS/DNSKEY/CDS/CDNSKEY, a configured host, a DS query inside the zone, and the
//! `_acme-challenge` TXT. A second `unbound` whose anchor has one digest digit flipped must
//! SERVFAIL the same query (the check can fail), and `kdig +dnssec` straight at the server
//! must see RRSIGs.
//!
//! `unbound_validates_through_a_key_rollover` rolls the CSK by config and SIGHUP (pre-publish,
//! switch, retire, remove) and has a fresh unbound, anchored on the parent's DS set of each
//! step, validate the answers at every step.
//!
//! `unbound_harness_validates_knot_onlinesign` runs the same cases against Knot DNS with
//! `mod-onlinesign` on the same names as a static zone: it shows the harness and its
//! expectations hold with a signer known to work, so a failure of the clusterns test is the
//! server's.
//!
//! Where `unbound` (or `kdig`, `knotd`) is not installed the test says so and passes, except
//! under `CI=true`, where it fails.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use common::*;

const ZONE: &str = "repl.co";
/// The app every test asks for, by its two names, and its cluster's addresses.
const APP: &str = "coolgame.mark.repl.co";
const APP_ID: &str = "r-one.repl.co";
const EAST_V4: [&str; 2] = ["203.0.113.1", "203.0.113.2"];
/// An app whose cluster has no IPv6: AAAA is NODATA.
const APP_V4_ONLY: &str = "notes.mark.repl.co";
/// The challenge name holding a value, and the value (hex in the journal).
const CHALLENGE: &str = "_acme-challenge.coolgame.mark.repl.co";
const CHALLENGE_VALUE: &str = "dnssec-e2e-token";

// ------------------------------------------------------------------------------- keys

/// A zone key: its file and the records to hand to the parent (presentation lines).
struct Key {
    file: PathBuf,
    dnskey: String,
    ds: String,
}

/// `clusterns dnssec keygen` for `repl.co` (ECDSA P-256 CSK) into `dir/repl.co.key`: the one
/// place that knows how keys are made.
fn keygen(dir: &Path, file_name: &str) -> Key {
    let file = dir.join(file_name);
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["dnssec", "keygen", "--zone", ZONE])
        .args(["--algorithm", "ecdsap256sha256", "--role", "csk", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "clusterns dnssec keygen failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |rtype: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(rtype))
            .unwrap_or_else(|| panic!("keygen printed no {rtype} line:\n{stdout}"))
            .trim()
            .to_string()
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the key file is readable by others: {mode:o}"
    );
    Key {
        file,
        dnskey: line("DNSKEY"),
        ds: line("DS"),
    }
}

impl Key {
    /// The key tag, from the DS line (`repl.co. 3600 IN DS <tag> 13 2 <hex>`).
    fn tag(&self) -> u16 {
        self.ds
            .split_whitespace()
            .nth(4)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no key tag in {:?}", self.ds))
    }

    fn file_name(&self) -> &str {
        self.file.file_name().unwrap().to_str().unwrap()
    }
}

/// The DS line with the last digit of its digest changed: a trust anchor that matches no key.
fn tampered(ds: &str) -> String {
    let mut s = ds.trim_end().to_string();
    let last = s.pop().expect("a DS line");
    assert!(
        last.is_ascii_hexdigit(),
        "a DS line ends in its hex digest: {ds}"
    );
    s.push(if last == '0' { '1' } else { '0' });
    s
}

// ------------------------------------------------------------------------------- unbound

/// A private validating unbound, stub-zoned to one authoritative server.
struct Unbound {
    child: std::process::Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Unbound {
    /// Starts it in `dir` (its own subfolder `name`) with `anchor` (a DS or DNSKEY line) as
    /// the zone's trust anchor, and returns once it serves.
    fn start(dir: &Path, name: &str, auth: SocketAddr, anchor: &str) -> Unbound {
        Unbound::start_anchored(dir, name, auth, &[anchor])
    }

    /// The same with several trust anchors (a DS set during a rollover).
    fn start_anchored(dir: &Path, name: &str, auth: SocketAddr, anchors: &[&str]) -> Unbound {
        let anchors: String = anchors
            .iter()
            .map(|a| format!("    trust-anchor: \"{a}\"\n"))
            .collect();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // The root "servers" are an address on loopback where nothing listens: a query that
        // escaped the stub zone fails at once instead of leaving the machine.
        let hints = dir.join("root.hints");
        std::fs::write(
            &hints,
            ".                3600000 NS root.invalid.\nroot.invalid.    3600000 A  127.0.0.254\n",
        )
        .unwrap();
        let port = free_port();
        let conf = dir.join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                r#"server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    so-reuseport: no
    num-threads: 1
    outgoing-range: 64
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    root-hints: "{hints}"
    trust-anchor-signaling: no
    root-key-sentinel: no
    use-caps-for-id: yes
{anchors}remote-control:
    control-enable: no
stub-zone:
    name: "{ZONE}"
    stub-addr: {ip}@{auth_port}
"#,
                dir = dir.display(),
                hints = hints.display(),
                ip = auth.ip(),
                auth_port = auth.port(),
            ),
        )
        .unwrap();
        let log = dir.join("unbound.log");
        let mut child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("unbound starts");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("start of service") {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("unbound exited while starting ({status}):\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "unbound did not start within 15 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Unbound {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------- queries

/// A recursive query with DO set, as a stub resolver asks a validating resolver.
fn do_query(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// Asks `addr` over UDP, waiting up to 10 s (a validator may make several queries first).
fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Result<Message, String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    static NEXT_ID: AtomicU16 = AtomicU16::new(0x5a5a);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let pkt = do_query(name, rtype, id);
    let started = Instant::now();
    let mut buf = [0u8; 65535];
    while started.elapsed() < Duration::from_secs(10) {
        s.send_to(&pkt, addr).unwrap();
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            let m = Message::from_vec(&buf[..n]).map_err(|e| format!("unparsable answer: {e}"))?;
            if m.id() == id {
                return Ok(m);
            }
        }
    }
    Err(format!("no answer from {addr} within 10 s"))
}

/// What a case must get back.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// NOERROR with at least one record of the query type owned by the query name.
    Answer,
    /// NOERROR, no record of the query type (the name exists).
    NoData,
    /// The name does not exist: no record of the query type; NXDOMAIN or (compact denial
    /// taken as it comes) NOERROR.
    Denied,
}

struct Case {
    name: String,
    rtype: RecordType,
    expect: Expect,
}

fn case(name: &str, rtype: RecordType, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        rtype,
        expect,
    }
}

/// Every kind of answer the zone gives, each of which must validate as secure.
fn cases(with_cds: bool) -> Vec<Case> {
    use Expect::*;
    use RecordType::*;
    let mut v = vec![
        case(APP, A, Answer),
        case(APP_ID, A, Answer),
        case(APP, AAAA, Answer),
        case(APP_V4_ONLY, AAAA, NoData),
        case(APP, MX, NoData),
        case("nothere.repl.co", A, Denied),
        case("ghost.mark.repl.co", A, Denied),
        case("deeper.nothere.repl.co", TXT, Denied),
        case("mark.repl.co", A, NoData),
        case(ZONE, SOA, Answer),
        case(ZONE, NS, Answer),
        case(ZONE, DNSKEY, Answer),
        case("ns1.repl.co", A, Answer),
        case(APP, DS, NoData),
        case(CHALLENGE, TXT, Answer),
        case("_acme-challenge.notes.mark.repl.co", TXT, Denied),
    ];
    if with_cds {
        v.push(case(ZONE, CDS, Answer));
        v.push(case(ZONE, CDNSKEY, Answer));
    }
    v
}

/// One line about an answer: rcode, flags, and the types in each section.
fn describe(m: &Message) -> String {
    let types = |rs: &[hickory_proto::rr::Record]| {
        rs.iter()
            .map(|r| r.record_type().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{:?}{} answer [{}] authority [{}]",
        m.response_code(),
        if m.authentic_data() { " ad" } else { "" },
        types(m.answers()),
        types(m.name_servers()),
    )
}

/// Asks `resolver` every case; returns the report (one line per case) and the failures.
fn run_cases(resolver: SocketAddr, cases: &[Case]) -> (String, Vec<String>) {
    let mut report = String::new();
    let mut failures = Vec::new();
    for c in cases {
        let what = format!("{} {}", c.name, c.rtype);
        let m = match ask(resolver, &c.name, c.rtype) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        report.push_str(&format!("{what:<48} {:?}: {}\n", c.expect, describe(&m)));
        let answered = m.answers().iter().any(|r| {
            r.record_type() == c.rtype
                && r.name().to_ascii().trim_end_matches('.').to_lowercase() == c.name.to_lowercase()
        });
        let mut wrong = Vec::new();
        if !m.authentic_data() {
            wrong.push("AD is not set (not validated as secure)".to_string());
        }
        match c.expect {
            Expect::Answer => {
                if m.response_code() != ResponseCode::NoError {
                    wrong.push(format!("rcode {:?}, expected NOERROR", m.response_code()));
                }
                if !answered {
                    wrong.push(format!("no {} record in the answer", c.rtype));
                }
            }
            Expect::NoData => {
                if m.response_code() != ResponseCode::NoError {
                    wrong.push(format!("rcode {:?}, expected NOERROR", m.response_code()));
                }
                if answered {
                    wrong.push(format!("a {} record in the answer", c.rtype));
                }
            }
            Expect::Denied => {
                if !matches!(
                    m.response_code(),
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) {
                    wrong.push(format!(
                        "rcode {:?}, expected NXDOMAIN or NOERROR",
                        m.response_code()
                    ));
                }
                if answered {
                    wrong.push(format!("a {} record in the answer", c.rtype));
                }
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{what}: {} ({})", wrong.join("; "), describe(&m)));
        }
    }
    (report, failures)
}

/// The A addresses of `name` through `resolver`, and whether they came back secure.
fn secure_a(resolver: SocketAddr, name: &str) -> (ResponseCode, bool, Vec<String>) {
    let m = ask(resolver, name, RecordType::A).unwrap();
    let mut a = a_records(&m);
    a.sort();
    (m.response_code(), m.authentic_data(), a)
}

/// The same query through an unbound whose anchor matches no key: SERVFAIL, never an answer.
fn assert_tampered_anchor_fails(dir: &Path, auth: SocketAddr, anchor: &str) {
    let bad = Unbound::start(dir, "unbound-tampered", auth, &tampered(anchor));
    let m = ask(bad.addr, APP, RecordType::A).unwrap();
    assert_eq!(
        m.response_code(),
        ResponseCode::ServFail,
        "a tampered trust anchor must make validation fail, got {}\nunbound log:\n{}",
        describe(&m),
        bad.log()
    );
    assert!(m.answers().is_empty(), "{}", describe(&m));
    println!(
        "tampered anchor: {APP} A -> {}; unbound says:\n{}",
        describe(&m),
        bad.log()
            .lines()
            .filter(|l| l.contains("validation failure") || l.contains("trust anchor"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every case through a resolver trusting `anchor`, then the tampered anchor.
fn validate_all(
    dir: &Path,
    auth: SocketAddr,
    anchor: &str,
    with_cds: bool,
    auth_log: &dyn Fn() -> String,
) {
    let good = Unbound::start(dir, "unbound", auth, anchor);
    let (report, failures) = run_cases(good.addr, &cases(with_cds));
    println!("through unbound (trust anchor {anchor}):\n{report}");
    assert!(
        failures.is_empty(),
        "{} of {} cases did not validate as expected:\n  {}\n\nevery case:\n{report}\nunbound log:\n{}\nauthoritative server log:\n{}",
        failures.len(),
        cases(with_cds).len(),
        failures.join("\n  "),
        good.log(),
        auth_log()
    );
    let (rcode, ad, a) = secure_a(good.addr, APP);
    assert_eq!(
        (rcode, ad, a),
        (
            ResponseCode::NoError,
            true,
            EAST_V4.map(String::from).to_vec()
        )
    );
    drop(good);
    assert_tampered_anchor_fails(dir, auth, anchor);
}

// ------------------------------------------------------------------------------- clusterns

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The server's config: one zone with `keys` (file name in the config's folder, state), ACME
/// challenges answered as TXT.
fn clusterns_config(keys: &[(&str, &str)]) -> String {
    let keys: String = keys
        .iter()
        .map(|(file, state)| {
            format!("[[zone.dnssec.key]]\nfile = \"{file}\"\nstate = \"{state}\"\n")
        })
        .collect();
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
threads = 2

[metrics]
listen = "127.0.0.1:0"

[feed]
source = "journal"
journal = "journal.log"

[[zone]]
apex = "{ZONE}"
ns = ["ns1.{ZONE}"]
acme = "txt"
soa = {{ rname = "hostmaster.{ZONE}" }}
[[zone.host]]
name = "ns1"
a = ["127.0.0.1"]
{keys}
[[cluster]]
name = "east"
ipv4 = ["{}", "{}"]
ipv6 = ["2001:db8::1"]

[[cluster]]
name = "west"
ipv4 = ["198.51.100.7"]
"#,
        EAST_V4[0], EAST_V4[1],
    )
}

/// Signed answers straight from the server (before any validator): RRSIGs with DO.
fn assert_signs(addr: SocketAddr) {
    let m = ask(addr, APP, RecordType::A).unwrap();
    assert!(
        m.answers()
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG),
        "the server's answer to {APP} A with DO has no RRSIG: {}\n{m}",
        describe(&m)
    );
}

/// One UDP exchange returning the raw answer (for `domain`'s parser).
fn exchange_raw(addr: SocketAddr, pkt: &[u8]) -> Vec<u8> {
    let s = udp_client();
    s.send_to(pkt, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).expect("an answer within 2 s");
    buf.truncate(n);
    buf
}

/// rcode and, per NSEC in the authority section: owner, next name, NXNAME (type 128) in the
/// bitmap; plus whether an RRSIG is there.
fn denial_of(answer: Vec<u8>) -> (domain::base::iana::Rcode, Vec<(String, String, bool)>, bool) {
    use domain::base::name::ParsedName;
    use domain::base::{Message, Rtype};
    use domain::rdata::Nsec;
    let msg = Message::from_octets(answer).expect("the answer parses");
    let auth = msg.authority().expect("an authority section");
    let nsecs = auth
        .limit_to::<Nsec<&[u8], ParsedName<&[u8]>>>()
        .map(|r| {
            let r = r.expect("an NSEC record parses");
            (
                r.owner().to_string().to_lowercase(),
                r.data().next_name().to_string().to_lowercase(),
                r.data().types().contains(Rtype::from_int(128)),
            )
        })
        .collect();
    let signed = msg
        .authority()
        .unwrap()
        .any(|r| r.map(|r| r.rtype() == Rtype::RRSIG).unwrap_or(false));
    (msg.header().rcode(), nsecs, signed)
}

/// RFC 9824 straight from the server, as the spec has it: with DO a non-existent name is
/// NOERROR with a signed NSEC at the name (next name `\000.<name>`, NXNAME in the bitmap);
/// with DO and CO (EDNS flag 0x4000) the rcode is NXDOMAIN; without DO it is the unsigned
/// NXDOMAIN of old. An empty non-terminal's NSEC has no NXNAME.
fn assert_compact_denial(addr: SocketAddr) {
    use domain::base::iana::Rcode;
    let name = "nothere.repl.co";
    let with_do = do_query(name, RecordType::A, 0x1001);
    // The OPT record ends the query: ... ttl = ext-rcode, version, flags (2), rdlen (2) = 0.
    let n = with_do.len();
    assert_eq!(
        with_do[n - 4..],
        [0x80, 0, 0, 0],
        "DO is where the OPT flags are"
    );
    let mut with_co = with_do.clone();
    with_co[n - 4] |= 0x40;

    let (rcode, nsecs, signed) = denial_of(exchange_raw(addr, &with_do));
    let want = (name.to_string(), format!("\\000.{name}"), true);
    assert_eq!(
        rcode,
        Rcode::NOERROR,
        "compact denial without CO: {nsecs:?}"
    );
    assert_eq!(nsecs, vec![want.clone()], "the NSEC of compact denial");
    assert!(signed, "the denial carries RRSIGs");

    let (rcode, nsecs, _) = denial_of(exchange_raw(addr, &with_co));
    assert_eq!(
        rcode,
        Rcode::NXDOMAIN,
        "with CO the rcode is NXDOMAIN: {nsecs:?}"
    );
    assert_eq!(nsecs, vec![want], "with CO, the same NSEC");

    let (rcode, nsecs, signed) = denial_of(exchange_raw(
        addr,
        &query(name, RecordType::A, 0x1002, true),
    ));
    assert_eq!(rcode, Rcode::NXDOMAIN, "without DO nothing changes");
    assert!(nsecs.is_empty() && !signed, "without DO: no NSEC, no RRSIG");

    let ent = "mark.repl.co";
    let (rcode, nsecs, _) = denial_of(exchange_raw(addr, &do_query(ent, RecordType::A, 0x1003)));
    assert_eq!(rcode, Rcode::NOERROR, "an empty non-terminal: {nsecs:?}");
    assert_eq!(nsecs.len(), 1, "one NSEC at {ent}: {nsecs:?}");
    assert_eq!(nsecs[0].0, ent, "{nsecs:?}");
    assert!(
        !nsecs[0].2,
        "an empty non-terminal exists: no NXNAME ({nsecs:?})"
    );
}

/// `kdig +dnssec` straight at the server, for the README: its output must show the RRSIG.
fn kdig_sample(addr: SocketAddr) {
    if !have("kdig", "--version") {
        return;
    }
    let out = Command::new("kdig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+dnssec", APP, "A"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("kdig +dnssec {APP} A:\n{text}");
    assert!(out.status.success(), "kdig failed: {text}");
    assert!(
        text.contains("flags: do"),
        "kdig's answer has no DO: {text}"
    );
    assert!(text.contains("RRSIG"), "kdig's answer has no RRSIG: {text}");
}

#[test]
fn unbound_validates_every_kind_of_answer() {
    if !have("unbound", "-V") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "repl.co.key");
    println!("key: {}\n{}\n{}", key.file.display(), key.dnskey, key.ds);
    let journal = format!(
        "{JOURNAL}4 txt-add {CHALLENGE} {} {}\n",
        now_unix() + 86400,
        hex(CHALLENGE_VALUE)
    );
    std::fs::write(dir.path().join("journal.log"), journal).unwrap();
    let config = dir.path().join("clusterns.toml");
    std::fs::write(&config, clusterns_config(&[(key.file_name(), "active")])).unwrap();
    let server_log = dir.path().join("server.log");
    let server = spawn_binary_logged(&config, true, Some(&server_log));
    let log = || std::fs::read_to_string(&server_log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(5), || {
            ask(server.addr, CHALLENGE, RecordType::TXT)
                .map(|m| {
                    m.answers()
                        .iter()
                        .any(|r| r.record_type() == RecordType::TXT)
                })
                .unwrap_or(false)
        }),
        "the challenge value was not loaded:\n{}",
        log()
    );
    assert_signs(server.addr);
    assert_compact_denial(server.addr);
    kdig_sample(server.addr);

    validate_all(dir.path(), server.addr, &key.ds, true, &log);

    let metrics = http_get(server.metrics.unwrap(), "/metrics");
    let dnssec: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("clusterns_dnssec_"))
        .collect();
    println!("metrics:\n{}", dnssec.join("\n"));
    assert!(
        metric(&metrics, "clusterns_dnssec_signatures_total", &[]) > 0.0,
        "no signature counted:\n{}",
        dnssec.join("\n")
    );
}

/// Key tags in the server's own answer (DO set) to `name`/`rtype`: of the DNSKEY, CDS or RRSIG
/// records in the answer section, by type.
fn tags_of(addr: SocketAddr, name: &str, rtype: RecordType) -> (Vec<u16>, Vec<u16>, Vec<u16>) {
    use domain::base::name::ParsedName;
    use domain::base::Message;
    use domain::rdata::{Cds, Dnskey, Rrsig};
    let raw = exchange_raw(addr, &do_query(name, rtype, 0x2001));
    let msg = Message::from_octets(raw).expect("the answer parses");
    let answer = || msg.answer().expect("an answer section");
    let mut dnskey: Vec<u16> = answer()
        .limit_to::<Dnskey<&[u8]>>()
        .map(|r| r.unwrap().data().key_tag())
        .collect();
    let mut cds: Vec<u16> = answer()
        .limit_to::<Cds<&[u8]>>()
        .map(|r| r.unwrap().data().key_tag())
        .collect();
    let mut rrsig: Vec<u16> = answer()
        .limit_to::<Rrsig<&[u8], ParsedName<&[u8]>>>()
        .map(|r| r.unwrap().data().key_tag())
        .collect();
    dnskey.sort();
    cds.sort();
    rrsig.sort();
    (dnskey, cds, rrsig)
}

/// One step of a rollover: the keys in the config and what must follow from them.
struct Step<'a> {
    keys: Vec<(&'a str, &'a str)>,
    dnskey: Vec<u16>,
    cds: Vec<u16>,
    /// The key signing the app's A RRset.
    signer: u16,
    /// The DS set the parent publishes at this step: the resolver's trust anchors.
    anchors: Vec<&'a str>,
}

/// A CSK rollover driven by the config and SIGHUP, without a restart, validated by a fresh
/// unbound at each step (the parent's DS set as its anchors): old active; new published
/// (DNSKEY and CDS hold both, the old one signs); new active and old published (the new one
/// signs); old retired (still in DNSKEY, gone from CDS); old removed.
#[test]
fn unbound_validates_through_a_key_rollover() {
    if !have("unbound", "-V") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let old = keygen(dir.path(), "old.key");
    let new = keygen(dir.path(), "new.key");
    assert_ne!(old.tag(), new.tag(), "two keys with one tag: run again");
    std::fs::write(dir.path().join("journal.log"), JOURNAL).unwrap();
    let config = dir.path().join("clusterns.toml");
    let write = |keys: &[(&str, &str)]| std::fs::write(&config, clusterns_config(keys)).unwrap();
    write(&[(old.file_name(), "active")]);
    let server_log = dir.path().join("server.log");
    let server = spawn_binary_logged(&config, false, Some(&server_log));
    let log = || std::fs::read_to_string(&server_log).unwrap_or_default();

    let (o, n) = (old.tag(), new.tag());
    let both = {
        let mut v = vec![o, n];
        v.sort();
        v
    };
    let (old_f, new_f) = (old.file_name(), new.file_name());
    let steps = [
        Step {
            keys: vec![(old_f, "active")],
            dnskey: vec![o],
            cds: vec![o],
            signer: o,
            anchors: vec![&old.ds],
        },
        Step {
            keys: vec![(old_f, "active"), (new_f, "published")],
            dnskey: both.clone(),
            cds: both.clone(),
            signer: o,
            anchors: vec![&old.ds],
        },
        Step {
            keys: vec![(old_f, "published"), (new_f, "active")],
            dnskey: both.clone(),
            cds: both.clone(),
            signer: n,
            anchors: vec![&old.ds, &new.ds],
        },
        Step {
            keys: vec![(old_f, "retired"), (new_f, "active")],
            dnskey: both.clone(),
            cds: vec![n],
            signer: n,
            anchors: vec![&new.ds],
        },
        Step {
            keys: vec![(new_f, "active")],
            dnskey: vec![n],
            cds: vec![n],
            signer: n,
            anchors: vec![&new.ds],
        },
    ];
    for (i, step) in steps.iter().enumerate() {
        let keys = &step.keys;
        if i > 0 {
            write(keys);
            server.signal(libc::SIGHUP);
        }
        // Wait for the reload: every step differs from the one before in one of these.
        let want = (step.dnskey.clone(), step.cds.clone(), vec![step.signer]);
        let mut got = None;
        let reloaded = wait_for(Duration::from_secs(5), || {
            let (dnskey, _, _) = tags_of(server.addr, ZONE, RecordType::DNSKEY);
            let (_, cds, _) = tags_of(server.addr, ZONE, RecordType::CDS);
            let (_, _, signers) = tags_of(server.addr, APP, RecordType::A);
            let now = (dnskey, cds, signers);
            let done = now == want;
            got = Some(now);
            done
        });
        assert!(
            reloaded,
            "step {i} {keys:?}: want (DNSKEY, CDS, A's RRSIG) key tags {want:?}, got {got:?}\n{}",
            log()
        );
        let resolver = Unbound::start_anchored(
            dir.path(),
            &format!("unbound-{i}"),
            server.addr,
            &step.anchors,
        );
        let rollover_cases = [
            case(APP, RecordType::A, Expect::Answer),
            case(ZONE, RecordType::DNSKEY, Expect::Answer),
            case("nothere.repl.co", RecordType::A, Expect::Denied),
        ];
        let (report, failures) = run_cases(resolver.addr, &rollover_cases);
        println!("step {i} {keys:?}:\n{report}");
        assert!(
            failures.is_empty(),
            "step {i} {keys:?}:\n  {}\nunbound log:\n{}\nserver log:\n{}",
            failures.join("\n  "),
            resolver.log(),
            log()
        );
    }
}

// ------------------------------------------------------------------------------- Knot

/// The test's names as a static zone, for Knot: the same apps, host, challenge.
fn knot_zone() -> String {
    format!(
        "$ORIGIN {ZONE}.\n$TTL 60\n\
         @ 3600 IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 7200 3600 1209600 60\n\
         @ 3600 IN NS ns1.{ZONE}.\n\
         ns1 IN A 127.0.0.1\n\
         coolgame.mark IN A {a0}\ncoolgame.mark IN A {a1}\ncoolgame.mark IN AAAA 2001:db8::1\n\
         r-one IN A {a0}\nr-one IN A {a1}\nr-one IN AAAA 2001:db8::1\n\
         notes.mark IN A 198.51.100.7\nr-two IN A 198.51.100.7\n\
         _acme-challenge.coolgame.mark IN TXT \"{CHALLENGE_VALUE}\"\n",
        a0 = EAST_V4[0],
        a1 = EAST_V4[1],
    )
}

#[test]
fn unbound_harness_validates_knot_onlinesign() {
    if !have("unbound", "-V") || !have("knotd", "--version") || !have("keymgr", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("db")).unwrap();
    std::fs::write(d.join("zone.txt"), knot_zone()).unwrap();
    let port = free_port();
    let conf = d.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{d}/db"
control:
    listen: "{d}/knot.sock"
log:
  - target: stderr
    any: info
policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
mod-onlinesign:
  - id: csk
    policy: csk
zone:
  - domain: {ZONE}
    file: "{d}/zone.txt"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    module: mod-onlinesign/csk
"#,
            d = d.display()
        ),
    )
    .unwrap();
    let knot_log = d.join("knot.log");
    let child = std::process::Command::new("knotd")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&knot_log).unwrap()))
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _knot = Kill(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = || std::fs::read_to_string(&knot_log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(10), || {
            udp_exchange(addr, &do_query(ZONE, RecordType::DNSKEY, 7))
                .map(|m| !m.answers().is_empty())
                .unwrap_or(false)
        }),
        "knotd did not answer DNSKEY:\n{}",
        log()
    );
    let out = Command::new("keymgr")
        .arg("-c")
        .arg(&conf)
        .args([ZONE, "ds"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ds = text
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("2"))
        .unwrap_or_else(|| panic!("keymgr printed no SHA-256 DS:\n{text}"))
        .to_string();
    // The NSEC parser of assert_compact_denial reads Knot's "black lies" (the same NSEC shape,
    // without NXNAME: Knot 3.2 predates RFC 9824).
    let denial = denial_of(exchange_raw(
        addr,
        &do_query("nothere.repl.co", RecordType::A, 9),
    ));
    let want = ("nothere.repl.co", "\\000.nothere.repl.co", false);
    assert_eq!(
        denial,
        (
            domain::base::iana::Rcode::NOERROR,
            vec![(want.0.to_string(), want.1.to_string(), want.2)],
            true
        )
    );
    validate_all(d, addr, &ds, false, &log);
}
