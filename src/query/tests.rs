//! Tests of the packet path (`respond`: decode, policy, resolve, encode): queries are built
//! and responses parsed with `hickory-proto`, an independent implementation, never with this
//! crate's own encoder.

use std::net::{Ipv4Addr, Ipv6Addr};

use domain::base::iana::OptRcode;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::{respond, Response, ResponseClass, Transport};
use crate::snapshot::Snapshot;
use crate::testkit::{self, app, C0, FEED, HUGE_V6, WIDE_V6};

/// The server's UDP payload size (the configuration's default).
const PAYLOAD: usize = 1232;

/// The shared fixture ([`testkit::snapshot`]): `wide.ann.repl.co` has [`WIDE_V6`] AAAA records
/// (1120 bytes: over 512 bytes, within 1232) and `huge.ann.repl.co` [`HUGE_V6`] (1680 bytes: only
/// over TCP).
fn snapshot() -> &'static Snapshot {
    let snap = testkit::snapshot();
    assert_eq!(usize::from(snap.served.udp_payload), PAYLOAD);
    snap
}

/// The response to `pkt` from the test snapshot, checked for what every response must
/// satisfy: at most `limit` bytes, QR set and the query's ID.
fn respond_raw(pkt: &[u8], transport: Transport, limit: usize) -> (Vec<u8>, Response) {
    let snap = snapshot();
    let mut out = vec![0u8; 65535];
    let h = respond(snap, pkt, &mut out, transport);
    out.truncate(h.len);
    assert!(
        out.len() <= limit,
        "response of {} bytes over the limit of {limit}",
        out.len()
    );
    if !out.is_empty() {
        assert_eq!(out[..2], pkt[..2], "the ID is copied");
        assert!(out[2] & 0x80 != 0, "QR is set");
    }
    (out, h)
}

/// The UDP size limit for a query message (512 without EDNS).
fn udp_limit(q: &Message) -> usize {
    match q.extensions() {
        Some(e) => usize::from(e.max_payload()).clamp(512, PAYLOAD),
        None => 512,
    }
}

/// Sends `q` and parses the response with hickory.
fn exchange(q: &Message, transport: Transport) -> (Message, Vec<u8>) {
    let pkt = q.to_vec().unwrap();
    let limit = match transport {
        Transport::Udp => udp_limit(q),
        Transport::Tcp => 65535,
    };
    let (out, h) = respond_raw(&pkt, transport, limit);
    assert!(h.len > 0, "a response is sent");
    let resp = Message::from_vec(&out).unwrap();
    assert_eq!(resp.message_type(), MessageType::Response);
    assert_eq!(resp.id(), q.id());
    assert_eq!(h.truncated, resp.truncated());
    assert_eq!(rcode(&h), Some(u16::from(resp.response_code())));
    let class = match (resp.response_code().low(), resp.answer_count()) {
        (0, n) if n > 0 => ResponseClass::Answer,
        (0, _) => ResponseClass::NoData,
        (3, _) => ResponseClass::NxDomain,
        _ => ResponseClass::Error,
    };
    assert_eq!(h.class, class, "response class");
    // The question: the name (uncompressed) and its type and class.
    let qname_len = q.queries()[0].name().to_bytes().unwrap().len();
    assert_eq!(usize::from(h.question_end), 12 + qname_len + 4);
    (resp, out)
}

/// The rcode a response description says was sent, as a number.
fn rcode(h: &Response) -> Option<u16> {
    h.rcode.map(|r| r.to_int())
}

fn udp(q: &Message) -> Message {
    exchange(q, Transport::Udp).0
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A query with ID 0xbeef, RD set, no EDNS.
fn query(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(0xbeef)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name(qname), qtype));
    m
}

fn with_edns(mut m: Message, size: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(size);
    m.set_edns(e);
    m
}

fn rdata(r: &Record) -> &RData {
    r.data().expect("record has data")
}

/// Checks a response's question: the query's, byte for byte (case included).
fn assert_question_echoed(q: &Message, out: &[u8]) {
    let pkt = q.to_vec().unwrap();
    let qlen = {
        let mut pos = 12;
        while pkt[pos] != 0 {
            pos += 1 + usize::from(pkt[pos]);
        }
        pos + 1 + 4 - 12
    };
    assert_eq!(out[4..6], [0, 1], "QDCOUNT 1");
    assert_eq!(out[12..12 + qlen], pkt[12..12 + qlen], "question copied");
}

/// Checks the negative answer's SOA: the zone's, TTL min(SOA TTL 600, negative TTL 30).
fn assert_negative_soa(resp: &Message) {
    assert!(resp.answers().is_empty());
    assert_eq!(resp.name_servers().len(), 1);
    let soa = &resp.name_servers()[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.name().to_ascii().to_ascii_lowercase(), "repl.co.");
    assert_eq!(soa.ttl(), 30);
    match rdata(soa) {
        RData::SOA(s) => {
            assert_eq!(s.minimum(), 30);
            assert_eq!(s.serial(), 7);
            assert_eq!(s.mname(), &name("ns1.repl.co."));
            assert_eq!(s.rname(), &name("hostmaster.repl.co."));
        }
        other => panic!("{other:?}"),
    }
}

// ---- Raw packets for what hickory will not build.

/// A header with the given flags (second and third byte) and counts.
fn header(id: u16, flags: [u8; 2], counts: [u16; 4]) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&flags);
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p
}

