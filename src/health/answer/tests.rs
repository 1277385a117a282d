//! The answer policy's cases: priority groups, weights, drained members, failover one hop,
//! fail open, the TTL while degraded, A and AAAA independently.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::health::pick::{pick, Rng};

fn label(s: &str) -> Label {
    s.parse().unwrap()
}

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

fn m4(last: u8, weight: u32, priority: u8) -> Member<Ipv4Addr> {
    Member {
        addr: v4(last),
        weight,
        priority,
    }
}

fn cluster(name: &str, ipv4: Vec<Member<Ipv4Addr>>) -> ClusterConfig {
    ClusterConfig {
        ipv4,
        ..ClusterConfig::plain(label(name), &[], &[])
    }
}

/// A view where the listed addresses of `cluster` have these states.
fn view(states: &[(&str, IpAddr, AddrState)]) -> HealthView {
    HealthView::from_states(states.iter().map(|&(c, a, s)| ((label(c), a), s)))
}

fn down(c: &str, last: u8) -> (&str, IpAddr, AddrState) {
    (c, IpAddr::V4(v4(last)), AddrState::Down)
}

fn up(c: &str, last: u8) -> (&str, IpAddr, AddrState) {
    (c, IpAddr::V4(v4(last)), AddrState::Up)
}

fn addrs(c: &Choice<Ipv4Addr>) -> Vec<u8> {
    c.members.iter().map(|m| m.addr.octets()[3]).collect()
}

#[test]
fn no_health_data_answers_every_member_at_the_normal_ttl() {
    let c = ClusterConfig::plain(label("c"), &[v4(1), v4(2)], &[v6(1)]);
    let ch = choose(&c, std::slice::from_ref(&c), &HealthView::none());
    assert_eq!(addrs(&ch.a), [1, 2]);
    assert_eq!(ch.aaaa.members.len(), 1);
    assert_eq!(ch.a.ttl(300), 300);
    assert_eq!(ch.status(), {
        let s = FamilyStatus {
            eligible: 2,
            ..FamilyStatus::default()
        };
        ClusterStatus {
            a: s,
            aaaa: FamilyStatus { eligible: 1, ..s },
        }
    });
    assert!(!ch.status().degraded());
}

#[test]
fn the_lowest_priority_group_with_an_eligible_member_answers() {
    let c = cluster(
        "c",
        vec![
            m4(1, 1, 1),
            m4(2, 1, 1),
            m4(3, 1, 2),
            m4(4, 1, 2),
            m4(5, 1, 3),
        ],
    );
    let all = [c.clone()];
    assert_eq!(addrs(&choose(&c, &all, &HealthView::none()).a), [1, 2]);
    // One of group 1 down: the other one of group 1, degraded.
    let ch = choose(&c, &all, &view(&[down("c", 1)]));
    assert_eq!(addrs(&ch.a), [2]);
    assert!(ch.a.status.degraded && !ch.a.status.failing_over);
    assert_eq!((ch.a.status.eligible, ch.a.status.down), (4, 1));
    // All of group 1 down: group 2; up or unknown both count.
    let ch = choose(&c, &all, &view(&[down("c", 1), down("c", 2), up("c", 4)]));
    assert_eq!(addrs(&ch.a), [3, 4]);
    // Groups 1 and 2 down: group 3.
    let ch = choose(
        &c,
        &all,
        &view(&[down("c", 1), down("c", 2), down("c", 3), down("c", 4)]),
    );
    assert_eq!(addrs(&ch.a), [5]);
    // A state reported for another cluster's address does not count here.
    assert_eq!(addrs(&choose(&c, &all, &view(&[down("d", 1)])).a), [1, 2]);
}

