//! The ACME DNS-01 challenge TXT records: per name (`_acme-challenge.<owner>`, lower-case
//! wire form) its values with their expiry and the TXT answer pre-encoded from them.
//!
//! The store lives in the [`Table`](super::Table) beside the apps, so that it travels with it
//! everywhere the table goes (snapshots, folds, checkpoints, rebuilds after a reset). It is
//! copy-on-write: a clone shares the map (one `Arc`), a change copies the map's spine once per
//! published snapshot (names are few: at most [`AcmeConfig::max_names`]), the entries are
//! shared. Lookups ([`AcmeStore::answer`]) take no lock and allocate nothing.
//!
//! Applying a change depends on the store, the change and the limits alone, never on a
//! clock: expiry is a `txt-del` change the writing server's janitor writes to the source
//! (`feed::acme::expired`), so every edge removes a record at the same point of the feed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use domain::base::iana::Rtype;

use crate::config::AcmeConfig;
use crate::name::DomainName;
use crate::wire::rrset::{Owner, RrSet};

/// One name's values, in the order they were added, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeEntry {
    /// The name (`_acme-challenge.<owner>`).
    pub name: DomainName,
    /// Each value (one TXT character-string, 1..=255 bytes) with when it expires (unix
    /// seconds).
    pub values: Vec<(Box<[u8]>, u64)>,
    /// The TXT RRset of all values, owned by the query name, with the store's TTL.
    pub answer: RrSet,
}

impl AcmeEntry {
    fn new(name: DomainName, values: Vec<(Box<[u8]>, u64)>, ttl: u32) -> AcmeEntry {
        let mut b = RrSet::builder(Rtype::TXT, Owner::Query);
        let mut rdata = Vec::with_capacity(256);
        for (v, _) in &values {
            rdata.clear();
            rdata.push(v.len() as u8);
            rdata.extend_from_slice(v);
            b.push(ttl, &rdata);
        }
        AcmeEntry {
            name,
            values,
            answer: b.finish(),
        }
    }
}

/// Why a challenge record change was refused (the label is the metrics' `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeReject {
    /// An empty value.
    EmptyValue,
    /// A value longer than `max_value_len`.
    ValueTooLong,
    /// The name holds `max_values_per_name` values already.
    TooManyValues,
    /// `max_names` names hold values already.
    TooManyNames,
    /// Not `_acme-challenge.<owner>` under a zone (see `feed::acme::check_name`).
    BadName,
}

impl AcmeReject {
    /// Every reason, in a fixed order (metrics).
    pub const ALL: [AcmeReject; 5] = [
        AcmeReject::EmptyValue,
        AcmeReject::ValueTooLong,
        AcmeReject::TooManyValues,
        AcmeReject::TooManyNames,
        AcmeReject::BadName,
    ];

    /// This reason's place in [`AcmeReject::ALL`].
    pub fn index(&self) -> usize {
        *self as usize
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AcmeReject::EmptyValue => "acme_empty_value",
            AcmeReject::ValueTooLong => "acme_value_too_long",
            AcmeReject::TooManyValues => "acme_values_per_name",
            AcmeReject::TooManyNames => "acme_names",
            AcmeReject::BadName => "acme_name",
        }
    }
}

impl fmt::Display for AcmeReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcmeReject::EmptyValue => "an empty TXT value",
            AcmeReject::ValueTooLong => "the TXT value is longer than acme.max_value_len",
            AcmeReject::TooManyValues => "the name holds acme.max_values_per_name values already",
            AcmeReject::TooManyNames => "acme.max_names names hold challenge records already",
            AcmeReject::BadName => "not an _acme-challenge name this server answers",
        })
    }
}

/// The challenge records, by lower-case wire name.
#[derive(Debug, Clone, Default)]
pub struct AcmeStore {
    names: Arc<BTreeMap<Box<[u8]>, Arc<AcmeEntry>>>,
    params: AcmeConfig,
}

impl PartialEq for AcmeStore {
    /// The same records (the limits are configuration, not content).
    fn eq(&self, other: &AcmeStore) -> bool {
        self.names == other.names
    }
}

impl AcmeStore {
    /// The TXT answer for the lower-case wire name `name`, if it holds values. No allocation.
    #[inline]
    pub fn answer(&self, name: &[u8]) -> Option<&RrSet> {
        self.names.get(name).map(|e| &e.answer)
    }