/// The wire form of a dotted name.
fn wire(s: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in s.split('.').filter(|l| !l.is_empty()) {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

/// A query packet for `r0.repl.co` A with the given counts, to which records are appended.
fn raw_query(counts: [u16; 4]) -> Vec<u8> {
    let mut p = header(0x4242, [0x01, 0x00], counts);
    p.extend_from_slice(&wire("r0.repl.co"));
    p.extend_from_slice(&[0, 1, 0, 1]);
    p
}

/// An OPT record owned by `owner` (wire form).
fn opt(owner: &[u8], size: u16, version: u8, do_bit: bool, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend_from_slice(&[0, 41]);
    r.extend_from_slice(&size.to_be_bytes());
    r.extend_from_slice(&[0, version, if do_bit { 0x80 } else { 0 }, 0]);
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// Checks a header-only error response: the ID, QR, RD and opcode echoed, `rcode`, no records.
fn assert_error(pkt: &[u8], rcode: u8) {
    let (out, h) = respond_raw(pkt, Transport::Udp, 512);
    assert_eq!(self::rcode(&h), Some(u16::from(rcode)), "{out:02x?}");
    assert_eq!(out.len(), 12, "header only: {out:02x?}");
    assert_eq!((h.class, h.question_end), (ResponseClass::Error, 12));
    let resp = Message::from_vec(&out).unwrap();
    assert_eq!(u16::from(resp.response_code()), u16::from(rcode));
    assert_eq!(resp.message_type(), MessageType::Response);
    assert_eq!(u8::from(resp.op_code()), (pkt[2] >> 3) & 0x0f);
    assert_eq!(resp.recursion_desired(), pkt[2] & 1 != 0);
    assert!(!resp.authoritative());
    assert!(resp.queries().is_empty());
    assert!(resp.answers().is_empty() && resp.name_servers().is_empty());
    assert!(resp.additionals().is_empty() && resp.extensions().is_none());
}

fn assert_formerr(pkt: &[u8]) {
    assert_error(pkt, 1);
}

// ---- Positive answers.

#[test]
fn a_hit_is_authoritative_with_ttl() {
    let q = query("coolgame.mark.repl.co.", RecordType::A);
    let resp = udp(&q);
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert!(!resp.truncated());
    assert!(!resp.recursion_available());
    assert_eq!(resp.queries().len(), 1);
    assert_eq!(resp.queries()[0].query_type(), RecordType::A);
    assert_eq!(resp.queries()[0].query_class(), DNSClass::IN);
    assert_eq!(resp.answers().len(), 1);
    let a = &resp.answers()[0];
    assert_eq!(a.name(), &name("coolgame.mark.repl.co."));
    assert_eq!(a.dns_class(), DNSClass::IN);
    assert_eq!(a.ttl(), 60);
    assert_eq!(rdata(a), &RData::A(Ipv4Addr::new(203, 0, 113, 1).into()));
    assert!(resp.name_servers().is_empty() && resp.additionals().is_empty());
    assert!(resp.extensions().is_none(), "no OPT without EDNS");
}

#[test]
fn aaaa_hit_by_repl_id() {
    let resp = udp(&query("r0.repl.co.", RecordType::AAAA));
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert_eq!(resp.answers().len(), 1);
    let a = &resp.answers()[0];
    assert_eq!(a.name(), &name("r0.repl.co."));
    assert_eq!(a.ttl(), 60);
    assert_eq!(
        rdata(a),
        &RData::AAAA("2001:db8::1".parse::<Ipv6Addr>().unwrap().into())
    );
}

#[test]
fn id_rd_and_cd_are_copied() {
    for (id, rd, cd) in [
        (0u16, false, false),
        (0xffff, true, true),
        (0x1234, false, true),
    ] {
        let mut q = query("r0.repl.co.", RecordType::A);
        q.set_id(id)
            .set_recursion_desired(rd)
            .set_checking_disabled(cd);
        let resp = udp(&q);
        assert_eq!(resp.id(), id);
        assert_eq!(resp.recursion_desired(), rd);
        assert_eq!(resp.checking_disabled(), cd);
        assert_eq!(resp.answers().len(), 1);
    }
}

#[test]
fn question_case_is_preserved() {
    let q = query("CoOlGaMe.MaRk.RePl.Co.", RecordType::A);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert_question_echoed(&q, &out);
    assert_eq!(
        resp.queries()[0].name().to_ascii(),
        "CoOlGaMe.MaRk.RePl.Co."
    );
    assert_eq!(resp.answers().len(), 1);
    // The answer's owner points at the question, so it has the question's case.
    assert_eq!(
        resp.answers()[0].name().to_ascii(),
        "CoOlGaMe.MaRk.RePl.Co."
    );
    assert_eq!(
        rdata(&resp.answers()[0]),
        &RData::A(Ipv4Addr::new(203, 0, 113, 1).into())
    );
}

#[test]
fn apex_owner_points_into_a_mixed_case_question() {
    let q = query("NoBoDy.RePl.cO.", RecordType::A);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert_question_echoed(&q, &out);
    assert_eq!(resp.response_code(), ResponseCode::NXDomain);
    assert_eq!(resp.name_servers()[0].name().to_ascii(), "RePl.cO.");
}

#[test]
fn nodata_has_the_negative_soa() {
    let resp = udp(&query("r0.repl.co.", RecordType::MX));
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert_negative_soa(&resp);
    // The apex has no SRV.
    let resp = udp(&query("repl.co.", RecordType::SRV));
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert_negative_soa(&resp);
}

#[test]
fn nxdomain_has_the_negative_soa() {
    for n in [
        "nobody.repl.co.",
        "other.mark.repl.co.",
        "x.coolgame.mark.repl.co.",
    ] {
        let resp = udp(&query(n, RecordType::A));
        assert_eq!(resp.response_code(), ResponseCode::NXDomain, "{n}");
        assert!(resp.authoritative());
        assert_negative_soa(&resp);
    }
}

#[test]
fn user_name_is_an_empty_non_terminal() {
    let resp = udp(&query("mark.repl.co.", RecordType::A));
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert_negative_soa(&resp);
}

#[test]
fn acme_challenge_is_a_cname() {
    let q = query("_acme-challenge.CoolGame.mark.repl.co.", RecordType::TXT);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert_question_echoed(&q, &out);
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert_eq!(resp.answers().len(), 1);
    let c = &resp.answers()[0];
    assert_eq!(c.record_type(), RecordType::CNAME);
    assert_eq!(
        c.name().to_ascii(),
        "_acme-challenge.CoolGame.mark.repl.co."
    );
    assert_eq!(c.ttl(), 60);
    match rdata(c) {
        RData::CNAME(t) => assert_eq!(t.0.to_ascii(), "coolgame.mark.repl.co.acme.example.net."),
        other => panic!("{other:?}"),
    }
    // Not for a name that does not exist.
    let resp = udp(&query("_acme-challenge.nobody.repl.co.", RecordType::TXT));
    assert_eq!(resp.response_code(), ResponseCode::NXDomain);
    assert_negative_soa(&resp);
}

#[test]
fn apex_soa() {
    let resp = udp(&query("repl.co.", RecordType::SOA));
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert_eq!(resp.answers().len(), 1);
    let soa = &resp.answers()[0];
    assert_eq!(soa.name(), &name("repl.co."));
    assert_eq!(soa.ttl(), 600);
    match rdata(soa) {
        RData::SOA(s) => {
            assert_eq!(s.serial(), 7);
            assert_eq!(s.minimum(), 30);
            assert_eq!(s.mname(), &name("ns1.repl.co."));
        }
        other => panic!("{other:?}"),
    }
    assert!(resp.name_servers().is_empty() && resp.additionals().is_empty());
}

#[test]
fn apex_ns_with_glue() {
    let resp = udp(&with_edns(query("Repl.Co.", RecordType::NS), 1232));
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    let mut ns: Vec<String> = resp
        .answers()
        .iter()
        .map(|r| {
            assert_eq!(r.name().to_ascii(), "Repl.Co.");
            assert_eq!(r.ttl(), 600);
            match rdata(r) {
                RData::NS(n) => n.0.to_ascii(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    ns.sort();
    assert_eq!(
        ns,
        ["ns.example.net.", "ns1.repl.co.", "ns2.infra.repl.co."]
    );
    // Glue for the in-zone servers only, in the families they have.
    let mut glue: Vec<(String, RData)> = resp
        .additionals()
        .iter()
        .map(|r| (r.name().to_ascii(), rdata(r).clone()))
        .collect();
    glue.sort_by_key(|(n, d)| (n.clone(), d.record_type()));
    assert_eq!(
        glue,
        [
            (
                "ns1.repl.co.".to_string(),
                RData::A(Ipv4Addr::new(192, 0, 2, 53).into())
            ),
            (
                "ns1.repl.co.".to_string(),
                RData::AAAA("2001:db8::53".parse::<Ipv6Addr>().unwrap().into())
            ),
            (
                "ns2.infra.repl.co.".to_string(),
                RData::A(Ipv4Addr::new(192, 0, 2, 54).into())
            ),
        ]
    );
    assert!(resp.extensions().is_some());
}

#[test]
fn apex_a_and_host_a() {
    let resp = udp(&query("repl.co.", RecordType::A));
    assert_eq!(resp.answers().len(), 1);
    assert_eq!(
        rdata(&resp.answers()[0]),
        &RData::A(Ipv4Addr::new(192, 0, 2, 1).into())
    );
    let resp = udp(&query("NS1.repl.co.", RecordType::AAAA));
    assert!(resp.authoritative());
    assert_eq!(resp.answers()[0].name().to_ascii(), "NS1.repl.co.");
    assert_eq!(
        rdata(&resp.answers()[0]),
        &RData::AAAA("2001:db8::53".parse::<Ipv6Addr>().unwrap().into())
    );
}

// ---- Refusals and errors of the DNS logic.

fn assert_refused(q: &Message) {
    let (resp, out) = exchange(q, Transport::Udp);
    assert_eq!(resp.response_code(), ResponseCode::Refused);
    assert!(!resp.authoritative());
    assert_question_echoed(q, &out);
    assert!(resp.answers().is_empty() && resp.name_servers().is_empty());
    assert!(resp.additionals().is_empty());
}

#[test]
fn outside_the_zones_is_refused_without_aa() {
    assert_refused(&query("example.com.", RecordType::A));
    assert_refused(&query("co.", RecordType::A));
    assert_refused(&query("xrepl.co.", RecordType::A));
    assert_refused(&query(".", RecordType::NS));
}

#[test]
fn class_ch_is_refused() {
    let mut q = query("r0.repl.co.", RecordType::A);
    q.queries_mut()[0].set_query_class(DNSClass::CH);
    assert_refused(&q);
    let mut q = query("version.bind.", RecordType::TXT);
    q.queries_mut()[0].set_query_class(DNSClass::CH);
    assert_refused(&q);
}

#[test]
fn zone_transfers_are_refused() {
    assert_refused(&query("repl.co.", RecordType::AXFR));
    assert_refused(&query("repl.co.", RecordType::IXFR));
    // Over TCP too.
    let (resp, _) = exchange(&query("repl.co.", RecordType::AXFR), Transport::Tcp);
    assert_eq!(resp.response_code(), ResponseCode::Refused);
}

#[test]
fn opt_as_query_type_is_formerr_with_the_question() {
    let q = query("repl.co.", RecordType::OPT);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert_eq!(resp.response_code(), ResponseCode::FormErr);
    assert_question_echoed(&q, &out);
}

/// Checks that `op` gets a header-only NOTIMP with the opcode echoed.
fn assert_notimp(op: OpCode) {
    let mut q = query("repl.co.", RecordType::SOA);
    q.set_op_code(op);
    let pkt = q.to_vec().unwrap();
    assert_error(&pkt, 4);
    let (out, _) = respond_raw(&pkt, Transport::Udp, 512);
    assert_eq!(Message::from_vec(&out).unwrap().op_code(), op);
}

#[test]
fn opcode_status_is_notimp() {
    assert_notimp(OpCode::Status);
}

#[test]
fn opcode_notify_is_notimp() {
    assert_notimp(OpCode::Notify);
}

#[test]
fn opcode_update_is_notimp() {
    assert_notimp(OpCode::Update);
}

// ---- Malformed packets.

#[test]
fn responses_are_dropped() {
    let mut q = query("r0.repl.co.", RecordType::A);
    q.set_message_type(MessageType::Response);
    let (out, h) = respond_raw(&q.to_vec().unwrap(), Transport::Udp, 512);
    assert_eq!(h.len, 0);
    assert!(out.is_empty());
    assert_eq!(h.rcode, None);
    // Even a malformed or non-QUERY one.
    let mut p = header(1, [0x80 | 0x20, 0], [5, 0, 0, 0]);
    p.push(0xff);
    assert_eq!(respond_raw(&p, Transport::Udp, 512).1.len, 0);
}

#[test]
fn short_packets_are_dropped() {
    let pkt = query("r0.repl.co.", RecordType::A).to_vec().unwrap();
    for n in 0..12 {
        let (out, h) = respond_raw(&pkt[..n], Transport::Udp, 512);
        assert_eq!((out.len(), h.rcode), (0, None), "{n} bytes");
    }
    // Twelve bytes make a header: with QDCOUNT 1 it is a truncated question.
    assert_formerr(&pkt[..12]);
}

#[test]
fn qdcount_zero_is_formerr() {
    assert_formerr(&header(7, [1, 0], [0, 0, 0, 0]));
    // Also with an OPT record and nothing else.
    let mut p = header(7, [1, 0], [0, 0, 0, 1]);
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[]));
    assert_formerr(&p);
}

#[test]
fn qdcount_two_is_formerr() {
    let mut q = query("r0.repl.co.", RecordType::A);
    q.add_query(Query::query(name("repl.co."), RecordType::SOA));
    assert_formerr(&q.to_vec().unwrap());
    // QDCOUNT 2 with a single question present.
    let mut p = raw_query([1, 0, 0, 0]);
    p[5] = 2;
    assert_formerr(&p);
}

#[test]
fn truncated_question_is_formerr() {
    let pkt = query("r0.repl.co.", RecordType::A).to_vec().unwrap();
    for n in 12..pkt.len() {
        assert_formerr(&pkt[..n]);
    }
}

/// A query whose question is `name` (raw wire bytes), type A, class IN.
fn raw_question(name: &[u8]) -> Vec<u8> {
    let mut p = header(9, [1, 0], [1, 0, 0, 0]);
    p.extend_from_slice(name);
    p.extend_from_slice(&[0, 1, 0, 1]);
    p
}

#[test]
fn question_pointer_into_the_header_is_formerr() {
    // Offset 4 holds 0x00, a root label: the name would read as the root.
    assert_formerr(&raw_question(&[0xC0, 0x04]));
    // A label, then a pointer into the header.
    assert_formerr(&raw_question(&[2, b'c', b'o', 0xC0, 0x04]));
}

#[test]
fn question_pointer_loop_is_formerr() {
    // A pointer to itself.
    assert_formerr(&raw_question(&[0xC0, 12]));
    // Two pointers pointing at each other.
    assert_formerr(&raw_question(&[0xC0, 14, 0xC0, 12]));
}

#[test]
fn question_pointer_forward_is_formerr() {
    // A pointer to a valid name after the question.
    let mut p = raw_question(&[0xC0, 18]);
    p.extend_from_slice(&wire("repl.co"));
    assert_formerr(&p);
}

#[test]
fn label_longer_than_63_is_formerr() {
    let mut n = vec![64];
    n.extend_from_slice(&[b'a'; 64]);
    n.extend_from_slice(&wire("repl.co"));
    assert_formerr(&raw_question(&n));
}

#[test]
fn extended_label_types_are_formerr() {
    // 0x40 (EDNS0 extended label) and the reserved 0x80.
    for t in [0x40u8, 0x41, 0x7F, 0x80, 0xBF] {
        assert_formerr(&raw_question(&[t, b'a', 0]));
    }
}

#[test]
fn name_longer_than_255_is_formerr() {
    // Five labels of 63 bytes: 321 bytes.
    let mut n = Vec::new();
    for _ in 0..5 {
        n.push(63);
        n.extend_from_slice(&[b'a'; 63]);
    }
    n.push(0);
    assert_formerr(&raw_question(&n));
    // 256 bytes exactly.
    let mut n = Vec::new();
    for _ in 0..3 {
        n.push(63);
        n.extend_from_slice(&[b'a'; 63]);
    }
    n.push(62);
    n.extend_from_slice(&[b'b'; 62]);
    n.push(0);
    assert_eq!(n.len(), 256);
    assert_formerr(&raw_question(&n));
}

#[test]
fn longest_name_is_answered() {
    // 255 bytes exactly: three labels of 63, one of 61, then the zone (9 bytes)... the name
    // ends in repl.co, so it is ours and does not exist.
    let mut labels = vec!["a".repeat(63), "b".repeat(63), "c".repeat(63)];
    labels.push("d".repeat(255 - 3 * 64 - 9 - 1));
    let n = format!("{}.repl.co.", labels.join("."));
    assert_eq!(wire(&n).len(), 255);
    let resp = udp(&query(&n, RecordType::A));
    assert_eq!(resp.response_code(), ResponseCode::NXDomain);
    assert_negative_soa(&resp);
}

#[test]
fn trailing_bytes_are_formerr() {
    let mut p = raw_query([1, 0, 0, 0]);
    assert_eq!(
        respond_raw(&p, Transport::Udp, 512).1.rcode,
        Some(OptRcode::NOERROR)
    );
    p.push(0);
    assert_formerr(&p);
    // After an OPT record too.
    let mut p = raw_query([1, 0, 0, 1]);
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[]));
    assert_eq!(
        respond_raw(&p, Transport::Udp, 1232).1.rcode,
        Some(OptRcode::NOERROR)
    );
    p.extend_from_slice(&[1, 2, 3]);
    assert_formerr(&p);
}

#[test]
fn missing_records_are_formerr() {
    // Counts promise records that are not there.
    assert_formerr(&raw_query([1, 1, 0, 0]));
    assert_formerr(&raw_query([1, 0, 1, 0]));
    assert_formerr(&raw_query([1, 0, 0, 1]));
    // An OPT whose RDLENGTH runs past the end.
    let mut p = raw_query([1, 0, 0, 1]);
    let mut o = opt(&[0], 1232, 0, false, &[]);
    o[10] = 4;
    p.extend_from_slice(&o);
    assert_formerr(&p);
    // An OPT option whose length runs past the record's data.
    let mut p = raw_query([1, 0, 0, 1]);
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[0, 10, 0, 8, 1, 2]));
    assert_formerr(&p);
}

#[test]
fn two_opt_records_are_formerr() {
    let mut p = raw_query([1, 0, 0, 2]);
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[]));
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[]));
    assert_formerr(&p);
}

