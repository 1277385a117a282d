use std::net::Ipv4Addr;

use super::*;
use crate::config::Member;
use crate::health::report::HealthReport;

fn label(s: &str) -> Label {
    s.parse().unwrap()
}

fn report(checker: &str, addr: &str, up: bool, until: u64) -> HealthReport {
    HealthReport {
        checker: label(checker),
        cluster: label("c1"),
        addr: addr.parse().unwrap(),
        up,
        until,
    }
}

fn store(reports: &[HealthReport]) -> HealthStore {
    let mut s = HealthStore::default();
    for r in reports {
        s.apply(r).unwrap();
    }
    s
}

fn state(view: &HealthView, addr: &str) -> AddrState {
    view.state(&label("c1"), addr.parse().unwrap())
}

#[test]
fn two_of_three_checkers_make_the_quorum() {
    let s = store(&[
        report("a", "10.0.0.1", false, 100),
        report("b", "10.0.0.1", false, 100),
        report("c", "10.0.0.1", true, 100),
        report("a", "10.0.0.2", true, 100),
        report("b", "10.0.0.2", true, 100),
        report("c", "10.0.0.2", false, 100),
    ]);
    let v = HealthView::evaluate(&s, 50);
    assert_eq!(state(&v, "10.0.0.1"), AddrState::Down);
    assert_eq!(state(&v, "10.0.0.2"), AddrState::Up);
    assert_eq!(state(&v, "10.0.0.3"), AddrState::Unknown);
    assert_eq!(v.known().count(), 2);
}

#[test]
fn a_tie_is_unknown() {
    let s = store(&[
        report("a", "10.0.0.1", false, 100),
        report("b", "10.0.0.1", true, 100),
    ]);
    let v = HealthView::evaluate(&s, 50);
    assert_eq!(state(&v, "10.0.0.1"), AddrState::Unknown);
    assert_eq!(v, HealthView::none(), "an unknown address is not listed");
}

#[test]
fn expired_reports_are_ignored() {
    let s = store(&[
        report("a", "10.0.0.1", false, 100),
        report("b", "10.0.0.1", false, 60),
        report("c", "10.0.0.1", true, 200),
    ]);
    // All three fresh: 2 of 3 down.
    assert_eq!(
        state(&HealthView::evaluate(&s, 59), "10.0.0.1"),
        AddrState::Down
    );
    assert_eq!(HealthView::next_expiry(&s, 59), Some(60));
    // b's lease is over at 60 (until > now counts): 1 down, 1 up.
    assert_eq!(
        state(&HealthView::evaluate(&s, 60), "10.0.0.1"),
        AddrState::Unknown
    );
    assert_eq!(HealthView::next_expiry(&s, 60), Some(100));
    // Only c's report is left: up.
    assert_eq!(
        state(&HealthView::evaluate(&s, 100), "10.0.0.1"),
        AddrState::Up
    );
    // None left: unknown, nothing to wait for.
    assert_eq!(HealthView::evaluate(&s, 200), HealthView::none());
    assert_eq!(HealthView::next_expiry(&s, 200), None);
}

#[test]
fn a_checker_counts_once_its_latest_report() {
    let mut s = store(&[
        report("a", "10.0.0.1", false, 100),
        report("b", "10.0.0.1", true, 100),
        report("c", "10.0.0.1", true, 100),
    ]);
    assert_eq!(
        state(&HealthView::evaluate(&s, 0), "10.0.0.1"),
        AddrState::Up
    );
    // c changes its mind: 2 down of 3, not 2 down of 4.
    s.apply(&report("c", "10.0.0.1", false, 100)).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(
        state(&HealthView::evaluate(&s, 0), "10.0.0.1"),
        AddrState::Down
    );
    // a says down again, many times: still one voice.
    for _ in 0..3 {
        s.apply(&report("a", "10.0.0.1", false, 100)).unwrap();
    }
    assert_eq!(
        Tally::of(s.reports(&label("c1"), "10.0.0.1".parse().unwrap()), 0),
        Tally { up: 1, down: 2 }
    );
}

#[test]
fn summary_says_degraded_and_failing_over() {
    let addr = |i: u8| Ipv4Addr::new(10, 0, 0, i);
    let mut c = ClusterConfig::plain(label("c1"), &[addr(1), addr(2)], &[]);
    c.ipv4.push(Member {
        addr: addr(3),
        weight: 0,
        priority: 1,
    });
    let view = |down: &[u8]| {
        HealthView::from_states(
            down.iter()
                .map(|&i| ((label("c1"), IpAddr::V4(addr(i))), AddrState::Down))
                .chain(
                    [((label("c1"), IpAddr::V4(addr(2))), AddrState::Up)]
                        .into_iter()
                        .filter(|_| !down.contains(&2)),
                ),
        )
    };
    let c2 = ClusterConfig::plain(label("c2"), &[addr(9)], &[]);
    let s = HealthView::none().summary(&c, &[]);
    assert_eq!((s.up, s.down, s.unknown), (0, 0, 3));
    assert!(!s.degraded && !s.failing_over && !s.failed_open);
    // The drained member down: not degraded.
    let s = view(&[3]).summary(&c, &[]);
    assert_eq!((s.up, s.down, s.unknown), (1, 1, 1));
    assert!(!s.degraded);
    let s = view(&[1]).summary(&c, &[]);
    assert!(s.degraded && !s.failing_over);
    // Every weighted member down, but no failover configured: every member answered.
    let s = view(&[1, 2]).summary(&c, &[]);
    assert!(s.degraded && !s.failing_over && s.failed_open);
    c.failover = Some(label("c2"));
    let all = [c.clone(), c2.clone()];
    let s = view(&[1, 2]).summary(&c, &all);
    assert!(s.degraded && s.failing_over && !s.failed_open);
    assert_eq!((s.up, s.down, s.unknown), (0, 2, 1));
    // The failover cluster down too: the answers fail open instead.
    let both = HealthView::from_states(
        [1, 2]
            .iter()
            .map(|&i| ((label("c1"), IpAddr::V4(addr(i))), AddrState::Down))
            .chain([((label("c2"), IpAddr::V4(addr(9))), AddrState::Down)]),
    );
    let s = both.summary(&c, &all);
    assert!(s.degraded && !s.failing_over && s.failed_open);
}
