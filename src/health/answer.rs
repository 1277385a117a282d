//! The answer policy: which of a cluster's addresses its apps are answered with, given the
//! addresses' health, per family (A and AAAA independently). Computed when a snapshot is
//! built (never per query); the query path only picks `max_answers` of the chosen addresses
//! by weight (`health::pick`).
//!
//! Per family: members of weight 0 (drained) are never answered; the eligible members are
//! those up or unknown (fail open per address); the answer is the eligible members of the
//! lowest-numbered priority group that has one. When none is eligible (every answerable
//! member known down), the failover cluster's answer computed the same way without following
//! its own failover (one hop); when that has none either, every answerable member of the
//! cluster itself (fail open: health never empties an answer). Degraded: some answerable
//! member is down, or the answer fails over; a degraded answer's TTL is the cluster's
//! `degraded_ttl`, or half the zone's TTL.
//!
//! A family the cluster has no answerable member of (no IPv6 addresses, say) answers
//! nothing, and does not fail over.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{ClusterConfig, Member};
use crate::health::view::{AddrState, HealthView};
use crate::name::Label;

/// What the policy made of one family of one cluster, for metrics and `lookup`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FamilyStatus {
    /// Members with a weight above 0 that are up or unknown.
    pub eligible: u16,
    /// Members with a weight above 0 that are down.
    pub down: u16,
    /// Some member with a weight above 0 is down, or the answer fails over.
    pub degraded: bool,
    /// The answer is the failover cluster's.
    pub failing_over: bool,
    /// Nothing eligible, neither here nor at the failover: every member with a weight above
    /// 0 is answered.
    pub failed_open: bool,
}

/// The addresses one family of a cluster answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<A> {
    /// The chosen members (weights above 0), in configuration order: the cluster's own, or
    /// the failover cluster's.
    pub members: Vec<Member<A>>,
    /// How many of them one answer carries (none: all).
    pub max_answers: Option<u16>,
    /// The cluster's TTL while degraded (none: half the zone's).
    pub degraded_ttl: Option<u32>,
    pub status: FamilyStatus,
}

impl<A> Choice<A> {
    /// The answer's TTL in a zone whose app TTL is `zone_ttl`.
    pub fn ttl(&self, zone_ttl: u32) -> u32 {
        if self.status.degraded {
            self.degraded_ttl.unwrap_or(zone_ttl / 2)
        } else {
            zone_ttl
        }
    }

    /// The chosen members' weights, in their order.
    pub fn weights(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.weight).collect()
    }
}

/// Both families' choices for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterChoice {
    pub a: Choice<Ipv4Addr>,
    pub aaaa: Choice<Ipv6Addr>,
}

/// Both families' status for one cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    pub a: FamilyStatus,
    pub aaaa: FamilyStatus,
}

impl ClusterStatus {
    /// Either family is degraded.
    pub fn degraded(&self) -> bool {
        self.a.degraded || self.aaaa.degraded
    }
}

impl ClusterChoice {
    /// The status of both families.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            a: self.a.status,
            aaaa: self.aaaa.status,
        }
    }
}

/// The policy's choice for `cluster` under `health`; `all` is every configured cluster, where
/// the failover cluster is found (a failover naming none of them is as if there were none:
/// the configuration check rejects it).
pub fn choose(
    cluster: &ClusterConfig,
    all: &[ClusterConfig],
    health: &HealthView,
) -> ClusterChoice {
    let failover = cluster
        .failover
        .as_ref()
        .and_then(|name| all.iter().find(|c| c.name == *name));
    ClusterChoice {
        a: choose_family(cluster, failover, health, |c| &c.ipv4),
        aaaa: choose_family(cluster, failover, health, |c| &c.ipv6),
    }
}

/// One family's choice: `members` reads that family's members of a cluster.
fn choose_family<A: Copy + Into<IpAddr>>(
    cluster: &ClusterConfig,
    failover: Option<&ClusterConfig>,
    health: &HealthView,
    members: impl Fn(&ClusterConfig) -> &[Member<A>],
) -> Choice<A> {
    let own = members(cluster);
    let mut status = FamilyStatus::default();
    for m in own.iter().filter(|m| m.weight > 0) {
        match health.state(&cluster.name, m.addr.into()) {
            AddrState::Down => status.down += 1,
            AddrState::Up | AddrState::Unknown => status.eligible += 1,
        }
    }
    status.degraded = status.down > 0;
    let mut choice = Choice {
        members: Vec::new(),
        max_answers: cluster.max_answers,
        degraded_ttl: cluster.degraded_ttl,
        status,
    };
    if status.eligible > 0 {
        choice.members = best_group(&cluster.name, own, health);
        return choice;
    }
    if status.down == 0 {
        // No answerable member of this family at all: nothing to answer, nothing to fail.
        return choice;
    }
    if let Some(target) = failover {
        let theirs = best_group(&target.name, members(target), health);
        if !theirs.is_empty() {
            choice.members = theirs;
            choice.max_answers = target.max_answers;
            choice.status.failing_over = true;
            return choice;
        }
    }
    choice.members = own.iter().filter(|m| m.weight > 0).copied().collect();
    choice.status.failed_open = true;
    choice
}

/// The eligible members (weight above 0, up or unknown) of the lowest-numbered priority group
/// that has one; empty when none is eligible.
fn best_group<A: Copy + Into<IpAddr>>(
    cluster: &Label,
    members: &[Member<A>],
    health: &HealthView,
) -> Vec<Member<A>> {
    let eligible =
        |m: &&Member<A>| m.weight > 0 && health.state(cluster, m.addr.into()) != AddrState::Down;
    let Some(group) = members.iter().filter(eligible).map(|m| m.priority).min() else {
        return Vec::new();
    };
    members
        .iter()
        .filter(eligible)
        .filter(|m| m.priority == group)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests;
