//! What each control request does and prints: reads of the live snapshot, the feed status and
//! the query counters, and the reload and checkpoint actions the server hands in. Body lines
//! are written as they are made (`dump` streams the table without building its text).

use std::io::{self, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::protocol::{body_line, Request};
use super::{feed_text, CheckpointDone, Live};
use crate::feed::status::FeedStatus;
use crate::name::check_label;
use crate::server::stats::{bucket_floor, WorkerStats, BUCKETS, QTYPES, RCODE_NAMES};
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::table::key::{id_text, label_text, name_key_of, push_label, user_of_name};
use crate::wire::Transport;

/// An action the server performs for a request.
pub type Action<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

/// What the commands read, and the actions they ask of the server.
pub struct Context {
    /// `--version`'s text.
    pub version: &'static str,
    pub live: Arc<Live>,
    pub shared: SharedSnapshot,
    pub feed: Arc<FeedStatus>,
    pub workers: Vec<Arc<WorkerStats>>,
    pub started: Instant,
    /// Reloads the configuration file (as SIGHUP does).
    pub reload: Action<()>,
    /// Writes a checkpoint now.
    pub checkpoint: Action<CheckpointDone>,
}

/// A command's outcome: `Err` is the message of its `error` status line. The `io::Error` is
/// the connection's (the client went away): nothing more can be said to it.
pub type Outcome = io::Result<Result<(), String>>;

/// Runs `request`, writing its body lines to `out`.
pub fn execute(request: &Request, ctx: &Context, out: &mut dyn Write) -> Outcome {
    match request {
        Request::Status => status(ctx, out),
        Request::Stats => stats(ctx, out),
        Request::Reload => match (ctx.reload)() {
            Ok(()) => line(out, "configuration reloaded").map(Ok),
            Err(e) => Ok(Err(e)),
        },
        Request::Checkpoint => match (ctx.checkpoint)() {
            Ok(c) => {
                line(out, &format!("path: {}", c.path.display()))?;
                line(out, &format!("sequence: {}", c.last_seq))?;
                line(out, &format!("apps: {}", c.apps))?;
                line(out, &format!("ms: {}", c.ms))?;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        },
        Request::App(x) => app(ctx, x, out),
        Request::Apps(user) => apps(ctx, user, out),
        Request::Dump => dump(ctx, out),
    }
}

fn line(out: &mut dyn Write, text: &str) -> io::Result<()> {
    out.write_all(body_line(text).as_bytes())
}

/// Seconds since `t`, for "... s ago".
fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map_or(0.0, |d| d.as_secs_f64());
    format!("{secs:.1} s ago")
}

fn status(ctx: &Context, out: &mut dyn Write) -> Outcome {
    let config = ctx.live.config();
    let snap = ctx.shared.load_full();
    let f = &ctx.feed;
    let mut lines = vec![
        format!("version: {}", ctx.version),
        format!("config: {}", config.path.display()),
        format!("feed: {}", feed_text(&config)),
        format!("feed sequence: {}", f.last_seq.load(Relaxed)),
        format!("feed behind: {:.1} s", f.behind_secs()),
        format!(
            "feed source: {}",
            if f.source_up.load(Relaxed) == 1 {
                "up"
            } else {
                "down"
            }
        ),
        format!(
            "feed changes: {} applied, {} rejected",
            f.applied.load(Relaxed),
            f.rejected.load(Relaxed)
        ),
        format!("snapshot generation: {}", snap.generation),
        format!("snapshot sequence: {}", snap.last_seq),
        format!("snapshot published: {}", ago(snap.published)),
        format!("apps: {}", snap.table.len()),
        format!("zones: {}", config.zones.len()),
        format!("clusters: {}", config.clusters.len()),
    ];
    lines.push(match &config.feed.checkpoint {
        None => "checkpoint: none configured".into(),
        Some(p) => match f.checkpoint_age_secs() {
            Some(age) => format!("checkpoint: {} (written {age:.1} s ago)", p.display()),
            None => format!("checkpoint: {} (not written since start)", p.display()),
        },
    });
    lines.push(match ctx.live.last_reload() {
        None => "last reload: none since start".into(),
        Some(r) => match &r.result {
            Ok(()) => format!("last reload: {} via {}: ok", ago(r.at), r.via),
            Err(e) => format!("last reload: {} via {}: rejected: {e}", ago(r.at), r.via),
        },
    });
    lines.push(format!(
        "uptime: {} s",
        ctx.started.elapsed().as_secs_f64().round()
    ));
    for l in lines {
        line(out, &l)?;
    }
    Ok(Ok(()))
}

fn stats(ctx: &Context, out: &mut dyn Write) -> Outcome {
    let w = &ctx.workers;
    let sum = |t: Transport, f: &dyn Fn(&WorkerStats) -> u64| -> u64 {
        w.iter().filter(|s| s.transport == t).map(|s| f(s)).sum()
    };
    let uptime = ctx.started.elapsed().as_secs_f64().max(0.001);
    let mut total = 0;
    for t in [Transport::Udp, Transport::Tcp] {
        let received = sum(t, &|s| s.received.load(Relaxed));
        total += received;
        let rcodes: Vec<String> = RCODE_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| (name, sum(t, &|s| s.rcodes[i].load(Relaxed))))
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let answered: u64 = (0..RCODE_NAMES.len())
            .map(|i| sum(t, &|s| s.rcodes[i].load(Relaxed)))
            .sum();
        let mut text = format!(
            "{t}: received {received}, answered {answered} ({}), dropped {}",
            if rcodes.is_empty() {
                "none".to_string()
            } else {
                rcodes.join(", ")
            },
            sum(t, &|s| s.dropped.load(Relaxed)),
        );
        match t {
            Transport::Udp => text.push_str(&format!(
                ", truncated {}, rate-limited {}, oversized {}, send errors {}",
                sum(t, &|s| s.truncated.load(Relaxed)),
                sum(t, &|s| s.rate_limited.load(Relaxed)),
                sum(t, &|s| s.oversized.load(Relaxed)),
                sum(t, &|s| s.send_errors.load(Relaxed)),
            )),
            Transport::Tcp => text.push_str(&format!(
                ", connections accepted {}, refused {}, evicted {}, timed out {}, open {}",
                sum(t, &|s| s.tcp_accepted.load(Relaxed)),
                sum(t, &|s| s.tcp_refused.load(Relaxed)),
                sum(t, &|s| s.tcp_evicted.load(Relaxed)),
                sum(t, &|s| s.tcp_timed_out.load(Relaxed)),
                sum(t, &|s| s.tcp_open.load(Relaxed)),
            )),
        }
        line(out, &text)?;
    }
    let qtypes: Vec<String> = QTYPES
        .iter()
        .enumerate()
        .map(|(i, (_, name))| {
            let n: u64 = w.iter().map(|s| s.qtypes[i].load(Relaxed)).sum();
            format!("{name} {n}")
        })
        .collect();
    line(out, &format!("queries by type: {}", qtypes.join(", ")))?;
    line(
        out,
        &format!(
            "rate: {:.1} packets/s since start ({:.0} s)",
            total as f64 / uptime,
            uptime
        ),
    )?;
    let mut buckets = [0u64; BUCKETS];
    for s in w {
        for (b, c) in buckets.iter_mut().zip(s.latency.iter()) {
            *b += c.load(Relaxed);
        }
    }
    line(out, &latency_line(&buckets))?;
    Ok(Ok(()))
}

