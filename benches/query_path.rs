//! The in-process query path over a snapshot of 1,000,000 synthetic apps (`clusterns::synth`):
//! `decode`, `resolve` (with the query layer's screening), `encode` (with the reply built
//! from the outcome) and the whole `query::respond`, per kind of query, with and without
//! EDNS. Every benchmark rotates over its own set of distinct packets (not one packet
//! repeated), and reports the time of one query.
//!
//! The `policy` group times `respond` for A queries over a second snapshot of the same apps
//! whose clusters carry an answer policy (`health::answer`), side by side: `plain` (a cluster
//! answered as before: the whole set), `weighted_pick` (4 addresses of weights 1 to 4, 2 per
//! answer: one of the precomputed weighted picks per query) and `failover` (every address of
//! the cluster down: the failover cluster's precomputed answer).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench query_path
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench query_path -- respond/
//! ```
//! Environment:
//! - `CLUSTERNS_BENCH_APPS`: the number of apps (default 1,000,000; 10,000 in test mode);
//! - `CLUSTERNS_BENCH_CLOCK=wall`: time with the wall clock instead of the benchmark thread's
//!   CPU time (the default, which does not count time preempted on a busy machine);
//! - `CLUSTERNS_BENCH_LOOP=<group>/<id>[:<iterations>]`: no criterion; run that one benchmark's
//!   body in a plain loop (`hot_loop`) for `perf record` or
//!   `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*hot_loop*'`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use clusterns::config::{Config, Member};
use clusterns::health::view::{AddrState, HealthView};
use clusterns::name::Label;
use clusterns::query::edns::{response_opt, size_limit};
use clusterns::query::{self, reply, respond, Transport};
use clusterns::resolve::{Outcome, Question};
use clusterns::snapshot::{Served, Snapshot};
use clusterns::synth::{self, Kind, Mix, Rng};
use clusterns::table::Table;
use clusterns::wire::{self, decode, encode, Decoded, Request};
use domain::base::iana::{Class, OptRcode, Rtype};

/// Packets per benchmark (a power of two, for a cheap rotating index).
const PACKETS: usize = 512;
/// Packets in the cold-cache mix.
const MIX_PACKETS: usize = 65_536;
const SEED: u64 = 42;
const CLUSTERS: u16 = 8;

/// What a set of packets asks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Query(Kind),
    FormErr,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Query(Kind::NameA) => "a_slug_user",
            Case::Query(Kind::IdA) => "a_replid",
            Case::Query(Kind::Aaaa) => "aaaa",
            Case::Query(Kind::NxDomain) => "nxdomain",
            Case::Query(Kind::NoData) => "nodata",
            Case::FormErr => "formerr",
        }
    }
}

struct PacketSet {
    case: Case,
    edns: bool,
    packets: Vec<Vec<u8>>,
}

impl PacketSet {
    fn id(&self) -> String {
        format!(
            "{}/{}",
            self.case.label(),
            if self.edns { "edns" } else { "plain" }
        )
    }
}

/// A set of packets over the policy snapshot.
struct PolicySet {
    id: &'static str,
    packets: Vec<Vec<u8>>,
}

/// Clusters of the policy snapshot: the one answered with weighted picks, the one failing
/// over (to [`PLAIN_CLUSTER`]), and one answered as before.
const WEIGHTED_CLUSTER: u16 = 0;
const FAILOVER_CLUSTER: u16 = 1;
const PLAIN_CLUSTER: u16 = 2;
/// The weighted cluster's addresses and their weights.
const WEIGHTED: [(Ipv4Addr, u32); 4] = [
    (Ipv4Addr::new(10, 0, 0, 1), 1),
    (Ipv4Addr::new(10, 0, 0, 2), 2),
    (Ipv4Addr::new(10, 0, 0, 3), 3),
    (Ipv4Addr::new(10, 0, 0, 4), 4),
];

