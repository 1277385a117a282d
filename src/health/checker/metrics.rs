//! The checker's Prometheus endpoint (`[health] metrics`): probes by result, each address's
//! decided state, the time since its last report, write errors. Counters are atomics the
//! round loop bumps; the endpoint is a `tiny_http` server on its own thread, like the
//! server's (`crate::metrics`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::Arc;
use std::time::Instant;

use crate::health::view::AddrState;
use crate::metrics::endpoint::{Endpoint, Page};
use crate::name::Label;

/// No report written yet (in `last_report_ms`).
const NEVER: u64 = u64::MAX;

/// One probed address's counters.
#[derive(Debug)]
struct AddrMetrics {
    cluster: Label,
    addr: IpAddr,
    up: AtomicU64,
    down: AtomicU64,
    /// 0 unknown, 1 up, 2 down.
    state: AtomicU8,
    /// Milliseconds from `CheckerMetrics::started` to the last report written, or [`NEVER`].
    last_report_ms: AtomicU64,
}

/// Everything the checker counts, indexed as its targets.
#[derive(Debug)]
pub struct CheckerMetrics {
    addrs: Vec<AddrMetrics>,
    write_errors: AtomicU64,
    late_probes: AtomicU64,
    started: Instant,
}

impl CheckerMetrics {
    /// Zero counters for these addresses (in the checker's target order).
    pub fn new(targets: impl IntoIterator<Item = (Label, IpAddr)>) -> CheckerMetrics {
        CheckerMetrics {
            addrs: targets
                .into_iter()
                .map(|(cluster, addr)| AddrMetrics {
                    cluster,
                    addr,
                    up: AtomicU64::new(0),
                    down: AtomicU64::new(0),
                    state: AtomicU8::new(0),
                    last_report_ms: AtomicU64::new(NEVER),
                })
                .collect(),
            write_errors: AtomicU64::new(0),
            late_probes: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Target `idx` was probed.
    pub fn probed(&self, idx: usize, up: bool) {
        if let Some(a) = self.addrs.get(idx) {
            if up { &a.up } else { &a.down }.fetch_add(1, Relaxed);
        }
    }

    /// Target `idx`'s decided state.
    pub fn set_state(&self, idx: usize, state: AddrState) {
        if let Some(a) = self.addrs.get(idx) {
            let v = match state {
                AddrState::Unknown => 0,
                AddrState::Up => 1,
                AddrState::Down => 2,
            };
            a.state.store(v, Relaxed);
        }
    }

    /// A report about target `idx` was written at `at`.
    pub fn reported(&self, idx: usize, at: Instant) {
        if let Some(a) = self.addrs.get(idx) {
            let ms = at.saturating_duration_since(self.started).as_millis();
            a.last_report_ms
                .store(u64::try_from(ms).unwrap_or(NEVER - 1), Relaxed);
        }
    }

    /// A batch of reports could not be written.
    pub fn write_error(&self) {
        self.write_errors.fetch_add(1, Relaxed);
    }

    /// `n` probes were still running past their timeout at the end of a round.
    pub fn late_probes(&self, n: usize) {
        self.late_probes
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Relaxed);
    }

    /// Batches that could not be written, since start.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Relaxed)
    }

