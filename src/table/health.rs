//! The checkers' health reports the feed brought: per (cluster, address) the latest report of
//! each checker. The store lives in the [`Table`](super::Table) beside the apps and the
//! challenge records, so that it travels with it everywhere (snapshots, folds, checkpoints,
//! rebuilds after a reset); it is copy-on-write like [`AcmeStore`](super::AcmeStore).
//!
//! Applying a report depends on the store and the report alone, never on a clock, so every
//! edge holds the same reports at the same point of the feed. What the reports mean at a
//! moment (leases, quorum) is `health::view`'s business. A report with `until` 0 withdraws
//! the checker's report. Reports about clusters or addresses the configuration lacks are kept
//! (a reload may bring them) and count towards the limits.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::health::report::HealthReport;
use crate::name::Label;

/// The most checkers whose reports one address holds.
pub const MAX_CHECKERS_PER_ADDR: usize = 64;
/// The most reports the store holds in all.
pub const MAX_REPORTS: usize = 65_536;
/// A report whose lease ended this long (seconds) before a new report's lease ends is
/// surely over on every edge: it gives way when the new one would not fit otherwise.
pub const STALE_SECS: u64 = 86_400;

/// One checker's latest report about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub checker: Label,
    pub up: bool,
    /// Unix seconds: the end of the report's lease.
    pub until: u64,
}

/// Why a report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthReject {
    /// The address holds reports of [`MAX_CHECKERS_PER_ADDR`] other checkers.
    TooManyCheckers,
    /// The store holds [`MAX_REPORTS`] reports.
    TooManyReports,
}

impl HealthReject {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HealthReject::TooManyCheckers => "health_checkers_per_address",
            HealthReject::TooManyReports => "health_reports",
        }
    }
}

impl fmt::Display for HealthReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthReject::TooManyCheckers => write!(
                f,
                "the address holds reports of {MAX_CHECKERS_PER_ADDR} checkers already"
            ),
            HealthReject::TooManyReports => {
                write!(f, "{MAX_REPORTS} health reports are held already")
            }
        }
    }
}

/// The reports, by (cluster, address), each address's sorted by checker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthStore {
    addrs: Arc<BTreeMap<(Label, IpAddr), Vec<Held>>>,
    len: usize,
}

impl HealthStore {
    /// Takes `r`: it replaces the same checker's earlier report about the address (`until` 0:
    /// removes it). Refused over the limits, after reports long over (see [`STALE_SECS`]) gave
    /// way (they stay gone even when `r` is refused: that too depends on the store and `r`
    /// alone).
    pub fn apply(&mut self, r: &HealthReport) -> Result<(), HealthReject> {
        let key = (r.cluster.clone(), r.addr);
        let held = self.addrs.get(&key);
        let at = held.map(|v| v.binary_search_by(|h| h.checker.cmp(&r.checker)));
        if r.until == 0 {
            if let Some(Ok(i)) = at {
                let map = Arc::make_mut(&mut self.addrs);
                if let Some(v) = map.get_mut(&key) {
                    v.remove(i);
                    if v.is_empty() {
                        map.remove(&key);
                    }
                }
                self.len -= 1;
            }
            return Ok(());
        }
        let new = Held {
            checker: r.checker.clone(),
            up: r.up,
            until: r.until,
        };
        if let Some(Ok(i)) = at {
            if let Some(v) = Arc::make_mut(&mut self.addrs).get_mut(&key) {
                v[i] = new;
            }
            return Ok(());
        }
        let stale_below = r.until.saturating_sub(STALE_SECS);
        if held.is_some_and(|v| v.len() >= MAX_CHECKERS_PER_ADDR) {
            self.drop_stale(Some(&key), stale_below);
            if self.addrs.get(&key).map_or(0, Vec::len) >= MAX_CHECKERS_PER_ADDR {
                return Err(HealthReject::TooManyCheckers);
            }
        }
        if self.len >= MAX_REPORTS {
            self.drop_stale(None, stale_below);
            if self.len >= MAX_REPORTS {
                return Err(HealthReject::TooManyReports);
            }
        }
        let v = Arc::make_mut(&mut self.addrs).entry(key).or_default();
        let i = v
            .binary_search_by(|h| h.checker.cmp(&r.checker))
            .unwrap_or_else(|i| i);
        v.insert(i, new);
        self.len += 1;
        Ok(())
    }

