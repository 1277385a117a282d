//! Signed answers through the packet path (`respond` with DO), checked by an independent
//! validator: hickory-proto's DNSSEC verification (`Verifier::verify_rrsig` with the zone's
//! DNSKEY records as the response gives them), never this crate's own code. Every RRset in
//! the answer and authority sections must carry a signature that verifies, for every kind
//! of answer: apps, the apex's sets and keys, hosts, challenge TXT and CNAME records, and
//! the compact denials (RFC 9824) of names that do not exist, of names without the type
//! asked, and of empty non-terminals.

use std::collections::BTreeMap;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_proto::rr::dnssec::Verifier;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::{respond, Transport};
use crate::dnssec::key::Algorithm;
use crate::snapshot::{Served, Snapshot};
use crate::table::Table;
use crate::testkit::{apps, signed_config};

/// The signed fixture: [`signed_config`] with the fixture's apps and challenge values.
fn snapshot(dir: &std::path::Path, algorithm: Algorithm) -> Snapshot {
    snapshot_with(dir, algorithm, "")
}

fn snapshot_with(dir: &std::path::Path, algorithm: Algorithm, extra: &str) -> Snapshot {
    let cfg = signed_config(dir, algorithm, extra);
    Snapshot::new(Arc::new(Served::from_config(&cfg)), table(), 0)
}

/// The fixture's apps and challenge values (`testkit::acme_snapshot`'s table).
fn table() -> Arc<Table> {
    crate::testkit::acme_snapshot().table.clone()
}

fn ask(snap: &Snapshot, name: &str, rtype: RecordType, dnssec_ok: bool, co: bool) -> Message {
    ask_over(snap, name, rtype, dnssec_ok, co, Transport::Tcp, 4096)
}