#[test]
fn opt_outside_the_additional_section_is_formerr() {
    let mut p = raw_query([1, 1, 0, 0]);
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[]));
    assert_formerr(&p);
    let mut p = raw_query([1, 0, 1, 0]);
    p.extend_from_slice(&opt(&[0], 1232, 0, false, &[]));
    assert_formerr(&p);
}

#[test]
fn opt_with_a_non_root_owner_is_formerr() {
    let mut p = raw_query([1, 0, 0, 1]);
    p.extend_from_slice(&opt(&wire("repl.co"), 1232, 0, false, &[]));
    assert_formerr(&p);
    // Also when the owner is a pointer to the question name.
    let mut p = raw_query([1, 0, 0, 1]);
    p.extend_from_slice(&opt(&[0xC0, 12], 1232, 0, false, &[]));
    assert_formerr(&p);
}

#[test]
fn other_records_in_a_query_are_skipped() {
    // A record in the additional section before the OPT (as a TSIG-less client might send).
    let mut p = raw_query([1, 0, 0, 2]);
    p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    p.extend_from_slice(&opt(&[0], 4096, 0, false, &[]));
    let (out, h) = respond_raw(&p, Transport::Udp, PAYLOAD);
    assert_eq!(rcode(&h), Some(0));
    let resp = Message::from_vec(&out).unwrap();
    assert_eq!(resp.answers().len(), 1);
    assert_eq!(resp.max_payload(), PAYLOAD as u16);
}

