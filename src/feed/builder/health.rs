//! The builder's health view: what the table's health reports say now (`HealthView::evaluate`),
//! evaluated again after a batch that held reports and when the next lease ends; when it
//! changes, the clusters' answers are laid out again for it and published. Transitions are
//! logged (INFO; WARN when an address's reports all ran out: unknown, answered again) and the
//! per-cluster summary goes to the feed status for metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Builder;
use crate::health::view::{AddrState, HealthView, Tally};
use crate::name::Label;
use crate::snapshot::Served;

/// The longest the builder thread waits between two looks at the leases, while reports are
/// held.
pub(super) const HEALTH_TICK: Duration = Duration::from_secs(1);

/// Unix seconds now.
pub(super) fn unix_now() -> u64 {
    crate::feed::status::now_ms() / 1000
}

impl Builder {
    /// What the served table's health reports say (as of the last evaluation: after a batch
    /// with reports, at the end of a lease).
    pub fn health(&self) -> &HealthView {
        &self.health
    }

    /// The configuration's answers for the table's cluster registry and the current health
    /// view.
    pub(super) fn lay_out(&mut self) {
        self.served = Arc::new(Served::for_registry_health(
            &self.config,
            self.table.clusters().names(),
            &self.health,
        ));
    }

    /// Evaluates the served table's health reports at `now`; when the view differs from the
    /// current one, takes it and lays the answers out again (the caller publishes). Returns
    /// whether it changed.
    pub(super) fn evaluate_health(&mut self, now: u64) -> bool {
        let store = self.table.health();
        let view = HealthView::evaluate(store, now);
        self.health_next = HealthView::next_expiry(store, now);
        self.status
            .set_health_reports(store.len() as u64, store.fresh(now) as u64);
        if view == self.health {
            return false;
        }
        self.log_transitions(&view, now);
        self.health = view;
        self.store_health_summary();
        self.lay_out();
        true
    }

    /// Publishes a new view when a lease ran out (the builder thread and `maintain` call this
    /// every round).
    pub(super) fn health_due(&mut self) {
        let now = unix_now();
        if self.health_next.is_some_and(|at| at <= now)
            && self.pending.is_none()
            && self.evaluate_health(now)
        {
            self.publish();
        }
    }

    /// How long the builder thread may wait for the feed: at most [`HEALTH_TICK`] while a
    /// lease is to end.
    pub(super) fn feed_wait(&self, interval: Duration) -> Duration {
        match self.health_next {
            Some(_) => interval.min(HEALTH_TICK),
            None => interval,
        }
    }

    /// The per-cluster summary of the current view, for metrics.
    pub(super) fn store_health_summary(&self) {
        let summary = self
            .config
            .clusters
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    self.health.summary(c, &self.config.clusters),
                )
            })
            .collect();
        self.status.set_health_summary(summary);
    }

    /// Logs the addresses whose state differs between the current view and `next`.
    fn log_transitions(&self, next: &HealthView, now: u64) {
        let mut changed: Vec<(&Label, IpAddr)> = self
            .health
            .known()
            .chain(next.known())
            .filter(|(c, a, _)| self.health.state(c, *a) != next.state(c, *a))
            .map(|(c, a, _)| (c, a))
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for (cluster, addr) in changed {
            let was = self.health.state(cluster, addr);
            let is = next.state(cluster, addr);
            let held = self.table.health().reports(cluster, addr);
            let tally = Tally::of(held, now);
            if is == AddrState::Unknown && tally.fresh() == 0 {
                tracing::warn!(
                    "cluster {cluster} address {addr}: no checker's report is within its lease any more (was {}); unknown: answered (fail open)",
                    state_word(was)
                );
                continue;
            }
            let said = match is {
                AddrState::Up => format!("{} of {} checkers", tally.up, tally.fresh()),
                AddrState::Down => format!("{} of {} checkers", tally.down, tally.fresh()),
                AddrState::Unknown => format!("{} up, {} down: no majority", tally.up, tally.down),
            };
            tracing::info!(
                "cluster {cluster} address {addr} {} ({said}; was {})",
                state_word(is),
                state_word(was)
            );
        }
    }
}

/// How logs say a state.
fn state_word(s: AddrState) -> &'static str {
    match s {
        AddrState::Up => "up",
        AddrState::Down => "down",
        AddrState::Unknown => "unknown",
    }
}
