//! The Prometheus text endpoint: a `tiny_http` server on its own thread (never on the query
//! path) that, on each scrape, sums the per-worker counters, merges their latency buckets into
//! a Prometheus histogram (and an `hdrhistogram` for quantile gauges), reads the snapshot and
//! feed status, and adds the standard process metrics from /proc.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use hdrhistogram::Histogram;

pub mod dnssec;
pub mod endpoint;
mod health;
pub mod nats;
pub mod relay;

use endpoint::{Endpoint, Page};

use crate::feed::status::FeedStatus;
use crate::server::stats::{bucket_floor, WorkerStats, BUCKETS, QTYPES, RCODE_NAMES};
use crate::snapshot::SharedSnapshot;
use crate::wire::Transport;

/// The latency histogram's bucket bounds, in seconds.
const LATENCY_BOUNDS: [f64; 16] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
];

/// The standard process metrics (Prometheus client conventions), from /proc/self.
fn process_metrics(out: &mut String) {
    let hz = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // (3-based numbering of proc(5) minus 3): utime 14, stime 15, starttime 22, rss 24.
    if let (Some(utime), Some(stime)) = (field(11), field(12)) {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time spent.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            (utime + stime) / hz
        );
    }
    if let Some(rss) = field(21) {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
            rss * page
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(start), Some(boot)) = (field(19), boot) {
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since the epoch.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
            boot + start / hz
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}",
            fds.count()
        );
    }
}

/// Whether the server answers from a table that follows its feed: the source can be read
/// and the feed is not behind by more than a minute. Why, in words.
pub fn readiness(src: &Sources) -> (bool, String) {
    let f = &src.feed;
    if f.journal_missing.load(Relaxed) != 0 {
        return (false, "not ready: the journal is missing".into());
    }
    if f.source_up.load(Relaxed) != 1 {
        return (false, "not ready: the feed's source cannot be read".into());
    }
    let behind = f.behind_secs();
    if behind > 60.0 {
        return (
            false,
            format!("not ready: the feed is {behind:.0} s behind its source"),
        );
    }
    (
        true,
        format!(
            "ready: {} apps, sequence {}",
            src.shared.load().table.len(),
            f.last_seq.load(Relaxed)
        ),
    )
}

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    pub workers: Vec<Arc<WorkerStats>>,
    pub shared: SharedSnapshot,
    pub feed: Arc<FeedStatus>,
    /// The update thread's counters, where the server takes updates.
    pub updates: Option<UpdateSources>,
}

/// What the update path counts: the server's plumbing and the update service.
#[derive(Clone)]
pub struct UpdateSources {
    pub server: Arc<crate::server::UpdateStats>,
    pub service: Arc<crate::update::service::UpdateCounters>,
}

fn sum(workers: &[Arc<WorkerStats>], transport: Transport, f: impl Fn(&WorkerStats) -> u64) -> u64 {
    workers
        .iter()
        .filter(|w| w.transport == transport)
        .map(|w| f(w))
        .sum()
}

