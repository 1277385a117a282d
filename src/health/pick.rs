//! Weighted picks of `k` of a cluster's `n` answer addresses without replacement, in fixed
//! arrays (no allocation), and the per-thread random numbers the query path chooses among
//! precomputed picks with (no lock).
//!
//! A pick draws one address at a time, each with the probability of its weight among the
//! weights not drawn yet (the "successive sampling" of weighted sampling without
//! replacement): the first address of an answer follows the weights, and an address never
//! appears twice. [`pick`] draws with random bits (the reference); [`Pick::table`] draws a
//! fixed number of picks with evenly spread numbers instead (a low-discrepancy sequence), so
//! that a table of them, chosen from uniformly per query, follows the same distribution: the
//! first address's share within `1 / entries` of its weight's. The snapshot pre-encodes each
//! entry of that table; a query takes one ([`index`]), and so costs what a plain answer costs
//! plus one random number.

use std::cell::Cell;

use crate::config::MAX_ADDRESSES;

/// The most records one [`Picked`] can name.
pub const MAX_PICKED: usize = 64;

const _: () = assert!(MAX_ADDRESSES <= MAX_PICKED && MAX_ADDRESSES <= u8::MAX as usize);

/// Some records of a set, by index, in the order they are to be written (one weighted pick
/// from a cluster's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked {
    idx: [u8; MAX_PICKED],
    n: u8,
}

impl Picked {
    /// No record.
    pub const EMPTY: Picked = Picked {
        idx: [0; MAX_PICKED],
        n: 0,
    };

    /// Adds record `i`; ignored when [`MAX_PICKED`] are named already.
    #[inline]
    pub fn push(&mut self, i: u8) {
        if usize::from(self.n) < MAX_PICKED {
            self.idx[usize::from(self.n)] = i;
            self.n += 1;
        }
    }

    /// The record indexes, in order.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.idx[..usize::from(self.n)]
    }

    /// How many records are named.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.n)
    }

    /// Whether no record is named.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// A small, fast, non-cryptographic generator (wyrand): what a pick needs, not for secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (every seed is fine, 0 included).
    #[inline]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A number in `0..bound` (`bound` above 0).
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        scale(self.next_u64(), bound)
    }
}

/// `fraction` (a number in [0, 1) in 64-bit fixed point) times `bound`, rounded down: a
/// number in `0..bound` (the multiply-shift reduction, whose bias for random bits is below
/// 2^-40 for the totals of at most 64 weights of at most 65,535).
#[inline]
fn scale(fraction: u64, bound: u64) -> u64 {
    ((u128::from(fraction) * u128::from(bound)) >> 64) as u64
}

/// Which of `len` precomputed picks a query takes, from its random bits `random` (`len`
/// above 0; every index equally likely).
#[inline]
pub fn index(random: u64, len: usize) -> usize {
    scale(random, len as u64) as usize
}

/// What an answer is picked from: the weights of a cluster's answer records (in the set's
/// order) and how many records an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    weights: [u32; MAX_ADDRESSES],
    total: u64,
    n: u8,
    k: u8,
}

impl Pick {
    /// A pick of `k` of the records whose weights are `weights` (at most [`MAX_ADDRESSES`]
    /// are read); `None` when `k` covers them all (every answer is the whole set).
    pub fn new(weights: &[u32], k: usize) -> Option<Pick> {
        let n = weights.len().min(MAX_ADDRESSES);
        if k >= n {
            return None;
        }
        let mut w = [0u32; MAX_ADDRESSES];
        w[..n].copy_from_slice(&weights[..n]);
        Some(Pick {
            weights: w,
            total: weights[..n].iter().map(|&w| u64::from(w)).sum(),
            n: n as u8,
            k: k as u8,
        })
    }

    /// The weights, one per record.
    pub fn weights(&self) -> &[u32] {
        &self.weights[..usize::from(self.n)]
    }

    /// How many records an answer carries.
    pub fn k(&self) -> usize {
        usize::from(self.k)
    }

    /// The records of one answer, drawn with the random bits `random` (the reference the
    /// table is checked against).
    pub fn draw(&self, random: u64) -> Picked {
        let mut rng = Rng::new(random);
        pick_with(self.weights(), self.total, self.k(), |_, bound| {
            rng.below(bound)
        })
    }

