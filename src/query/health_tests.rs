//! The answer policy through the packet path (`respond`) on a snapshot built for a health
//! view: weighted picks of `max_answers` records per query, addresses that are down left out,
//! failover, the degraded TTL, truncation of a pick. Responses are parsed with `domain`'s
//! message parser, not with this crate's encoder.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use domain::base::iana::Rtype;
use domain::base::Message;
use domain::rdata::{Aaaa, A};

use super::{respond, ResponseClass, Transport};
use crate::health::view::{AddrState, HealthView};
use crate::name::{DomainName, Label};
use crate::snapshot::{Served, Snapshot};
use crate::table::Table;
use crate::testkit::{app, parse, v6_list, FEED, REPL_CO};

/// `w`: five weighted IPv4 addresses, two per answer; `f`: every address down, fails over to
/// `g`; `g`: two addresses; `big`: 24 IPv6 addresses, 20 per answer (560 bytes: over 512).
fn config_text() -> String {
    format!(
        r#"{FEED}{REPL_CO}
[[cluster]]
name = "w"
max_answers = 2
degraded_ttl = 9
ipv4 = [{{ address = "198.51.100.1", weight = 1 }}, {{ address = "198.51.100.2", weight = 2 }},
        {{ address = "198.51.100.3", weight = 3 }}, {{ address = "198.51.100.4", weight = 4 }},
        {{ address = "198.51.100.5", weight = 50 }}]
[[cluster]]
name = "f"
failover = "g"
ipv4 = ["203.0.113.1", "203.0.113.2"]
[[cluster]]
name = "g"
ipv4 = ["192.0.2.101", "192.0.2.102"]
[[cluster]]
name = "big"
max_answers = 20
ipv4 = ["192.0.2.200"]
ipv6 = [{}]
"#,
        v6_list(24, 9)
    )
}

fn label(s: &str) -> Label {
    s.parse().unwrap()
}

/// The snapshot: apps `rw` on w, `rf` on f, `rbig` on big; w's heaviest address and both of
/// f's are down.
fn snapshot() -> Snapshot {
    let cfg = parse(&config_text());
    let down = |c: &str, a: &str| ((label(c), a.parse::<IpAddr>().unwrap()), AddrState::Down);
    let health = HealthView::from_states([
        down("w", "198.51.100.5"),
        down("f", "203.0.113.1"),
        down("f", "203.0.113.2"),
    ]);
    let names: Vec<Label> = cfg.clusters.iter().map(|c| c.name.clone()).collect();
    let served = Served::for_registry_health(&cfg, &names, &health);
    let table = Table::build(&[
        app("rw", "u", "sw", 0),
        app("rf", "u", "sf", 1),
        app("rbig", "u", "sbig", 3),
    ])
    .unwrap();
    Snapshot::new(Arc::new(served), Arc::new(table), 0)
}

