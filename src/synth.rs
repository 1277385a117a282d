//! Deterministic synthetic data for benchmarks, load tests and `clusterns-gen`: apps, the
//! matching configuration, and a query mix.
//!
//! Everything comes from a seeded SplitMix64 generator, so the same arguments give the same
//! data on every machine. Generated names follow rules that make some facts certain without
//! looking anything up:
//! - a repl id is a version-4 UUID (lower-case hex, 36 characters) whose 64 distinguishing bits
//!   are a bijection of the app's index, so ids never collide; an id with version nibble `5`
//!   can therefore never exist, which is how [`Kind::NxDomain`] queries are made;
//! - a slug is `<word>-<tag>` where the tag starts with the app's rank among its user's apps,
//!   so a user's slugs never collide; a slug with `_` instead of `-` never exists;
//! - users are `user<number>` (six digits or more), about one per four apps.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::name::check_label;
use crate::table::App;
use domain::base::iana::{Rcode, Rtype};

/// The zone the synthetic configuration serves.
pub const ZONE: &str = "repl.co";

/// SplitMix64: a tiny, fast, seeded generator (not for anything that needs secrecy).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// A number in `0..n` (`n` > 0), without modulo bias worth speaking of.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent`/100.
    #[inline]
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }
}

/// SplitMix64's finalizer: a bijection on `u64` that scatters its input's bits.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Words slugs are made of.
const WORDS: &[&str] = &[
    "app",
    "game",
    "notes",
    "chatbot",
    "portfolio",
    "api",
    "site",
    "blog",
    "todo",
    "shop",
    "bot",
    "quiz",
    "timer",
    "weather",
    "calc",
    "tracker",
    "server",
    "demo",
    "test",
    "project",
    "dashboard",
    "wiki",
    "music",
    "snake",
    "pong",
    "chess",
    "paint",
    "forum",
    "store",
    "agent",
    "scraper",
    "hello",
];

/// The repl id of the app with this index, or (with `version` other than 4) an id that no
/// generated app has.
fn repl_id(seed: u64, index: u64, version: u8) -> String {
    let unique = mix64(index ^ seed.rotate_left(17));
    let mut rest = mix64(unique ^ 0x5851_f42d_4c95_7f2d);
    let mut nibbles = [0u8; 32];
    for n in nibbles.iter_mut() {
        *n = (rest & 0xf) as u8;
        rest = rest.rotate_right(4) ^ (rest >> 7);
    }
    // The 64 unique bits: hex digits 0..4 and 20..32, away from the version and variant.
    for (i, n) in nibbles[..4].iter_mut().enumerate() {
        *n = ((unique >> (60 - 4 * i)) & 0xf) as u8;
    }
    for (i, n) in nibbles[20..].iter_mut().enumerate() {
        *n = ((unique >> (44 - 4 * i)) & 0xf) as u8;
    }
    nibbles[12] = version;
    nibbles[16] = 0x8 | (nibbles[16] & 0x3);
    let mut s = String::with_capacity(36);
    for (i, &n) in nibbles.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            s.push('-');
        }
        s.push(HEX[usize::from(n)] as char);
    }
    s
}

fn push_base36(s: &mut String, mut v: u64) {
    let mut digits = [0u8; 13];
    let mut n = 0;
    loop {
        digits[n] = BASE36[(v % 36) as usize];
        n += 1;
        v /= 36;
        if v == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        s.push(d as char);
    }
}

/// A slug `<word><sep><tag>`; the tag is the rank followed by two random base-36 digits, so
/// distinct ranks give distinct slugs.
fn slug(word: u64, rank: u64, noise: u64, sep: char) -> String {
    let mut s = String::with_capacity(16);
    s.push_str(WORDS[(word % WORDS.len() as u64) as usize]);
    s.push(sep);
    push_base36(&mut s, rank * 1296 + noise % 1296);
    s
}

fn user_name(u: u64) -> String {
    format!("user{u:06}")
}

/// The number of distinct user numbers `apps` draws from for `n` apps.
pub fn user_space(n: usize) -> u64 {
    (n as u64 / 4).max(1)
}

