//! Flap damping: an address's reported state changes only after `rise` successful probes in
//! a row (to up) or `fall` failed ones (to down). Before either, it is unknown.

use crate::health::view::AddrState;

/// The rise/fall state of one address.
#[derive(Debug, Clone)]
pub struct Flap {
    rise: u32,
    fall: u32,
    state: AddrState,
    ups: u32,
    downs: u32,
}

impl Flap {
    /// An address never probed: unknown, no streak. `rise` and `fall` below 1 count as 1.
    pub fn new(rise: u32, fall: u32) -> Flap {
        Flap {
            rise: rise.max(1),
            fall: fall.max(1),
            state: AddrState::Unknown,
            ups: 0,
            downs: 0,
        }
    }

    /// The state as reported (decided by the thresholds).
    pub fn state(&self) -> AddrState {
        self.state
    }

    /// Counts one probe's result; returns the new state when the reported state changes.
    pub fn observe(&mut self, up: bool) -> Option<AddrState> {
        let next = if up {
            self.downs = 0;
            self.ups = self.ups.saturating_add(1);
            (self.ups >= self.rise).then_some(AddrState::Up)
        } else {
            self.ups = 0;
            self.downs = self.downs.saturating_add(1);
            (self.downs >= self.fall).then_some(AddrState::Down)
        }?;
        if next == self.state {
            return None;
        }
        self.state = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddrState::*;

    /// The changes a sequence of probe results produces, as (index, new state).
    fn run(flap: &mut Flap, probes: &[bool]) -> Vec<(usize, AddrState)> {
        probes
            .iter()
            .enumerate()
            .filter_map(|(i, &up)| flap.observe(up).map(|s| (i, s)))
            .collect()
    }

    #[test]
    fn starts_unknown_and_decides_after_rise_or_fall() {
        let mut f = Flap::new(2, 3);
        assert_eq!(f.state(), Unknown);
        assert_eq!(run(&mut f, &[true]), vec![]);
        assert_eq!(f.state(), Unknown);
        assert_eq!(run(&mut f, &[true]), vec![(0, Up)]);
        let mut g = Flap::new(2, 3);
        assert_eq!(run(&mut g, &[false, false, false, false]), vec![(2, Down)]);
        assert_eq!(g.state(), Down);
    }

    #[test]
    fn a_broken_streak_starts_over() {
        let mut f = Flap::new(2, 2);
        assert_eq!(run(&mut f, &[true, true]), vec![(1, Up)]);
        // One failure, one success, one failure: never two in a row, stays up.
        assert_eq!(run(&mut f, &[false, true, false, true]), vec![]);
        assert_eq!(f.state(), Up);
        assert_eq!(run(&mut f, &[false, false]), vec![(1, Down)]);
        // Back up only after `rise` successes in a row.
        assert_eq!(run(&mut f, &[true, false, true, true]), vec![(3, Up)]);
    }

    #[test]
    fn rise_and_fall_one_follow_every_probe() {
        let mut f = Flap::new(1, 1);
        assert_eq!(
            run(&mut f, &[false, true, true, false]),
            vec![(0, Down), (1, Up), (3, Down)]
        );
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut f = Flap::new(0, 0);
        assert_eq!(f.observe(true), Some(Up));
        assert_eq!(f.observe(false), Some(Down));
    }
}