/// A query for `name` and `qtype`, with an OPT record of `edns` bytes when given.
fn query(id: u16, name: &str, qtype: Rtype, edns: Option<u16>) -> Vec<u8> {
    let name: DomainName = name.parse().unwrap();
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    p.extend_from_slice(name.wire());
    p.extend_from_slice(&qtype.to_int().to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    if let Some(size) = edns {
        p.extend_from_slice(&[0, 0, 41]);
        p.extend_from_slice(&size.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    p
}

/// The response to `pkt`: parsed, with the answer's addresses and TTLs.
fn ask(
    snap: &Snapshot,
    pkt: &[u8],
    transport: Transport,
) -> (Message<Vec<u8>>, Vec<(IpAddr, u32)>) {
    let mut out = vec![0u8; 65535];
    let r = respond(snap, pkt, &mut out, transport);
    out.truncate(r.len);
    let msg = Message::from_octets(out).unwrap();
    let mut records = Vec::new();
    let answer = msg.answer().unwrap();
    for rr in answer.limit_to::<A>() {
        let rr = rr.unwrap();
        records.push((IpAddr::V4(rr.data().addr()), rr.ttl().as_secs()));
    }
    for rr in answer.limit_to::<Aaaa>() {
        let rr = rr.unwrap();
        records.push((IpAddr::V6(rr.data().addr()), rr.ttl().as_secs()));
    }
    assert_eq!(usize::from(msg.header_counts().ancount()), records.len());
    let class = if records.is_empty() {
        ResponseClass::NoData
    } else {
        ResponseClass::Answer
    };
    assert_eq!(r.class, class);
    (msg, records)
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

#[test]
fn weighted_picks_leave_out_the_down_address_and_follow_the_weights() {
    let snap = snapshot();
    let mut first: HashMap<IpAddr, u32> = HashMap::new();
    let mut pairs = std::collections::HashSet::new();
    const QUERIES: u32 = 100_000;
    for i in 0..QUERIES {
        let pkt = query(i as u16, "sw.u.repl.co", Rtype::A, None);
        let (msg, recs) = ask(&snap, &pkt, Transport::Udp);
        assert!(msg.header().aa() && !msg.header().tc());
        assert_eq!(recs.len(), 2, "max_answers records");
        assert_ne!(recs[0].0, recs[1].0, "no address twice");
        for (addr, ttl) in &recs {
            assert_ne!(*addr, v4("198.51.100.5"), "down: never answered");
            assert_eq!(*ttl, 9, "degraded: an address is down");
        }
        *first.entry(recs[0].0).or_default() += 1;
        pairs.insert((recs[0].0, recs[1].0));
        if i % 100 != 0 {
            continue;
        }
        // The app's id name: a pick as well.
        let (_, by_id) = ask(
            &snap,
            &query(1, "rw.repl.co", Rtype::A, None),
            Transport::Udp,
        );
        assert_eq!(by_id.len(), 2);
    }
    // Rotation: every ordered pair of the four addresses up is answered.
    assert_eq!(pairs.len(), 12, "{pairs:?}");
    // The first record follows the weights 1:2:3:4 (within 1 point over 100,000 queries).
    for (last, w) in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)] {
        let n = first
            .get(&v4(&format!("198.51.100.{last}")))
            .copied()
            .unwrap_or(0);
        let share = f64::from(n) / f64::from(QUERIES);
        assert!(
            (share - w / 10.0).abs() < 0.01,
            ".{last}: {share} ({first:?})"
        );
    }
}

#[test]
fn a_cluster_with_every_address_down_is_answered_with_its_failover() {
    let snap = snapshot();
    assert_eq!(snap.served.zones[0].ttl, 60);
    let (_, recs) = ask(
        &snap,
        &query(7, "sf.u.repl.co", Rtype::A, None),
        Transport::Udp,
    );
    assert_eq!(
        recs,
        [(v4("192.0.2.101"), 30), (v4("192.0.2.102"), 30)],
        "g's addresses, at half the zone's TTL of 60"
    );
    // f has no IPv6 address: no AAAA, failing over or not.
    let (_, recs) = ask(
        &snap,
        &query(8, "rf.repl.co", Rtype::AAAA, None),
        Transport::Udp,
    );
    assert!(recs.is_empty());
    assert_eq!(snap.served.cluster_status.len(), 4);
    let f = snap.served.cluster_status[1].unwrap();
    assert!(f.a.failing_over && f.degraded() && !f.aaaa.degraded);
    let w = snap.served.cluster_status[0].unwrap();
    assert_eq!((w.a.eligible, w.a.down, w.a.failing_over), (4, 1, false));
}

#[test]
fn a_pick_that_does_not_fit_is_truncated_and_fits_with_edns() {
    let snap = snapshot();
    let pkt = query(9, "sbig.u.repl.co", Rtype::AAAA, None);
    let (msg, recs) = ask(&snap, &pkt, Transport::Udp);
    assert!(msg.header().tc(), "20 AAAA records are 560 bytes: over 512");
    assert!(recs.is_empty());
    let pkt = query(9, "sbig.u.repl.co", Rtype::AAAA, Some(1232));
    let (msg, recs) = ask(&snap, &pkt, Transport::Udp);
    assert!(!msg.header().tc());
    assert_eq!(recs.len(), 20);
    let mut distinct: Vec<IpAddr> = recs.iter().map(|r| r.0).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 20);
    assert!(recs.iter().all(|(a, ttl)| {
        *ttl == 60 && matches!(a, IpAddr::V6(v) if v.segments()[..3] == [0x2001, 0xdb8, 9])
    }));
    let (_, recs) = ask(
        &snap,
        &query(9, "sbig.u.repl.co", Rtype::AAAA, None),
        Transport::Tcp,
    );
    assert_eq!(recs.len(), 20);
    // The one A address: the whole set, no pick.
    let (_, recs) = ask(
        &snap,
        &query(9, "sbig.u.repl.co", Rtype::A, None),
        Transport::Udp,
    );
    assert_eq!(recs, [(v4("192.0.2.200"), 60)]);
}
