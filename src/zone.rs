//! A served zone: its apex records pre-encoded, its static hosts, and the classification of a
//! query name below the apex into the shapes this server answers.
//!
//! Shapes (relative to the apex, on the lower-cased wire name):
//! - nothing: the apex;
//! - `_acme-challenge.<rest>`: the DNS-01 challenge: the TXT records held in the table
//!   (`acme = "txt"`) or the delegation CNAME (`acme = "cname"`);
//! - a configured host (`ns1`), or an ancestor of one (an empty non-terminal);
//! - one label: `<replid>` or `<user>`;
//! - two labels: `<slug>.<user>`;
//! - anything deeper: no such name.

use crate::config::{AcmeMode, ZoneConfig};
use crate::dnssec::zone::ZoneKeys;
use crate::health::answer::{Choice, ClusterChoice};
use crate::health::pick::Pick;
use crate::name::DomainName;
use domain::base::iana::Rtype;

use crate::wire::rrset::{txt_rdata, Owner, RrSet};

/// The first label of a DNS-01 challenge name, in wire form.
pub const ACME_LABEL: &[u8] = b"\x0f_acme-challenge";

/// A static host inside the zone.
#[derive(Debug, PartialEq, Eq)]
pub struct Host {
    /// The host's labels relative to the apex, wire form without the root label.
    pub rel: Box<[u8]>,
    pub a: RrSet,
    pub aaaa: RrSet,
}

/// One zone, ready to answer from.
#[derive(Debug, PartialEq, Eq)]
pub struct Zone {
    pub apex: DomainName,
    /// TTL of the app answers.
    pub ttl: u32,
    /// The SOA as the answer to an apex SOA query.
    pub soa: RrSet,
    /// The SOA for the authority section of negative answers: its TTL is
    /// min(SOA TTL, negative TTL) per RFC 2308.
    pub soa_negative: RrSet,
    /// The apex RRsets other than the SOA, by type (NS first).
    pub apex_sets: Vec<RrSet>,
    /// Address records of in-zone name servers, for the additional section of NS answers.
    pub glue: Vec<RrSet>,
    pub hosts: Vec<Host>,
    /// Relative names that exist only because a host lies below them.
    pub host_ancestors: Vec<Box<[u8]>>,
    /// `_acme-challenge.<name>` -> `<name>.<acme_zone>` (only in `acme = "cname"` mode).
    pub acme_zone: Option<DomainName>,
    /// `_acme-challenge.<name>` answers the challenge TXT records the table holds
    /// (`acme = "txt"`).
    pub acme_txt: bool,
    /// Per cluster, by the table's cluster index (its registry's order): the A and AAAA
    /// answers for an app's name as the answer policy chose them, with this zone's TTL (or
    /// the degraded one); `None` for a cluster the configuration does not have (its apps
    /// answer SERVFAIL).
    pub clusters: Vec<Option<ClusterSets>>,
    /// The keys that sign answers to queries with DO (`[[zone.dnssec.key]]`); their DNSKEY,
    /// CDS and CDNSKEY sets are among `apex_sets`.
    pub dnssec: Option<Box<ZoneKeys>>,
}

/// A cluster's answers, owned by the query name.
#[derive(Debug, PartialEq, Eq)]
pub struct ClusterSets {
    pub a: AnswerSet,
    pub aaaa: AnswerSet,
}

/// One family's answer for a cluster's apps: the chosen addresses' records and, when there
/// are more of them than an answer carries, the precomputed weighted picks a query chooses
/// among.
#[derive(Debug, PartialEq, Eq)]
pub struct AnswerSet {
    /// Every chosen address, in configuration order, with the answer's TTL.
    pub set: RrSet,
    /// The answers of `max_answers` records each, drawn by weight ([`Pick::table`]): a
    /// query takes one at random (`health::pick::index`). Empty: every answer is the whole
    /// set.
    pub picks: Box<[RrSet]>,
}

/// How many picks an [`AnswerSet`] precomputes: [`PICKS_MAX`], fewer when they would take
/// more than [`PICKS_BYTES`], never fewer than [`PICKS_MIN`] (the first record's share is
/// its weight's to within one pick in this many).
const PICKS_MAX: usize = 1024;
const PICKS_MIN: usize = 256;
const PICKS_BYTES: usize = 64 * 1024;

impl AnswerSet {
    fn build<A>(choice: &Choice<A>, zone_ttl: u32, set: impl Fn(&[A], u32) -> RrSet) -> AnswerSet
    where
        A: Copy,
    {
        let addrs: Vec<A> = choice.members.iter().map(|m| m.addr).collect();
        let set = set(&addrs, choice.ttl(zone_ttl));
        let picks = match choice
            .max_answers
            .and_then(|k| Pick::new(&choice.weights(), usize::from(k)))
        {
            Some(pick) => {
                let answer_bytes = set.record_len().unwrap_or(1) * pick.k();
                let entries = (PICKS_BYTES / answer_bytes.max(1)).clamp(PICKS_MIN, PICKS_MAX);
                pick.table(entries)
                    .iter()
                    .map(|p| set.select(p.as_slice()))
                    .collect()
            }
            None => Box::default(),
        };
        AnswerSet { set, picks }
    }
}

