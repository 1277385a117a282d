//! Per-worker counters: written only by their own thread (plain load + store, no locked
//! instruction, each worker on its own cache lines) and summed only when read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::wire::Handled;

/// Response codes counted individually (0..=5, 16 = BADVERS at index 6); others go to 7.
const RCODES: usize = 8;

/// One worker's counters.
#[repr(align(128))]
#[derive(Default, Debug)]
pub struct WorkerStats {
    /// Packets received.
    pub received: AtomicU64,
    /// Packets dropped without an answer (too short, or responses).
    pub dropped: AtomicU64,
    /// Responses by rcode.
    pub rcodes: [AtomicU64; RCODES],
    /// Responses sent with TC set.
    pub truncated: AtomicU64,
    /// Datagrams longer than the receive buffer.
    pub oversized: AtomicU64,
    /// Responses the kernel refused to send.
    pub send_errors: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64) {
    // Single writer: a plain read-modify-write is enough and costs no locked instruction.
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

impl WorkerStats {
    /// Counts one handled packet.
    #[inline]
    pub fn record(&self, h: &Handled, oversized: bool) {
        bump(&self.received);
        if oversized {
            bump(&self.oversized);
        }
        match h.rcode {
            None => bump(&self.dropped),
            Some(rc) => {
                let i = match rc {
                    0..=5 => usize::from(rc),
                    16 => 6,
                    _ => 7,
                };
                bump(&self.rcodes[i]);
                if h.truncated {
                    bump(&self.truncated);
                }
            }
        }
    }

    /// Counts a response the kernel would not send.
    pub fn send_error(&self) {
        bump(&self.send_errors);
    }

    /// Responses sent with `rcode` (0..=5 or 16).
    pub fn responses(&self, rcode: u16) -> u64 {
        let i = match rcode {
            0..=5 => usize::from(rcode),
            16 => 6,
            _ => 7,
        };
        self.rcodes[i].load(Relaxed)
    }
}
