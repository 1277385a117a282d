//! Prefetching for a receive batch: before a worker answers a batch, it reads each query's
//! name just far enough to know which table slot the answer will look up, and asks the CPU to
//! fetch that slot's cache line, then (in a second pass, once the slots have arrived) the
//! record it points to. The lookups of a batch then overlap their memory latency instead of
//! paying it one after another. Hints only: a wrong or missing hint costs a wasted fetch,
//! never a wrong answer, and the answer path itself (`wire::respond`) is unchanged.

use crate::name::MAX_NAME_LEN;
use crate::snapshot::Snapshot;
use crate::table::Lookup;
use crate::zone::Shape;

/// The lowercased question name of a query packet (wire form, with its root label), read
/// without validating the rest of the packet.
fn question_name<'b>(pkt: &[u8], buf: &'b mut [u8; MAX_NAME_LEN]) -> Option<&'b [u8]> {
    let mut at = 12;
    let mut n = 0;
    loop {
        let len = usize::from(*pkt.get(at)?);
        if len & 0xC0 != 0 || n + len + 1 > MAX_NAME_LEN {
            return None;
        }
        let label = pkt.get(at..at + len + 1)?;
        for (d, s) in buf[n..n + len + 1].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        n += len + 1;
        at += len + 1;
        if len == 0 {
            return Some(&buf[..n]);
        }
    }
}

/// The table lookup the answer to `pkt` will make, if it makes one.
pub fn hint(snap: &Snapshot, pkt: &[u8]) -> Option<Lookup> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let name = question_name(pkt, &mut buf)?;
    let (zone, rel_len) = snap.served.find_zone(name)?;
    match zone.classify(&name[..rel_len]) {
        Shape::One(label) => Some(snap.table.lookup_of_one(label)),
        Shape::Two(key) => Some(snap.table.lookup_of_two(key)),
        _ => None,
    }
}

/// The lookups of a batch of up to 32 packets, with their slots being fetched.
pub struct Batch {
    hints: [Option<Lookup>; 32],
}

impl Batch {
    /// Works out each packet's lookup and prefetches its slot.
    pub fn start<'p>(snap: &Snapshot, packets: impl Iterator<Item = &'p [u8]>) -> Batch {
        let mut hints = [None; 32];
        for (h, pkt) in hints.iter_mut().zip(packets) {
            *h = hint(snap, pkt);
            if let Some(l) = h {
                snap.table.prefetch_slot(l);
            }
        }
        Batch { hints }
    }

    /// Prefetches the record of packet `i`'s lookup (after `start`, once its slot is here).
    #[inline]
    pub fn record(&self, snap: &Snapshot, i: usize) {
        if let Some(Some(l)) = self.hints.get(i) {
            snap.table.prefetch_record(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_question_names_and_refuses_odd_ones() {
        let mut pkt = vec![0u8; 12];
        pkt.extend_from_slice(b"\x04GaMe\x04mark\x04repl\x02co\x00\x00\x01\x00\x01");
        let mut buf = [0u8; MAX_NAME_LEN];
        assert_eq!(
            question_name(&pkt, &mut buf),
            Some(&b"\x04game\x04mark\x04repl\x02co\x00"[..])
        );
        // Truncated, compressed, or too short: no hint.
        assert_eq!(question_name(&pkt[..20], &mut buf), None);
        let mut compressed = vec![0u8; 12];
        compressed.extend_from_slice(b"\x04game\xc0\x0c");
        assert_eq!(question_name(&compressed, &mut buf), None);
        assert_eq!(question_name(&[0u8; 5], &mut buf), None);
        let mut long = vec![0u8; 12];
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(question_name(&long, &mut buf), None);
    }
}
