//! Fuzzes the checkpoint reader (`clusterns::feed::checkpoint::read_from`) with hostile files.
//!
//! Each input is read twice: as it is, and with its last 4 bytes replaced by the CRC-32 of
//! the rest, so that mutations get past the checksum and reach the structure checks.
//!
//! Checks that reading never panics nor allocates absurdly (libFuzzer's `-malloc_limit_mb`,
//! by default the RSS limit, catches that), and that a table read successfully behaves:
//! - `apps()` has at most `len()` entries (exactly, for an undamaged file);
//! - its apps and other labels look up by id, by name and by `get` without panicking;
//! - it folds, and takes changes (move, rename, delete, add) without panicking;
//! - its health reports (version 4) are within the store's limits, each checker once per
//!   address, none withdrawn (until 0), and evaluate (`HealthView::evaluate`) without panicking
//!   to states only for addresses that have reports.

#![no_main]

use std::sync::Arc;

use clusterns::feed::checkpoint::{read_from, Loaded};
use clusterns::name::check_label;
use clusterns::table::key::name_key_of;
use clusterns::table::Table;
use libfuzzer_sys::fuzz_target;

fn label(text: &str) -> Vec<u8> {
    let mut v = vec![text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v
}

/// A damaged checkpoint whose checksum matches can hold a table that is not self-consistent
/// (an index slot nobody finds, the same record twice): the reader does not pay for proving
/// otherwise at every start. What it guarantees, and what is checked here, is that such a
/// table never panics, and that `len()` never undercounts (so a delete cannot underflow).
fn check_table(t: &Table) {
    let apps = t.apps();
    assert!(
        apps.len() <= t.len(),
        "len() {} < {} apps",
        t.len(),
        apps.len()
    );
    for (id, user, slug, _) in &apps {
        let _ = t.get(id);
        let _ = t.find_id_or_user(&label(id));
        let _ = t.find_id_or_user(&label(user));
        let _ = t.find_slug_user(&name_key_of(slug, user));
    }
    for probe in ["r0", "mark", "x", "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c"] {
        let _ = t.find_id_or_user(&label(probe));
        let _ = t.get(probe);
    }
}

fn check_health(t: &Table) {
    use clusterns::health::view::HealthView;
    use clusterns::table::health::{MAX_CHECKERS_PER_ADDR, MAX_REPORTS};
    let h = t.health();
    assert!(h.len() <= MAX_REPORTS);
    assert_eq!(h.iter().count(), h.len());
    for (_, _, held) in h.addresses() {
        assert!(!held.is_empty() && held.len() <= MAX_CHECKERS_PER_ADDR);
        assert!(held.windows(2).all(|w| w[0].checker < w[1].checker));
        assert!(held.iter().all(|r| r.until > 0));
    }
    for now in [0, 1_700_000_000, u64::MAX] {
        let view = HealthView::evaluate(h, now);
        for (c, a, _) in view.known() {
            assert!(!h.reports(c, a).is_empty());
        }
    }
}

fn exercise(loaded: Loaded) {
    let Loaded {
        table, clusters, ..
    } = loaded;
    check_table(&table);
    check_health(&table);
    if let Ok(base) = table.fold() {
        check_table(&Table::from_base(Arc::new(base)));
    }
    // Changes on top, as the builder applies them after loading (always with valid labels:
    // those of a damaged table may not be).
    let mut t = table.clone();
    let apps = t.apps();
    let valid = |texts: [&str; 3]| {
        texts
            .iter()
            .all(|t| check_label(t).is_ok_and(|l| l.as_str() == *t))
    };
    let apps = apps
        .iter()
        .filter(|(id, user, slug, _)| valid([id, user, slug]));
    for (i, (id, user, slug, c)) in apps.enumerate().take(8) {
        let _ = match i % 4 {
            0 => t.delete(id),
            1 => t.upsert(
                id,
                user,
                slug,
                c.wrapping_add(1) % clusters.len().max(1) as u16,
            ),
            2 => t.upsert(id, "renamed", slug, *c),
            _ => t.upsert("newapp", user, slug, *c),
        };
    }
    let _ = t.upsert("newapp", "mark", "fresh", 0);
    let _ = t.delete("r0");
    assert!(t.len() >= t.apps().len());
    let _ = t.fold();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = read_from(data, data.len() as u64) {
        exercise(loaded);
    }
    if data.len() >= 4 {
        let body = &data[..data.len() - 4];
        let mut fixed = body.to_vec();
        fixed.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        if let Ok(loaded) = read_from(&fixed[..], fixed.len() as u64) {
            exercise(loaded);
        }
    }
});
