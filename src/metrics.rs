//! The Prometheus text endpoint: a `tiny_http` server on its own thread (never on the query
//! path) that, on each scrape, sums the per-worker counters, merges their latency buckets into
//! an `hdrhistogram` for percentiles, and reads the snapshot and feed status.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::feed::status::FeedStatus;
use crate::server::stats::{bucket_floor, WorkerStats, BUCKETS, QTYPES, RCODE_NAMES};
use crate::snapshot::SharedSnapshot;
use crate::wire::Transport;

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    pub workers: Vec<Arc<WorkerStats>>,
    pub shared: SharedSnapshot,
    pub feed: Arc<FeedStatus>,
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
        "TCP connections accepted and refused (over the cap).",
        vec![
            (
                "{result=\"accepted\"}".into(),
                sum(w, Transport::Tcp, |s| s.tcp_accepted.load(Relaxed)),
            ),
            (
                "{result=\"refused\"}".into(),
                sum(w, Transport::Tcp, |s| s.tcp_refused.load(Relaxed)),
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
        "clusterns_feed_changes_applied_total",
        "Changes applied since start.",
        src.feed.applied.load(Relaxed) as f64,
    );
    gauge(
        "clusterns_feed_changes_rejected_total",
        "Changes rejected (bad lines, taken names, unknown ids) since start.",
        src.feed.rejected.load(Relaxed) as f64,
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
    gauge(
        "clusterns_checkpoint_age_seconds",
        "Seconds since the last checkpoint was written (-1: none yet).",
        src.feed.checkpoint_age_secs().unwrap_or(-1.0),
    );

    // Latency: merge every worker's buckets.
    let _ = writeln!(
        out,
        "# HELP clusterns_query_latency_seconds Query handling time, receive to send.\n# TYPE clusterns_query_latency_seconds summary"
    );
    for t in transports {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 2)
            .expect("valid histogram bounds");
        for s in w.iter().filter(|s| s.transport == t) {
            for b in 0..BUCKETS {
                let n = s.latency[b].load(Relaxed);
                if n > 0 {
                    let _ = h.record_n(bucket_floor(b).max(1), n);
                }
            }
        }
        for q in [0.5, 0.9, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "clusterns_query_latency_seconds{{transport=\"{t}\",quantile=\"{q}\"}} {}",
                h.value_at_quantile(q) as f64 / 1e9
            );
        }
        let _ = writeln!(
            out,
            "clusterns_query_latency_seconds_count{{transport=\"{t}\"}} {}",
            h.len()
        );
    }
    out
}

/// A running metrics endpoint.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Serves `GET /metrics` on `addr` from its own thread.
    pub fn start(addr: SocketAddr, src: Sources) -> std::io::Result<MetricsServer> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("metrics: not an IP listener"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !flag.load(Relaxed) {
                    let req = match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("metrics: {e}");
                            continue;
                        }
                    };
                    let response = if req.url() == "/metrics" || req.url() == "/" {
                        tiny_http::Response::from_string(render(&src)).with_header(
                            tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                &b"text/plain; version=0.0.4"[..],
                            )
                            .expect("static header"),
                        )
                    } else {
                        tiny_http::Response::from_string("not found\n").with_status_code(404)
                    };
                    let _ = req.respond(response);
                }
            })?;
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the endpoint.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