/// `n` apps spread uniformly over `clusters` clusters (`c0`..), with about `n/4` users.
/// Ids, and `<slug>.<user>` names, are all distinct.
pub fn apps(n: usize, clusters: u16, seed: u64) -> Vec<App> {
    assert!(clusters > 0, "at least one cluster");
    let users = user_space(n);
    let mut per_user = vec![0u32; users as usize];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let u = rng.below(users);
        let rank = &mut per_user[u as usize];
        let r = rng.next_u64();
        let slug = slug(r, u64::from(*rank), r >> 32, '-');
        *rank += 1;
        out.push(App {
            id: check_label(&repl_id(seed, i, 4)).expect("generated id is a label"),
            user: check_label(&user_name(u)).expect("generated user is a label"),
            slug: check_label(&slug).expect("generated slug is a label"),
            cluster: rng.below(u64::from(clusters)) as u16,
        });
    }
    out
}

/// The addresses of cluster `i`: two IPv4 addresses from the RFC 5737 documentation ranges
/// (they repeat after 375 clusters) and one IPv6 address from 2001:db8::/32.
pub fn cluster_addresses(i: u16) -> ([Ipv4Addr; 2], Ipv6Addr) {
    const NETS: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
    let v4 = |p: u32| {
        let p = p % 750;
        let [a, b, c] = NETS[(p / 250) as usize];
        Ipv4Addr::new(a, b, c, (1 + p % 250) as u8)
    };
    let p = 2 * u32::from(i);
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, i.wrapping_add(1), 0, 0, 0, 0, 0x10);
    ([v4(p), v4(p + 1)], v6)
}

/// The name of cluster `i`.
pub fn cluster_name(i: u16) -> String {
    format!("c{i}")
}

/// Configuration text serving [`ZONE`] (SOA, two in-zone name servers with glue) for
/// `clusters` clusters, reading the journal at `journal` (relative to the config's
/// directory unless absolute).
pub fn config_toml(clusters: u16, journal: &str) -> String {
    let journal = toml::Value::String(journal.to_string());
    let mut s = format!(
        r#"# Synthetic clusterns configuration ({clusters} clusters), made by clusterns::synth.

[server]
listen = ["127.0.0.1:5300"]
threads = 0
udp_payload = 1232

[feed]
source = "journal"
journal = {journal}

[[zone]]
apex = "{ZONE}"
ttl = 60
negative_ttl = 60
ns = ["ns1.{ZONE}", "ns2.{ZONE}"]
soa = {{ mname = "ns1.{ZONE}", rname = "hostmaster.{ZONE}", serial = 1, refresh = 3600, retry = 600, expire = 1209600, ttl = 3600 }}

[[zone.host]]
name = "ns1"
a = ["192.0.2.253"]

[[zone.host]]
name = "ns2"
a = ["198.51.100.253"]
"#
    );
    for i in 0..clusters {
        let ([a, b], v6) = cluster_addresses(i);
        let _ = write!(
            s,
            "\n[[cluster]]\nname = \"{}\"\nipv4 = [\"{a}\", \"{b}\"]\nipv6 = [\"{v6}\"]\n",
            cluster_name(i)
        );
    }
    s
}

/// What a generated query is meant to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A for an existing `<slug>.<user>`: two addresses.
    NameA,
    /// A for an existing `<replid>`: two addresses.
    IdA,
    /// AAAA for an existing name (either form): one address.
    Aaaa,
    /// A name that does not exist (unknown id, user, slug, or a name too deep).
    NxDomain,
    /// An existing name without data of the type: MX or TXT for an app, A for a bare user.
    NoData,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 5] = [
        Kind::NameA,
        Kind::IdA,
        Kind::Aaaa,
        Kind::NxDomain,
        Kind::NoData,
    ];

    /// The response code the query should get.
    pub fn rcode(self) -> Rcode {
        match self {
            Kind::NxDomain => Rcode::NXDOMAIN,
            _ => Rcode::NOERROR,
        }
    }

    /// The number of answer records the query should get with this module's configuration.
    pub fn answers(self) -> u16 {
        match self {
            Kind::NameA | Kind::IdA => 2,
            Kind::Aaaa => 1,
            Kind::NxDomain | Kind::NoData => 0,
        }
    }
}

