//! Receive coalescing for the UDP workers (and the floor responder): while datagrams keep
//! arriving without filling a batch, a worker waits a few microseconds before its next
//! receive, so that one wake-up collects several datagrams (interrupt moderation, as network
//! cards do it). A worker whose traffic is sparse is not delayed: it still blocks in the
//! kernel and answers each datagram as it comes.

use std::time::{Duration, Instant};

/// Decides, after each batch, whether to wait before the next receive.
#[derive(Debug)]
pub struct Coalescer {
    wait: Duration,
    last: Option<Instant>,
}

impl Coalescer {
    /// Waits of `wait_us` microseconds (0: never wait). Sets the calling thread's timer slack
    /// to a tenth of that, so the waits are about as long as asked.
    pub fn new(wait_us: u32) -> Coalescer {
        if wait_us > 0 {
            crate::os::set_timer_slack(u64::from(wait_us) * 100);
        }
        Coalescer {
            wait: Duration::from_micros(u64::from(wait_us)),
            last: None,
        }
    }

    /// Whether to wait, after a batch of `n` datagrams (of at most `batch`) ended at `now`:
    /// yes when the batch was not full and the arrival rate since the previous batch
    /// (`n` over the gap) would bring at least one more datagram during the wait.
    pub fn should_wait(&mut self, n: usize, batch: usize, now: Instant) -> bool {
        let last = self.last.replace(now);
        if self.wait.is_zero() || n >= batch {
            return false;
        }
        match last {
            // rate * wait >= 1  <=>  gap <= n * wait
            Some(l) => now.saturating_duration_since(l) <= self.wait * n as u32,
            None => false,
        }
    }

    /// Waits if `should_wait` says so.
    pub fn after_batch(&mut self, n: usize, batch: usize) {
        if self.wait.is_zero() {
            return;
        }
        if self.should_wait(n, batch, Instant::now()) {
            std::thread::sleep(self.wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, us: u64) -> Instant {
        base + Duration::from_micros(us)
    }

    #[test]
    fn off_never_waits() {
        let mut c = Coalescer::new(0);
        let t = Instant::now();
        assert!(!c.should_wait(1, 32, at(t, 0)));
        assert!(!c.should_wait(1, 32, at(t, 1)));
    }

    #[test]
    fn waits_only_while_traffic_is_dense() {
        let mut c = Coalescer::new(100);
        let t = Instant::now();
        // The first batch has no rate to go by.
        assert!(!c.should_wait(1, 32, at(t, 0)));
        // 1 datagram 20 us later: 50k/s, 5 expected in 100 us.
        assert!(c.should_wait(1, 32, at(t, 20)));
        // 5 datagrams 150 us later: ~33k/s, still dense.
        assert!(c.should_wait(5, 32, at(t, 170)));
        // 1 datagram 2 ms later: 500/s, would not gain anything: answer at once.
        assert!(!c.should_wait(1, 32, at(t, 2170)));
        // A full batch: more is waiting already.
        assert!(!c.should_wait(32, 32, at(t, 2171)));
        // Boundary: 1 datagram after exactly the wait still waits, just after does not.
        assert!(c.should_wait(1, 32, at(t, 2271)));
        assert!(!c.should_wait(1, 32, at(t, 2372)));
    }
}