/// The latency quantiles of merged buckets, as upper bounds.
fn latency_line(buckets: &[u64; BUCKETS]) -> String {
    let count: u64 = buckets.iter().sum();
    if count == 0 {
        return "latency: no samples".into();
    }
    let quantile = |q: f64| -> String {
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let ns = if b + 1 < BUCKETS {
                    bucket_floor(b + 1)
                } else {
                    bucket_floor(b)
                };
                return format!("{:.1} us", ns as f64 / 1000.0);
            }
        }
        "?".into()
    };
    format!(
        "latency: p50 < {}, p99 < {}, p99.9 < {} ({count} samples)",
        quantile(0.5),
        quantile(0.99),
        quantile(0.999)
    )
}

/// One app as the `app` command prints it, with the addresses it is answered with.
fn app_lines(
    snap: &Snapshot,
    ctx: &Context,
    id: &str,
    user: &str,
    slug: &str,
    c: u16,
) -> Vec<String> {
    let cluster = cluster_name(snap, c);
    let config = ctx.live.config();
    let answers = match config.cluster(&cluster) {
        Some(cl) => {
            let addrs: Vec<String> = cl.addresses().map(|a| a.to_string()).collect();
            if addrs.is_empty() {
                "none (the cluster has no addresses)".to_string()
            } else {
                addrs.join(" ")
            }
        }
        None => format!("SERVFAIL (cluster {cluster} is not in the running configuration)"),
    };
    vec![
        format!("id: {id}"),
        format!("user: {user}"),
        format!("slug: {slug}"),
        format!("name: {slug}.{user}"),
        format!("cluster: {cluster}"),
        format!("answers: {answers}"),
    ]
}