/// The metrics in Prometheus text format.
pub fn render(src: &Sources) -> String {
    let mut out = String::with_capacity(8192);
    let w = &src.workers;
    let mut counter = |name: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let transports = [Transport::Udp, Transport::Tcp];
    counter(
        "clusterns_packets_received_total",
        "Packets (UDP datagrams, TCP messages) received.",
        transports
            .into_iter()
            .map(|t| {
                (
                    format!("{{transport=\"{t}\"}}"),
                    sum(w, t, |s| s.received.load(Relaxed)),
                )
            })
            .collect(),
    );
    let mut rows = Vec::new();
    for t in transports {
        for (i, (_, name)) in QTYPES.iter().enumerate() {
            rows.push((
                format!("{{transport=\"{t}\",qtype=\"{name}\"}}"),
                sum(w, t, |s| s.qtypes[i].load(Relaxed)),
            ));
        }
    }
    counter(
        "clusterns_queries_total",
        "Well-formed queries by type.",
        rows,
    );
    let mut rows = Vec::new();
    for t in transports {
        for (i, name) in RCODE_NAMES.iter().enumerate() {
            rows.push((
                format!("{{transport=\"{t}\",rcode=\"{name}\"}}"),
                sum(w, t, |s| s.rcodes[i].load(Relaxed)),
            ));
        }
    }
    counter("clusterns_responses_total", "Responses by rcode.", rows);
    counter(
        "clusterns_malformed_total",
        "Queries answered FORMERR.",
        transports
            .into_iter()
            .map(|t| {
                (
                    format!("{{transport=\"{t}\"}}"),
                    sum(w, t, |s| s.rcodes[1].load(Relaxed)),
                )
            })
            .collect(),
    );
    counter(
        "clusterns_dropped_total",
        "Packets dropped without an answer (too short for a header, or not a query).",
        transports
            .into_iter()
            .map(|t| {
                (
                    format!("{{transport=\"{t}\"}}"),
                    sum(w, t, |s| s.dropped.load(Relaxed)),
                )
            })
            .collect(),
    );
    counter(
        "clusterns_truncated_total",
        "UDP responses sent with TC set.",
        vec![(
            String::new(),
            sum(w, Transport::Udp, |s| s.truncated.load(Relaxed)),
        )],
    );
    counter(
        "clusterns_rate_limited_total",
        "Responses dropped or truncated by response rate limiting.",
        vec![(
            String::new(),
            sum(w, Transport::Udp, |s| s.rate_limited.load(Relaxed)),
        )],
    );
    counter(
        "clusterns_send_errors_total",
        "Responses the kernel refused to send.",
        vec![(
            String::new(),
            sum(w, Transport::Udp, |s| s.send_errors.load(Relaxed)),
        )],
    );
    counter(
        "clusterns_oversized_total",
        "Datagrams longer than the receive buffer.",
        vec![(
            String::new(),
            sum(w, Transport::Udp, |s| s.oversized.load(Relaxed)),
        )],
    );
    counter(
        "clusterns_tcp_connections_total",
        "TCP connections accepted, refused (could not be served), evicted (the idlest, to make room at the cap) and timed out (a message that trickled in too slowly).",
        vec![
            (
                "{result=\"accepted\"}".into(),
                sum(w, Transport::Tcp, |s| s.tcp_accepted.load(Relaxed)),
            ),
            (
                "{result=\"refused\"}".into(),
                sum(w, Transport::Tcp, |s| s.tcp_refused.load(Relaxed)),
            ),
            (
                "{result=\"evicted\"}".into(),
                sum(w, Transport::Tcp, |s| s.tcp_evicted.load(Relaxed)),
            ),
            (
                "{result=\"timed_out\"}".into(),
                sum(w, Transport::Tcp, |s| s.tcp_timed_out.load(Relaxed)),
            ),
        ],
    );

    counter(
        "clusterns_feed_journal_switches_total",
        "Times the journal became another file (rotated, replaced, truncated, rewritten, re-created) or did not continue the checkpoint.",
        vec![(String::new(), src.feed.journal_switches.load(Relaxed))],
    );
    counter(
        "clusterns_feed_changes_shadowed_total",
        "Changes applied whose app id or user is a name the configuration answers itself (a host such as ns1, a nested zone): the app cannot be reached by that name.",
        vec![(String::new(), src.feed.shadowed.load(Relaxed))],
    );
    counter(
        "clusterns_feed_gaps_total",
        "Discontinuities in the feed where changes may be missing: a journal continuing after a jump in sequence numbers or overlapping what was applied, a PostgreSQL change log pruned past the server's position.",
        vec![(String::new(), src.feed.gaps.load(Relaxed))],
    );
    counter(
        "clusterns_feed_changes_applied_total",
        "Changes applied since start.",
        vec![(String::new(), src.feed.applied.load(Relaxed))],
    );
    counter(
        "clusterns_feed_changes_rejected_total",
        "Changes rejected since start (bad journal lines, undecodable database rows, taken names, unknown ids).",
        vec![(String::new(), src.feed.rejected.load(Relaxed))],
    );
    counter(
        "clusterns_acme_changes_rejected_total",
        "ACME challenge record changes rejected since start, by reason (also counted in clusterns_feed_changes_rejected_total).",
        crate::table::AcmeReject::ALL
            .iter()
            .map(|r| {
                (
                    format!("{{reason=\"{}\"}}", r.reason()),
                    src.feed.acme_rejected_by[r.index()].load(Relaxed),
                )
            })
            .collect(),
    );
    counter(
        "clusterns_feed_reloads_total",
        "Times the whole table was rebuilt from the feed (a rewritten or compacted journal, a PostgreSQL reload after a gap).",
        vec![(String::new(), src.feed.reloads.load(Relaxed))],
    );

    let snap = src.shared.load();
    let age = SystemTime::now()
        .duration_since(snap.published)
        .unwrap_or_default()
        .as_secs_f64();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "clusterns_tcp_connections_open",
        "TCP connections open now.",
        sum(w, Transport::Tcp, |s| s.tcp_open.load(Relaxed)) as f64,
    );
    gauge(
        "clusterns_snapshot_generation",
        "Generation of the snapshot being answered from.",
        snap.generation as f64,
    );
    gauge(
        "clusterns_snapshot_age_seconds",
        "Seconds since the snapshot was published.",
        age,
    );
    gauge(
        "clusterns_table_apps",
        "Apps in the table.",
        snap.table.len() as f64,
    );
    gauge(
        "clusterns_acme_names",
        "ACME challenge names holding TXT values.",
        snap.table.acme().len() as f64,
    );
    gauge(
        "clusterns_acme_values",
        "ACME challenge TXT values held.",
        snap.table.acme().value_count() as f64,
    );
    gauge(
        "clusterns_zones",
        "Zones served.",
        snap.served.zones.len() as f64,
    );
    gauge(
        "clusterns_feed_last_seq",
        "Sequence number of the last change applied.",
        src.feed.last_seq.load(Relaxed) as f64,
    );
    gauge(
        "clusterns_feed_behind_seconds",
        "Seconds since the feed last had nothing left to read (grows while the source is down).",
        src.feed.behind_secs(),
    );
    gauge(
        "clusterns_feed_connected",
        "1 while the feed's source can be read (the journal file exists; the database answers), else 0.",
        f64::from(
            src.feed.source_up.load(Relaxed) == 1 && src.feed.journal_missing.load(Relaxed) == 0,
        ),
    );
    gauge(
        "clusterns_feed_journal_missing",
        "1 while the journal file does not exist (deleted or moved away; the table is served as it was).",
        src.feed.journal_missing.load(Relaxed) as f64,
    );
    gauge(
        "clusterns_feed_apps_unknown_cluster",
        "Apps on a cluster the running configuration does not have: they answer SERVFAIL until a configuration with it is loaded.",
        src.feed.apps_unknown_cluster.load(Relaxed) as f64,
    );
    if let Some(age) = src.feed.checkpoint_age_secs() {
        // Absent until the first checkpoint: alert on `absent()` or on the age.
        gauge(
            "clusterns_checkpoint_age_seconds",
            "Seconds since the last checkpoint was written (absent: none written yet).",
            age,
        );
    }
    health::render(&mut out, &src.feed);
    nats::render(&mut out);
    dnssec::render(&mut out);
    process_metrics(&mut out);

    let _ = writeln!(
        out,
        "# HELP clusterns_build_info Always 1; the labels say which build this is.\n# TYPE clusterns_build_info gauge\nclusterns_build_info{{version=\"{}\",revision=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        env!("CLUSTERNS_GIT_REVISION")
    );

    // Latency: every worker's fine buckets (4 per power of two) summed into the histogram's
    // buckets. A fine bucket counts under the first `le` at or above its upper end, so a
    // bucket's count never holds an observation above its `le`.
    let _ = writeln!(
        out,
        "# HELP clusterns_query_latency_seconds Query handling time, receive to send (a receive batch's time, for each of its queries).\n# TYPE clusterns_query_latency_seconds histogram"
    );
    let mut quantiles = Vec::new();
    for t in transports {
        let mut fine = [0u64; BUCKETS];
        let mut sum_ns = 0u64;
        for s in w.iter().filter(|s| s.transport == t) {
            for (b, n) in fine.iter_mut().enumerate() {
                *n += s.latency[b].load(Relaxed);
            }
            sum_ns = sum_ns.wrapping_add(s.latency_sum_ns.load(Relaxed));
        }
        let mut cumulative = 0u64;
        let mut b = 0;
        for le in LATENCY_BOUNDS {
            let le_ns = (le * 1e9) as u64;
            while b < BUCKETS && bucket_floor(b + 1) <= le_ns {
                cumulative += fine[b];
                b += 1;
            }
            let _ = writeln!(
                out,
                "clusterns_query_latency_seconds_bucket{{transport=\"{t}\",le=\"{le}\"}} {cumulative}"
            );
        }
        quantiles.push((t, fine));
        let total: u64 = fine.iter().sum();
        let _ = writeln!(
            out,
            "clusterns_query_latency_seconds_bucket{{transport=\"{t}\",le=\"+Inf\"}} {total}\n\
             clusterns_query_latency_seconds_sum{{transport=\"{t}\"}} {}\n\
             clusterns_query_latency_seconds_count{{transport=\"{t}\"}} {total}",
            sum_ns as f64 / 1e9
        );
    }
    // The same buckets as quantiles, for a look without Prometheus (hdrhistogram).
    let _ = writeln!(
        out,
        "# HELP clusterns_query_latency_percentile_seconds Query handling time at a percentile, since start.\n# TYPE clusterns_query_latency_percentile_seconds gauge"
    );
    for (t, fine) in quantiles {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 2)
            .expect("valid histogram bounds");
        for (b, &n) in fine.iter().enumerate() {
            if n > 0 {
                let _ = h.record_n(bucket_floor(b).max(1), n);
            }
        }
        for (q, label) in [(0.5, "50"), (0.9, "90"), (0.99, "99"), (0.999, "99.9")] {
            let _ = writeln!(
                out,
                "clusterns_query_latency_percentile_seconds{{transport=\"{t}\",percentile=\"{label}\"}} {}",
                h.value_at_quantile(q) as f64 / 1e9
            );
        }
    }
    if let Some(u) = &src.updates {
        render_updates(&mut out, w, u);
    }
    out
}

