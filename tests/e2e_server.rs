//! End-to-end: the real server on 127.0.0.1, queried over real UDP and TCP sockets.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::RecordType;

use common::*;

#[test]
fn udp_answers_apps_by_name_and_id_with_case_kept() {
    let r = start("");
    let m = udp_ask(r.addr, "CoolGame.MARK.repl.co", RecordType::A);
    assert_eq!(m.message_type(), MessageType::Response);
    assert_eq!(m.id(), 0x4242);
    assert!(m.authoritative());
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(m.queries()[0].name().to_ascii(), "CoolGame.MARK.repl.co.");
    let mut a = a_records(&m);
    a.sort();
    assert_eq!(a, vec!["203.0.113.1", "203.0.113.2"]);
    assert_eq!(m.answers()[0].ttl(), 60);

    let m = udp_ask(r.addr, "r-two.repl.co", RecordType::A);
    assert_eq!(a_records(&m), vec!["198.51.100.7"]);

    let m = udp_ask(r.addr, "r-one.repl.co", RecordType::AAAA);
    assert_eq!(m.answers().len(), 1);
    assert_eq!(m.answers()[0].record_type(), RecordType::AAAA);
}

/// With receive coalescing on, bursts and single queries are all answered, each correctly.
#[test]
fn udp_coalescing_answers_bursts_and_stragglers() {
    let r = start("udp_coalesce_us = 500\nthreads = 1");
    let client = udp_client();
    for round in 0..5u16 {
        // A burst of 60 queries sent before reading any answer.
        for i in 0..60u16 {
            let name = if i % 2 == 0 {
                "coolgame.mark.repl.co"
            } else {
                "r-two.repl.co"
            };
            client
                .send_to(&query(name, RecordType::A, round * 100 + i, false), r.addr)
                .unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut buf = [0u8; 1500];
        while seen.len() < 60 {
            let (n, _) = client
                .recv_from(&mut buf)
                .expect("every query of the burst is answered");
            let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
            let i = m.id() - round * 100;
            let want = if i.is_multiple_of(2) {
                vec!["203.0.113.1", "203.0.113.2"]
            } else {
                vec!["198.51.100.7"]
            };
            let mut got = a_records(&m);
            got.sort();
            assert_eq!(got, want, "answer {}", m.id());
            assert!(seen.insert(m.id()), "answered twice: {}", m.id());
        }
        // Then one query alone: answered without waiting for more.
        let m = udp_ask(r.addr, "r-two.repl.co", RecordType::A);
        assert_eq!(a_records(&m), vec!["198.51.100.7"]);
    }
}

#[test]
fn udp_negative_answers() {
    let r = start("");
    let m = udp_ask(r.addr, "missing.repl.co", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(m.authoritative());
    assert_eq!(m.name_servers().len(), 1);
    assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
    assert_eq!(m.name_servers()[0].ttl(), 30);

    // West has no IPv6: NODATA.
    let m = udp_ask(r.addr, "notes.mark.repl.co", RecordType::AAAA);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);

    // A user with apps is an empty non-terminal.
    let m = udp_ask(r.addr, "mark.repl.co", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());

    let m = udp_ask(r.addr, "www.example.com", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::Refused);
    assert!(!m.authoritative());

    let m = udp_ask(
        r.addr,
        "_acme-challenge.coolgame.mark.repl.co",
        RecordType::TXT,
    );
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    let target = m.answers()[0]
        .data()
        .unwrap()
        .as_cname()
        .unwrap()
        .0
        .to_ascii();
    assert_eq!(target, "coolgame.mark.repl.co.acme.example.net.");
}

#[test]
fn tcp_pipelined_queries_are_answered_in_order() {
    let r = start("");
    let mut s = tcp_connect(r.addr);
    // Three queries in one write.
    let mut burst = Vec::new();
    for (i, name) in ["r-one.repl.co", "missing.repl.co", "site.ann.repl.co"]
        .iter()
        .enumerate()
    {
        let q = query(name, RecordType::A, 100 + i as u16, false);
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    s.write_all(&burst).unwrap();
    let a = tcp_read(&mut s).unwrap();
    let b = tcp_read(&mut s).unwrap();
    let c = tcp_read(&mut s).unwrap();
    assert_eq!((a.id(), b.id(), c.id()), (100, 101, 102));
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert_eq!(b.response_code(), ResponseCode::NXDomain);
    assert_eq!(a_records(&c).len(), 2);
    // The connection stays usable.
    tcp_send(&mut s, &query("r-two.repl.co", RecordType::A, 7, false));
    assert_eq!(a_records(&tcp_read(&mut s).unwrap()), vec!["198.51.100.7"]);
}

#[test]
fn malformed_packets_then_liveness() {
    let r = start("");
    let client = udp_client();
    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![0; 11],
        // Header only, QDCOUNT=1 but no question.
        vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0],
        // A question whose name is a pointer to itself.
        vec![
            0xab, 0xce, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ],
        // A label claiming 63 bytes in a short packet.
        vec![
            0xab, 0xcf, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 63, b'a', 0, 0, 1,
        ],
        // A response (QR=1) must get nothing back.
        vec![
            0xab, 0xd0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
        ],
    ];
    // Trailing junk after a good query.
    let mut junk = query("r-one.repl.co", RecordType::A, 0xabd1, false);
    junk.extend_from_slice(b"junk");
    bad.push(junk);
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..200 {
        let len = (seed % 80) as usize;
        let mut p = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            p.push(seed as u8);
        }
        bad.push(p);
    }
    for p in &bad {
        client.send_to(p, r.addr).unwrap();
    }
    // Drain: every answer to a malformed packet is FORMERR or NOTIMP, with the packet's ID.
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut formerr = 0;
    while let Ok((n, _)) = client.recv_from(&mut buf) {
        // Read the header by hand: a NOTIMP answer echoes opcodes hickory cannot parse.
        assert!(n >= 12);
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let rcode = buf[3] & 0x0f;
        assert!(buf[2] & 0x80 != 0, "QR set");
        assert_ne!(id, 0xabd0, "a response packet was answered");
        if [0xabcd, 0xabce, 0xabcf, 0xabd1].contains(&id) {
            assert_eq!(rcode, 1, "FORMERR for {id:#x}");
            assert_eq!(n, 12, "header-only FORMERR");
            formerr += 1;
        } else {
            // Random bytes: header-only FORMERR/NOTIMP, or, where they happen to form a query,
            // a parseable answer.
            assert!(matches!(rcode, 0..=5), "rcode {rcode}");
        }
    }
    assert_eq!(formerr, 4);
    // Still alive over UDP and TCP.
    let m = udp_ask(r.addr, "r-one.repl.co", RecordType::A);
    assert_eq!(a_records(&m).len(), 2);
    let mut s = tcp_connect(r.addr);
    tcp_send(
        &mut s,
        &[0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(
        tcp_read(&mut s).unwrap().response_code(),
        ResponseCode::FormErr
    );
    tcp_send(&mut s, &query("r-one.repl.co", RecordType::A, 9, false));
    assert_eq!(tcp_read(&mut s).unwrap().id(), 9);
}

#[test]
fn a_slow_tcp_client_blocks_nobody() {
    let r = start("");
    // One client sends half a length prefix and stalls; another sends half a message.
    let mut slow = tcp_connect(r.addr);
    slow.write_all(&[0]).unwrap();
    let mut slower = tcp_connect(r.addr);
    let q = query("r-one.repl.co", RecordType::A, 1, false);
    slower.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    slower.write_all(&q[..5]).unwrap();
    // A client that never reads its answers.
    let mut hog = tcp_connect(r.addr);
    let mut burst = Vec::new();
    for i in 0..2000u16 {
        let q = query("r-one.repl.co", RecordType::A, i, false);
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    hog.set_nonblocking(true).unwrap();
    let _ = hog.write(&burst);

    let start = Instant::now();
    let mut other = tcp_connect(r.addr);
    tcp_send(
        &mut other,
        &query("r-two.repl.co", RecordType::A, 77, false),
    );
    let m = tcp_read(&mut other).unwrap();
    assert_eq!(m.id(), 77);
    let m = udp_ask(r.addr, "r-two.repl.co", RecordType::A);
    assert_eq!(a_records(&m), vec!["198.51.100.7"]);
    assert!(start.elapsed() < Duration::from_secs(2));
    // The stalled client finishes its message and gets its answer.
    slower.write_all(&q[5..]).unwrap();
    assert_eq!(tcp_read(&mut slower).unwrap().id(), 1);
}

#[test]
fn tcp_idle_connections_are_closed() {
    let r = start("tcp_idle_timeout_secs = 1");
    let mut s = tcp_connect(r.addr);
    let start = Instant::now();
    let mut buf = [0u8; 1];
    // The server closes the connection: read returns 0 (or a reset).
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn at_the_tcp_cap_the_idlest_connection_makes_room() {
    let r = start("tcp_max_connections = 2");
    let mut a = tcp_connect(r.addr);
    let mut b = tcp_connect(r.addr);
    tcp_send(&mut a, &query("r-one.repl.co", RecordType::A, 1, false));
    assert_eq!(tcp_read(&mut a).unwrap().id(), 1);
    std::thread::sleep(Duration::from_millis(50));
    tcp_send(&mut b, &query("r-one.repl.co", RecordType::A, 2, false));
    assert_eq!(tcp_read(&mut b).unwrap().id(), 2);
    // A third is answered; `a`, idle the longest, was closed for it.
    let mut c = tcp_connect(r.addr);
    tcp_send(&mut c, &query("r-one.repl.co", RecordType::A, 3, false));
    assert_eq!(tcp_read(&mut c).unwrap().id(), 3);
    tcp_send(&mut a, &query("r-one.repl.co", RecordType::A, 4, false));
    assert!(tcp_read(&mut a).is_err(), "the idlest was closed");
    tcp_send(&mut b, &query("r-one.repl.co", RecordType::A, 5, false));
    assert_eq!(tcp_read(&mut b).unwrap().id(), 5);
    let tcp = &r.server.as_ref().unwrap().stats()[r.server.as_ref().unwrap().stats().len() - 1];
    assert_eq!(
        tcp.tcp_evicted.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// Slowloris: connections that trickle a message in (a byte now and then, each one resetting
/// the idle timer) are closed once the message takes longer than tcp_message_timeout_ms, and
/// however many of them there are, a real client still gets a TCP answer.
#[test]
fn slow_messages_are_timed_out_and_cannot_hold_every_slot() {
    let r =
        start("tcp_max_connections = 4\ntcp_message_timeout_ms = 300\ntcp_idle_timeout_secs = 30");
    let mut slow: Vec<_> = (0..4).map(|_| tcp_connect(r.addr)).collect();
    let started = std::time::Instant::now();
    // Every 100 ms one more byte of a 40-byte message: never idle, never complete.
    for round in 0..3u8 {
        for s in &mut slow {
            let byte = if round == 0 { [0u8] } else { [40u8] };
            let _ = s.write_all(&byte);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every slot is held: a real client is still answered.
    let mut real = tcp_connect(r.addr);
    tcp_send(&mut real, &query("r-one.repl.co", RecordType::A, 9, false));
    assert_eq!(tcp_read(&mut real).unwrap().id(), 9);
    // The tricklers are closed after about the message timeout, though never idle.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(&[1]);
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            // Closed (a reset if our last byte met the closed socket).
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("still open after 3 s: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let stats = r.server.as_ref().unwrap().stats();
    let timed_out: u64 = stats
        .iter()
        .map(|s| s.tcp_timed_out.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert!(timed_out >= 3, "{timed_out}");
}

#[test]
fn journal_changes_reach_answers_without_restart() {
    let r = start("");
    let m = udp_ask(r.addr, "coolgame.mark.repl.co", RecordType::A);
    assert_eq!(a_records(&m).len(), 2);
    clusterns::feed::journal::append(
        &r.setup().journal_path,
        &[clusterns::feed::Change::Upsert {
            id: "r-one".parse().unwrap(),
            user: "mark".parse().unwrap(),
            slug: "coolgame".parse().unwrap(),
            cluster: "west".parse().unwrap(),
        }],
        0,
        None,
        false,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(2), || {
        a_records(&udp_ask(r.addr, "coolgame.mark.repl.co", RecordType::A)) == vec!["198.51.100.7"]
    }));
    // A bad line does not stop later ones.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&r.setup().journal_path)
        .unwrap();
    f.write_all(b"this is not a change\n5 delete r-two\n")
        .unwrap();
    assert!(wait_for(Duration::from_secs(2), || {
        udp_ask(r.addr, "r-two.repl.co", RecordType::A).response_code() == ResponseCode::NXDomain
    }));
    // Still answering everything else.
    assert_eq!(
        a_records(&udp_ask(r.addr, "r-one.repl.co", RecordType::A)).len(),
        1
    );
}