/// One query: a name (no trailing dot, case possibly mixed), a type and what it should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub name: String,
    pub qtype: Rtype,
    pub kind: Kind,
}

/// The mnemonic of the query types this module generates (`TYPE<n>` for others).
pub fn qtype_name(qtype: Rtype) -> String {
    match qtype {
        Rtype::A => "A".into(),
        Rtype::AAAA => "AAAA".into(),
        Rtype::MX => "MX".into(),
        Rtype::TXT => "TXT".into(),
        Rtype::NS => "NS".into(),
        Rtype::SOA => "SOA".into(),
        other => format!("TYPE{}", other.to_int()),
    }
}

/// Percentages of each kind of query in a mix, and of queries with random (0x20) case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub name_a: u32,
    pub id_a: u32,
    pub aaaa: u32,
    pub nxdomain: u32,
    pub nodata: u32,
    /// The share of queries whose letters are randomly upper-cased (draft-vixie-dnsext-dns0x20).
    pub mixed_case: u32,
}

impl Default for Mix {
    /// Mostly A hits (35% `<slug>.<user>`, 35% `<replid>`), 10% AAAA, 10% NXDOMAIN, 10% NODATA;
    /// a quarter of all queries in mixed case.
    fn default() -> Mix {
        Mix {
            name_a: 35,
            id_a: 35,
            aaaa: 10,
            nxdomain: 10,
            nodata: 10,
            mixed_case: 25,
        }
    }
}

impl Mix {
    fn pick(&self, rng: &mut Rng) -> Kind {
        let weights = [
            (Kind::NameA, self.name_a),
            (Kind::IdA, self.id_a),
            (Kind::Aaaa, self.aaaa),
            (Kind::NxDomain, self.nxdomain),
            (Kind::NoData, self.nodata),
        ];
        let total: u32 = weights.iter().map(|w| w.1).sum();
        let mut r = rng.below(u64::from(total.max(1))) as u32;
        for (kind, w) in weights {
            if r < w {
                return kind;
            }
            r -= w;
        }
        Kind::NameA
    }
}

/// Upper-cases each ASCII letter of `s` with probability one half.
pub fn randomize_case(s: &mut String, rng: &mut Rng) {
    let mut bytes = std::mem::take(s).into_bytes();
    let mut bits = 0u64;
    let mut left = 0;
    for b in bytes.iter_mut().filter(|b| b.is_ascii_alphabetic()) {
        if left == 0 {
            bits = rng.next_u64();
            left = 64;
        }
        if bits & 1 == 1 {
            *b = b.to_ascii_uppercase();
        }
        bits >>= 1;
        left -= 1;
    }
    *s = String::from_utf8(bytes).expect("only ASCII letters changed");
}

/// One query of `kind` about `apps` (which must not be empty) under `zone`.
pub fn query(kind: Kind, apps: &[App], zone: &str, rng: &mut Rng) -> Query {
    let app = &apps[rng.below(apps.len() as u64) as usize];
    let name_form = |app: &App| format!("{}.{}.{zone}", app.slug, app.user);
    let id_form = |app: &App| format!("{}.{zone}", app.id);
    let (name, qtype) = match kind {
        Kind::NameA => (name_form(app), Rtype::A),
        Kind::IdA => (id_form(app), Rtype::A),
        Kind::Aaaa if rng.percent(50) => (name_form(app), Rtype::AAAA),
        Kind::Aaaa => (id_form(app), Rtype::AAAA),
        Kind::NxDomain => {
            let r = rng.next_u64();
            let name = match r % 4 {
                // Version 5: no generated id has it.
                0 => format!("{}.{zone}", repl_id(r, r >> 8, 5)),
                // `_` in a slug: never generated.
                1 => format!("{}.{}.{zone}", slug(r, r >> 40, r >> 20, '_'), app.user),
                // Neither an id nor a user.
                2 => format!("nouser{}.{zone}", r >> 44),
                // Below an app: nothing is.
                _ => format!("www.{}.{}.{zone}", app.slug, app.user),
            };
            (name, Rtype::A)
        }
        Kind::NoData => match rng.below(4) {
            0 => (name_form(app), Rtype::MX),
            1 => (id_form(app), Rtype::TXT),
            2 => (name_form(app), Rtype::TXT),
            // A user is an empty non-terminal.
            _ => (format!("{}.{zone}", app.user), Rtype::A),
        },
    };
    Query { name, qtype, kind }
}