// ---- EDNS.

#[test]
fn edns_is_echoed_with_the_server_payload_size() {
    for size in [512u16, 1232, 4096, 65535] {
        let q = with_edns(query("r0.repl.co.", RecordType::A), size);
        let (resp, out) = exchange(&q, Transport::Udp);
        assert_eq!(resp.response_code(), ResponseCode::NoError);
        let e = resp.extensions().as_ref().expect("OPT in the response");
        assert_eq!(e.max_payload(), PAYLOAD as u16);
        assert_eq!(e.version(), 0);
        assert!(!e.dnssec_ok());
        assert_eq!(out[out.len() - 2..], [0, 0], "OPT without options");
        assert_eq!(resp.additionals().len(), 0, "OPT only");
        assert_eq!(resp.answers().len(), 1);
    }
}

#[test]
fn small_edns_size_counts_as_512() {
    // A client size under 512 is treated as 512 (RFC 6891 6.2.5).
    let q = with_edns(query("wide.ann.repl.co.", RecordType::AAAA), 100);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert!(resp.truncated());
    assert!(out.len() <= 512);
    let resp = udp(&with_edns(query("r0.repl.co.", RecordType::A), 0));
    assert_eq!(resp.answers().len(), 1);
}

#[test]
fn edns_version_1_is_badvers() {
    let mut q = with_edns(query("CoolGame.mark.repl.co.", RecordType::A), 1232);
    q.extensions_mut().as_mut().unwrap().set_version(1);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert_eq!(u16::from(resp.response_code()), 16, "BADVERS");
    // The low four bits in the header are 0, the high bits in the OPT record are 1.
    assert_eq!(out[3] & 0x0f, 0);
    let e = resp.extensions().as_ref().expect("OPT in the response");
    assert_eq!(e.rcode_high(), 1);
    assert_eq!(e.version(), 0);
    assert_eq!(e.max_payload(), PAYLOAD as u16);
    assert_question_echoed(&q, &out);
    assert!(!resp.authoritative());
    assert!(resp.answers().is_empty() && resp.name_servers().is_empty());
    // BADVERS wins over every other outcome.
    let mut q = with_edns(query("example.com.", RecordType::A), 1232);
    q.extensions_mut().as_mut().unwrap().set_version(255);
    assert_eq!(u16::from(udp(&q).response_code()), 16);
}

