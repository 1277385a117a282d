//! Response rate limiting: a flood from one source is limited (dropped, every second limited
//! response slipped out truncated) while another source is answered normally.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use clusterns::server::stats::WorkerStats;
use common::*;

/// Sends `n` queries from `sock` and counts (answers, truncated answers).
fn flood(sock: &UdpSocket, addr: std::net::SocketAddr, n: u16) -> (usize, usize) {
    for i in 0..n {
        sock.send_to(&query("r-one.repl.co", RecordType::A, i, false), addr)
            .unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (mut answers, mut truncated) = (0, 0);
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..len]).unwrap();
        answers += 1;
        if m.truncated() {
            assert!(m.answers().is_empty());
            truncated += 1;
        }
    }
    (answers, truncated)
}

#[test]
fn a_flood_from_one_source_is_limited_and_others_are_not() {
    let r = start("threads = 1\nrrl = { rate = 10, slip = 2, ipv4_prefix = 32 }");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (answers, truncated) = flood(&attacker, r.addr, 300);
    // At most two seconds' worth of full answers (the flood may straddle a second), about half
    // of the rest slipped out truncated, the others dropped.
    assert!(answers < 300, "limited: {answers} answers");
    assert!(
        answers - truncated <= 20,
        "{answers} answers, {truncated} truncated"
    );
    assert!(
        truncated >= 100,
        "slip sends truncated answers: {truncated}"
    );
    // Every truncated reply sent is counted as truncated (clusterns_truncated_total), the
    // slipped ones included, and every limited one as rate limited.
    let stats = r.server.as_ref().unwrap().stats();
    let sum = |f: fn(&WorkerStats) -> &AtomicU64| -> usize {
        stats
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed) as usize)
            .sum()
    };
    assert_eq!(
        sum(|s| &s.truncated),
        truncated,
        "truncated replies counted"
    );
    assert_eq!(sum(|s| &s.rate_limited), 300 - (answers - truncated));

    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    let (answers, truncated) = flood(&other, r.addr, 8);
    assert_eq!(
        (answers, truncated),
        (8, 0),
        "another source is answered in full"
    );
}

#[test]
fn rate_limiting_is_off_by_default() {
    let r = start("threads = 1");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut got = 0;
    // Send in small bursts so that no socket buffer overflows.
    for _ in 0..10 {
        let (answers, truncated) = flood(&sock, r.addr, 30);
        assert_eq!(truncated, 0);
        got += answers;
    }
    assert_eq!(got, 300);
}