/// The UPDATE counters: received and refused at the door by transport, results, answers.
fn render_updates(out: &mut String, w: &[Arc<WorkerStats>], u: &UpdateSources) {
    let mut counter = |name: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let by_transport = |f: fn(&WorkerStats) -> u64| {
        [Transport::Udp, Transport::Tcp]
            .into_iter()
            .map(|t| (format!("{{transport=\"{t}\"}}"), sum(w, t, f)))
            .collect::<Vec<_>>()
    };
    counter(
        "clusterns_updates_received_total",
        "DNS UPDATE messages received.",
        by_transport(|s| s.updates.load(Relaxed)),
    );
    counter(
        "clusterns_updates_queue_full_total",
        "UPDATE messages answered SERVFAIL because the update queue was full.",
        by_transport(|s| s.update_queue_full.load(Relaxed)),
    );
    counter(
        "clusterns_updates_total",
        "UPDATE messages processed, by result (noerror, refused, notauth, badsig, ...).",
        u.service
            .by_result()
            .into_iter()
            .map(|(r, n)| (format!("{{result=\"{r}\"}}"), n))
            .collect(),
    );
    counter(
        "clusterns_updates_write_errors_total",
        "Writes of accepted updates or expiries to the source of truth that failed.",
        vec![(String::new(), u.service.write_errors.load(Relaxed))],
    );
    counter(
        "clusterns_acme_expired_total",
        "Challenge values the janitor deleted when they expired.",
        vec![(String::new(), u.service.expired.load(Relaxed))],
    );
    let s = &u.server;
    counter(
        "clusterns_update_answers_total",
        "Answers to UPDATE messages sent, by transport.",
        vec![
            ("{transport=\"udp\"}".into(), s.answered_udp.load(Relaxed)),
            ("{transport=\"tcp\"}".into(), s.answered_tcp.load(Relaxed)),
        ],
    );
    counter(
        "clusterns_update_problems_total",
        "UPDATE messages the update thread could not answer normally, by kind.",
        vec![
            ("{kind=\"unanswered\"}".into(), s.unanswered.load(Relaxed)),
            ("{kind=\"truncated\"}".into(), s.truncated.load(Relaxed)),
            ("{kind=\"send_error\"}".into(), s.send_errors.load(Relaxed)),
            ("{kind=\"panic\"}".into(), s.panics.load(Relaxed)),
            (
                "{kind=\"tcp_answer_lost\"}".into(),
                w.iter().map(|s| s.update_answers_lost.load(Relaxed)).sum(),
            ),
        ],
    );
}

/// A running metrics endpoint.
pub struct MetricsServer(Endpoint);

impl MetricsServer {
    /// Serves `GET /metrics`, `/health` (200 while the process runs) and `/ready` (200 while
    /// the answers follow the feed, else 503 and why) on `addr` from its own thread.
    pub fn start(addr: SocketAddr, src: Sources) -> std::io::Result<MetricsServer> {
        Endpoint::start(addr, "metrics", move |path| match path {
            "/metrics" | "/" => Some(Page::Metrics(render(&src))),
            // The process runs and this thread answers.
            "/health" => Some(Page::Text(200, "ok\n".into())),
            "/ready" => {
                let (ready, why) = readiness(&src);
                Some(Page::Text(if ready { 200 } else { 503 }, why + "\n"))
            }
            _ => None,
        })
        .map(MetricsServer)
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Stops the endpoint.
    pub fn stop(self) {}
}
