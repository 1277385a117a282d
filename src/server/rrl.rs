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

pub use crate::config::RrlConfig;

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

/// The response class of an encoded response.
fn class(resp: &[u8]) -> u64 {
    let rcode = resp[3] & 0x0f;
    let ancount = u16::from_be_bytes([resp[6], resp[7]]);
    match (rcode, ancount) {
        (0, n) if n > 0 => 0,
        (0, _) => 1,
        (3, _) => 2,
        _ => 3,
    }
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

    /// Counts the response `resp` to `client` at second `now` and says what to do with it.
    #[inline]
    pub fn check(&mut self, client: SocketAddr, resp: &[u8], now: u32) -> Verdict {
        let net = network(client.ip(), &self.cfg);
        let key = crate::table::hash_key(&(net ^ u128::from(class(resp)) << 120).to_le_bytes()) | 1;
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
        if self.cfg.slip > 0 && b.limited % self.cfg.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// Cuts an encoded response down to its header and question with TC set; returns the new
/// length.
pub fn truncate(resp: &mut [u8], len: usize) -> usize {
    let mut pos = 12;
    while pos < len && resp[pos] != 0 {
        pos += 1 + usize::from(resp[pos]);
    }
    let end = (pos + 5).min(len);
    resp[2] |= 0x02;
    resp[6..12].fill(0);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(rcode: u8, ancount: u16) -> Vec<u8> {
        let mut r = vec![0u8; 12];
        r[3] = rcode;
        r[6..8].copy_from_slice(&ancount.to_be_bytes());
        r.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        r
    }

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
        let hit = resp(0, 1);
        let nx = resp(3, 0);
        let verdicts: Vec<_> = (0..10).map(|_| rrl.check(a, &hit, 100)).collect();
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
        assert_ne!(rrl.check(same_net, &hit, 100), Verdict::Send);
        assert_eq!(rrl.check(other, &hit, 100), Verdict::Send);
        assert_eq!(rrl.check(a, &nx, 100), Verdict::Send);
        // The next second starts afresh.
        assert_eq!(rrl.check(a, &hit, 101), Verdict::Send);
        assert!(Rrl::new(RrlConfig::default()).is_none());
    }

    #[test]
    fn truncation_keeps_the_question() {
        let mut r = resp(0, 1);
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
        let len = r.len();
        let n = truncate(&mut r, len);
        assert_eq!(n, 12 + 3 + 4);
        assert_eq!(r[2] & 0x02, 0x02);
        assert_eq!(&r[6..12], &[0; 6]);
    }
}
