//! The DNS logic as a pure function: a question and a snapshot in, the outcome out. No I/O.
//!
//! The outcomes are named after Knot DNS's lookup states: a hit, a CNAME to follow, no data,
//! no such name, and the refusals and errors. The query layer (`query`) screens the question
//! (class, meta types) before asking, and turns an outcome into what `wire::encode` writes.

use domain::base::iana::{Class, Rcode, Rtype};

use crate::name::{DomainName, MAX_NAME_LEN};
use crate::snapshot::Snapshot;
use crate::table::LabelIs;
use crate::wire::rrset::RrSet;
use crate::zone::{Shape, Zone, ACME_LABEL};

/// A question with its name lower-cased, in wire form ending with the root label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question<'q> {
    pub name: &'q [u8],
    pub qtype: Rtype,
    pub qclass: Class,
}

/// What the answer to a question is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'s> {
    /// One RRset owned by the query name, with records for the additional section. With
    /// `picks` (not empty), a cluster's answer with more addresses than an answer carries:
    /// the query layer sends one of these precomputed weighted picks of `answer`'s records,
    /// chosen at random per query, instead of `answer`.
    Hit {
        zone: &'s Zone,
        answer: &'s RrSet,
        additional: &'s [RrSet],
        picks: &'s [RrSet],
    },
    /// `_acme-challenge.<name>`: a CNAME to `<name>.<target_zone>`, where `<name>` is the query
    /// name without its first label.
    AcmeCname {
        zone: &'s Zone,
        target_zone: &'s DomainName,
    },
    /// The name exists but has no record of the type asked for.
    NoData { zone: &'s Zone },
    /// `_acme-challenge.<name>` whose CNAME target would be longer than 255 bytes: YXDOMAIN,
    /// as for a DNAME substitution that overflows (RFC 6672 2.2).
    YxDomain { zone: &'s Zone },
    /// The name does not exist in the zone.
    NxDomain { zone: &'s Zone },
    /// Not ours to answer (outside every zone, a class other than IN, a zone transfer).
    Refused,
    /// A query type this server does not implement (MAILA, MAILB, TKEY, TSIG).
    NotImp,
    /// A query type that cannot be asked (OPT).
    FormErr,
    /// The app's cluster is not in the configuration (a change named a cluster that is not
    /// configured yet, or not any more).
    ServFail,
}

impl<'s> Outcome<'s> {
    /// The response code of this outcome (without extended bits).
    #[inline]
    pub fn rcode(&self) -> Rcode {
        match self {
            Outcome::Hit { .. } | Outcome::AcmeCname { .. } | Outcome::NoData { .. } => {
                Rcode::NOERROR
            }
            Outcome::FormErr => Rcode::FORMERR,
            Outcome::ServFail => Rcode::SERVFAIL,
            Outcome::NxDomain { .. } => Rcode::NXDOMAIN,
            Outcome::NotImp => Rcode::NOTIMP,
            Outcome::Refused => Rcode::REFUSED,
            Outcome::YxDomain { .. } => Rcode::YXDOMAIN,
        }
    }

    /// The zone the outcome was found in (none for the refusals and errors).
    #[inline]
    pub fn zone(&self) -> Option<&'s Zone> {
        match *self {
            Outcome::Hit { zone, .. }
            | Outcome::AcmeCname { zone, .. }
            | Outcome::NoData { zone }
            | Outcome::YxDomain { zone }
            | Outcome::NxDomain { zone } => Some(zone),
            Outcome::Refused | Outcome::NotImp | Outcome::FormErr | Outcome::ServFail => None,
        }
    }

    /// Whether the server answers this outcome authoritatively (AA set): every answer from
    /// inside a zone, not the refusals and errors.
    #[inline]
    pub fn is_authoritative(&self) -> bool {
        matches!(
            self,
            Outcome::Hit { .. }
                | Outcome::AcmeCname { .. }
                | Outcome::NoData { .. }
                | Outcome::NxDomain { .. }
                | Outcome::YxDomain { .. }
        )
    }

    /// For [`Outcome::AcmeCname`], the CNAME target of the lower-cased query name `qname`, in
    /// two pieces: the labels before the validation zone (the query name without
    /// `_acme-challenge` and without its root label), then the validation zone.
    #[inline]
    pub fn acme_target<'q>(&self, qname: &'q [u8]) -> Option<(&'q [u8], &'s DomainName)> {
        match *self {
            Outcome::AcmeCname { target_zone, .. } => {
                Some((&qname[ACME_LABEL.len()..qname.len() - 1], target_zone))
            }
            _ => None,
        }
    }
}