    /// Drops the reports whose lease ended at or before `below` (of one address, or all).
    fn drop_stale(&mut self, key: Option<&(Label, IpAddr)>, below: u64) {
        let any = match key {
            Some(k) => self
                .addrs
                .get(k)
                .is_some_and(|v| v.iter().any(|h| h.until <= below)),
            None => self
                .addrs
                .values()
                .any(|v| v.iter().any(|h| h.until <= below)),
        };
        if !any {
            return;
        }
        let map = Arc::make_mut(&mut self.addrs);
        let mut dropped = 0;
        map.retain(|k, v| {
            if key.is_none_or(|key| key == k) {
                let before = v.len();
                v.retain(|h| h.until > below);
                dropped += before - v.len();
            }
            !v.is_empty()
        });
        self.len -= dropped;
    }

    /// Reports held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no report is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every address with reports, with them (sorted by checker), in (cluster, address) order.
    pub fn addresses(&self) -> impl Iterator<Item = (&Label, IpAddr, &[Held])> {
        self.addrs.iter().map(|((c, a), v)| (c, *a, v.as_slice()))
    }

    /// The reports of `addr` in `cluster` (sorted by checker).
    pub fn reports(&self, cluster: &Label, addr: IpAddr) -> &[Held] {
        self.addrs
            .get(&(cluster.clone(), addr))
            .map_or(&[], Vec::as_slice)
    }

    /// Every report, as the feed says it.
    pub fn iter(&self) -> impl Iterator<Item = HealthReport> + '_ {
        self.addresses().flat_map(|(cluster, addr, held)| {
            held.iter().map(move |h| HealthReport {
                checker: h.checker.clone(),
                cluster: cluster.clone(),
                addr,
                up: h.up,
                until: h.until,
            })
        })
    }

    /// Reports still within their lease at unix second `now` (`until > now`).
    pub fn fresh(&self, now: u64) -> usize {
        self.addrs
            .values()
            .map(|v| v.iter().filter(|h| h.until > now).count())
            .sum()
    }

    /// The earliest end of a lease after `now`: when what the reports say changes next
    /// without a new report.
    pub fn next_expiry(&self, now: u64) -> Option<u64> {
        self.addrs
            .values()
            .flat_map(|v| v.iter().map(|h| h.until))
            .filter(|&u| u > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checker: &str, addr: &str, up: bool, until: u64) -> HealthReport {
        HealthReport {
            checker: checker.parse().unwrap(),
            cluster: "c1".parse().unwrap(),
            addr: addr.parse().unwrap(),
            up,
            until,
        }
    }

    #[test]
    fn a_report_replaces_the_same_checkers_and_zero_withdraws() {
        let mut s = HealthStore::default();
        s.apply(&report("b", "10.0.0.1", true, 100)).unwrap();
        s.apply(&report("a", "10.0.0.1", true, 100)).unwrap();
        s.apply(&report("a", "10.0.0.1", false, 200)).unwrap();
        s.apply(&report("a", "::1", false, 50)).unwrap();
        assert_eq!(s.len(), 3);
        let c1: Label = "c1".parse().unwrap();
        let held = s.reports(&c1, "10.0.0.1".parse().unwrap());
        assert_eq!(held.len(), 2);
        assert_eq!(
            (held[0].checker.as_str(), held[0].up, held[0].until),
            ("a", false, 200)
        );
        assert_eq!(s.fresh(99), 2);
        assert_eq!(s.fresh(100), 1);
        assert_eq!(s.next_expiry(50), Some(100));
        assert_eq!(s.next_expiry(200), None);
        // A clone shares until it changes.
        let before = s.clone();
        s.apply(&report("a", "10.0.0.1", false, 0)).unwrap();
        s.apply(&report("zz", "10.0.0.9", false, 0)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(before.len(), 3);
        assert_eq!(s.iter().count(), 2);
        assert_ne!(s, before);
    }

    #[test]
    fn limits_refuse_after_stale_reports_give_way() {
        let mut s = HealthStore::default();
        for i in 0..MAX_CHECKERS_PER_ADDR {
            s.apply(&report(&format!("k{i}"), "10.0.0.1", true, 10 + i as u64))
                .unwrap();
        }
        let e = s.apply(&report("new", "10.0.0.1", true, 1000)).unwrap_err();
        assert_eq!(e, HealthReject::TooManyCheckers);
        assert!(e.to_string().contains("64 checkers"), "{e}");
        assert_eq!(s.len(), MAX_CHECKERS_PER_ADDR);
        // A known checker still renews.
        s.apply(&report("k0", "10.0.0.1", false, 1000)).unwrap();
        // A day later, the old reports give way.
        s.apply(&report("new", "10.0.0.1", true, 10 + 5 + STALE_SECS))
            .unwrap();
        assert_eq!(s.len(), 1 + 1 + (MAX_CHECKERS_PER_ADDR - 6));
    }
}