fn ask_over(
    snap: &Snapshot,
    name: &str,
    rtype: RecordType,
    dnssec_ok: bool,
    co: bool,
    transport: Transport,
    payload: u16,
) -> Message {
    let mut q = Message::new();
    q.set_id(4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns.set_dnssec_ok(dnssec_ok);
    q.set_edns(edns);
    let mut pkt = q.to_vec().unwrap();
    if co {
        // CO: bit 0x4000 of the OPT TTL's flags, next to DO's 0x8000 (RFC 9824); the OPT
        // record (no options) ends with the flags and a zero rdata length.
        let at = pkt.len() - 4;
        assert_eq!(pkt[at] & 0x80, if dnssec_ok { 0x80 } else { 0 });
        pkt[at] |= 0x40;
    }
    let mut out = vec![0u8; 65535];
    let r = respond(snap, &pkt, &mut out, transport);
    out.truncate(r.len);
    if transport == Transport::Udp {
        assert!(
            out.len() <= usize::from(payload.max(512)),
            "{} bytes",
            out.len()
        );
    }
    Message::from_vec(&out).unwrap()
}

fn dnskeys(snap: &Snapshot, zone: &str) -> Vec<DNSKEY> {
    ask(snap, zone, RecordType::DNSKEY, true, false)
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::DNSSEC(DNSSECRData::DNSKEY(k))) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// Verifies every RRSIG of `records` with `keys` and returns the RRsets (owner, type) that
/// have a valid signature; panics on a signature that does not verify.
fn verified(records: &[Record], keys: &[DNSKEY]) -> Vec<(String, RecordType)> {
    let mut sets: BTreeMap<(String, RecordType), Vec<Record>> = BTreeMap::new();
    let mut sigs: Vec<(String, RRSIG)> = Vec::new();
    for r in records {
        let owner = r.name().to_lowercase().to_ascii();
        match r.data() {
            Some(RData::DNSSEC(DNSSECRData::RRSIG(sig))) => sigs.push((owner, sig.clone())),
            _ => sets
                .entry((owner, r.record_type()))
                .or_default()
                .push(r.clone()),
        }
    }
    let mut ok = Vec::new();
    for (owner, sig) in sigs {
        let set = sets
            .get(&(owner.clone(), sig.type_covered()))
            .unwrap_or_else(|| panic!("an RRSIG of {owner} {} covers nothing", sig.type_covered()));
        let key = keys
            .iter()
            .find(|k| k.calculate_key_tag().unwrap() == sig.key_tag())
            .unwrap_or_else(|| panic!("no DNSKEY with tag {}", sig.key_tag()));
        key.verify_rrsig(&set[0].name().clone(), DNSClass::IN, &sig, set)
            .unwrap_or_else(|e| {
                panic!(
                    "{owner} {}: the signature does not verify: {e}",
                    sig.type_covered()
                )
            });
        ok.push((owner, sig.type_covered()));
    }
    for k in sets.keys() {
        assert!(ok.contains(k), "{k:?} has no signature");
    }
    ok
}

/// Every answer and authority RRset of the response to `name`/`rtype` is signed and
/// verifies; returns the response.
fn signed(snap: &Snapshot, keys: &[DNSKEY], name: &str, rtype: RecordType) -> Message {
    let m = ask(snap, name, rtype, true, false);
    assert!(m.authoritative(), "{name} {rtype}");
    verified(m.answers(), keys);
    verified(m.name_servers(), keys);
    m
}

/// The NSEC of a compact denial: owned by the query name, next name `\000.<name>`; its types.
fn nsec_types(m: &Message, name: &str) -> Vec<RecordType> {
    let nsec = m
        .name_servers()
        .iter()
        .find_map(|r| match r.data() {
            Some(RData::DNSSEC(DNSSECRData::NSEC(n))) => Some((r.name().clone(), n.clone())),
            _ => None,
        })
        .expect("an NSEC in the authority section");
    assert_eq!(nsec.0.to_lowercase().to_ascii(), name);
    assert_eq!(
        nsec.1.next_domain_name().to_ascii(),
        format!("\\000.{name}")
    );
    nsec.1.type_bit_maps().to_vec()
}

fn check_every_kind_of_answer(algorithm: Algorithm) {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path(), algorithm);
    let co = dnskeys(&snap, "repl.co.");
    let dev = dnskeys(&snap, "repl.dev.");
    assert_eq!((co.len(), dev.len()), (1, 2));
    // The DNSKEY sets are signed by the zones' own keys (checked inside `signed`).
    for (zone, keys) in [("repl.co.", &co), ("repl.dev.", &dev)] {
        for t in [
            RecordType::DNSKEY,
            RecordType::SOA,
            RecordType::NS,
            RecordType::CDS,
            RecordType::CDNSKEY,
        ] {
            let m = signed(&snap, keys, zone, t);
            assert!(!m.answers().is_empty(), "{zone} {t}");
        }
    }
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::CAA,
    ] {
        assert!(
            signed(&snap, &co, "repl.co.", t).answers().len() >= 2,
            "apex {t}"
        );
    }
    // Apps, by slug.user and by id, in both families; a host; mixed case in the question.
    for (name, t) in [
        ("coolgame.mark.repl.co.", RecordType::A),
        ("CoolGame.Mark.Repl.Co.", RecordType::AAAA),
        ("r1.repl.co.", RecordType::A),
        ("site.ann.repl.dev.", RecordType::A),
        ("ns1.repl.co.", RecordType::A),
    ] {
        let m = signed(
            &snap,
            if name.ends_with("dev.") { &dev } else { &co },
            name,
            t,
        );
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(
            m.answers().iter().any(|r| r.record_type() == t),
            "{name} {t}"
        );
    }
    // Challenges: TXT records held here (repl.dev), the CNAME delegation (repl.co).
    let m = signed(
        &snap,
        &dev,
        "_acme-challenge.mark.repl.dev.",
        RecordType::TXT,
    );
    assert_eq!(
        m.answers()
            .iter()
            .filter(|r| r.record_type() == RecordType::TXT)
            .count(),
        2
    );
    let m = signed(
        &snap,
        &co,
        "_acme-challenge.coolgame.mark.repl.co.",
        RecordType::TXT,
    );
    assert!(m
        .answers()
        .iter()
        .any(|r| r.record_type() == RecordType::CNAME));

    // NODATA: an app without IPv6, the apex's DS, an app's DS (validators ask it).
    let m = signed(&snap, &co, "site.ann.repl.co.", RecordType::AAAA);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(
        nsec_types(&m, "site.ann.repl.co."),
        vec![RecordType::A, RecordType::RRSIG, RecordType::NSEC]
    );
    let m = signed(&snap, &co, "coolgame.mark.repl.co.", RecordType::DS);
    assert_eq!(
        nsec_types(&m, "coolgame.mark.repl.co."),
        vec![
            RecordType::A,
            RecordType::AAAA,
            RecordType::RRSIG,
            RecordType::NSEC
        ]
    );
    let apex = nsec_types(&signed(&snap, &co, "repl.co.", RecordType::DS), "repl.co.");
    for t in [
        RecordType::SOA,
        RecordType::NS,
        RecordType::DNSKEY,
        RecordType::CDS,
        RecordType::CAA,
    ] {
        assert!(apex.contains(&t), "{t} in the apex's bitmap {apex:?}");
    }
    assert!(!apex.contains(&RecordType::DS));
    // An empty non-terminal (a user with apps, and a host's parent): RRSIG and NSEC only.
    for name in ["mark.repl.co.", "infra.repl.co."] {
        let m = signed(&snap, &co, name, RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            nsec_types(&m, name),
            vec![RecordType::RRSIG, RecordType::NSEC]
        );
    }
    // NXDOMAIN: NOERROR with NXNAME, unless the query set CO.
    for name in [
        "nobody.repl.co.",
        "a.b.c.repl.co.",
        "_acme-challenge.nobody.repl.dev.",
    ] {
        let keys = if name.ends_with("dev.") { &dev } else { &co };
        let m = signed(&snap, keys, name, RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError, "{name}");
        assert!(m.answers().is_empty());
        assert_eq!(
            nsec_types(&m, name),
            vec![
                RecordType::RRSIG,
                RecordType::NSEC,
                RecordType::Unknown(128)
            ]
        );
        let m = ask(&snap, name, RecordType::A, true, true);
        assert_eq!(m.response_code(), ResponseCode::NXDomain, "{name} with CO");
        verified(m.name_servers(), keys);
    }
}

