//! The way of a DNS UPDATE message through the server (issue #16 plumbing), with a fake
//! handler in place of the UPDATE/TSIG engine: in-process servers on 127.0.0.1 with free
//! ports, messages built and answers read with hickory-proto, and BIND's `nsupdate` (skipped,
//! saying so, where it is not installed, never in CI).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use clusterns::query::Transport;
use clusterns::server::UpdateHandler;
use common::{query, setup, start_with_updates, tcp_connect, tcp_read, tcp_send, udp_client};

/// What the fake handler saw: the message's ID, its transport and size limit.
type Seen = Arc<Mutex<Vec<(u16, Transport, usize)>>>;

/// Answers every UPDATE with its header and zone section, QR set and `rcode`, padded with
/// zeros to `pad` bytes; waits for `gate` to open and then `delay` first.
struct Fake {
    rcode: u8,
    pad: usize,
    delay: Duration,
    gate: Option<Arc<AtomicBool>>,
    seen: Seen,
}

impl Fake {
    fn answering(rcode: u8) -> Fake {
        Fake {
            rcode,
            pad: 0,
            delay: Duration::ZERO,
            gate: None,
            seen: Seen::default(),
        }
    }
}

/// Where a message's zone section (one uncompressed entry) ends.
fn zone_end(msg: &[u8]) -> usize {
    let mut at = 12;
    while msg[at] != 0 {
        at += 1 + usize::from(msg[at]);
    }
    at + 1 + 4
}

impl UpdateHandler for Fake {
    fn handle(
        &mut self,
        msg: &[u8],
        _client: SocketAddr,
        transport: Transport,
        max_len: usize,
        out: &mut Vec<u8>,
    ) {
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        self.seen.lock().unwrap().push((id, transport, max_len));
        if let Some(gate) = &self.gate {
            let until = Instant::now() + Duration::from_secs(10);
            while !gate.load(Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(self.delay);
        out.extend_from_slice(&msg[..zone_end(msg)]);
        out[2] |= 0x80;
        out[3] = out[3] & 0xf0 | self.rcode;
        out[6..12].fill(0);
        out.resize(out.len().max(self.pad), 0);
    }
}

/// An UPDATE for zone `repl.co` adding a TXT record, with EDNS at `edns` bytes if given.
fn update(id: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Update)
        .add_query(Query::query(
            Name::from_ascii("repl.co.").unwrap(),
            RecordType::SOA,
        ));
    m.add_name_server(Record::from_rdata(
        Name::from_ascii("_acme-challenge.mark.repl.co.").unwrap(),
        60,
        RData::TXT(TXT::new(vec!["token".into()])),
    ));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn running(fake: Fake, extra: &str) -> common::Running {
    start_with_updates(setup(extra), Some(Box::new(fake)))
}

/// Receives one datagram: its bytes and where it came from.
fn recv(s: &std::net::UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 65535];
    let (n, from) = s.recv_from(&mut buf).expect("an answer");
    (buf[..n].to_vec(), from)
}

fn stat(r: &common::Running, f: impl Fn(&clusterns::server::stats::WorkerStats) -> u64) -> u64 {
    r.server
        .as_ref()
        .unwrap()
        .stats()
        .iter()
        .map(|s| f(s))
        .sum()
}

#[test]
fn udp_update_is_answered_from_the_address_and_port_it_was_sent_to() {
    let fake = Fake::answering(0);
    let seen = fake.seen.clone();
    let r = running(fake, "");
    let c = udp_client();
    let msg = update(0x5151, Some(1232));
    c.send_to(&msg, r.addr).unwrap();
    let (answer, from) = recv(&c);
    assert_eq!(
        from, r.addr,
        "answered from the server's own address and port"
    );
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.id(), 0x5151);
    assert_eq!(m.message_type(), MessageType::Response);
    assert_eq!(m.op_code(), OpCode::Update);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(*seen.lock().unwrap(), [(0x5151, Transport::Udp, 1232)]);
    // Queries are answered as ever.
    c.send_to(
        &query("coolgame.mark.repl.co.", RecordType::A, 7, false),
        r.addr,
    )
    .unwrap();
    let m = Message::from_vec(&recv(&c).0).unwrap();
    assert_eq!(common::a_records(&m), ["203.0.113.1", "203.0.113.2"]);
    let server = r.server.as_ref().unwrap();
    assert_eq!(stat(&r, |s| s.updates.load(Relaxed)), 1);
    assert!(common::wait_for(Duration::from_secs(2), || server
        .update_stats()
        .unwrap()
        .answered_udp
        .load(Relaxed)
        == 1));
}

