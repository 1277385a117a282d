//! The health of every reported address at one moment, as the answer policy reads it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::name::Label;

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
}
