//! What the fuzz targets share: the snapshot they answer from and the checks every response
//! of the packet path must pass (used by `packet`, `query_struct` and `tcp_stream`).
//!
//! [`check`] checks that `query::respond` never panics and that every response
//! - parses with the `domain` crate, every section and every record's data to the end, with no
//!   byte left over;
//! - is a response (QR) with the query's ID, at most one OPT record (owned by the root);
//! - fits the UDP limit (512 bytes without EDNS, else the client's size clamped to 512..=the
//!   server's payload size) over UDP, and is never truncated over TCP;
//! - for a well-formed query: echoes the question byte for byte, and has the rcode (and AA) that
//!   `clusterns::query::outcome` gives for the same question over the same snapshot;
//! - says what it is: the response class (for rate limiting) matches the header's rcode and
//!   answer count, and its truncated form (`wire::truncate`, the rate limiter's slip) parses
//!   and keeps the question.
//!
//! Nothing is sent for exactly the packets `decode` finds to be responses or runts.

use std::cell::RefCell;

use clusterns::name::MAX_NAME_LEN;
use clusterns::query::{ResponseClass, Transport};
use clusterns::resolve::{Outcome, Question};
use clusterns::snapshot::Snapshot;
use clusterns::wire::{self, Decoded};
use domain::base::{Message, ParsedName};
use domain::rdata::AllRecordData;

/// The snapshot every target answers from, [`clusterns::testkit::snapshot`] (zones with every
/// shape of name, clusters with answers that do not fit 512 or 1232 bytes, a validation zone
/// long enough that a CNAME target could pass 255 bytes, apps in a base table and an overlay);
/// [`config`] is its configuration text and [`UUID`] the repl id of the overlay's app.
pub use clusterns::testkit::{config_text as config, snapshot, UUID};

thread_local! {
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0; 65535]);
}

/// Runs `f` with a 65535-byte response buffer (allocated once per thread).
pub fn with_out<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    OUT.with(|out| f(&mut out.borrow_mut()))
}

/// A query (RD set, ID 0x4242) for the wire name `name`, with an OPT record advertising
/// `edns` bytes when given.
pub fn query(name: &[u8], qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut q = vec![
        0x42,
        0x42,
        0x01,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(edns.is_some()),
    ];
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some(size) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    q
}

/// [`snapshot`]'s table served from its configuration with `repl.co` signed by a P-256 CSK
/// and `repl.dev` by a KSK and a ZSK (`testkit::signed_config`; the key files live in a
/// temporary directory for the process's life), with no practical miss limit, so that
/// queries with DO get signed answers and compact denials.
pub fn signed_snapshot() -> &'static Snapshot {
    use std::sync::{Arc, OnceLock};
    static SNAP: OnceLock<(Snapshot, tempfile::TempDir)> = OnceLock::new();
    &SNAP
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("key directory");
            let cfg = clusterns::testkit::signed_config(
                dir.path(),
                clusterns::dnssec::key::Algorithm::EcdsaP256Sha256,
                "[dnssec]\nmisses_per_sec = 1000000000\ncache_entries = 4096\n",
            );
            let base = snapshot();
            let snap = Snapshot::new(
                Arc::new(clusterns::snapshot::Served::from_config(&cfg)),
                base.table.clone(),
                0,
            );
            (snap, dir)
        })
        .0
}

/// Runs [`check`] on `data` over UDP and over TCP, from the plain and the signed snapshot.
pub fn check_packet(data: &[u8]) {
    let snap = snapshot();
    // The workers' prefetch pass reads the same untrusted bytes first.
    let fetch = clusterns::prefetch::BatchLookups::start(snap, std::iter::once(data));
    fetch.record(snap, 0);
    with_out(|out| {
        for s in [snap, signed_snapshot()] {
            check(s, data, out, Transport::Udp);
            check(s, data, out, Transport::Tcp);
        }
    });
}

/// What the checks need from a parsed response.
pub struct Parsed {
    pub rcode: u16,
    pub aa: bool,
    pub tc: bool,
    pub counts: [u16; 4],
}

/// Parses `resp` with `domain` to the last byte; panics on any error.
pub fn parse(resp: &[u8]) -> Parsed {
    let msg = Message::from_slice(resp).expect("response header");
    let header = msg.header();
    assert!(header.qr(), "QR set");
    let hc = msg.header_counts();
    let mut questions = msg.question();
    for q in &mut questions {
        q.expect("response question");
    }
    let mut section = questions.answer().expect("answer section");
    let mut index = 0;
    let mut ext_rcode = None;
    loop {
        for record in &mut section {
            let record = record.expect("response record");
            record
                .to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
                .expect("response record data");
            if record.rtype().to_int() == 41 {
                assert_eq!(index, 2, "OPT in the additional section");
                assert!(record.owner().is_root(), "OPT owned by the root");
                assert!(ext_rcode.is_none(), "one OPT");
                ext_rcode = Some((record.ttl().as_secs() >> 24) as u16);
            }
        }
        let end = section.pos();
        match section.next_section().expect("next section") {
            Some(next) => {
                section = next;
                index += 1;
            }
            None => {
                assert_eq!(end, resp.len(), "no bytes after the last record");
                break;
            }
        }
    }
    Parsed {
        rcode: u16::from(resp[3] & 0x0f) | ext_rcode.unwrap_or(0) << 4,
        aa: header.aa(),
        tc: header.tc(),
        counts: [hc.qdcount(), hc.ancount(), hc.nscount(), hc.arcount()],
    }
}

