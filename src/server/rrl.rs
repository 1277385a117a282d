//! Response rate limiting for UDP, after Knot's and BIND's RRL: responses are counted per
//! client network (IPv4 /24, IPv6 /56 by default) and response class (answer, no data,
//! NXDOMAIN, error) in token buckets; over the rate, responses are dropped, except that every
//! `slip`-th one goes out truncated (TC set, no records) so that a real client behind a spoofed
//! flood retries over TCP.
//!
//! Each UDP worker has its own fixed-size table (no sharing, no lock, no allocation after
//! start). A client's packets from one source port reach one worker, so the rate applies per
//! worker: a client spread over all workers' sockets can get `rate` x workers at most.

use std::net::{IpAddr, SocketAddr};

use crate::config::RrlConfig;
use crate::query::ResponseClass;

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated (header and question, TC set).
    Slip,
    Drop,
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    key: u64,
    /// Responses counted in `second`.
    count: u32,
    second: u32,
    /// Limited responses so far (for slip).
    limited: u32,
}

/// One worker's limiter.
pub struct Rrl {
    cfg: RrlConfig,
    buckets: Box<[Bucket]>,
}

fn network(ip: IpAddr, cfg: &RrlConfig) -> u128 {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let keep = u32::from(cfg.ipv4_prefix.min(32));
            let masked = if keep == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - keep))
            };
            u128::from(masked) | 1 << 127
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let keep = u32::from(cfg.ipv6_prefix.min(128));
            if keep == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - keep))
            }
        }
    }
}

impl Rrl {
    /// A limiter, or none when the rate is 0.
    pub fn new(cfg: RrlConfig) -> Option<Rrl> {
        (cfg.rate > 0).then(|| Rrl {
            cfg,
            buckets: vec![Bucket::default(); cfg.table_size.max(64)].into_boxed_slice(),
        })
    }

    /// Counts a response of `class` to `client` at second `now` and says what to do with it.
    #[inline]
    pub fn check(&mut self, client: SocketAddr, class: ResponseClass, now: u32) -> Verdict {
        let net = network(client.ip(), &self.cfg);
        let key = crate::table::hash_key(&(net ^ (class as u128) << 120).to_le_bytes()) | 1;
        let slot = (key % self.buckets.len() as u64) as usize;
        let b = &mut self.buckets[slot];
        if b.key != key || b.second != now {
            // A new second (or a new owner of the slot): start counting afresh.
            let limited = if b.key == key { b.limited } else { 0 };
            *b = Bucket {
                key,
                count: 0,
                second: now,
                limited,
            };
        }
        b.count = b.count.saturating_add(1);
        if b.count <= self.cfg.rate {
            return Verdict::Send;
        }
        b.limited = b.limited.wrapping_add(1);
        if self.cfg.slip > 0 && b.limited.is_multiple_of(self.cfg.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_network_and_class_with_slip() {
        let mut rrl = Rrl::new(RrlConfig {
            rate: 5,
            slip: 2,
            ..RrlConfig::default()
        })
        .unwrap();
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let same_net: SocketAddr = "192.0.2.200:2000".parse().unwrap();
        let other: SocketAddr = "198.51.100.1:1000".parse().unwrap();
        let hit = ResponseClass::Answer;
        let nx = ResponseClass::NxDomain;
        let verdicts: Vec<_> = (0..10).map(|_| rrl.check(a, hit, 100)).collect();
        assert_eq!(&verdicts[..5], &[Verdict::Send; 5]);
        assert_eq!(
            &verdicts[5..],
            &[
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop
            ]
        );
        // Same /24: same bucket. Another network or another class: not limited.
        assert_ne!(rrl.check(same_net, hit, 100), Verdict::Send);
        assert_eq!(rrl.check(other, hit, 100), Verdict::Send);
        assert_eq!(rrl.check(a, nx, 100), Verdict::Send);
        // The next second starts afresh.
        assert_eq!(rrl.check(a, hit, 101), Verdict::Send);
        assert!(Rrl::new(RrlConfig::default()).is_none());
    }
}
