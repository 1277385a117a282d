//! A checker's report about one address: the change kind `health` of every feed.

use std::net::IpAddr;

use crate::name::Label;

/// "Address `addr` of cluster `cluster` is up (or down), says checker `checker`, until unix
/// second `until`." A later report of the same checker about the same address replaces the
/// earlier one; after `until` the report no longer counts (an edge that hears nothing more
/// treats the address as unknown and answers it: fail open).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthReport {
    pub checker: Label,
    pub cluster: Label,
    pub addr: IpAddr,
    pub up: bool,
    /// Unix seconds: the end of the report's lease.
    pub until: u64,
}
