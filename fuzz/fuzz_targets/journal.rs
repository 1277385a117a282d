//! Fuzzes the journal: arbitrary bytes as journal text, parsed line by line with
//! `clusterns::feed::journal::parse_line` and replayed as the builder does (sequence numbers
//! must increase; `Change::apply_to` into a `Table`), folding the overlay into a new base now
//! and then (`Table::folded`, as the builder does).
//!
//! Checks that nothing panics and that
//! - a parsed line prints back (`Sequenced`'s `Display`, the journal format) to a line that
//!   parses to the same change;
//! - `apply_to` accepts and refuses exactly what a plain model of the table does (a name held by
//!   another app, an unknown id to delete, a new cluster name once the registry is full; a
//!   cluster the configuration lacks is no reason: the table does not depend on it), and the
//!   table ends equal to the model: `apps()` sorted with unique ids and unique `<slug>.<user>`
//!   names, `len()` their number, every app found by id, by name and under its user, and the
//!   cluster registry the names in the order the accepted changes first used them;
//! - folding into a new base changes nothing (the registry included);
//! - challenge TXT lines (`txt-add`, `txt-del`) apply as a plain model of the store says
//!   (values per name and names in all within the default limits, a delete of what is absent
//!   no change), and the store ends equal to it, its answers holding each value once;
//! - health lines (`health <checker> <cluster> <addr> up|down <until>`) apply as a plain model
//!   of the health store says (the latest report per checker, cluster and address; `until` 0
//!   withdraws; at most 64 checkers per address and 65,536 reports, stale reports giving way
//!   first), the store ends equal to it, and `HealthView::evaluate` at a few moments gives the
//!   states a plain strict-majority count of the fresh reports gives.

#![no_main]

use std::collections::BTreeMap;
use std::net::IpAddr;

use clusterns::feed::change::{ChangeTarget, UpsertRef};
use clusterns::feed::journal::parse_line;
use clusterns::config::AcmeConfig;
use clusterns::health::report::HealthReport;
use clusterns::health::view::{AddrState, HealthView};
use clusterns::table::health::{MAX_CHECKERS_PER_ADDR, MAX_REPORTS, STALE_SECS};
use clusterns::name::{DomainName, Label};
use clusterns::table::key::name_key_of;
use clusterns::table::{LabelIs, Table, MAX_CLUSTERS};
use libfuzzer_sys::fuzz_target;

/// The model: id -> (user, slug, cluster index), and the cluster registry (names by index).
#[derive(Default)]
struct Model {
    apps: BTreeMap<String, (String, String, u16)>,
    clusters: Vec<String>,
    /// Challenge records: wire name -> values in the order added, with their expiry.
    txt: BTreeMap<Vec<u8>, Vec<(Vec<u8>, u64)>>,
    /// Health reports: (cluster, address, checker) -> (up, until).
    health: BTreeMap<(String, IpAddr, String), (bool, u64)>,
}

impl Model {
    /// Drops the reports whose lease ended at or before `below` (of one address, or all).
    fn drop_stale(&mut self, of: Option<(&str, IpAddr)>, below: u64) {
        self.health.retain(|(c, a, _), (_, until)| {
            of.is_some_and(|(oc, oa)| (oc, oa) != (c.as_str(), *a)) || *until > below
        });
    }

    fn checkers_of(&self, cluster: &str, addr: IpAddr) -> usize {
        self.health
            .keys()
            .filter(|(c, a, _)| c == cluster && *a == addr)
            .count()
    }
}

/// The table's rules, written out plainly.
impl ChangeTarget for Model {
    type Outcome = Result<(), ()>;

    fn upsert(&mut self, app: UpsertRef<'_>) -> Result<(), ()> {
        let (id, user, slug) = (app.id.as_str(), app.user.as_str(), app.slug.as_str());
        if self
            .apps
            .iter()
            .any(|(other, (u, s, _))| other != id && u == user && s == slug)
        {
            return Err(());
        }
        let c = match self.clusters.iter().position(|n| n == app.cluster.as_str()) {
            Some(c) => c,
            None if self.clusters.len() < MAX_CLUSTERS => {
                self.clusters.push(app.cluster.as_str().into());
                self.clusters.len() - 1
            }
            None => return Err(()),
        };
        self.apps
            .insert(id.into(), (user.into(), slug.into(), c as u16));
        Ok(())
    }

    fn delete(&mut self, id: &Label) -> Result<(), ()> {
        self.apps.remove(id.as_str()).map(|_| ()).ok_or(())
    }

    fn txt_add(&mut self, name: &DomainName, value: &[u8], expires: u64) -> Result<(), ()> {
        let limits = AcmeConfig::default();
        if value.is_empty() || value.len() > limits.max_value_len {
            return Err(());
        }
        let names = self.txt.len();
        let values = match self.txt.get_mut(name.wire()) {
            Some(v) => v,
            None if names >= limits.max_names => return Err(()),
            None => self.txt.entry(name.wire().to_vec()).or_default(),
        };
        let held = values.len();
        match values.iter_mut().find(|(v, _)| v == value) {
            Some(slot) => slot.1 = expires,
            None if held >= limits.max_values_per_name => return Err(()),
            None => values.push((value.to_vec(), expires)),
        }
        Ok(())
    }

    fn txt_delete(&mut self, name: &DomainName, value: Option<&[u8]>) -> Result<(), ()> {
        if let Some(values) = self.txt.get_mut(name.wire()) {
            values.retain(|(v, _)| value.is_some_and(|value| v != value));
            if values.is_empty() {
                self.txt.remove(name.wire());
            }
        }
        Ok(())
    }

