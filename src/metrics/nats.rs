//! The NATS edge source's metrics: counters and gauges its runtime thread and the builder's
//! reads keep in one process-wide [`NatsStats`] (one feed per server), rendered on /metrics
//! once a `feed.source = "nats"` source has started.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::feed::status::now_ms;

/// What the NATS source counts.
#[derive(Debug, Default)]
pub struct NatsStats {
    /// Set when a NATS source starts: the metrics are rendered from then on.
    pub active: AtomicBool,
    /// 1 while the client is connected to a NATS server.
    pub connected: AtomicU64,
    /// Times the client connected again after the first connection.
    pub reconnects: AtomicU64,
    /// Change and reset messages received from the stream, and their bodies' bytes.
    pub messages: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Messages that did not decode (skipped).
    pub bad_messages: AtomicU64,
    /// Snapshot bootstraps completed (at start or after a reset or a gap).
    pub bootstraps: AtomicU64,
    /// Snapshots refused (missing, damaged, or older than what they had to cover).
    pub snapshots_refused: AtomicU64,
    /// The last change sequence number the stream holds, as last seen.
    pub stream_last_seq: AtomicU64,
    /// The last change sequence number handed to the builder.
    pub applied_seq: AtomicU64,
    /// When the last message handed to the builder was published (ms since the epoch; 0:
    /// none yet).
    pub applied_published_ms: AtomicU64,
}

/// The process's NATS source statistics.
pub fn stats() -> Arc<NatsStats> {
    static STATS: OnceLock<Arc<NatsStats>> = OnceLock::new();
    STATS.get_or_init(Arc::default).clone()
}

impl NatsStats {
    /// Changes the stream holds beyond those applied.
    pub fn lag_changes(&self) -> u64 {
        self.stream_last_seq
            .load(Relaxed)
            .saturating_sub(self.applied_seq.load(Relaxed))
    }

    /// Seconds since the last applied message was published, while changes are waiting (0
    /// when nothing is: a quiet stream is not a lagging edge).
    pub fn lag_seconds(&self, now_ms: u64) -> f64 {
        let published = self.applied_published_ms.load(Relaxed);
        if self.lag_changes() == 0 || published == 0 {
            return 0.0;
        }
        now_ms.saturating_sub(published) as f64 / 1000.0
    }
}

/// Appends the NATS source's metrics to `out` (nothing when no NATS source runs).
pub(super) fn render(out: &mut String) {
    let s = stats();
    if !s.active.load(Relaxed) {
        return;
    }
    let mut one = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    one(
        "clusterns_nats_lag_changes",
        "gauge",
        "Change sequence numbers the stream holds beyond the last one applied.",
        s.lag_changes().to_string(),
    );
    one(
        "clusterns_nats_lag_seconds",
        "gauge",
        "Seconds since the last applied message was published, while changes wait (0 when caught up).",
        s.lag_seconds(now_ms()).to_string(),
    );
    for (name, help, v) in [
        (
            "clusterns_nats_received_bytes_total",
            "Bytes of message bodies received from the stream.",
            &s.received_bytes,
        ),
        (
            "clusterns_nats_messages_total",
            "Messages received from the stream.",
            &s.messages,
        ),
        (
            "clusterns_nats_reconnects_total",
            "Times the client connected again after losing its connection.",
            &s.reconnects,
        ),
        (
            "clusterns_nats_bootstraps_total",
            "Tables loaded from the snapshot object store (at start, after a reset, or when the stream no longer held what the edge needed).",
            &s.bootstraps,
        ),
        (
            "clusterns_nats_snapshots_refused_total",
            "Snapshots refused (damaged, missing, or older than needed); the served table stays.",
            &s.snapshots_refused,
        ),
        (
            "clusterns_nats_bad_messages_total",
            "Messages that did not decode (skipped).",
            &s.bad_messages,
        ),
    ] {
        one(name, "counter", help, v.load(Relaxed).to_string());
    }
    one(
        "clusterns_nats_connected",
        "gauge",
        "1 while the client is connected to a NATS server.",
        s.connected.load(Relaxed).to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_when_caught_up_and_counts_when_behind() {
        let s = NatsStats::default();
        s.stream_last_seq.store(10, Relaxed);
        s.applied_seq.store(10, Relaxed);
        s.applied_published_ms.store(1_000, Relaxed);
        assert_eq!((s.lag_changes(), s.lag_seconds(5_000)), (0, 0.0));
        s.stream_last_seq.store(15, Relaxed);
        assert_eq!((s.lag_changes(), s.lag_seconds(5_500)), (5, 4.5));
        // Applied beyond what was last seen of the stream: no lag, not a wrap.
        s.applied_seq.store(20, Relaxed);
        assert_eq!(s.lag_changes(), 0);
    }
}