#[test]
fn unknown_edns_options_are_ignored() {
    let mut q = with_edns(query("r0.repl.co.", RecordType::A), 1232);
    let opts = q.extensions_mut().as_mut().unwrap().options_mut();
    opts.insert(EdnsOption::Unknown(65001, vec![1, 2, 3, 4]));
    opts.insert(EdnsOption::Unknown(10, vec![0; 8])); // a client cookie
    let (resp, out) = exchange(&q, Transport::Udp);
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert_eq!(resp.answers().len(), 1);
    assert!(resp.extensions().is_some());
    assert_eq!(out[out.len() - 2..], [0, 0], "no option is echoed");
}

#[test]
fn do_bit_is_echoed() {
    for d in [false, true] {
        let mut q = with_edns(query("r0.repl.co.", RecordType::A), 1232);
        q.extensions_mut().as_mut().unwrap().set_dnssec_ok(d);
        let (resp, out) = exchange(&q, Transport::Udp);
        assert_eq!(resp.extensions().as_ref().unwrap().dnssec_ok(), d);
        // The other flag bits stay clear.
        let opt = &out[out.len() - 11..];
        assert_eq!(opt[..3], [0, 0, 41]);
        assert_eq!(opt[7], if d { 0x80 } else { 0 });
        assert_eq!(opt[8], 0);
    }
}