    fn health(&mut self, r: &HealthReport) -> Result<(), ()> {
        let (cluster, checker) = (r.cluster.as_str(), r.checker.as_str());
        let key = (cluster.to_string(), r.addr, checker.to_string());
        if r.until == 0 {
            self.health.remove(&key);
            return Ok(());
        }
        if let Some(held) = self.health.get_mut(&key) {
            *held = (r.up, r.until);
            return Ok(());
        }
        let below = r.until.saturating_sub(STALE_SECS);
        let here = self.checkers_of(cluster, r.addr);
        if here > 0 && here >= MAX_CHECKERS_PER_ADDR {
            self.drop_stale(Some((cluster, r.addr)), below);
            if self.checkers_of(cluster, r.addr) >= MAX_CHECKERS_PER_ADDR {
                return Err(());
            }
        }
        if self.health.len() >= MAX_REPORTS {
            self.drop_stale(None, below);
            if self.health.len() >= MAX_REPORTS {
                return Err(());
            }
        }
        self.health.insert(key, (r.up, r.until));
        Ok(())
    }
}

fn label(text: &str) -> Vec<u8> {
    let mut v = vec![text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v
}

/// Checks `table` against the model.
fn check(table: &Table, m: &Model) {
    let store: BTreeMap<Vec<u8>, Vec<(Vec<u8>, u64)>> = table
        .acme()
        .iter()
        .map(|e| {
            let values = e.values.iter().map(|(v, x)| (v.to_vec(), *x)).collect();
            (e.name.wire().to_vec(), values)
        })
        .collect();
    assert_eq!(store, m.txt, "the challenge records are the model's");
    let health: BTreeMap<(String, IpAddr, String), (bool, u64)> = table
        .health()
        .iter()
        .map(|r| {
            let key = (r.cluster.to_string(), r.addr, r.checker.to_string());
            (key, (r.up, r.until))
        })
        .collect();
    assert_eq!(health, m.health, "the health reports are the model's");
    assert_eq!(table.health().len(), m.health.len());
    // The view at each moment a lease ends, and just before: a strict majority of the fresh.
    let moments: Vec<u64> = m
        .health
        .values()
        .flat_map(|&(_, u)| [u - 1, u])
        .take(16)
        .collect();
    for now in moments {
        let view = HealthView::evaluate(table.health(), now);
        let mut tally: BTreeMap<(&str, IpAddr), (usize, usize)> = BTreeMap::new();
        for ((c, a, _), &(up, until)) in &m.health {
            let t = tally.entry((c.as_str(), *a)).or_default();
            if until > now {
                if up {
                    t.0 += 1;
                } else {
                    t.1 += 1;
                }
            }
        }
        for ((c, a), (up, down)) in tally {
            let want = if 2 * down > up + down {
                AddrState::Down
            } else if 2 * up > up + down {
                AddrState::Up
            } else {
                AddrState::Unknown
            };
            let cluster: Label = c.parse().expect("a stored label");
            assert_eq!(view.state(&cluster, a), want, "{c} {a} at {now}");
        }
        let next = HealthView::next_expiry(table.health(), now);
        let want = m.health.values().map(|&(_, u)| u).filter(|&u| u > now).min();
        assert_eq!(next, want, "next expiry after {now}");
    }
    for (name, values) in &m.txt {
        let set = table.acme().answer(name).expect("a name with values answers");
        assert_eq!(usize::from(set.count), values.len(), "one record per value");
    }
    let registry: Vec<&str> = table
        .clusters()
        .names()
        .iter()
        .map(|l| l.as_str())
        .collect();
    assert_eq!(registry, m.clusters, "the registry is the model's");
    let apps = table.apps();
    assert_eq!(apps.len(), table.len(), "len() is the number of apps");
    let expected: Vec<_> = m
        .apps
        .iter()
        .map(|(id, (u, s, c))| (id.clone(), u.clone(), s.clone(), *c))
        .collect();
    assert_eq!(apps, expected, "the table is the model");
    for w in apps.windows(2) {
        assert!(w[0].0 < w[1].0, "ids unique and sorted");
    }
    let mut names: Vec<_> = apps.iter().map(|a| (&a.1, &a.2)).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), apps.len(), "names unique");
    for (id, user, slug, c) in &apps {
        assert_eq!(table.get(id), Some((user.clone(), slug.clone(), *c)));
        assert_eq!(table.find_id_or_user(&label(id)), LabelIs::App(*c), "by id {id}");
        assert_eq!(table.find_slug_user(&name_key_of(slug, user)), Some(*c));
        let by_user = table.find_id_or_user(&label(user));
        if m.apps.contains_key(user.as_str()) {
            assert!(matches!(by_user, LabelIs::App(_)), "an id shadows a user");
        } else {
            assert_eq!(by_user, LabelIs::User, "user {user}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut table = Table::default();
    let mut model = Model::default();
    let mut last_seq = 0;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        let Ok(Some(change)) = parse_line(text) else {
            continue;
        };
        let printed = change.to_string();
        assert_eq!(
            parse_line(&printed),
            Ok(Some(change.clone())),
            "{printed:?} parses back"
        );
        if change.seq <= last_seq {
            continue;
        }
        last_seq = change.seq;
        let got = change.change.apply_to(&mut table);
        let want = change.change.apply_to(&mut model);
        assert_eq!(
            got.is_ok(),
            want.is_ok(),
            "line {}: {printed}: {got:?}",
            i + 1
        );
        // Fold now and then (lines whose number is a multiple of 8), as the builder does.
        if i % 8 == 7 {
            table = table.folded().expect("a consistent table folds");
        }
    }
    check(&table, &model);
    let folded = table.folded().expect("a consistent table folds");
    check(&folded, &model);
});
