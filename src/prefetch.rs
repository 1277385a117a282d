//! Prefetching for a receive batch: before a worker answers a batch, it reads each query's
//! name just far enough to know which table slot the answer will look up, and asks the CPU to
//! fetch that slot's cache line, then (in a second pass, once the slots have arrived) the
//! record it points to. The lookups of a batch then overlap their memory latency instead of
//! paying it one after another. Hints only: a wrong or missing hint costs a wasted fetch,
//! never a wrong answer, and the answer path itself (`query::respond`) is unchanged. The
//! name is read with the codec's own reader (`wire::question_name`, which `decode` uses).

use crate::name::MAX_NAME_LEN;
use crate::snapshot::Snapshot;
use crate::table::Lookup;
use crate::wire::{lowercase, question_name};
use crate::zone::Shape;

/// The table lookup the answer to `pkt` will make, if it makes one.
#[inline]
pub fn hint(snap: &Snapshot, pkt: &[u8]) -> Option<Lookup> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let name = lowercase(question_name(pkt)?, &mut buf);
    let (zone, rel_len) = snap.served.find_zone(name)?;
    match zone.classify(&name[..rel_len]) {
        Shape::IdOrUser(label) => Some(snap.table.lookup_of_id_or_user(label)),
        Shape::SlugUser(key) => Some(snap.table.lookup_of_slug_user(key)),
        _ => None,
    }
}

/// The table lookups of a receive batch's packets (up to 32), their slots being fetched.
pub struct BatchLookups {
    hints: [Option<Lookup>; 32],
}

impl BatchLookups {
    /// Works out each packet's lookup and prefetches its slot.
    pub fn start<'p>(snap: &Snapshot, packets: impl Iterator<Item = &'p [u8]>) -> BatchLookups {
        let mut hints = [None; 32];
        for (h, pkt) in hints.iter_mut().zip(packets) {
            *h = hint(snap, pkt);
            if let Some(l) = h {
                snap.table.prefetch_slot(l);
            }
        }
        BatchLookups { hints }
    }

    /// Prefetches the record of packet `i`'s lookup (after `start`, once its slot is here).
    #[inline]
    pub fn record(&self, snap: &Snapshot, i: usize) {
        if let Some(Some(l)) = self.hints.get(i) {
            snap.table.prefetch_record(l);
        }
    }
}
