//! The relay's Prometheus endpoint (`[relay] metrics`): leadership, what was published
//! (changes, messages, bytes, the last sequence number), the source's position, errors,
//! snapshots and resets. Counters are atomics the relay bumps; the endpoint is a `tiny_http`
//! server on its own thread, as the server's and the health checker's are.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::metrics::endpoint::{Endpoint, Page};

/// Everything a relay counts.
#[derive(Debug, Default)]
pub struct RelayMetrics {
    pub leader: AtomicU64,
    pub published_changes: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub last_published_seq: AtomicU64,
    pub source_seq: AtomicU64,
    pub publish_errors: AtomicU64,
    pub source_errors: AtomicU64,
    pub rejected: AtomicU64,
    pub snapshots: AtomicU64,
    pub snapshot_errors: AtomicU64,
    pub snapshots_refused: AtomicU64,
    pub snapshot_seq: AtomicU64,
    pub leadership_changes: AtomicU64,
    pub resets: AtomicU64,
}

/// The metrics, in order: name, type, help, and the counter.
fn rows(m: &RelayMetrics) -> [(&'static str, &'static str, &'static str, &AtomicU64); 15] {
    [
        ("leader", "gauge", "1 while this relay holds the lease and publishes, else 0.", &m.leader),
        ("published_changes_total", "counter", "Changes published (each once; a duplicate JetStream dropped is not counted).", &m.published_changes),
        ("messages_total", "counter", "Messages published (change batches and resets).", &m.messages),
        ("bytes_total", "counter", "Bytes of message bodies published.", &m.bytes),
        ("last_published_seq", "gauge", "The sequence number of the last change in the stream.", &m.last_published_seq),
        ("source_seq", "gauge", "The last sequence number read from the source of truth.", &m.source_seq),
        ("publish_errors_total", "counter", "Publishes that failed or were fenced off (retried, or leadership given up).", &m.publish_errors),
        ("source_errors_total", "counter", "Reads of the source of truth that failed (retried).", &m.source_errors),
        ("rejected_total", "counter", "Changes the relay's table refused (published all the same; edges refuse them too).", &m.rejected),
        ("snapshots_total", "counter", "Snapshots put in the object store.", &m.snapshots),
        ("snapshot_errors_total", "counter", "Snapshots that could not be put (retried at the next interval).", &m.snapshot_errors),
        ("snapshots_refused_total", "counter", "Snapshots in the object store refused as damaged at start (the table is rebuilt from the source).", &m.snapshots_refused),
        ("snapshot_seq", "gauge", "The sequence number the last snapshot put covers.", &m.snapshot_seq),
        ("leadership_changes_total", "counter", "Times this relay became leader or stopped being it.", &m.leadership_changes),
        ("resets_total", "counter", "Reset messages published (the table rebuilt from the source).", &m.resets),
    ]
}

impl RelayMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        for (name, kind, help, v) in rows(self) {
            let _ = writeln!(out, "# HELP clusterns_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE clusterns_relay_{name} {kind}");
            let _ = writeln!(out, "clusterns_relay_{name} {}", v.load(Relaxed));
        }
        out
    }
}

/// A running relay metrics endpoint: `GET /metrics` and `/health`.
pub struct RelayEndpoint(Endpoint);

impl RelayEndpoint {
    /// Serves `metrics` on `addr` from its own thread.
    pub fn start(addr: SocketAddr, metrics: Arc<RelayMetrics>) -> std::io::Result<Self> {
        Endpoint::start(addr, "relay-metrics", move |path| match path {
            "/metrics" | "/" => Some(Page::Metrics(metrics.render())),
            "/health" => Some(Page::Text(200, "ok\n".into())),
            _ => None,
        })
        .map(RelayEndpoint)
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_value() {
        let m = RelayMetrics::default();
        RelayMetrics::set(&m.leader, 1);
        RelayMetrics::add(&m.published_changes, 10);
        RelayMetrics::add(&m.published_changes, 5);
        RelayMetrics::set(&m.last_published_seq, 99);
        let text = m.render();
        assert!(text.contains("clusterns_relay_leader 1\n"), "{text}");
        assert!(text.contains("clusterns_relay_published_changes_total 15\n"));
        assert!(text.contains("clusterns_relay_last_published_seq 99\n"));
        assert!(text.contains("# TYPE clusterns_relay_resets_total counter\n"));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 15);
    }
}