fn cluster_name(snap: &Snapshot, c: u16) -> String {
    snap.table
        .clusters()
        .get(c)
        .map_or_else(|| format!("#{c}"), |l| l.as_str().to_string())
}

fn app(ctx: &Context, x: &str, out: &mut dyn Write) -> Outcome {
    let snap = ctx.shared.load_full();
    let at = format!("the live table (sequence {})", snap.last_seq);
    if let Some((slug, user)) = x.split_once('.') {
        let (slug, user) = match (check_label(slug), check_label(user)) {
            (Ok(s), Ok(u)) => (s, u),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(format!("{x:?}: {e}"))),
        };
        let key = name_key_of(slug.as_str(), user.as_str());
        if snap.table.find_slug_user(&key).is_none() {
            return Ok(Err(format!("no app {slug}.{user} in {at}")));
        }
        // The name index gives the cluster; the id takes a walk of the table.
        let mut found = None;
        snap.table.for_each_record(|id, name, c| {
            if found.is_none() && name == key.as_slice() {
                found = Some((id_text(id), c));
            }
        });
        let Some((id, c)) = found else {
            return Ok(Err(format!("no app {slug}.{user} in {at}")));
        };
        for l in app_lines(&snap, ctx, &id, user.as_str(), slug.as_str(), c) {
            line(out, &l)?;
        }
        return Ok(Ok(()));
    }
    let label = match check_label(x) {
        Ok(l) => l,
        Err(e) => return Ok(Err(format!("{x:?}: {e}"))),
    };
    match snap.table.get(label.as_str()) {
        Some((user, slug, c)) => {
            for l in app_lines(&snap, ctx, label.as_str(), &user, &slug, c) {
                line(out, &l)?;
            }
            Ok(Ok(()))
        }
        None => match user_apps(&snap, label.as_str()) {
            apps if !apps.is_empty() => {
                line(out, &format!("user {label} has {} apps:", apps.len()))?;
                for a in apps {
                    line(out, &a)?;
                }
                Ok(Ok(()))
            }
            _ => Ok(Err(format!("no app or user {label} in {at}"))),
        },
    }
}

/// A user's apps, one `<id> <user> <slug> <cluster>` line each, sorted by id.
fn user_apps(snap: &Snapshot, user: &str) -> Vec<String> {
    let mut wire = Vec::with_capacity(user.len() + 1);
    push_label(&mut wire, user);
    let mut found = Vec::new();
    snap.table.for_each_record(|id, name, c| {
        let u = user_of_name(name);
        if u == wire.as_slice() {
            let slug = &name[..name.len() - u.len()];
            found.push((id_text(id), label_text(slug), c));
        }
    });
    found.sort_unstable();
    found
        .into_iter()
        .map(|(id, slug, c)| format!("{id} {user} {slug} {}", cluster_name(snap, c)))
        .collect()
}

