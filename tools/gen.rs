//! `clusterns-gen`: writes a synthetic data set for load tests and comparisons with other
//! servers, all from `clusterns::synth` (deterministic for a given seed):
//!
//! - `clusterns.toml`: the configuration (zone `repl.co`, K clusters `c0`..);
//! - `journal.log`: one `set` line per app, the feed `clusterns serve` loads;
//! - `queries.txt`: a dnsperf query file (`name TYPE` per line) with the default mix;
//! - `zone.txt`: the same data as an RFC 1035 master file for NSD or Knot DNS.
//!
//! ```text
//! clusterns-gen --apps 1000000 --clusters 8 --out /tmp/bench
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use clusterns::config::{Config, ZoneConfig};
use clusterns::synth::{self, Mix};
use clusterns::table::App;

#[derive(Parser)]
#[command(
    name = "clusterns-gen",
    version,
    about = "Write a synthetic clusterns data set: config, journal, dnsperf queries, zone file"
)]
struct Args {
    /// Number of apps (each has a `<slug>.<user>` and a `<replid>` name).
    #[arg(long, default_value_t = 1_000_000)]
    apps: usize,
    /// Number of clusters (`c0`, `c1`, ...).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    clusters: u16,
    /// Number of lines in queries.txt.
    #[arg(long, default_value_t = 1_000_000)]
    queries: usize,
    /// Share of queries (percent) sent in random (0x20) case.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100))]
    mixed_case: u32,
    /// Seed for everything generated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.apps == 0 {
        eprintln!("clusterns-gen: --apps must be at least 1");
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clusterns-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let start = Instant::now();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let config_path = args.out.join("clusterns.toml");
    let text = synth::config_toml(args.clusters, "journal.log");
    // Parse what we wrote: the zone file is made from the same configuration.
    let cfg = Config::parse(&config_path, &text).map_err(|e| e.to_string())?;
    std::fs::write(&config_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;

    let apps = synth::apps(args.apps, args.clusters, args.seed);
    let generated = start.elapsed();
    let mix = Mix {
        mixed_case: args.mixed_case,
        ..Mix::default()
    };

    // Two cores' worth of work: the zone file is the biggest, the rest goes beside it.
    let (zone, rest) = std::thread::scope(|s| {
        let zone = s.spawn(|| write_zone(&args.out.join("zone.txt"), &cfg, &apps));
        let rest = (|| -> Result<(), String> {
            write_journal(&args.out.join("journal.log"), &apps)?;
            let queries = synth::queries(&apps, synth::ZONE, args.queries, &mix, args.seed);
            write_queries(&args.out.join("queries.txt"), &queries)
        })();
        (zone.join(), rest)
    });
    zone.map_err(|_| "the zone file writer panicked".to_string())??;
    rest?;
    eprintln!(
        "clusterns-gen: {} apps, {} clusters, {} queries in {} ({:.2} s; generating {:.2} s)",
        args.apps,
        args.clusters,
        args.queries,
        args.out.display(),
        start.elapsed().as_secs_f64(),
        generated.as_secs_f64(),
    );
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn finish(path: &Path, result: io::Result<BufWriter<File>>) -> Result<(), String> {
    result
        .and_then(|w| w.into_inner().map(drop).map_err(|e| e.into_error()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `<seq> set <replid> <user> <slug> <cluster>`, one per app.
fn write_journal(path: &Path, apps: &[App]) -> Result<(), String> {
    let mut w = create(path)?;
    let names: Vec<String> = (0..=apps.iter().map(|a| a.cluster).max().unwrap_or(0))
        .map(synth::cluster_name)
        .collect();
    let result = (|| {
        writeln!(
            w,
            "# clusterns journal: <seq> set <replid> <user> <slug> <cluster>"
        )?;
        let mut seq = itoa_buf();
        for (i, a) in apps.iter().enumerate() {
            w.write_all(fmt_u64(&mut seq, i as u64 + 1))?;
            w.write_all(b" set ")?;
            w.write_all(a.id.as_str().as_bytes())?;
            w.write_all(b" ")?;
            w.write_all(a.user.as_str().as_bytes())?;
            w.write_all(b" ")?;
            w.write_all(a.slug.as_str().as_bytes())?;
            w.write_all(b" ")?;
            w.write_all(names[usize::from(a.cluster)].as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(w)
    })();
    finish(path, result)
}

/// dnsperf's format: `name TYPE` per line.
fn write_queries(path: &Path, queries: &[synth::Query]) -> Result<(), String> {
    let mut w = create(path)?;
    let result = (|| {
        for q in queries {
            w.write_all(q.name.as_bytes())?;
            w.write_all(b" ")?;
            w.write_all(synth::qtype_name(q.qtype).as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(w)
    })();
    finish(path, result)
}

/// A TXT or CAA character-string in master-file syntax.
fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The zone's own records (SOA, NS, apex data, hosts) in master-file syntax, with the TTLs
/// clusterns gives them.
fn zone_head(z: &ZoneConfig, apps: usize) -> String {
    use std::fmt::Write as _;
    let ttl = z.ttl;
    let long = z.ttl.max(z.soa.ttl);
    let mname = z.soa.mname.as_ref().unwrap_or(&z.ns[0]);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "; Synthetic zone made by clusterns-gen: {apps} apps, the same data as journal.log."
    );
    let _ = writeln!(s, "$ORIGIN {}\n$TTL {ttl}", z.apex);
    let _ = writeln!(
        s,
        "@\t{}\tIN\tSOA\t{mname} {} {} {} {} {} {}",
        z.soa.ttl,
        z.soa.rname,
        z.soa.serial,
        z.soa.refresh,
        z.soa.retry,
        z.soa.expire,
        z.negative_ttl
    );
    for ns in &z.ns {
        let _ = writeln!(s, "@\t{long}\tIN\tNS\t{ns}");
    }
    for a in &z.a {
        let _ = writeln!(s, "@\t{ttl}\tIN\tA\t{a}");
    }
    for a in &z.aaaa {
        let _ = writeln!(s, "@\t{ttl}\tIN\tAAAA\t{a}");
    }
    for t in &z.txt {
        let _ = writeln!(s, "@\t{ttl}\tIN\tTXT\t{}", quoted(t));
    }
    for m in &z.mx {
        let _ = writeln!(s, "@\t{ttl}\tIN\tMX\t{} {}", m.preference, m.exchange);
    }
    for c in &z.caa {
        let _ = writeln!(
            s,
            "@\t{ttl}\tIN\tCAA\t{} {} {}",
            c.flags,
            c.tag,
            quoted(&c.value)
        );
    }
    for h in &z.hosts {
        for a in &h.a {
            let _ = writeln!(s, "{}\t{long}\tIN\tA\t{a}", h.name);
        }
        for a in &h.aaaa {
            let _ = writeln!(s, "{}\t{long}\tIN\tAAAA\t{a}", h.name);
        }
    }
    s
}

/// The master file: the zone's records, then A/AAAA for `<slug>.<user>` and `<replid>` of
/// every app (relative owners; continuation lines leave the owner blank).
fn write_zone(path: &Path, cfg: &Config, apps: &[App]) -> Result<(), String> {
    let z = &cfg.zones[0];
    // Per cluster, everything after the owner: `\tA\t<v4>\n\tA\t<v4>\n\tAAAA\t<v6>\n`.
    let tails: Vec<Vec<u8>> = cfg
        .clusters
        .iter()
        .map(|c| {
            let mut t = String::new();
            for a in &c.ipv4 {
                t.push_str(&format!("\tA\t{}\n", a.addr));
            }
            for a in &c.ipv6 {
                t.push_str(&format!("\tAAAA\t{}\n", a.addr));
            }
            t.into_bytes()
        })
        .collect();
    let mut w = create(path)?;
    let result = (|| {
        w.write_all(zone_head(z, apps.len()).as_bytes())?;
        for a in apps {
            let tail = &tails[usize::from(a.cluster)];
            w.write_all(a.slug.as_str().as_bytes())?;
            w.write_all(b".")?;
            w.write_all(a.user.as_str().as_bytes())?;
            w.write_all(tail)?;
            w.write_all(a.id.as_str().as_bytes())?;
            w.write_all(tail)?;
        }
        Ok(w)
    })();
    finish(path, result)
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Formats `v` in decimal at the end of `buf`.
fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}