/// What a query name is, relative to a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'q> {
    Apex,
    /// `_acme-challenge.<rest>`; `rest` is the relative part after the first label (may be
    /// empty for the apex).
    Acme {
        rest: &'q [u8],
    },
    Host(usize),
    HostAncestor,
    /// One label: a repl id or a user name (the table tells which).
    IdOrUser(&'q [u8]),
    /// Two labels: `<slug>.<user>`.
    SlugUser(&'q [u8]),
    /// Deeper than anything that can exist.
    Deep,
}

impl Zone {
    /// Pre-encodes a zone from its configuration and the answer policy's choice for each
    /// cluster, by cluster index (`None`: a cluster index with no configured cluster).
    pub fn build(cfg: &ZoneConfig, clusters: &[Option<ClusterChoice>]) -> Zone {
        let apex = cfg.apex.clone();
        let soa_ttl = cfg.soa.ttl;
        let mname = cfg.soa.mname.clone().unwrap_or_else(|| cfg.ns[0].clone());
        let mut soa_rdata = Vec::new();
        soa_rdata.extend_from_slice(mname.wire());
        soa_rdata.extend_from_slice(cfg.soa.rname.wire());
        soa_rdata.extend_from_slice(&cfg.soa.serial.to_be_bytes());
        soa_rdata.extend_from_slice(&cfg.soa.refresh.to_be_bytes());
        soa_rdata.extend_from_slice(&cfg.soa.retry.to_be_bytes());
        soa_rdata.extend_from_slice(&cfg.soa.expire.to_be_bytes());
        soa_rdata.extend_from_slice(&cfg.negative_ttl.to_be_bytes());
        let soa_set = |ttl| {
            let mut b = RrSet::builder(Rtype::SOA, Owner::Apex);
            b.push(ttl, &soa_rdata);
            b.finish()
        };
        let soa = soa_set(soa_ttl);
        let soa_negative = soa_set(soa_ttl.min(cfg.negative_ttl));

        let ttl = cfg.ttl;
        let mut apex_sets = Vec::new();
        let mut ns = RrSet::builder(Rtype::NS, Owner::Apex);
        for n in &cfg.ns {
            ns.push(ttl.max(soa_ttl), n.wire());
        }
        apex_sets.push(ns.finish());
        apex_sets.push(RrSet::a(&cfg.a, ttl, Owner::Apex));
        apex_sets.push(RrSet::aaaa(&cfg.aaaa, ttl, Owner::Apex));
        let mut caa = RrSet::builder(Rtype::CAA, Owner::Apex);
        for c in &cfg.caa {
            let mut rd = vec![c.flags, c.tag.len() as u8];
            rd.extend_from_slice(c.tag.as_bytes());
            rd.extend_from_slice(c.value.as_bytes());
            caa.push(ttl, &rd);
        }
        apex_sets.push(caa.finish());
        let mut txt = RrSet::builder(Rtype::TXT, Owner::Apex);
        for t in &cfg.txt {
            txt.push(ttl, &txt_rdata(t));
        }
        apex_sets.push(txt.finish());
        let mut mx = RrSet::builder(Rtype::MX, Owner::Apex);
        for m in &cfg.mx {
            let mut rd = m.preference.to_be_bytes().to_vec();
            rd.extend_from_slice(m.exchange.wire());
            mx.push(ttl, &rd);
        }
        apex_sets.push(mx.finish());
        let dnssec = cfg
            .dnssec
            .as_ref()
            .map(|d| Box::new(ZoneKeys::build(&apex, d, &d.settings)));
        if let Some(keys) = &dnssec {
            apex_sets.extend(keys.key_sets.iter().cloned());
        }
        apex_sets.retain(|s| !s.is_empty());

        let apex_len = apex.wire().len();
        let mut hosts = Vec::new();
        let mut host_ancestors: Vec<Box<[u8]>> = Vec::new();
        let mut glue = Vec::new();
        for h in &cfg.hosts {
            let rel: Box<[u8]> = h.name.wire()[..h.name.wire().len() - apex_len].into();
            // Every proper suffix of `rel` that is not itself a host is an empty non-terminal.
            let mut pos = usize::from(rel[0]) + 1;
            while pos < rel.len() {
                let anc: Box<[u8]> = rel[pos..].into();
                if !host_ancestors.contains(&anc) {
                    host_ancestors.push(anc);
                }
                pos += usize::from(rel[pos]) + 1;
            }
            if cfg.ns.contains(&h.name) {
                let mut a = RrSet::builder(Rtype::A, Owner::Inline);
                for addr in &h.a {
                    a.push_named(&h.name, ttl.max(soa_ttl), &addr.octets());
                }
                let mut aaaa = RrSet::builder(Rtype::AAAA, Owner::Inline);
                for addr in &h.aaaa {
                    aaaa.push_named(&h.name, ttl.max(soa_ttl), &addr.octets());
                }
                glue.extend(
                    [a.finish(), aaaa.finish()]
                        .into_iter()
                        .filter(|s| !s.is_empty()),
                );
            }
            hosts.push(Host {
                rel,
                a: RrSet::a(&h.a, ttl.max(soa_ttl), Owner::Query),
                aaaa: RrSet::aaaa(&h.aaaa, ttl.max(soa_ttl), Owner::Query),
            });
        }
        host_ancestors.retain(|anc| !hosts.iter().any(|h| h.rel == *anc));

        Zone {
            apex,
            ttl,
            soa,
            soa_negative,
            apex_sets,
            glue,
            hosts,
            host_ancestors,
            acme_zone: match cfg.acme {
                AcmeMode::Cname => cfg.acme_validation_zone.clone(),
                AcmeMode::Txt => None,
            },
            acme_txt: cfg.acme == AcmeMode::Txt,
            clusters: clusters
                .iter()
                .map(|c| {
                    c.as_ref().map(|c| ClusterSets {
                        a: AnswerSet::build(&c.a, ttl, |a, ttl| RrSet::a(a, ttl, Owner::Query)),
                        aaaa: AnswerSet::build(&c.aaaa, ttl, |a, ttl| {
                            RrSet::aaaa(a, ttl, Owner::Query)
                        }),
                    })
                })
                .collect(),
            dnssec,
        }
    }

    /// The apex RRset of `rtype`, if the zone has one.
    pub fn apex_set(&self, rtype: Rtype) -> Option<&RrSet> {
        if rtype == Rtype::SOA {
            return Some(&self.soa);
        }
        self.apex_sets.iter().find(|s| s.rtype == rtype)
    }

    /// Classifies `rel`, the lower-cased wire labels of a query name before this zone's apex
    /// (no root label).
    pub fn classify<'q>(&self, rel: &'q [u8]) -> Shape<'q> {
        if rel.is_empty() {
            return Shape::Apex;
        }
        if rel.starts_with(ACME_LABEL) {
            return Shape::Acme {
                rest: &rel[ACME_LABEL.len()..],
            };
        }
        if !self.hosts.is_empty() {
            if let Some(i) = self.hosts.iter().position(|h| *h.rel == *rel) {
                return Shape::Host(i);
            }
            if self.host_ancestors.iter().any(|a| **a == *rel) {
                return Shape::HostAncestor;
            }
        }
        let first = usize::from(rel[0]) + 1;
        if first == rel.len() {
            return Shape::IdOrUser(rel);
        }
        let second = first + usize::from(rel[first]) + 1;
        if second == rel.len() {
            return Shape::SlugUser(rel);
        }
        Shape::Deep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::health::answer::choose;
    use crate::health::view::HealthView;
    use crate::testkit::{parse, C1, FEED, REPL_CO};

    /// The fixture's `repl.co` and one cluster, `c1` (two IPv4 addresses).
    fn config() -> Config {
        parse(&format!("{FEED}{REPL_CO}{C1}"))
    }

    /// The policy's choice for every configured cluster, without health data.
    fn choices(c: &Config) -> Vec<Option<ClusterChoice>> {
        c.clusters
            .iter()
            .map(|k| Some(choose(k, &c.clusters, &HealthView::none())))
            .collect()
    }

    fn zone() -> Zone {
        let c = config();
        Zone::build(&c.zones[0], &choices(&c))
    }

    #[test]
    fn builds_apex_records() {
        let z = zone();
        assert_eq!(z.apex_set(Rtype::NS).unwrap().count, 3);
        assert_eq!(z.apex_set(Rtype::A).unwrap().count, 1);
        assert_eq!(z.apex_set(Rtype::AAAA).unwrap().count, 1);
        assert_eq!(z.apex_set(Rtype::MX).unwrap().count, 1);
        assert_eq!(z.apex_set(Rtype::CAA).unwrap().count, 1);
        assert!(z.apex_set(Rtype::SRV).is_none());
        assert_eq!(z.apex_set(Rtype::TXT).unwrap().count, 1);
        assert_eq!(z.apex_set(Rtype::SOA).unwrap().count, 1);
        // ns1 has A and AAAA glue, ns2.infra has A glue.
        assert_eq!(z.glue.len(), 3);
        // Negative SOA TTL is min(600, 30), and the MINIMUM field is 30.
        let neg = &z.soa_negative.bytes;
        assert_eq!(&neg[6..10], &30u32.to_be_bytes());
        assert_eq!(&neg[neg.len() - 4..], &30u32.to_be_bytes());
        assert_eq!(&z.soa.bytes[6..10], &600u32.to_be_bytes());
    }

    #[test]
    fn cluster_answers_follow_the_index_order_given() {
        let c = config();
        let c1 = choices(&c).pop().unwrap();
        let z = Zone::build(&c.zones[0], &[None, c1]);
        assert_eq!(z.clusters.len(), 2);
        assert!(z.clusters[0].is_none(), "no configured cluster: no answers");
        let c1 = z.clusters[1].as_ref().unwrap();
        assert_eq!((c1.a.set.count, c1.aaaa.set.count), (2, 0));
        assert!(c1.a.picks.is_empty() && c1.aaaa.picks.is_empty());
        assert_eq!(&c1.a.set.bytes[6..10], &z.ttl.to_be_bytes());
    }

    #[test]
    fn cluster_answers_carry_the_policy() {
        use crate::health::view::AddrState;
        let c = parse(&format!(
            "{FEED}{REPL_CO}\n[[cluster]]\nname = \"w\"\nmax_answers = 2\ndegraded_ttl = 7\n\
             ipv4 = [{{ address = \"192.0.2.1\", weight = 3 }}, \"192.0.2.2\", \
             {{ address = \"192.0.2.3\", weight = 0 }}, \"192.0.2.4\", \"192.0.2.5\"]\n"
        ));
        let z = zone_with(&c, &HealthView::none());
        let w = z.clusters[0].as_ref().unwrap();
        // The drained address is left out; four to pick two of, by weight.
        assert_eq!(w.a.set.count, 4);
        assert_eq!(w.a.picks.len(), 1024, "two A records a pick: 1,024 of them");
        let mut first = [0usize; 4];
        for p in w.a.picks.iter() {
            assert_eq!((p.count, p.owner, p.rtype), (2, Owner::Query, Rtype::A));
            assert_eq!(&p.bytes[6..10], &z.ttl.to_be_bytes());
            assert_ne!(p.bytes[12..16], p.bytes[28..32], "one address twice");
            let at =
                w.a.set
                    .bytes
                    .chunks(16)
                    .position(|r| r[12..] == p.bytes[12..16]);
            first[at.expect("an address of the set")] += 1;
        }
        // By weight 3:1:1:1, to within one entry.
        assert!(
            first[0].abs_diff(512) <= 1 && first[3].abs_diff(171) <= 1,
            "{first:?}"
        );
        assert_eq!(&w.a.set.bytes[6..10], &z.ttl.to_be_bytes());
        // Two of them down: the two left, the whole set in every answer, the degraded TTL.
        let down = |a: &str| (("w".parse().unwrap(), a.parse().unwrap()), AddrState::Down);
        let health = HealthView::from_states([down("192.0.2.1"), down("192.0.2.4")]);
        let z = zone_with(&c, &health);
        let w = z.clusters[0].as_ref().unwrap();
        assert_eq!(w.a.set.count, 2);
        assert!(w.a.picks.is_empty());
        assert_eq!(&w.a.set.bytes[6..10], &7u32.to_be_bytes());
        assert_eq!(&w.a.set.bytes[12..16], &[192, 0, 2, 2]);
        assert_eq!(&w.a.set.bytes[28..32], &[192, 0, 2, 5]);
    }

    fn zone_with(c: &Config, health: &HealthView) -> Zone {
        let choices: Vec<_> = c
            .clusters
            .iter()
            .map(|k| Some(choose(k, &c.clusters, health)))
            .collect();
        Zone::build(&c.zones[0], &choices)
    }

    #[test]
    fn classifies_names() {
        let z = zone();
        assert_eq!(z.classify(b""), Shape::Apex);
        assert_eq!(z.classify(b"\x03ns1"), Shape::Host(0));
        assert_eq!(z.classify(b"\x03ns2\x05infra"), Shape::Host(1));
        assert_eq!(z.classify(b"\x05infra"), Shape::HostAncestor);
        assert_eq!(z.classify(b"\x04abcd"), Shape::IdOrUser(b"\x04abcd"));
        assert_eq!(z.classify(b"\x01s\x01u"), Shape::SlugUser(b"\x01s\x01u"));
        assert_eq!(z.classify(b"\x01x\x01s\x01u"), Shape::Deep);
        assert_eq!(
            z.classify(b"\x0f_acme-challenge\x01s\x01u"),
            Shape::Acme {
                rest: b"\x01s\x01u"
            }
        );
        assert_eq!(
            z.classify(b"\x0f_acme-challenge"),
            Shape::Acme { rest: b"" }
        );
    }
}