#[test]
fn errors_of_the_dns_logic_keep_edns() {
    let mut q = with_edns(query("nobody.repl.co.", RecordType::A), 4096);
    q.extensions_mut().as_mut().unwrap().set_dnssec_ok(true);
    let resp = udp(&q);
    assert_eq!(resp.response_code(), ResponseCode::NXDomain);
    assert_negative_soa(&resp);
    assert!(resp.extensions().as_ref().unwrap().dnssec_ok());
    let resp = udp(&with_edns(query("example.com.", RecordType::A), 4096));
    assert_eq!(resp.response_code(), ResponseCode::Refused);
    assert!(resp.extensions().is_some());
}

// ---- Sizes and truncation.

fn aaaa_count(resp: &Message) -> usize {
    resp.answers()
        .iter()
        .filter(|r| matches!(rdata(r), RData::AAAA(_)))
        .count()
}

#[test]
fn large_answer_without_edns_is_truncated() {
    let q = query("wide.ann.repl.co.", RecordType::AAAA);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert!(out.len() <= 512);
    assert!(resp.truncated(), "TC");
    assert!(resp.authoritative());
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert_question_echoed(&q, &out);
    assert!(resp.answers().is_empty() && resp.name_servers().is_empty());
    assert!(resp.additionals().is_empty());
}

#[test]
fn large_answer_with_edns_fits() {
    let q = with_edns(query("wide.ann.repl.co.", RecordType::AAAA), 4096);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert!(out.len() > 512 && out.len() <= PAYLOAD, "{}", out.len());
    assert!(!resp.truncated());
    assert_eq!(aaaa_count(&resp), WIDE_V6);
    assert!(resp.answers().iter().all(|r| r.ttl() == 60));
    assert!(resp.extensions().is_some());
    // A client that asks for less than the answer gets TC.
    let q = with_edns(query("wide.ann.repl.co.", RecordType::AAAA), 1000);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert!(out.len() <= 1000);
    assert!(resp.truncated() && resp.answers().is_empty());
    assert!(resp.extensions().is_some(), "OPT even when truncated");
}

#[test]
fn server_limits_udp_answers_to_its_payload_size() {
    let q = with_edns(query("huge.ann.repl.co.", RecordType::AAAA), 4096);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert!(out.len() <= PAYLOAD, "{}", out.len());
    assert!(resp.truncated());
    assert!(resp.answers().is_empty());
    assert_eq!(resp.max_payload(), PAYLOAD as u16);
}