/// `count` queries about `apps` under `zone`, in the proportions of `mix`.
pub fn queries(apps: &[App], zone: &str, count: usize, mix: &Mix, seed: u64) -> Vec<Query> {
    let mut rng = Rng::new(seed ^ 0x7175_6572_6965_7321);
    (0..count)
        .map(|_| {
            let kind = mix.pick(&mut rng);
            let mut q = query(kind, apps, zone, &mut rng);
            if rng.percent(mix.mixed_case) {
                randomize_case(&mut q.name, &mut rng);
            }
            q
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Member, SourceConfig};
    use crate::name::DomainName;
    use crate::resolve::{resolve, Outcome, Question};
    use crate::snapshot::{Served, Snapshot};
    use crate::table::Table;
    use domain::base::iana::Class;
    use std::collections::HashSet;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn apps_are_deterministic() {
        assert_eq!(apps(500, 3, 7), apps(500, 3, 7));
        assert_ne!(apps(500, 3, 7), apps(500, 3, 8));
    }

    #[test]
    fn ids_look_like_uuids() {
        for app in apps(200, 2, 1) {
            let id = app.id.as_str();
            assert_eq!(id.len(), 36, "{id}");
            for (i, c) in id.char_indices() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    assert_eq!(c, '-', "{id}");
                } else {
                    assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{id}");
                }
            }
            assert_eq!(&id[14..15], "4", "{id}");
            assert!("89ab".contains(&id[19..20]), "{id}");
        }
    }

    #[test]
    fn names_are_unique_and_users_shared() {
        let n = 20_000;
        let apps = apps(n, 5, 3);
        assert_eq!(apps.len(), n);
        let ids: HashSet<_> = apps.iter().map(|a| &a.id).collect();
        assert_eq!(ids.len(), n);
        let names: HashSet<_> = apps.iter().map(|a| (&a.slug, &a.user)).collect();
        assert_eq!(names.len(), n);
        let users: HashSet<_> = apps.iter().map(|a| &a.user).collect();
        assert!(
            users.len() > n / 5 && users.len() <= n / 4,
            "{}",
            users.len()
        );
        let clusters: HashSet<_> = apps.iter().map(|a| a.cluster).collect();
        assert_eq!(clusters, (0..5).collect());
        assert!(apps[0].user.as_str().starts_with("user"));
        assert!(apps[0].slug.as_str().contains('-'));
        // Ids, users and the generated forms never overlap.
        assert!(apps.iter().all(|a| !ids.contains(&a.user)));
        let t = Table::build(&apps).unwrap();
        assert_eq!(t.len(), n);
        assert_eq!(t.base().user_count(), users.len());
    }

    #[test]
    fn config_parses() {
        let text = config_toml(400, "data/journal.log");
        let cfg = Config::parse(Path::new("/srv/c.toml"), &text).unwrap();
        assert_eq!(cfg.clusters.len(), 400);
        assert_eq!(cfg.clusters[7].name.as_str(), "c7");
        assert_eq!(cfg.clusters[7].ipv4.len(), 2);
        assert_eq!(cfg.clusters[7].ipv6.len(), 1);
        let ([a, b], v6) = cluster_addresses(7);
        assert_eq!(
            cfg.clusters[7].ipv4,
            vec![Member::plain(a), Member::plain(b)]
        );
        assert_eq!(cfg.clusters[7].ipv6, vec![Member::plain(v6)]);
        assert!(a.is_documentation() && b.is_documentation());
        assert_eq!(v6.segments()[..2], [0x2001, 0xdb8]);
        assert_eq!(
            cfg.feed.source,
            SourceConfig::Journal {
                path: "/srv/data/journal.log".into()
            }
        );
        assert_eq!(cfg.zones[0].apex.to_string(), "repl.co.");
        // A path that needs quoting.
        let text = config_toml(1, "we\"ird\\path");
        let cfg = Config::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!(
            cfg.feed.source,
            SourceConfig::Journal {
                path: "we\"ird\\path".into()
            }
        );
    }

    #[test]
    fn queries_get_what_their_kind_says() {
        let apps = apps(5_000, 4, 11);
        let cfg = Config::parse(Path::new("c.toml"), &config_toml(4, "j")).unwrap();
        let snap = Snapshot::new(
            Arc::new(Served::from_config(&cfg)),
            Arc::new(Table::build(&apps).unwrap()),
            0,
        );
        let qs = queries(&apps, ZONE, 5_000, &Mix::default(), 1);
        assert_eq!(qs, queries(&apps, ZONE, 5_000, &Mix::default(), 1));
        let mut seen = std::collections::HashMap::new();
        let mut mixed = 0;
        for q in &qs {
            *seen.entry(q.kind).or_insert(0) += 1;
            if q.name.bytes().any(|b| b.is_ascii_uppercase()) {
                mixed += 1;
            }
            let name: DomainName = q.name.parse().unwrap();
            let question = Question {
                name: name.wire(),
                qtype: q.qtype,
                qclass: Class::IN,
            };
            let outcome = resolve(&snap, &question);
            assert_eq!(outcome.rcode(), q.kind.rcode(), "{q:?}: {outcome:?}");
            match (q.kind, outcome) {
                (Kind::NameA | Kind::IdA, Outcome::Hit { answer, .. }) => {
                    assert_eq!((answer.rtype, answer.count), (Rtype::A, 2), "{q:?}")
                }
                (Kind::Aaaa, Outcome::Hit { answer, .. }) => {
                    assert_eq!((answer.rtype, answer.count), (Rtype::AAAA, 1), "{q:?}")
                }
                (Kind::NoData, Outcome::NoData { .. }) => {}
                (Kind::NxDomain, Outcome::NxDomain { .. }) => {}
                other => panic!("{q:?}: {other:?}"),
            }
        }
        // 35/35/10/10/10 and 25% mixed case, give or take.
        assert!(
            seen[&Kind::NameA] > 1500 && seen[&Kind::IdA] > 1500,
            "{seen:?}"
        );
        for k in [Kind::Aaaa, Kind::NxDomain, Kind::NoData] {
            assert!(seen[&k] > 350 && seen[&k] < 650, "{seen:?}");
        }
        assert!(mixed > 1000 && mixed < 1500, "{mixed}");
        assert!(Kind::ALL.iter().all(|k| seen.contains_key(k)));
    }

    #[test]
    fn each_kind_on_demand() {
        let apps = apps(100, 2, 5);
        let mut rng = Rng::new(9);
        for kind in Kind::ALL {
            let q = query(kind, &apps, ZONE, &mut rng);
            assert_eq!(q.kind, kind);
            assert!(q.name.ends_with(".repl.co"), "{q:?}");
        }
        assert_eq!(qtype_name(Rtype::AAAA), "AAAA");
        assert_eq!(qtype_name(Rtype::TXT), "TXT");
        assert_eq!(qtype_name(Rtype::from_int(99)), "TYPE99");
    }

    #[test]
    fn random_case_only_changes_case() {
        let mut rng = Rng::new(1);
        let orig = "abc-123.user000042.repl.co".to_string();
        let mut changed = 0;
        for _ in 0..50 {
            let mut s = orig.clone();
            randomize_case(&mut s, &mut rng);
            assert!(s.eq_ignore_ascii_case(&orig));
            if s != orig {
                changed += 1;
            }
        }
        assert!(changed > 40);
    }

    #[test]
    fn rng_is_spread() {
        let mut rng = Rng::new(0);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[rng.below(10) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850 && c < 1150), "{counts:?}");
        assert_ne!(mix64(1), mix64(2));
    }
}
