//! Which reports a checker owes: one when an address's state is first decided or changes
//! (kept due until a write succeeds: a failed write never loses a change), and a renewal for
//! every decided address when a third of the lease has passed since its last report. Pure:
//! the caller gives the time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::flap::Flap;
use crate::health::report::HealthReport;
use crate::health::view::AddrState;
use crate::name::Label;

/// One probed address's damping state and report history.
#[derive(Debug, Clone)]
struct Entry {
    cluster: Label,
    addr: IpAddr,
    flap: Flap,
    /// The decided state changed since the last report written.
    pending: bool,
    /// When the last report about it was written.
    last_report: Option<Instant>,
}

/// The report state of every probed address, indexed as the checker's targets.
#[derive(Debug, Clone)]
pub struct Ledger {
    entries: Vec<Entry>,
    lease_secs: u64,
    renew: Duration,
}

/// The reports due now, with the indexes of the addresses they are about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    pub targets: Vec<usize>,
    pub reports: Vec<HealthReport>,
}

impl Ledger {
    /// Every address unknown, nothing reported; reports hold `lease_secs` and are renewed at
    /// a third of it.
    pub fn new(
        targets: impl IntoIterator<Item = (Label, IpAddr)>,
        rise: u32,
        fall: u32,
        lease_secs: u64,
    ) -> Ledger {
        Ledger {
            entries: targets
                .into_iter()
                .map(|(cluster, addr)| Entry {
                    cluster,
                    addr,
                    flap: Flap::new(rise, fall),
                    pending: false,
                    last_report: None,
                })
                .collect(),
            lease_secs,
            renew: Duration::from_millis(lease_secs.saturating_mul(1000) / 3),
        }
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No addresses at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counts one probe of target `idx`; returns the new state when the decided state changes
    /// (a report is then due).
    pub fn observe(&mut self, idx: usize, up: bool) -> Option<AddrState> {
        let e = self.entries.get_mut(idx)?;
        let changed = e.flap.observe(up);
        if changed.is_some() {
            e.pending = true;
        }
        changed
    }

    /// The decided state of target `idx`.
    pub fn state(&self, idx: usize) -> AddrState {
        self.entries
            .get(idx)
            .map_or(AddrState::Unknown, |e| e.flap.state())
    }

    /// When the last report about target `idx` was written.
    pub fn last_report(&self, idx: usize) -> Option<Instant> {
        self.entries.get(idx).and_then(|e| e.last_report)
    }

    /// The reports `checker` owes at `now` (`unix_now` in unix seconds): every decided
    /// address whose state changed since its last report, or whose last report is a third of
    /// the lease old.
    pub fn due(&self, checker: &Label, now: Instant, unix_now: u64) -> Due {
        let mut due = Due::default();
        for (i, e) in self.entries.iter().enumerate() {
            let up = match e.flap.state() {
                AddrState::Up => true,
                AddrState::Down => false,
                AddrState::Unknown => continue,
            };
            let renew = e
                .last_report
                .is_none_or(|t| now.saturating_duration_since(t) >= self.renew);
            if e.pending || renew {
                due.targets.push(i);
                due.reports.push(HealthReport {
                    checker: checker.clone(),
                    cluster: e.cluster.clone(),
                    addr: e.addr,
                    up,
                    until: unix_now.saturating_add(self.lease_secs),
                });
            }
        }
        due
    }

    /// The reports about `targets` were written at `now`.
    pub fn written(&mut self, targets: &[usize], now: Instant) {
        for &i in targets {
            if let Some(e) = self.entries.get_mut(i) {
                e.pending = false;
                e.last_report = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> Label {
        s.parse().unwrap()
    }

    fn ledger(rise: u32, fall: u32) -> Ledger {
        Ledger::new(
            [
                (label("a"), "192.0.2.1".parse().unwrap()),
                (label("a"), "2001:db8::1".parse().unwrap()),
            ],
            rise,
            fall,
            30,
        )
    }

    fn summary(d: &Due) -> Vec<(usize, bool, u64)> {
        d.targets
            .iter()
            .zip(&d.reports)
            .map(|(&i, r)| (i, r.up, r.until))
            .collect()
    }

    #[test]
    fn nothing_is_due_while_undecided() {
        let mut l = ledger(2, 2);
        let t0 = Instant::now();
        l.observe(0, true);
        l.observe(1, false);
        assert_eq!(l.due(&label("c1"), t0, 1000), Due::default());
    }

    #[test]
    fn a_change_is_due_once_then_renewed_at_a_third_of_the_lease() {
        let mut l = ledger(1, 1);
        let t0 = Instant::now();
        assert_eq!(l.observe(0, true), Some(AddrState::Up));
        assert_eq!(l.observe(1, false), Some(AddrState::Down));
        let d = l.due(&label("c1"), t0, 1000);
        assert_eq!(summary(&d), vec![(0, true, 1030), (1, false, 1030)]);
        assert_eq!(d.reports[0].checker, label("c1"));
        assert_eq!(d.reports[0].cluster, label("a"));
        assert_eq!(d.reports[1].addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        l.written(&d.targets, t0);
        // Same states: nothing due until 10 s (a third of 30) have passed.
        l.observe(0, true);
        l.observe(1, false);
        assert!(l
            .due(&label("c1"), t0 + Duration::from_millis(9_999), 1009)
            .reports
            .is_empty());
        let d = l.due(&label("c1"), t0 + Duration::from_secs(10), 1010);
        assert_eq!(summary(&d), vec![(0, true, 1040), (1, false, 1040)]);
    }

    #[test]
    fn a_change_is_due_at_once_whatever_the_last_report() {
        let mut l = ledger(1, 1);
        let t0 = Instant::now();
        l.observe(0, true);
        let d = l.due(&label("c1"), t0, 1000);
        l.written(&d.targets, t0);
        assert_eq!(l.observe(0, false), Some(AddrState::Down));
        let d = l.due(&label("c1"), t0 + Duration::from_millis(100), 1000);
        assert_eq!(summary(&d), vec![(0, false, 1030)]);
    }

    #[test]
    fn a_failed_write_keeps_the_change_due() {
        let mut l = ledger(1, 1);
        let t0 = Instant::now();
        l.observe(0, true);
        l.written(&l.due(&label("c1"), t0, 1000).targets, t0);
        l.observe(0, false);
        // The write of this batch fails: `written` is not called.
        assert_eq!(
            summary(&l.due(&label("c1"), t0, 1000)),
            vec![(0, false, 1030)]
        );
        // Next round: still due, with the later lease.
        let t1 = t0 + Duration::from_millis(500);
        let d = l.due(&label("c1"), t1, 1001);
        assert_eq!(summary(&d), vec![(0, false, 1031)]);
        l.written(&d.targets, t1);
        assert!(l.due(&label("c1"), t1, 1001).reports.is_empty());
        assert_eq!(l.last_report(0), Some(t1));
    }
}