/// Answers `q` from `snap`. The question has passed the query layer's screening (class IN,
/// not a meta type: `query::policy`).
#[inline]
pub fn resolve<'s>(snap: &'s Snapshot, q: &Question<'_>) -> Outcome<'s> {
    let Some((zone, rel_len)) = snap.served.find_zone(q.name) else {
        return Outcome::Refused;
    };
    let rel = &q.name[..rel_len];
    match zone.classify(rel) {
        Shape::Apex => apex(zone, q.qtype),
        Shape::Acme { rest } if zone.acme_txt => acme_txt(snap, zone, rest, q),
        Shape::Acme { rest } => match &zone.acme_zone {
            Some(target_zone) if exists(snap, zone, rest) => {
                // The target: the name without `_acme-challenge` (and its root label) followed
                // by the validation zone.
                if q.name.len() - ACME_LABEL.len() - 1 + target_zone.wire().len() > MAX_NAME_LEN {
                    Outcome::YxDomain { zone }
                } else {
                    Outcome::AcmeCname { zone, target_zone }
                }
            }
            _ => Outcome::NxDomain { zone },
        },
        Shape::Host(i) => {
            let h = &zone.hosts[i];
            match family(&h.a, &h.aaaa, h.a.is_empty(), q.qtype) {
                Some(set) => hit(zone, set, &[]),
                None => Outcome::NoData { zone },
            }
        }
        Shape::HostAncestor => Outcome::NoData { zone },
        Shape::IdOrUser(key) => match snap.table.find_id_or_user(key) {
            LabelIs::App(c) => app(zone, c, q.qtype),
            LabelIs::User => Outcome::NoData { zone },
            LabelIs::Missing => Outcome::NxDomain { zone },
        },
        Shape::SlugUser(key) => match snap.table.find_slug_user(key) {
            Some(c) => app(zone, c, q.qtype),
            None => Outcome::NxDomain { zone },
        },
        Shape::Deep => Outcome::NxDomain { zone },
    }
}

/// `_acme-challenge.<owner>` in a zone that answers the challenge TXT records itself: the
/// TXT RRset when the owner exists and the name holds values (ANY: the same set, RFC 8482),
/// NODATA for another type; NXDOMAIN when it holds none (nothing exists below it either:
/// RFC 8020) or the owner does not exist.
#[inline]
fn acme_txt<'s>(snap: &'s Snapshot, zone: &'s Zone, rest: &[u8], q: &Question<'_>) -> Outcome<'s> {
    let set = match snap.table.acme().answer(q.name) {
        Some(set) if exists(snap, zone, rest) => set,
        _ => return Outcome::NxDomain { zone },
    };
    match q.qtype {
        Rtype::TXT | Rtype::ANY => Outcome::Hit {
            zone,
            answer: set,
            additional: &[],
            picks: &[],
        },
        _ => Outcome::NoData { zone },
    }
}

/// Whether the relative name `rel` exists in `zone` (has records or names below it).
fn exists(snap: &Snapshot, zone: &Zone, rel: &[u8]) -> bool {
    match zone.classify(rel) {
        Shape::Apex | Shape::Host(_) | Shape::HostAncestor => true,
        Shape::IdOrUser(key) => snap.table.find_id_or_user(key) != LabelIs::Missing,
        Shape::SlugUser(key) => snap.table.find_slug_user(key).is_some(),
        Shape::Acme { .. } | Shape::Deep => false,
    }
}

/// An app's answer: its cluster's precomputed answer for the type asked (with the picks to
/// choose among when it has more addresses than an answer carries).
#[inline]
fn app(zone: &Zone, cluster: u16, qtype: Rtype) -> Outcome<'_> {
    match zone.clusters.get(usize::from(cluster)) {
        Some(Some(c)) => match family(&c.a, &c.aaaa, c.a.set.is_empty(), qtype) {
            Some(f) => hit(zone, &f.set, &f.picks),
            None => Outcome::NoData { zone },
        },
        _ => Outcome::ServFail,
    }
}

/// Which of a name's (possibly empty) A and AAAA answers answers `qtype`, if one does
/// (`a_empty`: the name has no A record).
#[inline]
fn family<'s, T>(a: &'s T, aaaa: &'s T, a_empty: bool, qtype: Rtype) -> Option<&'s T> {
    match qtype {
        Rtype::A => Some(a),
        Rtype::AAAA => Some(aaaa),
        // RFC 8482: answer ANY with one RRset.
        Rtype::ANY if !a_empty => Some(a),
        Rtype::ANY => Some(aaaa),
        _ => None,
    }
}

/// A hit with `set`, NODATA when it is empty.
#[inline]
fn hit<'s>(zone: &'s Zone, set: &'s RrSet, picks: &'s [RrSet]) -> Outcome<'s> {
    if set.is_empty() {
        Outcome::NoData { zone }
    } else {
        Outcome::Hit {
            zone,
            answer: set,
            additional: &[],
            picks,
        }
    }
}