    /// The Prometheus text exposition, as of `now`.
    pub fn render(&self, now: Instant) -> String {
        let mut out = String::with_capacity(256 + self.addrs.len() * 300);
        let label = |a: &AddrMetrics| format!("cluster=\"{}\",address=\"{}\"", a.cluster, a.addr);
        head(&mut out, "probes_total", "counter", "Probes by result.");
        for a in &self.addrs {
            for (result, n) in [("up", &a.up), ("down", &a.down)] {
                let _ = writeln!(
                    out,
                    "clusterns_health_probes_total{{{},result=\"{result}\"}} {}",
                    label(a),
                    n.load(Relaxed)
                );
            }
        }
        head(
            &mut out,
            "address_up",
            "gauge",
            "1 while the address is decided up, 0 while down; absent while unknown.",
        );
        let mut counts = [0u64; 3];
        for a in &self.addrs {
            let state = a.state.load(Relaxed);
            counts[usize::from(state.min(2))] += 1;
            if state != 0 {
                let up = u8::from(state == 1);
                let _ = writeln!(out, "clusterns_health_address_up{{{}}} {up}", label(a));
            }
        }
        head(
            &mut out,
            "addresses",
            "gauge",
            "Probed addresses by decided state.",
        );
        for (state, n) in ["unknown", "up", "down"].iter().zip(counts) {
            let _ = writeln!(out, "clusterns_health_addresses{{state=\"{state}\"}} {n}");
        }
        head(
            &mut out,
            "seconds_since_report",
            "gauge",
            "Seconds since the last report about the address was written; absent before the first.",
        );
        let now_ms = now.saturating_duration_since(self.started).as_millis();
        for a in &self.addrs {
            let at = a.last_report_ms.load(Relaxed);
            if at != NEVER {
                let secs = now_ms.saturating_sub(u128::from(at)) as f64 / 1000.0;
                let _ = writeln!(
                    out,
                    "clusterns_health_seconds_since_report{{{}}} {secs:.3}",
                    label(a)
                );
            }
        }
        head(
            &mut out,
            "write_errors_total",
            "counter",
            "Batches of reports that could not be written (retried the next round).",
        );
        let _ = writeln!(
            out,
            "clusterns_health_write_errors_total {}",
            self.write_errors()
        );
        head(
            &mut out,
            "late_probes_total",
            "counter",
            "Probes still running past their timeout at a round's end (their result is dropped).",
        );
        let _ = writeln!(
            out,
            "clusterns_health_late_probes_total {}",
            self.late_probes.load(Relaxed)
        );
        out
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP clusterns_health_{name} {help}");
    let _ = writeln!(out, "# TYPE clusterns_health_{name} {kind}");
}

/// A running checker metrics endpoint: `GET /metrics` and `/health`.
pub struct MetricsEndpoint(Endpoint);

impl MetricsEndpoint {
    /// Serves `metrics` on `addr` from its own thread.
    pub fn start(addr: SocketAddr, metrics: Arc<CheckerMetrics>) -> std::io::Result<Self> {
        Endpoint::start(addr, "health-metrics", move |path| match path {
            "/metrics" | "/" => Some(Page::Metrics(metrics.render(Instant::now()))),
            "/health" => Some(Page::Text(200, "ok\n".into())),
            _ => None,
        })
        .map(MetricsEndpoint)
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use super::*;

    fn metrics() -> CheckerMetrics {
        CheckerMetrics::new([
            ("a".parse().unwrap(), "192.0.2.1".parse().unwrap()),
            ("b".parse().unwrap(), "2001:db8::2".parse().unwrap()),
        ])
    }

    #[test]
    fn renders_probes_states_report_ages_and_write_errors() {
        let m = metrics();
        m.probed(0, true);
        m.probed(0, true);
        m.probed(1, false);
        m.set_state(0, AddrState::Up);
        m.set_state(1, AddrState::Down);
        m.reported(0, m.started + Duration::from_millis(1000));
        m.write_error();
        m.late_probes(2);
        let text = m.render(m.started + Duration::from_millis(3500));
        for line in [
            r#"clusterns_health_probes_total{cluster="a",address="192.0.2.1",result="up"} 2"#,
            r#"clusterns_health_probes_total{cluster="a",address="192.0.2.1",result="down"} 0"#,
            r#"clusterns_health_probes_total{cluster="b",address="2001:db8::2",result="down"} 1"#,
            r#"clusterns_health_address_up{cluster="a",address="192.0.2.1"} 1"#,
            r#"clusterns_health_address_up{cluster="b",address="2001:db8::2"} 0"#,
            r#"clusterns_health_addresses{state="up"} 1"#,
            r#"clusterns_health_addresses{state="down"} 1"#,
            r#"clusterns_health_seconds_since_report{cluster="a",address="192.0.2.1"} 2.500"#,
            "clusterns_health_write_errors_total 1",
            "clusterns_health_late_probes_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // Never reported: no age.
        assert!(
            !text.contains(r#"seconds_since_report{cluster="b""#),
            "{text}"
        );
    }

    #[test]
    fn unknown_addresses_have_no_up_gauge() {
        let m = metrics();
        m.set_state(1, AddrState::Up);
        m.set_state(1, AddrState::Unknown);
        let text = m.render(Instant::now());
        assert!(!text.contains("clusterns_health_address_up{"), "{text}");
        assert!(text.contains("clusterns_health_addresses{state=\"unknown\"} 2"));
    }

    #[test]
    fn the_endpoint_serves_the_text() {
        let m = Arc::new(metrics());
        m.probed(1, true);
        let ep = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), m).unwrap();
        let mut s = std::net::TcpStream::connect(ep.addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
            "{text}"
        );
        assert!(text.contains(
            r#"clusterns_health_probes_total{cluster="b",address="2001:db8::2",result="up"} 1"#
        ));
    }
}