    /// The entry of `name` (lower-case wire form).
    pub fn get(&self, name: &[u8]) -> Option<&AcmeEntry> {
        self.names.get(name).map(|e| &**e)
    }

    /// Names holding values.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name holds a value.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Values held, over all names.
    pub fn value_count(&self) -> usize {
        self.names.values().map(|e| e.values.len()).sum()
    }

    /// Every entry, in wire-name order.
    pub fn iter(&self) -> impl Iterator<Item = &AcmeEntry> {
        self.names.values().map(|e| &**e)
    }

    /// The TTL and limits changes are checked against.
    pub fn params(&self) -> &AcmeConfig {
        &self.params
    }

    /// Sets the TTL and limits (from the configuration); a new TTL encodes the answers again.
    /// Records already held stay, even over new limits.
    pub fn set_params(&mut self, params: AcmeConfig) {
        let old_ttl = self.params.ttl_secs;
        self.params = params;
        if old_ttl != params.ttl_secs {
            let ttl = params.ttl_secs;
            self.names = Arc::new(
                self.names
                    .iter()
                    .map(|(k, e)| {
                        let e = AcmeEntry::new(e.name.clone(), e.values.clone(), ttl);
                        (k.clone(), Arc::new(e))
                    })
                    .collect(),
            );
        }
    }

    /// Whether adding `value` at `name` would be accepted (the UPDATE engine asks before it
    /// writes, to refuse early). The name's shape is checked by `feed::acme::check_name`.
    pub fn check_add(&self, name: &DomainName, value: &[u8]) -> Result<(), AcmeReject> {
        if value.is_empty() {
            return Err(AcmeReject::EmptyValue);
        }
        if value.len() > self.params.max_value_len {
            return Err(AcmeReject::ValueTooLong);
        }
        match self.names.get(name.wire()) {
            Some(e) if e.values.iter().any(|(v, _)| **v == *value) => Ok(()),
            Some(e) if e.values.len() >= self.params.max_values_per_name => {
                Err(AcmeReject::TooManyValues)
            }
            Some(_) => Ok(()),
            None if self.names.len() >= self.params.max_names => Err(AcmeReject::TooManyNames),
            None => Ok(()),
        }
    }

    /// Adds `value` at `name`, expiring at `expires`; a value held already takes the new
    /// expiry (a client that adds again extends its record).
    pub fn add(&mut self, name: &DomainName, value: &[u8], expires: u64) -> Result<(), AcmeReject> {
        self.check_add(name, value)?;
        let mut values = self
            .names
            .get(name.wire())
            .map(|e| e.values.clone())
            .unwrap_or_default();
        match values.iter_mut().find(|(v, _)| **v == *value) {
            Some(slot) => slot.1 = expires,
            None => values.push((value.into(), expires)),
        }
        let entry = AcmeEntry::new(name.clone(), values, self.params.ttl_secs);
        Arc::make_mut(&mut self.names).insert(name.wire().into(), Arc::new(entry));
        Ok(())
    }

    /// Puts `name` with `values` back as a checkpoint held them (no limit applies: they were
    /// accepted when added).
    pub fn restore(&mut self, name: DomainName, values: Vec<(Box<[u8]>, u64)>) {
        let entry = AcmeEntry::new(name, values, self.params.ttl_secs);
        Arc::make_mut(&mut self.names).insert(entry.name.wire().into(), Arc::new(entry));
    }

    /// Deletes `value` at `name`, or every value there (`None`). Deleting what is not there
    /// is no change (RFC 2136 3.4.2.4: a delete of an absent record is silently ignored; two
    /// janitors may delete the same record). Returns how many values went.
    pub fn delete(&mut self, name: &DomainName, value: Option<&[u8]>) -> usize {
        let Some(e) = self.names.get(name.wire()) else {
            return 0;
        };
        let keep: Vec<(Box<[u8]>, u64)> = match value {
            None => Vec::new(),
            Some(value) => e
                .values
                .iter()
                .filter(|(v, _)| **v != *value)
                .cloned()
                .collect(),
        };
        let gone = e.values.len() - keep.len();
        if gone == 0 {
            return 0;
        }
        let map = Arc::make_mut(&mut self.names);
        if keep.is_empty() {
            map.remove(name.wire());
        } else {
            let entry = AcmeEntry::new(name.clone(), keep, self.params.ttl_secs);
            map.insert(name.wire().into(), Arc::new(entry));
        }
        gone
    }