fn apex(zone: &Zone, qtype: Rtype) -> Outcome<'_> {
    // RFC 8482: answer ANY at the apex with the SOA alone.
    let qtype = if qtype == Rtype::ANY {
        Rtype::SOA
    } else {
        qtype
    };
    match zone.apex_set(qtype) {
        Some(set) => Outcome::Hit {
            zone,
            answer: set,
            additional: if qtype == Rtype::NS { &zone.glue } else { &[] },
            picks: &[],
        },
        None => Outcome::NoData { zone },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::snapshot;

    fn wire(name: &str) -> Vec<u8> {
        let n: DomainName = name.parse().unwrap();
        n.wire().to_vec()
    }

    fn ask<'s>(snap: &'s Snapshot, name: &str, qtype: Rtype) -> Outcome<'s> {
        let name = wire(name);
        let q = Question {
            name: &name,
            qtype,
            qclass: Class::IN,
        };
        resolve(snap, &q)
    }

    fn hit_count(o: Outcome<'_>) -> (Rtype, u16) {
        match o {
            Outcome::Hit { answer, .. } => (answer.rtype, answer.count),
            other => panic!("expected a hit, got {other:?}"),
        }
    }

    #[test]
    fn challenge_names_answer_their_txt_records() {
        let s = crate::testkit::acme_snapshot();
        assert_eq!(
            hit_count(ask(s, "_acme-challenge.MARK.repl.dev", Rtype::TXT)),
            (Rtype::TXT, 2)
        );
        // ANY: the TXT set (RFC 8482); another type: NODATA.
        assert_eq!(
            hit_count(ask(s, "_acme-challenge.mark.repl.dev", Rtype::ANY)),
            (Rtype::TXT, 2)
        );
        assert!(matches!(
            ask(s, "_acme-challenge.mark.repl.dev", Rtype::A),
            Outcome::NoData { .. }
        ));
        assert_eq!(
            hit_count(ask(s, "_acme-challenge.repl.dev", Rtype::TXT)),
            (Rtype::TXT, 1)
        );
        // No value at an existing owner, values at a missing owner, below a challenge name:
        // no such name.
        for name in [
            "_acme-challenge.ann.repl.dev",
            "_acme-challenge.nobody.repl.dev",
            "x._acme-challenge.mark.repl.dev",
            "_acme-challenge._acme-challenge.mark.repl.dev",
        ] {
            assert!(
                matches!(ask(s, name, Rtype::TXT), Outcome::NxDomain { .. }),
                "{name}"
            );
        }
        // A zone that delegates with a CNAME answers the CNAME, records or not.
        assert!(matches!(
            ask(s, "_acme-challenge.mark.repl.co", Rtype::TXT),
            Outcome::AcmeCname { .. }
        ));
    }

    #[test]
    fn app_names_answer_with_their_cluster() {
        let s = snapshot();
        assert_eq!(
            hit_count(ask(s, "coolgame.mark.repl.co", Rtype::A)),
            (Rtype::A, 1)
        );
        assert_eq!(
            hit_count(ask(s, "site.ann.repl.co", Rtype::A)),
            (Rtype::A, 2)
        );
        assert_eq!(hit_count(ask(s, "r1.repl.co", Rtype::A)), (Rtype::A, 2));
        assert_eq!(
            hit_count(ask(s, "r0.repl.co", Rtype::AAAA)),
            (Rtype::AAAA, 1)
        );
        // The same apps under the second zone, with its own TTL.
        match ask(s, "r0.repl.dev", Rtype::A) {
            Outcome::Hit { answer, zone, .. } => {
                assert_eq!(zone.apex.to_string(), "repl.dev.");
                assert_eq!(&answer.bytes[6..10], &30u32.to_be_bytes());
            }
            o => panic!("{o:?}"),
        }
        // ANY gets one RRset (RFC 8482).
        assert_eq!(hit_count(ask(s, "r0.repl.co", Rtype::ANY)), (Rtype::A, 1));
    }

    #[test]
    fn nodata_and_nxdomain() {
        let s = snapshot();
        assert!(matches!(
            ask(s, "r1.repl.co", Rtype::AAAA),
            Outcome::NoData { .. }
        ));
        assert!(matches!(
            ask(s, "r0.repl.co", Rtype::MX),
            Outcome::NoData { .. }
        ));
        assert!(matches!(
            ask(s, "r0.repl.co", Rtype::TXT),
            Outcome::NoData { .. }
        ));
        // A user with apps is an empty non-terminal (RFC 8020).
        assert!(matches!(
            ask(s, "mark.repl.co", Rtype::A),
            Outcome::NoData { .. }
        ));
        assert!(matches!(
            ask(s, "nobody.repl.co", Rtype::A),
            Outcome::NxDomain { .. }
        ));
        assert!(matches!(
            ask(s, "other.mark.repl.co", Rtype::A),
            Outcome::NxDomain { .. }
        ));
        assert!(matches!(
            ask(s, "x.coolgame.mark.repl.co", Rtype::A),
            Outcome::NxDomain { .. }
        ));
        assert!(matches!(
            ask(s, "x.r0.repl.co", Rtype::A),
            Outcome::NxDomain { .. }
        ));
    }

    #[test]
    fn deepest_zone_wins() {
        let s = snapshot();
        match ask(s, "r0.sub.repl.co", Rtype::A) {
            Outcome::Hit { zone, .. } => assert_eq!(zone.apex.to_string(), "sub.repl.co."),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn apex_records() {
        let s = snapshot();
        assert_eq!(hit_count(ask(s, "repl.co", Rtype::SOA)), (Rtype::SOA, 1));
        assert_eq!(hit_count(ask(s, "repl.co", Rtype::A)), (Rtype::A, 1));
        assert_eq!(hit_count(ask(s, "repl.co", Rtype::MX)), (Rtype::MX, 1));
        assert_eq!(hit_count(ask(s, "repl.co", Rtype::AAAA)), (Rtype::AAAA, 1));
        assert_eq!(hit_count(ask(s, "repl.co", Rtype::CAA)), (Rtype::CAA, 1));
        assert_eq!(hit_count(ask(s, "repl.co", Rtype::ANY)), (Rtype::SOA, 1));
        match ask(s, "repl.co", Rtype::NS) {
            Outcome::Hit {
                answer, additional, ..
            } => {
                assert_eq!(answer.count, 3);
                // ns1 (A and AAAA) and ns2.infra (A); none for ns.example.net.
                assert_eq!(additional.len(), 3, "glue for the in-zone servers only");
            }
            o => panic!("{o:?}"),
        }
        // Types the apex, or a host, has none of.
        assert!(matches!(
            ask(s, "repl.co", Rtype::SRV),
            Outcome::NoData { .. }
        ));
        assert!(matches!(
            ask(s, "repl.dev", Rtype::CAA),
            Outcome::NoData { .. }
        ));
        assert_eq!(hit_count(ask(s, "ns1.repl.co", Rtype::A)), (Rtype::A, 1));
        assert!(matches!(
            ask(s, "ns2.infra.repl.co", Rtype::AAAA),
            Outcome::NoData { .. }
        ));
    }

    #[test]
    fn acme_challenge_is_a_cname_for_existing_names() {
        let s = snapshot();
        for name in [
            "_acme-challenge.coolgame.mark.repl.co",
            "_acme-challenge.mark.repl.co",
            "_acme-challenge.r0.repl.co",
            "_acme-challenge.repl.co",
        ] {
            match ask(s, name, Rtype::TXT) {
                Outcome::AcmeCname { target_zone, .. } => {
                    assert_eq!(target_zone.to_string(), "acme.example.net.")
                }
                o => panic!("{name}: {o:?}"),
            }
        }
        assert!(matches!(
            ask(s, "_acme-challenge.nobody.repl.co", Rtype::TXT),
            Outcome::NxDomain { .. }
        ));
        // repl.dev has no validation zone.
        assert!(matches!(
            ask(s, "_acme-challenge.r0.repl.dev", Rtype::TXT),
            Outcome::NxDomain { .. }
        ));
        let n = wire("_acme-challenge.coolgame.mark.repl.co");
        let outcome = ask(s, "_acme-challenge.coolgame.mark.repl.co", Rtype::TXT);
        let (prefix, zone) = outcome.acme_target(&n).unwrap();
        assert_eq!(prefix, &wire("coolgame.mark.repl.co")[..22]);
        assert_eq!(zone.to_string(), "acme.example.net.");
        assert!(outcome.is_authoritative());
        assert_eq!(Outcome::Refused.acme_target(&n), None);
    }

    #[test]
    fn refusals_and_errors() {
        let s = snapshot();
        assert_eq!(ask(s, "example.com", Rtype::A), Outcome::Refused);
        assert_eq!(ask(s, "co", Rtype::A), Outcome::Refused);
        // Classes and meta types: `query::policy` (screened before resolving).
        assert_eq!(ask(s, "r7.repl.co", Rtype::A), Outcome::ServFail);
        assert_eq!(ask(s, "r7.repl.co", Rtype::A).rcode(), Rcode::SERVFAIL);
        assert_eq!(ask(s, "nobody.repl.co", Rtype::A).rcode(), Rcode::NXDOMAIN);
        assert!(!Outcome::Refused.is_authoritative());
    }
}
