//! Tests of the UPDATE/TSIG rules: requests built with domain's `MessageBuilder` and signed by
//! a real client-side signer (`ClientTransaction`), responses parsed and their TSIG verified.

use std::sync::Arc;

use domain::base::iana::{Class, Opcode, Rcode, Rtype, TsigRcode};
use domain::base::{Message, MessageBuilder, Name, Record, ToName, UnknownRecordData};
use domain::rdata::tsig::{Time48, Tsig};
use domain::tsig::{Algorithm, ClientTransaction, Key, ValidationError};

use super::*;

const NOW: u64 = 1_800_000_000;
const SECRET_MARK: &[u8] = b"0123456789abcdef0123456789abcdef";
const SECRET_OTHER: &[u8] = b"another secret of 32 bytes......";

fn keys() -> Keys {
    Keys::from_secrets(&[
        ("acme-mark", Algorithm::Sha256, SECRET_MARK),
        ("acme-other", Algorithm::Sha512, SECRET_OTHER),
    ])
    .unwrap()
}

fn policy() -> UpdatePolicy {
    UpdatePolicy {
        grants: vec![
            Grant {
                key: "acme-mark".into(),
                names: vec![
                    "_acme-challenge.*.mark.repl.co".parse().unwrap(),
                    "_acme-challenge.mark.repl.co".parse().unwrap(),
                ],
            },
            Grant {
                key: "acme-other".into(),
                names: vec!["_acme-challenge.other.repl.co".parse().unwrap()],
            },
        ],
        limits: Limits::default(),
    }
}

fn view() -> MemView {
    let mut v = MemView::new(
        &["repl.co"],
        &["mark.repl.co", "app.mark.repl.co", "other.repl.co"],
    );
    v.other
        .push(("app.mark.repl.co".parse().unwrap(), Rtype::A.to_int()));
    v
}

fn n(s: &str) -> DomainName {
    s.parse().unwrap()
}

fn client_key(name: &str, alg: Algorithm, secret: &[u8]) -> Arc<Key> {
    Arc::new(Key::new(alg, secret, format!("{name}.").parse().unwrap(), None, None).unwrap())
}

fn mark_key() -> Arc<Key> {
    client_key("acme-mark", Algorithm::Sha256, SECRET_MARK)
}

