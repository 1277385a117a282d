//! The health metrics: per configured cluster whether it is degraded or failing over and its
//! addresses by state (from the configuration and the builder's current health view, see
//! `HealthView::summary`), the reports held and fresh, and the reports applied.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::feed::status::FeedStatus;

/// Appends the health metrics to `out`.
pub(super) fn render(out: &mut String, feed: &FeedStatus) {
    let summary = feed.health_summary();
    let mut family =
        |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
    family(
        "clusterns_cluster_degraded",
        "gauge",
        "1 while an address of the cluster with weight above 0 is down (answers carry the degraded TTL).",
        &mut summary
            .iter()
            .map(|(c, s)| (format!("{{cluster=\"{c}\"}}"), u64::from(s.degraded))),
    );
    family(
        "clusterns_cluster_failing_over",
        "gauge",
        "1 while every address with weight above 0 of a family of the cluster is down and its failover cluster answers instead (it has an address up or unknown).",
        &mut summary
            .iter()
            .map(|(c, s)| (format!("{{cluster=\"{c}\"}}"), u64::from(s.failing_over))),
    );
    family(
        "clusterns_cluster_failed_open",
        "gauge",
        "1 while every address with weight above 0 of a family of the cluster is down and no failover cluster can answer: every address is answered.",
        &mut summary
            .iter()
            .map(|(c, s)| (format!("{{cluster=\"{c}\"}}"), u64::from(s.failed_open))),
    );
    family(
        "clusterns_health_addresses",
        "gauge",
        "Configured addresses by the state the checkers' fresh reports give them (unknown: none or no majority; answered).",
        &mut summary.iter().flat_map(|(c, s)| {
            [("up", s.up), ("down", s.down), ("unknown", s.unknown)]
                .into_iter()
                .map(move |(state, n)| {
                    (
                        format!("{{cluster=\"{c}\",state=\"{state}\"}}"),
                        u64::from(n),
                    )
                })
        }),
    );
    family(
        "clusterns_health_reports",
        "gauge",
        "Checkers' health reports within their lease (as of the builder's last look, at least once a second while any is).",
        &mut std::iter::once((String::new(), feed.health_fresh.load(Relaxed))),
    );
    family(
        "clusterns_health_reports_held",
        "gauge",
        "Checkers' health reports held, expired ones included (the latest per checker and address).",
        &mut std::iter::once((String::new(), feed.health_reports.load(Relaxed))),
    );
    family(
        "clusterns_health_reports_applied_total",
        "counter",
        "Health reports applied from the feed since start.",
        &mut std::iter::once((String::new(), feed.health_applied.load(Relaxed))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::view::ClusterHealth;

    #[test]
    fn renders_the_summary() {
        let feed = FeedStatus::default();
        feed.set_health_summary(vec![
            (
                "east".parse().unwrap(),
                ClusterHealth {
                    up: 1,
                    down: 2,
                    unknown: 0,
                    degraded: true,
                    failing_over: true,
                    failed_open: false,
                },
            ),
            ("west".parse().unwrap(), ClusterHealth::default()),
        ]);
        feed.set_health_reports(7, 5);
        feed.health_applied.store(9, Relaxed);
        let mut out = String::new();
        render(&mut out, &feed);
        for line in [
            "clusterns_cluster_degraded{cluster=\"east\"} 1",
            "clusterns_cluster_degraded{cluster=\"west\"} 0",
            "clusterns_cluster_failing_over{cluster=\"east\"} 1",
            "clusterns_cluster_failed_open{cluster=\"east\"} 0",
            "clusterns_health_addresses{cluster=\"east\",state=\"down\"} 2",
            "clusterns_health_addresses{cluster=\"west\",state=\"unknown\"} 0",
            "clusterns_health_reports 5",
            "clusterns_health_reports_held 7",
            "clusterns_health_reports_applied_total 9",
            "# TYPE clusterns_health_reports_applied_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }
}