/// Answers `data` over `transport` into `out` (65535 bytes) and checks the response (see the
/// module's documentation). Returns the response's length (0: nothing sent).
pub fn check(snap: &Snapshot, data: &[u8], out: &mut [u8], transport: Transport) -> usize {
    out[..2048].fill(0xA5);
    let handled = clusterns::query::respond(snap, data, out, transport);
    let decoded = wire::decode(data);
    let dropped = matches!(decoded, Decoded::Response | Decoded::Runt);
    if handled.len == 0 {
        assert!(dropped, "only dropped packets get no response: {decoded:?}");
        assert!(data.len() < 12 || data[2] & 0x80 != 0);
        assert_eq!(handled.class, ResponseClass::Dropped);
        return 0;
    }
    assert!(!dropped);
    let resp = &out[..handled.len];
    assert_eq!(resp[..2], data[..2], "the query's ID");
    let payload = usize::from(snap.served.udp_payload);
    let limit = match (transport, &decoded) {
        (Transport::Tcp, _) => 65535,
        (Transport::Udp, Decoded::Query(req)) => req
            .edns
            .map_or(512, |e| usize::from(e.udp_size).clamp(512, payload)),
        (Transport::Udp, _) => 512,
    };
    assert!(resp.len() <= limit, "{} bytes over {limit}", resp.len());
    let p = parse(resp);
    assert_eq!(
        handled.rcode.map(|r| r.to_int()),
        Some(p.rcode),
        "Response.rcode is the rcode sent"
    );
    let class = match (resp[3] & 0x0f, p.counts[1]) {
        (0, n) if n > 0 => ResponseClass::Answer,
        (0, _) => ResponseClass::NoData,
        (3, _) => ResponseClass::NxDomain,
        _ => ResponseClass::Error,
    };
    assert_eq!(handled.class, class, "the response class");
    // The rate limiter's slip: the same response cut to its header and question.
    let mut cut = resp.to_vec();
    let cut_len = wire::truncate(&mut cut, usize::from(handled.question_end));
    let c = parse(&cut[..cut_len]);
    assert!(c.tc, "a cut response has TC");
    assert_eq!(c.counts, [p.counts[0], 0, 0, 0]);
    assert_eq!(cut[12..cut_len], resp[12..usize::from(handled.question_end)]);
    assert_eq!(handled.truncated, p.tc);
    assert!(!(p.tc && transport == Transport::Tcp), "no TC over TCP");
    if p.tc {
        assert_eq!(p.counts[1..3], [0, 0], "TC responses carry no records");
    }
    match decoded {
        Decoded::Malformed(_) | Decoded::OtherOpcode(_) => {
            let rcode = if matches!(decoded, Decoded::Malformed(_)) {
                1
            } else {
                4
            };
            assert_eq!(p.rcode, rcode);
            assert_eq!(resp.len(), 12);
            assert_eq!(resp[2] & 0x78, data[2] & 0x78, "opcode echoed");
        }
        Decoded::Query(req) => {
            assert_eq!(p.counts[0], 1);
            assert_eq!(
                &resp[12..12 + req.question.len()],
                req.question,
                "question echoed"
            );
            assert_eq!(resp[2] & 0x01, data[2] & 0x01, "RD copied");
            assert_eq!(resp[3] & 0x10, data[3] & 0x10, "CD copied");
            let mut buf = [0u8; MAX_NAME_LEN];
            let name = wire::lowercase(req.qname(), &mut buf);
            let outcome = clusterns::query::outcome(
                snap,
                &Question {
                    name,
                    qtype: req.qtype,
                    qclass: req.qclass,
                },
            );
            let badvers = req.edns.is_some_and(|e| e.version > 0);
            // Signed: a query with DO (EDNS version 0) in a zone with keys; a compact denial
            // is NOERROR unless CO is set, and needs room for the successor name.
            let keys = outcome
                .zone()
                .and_then(|z| z.dnssec.as_deref())
                .filter(|_| !badvers && req.edns.is_some_and(|e| e.dnssec_ok));
            let negative = matches!(outcome, Outcome::NoData { .. } | Outcome::NxDomain { .. });
            let denial = keys.is_some() && negative && name.len() + 2 <= MAX_NAME_LEN;
            let expected = if badvers {
                16
            } else if denial && !req.edns.is_some_and(|e| e.compact_ok) {
                0
            } else {
                u16::from(outcome.rcode().to_int())
            };
            assert_eq!(p.rcode, expected, "rcode of {outcome:?}");
            assert_eq!(p.aa, !badvers && outcome.is_authoritative());
            // Additional records: the OPT when the query had one, and glue only.
            assert!(p.counts[3] >= u16::from(req.edns.is_some()));
            if p.counts[3] > u16::from(req.edns.is_some()) {
                assert!(
                    !p.tc && has_glue(&outcome),
                    "additional records of {outcome:?}"
                );
            }
            if !p.tc && !badvers {
                let sigs = |t: domain::base::iana::Rtype| {
                    keys.map_or(0, |k| k.signers(t).len() as u16)
                };
                let an = match outcome {
                    Outcome::Hit { answer, .. } => answer.count + sigs(answer.rtype),
                    Outcome::AcmeCname { .. } => 1 + sigs(domain::base::iana::Rtype::CNAME),
                    _ => 0,
                };
                assert_eq!(p.counts[1], an, "answer count of {outcome:?}");
                let ns = if denial {
                    2 + sigs(domain::base::iana::Rtype::SOA) + sigs(domain::base::iana::Rtype::NSEC)
                } else {
                    u16::from(negative)
                };
                assert_eq!(p.counts[2], ns, "authority count of {outcome:?}");
            }
        }
        Decoded::Response | Decoded::Runt => unreachable!(),
    }
    handled.len
}

/// Whether an outcome may put records in the additional section.
fn has_glue(o: &Outcome<'_>) -> bool {
    matches!(o, Outcome::Hit { additional, .. } if !additional.is_empty())
}
