//! What the engine reads of the current state ([`UpdateView`]), and [`MemView`], a small
//! in-memory implementation for tests and fuzzing.

use std::collections::HashMap;

use super::Op;
use crate::name::DomainName;

/// The current state, as the records store sees it. TXT values are the text of one
/// character-string each (what [`Op::Add`] carries), not wire RDATA.
pub trait UpdateView {
    /// Whether this server is authoritative for the zone whose apex is `apex` (no: NOTAUTH).
    fn serves_zone(&self, apex: &DomainName) -> bool;
    /// Whether the zone at `apex` answers challenges with TXT records here (false: it
    /// delegates `_acme-challenge` names by CNAME, and updates are REFUSED).
    fn challenges_direct(&self, _apex: &DomainName) -> bool {
        true
    }
    /// Whether `owner` (the name a challenge is for: the apex, a user, an app name, a repl id
    /// or a configured host) exists. An Add for `_acme-challenge.<owner>` is REFUSED otherwise.
    fn owner_exists(&self, owner: &DomainName) -> bool;
    /// Whether any record exists at `name` (RFC 2136 "name is in use"), challenge TXT included.
    fn name_in_use(&self, name: &DomainName) -> bool;
    /// Whether an RRset of type `rtype` other than challenge TXT exists at `name` (challenge
    /// TXT values are read with [`UpdateView::txt_values`]).
    fn rrset_exists(&self, name: &DomainName, rtype: u16) -> bool;
    /// The challenge TXT values at `name`.
    fn txt_values(&self, name: &DomainName) -> Vec<Vec<u8>>;
    /// How many challenge names hold values that `key` added.
    fn names_held_by(&self, key: &str) -> usize;
}

/// An in-memory [`UpdateView`]: zones, owners, other records, and the challenge values it
/// applies [`Op`]s to.
#[derive(Debug, Clone, Default)]
pub struct MemView {
    pub zones: Vec<DomainName>,
    /// Zones that delegate challenges by CNAME.
    pub delegated: Vec<DomainName>,
    pub owners: Vec<DomainName>,
    /// Other RRsets: (name, type).
    pub other: Vec<(DomainName, u16)>,
    /// Challenge values per name, with the key that holds the name.
    pub txt: HashMap<DomainName, (String, Vec<Vec<u8>>)>,
}

impl MemView {
    /// A view serving `zones` (whose apexes exist as owners), with `owners` besides. A test
    /// helper: panics on a name that does not parse.
    pub fn new(zones: &[&str], owners: &[&str]) -> MemView {
        let parse = |s: &&str| s.parse::<DomainName>().expect("test name");
        let zones: Vec<DomainName> = zones.iter().map(parse).collect();
        let mut all = zones.clone();
        all.extend(owners.iter().map(parse));
        MemView {
            zones,
            owners: all,
            ..MemView::default()
        }
    }

    /// Applies `ops` as the records store would (an Add of a present value is a no-op).
    pub fn apply(&mut self, key: &str, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Add { name, value } => {
                    let e = self
                        .txt
                        .entry(name.clone())
                        .or_insert_with(|| (key.to_string(), Vec::new()));
                    if !e.1.contains(value) {
                        e.1.push(value.clone());
                    }
                }
                Op::DeleteValue { name, value } => {
                    if let Some(e) = self.txt.get_mut(name) {
                        e.1.retain(|v| v != value);
                        if e.1.is_empty() {
                            self.txt.remove(name);
                        }
                    }
                }
                Op::DeleteRrset { name } | Op::DeleteName { name } => {
                    self.txt.remove(name);
                }
            }
        }
    }
}

impl UpdateView for MemView {
    fn serves_zone(&self, apex: &DomainName) -> bool {
        self.zones.contains(apex)
    }
    fn challenges_direct(&self, apex: &DomainName) -> bool {
        !self.delegated.contains(apex)
    }
    fn owner_exists(&self, owner: &DomainName) -> bool {
        self.owners.contains(owner)
    }
    fn name_in_use(&self, name: &DomainName) -> bool {
        self.owners.contains(name)
            || self.txt.contains_key(name)
            || self.other.iter().any(|(n, _)| n == name)
    }
    fn rrset_exists(&self, name: &DomainName, rtype: u16) -> bool {
        self.other.iter().any(|(n, t)| n == name && *t == rtype)
    }
    fn txt_values(&self, name: &DomainName) -> Vec<Vec<u8>> {
        self.txt.get(name).map(|e| e.1.clone()).unwrap_or_default()
    }
    fn names_held_by(&self, key: &str) -> usize {
        self.txt.values().filter(|e| e.0 == key).count()
    }
}