    /// Every value that expires at or before `now` (unix seconds), with its name.
    pub fn expired(&self, now: u64) -> Vec<(DomainName, Box<[u8]>)> {
        let mut out = Vec::new();
        for e in self.names.values() {
            for (v, exp) in &e.values {
                if *exp <= now {
                    out.push((e.name.clone(), v.clone()));
                }
            }
        }
        out
    }

    /// Heap bytes held, roughly (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        self.names
            .values()
            .map(|e| 2 * e.name.wire().len() + e.answer.wire_len() + 64 + e.values.len() * 300)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    #[test]
    fn adds_deletes_and_answers() {
        let mut s = AcmeStore::default();
        let n = name("_acme-challenge.Mark.repl.co");
        s.add(&n, b"one", 100).unwrap();
        s.add(&n, b"two", 200).unwrap();
        let wire = name("_acme-challenge.mark.repl.co");
        let set = s.answer(wire.wire()).unwrap();
        assert_eq!((set.rtype, set.count), (Rtype::TXT, 2));
        // TTL 60 by default; rdata: one character-string.
        assert_eq!(&set.bytes[6..10], &60u32.to_be_bytes());
        assert_eq!(&set.bytes[10..16], b"\x00\x04\x03one");
        // Adding again moves the expiry, not the count.
        s.add(&n, b"one", 300).unwrap();
        assert_eq!(s.get(n.wire()).unwrap().values[0].1, 300);
        assert_eq!(s.value_count(), 2);
        // A clone is a snapshot: later changes do not show in it.
        let before = s.clone();
        assert_eq!(s.delete(&n, Some(b"one")), 1);
        assert_eq!(s.answer(n.wire()).unwrap().count, 1);
        assert_eq!(before.answer(n.wire()).unwrap().count, 2);
        assert_eq!(s.delete(&n, Some(b"absent")), 0);
        assert_eq!(s.delete(&n, None), 1);
        assert!(s.answer(n.wire()).is_none());
        assert!(s.is_empty());
        assert_eq!(s.delete(&n, None), 0);
    }

    #[test]
    fn limits_refuse_with_a_reason() {
        let mut s = AcmeStore::default();
        s.set_params(AcmeConfig {
            max_value_len: 4,
            max_values_per_name: 2,
            max_names: 2,
            ..AcmeConfig::default()
        });
        let a = name("_acme-challenge.a.repl.co");
        assert_eq!(s.add(&a, b"", 1), Err(AcmeReject::EmptyValue));
        assert_eq!(s.add(&a, b"12345", 1), Err(AcmeReject::ValueTooLong));
        s.add(&a, b"1", 1).unwrap();
        s.add(&a, b"2", 1).unwrap();
        assert_eq!(s.add(&a, b"3", 1), Err(AcmeReject::TooManyValues));
        // A value held already is an update, not one more.
        s.add(&a, b"2", 5).unwrap();
        s.add(&name("_acme-challenge.b.repl.co"), b"1", 1).unwrap();
        let c = name("_acme-challenge.c.repl.co");
        assert_eq!(s.check_add(&c, b"1"), Err(AcmeReject::TooManyNames));
        assert_eq!(s.add(&c, b"1", 1), Err(AcmeReject::TooManyNames));
        assert_eq!(AcmeReject::TooManyNames.reason(), "acme_names");
    }

    #[test]
    fn expired_lists_what_is_due_and_ttl_reencodes() {
        let mut s = AcmeStore::default();
        let a = name("_acme-challenge.a.repl.co");
        s.add(&a, b"old", 10).unwrap();
        s.add(&a, b"new", 20).unwrap();
        assert!(s.expired(9).is_empty());
        assert_eq!(s.expired(10), vec![(a.clone(), Box::from(&b"old"[..]))]);
        assert_eq!(s.expired(25).len(), 2);
        s.set_params(AcmeConfig {
            ttl_secs: 5,
            ..AcmeConfig::default()
        });
        assert_eq!(
            &s.answer(a.wire()).unwrap().bytes[6..10],
            &5u32.to_be_bytes()
        );
        // Any bytes are a value, 255 of them at most.
        s.add(&a, &[0, b'"', b'\\', 0xff], 1).unwrap();
        s.add(&a, &[7; 255], 1).unwrap();
        assert_eq!(s.add(&a, &[7; 256], 1), Err(AcmeReject::ValueTooLong));
    }
}