#[test]
fn tcp_answers_are_not_truncated() {
    for (n, count) in [
        ("wide.ann.repl.co.", WIDE_V6),
        ("huge.ann.repl.co.", HUGE_V6),
    ] {
        let (resp, out) = exchange(&query(n, RecordType::AAAA), Transport::Tcp);
        assert!(!resp.truncated(), "{n}");
        assert_eq!(aaaa_count(&resp), count);
        assert!(out.len() > PAYLOAD || count == WIDE_V6);
        let (resp, _) = exchange(&with_edns(query(n, RecordType::AAAA), 512), Transport::Tcp);
        assert!(!resp.truncated(), "{n}: the EDNS size is for UDP only");
        assert_eq!(aaaa_count(&resp), count);
    }
}

#[test]
fn apex_ns_without_edns_fits_512_with_its_glue() {
    let q = query("repl.co.", RecordType::NS);
    let (resp, out) = exchange(&q, Transport::Udp);
    assert!(!resp.truncated());
    assert_eq!(resp.answers().len(), 3);
    assert_eq!(resp.additionals().len(), 3);
    assert!(out.len() <= 512);
}

// ---- Regressions.

/// A snapshot with the zone `x.co` whose validation zone is `<a * first>.<m * 50>.example.net`
/// and the app `s*63.u*63`: `_acme-challenge.<app>.x.co` is 150 bytes and its CNAME target
/// `<app>.x.co.<validation zone>` 133 + (first + 64) bytes.
fn long_acme_snapshot(first: usize) -> Snapshot {
    let zone = testkit::x_co(&format!(
        "{}.{}.example.net",
        "a".repeat(first),
        "m".repeat(50)
    ));
    let cfg = testkit::parse(&format!("{FEED}{zone}{C0}"));
    testkit::snapshot_of(&cfg, &[app("r8", &"u".repeat(63), &"s".repeat(63), 0)])
}

/// Found by the fuzz target (its seed `acme_long_target`): the `_acme-challenge` CNAME target
/// was written even when longer than 255 bytes, a response no parser accepts. It is YXDOMAIN
/// now, as for a DNAME substitution that overflows (RFC 6672).
#[test]
fn acme_cname_target_longer_than_255_is_yxdomain() {
    // The crashing input: `_acme-challenge.s*63.u*63.x.co` TXT, ID 0x1234, RD.
    let mut pkt = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    pkt.extend_from_slice(b"\x0f_acme-challenge\x3f");
    pkt.extend_from_slice(&[b's'; 63]);
    pkt.push(63);
    pkt.extend_from_slice(&[b'u'; 63]);
    pkt.extend_from_slice(b"\x01x\x02co\x00\x00\x10\x00\x01");
    assert_eq!(pkt.len(), 12 + 150 + 4);
    let mut out = vec![0u8; 65535];
    // Targets of 255 bytes (the longest name) and 256 and 258 bytes.
    for (first, rcode) in [(57, 0u8), (58, 6), (60, 6)] {
        let snap = long_acme_snapshot(first);
        let h = respond(&snap, &pkt, &mut out, Transport::Udp);
        assert_eq!(
            self::rcode(&h),
            Some(u16::from(rcode)),
            "first label {first}"
        );
        let resp = Message::from_vec(&out[..h.len]).unwrap();
        assert_eq!(resp.response_code().low(), rcode);
        assert!(resp.authoritative());
        assert_eq!(resp.queries().len(), 1);
        if rcode == 0 {
            let RData::CNAME(t) = rdata(&resp.answers()[0]) else {
                panic!("{resp:?}")
            };
            assert!(t.0.to_ascii().starts_with(&format!(
                "{}.{}.x.co.aaa",
                "s".repeat(63),
                "u".repeat(63)
            )));
            let wire_len: usize = 1 + t.0.iter().map(|l| 1 + l.len()).sum::<usize>();
            assert_eq!(wire_len, 255);
        } else {
            assert!(resp.answers().is_empty() && resp.name_servers().is_empty());
        }
    }
}

// ---- UPDATE handed on (issue #16 plumbing): `respond_with` under `Policy::UPDATES`.

mod update_policy {
    use super::*;
    use crate::query::{header_error, respond_with, Policy};
    use domain::base::iana::Rcode;

    fn message(op: OpCode, qr: bool) -> Vec<u8> {
        let mut q = query("repl.co.", RecordType::SOA);
        q.set_op_code(op);
        if qr {
            q.set_message_type(MessageType::Response);
        }
        q.to_vec().unwrap()
    }

    fn respond_under(pkt: &[u8], policy: Policy, transport: Transport) -> (Vec<u8>, Response) {
        let mut out = vec![0xaa; 65535];
        let h = respond_with(snapshot(), pkt, &mut out, transport, policy);
        (out, h)
    }

    #[test]
    fn an_update_is_handed_on_with_nothing_written() {
        for transport in [Transport::Udp, Transport::Tcp] {
            let (out, h) =
                respond_under(&message(OpCode::Update, false), Policy::UPDATES, transport);
            assert_eq!(h, Response::UPDATE);
            assert_eq!((h.len, h.class, h.rcode), (0, ResponseClass::Update, None));
            assert!(out.iter().all(|&b| b == 0xaa), "nothing written");
        }
    }

    #[test]
    fn without_updates_nothing_changes() {
        let pkt = message(OpCode::Update, false);
        let (out, h) = respond_under(&pkt, Policy::QUERIES_ONLY, Transport::Udp);
        assert_eq!(
            (h.class, h.len, self::rcode(&h)),
            (ResponseClass::Error, 12, Some(4))
        );
        let mut plain = vec![0u8; 65535];
        assert_eq!(respond(snapshot(), &pkt, &mut plain, Transport::Udp), h);
        assert_eq!(out[..12], plain[..12]);
    }