#[test]
fn every_kind_of_answer_verifies_with_ecdsa_p256() {
    check_every_kind_of_answer(Algorithm::EcdsaP256Sha256);
}

#[test]
fn every_kind_of_answer_verifies_with_ed25519() {
    check_every_kind_of_answer(Algorithm::Ed25519);
}

#[test]
fn without_do_answers_are_byte_identical_to_an_unsigned_zone() {
    let dir = tempfile::tempdir().unwrap();
    let signed_snap = snapshot(dir.path(), Algorithm::EcdsaP256Sha256);
    let plain = Snapshot::new(
        Arc::new(Served::from_config(&crate::testkit::parse(
            &crate::testkit::config_text(),
        ))),
        table(),
        0,
    );
    for (name, t) in [
        ("coolgame.mark.repl.co.", RecordType::A),
        ("nobody.repl.co.", RecordType::A),
        ("repl.co.", RecordType::SOA),
        ("mark.repl.co.", RecordType::A),
        ("_acme-challenge.mark.repl.dev.", RecordType::TXT),
    ] {
        for edns in [false, true] {
            let mut q = Message::new();
            q.set_id(7)
                .set_message_type(MessageType::Query)
                .set_op_code(OpCode::Query)
                .add_query(Query::query(Name::from_ascii(name).unwrap(), t));
            if edns {
                q.set_edns(Edns::new());
            }
            let pkt = q.to_vec().unwrap();
            let bytes = |snap: &Snapshot| {
                let mut out = vec![0u8; 65535];
                let r = respond(snap, &pkt, &mut out, Transport::Udp);
                out.truncate(r.len);
                out
            };
            assert_eq!(bytes(&signed_snap), bytes(&plain), "{name} {t} edns {edns}");
        }
    }
}