#[test]
fn drained_members_are_never_answered_nor_counted() {
    let c = cluster("c", vec![m4(1, 0, 1), m4(2, 3, 2), m4(3, 0, 2)]);
    let all = [c.clone()];
    // The drained member of group 1 does not make group 1 the answer.
    let ch = choose(&c, &all, &HealthView::none());
    assert_eq!(addrs(&ch.a), [2]);
    assert_eq!(ch.a.weights(), [3]);
    // A drained member that is down does not degrade the answer.
    let ch = choose(&c, &all, &view(&[down("c", 1), up("c", 3)]));
    assert_eq!(addrs(&ch.a), [2]);
    assert_eq!(ch.a.status, {
        FamilyStatus {
            eligible: 1,
            ..FamilyStatus::default()
        }
    });
    // Even failing open, drained stays out.
    let ch = choose(&c, &all, &view(&[down("c", 2)]));
    assert_eq!(addrs(&ch.a), [2]);
    assert!(ch.a.status.failed_open);
}

#[test]
fn weights_share_the_answers_within_one_point_over_100k_picks() {
    let mut c = cluster(
        "c",
        vec![m4(1, 1, 1), m4(2, 2, 1), m4(3, 3, 1), m4(4, 4, 1)],
    );
    c.max_answers = Some(1);
    let ch = choose(&c, std::slice::from_ref(&c), &HealthView::none());
    assert_eq!(ch.a.max_answers, Some(1));
    let weights = ch.a.weights();
    let mut rng = Rng::new(17);
    let mut counts = [0u32; 4];
    const DRAWS: u32 = 100_000;
    for _ in 0..DRAWS {
        let p = pick(&weights, 1, rng.next_u64());
        counts[usize::from(p.as_slice()[0])] += 1;
    }
    for (i, &n) in counts.iter().enumerate() {
        let share = f64::from(n) / f64::from(DRAWS);
        let want = f64::from(weights[i]) / 10.0;
        assert!((share - want).abs() < 0.01, "{i}: {share} vs {want}");
    }
}

#[test]
fn no_eligible_member_fails_over_one_hop() {
    let mut a = cluster("a", vec![m4(1, 1, 1), m4(2, 1, 1)]);
    a.failover = Some(label("b"));
    a.max_answers = Some(2);
    a.degraded_ttl = Some(10);
    let mut b = cluster("b", vec![m4(11, 5, 1), m4(12, 1, 2)]);
    b.failover = Some(label("c"));
    b.max_answers = Some(1);
    let c = cluster("c", vec![m4(21, 1, 1)]);
    let all = [a.clone(), b.clone(), c.clone()];

    // a's addresses all down: b's answer (its best group, its max_answers), degraded.
    let ch = choose(&a, &all, &view(&[down("a", 1), down("a", 2)]));
    assert_eq!(addrs(&ch.a), [11]);
    assert_eq!(ch.a.weights(), [5]);
    assert_eq!(ch.a.max_answers, Some(1));
    let s = ch.a.status;
    assert!(s.failing_over && s.degraded && !s.failed_open);
    assert_eq!((s.eligible, s.down), (0, 2));
    assert_eq!(ch.a.ttl(300), 10);
    // b's own health decides b's part: its group 1 down, group 2.
    let ch = choose(
        &a,
        &all,
        &view(&[down("a", 1), down("a", 2), down("b", 11)]),
    );
    assert_eq!(addrs(&ch.a), [12]);
    // The same address under a's name says nothing about b.
    let ch = choose(
        &a,
        &all,
        &view(&[down("a", 1), down("a", 2), down("a", 11)]),
    );
    assert_eq!(addrs(&ch.a), [11]);

    // b down too: not c (one hop), but every member of a (fail open).
    let ch = choose(
        &a,
        &all,
        &view(&[down("a", 1), down("a", 2), down("b", 11), down("b", 12)]),
    );
    assert_eq!(addrs(&ch.a), [1, 2]);
    assert_eq!(ch.a.max_answers, Some(2));
    let s = ch.a.status;
    assert!(s.failed_open && s.degraded && !s.failing_over);
    // b itself, down, does fail over to c.
    let ch = choose(&b, &all, &view(&[down("b", 11), down("b", 12)]));
    assert_eq!(addrs(&ch.a), [21]);
}