    #[test]
    fn other_opcodes_responses_and_queries_are_as_before() {
        for op in [OpCode::Notify, OpCode::Status] {
            let (_, h) = respond_under(&message(op, false), Policy::UPDATES, Transport::Udp);
            assert_eq!(self::rcode(&h), Some(4), "{op:?} stays NOTIMP");
        }
        let (_, h) = respond_under(
            &message(OpCode::Update, true),
            Policy::UPDATES,
            Transport::Udp,
        );
        assert_eq!(h, Response::DROPPED, "an UPDATE response is dropped");
        let q = query("coolgame.mark.repl.co.", RecordType::A)
            .to_vec()
            .unwrap();
        let (out, h) = respond_under(&q, Policy::UPDATES, Transport::Udp);
        let (want, wh) = respond_raw(&q, Transport::Udp, PAYLOAD);
        assert_eq!((&out[..h.len], h), (&want[..], wh));
    }

    #[test]
    fn header_error_answers_an_update_with_its_opcode() {
        let pkt = message(OpCode::Update, false);
        let mut out = [0u8; 12];
        let h = header_error(&pkt, &mut out, Rcode::SERVFAIL).unwrap();
        assert_eq!((h.len, self::rcode(&h)), (12, Some(2)));
        let resp = Message::from_vec(&out).unwrap();
        assert_eq!(resp.op_code(), OpCode::Update);
        assert_eq!(resp.id(), Message::from_vec(&pkt).unwrap().id());
        assert_eq!(resp.response_code(), ResponseCode::ServFail);
        assert!(header_error(&message(OpCode::Update, true), &mut out, Rcode::SERVFAIL).is_none());
        assert!(header_error(&[1, 2], &mut out, Rcode::SERVFAIL).is_none());
    }
}

/// The response to `q` from `snap` over `transport`, parsed.
fn exchange_with(snap: &Snapshot, q: &Message, transport: Transport) -> Message {
    let pkt = q.to_vec().unwrap();
    let mut out = vec![0u8; 65535];
    let h = respond(snap, &pkt, &mut out, transport);
    Message::from_vec(&out[..h.len]).unwrap()
}

fn txt_strings(resp: &Message) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = resp
        .answers()
        .iter()
        .map(|r| match rdata(r) {
            RData::TXT(t) => {
                assert_eq!(t.txt_data().len(), 1, "one character-string a record");
                t.txt_data()[0].to_vec()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    v.sort();
    v
}

#[test]
fn challenge_txt_records_are_answered_in_txt_zones() {
    let snap = testkit::acme_snapshot();
    let q = query("_ACME-challenge.Mark.repl.dev.", RecordType::TXT);
    let resp = exchange_with(snap, &q, Transport::Udp);
    assert_eq!(resp.response_code(), ResponseCode::NoError);
    assert!(resp.authoritative());
    assert_eq!(
        txt_strings(&resp),
        vec![b"first-token".to_vec(), b"second-token".to_vec()]
    );
    for r in resp.answers() {
        assert_eq!(r.name().to_ascii(), "_ACME-challenge.Mark.repl.dev.");
        assert_eq!(r.ttl(), 60, "[acme] ttl_secs' default");
    }
    // ANY: the TXT set; A: NODATA with the zone's SOA.
    let any = exchange_with(
        snap,
        &query("_acme-challenge.mark.repl.dev.", RecordType::ANY),
        Transport::Udp,
    );
    assert_eq!(txt_strings(&any).len(), 2);
    let a = exchange_with(
        snap,
        &query("_acme-challenge.mark.repl.dev.", RecordType::A),
        Transport::Udp,
    );
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert!(a.answers().is_empty() && a.authoritative());
    assert_eq!(a.name_servers()[0].record_type(), RecordType::SOA);
    assert_eq!(a.name_servers()[0].name().to_ascii(), "repl.dev.");
    // No record, or no owner: NXDOMAIN.
    for n in [
        "_acme-challenge.ann.repl.dev.",
        "_acme-challenge.nobody.repl.dev.",
    ] {
        let r = exchange_with(snap, &query(n, RecordType::TXT), Transport::Udp);
        assert_eq!(r.response_code(), ResponseCode::NXDomain, "{n}");
    }
    // The CNAME zone is unchanged.
    let resp = udp(&query("_acme-challenge.mark.repl.co.", RecordType::TXT));
    assert_eq!(resp.answers()[0].record_type(), RecordType::CNAME);
}

#[test]
fn a_challenge_set_too_large_for_udp_is_truncated() {
    let base = testkit::acme_snapshot();
    let mut table = (*base.table).clone();
    let name: crate::name::DomainName = "_acme-challenge.mark.repl.dev".parse().unwrap();
    for i in 0..6u8 {
        table.acme_mut().add(&name, &[b'a' + i; 255], 9).unwrap();
    }
    let snap = Snapshot::new(base.served.clone(), std::sync::Arc::new(table), 0);
    let mut q = query("_acme-challenge.mark.repl.dev.", RecordType::TXT);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    q.set_edns(edns);
    let resp = exchange_with(&snap, &q, Transport::Udp);
    assert!(
        resp.truncated(),
        "8 values of up to 255 bytes do not fit 1232"
    );
    let resp = exchange_with(&snap, &q, Transport::Tcp);
    assert!(!resp.truncated());
    assert_eq!(resp.answers().len(), 8);
}