struct Fixture {
    snap: Snapshot,
    /// The same table with the answer policy: weighted picks, failover.
    policy: Snapshot,
    policy_sets: Vec<PolicySet>,
    sets: Vec<PacketSet>,
    /// The default query mix (`synth::Mix`, 25% mixed case) over many names: mostly cache
    /// misses in the table.
    mix: Vec<Vec<u8>>,
    /// The same table in a zone signed with a P-256 CSK, and the same zone with a signature
    /// cache of 4 entries (every signature a miss).
    signed: Snapshot,
    signed_cold: Snapshot,
    /// App A queries (and names that do not exist) with EDNS, with and without DO.
    dnssec_sets: Vec<(&'static str, Vec<Vec<u8>>)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    // Without `--bench` (`cargo test --benches`) criterion only checks that each benchmark
    // runs: a small table will do.
    let full = std::env::args().any(|a| a == "--bench")
        || std::env::var_os("CLUSTERNS_BENCH_LOOP").is_some();
    let n: usize = std::env::var("CLUSTERNS_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 10_000 });
    let t = Instant::now();
    let apps = synth::apps(n, CLUSTERS, SEED);
    let t_apps = t.elapsed();
    let t = Instant::now();
    let table = Table::build(&apps).expect("synthetic apps are unique");
    let t_table = t.elapsed();
    let cfg = Config::parse(Path::new("bench.toml"), &synth::config_toml(CLUSTERS, "j"))
        .expect("synthetic config parses");
    let heap = table.heap_bytes();
    eprintln!(
        "setup: {n} apps generated in {:.0} ms; Table::build {:.0} ms ({:.0} ns/app); \
         heap_bytes {} ({:.1} MiB, {:.1} bytes/app); {} users",
        t_apps.as_secs_f64() * 1e3,
        t_table.as_secs_f64() * 1e3,
        t_table.as_secs_f64() * 1e9 / n as f64,
        heap,
        heap as f64 / (1 << 20) as f64,
        heap as f64 / n as f64,
        table.base().user_count(),
    );
    let table = Arc::new(table);
    let snap = Snapshot::new(Arc::new(Served::from_config(&cfg)), table.clone(), 0);
    let policy = Snapshot::new(Arc::new(policy_served(&cfg)), table, 0);

    let mut rng = Rng::new(SEED);
    let mut sets = Vec::new();
    for kind in Kind::ALL {
        for edns in [false, true] {
            let packets = (0..PACKETS)
                .map(|i| {
                    let mut q = synth::query(kind, &apps, synth::ZONE, &mut rng);
                    // Every fourth query in 0x20 mixed case.
                    if i % 4 == 0 {
                        synth::randomize_case(&mut q.name, &mut rng);
                    }
                    packet(&q, i as u16, edns)
                })
                .collect();
            sets.push(PacketSet {
                case: Case::Query(kind),
                edns,
                packets,
            });
        }
    }
    for edns in [false, true] {
        let packets = (0..PACKETS)
            .map(|i| {
                let q = synth::query(Kind::NameA, &apps, synth::ZONE, &mut rng);
                malformed(packet(&q, i as u16, edns), i)
            })
            .collect();
        sets.push(PacketSet {
            case: Case::FormErr,
            edns,
            packets,
        });
    }
    let mix = synth::queries(&apps, synth::ZONE, MIX_PACKETS, &Mix::default(), SEED)
        .iter()
        .enumerate()
        .map(|(i, q)| packet(q, i as u16, i % 2 == 0))
        .collect();
    let policy_sets = [
        ("plain", PLAIN_CLUSTER),
        ("weighted_pick", WEIGHTED_CLUSTER),
        ("failover", FAILOVER_CLUSTER),
    ]
    .into_iter()
    .map(|(id, cluster)| {
        let on: Vec<_> = apps
            .iter()
            .filter(|a| a.cluster == cluster)
            .cloned()
            .collect();
        let packets = (0..PACKETS)
            .map(|i| {
                let q = synth::query(Kind::NameA, &on, synth::ZONE, &mut rng);
                packet(&q, i as u16, true)
            })
            .collect();
        PolicySet { id, packets }
    })
    .collect();
    let (signed, signed_cold) = signed_snapshots(&snap);
    let dnssec_sets = [("app_a", Kind::NameA), ("nxdomain", Kind::NxDomain)]
        .into_iter()
        .flat_map(|(what, kind)| {
            let qs: Vec<synth::Query> = (0..PACKETS)
                .map(|_| synth::query(kind, &apps, synth::ZONE, &mut rng))
                .collect();
            [false, true].map(|dnssec_ok| {
                let id: &'static str = match (what, dnssec_ok) {
                    ("app_a", false) => "app_a/unsigned",
                    ("app_a", true) => "app_a/signed",
                    (_, false) => "nxdomain/unsigned",
                    (_, true) => "nxdomain/signed",
                };
                let packets = qs
                    .iter()
                    .enumerate()
                    .map(|(i, q)| do_packet(q, i as u16, dnssec_ok))
                    .collect();
                (id, packets)
            })
        })
        .collect();
    drop(apps);
    let f = Fixture {
        snap,
        policy,
        policy_sets,
        sets,
        mix,
        signed,
        signed_cold,
        dnssec_sets,
    };
    check(&f);
    f
}

/// The synthetic configuration's answers with a policy: cluster [`WEIGHTED_CLUSTER`] has the
/// [`WEIGHTED`] addresses and 2 answers each; [`FAILOVER_CLUSTER`] has both addresses down
/// and fails over to [`PLAIN_CLUSTER`].
fn policy_served(cfg: &Config) -> Served {
    let mut cfg = cfg.clone();
    let weighted = &mut cfg.clusters[usize::from(WEIGHTED_CLUSTER)];
    weighted.ipv4 = WEIGHTED
        .iter()
        .map(|&(addr, weight)| Member {
            addr,
            weight,
            priority: 1,
        })
        .collect();
    weighted.max_answers = Some(2);
    let target = cfg.clusters[usize::from(PLAIN_CLUSTER)].name.clone();
    let failing = &mut cfg.clusters[usize::from(FAILOVER_CLUSTER)];
    failing.failover = Some(target);
    let name = failing.name.clone();
    let health = HealthView::from_states(
        synth::cluster_addresses(FAILOVER_CLUSTER)
            .0
            .map(|a| ((name.clone(), IpAddr::V4(a)), AddrState::Down)),
    );
    let names: Vec<Label> = cfg.clusters.iter().map(|c| c.name.clone()).collect();
    Served::for_registry_health(&cfg, &names, &health)
}

/// `snap`'s table served from the synthetic zone signed with a P-256 CSK (its key file in a
/// temporary directory), with the default signature cache and with a cache of 4 entries.
fn signed_snapshots(snap: &Snapshot) -> (Snapshot, Snapshot) {
    use clusterns::dnssec::key::{Algorithm, Role, SigningKey};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!("clusterns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench key directory");
    let apex = synth::ZONE.parse().expect("synthetic zone");
    let (_, text) =
        SigningKey::generate(&apex, Algorithm::EcdsaP256Sha256, Role::Csk, 0).expect("bench key");
    let key = dir.join("zone.key");
    let _ = std::fs::remove_file(&key);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("bench key file");
    let served = |cache: usize| {
        let text = format!(
            "{}\n[[zone.dnssec.key]]\nfile = \"zone.key\"\n[dnssec]\ncache_entries = {cache}\nmisses_per_sec = 1000000000\n",
            synth::config_toml(CLUSTERS, "j")
        );
        let cfg = Config::parse(&dir.join("bench.toml"), &text).expect("signed bench config");
        Arc::new(Served::from_config(&cfg))
    };
    let signed = Snapshot::new(served(1 << 16), snap.table.clone(), 0);
    let cold = Snapshot::new(served(1), snap.table.clone(), 0);
    let _ = std::fs::remove_dir_all(&dir);
    (signed, cold)
}

/// A query packet with EDNS (payload 1232), DO set or not.
fn do_packet(q: &synth::Query, id: u16, dnssec_ok: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    let name = Name::from_ascii(&q.name).expect("synthetic names are valid");
    m.add_query(Query::query(name, RecordType::from(q.qtype.to_int())));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    m.to_vec().expect("query encodes")
}

/// A query packet built with hickory-proto (RD set, as stub resolvers send).
fn packet(q: &synth::Query, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    let name = Name::from_ascii(&q.name).expect("synthetic names are valid");
    m.add_query(Query::query(name, RecordType::from(q.qtype.to_int())));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().expect("query encodes")
}

/// Breaks a well-formed query in one of four ways a server must answer with FORMERR.
fn malformed(mut p: Vec<u8>, i: usize) -> Vec<u8> {
    match i % 4 {
        // Two questions announced, one present.
        0 => p[5] = 2,
        // A trailing byte after the last record.
        1 => p.push(0),
        // The first label runs past the end of the packet.
        2 => p[12] = 63,
        // An OPT record in the answer section (only when there is one; else no question).
        _ if p[11] == 1 => {
            p[7] = 1;
            p[11] = 0;
        }
        _ => p[5] = 0,
    }
    p
}

/// Every packet gets what it should, checked with hickory-proto, before anything is timed.
fn check(f: &Fixture) {
    let mut out = vec![0u8; 65_535];
    for (id, pkts) in &f.dnssec_sets {
        for snap in [&f.signed, &f.signed_cold] {
            for p in pkts.iter().take(16) {
                let h = respond(snap, p, &mut out, Transport::Udp);
                let r = Message::from_vec(&out[..h.len])
                    .unwrap_or_else(|e| panic!("dnssec/{id}: response does not parse: {e}"));
                let sigs = r
                    .answers()
                    .iter()
                    .chain(r.name_servers())
                    .filter(|rr| rr.record_type() == RecordType::RRSIG)
                    .count();
                let want = if *id == "nxdomain/unsigned" {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                assert_eq!(r.response_code(), want, "dnssec/{id}");
                assert_eq!(
                    sigs > 0,
                    id.ends_with("/signed"),
                    "dnssec/{id}: {sigs} RRSIGs"
                );
            }
        }
    }
    for set in &f.sets {
        for p in &set.packets {
            let h = respond(&f.snap, p, &mut out, Transport::Udp);
            let r = Message::from_vec(&out[..h.len])
                .unwrap_or_else(|e| panic!("{}: response does not parse: {e}", set.id()));
            assert_eq!(r.id(), u16::from_be_bytes([p[0], p[1]]));
            match set.case {
                Case::Query(kind) => {
                    assert_eq!(
                        r.response_code(),
                        ResponseCode::from(0, kind.rcode().to_int()),
                        "{}",
                        set.id()
                    );
                    assert_eq!(
                        r.answers().len(),
                        usize::from(kind.answers()),
                        "{}",
                        set.id()
                    );
                    assert_eq!(r.extensions().is_some(), set.edns, "{}", set.id());
                }
                Case::FormErr => {
                    assert_eq!(r.response_code(), ResponseCode::FormErr, "{}", set.id());
                }
            }
        }
    }
    let plain = synth::cluster_addresses(PLAIN_CLUSTER).0.map(IpAddr::V4);
    let weighted = WEIGHTED.map(|(a, _)| IpAddr::V4(a));
    for set in &f.policy_sets {
        for p in &set.packets {
            let h = respond(&f.policy, p, &mut out, Transport::Udp);
            let r = Message::from_vec(&out[..h.len])
                .unwrap_or_else(|e| panic!("policy/{}: response does not parse: {e}", set.id));
            let addrs: Vec<IpAddr> = r
                .answers()
                .iter()
                .filter_map(|rr| rr.data().and_then(|d| d.ip_addr()))
                .collect();
            let ttl = r.answers().first().map(|rr| rr.ttl());
            assert_eq!(addrs.len(), 2, "policy/{}", set.id);
            match set.id {
                "weighted_pick" => {
                    assert!(addrs.iter().all(|a| weighted.contains(a)), "{addrs:?}");
                    assert_ne!(addrs[0], addrs[1]);
                    assert_eq!(ttl, Some(60));
                }
                "failover" => {
                    assert_eq!(addrs, plain, "the failover cluster's answer");
                    assert_eq!(ttl, Some(30), "degraded: half the zone's TTL");
                }
                _ => assert_eq!((addrs, ttl), (plain.to_vec(), Some(60))),
            }
        }
    }
    for p in &f.mix {
        let h = respond(&f.snap, p, &mut out, Transport::Udp);
        assert!(
            matches!(h.rcode, Some(OptRcode::NOERROR | OptRcode::NXDOMAIN)),
            "{h:?}"
        );
    }
}

/// Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`): on a shared machine, time the benchmark thread
/// spends preempted is not counted (cache pollution by other processes still is).
struct ThreadCpu {
    wall: WallTime,
}

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

/// Runs each benchmark under criterion, or (`CLUSTERNS_BENCH_LOOP`) one of them in a bare
/// loop for a profiler.
enum Runner<'c, M: Measurement> {
    Criterion(&'c mut Criterion<M>),
    Loop { target: String, iters: u64 },
}

impl<M: Measurement> Runner<'_, M> {
    fn bench<F: FnMut() -> usize>(&mut self, group: &str, id: &str, mut op: F) {
        match self {
            Runner::Criterion(c) => {
                let mut g = c.benchmark_group(group);
                g.throughput(Throughput::Elements(1));
                g.bench_function(id, |b| b.iter(&mut op));
                g.finish();
            }
            Runner::Loop { target, iters } => {
                if *target == format!("{group}/{id}") {
                    let start = Instant::now();
                    let acc = hot_loop(*iters, op);
                    let ns = start.elapsed().as_nanos() as f64 / *iters as f64;
                    eprintln!("{target}: {iters} iterations, {ns:.1} ns each (checksum {acc})");
                }
            }
        }
    }
}

/// The loop profilers look at (`valgrind --tool=callgrind --toggle-collect='*hot_loop*'`).
#[inline(never)]
fn hot_loop<F: FnMut() -> usize>(iters: u64, mut op: F) -> usize {
    let mut acc = 0usize;
    for _ in 0..iters {
        acc = acc.wrapping_add(black_box(op()));
    }
    acc
}

/// The lower-cased question of each packet of a set.
fn questions(set: &PacketSet) -> Vec<(Vec<u8>, Rtype, Class)> {
    set.packets
        .iter()
        .map(|p| match decode(p) {
            Decoded::Query(req) => {
                let mut buf = [0u8; 255];
                let name = wire::lowercase(req.qname(), &mut buf).to_vec();
                (name, req.qtype, req.qclass)
            }
            other => panic!("not a query: {other:?}"),
        })
        .collect()
}

fn run_all<M: Measurement>(r: &mut Runner<'_, M>) {
    let f = fixture();
    let snap = &f.snap;

    for set in &f.sets {
        let pkts = &set.packets;
        let mut i = 0usize;
        r.bench("decode", &set.id(), move || {
            let p = &pkts[i % PACKETS];
            i = i.wrapping_add(1);
            match decode(black_box(p)) {
                Decoded::Query(req) => req.question.len(),
                _ => 0,
            }
        });
    }

    for set in f.sets.iter().filter(|s| !s.edns && s.case != Case::FormErr) {
        let qs = questions(set);
        let mut i = 0usize;
        r.bench("resolve", set.case.label(), move || {
            let (name, qtype, qclass) = &qs[i % PACKETS];
            i = i.wrapping_add(1);
            let q = Question {
                name,
                qtype: *qtype,
                qclass: *qclass,
            };
            usize::from(
                query::outcome(black_box(snap), black_box(&q))
                    .rcode()
                    .to_int(),
            )
        });
    }

    let payload = snap.served.udp_payload;
    for set in f.sets.iter().filter(|s| s.case != Case::FormErr) {
        let prepared: Vec<(Request<'static>, Vec<u8>, Outcome<'static>, usize)> = set
            .packets
            .iter()
            .zip(questions(set))
            .map(|(p, (name, qtype, qclass))| {
                let Decoded::Query(req) = decode(p) else {
                    unreachable!("checked in questions()")
                };
                let q = Question {
                    name: &name,
                    qtype,
                    qclass,
                };
                let outcome = query::outcome(snap, &q);
                let limit = size_limit(&req, Transport::Udp, payload);
                (req, name, outcome, limit)
            })
            .collect();
        let mut out = vec![0u8; 4096];
        let mut i = 0usize;
        r.bench("encode", &set.id(), move || {
            let (req, name, outcome, limit) = &prepared[i % PACKETS];
            i = i.wrapping_add(1);
            let opt = response_opt(req.edns, payload);
            let reply = reply::for_outcome(black_box(outcome), name, opt);
            encode(black_box(&mut out), black_box(req), &reply, *limit).len
        });
    }

    for set in &f.sets {
        let pkts = &set.packets;
        let mut out = vec![0u8; 4096];
        let mut i = 0usize;
        r.bench("respond", &set.id(), move || {
            let p = &pkts[i % PACKETS];
            i = i.wrapping_add(1);
            respond(black_box(snap), black_box(p), &mut out, Transport::Udp).len
        });
    }
    let policy = &f.policy;
    for set in &f.policy_sets {
        let pkts = &set.packets;
        let mut out = vec![0u8; 4096];
        let mut i = 0usize;
        r.bench("policy", set.id, move || {
            let p = &pkts[i % PACKETS];
            i = i.wrapping_add(1);
            respond(black_box(policy), black_box(p), &mut out, Transport::Udp).len
        });
    }

    // Signed answers from a warm cache (every name was answered once before timing), the
    // same queries without DO, and every signature a miss (a 4-entry cache).
    for (id, pkts) in &f.dnssec_sets {
        let mut out = vec![0u8; 4096];
        for p in pkts {
            respond(&f.signed, p, &mut out, Transport::Udp);
        }
        let mut i = 0usize;
        r.bench("dnssec", id, move || {
            let p = &pkts[i % PACKETS];
            i = i.wrapping_add(1);
            respond(black_box(&f.signed), black_box(p), &mut out, Transport::Udp).len
        });
    }
    for (id, pkts) in f
        .dnssec_sets
        .iter()
        .filter(|(id, _)| id.ends_with("/signed"))
    {
        let mut out = vec![0u8; 4096];
        let mut i = 0usize;
        let cold_id = id.replace("/signed", "/miss");
        r.bench("dnssec", &cold_id, move || {
            let p = &pkts[i % PACKETS];
            i = i.wrapping_add(1);
            respond(
                black_box(&f.signed_cold),
                black_box(p),
                &mut out,
                Transport::Udp,
            )
            .len
        });
    }

    let mix = &f.mix;
    let mut out = vec![0u8; 4096];
    let mut i = 0usize;
    r.bench("respond", "mix_64k", move || {
        let p = &mix[i % MIX_PACKETS];
        i = i.wrapping_add(1);
        respond(black_box(snap), black_box(p), &mut out, Transport::Udp).len
    });
}

fn criterion<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args()
}

fn main() {
    if let Ok(spec) = std::env::var("CLUSTERNS_BENCH_LOOP") {
        // `group/id[:iterations]`, e.g. `respond/a_replid/plain:10000000`.
        let (target, iters) = match spec.rsplit_once(':') {
            Some((t, n)) => (t.to_string(), n.parse().expect("iterations")),
            None => (spec.clone(), 10_000_000),
        };
        run_all::<WallTime>(&mut Runner::Loop { target, iters });
        return;
    }
    if std::env::var("CLUSTERNS_BENCH_CLOCK").as_deref() == Ok("wall") {
        eprintln!("clock: wall time");
        let mut c = criterion(Criterion::default());
        run_all(&mut Runner::Criterion(&mut c));
        c.final_summary();
    } else {
        eprintln!("clock: thread CPU time (CLUSTERNS_BENCH_CLOCK=wall for wall time)");
        let mut c = criterion(Criterion::default().with_measurement(ThreadCpu { wall: WallTime }));
        run_all(&mut Runner::Criterion(&mut c));
        c.final_summary();
    }
}
