//! Tests of the table (base plus overlay): lookups, changes, folds.

use super::*;

fn label(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn two(slug: &str, user: &str) -> Vec<u8> {
    name_key_of(slug, user)
}

#[test]
fn a_changes_lookups_hash_the_keys_the_change_looks_up() {
    let uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    for id in ["r1", uuid, "0f0e0d0c-0b0a-4908-8706-05040302010g"] {
        let [Some(by_id), Some(by_name)] = Table::lookups_of_change(id, Some(("game", "mark")))
        else {
            panic!("{id}: no lookups");
        };
        assert_eq!(by_id.which, Which::Ids);
        assert_eq!(by_id.hash, hash_key(&id_key_of(id)), "{id}");
        assert_eq!(by_name.which, Which::Names);
        assert_eq!(by_name.hash, hash_key(&two("game", "mark")));
        assert_eq!(Table::lookups_of_change(id, None)[1], None);
    }
    // The UUID is looked up in its compressed form.
    assert_eq!(id_key_of(uuid).len(), UUID_KEY_LEN);
    // Texts too long to be labels give no lookup (the change itself is refused).
    let long = "a".repeat(64);
    assert_eq!(
        Table::lookups_of_change(&long, Some((&long, "u"))),
        [None, None]
    );
}

#[test]
fn prefetching_a_change_is_a_hint_on_any_table() {
    let mut t = Table::default();
    let [id, name] = Table::lookups_of_change("r1", Some(("game", "mark")));
    for l in [id, name].into_iter().flatten() {
        t.prefetch_change_slot(&l);
        t.prefetch_change_record(&l);
    }
    t.upsert("r1", "mark", "game", 1).unwrap();
    for l in [id, name].into_iter().flatten() {
        t.prefetch_change_slot(&l);
        t.prefetch_change_record(&l);
    }
    assert_eq!(t.find_slug_user(&two("game", "mark")), Some(1));
}

#[test]
fn overlay_shadows_base() {
    let mut t = Table::default();
    t.upsert("r1", "mark", "game", 1).unwrap();
    t.upsert("r2", "mark", "site", 2).unwrap();
    let t0 = Table::from_base(Arc::new(t.fold().unwrap()));
    let mut t = t0.clone();
    assert_eq!(t.find_id_or_user(&label("r1")), LabelIs::App(1));
    assert_eq!(t.find_id_or_user(&label("mark")), LabelIs::User);
    // Move r1, rename r2, delete nothing yet.
    t.upsert("r1", "mark", "game", 3).unwrap();
    t.upsert("r2", "mark", "blog", 2).unwrap();
    assert_eq!(t.find_slug_user(&two("game", "mark")), Some(3));
    assert_eq!(t.find_slug_user(&two("site", "mark")), None);
    assert_eq!(t.find_slug_user(&two("blog", "mark")), Some(2));
    // The published copy is unaffected.
    assert_eq!(t0.find_slug_user(&two("game", "mark")), Some(1));
    assert_eq!(t0.find_slug_user(&two("site", "mark")), Some(2));
    // Delete both: the user disappears.
    t.delete("r1").unwrap();
    t.delete("r2").unwrap();
    assert_eq!(t.find_id_or_user(&label("r1")), LabelIs::Missing);
    assert_eq!(t.find_id_or_user(&label("mark")), LabelIs::Missing);
    assert_eq!(t.len(), 0);
    assert!(t.delete("r1").is_err());
    // A freed name can be taken by another app.
    t.upsert("r3", "mark", "blog", 0).unwrap();
    assert_eq!(t.find_slug_user(&two("blog", "mark")), Some(0));
    assert_eq!(t.find_id_or_user(&label("mark")), LabelIs::User);
    assert_eq!(t.len(), 1);
}

#[test]
fn copies_change_independently_and_the_log_grows() {
    let mut t = Table::default();
    let mut kept = Vec::new();
    // Past the smallest log's room (1024 keys a map): it is rebuilt larger on the way.
    for i in 0..3000u16 {
        t.upsert(
            &format!("r{i}"),
            &format!("u{}", i % 50),
            &format!("s{i}"),
            i % 7,
        )
        .unwrap();
        if i % 500 == 0 {
            kept.push((i, t.clone()));
        }
    }
    for (i, k) in &kept {
        assert_eq!(k.len(), usize::from(*i) + 1);
        assert_eq!(
            k.find_slug_user(&two(&format!("s{i}"), &format!("u{}", i % 50))),
            Some(i % 7)
        );
        assert_eq!(
            k.find_id_or_user(&label(&format!("r{}", i + 1))),
            LabelIs::Missing
        );
    }
    // Changing an older copy leaves the newer one alone, and the other way round.
    let (_, old) = &mut kept[1];
    old.upsert("r1", "u1", "s1", 6).unwrap();
    old.delete("r2").unwrap();
    t.upsert("r1", "u1", "s1", 5).unwrap();
    assert_eq!(old.find_id_or_user(&label("r1")), LabelIs::App(6));
    assert_eq!(old.find_id_or_user(&label("r2")), LabelIs::Missing);
    assert_eq!(old.find_id_or_user(&label("r600")), LabelIs::Missing);
    assert_eq!(t.find_id_or_user(&label("r1")), LabelIs::App(5));
    assert_eq!(t.find_id_or_user(&label("r2")), LabelIs::App(2));
    assert_eq!(t.find_id_or_user(&label("r2999")), LabelIs::App(2999 % 7));
    assert_eq!(old.len(), 500);
    assert_eq!(t.len(), 3000);
    assert_eq!(t.overlay().len(), 3000);
    let folded = Table::from_base(Arc::new(t.fold().unwrap()));
    assert_eq!(folded.apps(), t.apps());
}

#[test]
fn patched_fold_equals_a_rebuild() {
    let mut t = Table::default();
    for i in 0..2000 {
        t.upsert(
            &format!("r{i}"),
            &format!("u{}", i % 31),
            &format!("s{i}"),
            (i % 5) as u16,
        )
        .unwrap();
    }
    let mut t = Table::from_base(Arc::new(t.fold().unwrap()));
    for i in 0..60 {
        t.upsert(
            &format!("r{i}"),
            &format!("u{}", i % 31),
            &format!("s{i}"),
            7,
        )
        .unwrap(); // moves
    }
    for i in 60..90 {
        t.upsert(&format!("r{i}"), "renamed", &format!("n{i}"), 1)
            .unwrap();
    }
    for i in 90..120 {
        t.delete(&format!("r{i}")).unwrap();
    }
    // A freed name taken by another app, and new apps.
    t.upsert("r1999", "u0", "s90", 2).unwrap();
    for i in 3000..3050 {
        t.upsert(&format!("r{i}"), "newcomer", &format!("s{i}"), 3)
            .unwrap();
    }
    let patched = Table::from_base(Arc::new(t.fold().unwrap()));
    assert!(patched.base().garbage() > 0, "the fold patched the base");
    let rebuilt = Table::from_base(Arc::new(t.rebuild().unwrap()));
    assert_eq!(patched.apps(), rebuilt.apps());
    assert_eq!(patched.apps(), t.apps());
    assert_eq!(patched.len(), t.len());
    for i in (0..3050).step_by(7) {
        let l = label(&format!("r{i}"));
        assert_eq!(patched.find_id_or_user(&l), t.find_id_or_user(&l), "r{i}");
    }
    for name in ["u0", "u5", "renamed", "newcomer", "nobody"] {
        assert_eq!(
            patched.find_id_or_user(&label(name)),
            t.find_id_or_user(&label(name)),
            "{name}"
        );
    }
    assert_eq!(patched.find_slug_user(&two("s90", "u0")), Some(2));
    assert_eq!(patched.find_slug_user(&two("s1999", "u15")), None);
}

#[test]
fn names_stay_unique() {
    let mut t = Table::default();
    t.upsert("r1", "mark", "game", 1).unwrap();
    let e = t.upsert("r2", "mark", "game", 1).unwrap_err();
    assert!(e.contains("already belongs to repl r1"), "{e}");
    // Same id, same name: a move.
    t.upsert("r1", "mark", "game", 2).unwrap();
    assert_eq!(t.get("r1"), Some(("mark".into(), "game".into(), 2)));
}

#[test]
fn uuid_ids_answer_and_users_named_like_uuids_still_work() {
    let uuid = "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c";
    let mut t = Table::default();
    t.upsert(uuid, "mark", "game", 4).unwrap();
    let other = "aaaaaaaa-0b7a-4c1e-9a53-1d2e3f4a5b6c";
    t.upsert("r9", other, "x", 1).unwrap();
    for t in [t.clone(), Table::from_base(Arc::new(t.fold().unwrap()))] {
        assert_eq!(t.find_id_or_user(&label(uuid)), LabelIs::App(4));
        assert_eq!(t.find_id_or_user(&label(other)), LabelIs::User);
        assert_eq!(t.apps()[0].0, uuid);
    }
}

#[test]
fn fold_equals_overlay_view() {
    let mut t = Table::default();
    for i in 0..500 {
        t.upsert(
            &format!("r{i}"),
            &format!("u{}", i % 13),
            &format!("s{i}"),
            (i % 5) as u16,
        )
        .unwrap();
    }
    let mut t = Table::from_base(Arc::new(t.fold().unwrap()));
    for i in (0..500).step_by(3) {
        t.delete(&format!("r{i}")).unwrap();
    }
    for i in (1..500).step_by(7) {
        if i % 3 != 0 {
            t.upsert(&format!("r{i}"), "moved", &format!("n{i}"), 9)
                .unwrap();
        }
    }
    let folded = Table::from_base(Arc::new(t.fold().unwrap()));
    assert_eq!(folded.apps(), t.apps());
    assert_eq!(folded.len(), t.len());
    for i in 0..500 {
        let l = label(&format!("r{i}"));
        assert_eq!(folded.find_id_or_user(&l), t.find_id_or_user(&l), "r{i}");
    }
    for u in 0..13 {
        let l = label(&format!("u{u}"));
        assert_eq!(folded.find_id_or_user(&l), t.find_id_or_user(&l), "u{u}");
    }
    assert_eq!(t.find_id_or_user(&label("moved")), LabelIs::User);
}