fn apps(ctx: &Context, user: &str, out: &mut dyn Write) -> Outcome {
    let user = match check_label(user) {
        Ok(l) => l,
        Err(e) => return Ok(Err(format!("{user:?}: {e}"))),
    };
    let snap = ctx.shared.load_full();
    let apps = user_apps(&snap, user.as_str());
    if apps.is_empty() {
        return Ok(Err(format!(
            "user {user} has no apps in the live table (sequence {})",
            snap.last_seq
        )));
    }
    for a in apps {
        line(out, &a)?;
    }
    Ok(Ok(()))
}

/// Every app as a journal line `<n> set <id> <user> <slug> <cluster>`, numbered from 1 (a new
/// journal could start from it), written as the table is walked.
fn dump(ctx: &Context, out: &mut dyn Write) -> Outcome {
    let snap = ctx.shared.load_full();
    let mut n = 0u64;
    let mut failed: Option<io::Error> = None;
    let mut text = String::with_capacity(256);
    snap.table.for_each_record(|id, name, c| {
        if failed.is_some() {
            return;
        }
        n += 1;
        let user = user_of_name(name);
        let slug = &name[..name.len() - user.len()];
        text.clear();
        text.push_str(&format!(
            "{n} set {} {} {} {}",
            id_text(id),
            label_text(user),
            label_text(slug),
            cluster_name(&snap, c)
        ));
        if let Err(e) = line(out, &text) {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(Ok(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::change::Change;
    use crate::snapshot::Served;
    use crate::table::Table;

    const CONFIG: &str = r#"
[feed]
journal = "j.log"
checkpoint = "c.ckpt"
[[zone]]
apex = "repl.co"
ns = ["ns1.example.net"]
soa = { rname = "h.repl.co" }
[[cluster]]
name = "east"
ipv4 = ["203.0.113.1"]
ipv6 = ["2001:db8::1"]
[[cluster]]
name = "west"
ipv4 = ["198.51.100.7"]
"#;

    fn context(journal: &str) -> Context {
        let config = Arc::new(
            crate::config::Config::parse(std::path::Path::new("/etc/c.toml"), CONFIG).unwrap(),
        );
        let mut table = Table::default();
        for l in journal.lines() {
            let change: Change = crate::feed::journal::parse_line(l).unwrap().unwrap().change;
            change.apply_to(&mut table).unwrap();
        }
        let served = Arc::new(Served::for_registry(&config, table.clusters().names()));
        let shared = crate::snapshot::shared(Snapshot::new(served, Arc::new(table), 3));
        Context {
            version: "test",
            live: Arc::new(Live::new(config)),
            shared,
            feed: Arc::new(FeedStatus::default()),
            workers: vec![Arc::new(WorkerStats::new(Transport::Udp))],
            started: Instant::now(),
            reload: Box::new(|| Err("c.toml:3: bad".into())),
            checkpoint: Box::new(|| Err("no checkpoint".into())),
        }
    }

    const JOURNAL: &str = "1 set r-one mark coolgame east\n\
                           2 set r-two mark notes west\n\
                           3 set 0f8fad5b-d9cb-469f-a165-70867728950e ann site east\n";

    fn run(ctx: &Context, r: Request) -> (Vec<String>, Result<(), String>) {
        let mut out = Vec::new();
        let result = execute(&r, ctx, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines = text
            .lines()
            .map(|l| l.strip_prefix('+').expect("a body line").to_string())
            .collect();
        (lines, result)
    }

    #[test]
    fn app_by_id_name_and_user() {
        let ctx = context(JOURNAL);
        let (lines, r) = run(&ctx, Request::App("r-one".into()));
        assert_eq!(r, Ok(()));
        assert!(lines.contains(&"cluster: east".to_string()), "{lines:?}");
        assert!(lines.contains(&"answers: 203.0.113.1 2001:db8::1".to_string()));
        let (by_name, r) = run(&ctx, Request::App("CoolGame.mark".into()));
        assert_eq!(r, Ok(()));
        assert_eq!(by_name, lines, "by name as by id");
        let (uuid, _) = run(&ctx, Request::App("site.ann".into()));
        assert!(uuid.contains(&"id: 0f8fad5b-d9cb-469f-a165-70867728950e".to_string()));
        let (user, r) = run(&ctx, Request::App("mark".into()));
        assert_eq!(r, Ok(()));
        assert_eq!(user.len(), 3, "{user:?}");
        for missing in ["nobody", "x.mark", "coolgame.ann"] {
            let (lines, r) = run(&ctx, Request::App(missing.into()));
            assert!(lines.is_empty());
            assert!(r.unwrap_err().contains("no app"), "{missing}");
        }
        let (_, r) = run(&ctx, Request::App("a..b".into()));
        assert!(r.unwrap_err().contains("label"));
        let (_, r) = run(&ctx, Request::App("no*star".into()));
        assert!(r.unwrap_err().contains("character"));
    }

    #[test]
    fn apps_of_a_user_and_the_dump() {
        let ctx = context(JOURNAL);
        let (lines, r) = run(&ctx, Request::Apps("mark".into()));
        assert_eq!(r, Ok(()));
        assert_eq!(lines, ["r-one mark coolgame east", "r-two mark notes west"]);
        let (_, r) = run(&ctx, Request::Apps("nobody".into()));
        assert!(r.unwrap_err().contains("no apps"));
        let (mut dump, r) = run(&ctx, Request::Dump);
        assert_eq!(r, Ok(()));
        assert_eq!(dump.len(), 3);
        // Numbered 1..n in walk order: the same set of apps as the journal's.
        let strip = |l: &str| l.split_once(' ').unwrap().1.to_string();
        let mut want: Vec<String> = JOURNAL.lines().map(strip).collect();
        for (i, l) in dump.iter().enumerate() {
            assert!(l.starts_with(&format!("{} set ", i + 1)), "{l}");
            crate::feed::journal::parse_line(l).unwrap().unwrap();
        }
        dump = dump.iter().map(|l| strip(l)).collect();
        dump.sort();
        want.sort();
        assert_eq!(dump, want);
    }

    #[test]
    fn status_stats_and_the_actions() {
        let ctx = context(JOURNAL);
        let (lines, r) = run(&ctx, Request::Status);
        assert_eq!(r, Ok(()));
        for want in [
            "version: test",
            "config: /etc/c.toml",
            "feed: journal /etc/j.log",
            "apps: 3",
            "snapshot sequence: 3",
            "checkpoint: /etc/c.ckpt (not written since start)",
            "last reload: none since start",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want}: {lines:?}");
        }
        ctx.live
            .record_reload("SIGHUP", &Err("c.toml:3: bad".into()));
        let (lines, _) = run(&ctx, Request::Status);
        assert!(
            lines.iter().any(|l| l.starts_with("last reload:")
                && l.ends_with("via SIGHUP: rejected: c.toml:3: bad")),
            "{lines:?}"
        );
        let (lines, r) = run(&ctx, Request::Stats);
        assert_eq!(r, Ok(()));
        assert!(lines[0].starts_with("udp: received 0"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "latency: no samples"));
        let (lines, r) = run(&ctx, Request::Reload);
        assert!(lines.is_empty());
        assert_eq!(r, Err("c.toml:3: bad".into()));
        let (_, r) = run(&ctx, Request::Checkpoint);
        assert_eq!(r, Err("no checkpoint".into()));
    }

    #[test]
    fn latency_quantiles_are_upper_bounds() {
        let mut b = [0u64; BUCKETS];
        b[crate::server::stats::bucket(10_000)] = 99;
        b[crate::server::stats::bucket(1_000_000)] = 1;
        let l = latency_line(&b);
        assert!(l.starts_with("latency: p50 < 10.2 us"), "{l}");
        assert!(l.contains("p99.9 < 1048.6 us"), "{l}");
        assert!(l.contains("(100 samples)"), "{l}");
    }
}
