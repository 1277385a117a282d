//! The shared validity schedule of signatures: time is cut into windows of
//! `window_days`, and every signature made during a window carries the same inception and
//! expiration, whichever edge made it and whenever in the window (PowerDNS's weekly windows).
//! So signatures can be cached for a whole window, and every edge's answers agree on their
//! validity.

/// One window's validity period, as RRSIG fields (RFC 4034 3.1.5: seconds since the epoch,
/// modulo 2^32, serial-number arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The window's number since the epoch (part of every cache key).
    pub id: u32,
    pub inception: u32,
    pub expiration: u32,
}

/// How windows are cut ([`crate::config::DnssecConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A window's length.
    pub window_secs: u64,
    /// From a window's start to its signatures' expiration (longer than the window, so a
    /// signature made at its end is still valid for `validity - window`).
    pub validity_secs: u64,
    /// How long before a window's start its signatures' inception lies (clock skew).
    pub inception_offset_secs: u64,
}

impl Schedule {
    /// The window `now` (seconds since the epoch) lies in.
    #[inline]
    pub fn window(&self, now: u64) -> Window {
        let id = now / self.window_secs.max(1);
        let start = id * self.window_secs.max(1);
        Window {
            id: id as u32,
            inception: start.saturating_sub(self.inception_offset_secs) as u32,
            expiration: (start + self.validity_secs) as u32,
        }
    }
}

/// Seconds since the epoch from the coarse real-time clock (a few ns: read per signed
/// answer).
#[inline]
pub fn now_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE exists on every
    // Linux this runs on, and on failure `ts` stays zero (a window at the epoch, which
    // validators refuse loudly rather than anything silent).
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec.max(0) as u64
}

/// Nanoseconds from the coarse monotonic clock, for the miss limiter.
#[inline]
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as in `now_secs`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec.max(0) as u64 * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Schedule = Schedule {
        window_secs: 7 * 86400,
        validity_secs: 14 * 86400,
        inception_offset_secs: 3600,
    };

    #[test]
    fn every_moment_of_a_window_gets_the_same_validity() {
        let start = 2900 * 7 * 86400;
        let a = WEEK.window(start);
        let b = WEEK.window(start + 7 * 86400 - 1);
        assert_eq!(a, b);
        assert_eq!(a.inception, (start - 3600) as u32);
        assert_eq!(a.expiration, (start + 14 * 86400) as u32);
        let next = WEEK.window(start + 7 * 86400);
        assert_eq!(next.id, a.id + 1);
        // A signature made at the very end of a window is still valid for a week.
        assert!(u64::from(a.expiration) - (start + 7 * 86400) >= 7 * 86400);
    }

    #[test]
    fn the_clock_reads_a_plausible_time() {
        let now = now_secs();
        let std = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(std) <= 1, "{now} vs {std}");
        let m1 = monotonic_nanos();
        let m2 = monotonic_nanos();
        assert!(m2 >= m1);
    }
}
