//! Fuzzes the UPDATE engine (`clusterns::update::process`). The first byte picks the mode:
//! - even: the rest is one UPDATE message as received (mostly unsigned or badly signed);
//! - odd: the rest is an `arbitrary` structured update (zone section, prerequisites and
//!   updates drawn from names, classes, types and TXT data near the grants), signed by a real
//!   client signer (`domain::tsig::ClientTransaction`) with a known key, a wrong secret or an
//!   unknown key, with a clock skew, so that inputs get past TSIG into the RFC 2136 rules.
//!
//! Checks that nothing panics and that
//! - every reply parses, is a response and carries the request's ID;
//! - an accepted update's ops are all at `_acme-challenge` names the signing key's grants
//!   match, adds carry 1 to `max_value_len` bytes, and the success and failure replies parse;
//! - for a signed request, every reply that is not a TSIG error verifies with the client's
//!   transaction (signed responses to validly signed requests).

#![no_main]

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use clusterns::update::{
    process, Decision, Grant, Keys, Limits, MemView, Op, RateLimiter, UpdatePolicy,
};
use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name, Record, Ttl, UnknownRecordData};
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, ClientTransaction, Key};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"fuzz secret for acme-mark.......";

#[derive(Arbitrary, Debug)]
struct NameSel {
    prefix: u8,
    middle: u8,
    zone: u8,
}

impl NameSel {
    fn text(&self) -> String {
        // Most choices are ones the grants accept, so that signed inputs reach Apply often.
        let prefix = [
            "_acme-challenge.",
            "_acme-challenge.",
            "_acme-challenge.",
            "_acme-challenge.",
            "",
            "www.",
            "_ACME-Challenge.",
            "_acme-challenge._acme-challenge.",
        ];
        let middle = [
            "app.mark.",
            "mark.",
            "app.mark.",
            "a.b.mark.",
            "other.",
            "nope.mark.",
            "a.b.mark.",
            "",
        ];
        let zone = ["repl.co", "repl.co", "Repl.CO", "example.com", "co"];
        format!(
            "{}{}{}",
            prefix[usize::from(self.prefix) % prefix.len()],
            middle[usize::from(self.middle) % middle.len()],
            zone[usize::from(self.zone) % zone.len()]
        )
    }
}

#[derive(Arbitrary, Debug)]
struct Rr {
    name: NameSel,
    class: u8,
    ttl: u8,
    rtype: u8,
    /// A value from a small set (most inputs), or `strings` when `raw % 4 == 0`.
    value: u8,
    strings: Vec<Vec<u8>>,
    raw: u8,
}

impl Rr {
    fn record(&self) -> Option<Record<Name<Vec<u8>>, UnknownRecordData<Vec<u8>>>> {
        let classes = [Class::IN, Class::IN, Class::NONE, Class::ANY, Class::CH];
        let types = [
            Rtype::TXT,
            Rtype::TXT,
            Rtype::TXT,
            Rtype::TXT,
            Rtype::A,
            Rtype::ANY,
            Rtype::SOA,
            Rtype::NS,
            Rtype::CNAME,
            Rtype::AXFR,
            Rtype::TSIG,
        ];
        let rtype = types[usize::from(self.rtype) % types.len()];
        let values: [&[u8]; 4] = [
            b"a",
            b"seed",
            b"token-2",
            b"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
        ];
        let mut data = Vec::new();
        if self.raw % 4 != 0 {
            let v = values[usize::from(self.value) % values.len()];
            // Deletes of an RRset and prerequisites without data carry none.
            if self.value % 5 != 4 {
                data.push(v.len() as u8);
                data.extend_from_slice(v);
            }
        }
        for s in self.strings.iter().filter(|_| self.raw % 4 == 0) {
            if self.raw % 8 == 0 {
                data.extend_from_slice(s);
            } else {
                let s = &s[..s.len().min(255)];
                data.push(s.len() as u8);
                data.extend_from_slice(s);
            }
        }
        data.truncate(1000);
        Some(Record::new(
            self.name.text().parse().ok()?,
            classes[usize::from(self.class) % classes.len()],
            Ttl::from_secs(if self.ttl % 4 == 0 { 60 } else { 0 }),
            UnknownRecordData::from_octets(rtype, data).ok()?,
        ))
    }
}

#[derive(Arbitrary, Debug)]
struct Update {
    id: u16,
    /// The zone section: one SOA question for repl.co, IN, unless `zone_defect % 8 == 0`;
    /// then `zones` as drawn.
    zone_defect: u8,
    zones: Vec<(NameSel, bool, bool)>,
    prereqs: Vec<Rr>,
    updates: Vec<Rr>,
    /// 0: a wrong secret, 1: an unknown key, else the right key.
    key: u8,
    /// Seconds, times 3: past the fudge (300) now and then.
    skew: i8,
}

