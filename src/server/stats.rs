//! Per-worker counters and latency buckets: written only by their own thread (plain load +
//! store, no locked instruction, each worker on its own cache lines) and summed only when
//! scraped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use domain::base::iana::{OptRcode, Rtype};

use crate::query::{Response, Transport};

/// Response codes counted individually (0..=5, 16 = BADVERS at index 6); others go to 7.
pub const RCODES: usize = 8;
/// The rcode label of each counter.
pub const RCODE_NAMES: [&str; RCODES] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "OTHER",
];
/// Query types counted individually; the last counter is every other type.
pub const QTYPES: [(Rtype, &str); 10] = [
    (Rtype::A, "A"),
    (Rtype::AAAA, "AAAA"),
    (Rtype::ANY, "ANY"),
    (Rtype::SOA, "SOA"),
    (Rtype::NS, "NS"),
    (Rtype::MX, "MX"),
    (Rtype::TXT, "TXT"),
    (Rtype::CNAME, "CNAME"),
    (Rtype::CAA, "CAA"),
    (Rtype::from_int(0), "OTHER"),
];
/// Latency buckets: 4 per power of two from 1 ns up.
pub const BUCKETS: usize = 252;

/// The bucket of a latency in nanoseconds.
#[inline]
pub fn bucket(ns: u64) -> usize {
    if ns < 4 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros() as usize;
    let mantissa = ((ns >> (e - 2)) & 3) as usize;
    4 + (e - 2) * 4 + mantissa
}

/// The smallest latency (ns) that falls in bucket `b`.
pub fn bucket_floor(b: usize) -> u64 {
    if b < 4 {
        return b as u64;
    }
    let e = (b - 4) / 4 + 2;
    let mantissa = ((b - 4) % 4) as u64;
    (4 + mantissa) << (e - 2)
}

/// One worker's counters.
#[repr(align(128))]
#[derive(Debug)]
pub struct WorkerStats {
    pub transport: Transport,
    /// Packets received.
    pub received: AtomicU64,
    /// Packets dropped without an answer (too short, or responses).
    pub dropped: AtomicU64,
    /// Responses by rcode.
    pub rcodes: [AtomicU64; RCODES],
    /// Queries by type (well-formed ones).
    pub qtypes: [AtomicU64; QTYPES.len()],
    /// Responses sent with TC set.
    pub truncated: AtomicU64,
    /// Datagrams longer than the receive buffer.
    pub oversized: AtomicU64,
    /// Responses the kernel refused to send.
    pub send_errors: AtomicU64,
    /// Responses withheld or truncated by response rate limiting.
    pub rate_limited: AtomicU64,
    /// Query handling time (receive to send), per query, in [`bucket`]s.
    pub latency: [AtomicU64; BUCKETS],
    /// The sum of the handling times counted in `latency`, in nanoseconds.
    pub latency_sum_ns: AtomicU64,
    /// TCP: connections accepted, refused over the cap, open now.
    pub tcp_accepted: AtomicU64,
    pub tcp_refused: AtomicU64,
    /// TCP connections closed to make room for a new one (the idlest, at the cap).
    pub tcp_evicted: AtomicU64,
    /// TCP connections closed because a message took too long to arrive.
    pub tcp_timed_out: AtomicU64,
    pub tcp_open: AtomicU64,
    /// UPDATE messages handed to the update thread (counted in `received` too).
    pub updates: AtomicU64,
    /// UPDATE messages answered SERVFAIL because the update queue was full.
    pub update_queue_full: AtomicU64,
    /// TCP: update answers whose connection had closed meanwhile (dropped quietly).
    pub update_answers_lost: AtomicU64,
}

#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    add(c, 1);
}

#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    // Single writer: a plain read-modify-write is enough and costs no locked instruction.
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl WorkerStats {
    /// Zeroed counters for a worker of `transport`.
    pub fn new(transport: Transport) -> WorkerStats {
        WorkerStats {
            transport,
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rcodes: Default::default(),
            qtypes: Default::default(),
            truncated: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            tcp_accepted: AtomicU64::new(0),
            tcp_refused: AtomicU64::new(0),
            tcp_evicted: AtomicU64::new(0),
            tcp_timed_out: AtomicU64::new(0),
            tcp_open: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            update_queue_full: AtomicU64::new(0),
            update_answers_lost: AtomicU64::new(0),
        }
    }

    /// Counts one handled packet.
    #[inline]
    pub fn record(&self, h: &Response, oversized: bool) {
        bump(&self.received);
        if oversized {
            bump(&self.oversized);
        }
        if let Some(qt) = h.qtype {
            let i = QTYPES
                .iter()
                .position(|&(t, _)| t == qt)
                .unwrap_or(QTYPES.len() - 1);
            bump(&self.qtypes[i]);
        }
        match h.rcode {
            None => bump(&self.dropped),
            Some(rc) => {
                bump(&self.rcodes[rcode_index(rc)]);
                if h.truncated {
                    bump(&self.truncated);
                }
            }
        }
    }

    /// Records that `n` queries took `ns` nanoseconds each to handle.
    #[inline]
    pub fn record_latency(&self, ns: u64, n: u64) {
        add(&self.latency[bucket(ns)], n);
        add(&self.latency_sum_ns, ns.saturating_mul(n));
    }

    /// Counts a response sent with `rcode` outside [`record`](WorkerStats::record) (the
    /// SERVFAIL of an UPDATE the update queue had no room for).
    pub fn responded(&self, rcode: OptRcode) {
        bump(&self.rcodes[rcode_index(rcode)]);
    }

    /// Counts a response the kernel would not send.
    pub fn send_error(&self) {
        bump(&self.send_errors);
    }

    /// Responses sent with `rcode`.
    pub fn responses(&self, rcode: OptRcode) -> u64 {
        self.rcodes[rcode_index(rcode)].load(Relaxed)
    }
}

/// The counter of `rcode` (see [`RCODE_NAMES`]).
fn rcode_index(rcode: OptRcode) -> usize {
    match rcode {
        OptRcode::NOERROR => 0,
        OptRcode::FORMERR => 1,
        OptRcode::SERVFAIL => 2,
        OptRcode::NXDOMAIN => 3,
        OptRcode::NOTIMP => 4,
        OptRcode::REFUSED => 5,
        OptRcode::BADVERS => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_invert() {
        let mut last = 0;
        for ns in [0u64, 1, 3, 4, 5, 7, 8, 100, 1000, 12_345, 1 << 40, u64::MAX] {
            let b = bucket(ns);
            assert!(b >= last, "{ns}");
            assert!(b < BUCKETS);
            assert!(bucket_floor(b) <= ns, "{ns}");
            if b + 1 < BUCKETS {
                assert!(bucket_floor(b + 1) > ns, "{ns}");
            }
            last = b;
        }
    }

    #[test]
    fn counts_by_rcode_and_type() {
        let s = WorkerStats::new(Transport::Udp);
        let h = Response {
            len: 40,
            rcode: Some(OptRcode::NXDOMAIN),
            qtype: Some(Rtype::AAAA),
            truncated: false,
            class: crate::query::ResponseClass::NxDomain,
            question_end: 20,
        };
        s.record(&h, false);
        s.record(&Response::DROPPED, false);
        assert_eq!(s.received.load(Relaxed), 2);
        assert_eq!(s.responses(OptRcode::NXDOMAIN), 1);
        assert_eq!(s.dropped.load(Relaxed), 1);
        assert_eq!(s.qtypes[1].load(Relaxed), 1);
    }
}