#[test]
fn a_tampered_key_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path(), Algorithm::EcdsaP256Sha256);
    // Another zone's key (same algorithm, the same tag forced) must not verify repl.co's
    // signatures: the check above can fail.
    let other = dnskeys(&snap, "repl.dev.");
    let m = ask(&snap, "coolgame.mark.repl.co.", RecordType::A, true, false);
    let sig = m
        .answers()
        .iter()
        .find_map(|r| match r.data() {
            Some(RData::DNSSEC(DNSSECRData::RRSIG(s))) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let set: Vec<Record> = m
        .answers()
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .cloned()
        .collect();
    for k in &other {
        assert!(k
            .verify_rrsig(set[0].name(), DNSClass::IN, &sig, &set)
            .is_err());
    }
    // And a changed record breaks the right key's signature.
    let right = dnskeys(&snap, "repl.co.");
    assert!(right[0]
        .verify_rrsig(set[0].name(), DNSClass::IN, &sig, &set)
        .is_ok());
    let mut changed = set.clone();
    changed[0].set_ttl(61);
    changed[0].set_data(Some(RData::A("192.0.2.99".parse().unwrap())));
    assert!(right[0]
        .verify_rrsig(set[0].name(), DNSClass::IN, &sig, &changed)
        .is_err());
}

#[test]
fn a_signed_answer_that_does_not_fit_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path(), Algorithm::EcdsaP256Sha256);
    // 40 AAAA records (1120 bytes) fit 1232 unsigned; with their RRSIG they do not.
    let plain = ask_over(
        &snap,
        "wide.ann.repl.co.",
        RecordType::AAAA,
        false,
        false,
        Transport::Udp,
        1232,
    );
    assert!(!plain.truncated());
    assert_eq!(plain.answers().len(), crate::testkit::WIDE_V6);
    let m = ask_over(
        &snap,
        "wide.ann.repl.co.",
        RecordType::AAAA,
        true,
        false,
        Transport::Udp,
        1232,
    );
    assert!(m.truncated());
    assert!(m.answers().is_empty());
    // Over TCP the whole signed set comes.
    let m = ask(&snap, "wide.ann.repl.co.", RecordType::AAAA, true, false);
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), crate::testkit::WIDE_V6 + 1);
}

#[test]
fn past_the_miss_limit_udp_is_truncated_and_tcp_servfails_and_both_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot_with(
        dir.path(),
        Algorithm::EcdsaP256Sha256,
        "[dnssec]\nmisses_per_sec = 3\ncache_entries = 1024\n",
    );
    let before = crate::dnssec::sign::totals();
    // Each new name needs its NSEC signed (and the first one the SOA): the burst of 3 is
    // spent by the second name.
    let mut signed = 0;
    let mut limited = 0;
    for i in 0..10 {
        let name = format!("nobody{i}.repl.co.");
        let m = ask_over(
            &snap,
            &name,
            RecordType::A,
            true,
            false,
            Transport::Udp,
            1232,
        );
        if m.truncated() {
            assert!(m.answers().is_empty() && m.name_servers().is_empty());
            limited += 1;
        } else {
            assert!(!m.name_servers().is_empty());
            signed += 1;
        }
    }
    assert_eq!((signed, limited), (2, 8));
    let m = ask(&snap, "nobody-tcp.repl.co.", RecordType::A, true, false);
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    // Cached signatures still answer: the first name again is a hit.
    let m = ask_over(
        &snap,
        "nobody0.repl.co.",
        RecordType::A,
        true,
        false,
        Transport::Udp,
        1232,
    );
    assert!(!m.truncated());
    let after = crate::dnssec::sign::totals();
    assert!(after.limited - before.limited >= 9);
    assert!(after.signatures - before.signatures >= 3);
    assert!(after.hits - before.hits >= 2);
}

#[test]
fn every_weighted_pick_is_signed_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    // A fifth cluster (index 4): four addresses, two per answer, picked by weight.
    let cfg = signed_config(
        dir.path(),
        Algorithm::EcdsaP256Sha256,
        r#"
[[cluster]]
name = "w"
max_answers = 2
ipv4 = [{ address = "198.51.100.1", weight = 1 }, { address = "198.51.100.2", weight = 2 },
        { address = "198.51.100.3", weight = 3 }, { address = "198.51.100.4", weight = 4 }]
"#,
    );
    let w = cfg.cluster_index("w").unwrap();
    let mut table = Table::build(&apps()).unwrap();
    table.upsert("rw", "wuser", "pick", w).unwrap();
    let snap = Snapshot::new(Arc::new(Served::from_config(&cfg)), Arc::new(table), 0);
    let keys = dnskeys(&snap, "repl.co.");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let m = signed(&snap, &keys, "pick.wuser.repl.co.", RecordType::A);
        let mut addrs: Vec<String> = m
            .answers()
            .iter()
            .filter_map(|r| r.data().and_then(|d| d.as_a()).map(|a| a.to_string()))
            .collect();
        assert_eq!(addrs.len(), 2);
        addrs.sort();
        seen.insert(addrs);
    }
    // Different picks came, each with a signature that verified (in `signed`).
    assert!(seen.len() >= 4, "{seen:?}");
}
