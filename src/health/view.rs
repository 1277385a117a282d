//! The health of every reported address at one moment, as the answer policy reads it: what
//! the reports a table holds (`table::health`) say at a unix second ([`HealthView::evaluate`]:
//! leases and quorum), and what that means for a configured cluster
//! ([`HealthView::summary`], for metrics).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::ClusterConfig;
use crate::name::Label;
use crate::table::health::{HealthStore, Held};

/// What the fresh reports about one address say: how many checkers say up, how many down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub up: usize,
    pub down: usize,
}

impl Tally {
    /// The reports among `held` (one per checker) within their lease at `now` (`until > now`).
    pub fn of(held: &[Held], now: u64) -> Tally {
        let mut t = Tally::default();
        for h in held.iter().filter(|h| h.until > now) {
            if h.up {
                t.up += 1;
            } else {
                t.down += 1;
            }
        }
        t
    }

    /// Fresh reports counted.
    pub fn fresh(&self) -> usize {
        self.up + self.down
    }

    /// Down when a strict majority says down, up when a strict majority says up, else
    /// (none, or a tie) unknown.
    pub fn state(&self) -> AddrState {
        let n = self.fresh();
        if self.down * 2 > n {
            AddrState::Down
        } else if self.up * 2 > n {
            AddrState::Up
        } else {
            AddrState::Unknown
        }
    }
}

/// What the health view says of one configured cluster (metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterHealth {
    /// Configured addresses (both families) by state.
    pub up: u32,
    pub down: u32,
    pub unknown: u32,
    /// A member with weight above 0 is down.
    pub degraded: bool,
    /// Every member with weight above 0 of a family is down and that family is answered by
    /// the failover cluster.
    pub failing_over: bool,
    /// Every member with weight above 0 of a family is down, and the failover cluster (if
    /// any) has nothing to answer either: every member is answered (fail open).
    pub failed_open: bool,
}

/// What the reports within their lease say of one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrState {
    /// A majority of the fresh reports say up.
    Up,
    /// A majority of the fresh reports say down.
    Down,
    /// No fresh report (none ever, or all past their lease), or a tie: answered (fail open).
    Unknown,
}

/// The state of the addresses that have fresh reports; every other address is
/// [`AddrState::Unknown`]. Equal views give equal answers, so the builder rebuilds the answers
/// only when the view changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthView {
    states: BTreeMap<(Label, IpAddr), AddrState>,
}

impl HealthView {
    /// No health data at all: every address unknown.
    pub fn none() -> HealthView {
        HealthView::default()
    }

    /// A view holding these states (unknown ones need not be listed).
    pub fn from_states(states: impl IntoIterator<Item = ((Label, IpAddr), AddrState)>) -> Self {
        HealthView {
            states: states
                .into_iter()
                .filter(|(_, s)| *s != AddrState::Unknown)
                .collect(),
        }
    }

    /// The state of `addr` in `cluster`.
    pub fn state(&self, cluster: &Label, addr: IpAddr) -> AddrState {
        self.states
            .get(&(cluster.clone(), addr))
            .copied()
            .unwrap_or(AddrState::Unknown)
    }

    /// Every address with a known state.
    pub fn known(&self) -> impl Iterator<Item = (&Label, IpAddr, AddrState)> {
        self.states.iter().map(|((c, a), s)| (c, *a, *s))
    }

    /// What the reports in `store` say at unix second `now`: per address, the reports within
    /// their lease (`until > now`), one per checker (the store keeps each checker's latest),
    /// decide by strict majority ([`Tally::state`]).
    pub fn evaluate(store: &HealthStore, now: u64) -> HealthView {
        HealthView::from_states(
            store.addresses().map(|(cluster, addr, held)| {
                ((cluster.clone(), addr), Tally::of(held, now).state())
            }),
        )
    }

    /// When [`HealthView::evaluate`] may next say something else with no new report: the
    /// earliest end of a lease after `now` (none: no report is fresh).
    pub fn next_expiry(store: &HealthStore, now: u64) -> Option<u64> {
        store.next_expiry(now)
    }

    /// What this view means for `cluster`'s configured addresses.
    pub fn summary(&self, cluster: &ClusterConfig, all: &[ClusterConfig]) -> ClusterHealth {
        let mut out = ClusterHealth::default();
        for a in cluster.addresses() {
            match self.state(&cluster.name, a) {
                AddrState::Up => out.up += 1,
                AddrState::Down => out.down += 1,
                AddrState::Unknown => out.unknown += 1,
            }
        }
        // What the answers do, from the answer policy itself.
        let status = crate::health::answer::choose(cluster, all, self).status();
        let (a, aaaa) = (status.a, status.aaaa);
        out.degraded = a.degraded || aaaa.degraded;
        out.failing_over = a.failing_over || aaaa.failing_over;
        out.failed_open = a.failed_open || aaaa.failed_open;
        out
    }
}

#[cfg(test)]
mod tests;
