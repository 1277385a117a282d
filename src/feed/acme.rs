//! ACME challenge TXT records as feed data: which names may hold them, the changes that add
//! and remove them, and the janitor that expires them.
//!
//! A challenge name is `_acme-challenge.<owner>` where the owner is a zone's apex, a user
//! (`<user>.<zone>`), an app (`<slug>.<user>.<zone>`, `<replid>.<zone>`) or a configured host
//! of that zone. [`check_name`] checks that shape (the builder rejects a change for any other
//! name, counted and logged like any rejected change); [`check_writable`] also wants the zone
//! in `acme = "txt"` mode (writers: the `acme` CLI, the UPDATE engine).
//!
//! Expiry is deterministic across edges: no edge drops a record by its own clock. A server
//! that writes changes (the one accepting UPDATEs, or an operator's cron running
//! `clusterns acme expire`) calls [`expired`] periodically (every few seconds is plenty) and
//! writes the deletes it returns through `feed::writer`; every edge applies them at the same
//! point of the feed. Two janitors writing the same delete are harmless: a delete of what is
//! gone is no change.

use crate::config::{AcmeMode, Config, ZoneConfig};
use crate::feed::change::Change;
use crate::name::DomainName;
use crate::table::AcmeStore;
use crate::zone::ACME_LABEL;

/// Whether `name` is `_acme-challenge.<something>` (at least one label after the first).
pub fn is_challenge_name(name: &DomainName) -> bool {
    let w = name.wire();
    w.starts_with(ACME_LABEL) && w.len() > ACME_LABEL.len() + 1
}

/// The zone holding `name` (the deepest one when zones nest).
fn zone_of<'c>(cfg: &'c Config, name: &DomainName) -> Option<&'c ZoneConfig> {
    cfg.zones
        .iter()
        .filter(|z| name.ends_with(&z.apex))
        .max_by_key(|z| z.apex.wire().len())
}

/// Checks that `name` is `_acme-challenge.<owner>` for an owner of a configured zone (the
/// apex, one or two labels below it, or a host of the zone). Returns the zone.
pub fn check_name<'c>(cfg: &'c Config, name: &DomainName) -> Result<&'c ZoneConfig, String> {
    let wire = name.wire();
    if !is_challenge_name(name) {
        return Err(format!("{name} does not start with _acme-challenge."));
    }
    let owner = DomainName::from_wire(&wire[ACME_LABEL.len()..])?;
    let Some(zone) = zone_of(cfg, &owner) else {
        return Err(format!("{name} is in no configured zone"));
    };
    let below = owner.label_count() - zone.apex.label_count();
    if below <= 2 || zone.hosts.iter().any(|h| h.name == owner) {
        Ok(zone)
    } else {
        Err(format!(
            "{name}: {owner} is not the apex, a user, an app or a host of zone {}",
            zone.apex
        ))
    }
}

/// [`check_name`], and the zone answers challenge TXT records itself (`acme = "txt"`): what a
/// writer checks before it writes.
pub fn check_writable<'c>(cfg: &'c Config, name: &DomainName) -> Result<&'c ZoneConfig, String> {
    let zone = check_name(cfg, name)?;
    if zone.acme != AcmeMode::Txt {
        return Err(format!(
            "{name}: zone {} answers _acme-challenge with a CNAME (acme = \"cname\"), not with TXT records held here",
            zone.apex
        ));
    }
    Ok(zone)
}

/// The change that adds `value` at `name`, expiring `expire_secs` (`[acme] expire_secs`)
/// after `now` (unix seconds).
pub fn add(name: DomainName, value: &[u8], now: u64, expire_secs: u64) -> Change {
    Change::TxtAdd {
        name,
        value: value.into(),
        expires: now.saturating_add(expire_secs),
    }
}

/// The janitor: the deletes to write for every value of `store` that expired at `now` (unix
/// seconds), one per value (so that a value added again meanwhile, with a later expiry, is
/// not the one removed: see the note). Call it on a writing server every few seconds with
/// the published snapshot's store (`snapshot.table.acme()`) and write what it returns with
/// `feed::writer`; an empty result writes nothing.
///
/// Note: a value re-added between the janitor's look and its delete is deleted anyway (the
/// delete names the value, not its expiry); the client that re-adds does so for a new
/// challenge, and ACME clients add a new value per challenge.
pub fn expired(store: &AcmeStore, now: u64) -> Vec<Change> {
    store
        .expired(now)
        .into_iter()
        .map(|(name, value)| Change::TxtDelete {
            name,
            value: Some(value),
        })
        .collect()
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{parse, C1, FEED, REPL_CO};

    fn name(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    #[test]
    fn names_follow_the_owners_shapes() {
        let cfg = parse(&format!("{FEED}{REPL_CO}{C1}"));
        for ok in [
            "_acme-challenge.repl.co",
            "_acme-challenge.mark.repl.co",
            "_acme-challenge.coolgame.mark.repl.co",
            "_acme-challenge.ns2.infra.repl.co",
        ] {
            assert!(check_name(&cfg, &name(ok)).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("mark.repl.co", "does not start"),
            ("_acme-challenge.example.com", "no configured zone"),
            ("_acme-challenge.a.b.c.repl.co", "not the apex"),
        ] {
            let e = check_name(&cfg, &name(bad)).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        // The fixture's zone delegates with a CNAME: nothing to write there.
        let e = check_writable(&cfg, &name("_acme-challenge.mark.repl.co")).unwrap_err();
        assert!(e.contains("CNAME"), "{e}");
    }

    #[test]
    fn the_janitor_deletes_what_expired() {
        let mut store = AcmeStore::default();
        let n = name("_acme-challenge.mark.repl.co");
        for c in [add(n.clone(), b"a", 100, 60), add(n.clone(), b"b", 130, 60)] {
            let Change::TxtAdd {
                name,
                value,
                expires,
            } = c
            else {
                unreachable!()
            };
            store.add(&name, &value, expires).unwrap();
        }
        assert!(expired(&store, 159).is_empty());
        let due = expired(&store, 160);
        assert_eq!(
            due,
            vec![Change::TxtDelete {
                name: n.clone(),
                value: Some(Box::from(&b"a"[..]))
            }]
        );
        let mut t = crate::table::Table::default().with_acme(store);
        for c in &due {
            c.apply_to(&mut t).unwrap();
        }
        assert_eq!(t.acme().value_count(), 1);
        assert_eq!(expired(t.acme(), 10_000).len(), 1);
    }
}