#[test]
fn failover_cycles_do_not_loop() {
    // The configuration check rejects cycles; the policy stops after one hop regardless.
    let mut a = cluster("a", vec![m4(1, 1, 1)]);
    a.failover = Some(label("b"));
    let mut b = cluster("b", vec![m4(2, 1, 1)]);
    b.failover = Some(label("a"));
    let all = [a.clone(), b.clone()];
    let ch = choose(&a, &all, &view(&[down("a", 1), down("b", 2)]));
    assert_eq!(addrs(&ch.a), [1]);
    assert!(ch.a.status.failed_open);
    // A failover naming no configured cluster: as if there were none.
    let mut lone = cluster("lone", vec![m4(9, 1, 1)]);
    lone.failover = Some(label("gone"));
    let ch = choose(
        &lone,
        std::slice::from_ref(&lone),
        &view(&[down("lone", 9)]),
    );
    assert_eq!(addrs(&ch.a), [9]);
    assert!(ch.a.status.failed_open);
}

#[test]
fn unknown_and_stale_state_fails_open_everything_down_too() {
    let c = cluster("c", vec![m4(1, 1, 1), m4(2, 1, 2)]);
    let all = [c.clone()];
    // Unknown (no fresh report, a tie) is answered: group 1.
    let ch = choose(
        &c,
        &all,
        &view(&[("c", IpAddr::V4(v4(1)), AddrState::Unknown), down("c", 2)]),
    );
    assert_eq!(addrs(&ch.a), [1]);
    // Everything down, no failover: every member, whatever its group, degraded.
    let ch = choose(&c, &all, &view(&[down("c", 1), down("c", 2)]));
    assert_eq!(addrs(&ch.a), [1, 2]);
    assert!(ch.a.status.failed_open && ch.a.status.degraded);
}

#[test]
fn degraded_answers_get_the_degraded_ttl_or_half() {
    let mut c = cluster("c", vec![m4(1, 1, 1), m4(2, 1, 1)]);
    let all = [c.clone()];
    let ch = choose(&c, &all, &view(&[down("c", 2)]));
    assert_eq!(ch.a.ttl(300), 150);
    assert_eq!(ch.a.ttl(1), 0);
    c.degraded_ttl = Some(20);
    let ch = choose(&c, &all, &view(&[down("c", 2)]));
    assert_eq!(ch.a.ttl(300), 20);
    // Healthy again: the zone's TTL.
    let ch = choose(&c, &all, &view(&[up("c", 2)]));
    assert_eq!(ch.a.ttl(300), 300);
}

#[test]
fn a_and_aaaa_are_chosen_independently() {
    let mut a = ClusterConfig::plain(label("a"), &[v4(1), v4(2)], &[v6(1), v6(2)]);
    a.failover = Some(label("b"));
    let b = ClusterConfig::plain(label("b"), &[v4(11)], &[v6(11)]);
    let all = [a.clone(), b.clone()];
    let v6down = |last| ("a", IpAddr::V6(v6(last)), AddrState::Down);
    // Every AAAA address down: AAAA fails over, A is untouched.
    let ch = choose(&a, &all, &view(&[v6down(1), v6down(2)]));
    assert_eq!(addrs(&ch.a), [1, 2]);
    assert!(!ch.a.status.degraded);
    assert_eq!(ch.a.ttl(300), 300);
    assert_eq!(
        ch.aaaa.members.iter().map(|m| m.addr).collect::<Vec<_>>(),
        [v6(11)]
    );
    assert!(ch.aaaa.status.failing_over);
    assert_eq!(ch.aaaa.ttl(300), 150);
    assert!(ch.status().degraded());
    // One A address down: only A is degraded.
    let ch = choose(&a, &all, &view(&[down("a", 1)]));
    assert_eq!(addrs(&ch.a), [2]);
    assert_eq!(ch.aaaa.members.len(), 2);
    assert!(ch.a.status.degraded && !ch.aaaa.status.degraded);
}

#[test]
fn a_family_without_members_answers_nothing_and_does_not_fail_over() {
    let mut a = ClusterConfig::plain(label("a"), &[v4(1)], &[]);
    a.failover = Some(label("b"));
    let b = ClusterConfig::plain(label("b"), &[v4(11)], &[v6(11)]);
    let ch = choose(&a, &[a.clone(), b], &HealthView::none());
    assert!(ch.aaaa.members.is_empty());
    assert_eq!(ch.aaaa.status, FamilyStatus::default());
}