    /// `entries` picks (at least one) drawn with evenly spread numbers instead of random
    /// ones: entry `j` draws its first record with the number `(j + 1/2) / entries`, so the
    /// first records' shares are the weights' shares to within `1 / entries`; its later
    /// draws use Kronecker sequences (`j` times the fractional part of the square root of a
    /// prime), which spread the later records over each first one evenly too. Equal
    /// arguments, equal tables: every edge precomputes the same.
    pub fn table(&self, entries: usize) -> Vec<Picked> {
        let entries = entries.max(1);
        let steps = kronecker_steps();
        (0..entries)
            .map(|j| {
                let first = (((2 * j as u128 + 1) << 64) / (2 * entries as u128)) as u64;
                let at = j as u64 + 1;
                pick_with(self.weights(), self.total, self.k(), |d, bound| {
                    let u = if d == 0 {
                        first
                    } else {
                        (1u64 << 63).wrapping_add(at.wrapping_mul(steps[d]))
                    };
                    scale(u, bound)
                })
            })
            .collect()
    }
}

/// Per draw `d` after the first: the fractional part of the square root of the `d`-th
/// prime, in 64-bit fixed point (badly approximable numbers, independent of each other).
fn kronecker_steps() -> [u64; MAX_PICKED] {
    let mut steps = [0u64; MAX_PICKED];
    let mut p = 1u64;
    for step in steps.iter_mut().skip(1) {
        p += 1;
        while (2..p)
            .take_while(|q| q * q <= p)
            .any(|q| p.is_multiple_of(q))
        {
            p += 1;
        }
        let root = (p as f64).sqrt();
        *step = ((root - root.floor()) * 2f64.powi(64)) as u64;
    }
    steps
}

/// Picks `k` of the indexes `0..weights.len()` (at most [`MAX_ADDRESSES`] are read) by weight,
/// without replacement, with the random bits `random`: each draw takes an index with the
/// probability of its weight among those not drawn yet. Indexes of weight 0 come only when
/// nothing else is left, in order. `k` at or above the number of weights: every index, in
/// order. A pure function: equal arguments, equal picks.
pub fn pick(weights: &[u32], k: usize, random: u64) -> Picked {
    let weights = &weights[..weights.len().min(MAX_ADDRESSES)];
    let total = weights.iter().map(|&w| u64::from(w)).sum();
    let mut rng = Rng::new(random);
    pick_with(weights, total, k, |_, bound| rng.below(bound))
}

/// [`pick`] of at most [`MAX_ADDRESSES`] weights whose sum is `total`, draw `d` taking the
/// number `below(d, bound)` in `0..bound` for the sum `bound` of the weights left.
fn pick_with(
    weights: &[u32],
    mut total: u64,
    k: usize,
    mut below: impl FnMut(usize, u64) -> u64,
) -> Picked {
    let n = weights.len();
    let mut out = Picked::EMPTY;
    if k >= n {
        for i in 0..n {
            out.push(i as u8);
        }
        return out;
    }
    // Bit i: index i is taken (its weight no longer counts).
    let mut taken = 0u64;
    let left = |i: usize, taken: u64| {
        if taken & (1 << i) != 0 {
            0
        } else {
            u64::from(weights[i])
        }
    };
    for d in 0..k {
        let i = if total == 0 {
            // Only weight-0 indexes are left: the first not taken.
            (0..n).find(|&i| taken & (1 << i) == 0).unwrap_or(0)
        } else {
            // r < the sum of what is left, so the walk stops at an index not taken with a
            // weight above 0.
            let mut r = below(d, total).min(total - 1);
            let mut i = 0;
            while i + 1 < n && r >= left(i, taken) {
                r -= left(i, taken);
                i += 1;
            }
            i
        };
        total -= left(i, taken);
        taken |= 1 << i;
        out.push(i as u8);
    }
    out
}