#[test]
fn tcp_answers_stay_in_order_around_a_slow_update_past_the_timeouts() {
    let mut fake = Fake::answering(0);
    // Longer than the idle and message timeouts: a connection waiting for its update's
    // answer is not idle.
    fake.delay = Duration::from_millis(1600);
    let r = running(
        fake,
        "tcp_idle_timeout_secs = 1\ntcp_message_timeout_ms = 500",
    );
    let mut s = tcp_connect(r.addr);
    let mut batch = Vec::new();
    for pkt in [
        query("coolgame.mark.repl.co.", RecordType::A, 1, false),
        update(2, None),
        query("nope.mark.repl.co.", RecordType::A, 3, false),
    ] {
        batch.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
        batch.extend_from_slice(&pkt);
    }
    s.write_all(&batch).unwrap();
    let first = tcp_read(&mut s).unwrap();
    assert_eq!(first.id(), 1);
    let started = Instant::now();
    let second = tcp_read(&mut s).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(
        (second.id(), second.op_code(), second.response_code()),
        (2, OpCode::Update, ResponseCode::NoError)
    );
    let third = tcp_read(&mut s).unwrap();
    assert_eq!(
        (third.id(), third.response_code()),
        (3, ResponseCode::NXDomain)
    );
    // The connection goes on.
    tcp_send(&mut s, &update(4, None));
    assert_eq!(tcp_read(&mut s).unwrap().id(), 4);
    let up = r.server.as_ref().unwrap().update_stats().unwrap();
    assert_eq!(up.answered_tcp.load(Relaxed), 2);
}

#[test]
fn an_answer_too_long_for_udp_comes_back_truncated_and_whole_over_tcp() {
    let mut fake = Fake::answering(0);
    fake.pad = 1000;
    let seen = fake.seen.clone();
    let r = running(fake, "");
    let c = udp_client();
    // Without EDNS: 512 bytes at most, so header and zone with TC.
    let msg = update(9, None);
    c.send_to(&msg, r.addr).unwrap();
    let (answer, _) = recv(&c);
    let m = Message::from_vec(&answer).unwrap();
    assert!(m.truncated(), "TC set");
    assert_eq!(answer.len(), zone_end(&msg));
    assert_eq!(m.queries().len(), 1);
    assert_eq!(m.queries()[0].name().to_ascii(), "repl.co.");
    // With EDNS at 1232 it fits.
    c.send_to(&update(10, Some(1232)), r.addr).unwrap();
    let (answer, _) = recv(&c);
    assert_eq!(answer.len(), 1000);
    assert_eq!(answer[2] & 0x02, 0, "no TC");
    // Over TCP, whole.
    let mut s = tcp_connect(r.addr);
    tcp_send(&mut s, &update(11, None));
    let mut len = [0u8; 2];
    std::io::Read::read_exact(&mut s, &mut len).unwrap();
    assert_eq!(u16::from_be_bytes(len), 1000);
    let limits: Vec<usize> = seen.lock().unwrap().iter().map(|s| s.2).collect();
    assert_eq!(limits, [512, 1232, 65535], "the handler is told each limit");
    let up = r.server.as_ref().unwrap().update_stats().unwrap();
    assert_eq!(up.truncated.load(Relaxed), 1);
}

#[test]
fn a_full_queue_answers_servfail_and_counts() {
    let gate = Arc::new(AtomicBool::new(false));
    let mut fake = Fake::answering(0);
    fake.gate = Some(gate.clone());
    let seen = fake.seen.clone();
    let r = running(fake, "");
    let depth = clusterns::server::update::QUEUE_DEPTH;
    let c = udp_client();
    // The first is taken by the update thread, which then waits at the gate.
    c.send_to(&update(0, None), r.addr).unwrap();
    assert!(common::wait_for(Duration::from_secs(2), || seen
        .lock()
        .unwrap()
        .len()
        == 1));
    let extra = 5;
    for id in 1..=(depth + extra) as u16 {
        c.send_to(&update(id, None), r.addr).unwrap();
    }
    let mut servfail = Vec::new();
    for _ in 0..extra {
        let m = Message::from_vec(&recv(&c).0).unwrap();
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        assert_eq!(m.op_code(), OpCode::Update);
        servfail.push(m.id());
    }
    assert_eq!(
        stat(&r, |s| s.update_queue_full.load(Relaxed)),
        extra as u64
    );
    // Over TCP too, while the queue is full; the connection goes on afterwards.
    let mut s = tcp_connect(r.addr);
    tcp_send(&mut s, &update(999, None));
    tcp_send(
        &mut s,
        &query("coolgame.mark.repl.co.", RecordType::A, 1000, false),
    );
    let m = tcp_read(&mut s).unwrap();
    assert_eq!((m.id(), m.response_code()), (999, ResponseCode::ServFail));
    assert_eq!(tcp_read(&mut s).unwrap().id(), 1000);
    // Opened, the gate lets every accepted message through: each answered once.
    gate.store(true, Relaxed);
    let mut answered = Vec::new();
    for _ in 0..=depth {
        let m = Message::from_vec(&recv(&c).0).unwrap();
        assert_eq!(m.response_code(), ResponseCode::NoError);
        answered.push(m.id());
    }
    answered.sort_unstable();
    let accepted: Vec<u16> = (0..=depth as u16)
        .filter(|i| !servfail.contains(i))
        .collect();
    assert_eq!(answered, accepted);
}