/// One record of a request: owner, class, ttl, type, RDATA.
struct R(&'static str, Class, u32, Rtype, Vec<u8>);

fn txt(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn add(name: &'static str, value: &str) -> R {
    R(name, Class::IN, 60, Rtype::TXT, txt(value))
}

/// A request for `zone` (SOA, IN) with prerequisites and updates.
struct Req {
    id: u16,
    zones: Vec<(&'static str, Rtype, Class)>,
    prereqs: Vec<R>,
    updates: Vec<R>,
    opcode: Opcode,
}

impl Req {
    fn new(updates: Vec<R>) -> Req {
        Req {
            id: 0x4242,
            zones: vec![("repl.co", Rtype::SOA, Class::IN)],
            prereqs: Vec::new(),
            updates,
            opcode: Opcode::UPDATE,
        }
    }

    fn builder(&self) -> domain::base::message_builder::AdditionalBuilder<Vec<u8>> {
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_id(self.id);
        b.header_mut().set_opcode(self.opcode);
        let mut q = b.question();
        for (z, t, c) in &self.zones {
            let name: Name<Vec<u8>> = z.parse().unwrap();
            q.push((name, *t, *c)).unwrap();
        }
        let mut a = q.answer();
        for r in &self.prereqs {
            a.push(rec(r)).unwrap();
        }
        let mut au = a.authority();
        for r in &self.updates {
            au.push(rec(r)).unwrap();
        }
        au.additional()
    }

    fn unsigned(&self) -> Vec<u8> {
        self.builder().finish()
    }

    fn signed_at(&self, key: Arc<Key>, at: u64) -> (Vec<u8>, ClientTransaction<Arc<Key>>) {
        let mut b = self.builder();
        let tx = ClientTransaction::request(key, &mut b, Time48::from_u64(at)).unwrap();
        (b.finish(), tx)
    }

    fn signed(&self) -> (Vec<u8>, ClientTransaction<Arc<Key>>) {
        self.signed_at(mark_key(), NOW)
    }
}

fn rec(r: &R) -> Record<Name<Vec<u8>>, UnknownRecordData<Vec<u8>>> {
    Record::new(
        r.0.parse().unwrap(),
        r.1,
        domain::base::Ttl::from_secs(r.2),
        UnknownRecordData::from_octets(r.3, r.4.clone()).unwrap(),
    )
}

fn run_with(v: &MemView, p: &UpdatePolicy, wire: &[u8]) -> Decision {
    let mut limiter = RateLimiter::new(&p.limits);
    process(v, &keys(), p, wire, NOW, &mut limiter)
}

fn run(wire: &[u8]) -> Decision {
    run_with(&view(), &policy(), wire)
}

/// The reply of a decision that is one, checked to parse and to carry `id`.
fn reply_of(d: Decision, id: u16) -> Reply {
    match d {
        Decision::Reply(r) => {
            let m = Message::from_octets(r.wire.clone()).unwrap();
            assert_eq!(m.header().id(), id);
            assert!(m.header().qr());
            assert_eq!(m.header().opcode(), Opcode::UPDATE);
            assert_eq!(m.header().rcode(), r.rcode);
            r
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Checks that `wire` is signed for `tx` and has `rcode`.
fn assert_signed(wire: Vec<u8>, tx: &ClientTransaction<Arc<Key>>, rcode: Rcode) {
    let mut m = Message::from_octets(wire).unwrap();
    assert_eq!(m.header().rcode(), rcode);
    tx.answer(&mut m, Time48::from_u64(NOW))
        .expect("a signed response");
}

/// A refusal of a signed request: its rcode, signed; the reason.
fn refused_signed(req: &Req, rcode: Rcode) -> String {
    let (wire, tx) = req.signed();
    let r = reply_of(run(&wire), req.id);
    assert_eq!(r.rcode, rcode, "{}", r.reason);
    assert_eq!(r.key.as_deref(), Some("acme-mark"));
    assert_signed(r.wire, &tx, rcode);
    r.reason
}

fn applied(d: Decision) -> (String, Vec<Op>, PendingReply) {
    match d {
        Decision::Apply {
            key,
            ops,
            reply,
            zone,
        } => {
            assert_eq!(zone, n("repl.co"));
            (key, ops, reply)
        }
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[test]
fn a_signed_add_is_applied_and_the_reply_is_signed() {
    let req = Req::new(vec![
        add("_acme-challenge.app.mark.repl.co", "token-1"),
        add("_acme-challenge.Mark.repl.co", "token-2"),
    ]);
    let (wire, tx) = req.signed();
    let (key, ops, reply) = applied(run(&wire));
    assert_eq!(key, "acme-mark");
    assert_eq!(
        ops,
        vec![
            Op::Add {
                name: n("_acme-challenge.app.mark.repl.co"),
                value: b"token-1".to_vec()
            },
            Op::Add {
                name: n("_acme-challenge.mark.repl.co"),
                value: b"token-2".to_vec()
            },
        ]
    );
    assert_eq!(reply.id(), req.id);
    let out = reply.success(NOW + 1);
    let m = Message::from_octets(out.clone()).unwrap();
    assert_eq!(m.header().id(), req.id);
    assert_eq!(m.header_counts().qdcount(), 1, "the zone section is echoed");
    assert_signed(out, &tx, Rcode::NOERROR);
}

#[test]
fn a_failed_write_gets_a_signed_servfail() {
    let req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    let (wire, tx) = req.signed();
    let (_, _, reply) = applied(run(&wire));
    assert_signed(reply.failure(Rcode::SERVFAIL, NOW), &tx, Rcode::SERVFAIL);
}

#[test]
fn sha512_keys_work() {
    let req = Req::new(vec![add("_acme-challenge.other.repl.co", "t")]);
    let (wire, tx) = req.signed_at(
        client_key("acme-other", Algorithm::Sha512, SECRET_OTHER),
        NOW,
    );
    let (key, ops, reply) = applied(run(&wire));
    assert_eq!(key, "acme-other");
    assert_eq!(ops.len(), 1);
    assert_signed(reply.success(NOW), &tx, Rcode::NOERROR);
}

#[test]
fn deletes_map_to_ops() {
    let mut v = view();
    v.apply(
        "acme-mark",
        &[Op::Add {
            name: n("_acme-challenge.app.mark.repl.co"),
            value: b"a".to_vec(),
        }],
    );
    let req = Req::new(vec![
        R(
            "_acme-challenge.app.mark.repl.co",
            Class::NONE,
            0,
            Rtype::TXT,
            txt("a"),
        ),
        R(
            "_acme-challenge.app.mark.repl.co",
            Class::ANY,
            0,
            Rtype::TXT,
            vec![],
        ),
        R(
            "_acme-challenge.mark.repl.co",
            Class::ANY,
            0,
            Rtype::ANY,
            vec![],
        ),
    ]);
    let (wire, _) = req.signed();
    let (_, ops, _) = applied(run_with(&v, &policy(), &wire));
    assert_eq!(
        ops,
        vec![
            Op::DeleteValue {
                name: n("_acme-challenge.app.mark.repl.co"),
                value: b"a".to_vec()
            },
            Op::DeleteRrset {
                name: n("_acme-challenge.app.mark.repl.co")
            },
            Op::DeleteName {
                name: n("_acme-challenge.mark.repl.co")
            },
        ]
    );
    v.apply("acme-mark", &ops);
    assert!(v.txt.is_empty());
}

#[test]
fn a_delete_needs_no_owner() {
    // Cleaning up after the app was deleted still works.
    let req = Req::new(vec![R(
        "_acme-challenge.gone.mark.repl.co",
        Class::NONE,
        0,
        Rtype::TXT,
        txt("a"),
    )]);
    let (wire, _) = req.signed();
    let (_, ops, _) = applied(run(&wire));
    assert_eq!(ops.len(), 1);
}

#[test]
fn unsigned_is_refused_unsigned() {
    let req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    let r = reply_of(run(&req.unsigned()), req.id);
    assert_eq!(r.rcode, Rcode::REFUSED);
    assert_eq!(r.key, None);
    assert_eq!(r.result(), "refused");
    let m = Message::from_octets(r.wire).unwrap();
    assert_eq!(m.header_counts().arcount(), 0, "no TSIG on the reply");
}

/// The TSIG record of a response.
fn tsig_of(wire: &[u8]) -> Tsig<Vec<u8>, Name<Vec<u8>>> {
    let m = Message::from_octets(wire).unwrap();
    let rr = m.additional().unwrap().last().unwrap().unwrap();
    assert_eq!(rr.rtype(), Rtype::TSIG);
    let rec = rr
        .to_record::<Tsig<&[u8], domain::base::ParsedName<&[u8]>>>()
        .unwrap()
        .unwrap();
    let d = rec.data();
    Tsig::new(
        d.algorithm().to_vec(),
        d.time_signed(),
        d.fudge(),
        d.mac().to_vec(),
        d.original_id(),
        d.error(),
        d.other().to_vec(),
    )
    .unwrap()
}

#[test]
fn an_unknown_key_gets_notauth_badkey() {
    let req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    let (wire, tx) = req.signed_at(client_key("nobody", Algorithm::Sha256, SECRET_MARK), NOW);
    let r = reply_of(run(&wire), req.id);
    assert_eq!(
        (r.rcode, r.tsig_error),
        (Rcode::NOTAUTH, Some(TsigRcode::BADKEY))
    );
    assert_eq!(r.result(), "badkey");
    assert_eq!(tsig_of(&r.wire).error(), TsigRcode::BADKEY);
    let mut m = Message::from_octets(r.wire).unwrap();
    assert!(matches!(
        tx.answer(&mut m, Time48::from_u64(NOW)),
        Err(ValidationError::ServerBadKey)
    ));
    // The right name with the wrong algorithm is an unknown key too.
    let (wire, _) = req.signed_at(client_key("acme-mark", Algorithm::Sha512, SECRET_MARK), NOW);
    assert_eq!(
        reply_of(run(&wire), req.id).tsig_error,
        Some(TsigRcode::BADKEY)
    );
}

#[test]
fn a_wrong_mac_gets_notauth_badsig() {
    let req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    let (wire, tx) = req.signed_at(
        client_key("acme-mark", Algorithm::Sha256, b"not the secret"),
        NOW,
    );
    let r = reply_of(run(&wire), req.id);
    assert_eq!(
        (r.rcode, r.tsig_error),
        (Rcode::NOTAUTH, Some(TsigRcode::BADSIG)),
        "{}",
        r.reason
    );
    assert_eq!(tsig_of(&r.wire).error(), TsigRcode::BADSIG);
    let mut m = Message::from_octets(r.wire).unwrap();
    assert!(matches!(
        tx.answer(&mut m, Time48::from_u64(NOW)),
        Err(ValidationError::ServerBadSig)
    ));
    // A message changed after signing fails the same way.
    let (mut wire, _) = req.signed();
    // The only `t` before the TSIG record is the TXT value.
    let pos = wire.iter().position(|&b| b == b't').unwrap();
    wire[pos] = b'u';
    let r = reply_of(run(&wire), req.id);
    assert_eq!(r.tsig_error, Some(TsigRcode::BADSIG));
}

#[test]
fn a_skewed_clock_gets_a_signed_badtime_with_the_server_time() {
    let req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    let (wire, tx) = req.signed_at(mark_key(), NOW - 301);
    let r = reply_of(run(&wire), req.id);
    assert_eq!(
        (r.rcode, r.tsig_error),
        (Rcode::NOTAUTH, Some(TsigRcode::BADTIME))
    );
    let t = tsig_of(&r.wire);
    assert_eq!(t.error(), TsigRcode::BADTIME);
    assert_eq!(t.other_time(), Some(Time48::from_u64(NOW)));
    let mut m = Message::from_octets(r.wire).unwrap();
    match tx.answer(&mut m, Time48::from_u64(NOW)) {
        Err(ValidationError::ServerBadTime { server, .. }) => {
            assert_eq!(server, Time48::from_u64(NOW))
        }
        other => panic!("{other:?}"),
    }
    // Within the fudge is fine.
    let (wire, _) = req.signed_at(mark_key(), NOW + 299);
    applied(run(&wire));
}

#[test]
fn zone_section_rules() {
    let mut req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    req.zones = vec![("example.com", Rtype::SOA, Class::IN)];
    assert!(refused_signed(&req, Rcode::NOTAUTH).contains("not authoritative"));
    req.zones = vec![("repl.co", Rtype::SOA, Class::CH)];
    refused_signed(&req, Rcode::NOTAUTH);
    req.zones = vec![("repl.co", Rtype::A, Class::IN)];
    refused_signed(&req, Rcode::FORMERR);
    req.zones = vec![
        ("repl.co", Rtype::SOA, Class::IN),
        ("repl.co", Rtype::SOA, Class::IN),
    ];
    refused_signed(&req, Rcode::FORMERR);
    req.zones = vec![];
    refused_signed(&req, Rcode::FORMERR);
    let mut v = view();
    v.delegated.push(n("repl.co"));
    let req = Req::new(vec![add("_acme-challenge.app.mark.repl.co", "t")]);
    let (wire, _) = req.signed();
    assert_eq!(
        reply_of(run_with(&v, &policy(), &wire), req.id).rcode,
        Rcode::REFUSED
    );
}

#[test]
fn names_outside_the_zone_get_notzone() {
    let req = Req::new(vec![add("_acme-challenge.app.mark.example.com", "t")]);
    refused_signed(&req, Rcode::NOTZONE);
    let mut req = Req::new(vec![]);
    req.prereqs = vec![R("example.com", Class::ANY, 0, Rtype::ANY, vec![])];
    refused_signed(&req, Rcode::NOTZONE);
}

#[test]
fn prerequisites() {
    let mut v = view();
    v.apply(
        "acme-mark",
        &[
            Op::Add {
                name: n("_acme-challenge.app.mark.repl.co"),
                value: b"a".to_vec(),
            },
            Op::Add {
                name: n("_acme-challenge.app.mark.repl.co"),
                value: b"b".to_vec(),
            },
        ],
    );
    let up = || vec![add("_acme-challenge.app.mark.repl.co", "c")];
    let ch = "_acme-challenge.app.mark.repl.co";
    let cases: Vec<(R, Rcode)> = vec![
        // Name is in use.
        (R(ch, Class::ANY, 0, Rtype::ANY, vec![]), Rcode::NOERROR),
        (
            R(
                "_acme-challenge.mark.repl.co",
                Class::ANY,
                0,
                Rtype::ANY,
                vec![],
            ),
            Rcode::NXDOMAIN,
        ),
        // Name is not in use.
        (
            R(
                "_acme-challenge.mark.repl.co",
                Class::NONE,
                0,
                Rtype::ANY,
                vec![],
            ),
            Rcode::NOERROR,
        ),
        (R(ch, Class::NONE, 0, Rtype::ANY, vec![]), Rcode::YXDOMAIN),
        // RRset exists (value independent).
        (R(ch, Class::ANY, 0, Rtype::TXT, vec![]), Rcode::NOERROR),
        (
            R("app.mark.repl.co", Class::ANY, 0, Rtype::A, vec![]),
            Rcode::NOERROR,
        ),
        (
            R("app.mark.repl.co", Class::ANY, 0, Rtype::TXT, vec![]),
            Rcode::NXRRSET,
        ),
        // RRset does not exist.
        (
            R("app.mark.repl.co", Class::NONE, 0, Rtype::TXT, vec![]),
            Rcode::NOERROR,
        ),
        (R(ch, Class::NONE, 0, Rtype::TXT, vec![]), Rcode::YXRRSET),
        // Malformed.
        (R(ch, Class::ANY, 5, Rtype::TXT, vec![]), Rcode::FORMERR),
        (R(ch, Class::ANY, 0, Rtype::TXT, txt("a")), Rcode::FORMERR),
        (R(ch, Class::CH, 0, Rtype::TXT, vec![]), Rcode::FORMERR),
        (R(ch, Class::IN, 0, Rtype::ANY, vec![]), Rcode::FORMERR),
    ];
    for (pre, want) in cases {
        let mut req = Req::new(up());
        let what = format!("{} {} {}", pre.0, pre.1, pre.3);
        req.prereqs = vec![pre];
        let (wire, tx) = req.signed();
        let d = run_with(&v, &policy(), &wire);
        if want == Rcode::NOERROR {
            let (_, ops, _) = applied(d);
            assert_eq!(ops.len(), 1, "{what}");
        } else {
            let r = reply_of(d, req.id);
            assert_eq!(r.rcode, want, "{what}: {}", r.reason);
            assert_signed(r.wire, &tx, want);
        }
    }
    // RRset exists (value dependent): exactly the set, in any order.
    let vd = |vals: &[&str]| -> Vec<R> {
        vals.iter()
            .map(|s| R(ch, Class::IN, 0, Rtype::TXT, txt(s)))
            .collect()
    };
    for (vals, want) in [
        (&["b", "a"][..], Rcode::NOERROR),
        (&["a"][..], Rcode::NXRRSET),
        (&["a", "b", "c"][..], Rcode::NXRRSET),
    ] {
        let mut req = Req::new(up());
        req.prereqs = vd(vals);
        let (wire, _) = req.signed();
        match run_with(&v, &policy(), &wire) {
            Decision::Apply { .. } => assert_eq!(want, Rcode::NOERROR, "{vals:?}"),
            d => assert_eq!(reply_of(d, req.id).rcode, want, "{vals:?}"),
        }
    }
    // Only prerequisites: NOERROR, signed, nothing to write.
    let mut req = Req::new(vec![]);
    req.prereqs = vec![R(ch, Class::ANY, 0, Rtype::TXT, vec![])];
    let (wire, tx) = req.signed();
    let r = reply_of(run_with(&v, &policy(), &wire), req.id);
    assert_eq!(r.result(), "noerror");
    assert_signed(r.wire, &tx, Rcode::NOERROR);
}

#[test]
fn update_section_format() {
    let ch = "_acme-challenge.app.mark.repl.co";
    for r in [
        R(ch, Class::IN, 60, Rtype::ANY, vec![]),
        R(ch, Class::ANY, 60, Rtype::TXT, vec![]),
        R(ch, Class::ANY, 0, Rtype::TXT, txt("a")),
        R(ch, Class::ANY, 0, Rtype::AXFR, vec![]),
        R(ch, Class::NONE, 60, Rtype::TXT, txt("a")),
        R(ch, Class::NONE, 0, Rtype::ANY, vec![]),
        R(ch, Class::CH, 0, Rtype::TXT, txt("a")),
        R(ch, Class::IN, 60, Rtype::TXT, vec![5, b'a']),
    ] {
        let what = format!("{} {} {}", r.1, r.2, r.3);
        let reason = refused_signed(&Req::new(vec![r]), Rcode::FORMERR);
        assert!(!reason.is_empty(), "{what}");
    }
}

#[test]
fn only_granted_challenge_txt_names() {
    for (r, why) in [
        // Another key's name.
        (add("_acme-challenge.other.repl.co", "t"), "may not change"),
        // An app name itself, the apex, a name of no grant.
        (add("app.mark.repl.co", "t"), "may not change"),
        (
            R("repl.co", Class::IN, 60, Rtype::SOA, vec![0; 22]),
            "may not change",
        ),
        (
            R("repl.co", Class::ANY, 0, Rtype::NS, vec![]),
            "may not change",
        ),
        (add("_acme-challenge.repl.co", "t"), "may not change"),
        // Granted name, wrong type.
        (
            R(
                "_acme-challenge.app.mark.repl.co",
                Class::IN,
                60,
                Rtype::A,
                vec![192, 0, 2, 1],
            ),
            "only TXT",
        ),
        (
            R(
                "_acme-challenge.app.mark.repl.co",
                Class::ANY,
                0,
                Rtype::CNAME,
                vec![],
            ),
            "only TXT",
        ),
        // No such owner.
        (
            add("_acme-challenge.nope.mark.repl.co", "t"),
            "no such name",
        ),
        // Two strings, or none.
        (
            R(
                "_acme-challenge.app.mark.repl.co",
                Class::IN,
                60,
                Rtype::TXT,
                [txt("a"), txt("b")].concat(),
            ),
            "one character-string",
        ),
    ] {
        let what = format!("{} {}", r.0, r.3);
        let reason = refused_signed(
            &Req::new(vec![add("_acme-challenge.app.mark.repl.co", "ok"), r]),
            Rcode::REFUSED,
        );
        assert!(reason.contains(why), "{what}: {reason}");
    }
}

#[test]
fn limits() {
    let mut p = policy();
    p.limits = Limits {
        max_value_len: 10,
        max_values_per_name: 2,
        max_names_per_key: 2,
        rate: 1,
        burst: 1,
    };
    let v = view();
    let check = |v: &MemView, updates: Vec<R>, want: Option<&str>| {
        let req = Req::new(updates);
        let (wire, _) = req.signed();
        match (run_with(v, &p, &wire), want) {
            (Decision::Apply { .. }, None) => {}
            (d, Some(why)) => {
                let r = reply_of(d, req.id);
                assert_eq!(r.rcode, Rcode::REFUSED);
                assert!(r.reason.contains(why), "{}", r.reason);
            }
            (d, None) => panic!("{d:?}"),
        }
    };
    let ch = "_acme-challenge.app.mark.repl.co";
    check(&v, vec![add(ch, "0123456789")], None);
    check(&v, vec![add(ch, "0123456789A")], Some("bytes"));
    check(&v, vec![add(ch, "a"), add(ch, "b")], None);
    check(
        &v,
        vec![add(ch, "a"), add(ch, "b"), add(ch, "c")],
        Some("values"),
    );
    // A delete in the same message makes room; a value added twice counts once.
    check(
        &v,
        vec![
            add(ch, "a"),
            add(ch, "b"),
            R(ch, Class::NONE, 0, Rtype::TXT, txt("a")),
            add(ch, "c"),
            add(ch, "c"),
        ],
        None,
    );
    check(
        &v,
        vec![add(ch, "a"), add("_acme-challenge.mark.repl.co", "b")],
        None,
    );
    let mut held = v.clone();
    held.apply(
        "acme-mark",
        &[
            Op::Add {
                name: n(ch),
                value: b"a".to_vec(),
            },
            Op::Add {
                name: n("_acme-challenge.mark.repl.co"),
                value: b"a".to_vec(),
            },
        ],
    );
    let mut more = held.clone();
    more.owners.push(n("x.mark.repl.co"));
    check(
        &more,
        vec![add("_acme-challenge.x.mark.repl.co", "a")],
        Some("challenge names"),
    );
    // Adding to a name already held is fine.
    check(&held, vec![add(ch, "b")], None);

    // The rate: one a second for this key, signed refusals past it.
    let mut limiter = RateLimiter::new(&p.limits);
    let req = Req::new(vec![add(ch, "a")]);
    let (wire, tx) = req.signed();
    assert!(matches!(
        process(&v, &keys(), &p, &wire, NOW, &mut limiter),
        Decision::Apply { .. }
    ));
    let r = reply_of(process(&v, &keys(), &p, &wire, NOW, &mut limiter), req.id);
    assert_eq!((r.rcode, r.result()), (Rcode::REFUSED, "ratelimited"));
    assert_signed(r.wire, &tx, Rcode::REFUSED);
    assert!(matches!(
        process(&v, &keys(), &p, &wire, NOW + 1, &mut limiter),
        Decision::Apply { .. }
    ));
}

#[test]
fn other_messages() {
    let mut req = Req::new(vec![]);
    req.opcode = Opcode::QUERY;
    let r = reply_of_any(run(&req.unsigned()));
    assert_eq!(r.rcode, Rcode::NOTIMP);
    // Responses and runts are dropped.
    let mut wire = Req::new(vec![]).unsigned();
    wire[2] |= 0x80;
    assert!(matches!(run(&wire), Decision::Drop));
    assert!(matches!(run(&wire[..11]), Decision::Drop));
    // A header alone, or garbage after it: a FORMERR or REFUSED reply with the ID.
    let mut wire = Req::new(vec![]).unsigned()[..12].to_vec();
    wire[5] = 3;
    let r = reply_of(run(&wire), 0x4242);
    assert!(
        matches!(r.rcode, Rcode::FORMERR | Rcode::REFUSED),
        "{:?}",
        r.rcode
    );
}

fn reply_of_any(d: Decision) -> Reply {
    match d {
        Decision::Reply(r) => r,
        d => panic!("{d:?}"),
    }
}

#[test]
fn pending_replies_can_cross_threads() {
    fn send<T: Send + 'static>() {}
    send::<PendingReply>();
    send::<Decision>();
}

/// A real `nsupdate -k` request: captured from a UDP socket, processed, and answered; the
/// answer must satisfy nsupdate (it checks the TSIG and exits 0).
#[test]
fn a_real_nsupdate_request() {
    use std::io::Write;
    use std::net::UdpSocket;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    if Command::new("nsupdate").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nsupdate is missing in CI"
        );
        eprintln!("skipped: nsupdate (bind9-dnsutils) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("k.key");
    std::fs::write(
        &keyfile,
        format!(
            "key \"acme-mark\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            domain::utils::base64::encode_string(SECRET_MARK)
        ),
    )
    .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut child = Command::new("nsupdate")
        .args(["-k", keyfile.to_str().unwrap(), "-t", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    write!(
        child.stdin.take().unwrap(),
        "server 127.0.0.1 {port}\nzone repl.co\nupdate add _acme-challenge.app.mark.repl.co 60 TXT \"nsupdate-token\"\nsend\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let (len, from) = sock.recv_from(&mut buf).expect("nsupdate sent nothing");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut limiter = RateLimiter::new(&Limits::default());
    let d = process(&view(), &keys(), &policy(), &buf[..len], now, &mut limiter);
    let Decision::Apply {
        key, ops, reply, ..
    } = d
    else {
        let _ = child.kill();
        panic!("{d:?}");
    };
    assert_eq!(key, "acme-mark");
    assert_eq!(
        ops,
        vec![Op::Add {
            name: n("_acme-challenge.app.mark.repl.co"),
            value: b"nsupdate-token".to_vec()
        }]
    );
    sock.send_to(&reply.success(now), from).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nsupdate rejected the reply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