thread_local! {
    /// This thread's generator state; 0 until its first draw seeds it.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// 64 random bits from this thread's generator: no lock, no allocation (seeded on a
/// thread's first call from the standard library's per-process random keys, the thread and
/// the time).
#[inline]
pub fn random() -> u64 {
    STATE.with(|s| {
        let mut state = s.get();
        if state == 0 {
            state = seed();
        }
        let mut rng = Rng(state);
        let r = rng.next_u64();
        s.set(rng.0);
        r
    })
}

#[cold]
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::thread::current().id().hash(&mut h);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .hash(&mut h);
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAWS: u64 = 100_000;

    /// How often each index comes first over [`DRAWS`] picks of `k`.
    fn first_counts(weights: &[u32], k: usize) -> Vec<u64> {
        let mut seeds = Rng::new(7);
        let mut counts = vec![0u64; weights.len()];
        for _ in 0..DRAWS {
            let p = pick(weights, k, seeds.next_u64());
            counts[usize::from(p.as_slice()[0])] += 1;
        }
        counts
    }

    fn assert_shares(counts: &[u64], weights: &[u32]) {
        let sum: u32 = weights.iter().sum();
        let draws: u64 = counts.iter().sum();
        for (i, (&c, &w)) in counts.iter().zip(weights).enumerate() {
            let share = c as f64 / draws as f64;
            let want = f64::from(w) / f64::from(sum);
            assert!(
                (share - want).abs() < 0.01,
                "index {i}: share {share:.4}, weight share {want:.4} ({counts:?})"
            );
        }
    }

    /// The probability that successive sampling by `weights` draws `i` and then `j`.
    fn pair_probability(weights: &[u32], i: usize, j: usize) -> f64 {
        let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let (wi, wj) = (f64::from(weights[i]), f64::from(weights[j]));
        wi / sum * wj / (sum - wi)
    }

    #[test]
    fn one_of_four_follows_the_weights_within_one_point() {
        let w = [1, 2, 3, 4];
        assert_shares(&first_counts(&w, 1), &w);
    }

    #[test]
    fn the_first_of_two_follows_the_weights_and_none_repeats() {
        let w = [1, 2, 3, 4];
        assert_shares(&first_counts(&w, 2), &w);
        let mut seeds = Rng::new(11);
        let mut pairs = [[0u64; 4]; 4];
        for _ in 0..DRAWS {
            let p = pick(&w, 2, seeds.next_u64());
            let s = p.as_slice();
            assert_eq!(s.len(), 2);
            assert_ne!(s[0], s[1], "drawn twice");
            pairs[usize::from(s[0])][usize::from(s[1])] += 1;
        }
        // The second draw follows the weights left: after index 3 (weight 4), index 2 comes
        // with 3/6.
        let after3: u64 = pairs[3].iter().sum();
        let share = pairs[3][2] as f64 / after3 as f64;
        assert!((share - 0.5).abs() < 0.02, "{share} ({pairs:?})");
    }

    #[test]
    fn many_addresses_and_large_weights() {
        let w: Vec<u32> = (1..=MAX_ADDRESSES as u32).map(|i| i * 1000).collect();
        let mut seeds = Rng::new(3);
        let mut counts = [0u64; MAX_ADDRESSES];
        for _ in 0..DRAWS {
            let p = pick(&w, 5, seeds.next_u64());
            let s = p.as_slice();
            assert_eq!(s.len(), 5);
            for (j, a) in s.iter().enumerate() {
                assert!(!s[..j].contains(a), "{s:?}");
            }
            counts[usize::from(s[0])] += 1;
        }
        assert_shares(&counts, &w);
    }

    #[test]
    fn k_at_or_above_n_is_every_index_in_order() {
        assert_eq!(pick(&[5, 1, 0], 3, 99).as_slice(), &[0, 1, 2]);
        assert_eq!(pick(&[5, 1], 7, 99).as_slice(), &[0, 1]);
        assert_eq!(pick(&[], 1, 99).as_slice(), &[] as &[u8]);
        assert_eq!(Pick::new(&[1, 2], 2), None);
        let p = Pick::new(&[1, 2, 3], 2).unwrap();
        assert_eq!((p.weights(), p.k()), (&[1, 2, 3][..], 2));
        assert_eq!(p.draw(5), pick(&[1, 2, 3], 2, 5), "the same draw");
    }

    #[test]
    fn weight_zero_comes_only_when_nothing_else_is_left() {
        let mut seeds = Rng::new(5);
        for _ in 0..1000 {
            let p = pick(&[0, 3, 0, 1], 2, seeds.next_u64());
            let mut s = p.as_slice().to_vec();
            s.sort();
            assert_eq!(s, [1, 3]);
            let p = pick(&[0, 3, 0, 1], 3, seeds.next_u64());
            assert_eq!(p.as_slice()[2], 0, "the first weight-0 index fills up");
        }
        for p in Pick::new(&[0, 3, 0, 1], 2).unwrap().table(256) {
            let mut s = p.as_slice().to_vec();
            s.sort();
            assert_eq!(s, [1, 3], "table");
        }
    }

    #[test]
    fn a_pick_is_a_pure_function_of_its_random_bits() {
        let w = [1, 1, 1, 1, 1, 1];
        assert_eq!(pick(&w, 3, 42), pick(&w, 3, 42));
        let distinct: std::collections::HashSet<Vec<u8>> = (0..200)
            .map(|r| pick(&w, 3, r).as_slice().to_vec())
            .collect();
        assert!(distinct.len() > 50, "rotation: {} distinct", distinct.len());
    }

    #[test]
    fn a_table_has_the_first_records_shares_to_within_one_entry() {
        for (w, k, entries) in [
            (vec![1u32, 2, 3, 4], 1, 1024),
            (vec![1, 2, 3, 4], 2, 1024),
            (vec![65_535, 1, 1, 1, 1], 2, 64),
            (
                (1..=MAX_ADDRESSES as u32).map(|i| i * 1000).collect(),
                5,
                256,
            ),
        ] {
            let table = Pick::new(&w, k).unwrap().table(entries);
            assert_eq!(table.len(), entries);
            let sum: f64 = w.iter().map(|&w| f64::from(w)).sum();
            let mut counts = vec![0usize; w.len()];
            for p in &table {
                let s = p.as_slice();
                assert_eq!(s.len(), k);
                for (j, a) in s.iter().enumerate() {
                    assert!(!s[..j].contains(a), "drawn twice: {s:?}");
                }
                counts[usize::from(s[0])] += 1;
            }
            for (i, &c) in counts.iter().enumerate() {
                let share = c as f64 / entries as f64;
                let want = f64::from(w[i]) / sum;
                assert!(
                    (share - want).abs() <= 1.0 / entries as f64 + 1e-9,
                    "{w:?} k {k}: index {i} share {share}, weight share {want}"
                );
            }
        }
    }

    #[test]
    fn a_table_draws_pairs_as_the_random_pick_does() {
        let w = [1u32, 2, 3, 4];
        let table = Pick::new(&w, 2).unwrap().table(1024);
        let mut pairs = [[0usize; 4]; 4];
        for p in &table {
            pairs[usize::from(p.as_slice()[0])][usize::from(p.as_slice()[1])] += 1;
        }
        for i in 0..4 {
            for j in 0..4 {
                let share = pairs[i][j] as f64 / table.len() as f64;
                let want = if i == j {
                    0.0
                } else {
                    pair_probability(&w, i, j)
                };
                assert!(
                    (share - want).abs() < 0.005,
                    "{i} then {j}: {share:.4}, successive sampling {want:.4} ({pairs:?})"
                );
            }
        }
        // Three of six equal weights: every one of the 120 ordered triples appears.
        let table = Pick::new(&[1; 6], 3).unwrap().table(1024);
        let distinct: std::collections::HashSet<Vec<u8>> =
            table.iter().map(|p| p.as_slice().to_vec()).collect();
        assert_eq!(distinct.len(), 120);
        assert_eq!(
            table,
            Pick::new(&[1; 6], 3).unwrap().table(1024),
            "a pure function"
        );
    }

    #[test]
    fn an_index_covers_the_table_evenly() {
        assert_eq!(index(0, 7), 0);
        assert_eq!(index(u64::MAX, 7), 6);
        let mut seeds = Rng::new(1);
        let mut counts = [0u64; 10];
        for _ in 0..DRAWS {
            counts[index(seeds.next_u64(), 10)] += 1;
        }
        assert!(
            counts.iter().all(|&c| c.abs_diff(DRAWS / 10) < 500),
            "{counts:?}"
        );
    }

    #[test]
    fn picked_holds_at_most_its_capacity() {
        let mut p = Picked::EMPTY;
        assert!(p.is_empty());
        for i in 0..100u8 {
            p.push(i);
        }
        assert_eq!(p.len(), MAX_PICKED);
        assert_eq!(p.as_slice()[MAX_PICKED - 1], (MAX_PICKED - 1) as u8);
    }

    #[test]
    fn the_thread_generator_varies() {
        let a: Vec<u64> = (0..8).map(|_| random()).collect();
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 8);
        let other = std::thread::spawn(random).join().unwrap();
        assert!(!a.contains(&other));
    }
}