fn keys() -> Keys {
    Keys::from_secrets(&[("acme-mark", Algorithm::Sha256, SECRET)]).unwrap()
}

fn policy() -> UpdatePolicy {
    UpdatePolicy {
        grants: vec![Grant {
            key: "acme-mark".into(),
            names: vec![
                "_acme-challenge.*.mark.repl.co".parse().unwrap(),
                "_acme-challenge.mark.repl.co".parse().unwrap(),
            ],
        }],
        limits: Limits {
            max_value_len: 64,
            max_values_per_name: 3,
            max_names_per_key: 3,
            rate: 1,
            burst: 2,
        },
    }
}

fn view() -> MemView {
    let mut v = MemView::new(
        &["repl.co"],
        &[
            "mark.repl.co",
            "app.mark.repl.co",
            "other.repl.co",
            "a.b.mark.repl.co",
        ],
    );
    v.apply(
        "acme-mark",
        &[Op::Add {
            name: "_acme-challenge.app.mark.repl.co".parse().unwrap(),
            value: b"seed".to_vec(),
        }],
    );
    v.other
        .push(("app.mark.repl.co".parse().unwrap(), Rtype::A.to_int()));
    v
}

fn signed(u: &Update) -> Option<(Vec<u8>, ClientTransaction<Arc<Key>>)> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(u.id);
    b.header_mut().set_opcode(Opcode::UPDATE);
    let mut q = b.question();
    let regular = [(
        NameSel {
            prefix: 4,
            middle: 7,
            zone: 0,
        },
        true,
        true,
    )];
    let zones = if u.zone_defect % 8 == 0 {
        &u.zones[..u.zones.len().min(3)]
    } else {
        &regular[..]
    };
    for (z, soa, inet) in zones {
        let name: Name<Vec<u8>> = z.text().parse().ok()?;
        let t = if *soa { Rtype::SOA } else { Rtype::TXT };
        let c = if *inet { Class::IN } else { Class::CH };
        q.push((name, t, c)).ok()?;
    }
    let mut a = q.answer();
    for r in u.prereqs.iter().take(8) {
        a.push(r.record()?).ok()?;
    }
    let mut au = a.authority();
    for r in u.updates.iter().take(12) {
        au.push(r.record()?).ok()?;
    }
    let mut add = au.additional();
    let (name, alg, secret): (&str, _, &[u8]) = match u.key % 8 {
        0 => ("acme-mark.", Algorithm::Sha256, b"wrong"),
        1 => ("nobody.", Algorithm::Sha512, SECRET),
        _ => ("acme-mark.", Algorithm::Sha256, SECRET),
    };
    let key = Arc::new(Key::new(alg, secret, name.parse().ok()?, None, None).ok()?);
    let at = NOW.saturating_add_signed(i64::from(u.skew) * 3);
    let tx = ClientTransaction::request(key, &mut add, Time48::from_u64(at)).ok()?;
    Some((add.finish(), tx))
}

fn check(msg: &[u8], tx: Option<&ClientTransaction<Arc<Key>>>) {
    let (keys, policy, view) = (keys(), policy(), view());
    let mut limiter = RateLimiter::new(&policy.limits);
    let id = (msg.len() >= 2).then(|| u16::from_be_bytes([msg[0], msg[1]]));
    let parse = |wire: &[u8]| {
        let m = Message::from_octets(wire.to_vec()).expect("a reply parses");
        assert_eq!(Some(m.header().id()), id);
        assert!(m.header().qr());
        m
    };
    match process(&view, &keys, &policy, msg, NOW, &mut limiter) {
        Decision::Drop => assert!(msg.len() < 12 || msg[2] & 0x80 != 0),
        Decision::Reply(r) => {
            let mut m = parse(&r.wire);
            assert_eq!(m.header().rcode(), r.rcode);
            if let (Some(tx), None, Some(_)) = (tx, r.tsig_error, &r.key) {
                tx.answer(&mut m, Time48::from_u64(NOW))
                    .expect("a signed reply");
            }
        }
        Decision::Apply {
            key, ops, reply, ..
        } => {
            assert!(!ops.is_empty());
            for op in &ops {
                assert!(policy.allows(&key, op.name()), "{op:?} outside the grant");
                assert_eq!(op.name().labels().next(), Some(&b"_acme-challenge"[..]));
                if let Op::Add { value, .. } = op {
                    assert!(!value.is_empty() && value.len() <= policy.limits.max_value_len);
                }
            }
            let mut m = parse(&reply.success(NOW));
            assert_eq!(m.header().rcode(), Rcode::NOERROR);
            if let Some(tx) = tx {
                tx.answer(&mut m, Time48::from_u64(NOW))
                    .expect("a signed success");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check(rest, None);
        return;
    }
    let Ok(u) = Update::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    if let Some((wire, tx)) = signed(&u) {
        check(&wire, Some(&tx));
    }
});