#[test]
fn stopping_answers_every_update_already_queued() {
    let mut fake = Fake::answering(0);
    fake.delay = Duration::from_millis(100);
    let r = running(fake, "");
    let c = udp_client();
    let mut s = tcp_connect(r.addr);
    for id in 0..5 {
        c.send_to(&update(id, None), r.addr).unwrap();
    }
    tcp_send(&mut s, &update(77, None));
    std::thread::sleep(Duration::from_millis(50));
    r.stop();
    let mut ids: Vec<u16> = (0..5)
        .map(|_| {
            let a = recv(&c).0;
            u16::from_be_bytes([a[0], a[1]])
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(tcp_read(&mut s).unwrap().id(), 77);
}

#[test]
fn without_a_handler_update_is_notimp_as_before() {
    let r = start_with_updates(setup(""), None);
    let c = udp_client();
    c.send_to(&update(3, None), r.addr).unwrap();
    let m = Message::from_vec(&recv(&c).0).unwrap();
    assert_eq!((m.id(), m.response_code()), (3, ResponseCode::NotImp));
    let mut s = tcp_connect(r.addr);
    tcp_send(&mut s, &update(4, None));
    let m = tcp_read(&mut s).unwrap();
    assert_eq!((m.id(), m.response_code()), (4, ResponseCode::NotImp));
    assert!(r.server.as_ref().unwrap().update_stats().is_none());
    assert_eq!(stat(&r, |s| s.updates.load(Relaxed)), 0);
}

/// Runs `nsupdate` (with `args`) on `script`; None when it is not installed (outside CI).
fn nsupdate(args: &[&str], script: &str) -> Option<std::process::Output> {
    let child = Command::new("nsupdate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: nsupdate (bind9-dnsutils) is not installed: {e}");
            return None;
        }
        Err(e) => panic!("nsupdate is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

fn nsupdate_against(rcode: u8, tcp: bool) -> Option<(std::process::Output, Vec<Transport>)> {
    let fake = Fake::answering(rcode);
    let seen = fake.seen.clone();
    let r = running(fake, "");
    let script = format!(
        "server {} {}\nzone repl.co\nupdate add _acme-challenge.mark.repl.co 60 TXT \"tok\"\nsend\n",
        r.addr.ip(),
        r.addr.port()
    );
    let args: &[&str] = if tcp {
        &["-v", "-t", "5"]
    } else {
        &["-t", "5"]
    };
    let out = nsupdate(args, &script)?;
    let transports = seen.lock().unwrap().iter().map(|s| s.1).collect();
    Some((out, transports))
}

#[test]
fn nsupdate_accepts_noerror_and_reports_refused_over_udp_and_tcp() {
    for (tcp, transport) in [(false, Transport::Udp), (true, Transport::Tcp)] {
        let Some((out, seen)) = nsupdate_against(0, tcp) else {
            return;
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "nsupdate (tcp: {tcp}) failed: {text}");
        assert_eq!(seen, [transport]);
        let (out, seen) = nsupdate_against(5, tcp).unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "REFUSED is a failure: {text}");
        assert!(text.contains("REFUSED"), "nsupdate names the rcode: {text}");
        assert_eq!(seen, [transport]);
    }
}

#[test]
fn a_udp_update_longer_than_the_receive_buffer_is_formerr_not_handed_on() {
    let fake = Fake::answering(0);
    let seen = fake.seen.clone();
    let r = running(fake, "");
    let mut m = Message::from_vec(&update(12, None)).unwrap();
    m.add_name_server(Record::from_rdata(
        Name::from_ascii("_acme-challenge.mark.repl.co.").unwrap(),
        60,
        RData::TXT(TXT::new(vec!["x".repeat(250); 20])),
    ));
    let big = m.to_vec().unwrap();
    assert!(big.len() > 4096);
    let c = udp_client();
    c.send_to(&big, r.addr).unwrap();
    let m = Message::from_vec(&recv(&c).0).unwrap();
    assert_eq!((m.id(), m.response_code()), (12, ResponseCode::FormErr));
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(stat(&r, |s| s.oversized.load(Relaxed)), 1);
    // Over TCP the same message is handed on whole.
    let mut s = tcp_connect(r.addr);
    tcp_send(&mut s, &big);
    assert_eq!(tcp_read(&mut s).unwrap().id(), 12);
    assert_eq!(seen.lock().unwrap().len(), 1);
}
