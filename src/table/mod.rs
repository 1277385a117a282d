//! The app table the query path reads: an immutable compact [`Base`] shared by `Arc`, plus an
//! [`Overlay`] of the changes applied since it was built.
//!
//! Readers look in the overlay first (only when it is not empty), then in the base. The builder
//! thread applies changes to its own `Table` (copy-on-write overlay, O(1) to clone for a
//! snapshot) and, when the overlay grows, folds it into a new base in the background.

pub mod base;
pub mod key;
pub mod overlay;
pub mod overlay_key;

use std::sync::Arc;

pub use base::{Base, BuildError};
pub use key::hash_key;
pub use overlay::Overlay;

use key::{id_key, id_key_of, id_text, label_text, name_key_of, user_of_name, UUID_KEY_LEN};
use overlay::{Key, Rec};

/// One app, by its texts (for building tables and for tests).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct App {
    pub id: crate::name::Label,
    pub user: crate::name::Label,
    pub slug: crate::name::Label,
    /// Index into the configuration's clusters.
    pub cluster: u16,
}

/// What a single label under a zone is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum One {
    /// A repl id: the app's cluster.
    App(u16),
    /// A user with at least one app (an empty non-terminal).
    User,
    Missing,
}

/// The table of apps: base plus overlay.
#[derive(Clone, Debug, Default)]
pub struct Table {
    base: Arc<Base>,
    overlay: Overlay,
    len: usize,
}

impl Table {
    /// A table of `apps` (ids and names must be unique).
    pub fn build<'a>(apps: impl IntoIterator<Item = &'a App>) -> Result<Table, BuildError> {
        let apps = apps.into_iter();
        let mut b = Base::builder(apps.size_hint().0);
        for a in apps {
            b.push(
                &id_key_of(a.id.as_str()),
                &name_key_of(a.slug.as_str(), a.user.as_str()),
                a.cluster,
            )?;
        }
        Ok(Table::from_base(Arc::new(b.finish())))
    }

    /// A table that is `base` with no change on top.
    pub fn from_base(base: Arc<Base>) -> Table {
        let len = base.len();
        Table {
            overlay: Overlay::for_base(len),
            base,
            len,
        }
    }

    /// A table from its parts (as read from a checkpoint).
    pub fn from_parts(base: Arc<Base>, mut overlay: Overlay, len: usize) -> Table {
        overlay.rebuild_filter(base.len());
        Table { base, overlay, len }
    }

    /// The base.
    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }

    /// The changes since the base.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// What the single lower-case wire label `label` names: a repl id, a user, or nothing.
    #[inline]
    pub fn lookup_one(&self, label: &[u8]) -> One {
        let mut buf = [0u8; UUID_KEY_LEN];
        let idk = id_key(label, &mut buf);
        let compressed = idk.len() != label.len();
        let id_hash = hash_key(idk);
        let in_overlay = if self.overlay.is_empty() || !self.overlay.may_hold(id_hash) {
            None
        } else {
            self.overlay.ids.get(idk)
        };
        match in_overlay {
            Some(Some(rec)) => return One::App(rec.cluster),
            Some(None) => {}
            None => {
                if let Some((cluster, _)) = self.base.by_id(idk, id_hash) {
                    return One::App(cluster);
                }
            }
        }
        let user_hash = if compressed { hash_key(label) } else { id_hash };
        if self.user_apps(label, user_hash) > 0 {
            One::User
        } else {
            One::Missing
        }
    }

    /// The cluster of the app named by `key` (slug label then user label, lower-case).
    #[inline]
    pub fn lookup_two(&self, key: &[u8]) -> Option<u16> {
        let hash = hash_key(key);
        if !self.overlay.is_empty() && self.overlay.may_hold(hash) {
            if let Some(v) = self.overlay.names.get(key) {
                return v.as_ref().map(|(_, c)| *c);
            }
        }
        self.base.by_name(key, hash).map(|(c, _)| c)
    }

    fn user_apps(&self, user: &[u8], hash: u64) -> i64 {
        let delta = if self.overlay.is_empty() || !self.overlay.may_hold(hash) {
            0
        } else {
            self.overlay.users.get(user).copied().unwrap_or(0)
        };
        i64::from(self.base.user_apps(user, hash)) + delta
    }

    /// The number of apps.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no app.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The app with id key `idk`: its name key and cluster.
    fn current(&self, idk: &[u8]) -> Option<(Key, u16)> {
        match self.overlay.ids.get(idk) {
            Some(Some(r)) => Some((r.name.clone(), r.cluster)),
            Some(None) => None,
            None => self
                .base
                .by_id(idk, hash_key(idk))
                .map(|(c, off)| (self.base.part(off, base::Part::Name).into(), c)),
        }
    }

    /// The id key of the app holding name key `name`.
    fn holder(&self, name: &[u8]) -> Option<Key> {
        match self.overlay.names.get(name) {
            Some(Some((id, _))) => Some(id.clone()),
            Some(None) => None,
            None => self
                .base
                .by_name(name, hash_key(name))
                .map(|(_, off)| self.base.part(off, base::Part::Id).into()),
        }
    }

    fn add_user(&mut self, name: &[u8], delta: i64) {
        let user: Key = user_of_name(name).into();
        self.overlay.mark(&user);
        let entry = self.overlay.users.entry(user).or_insert(0);
        *entry += delta;
    }

    /// Creates or replaces app `id` (texts are lower-case labels). A new user or slug renames
    /// it; its old name is freed.
    pub fn upsert(&mut self, id: &str, user: &str, slug: &str, cluster: u16) -> Result<(), String> {
        let idk: Key = id_key_of(id).into();
        let name: Key = name_key_of(slug, user).into();
        if let Some(holder) = self.holder(&name) {
            if holder != idk {
                return Err(format!(
                    "{slug}.{user} already belongs to repl {}; delete or rename it first",
                    id_text(&holder)
                ));
            }
        }
        match self.current(&idk) {
            Some((old, _)) if old != name => {
                self.add_user(&old, -1);
                self.add_user(&name, 1);
                self.overlay.mark(&old);
                self.overlay.names.insert(old, None);
            }
            Some(_) => {}
            None => {
                self.add_user(&name, 1);
                self.len += 1;
            }
        }
        self.overlay.mark(&name);
        self.overlay.mark(&idk);
        self.overlay
            .names
            .insert(name.clone(), Some((idk.clone(), cluster)));
        self.overlay.ids.insert(idk, Some(Rec { name, cluster }));
        Ok(())
    }

    /// Removes app `id`.
    pub fn delete(&mut self, id: &str) -> Result<(), String> {
        let idk: Key = id_key_of(id).into();
        let Some((old, _)) = self.current(&idk) else {
            return Err(format!("repl {id} does not exist"));
        };
        self.add_user(&old, -1);
        self.overlay.mark(&old);
        self.overlay.mark(&idk);
        self.overlay.names.insert(old, None);
        self.overlay.ids.insert(idk, None);
        self.len -= 1;
        Ok(())
    }

    /// App `id`'s user, slug and cluster.
    pub fn get(&self, id: &str) -> Option<(String, String, u16)> {
        let (name, cluster) = self.current(&id_key_of(id))?;
        let user = user_of_name(&name);
        let slug = &name[..name.len() - user.len()];
        Some((label_text(user), label_text(slug), cluster))
    }

    /// Every app as (id key, name key, cluster), base entries not overridden first.
    pub fn records(&self) -> impl Iterator<Item = (&[u8], &[u8], u16)> + '_ {
        let overlay = &self.overlay;
        self.base
            .records()
            .filter(move |(id, _, _)| overlay.is_empty() || !overlay.ids.contains_key(*id))
            .chain(
                overlay
                    .ids
                    .iter()
                    .filter_map(|(id, rec)| rec.as_ref().map(|r| (&**id, &*r.name, r.cluster))),
            )
    }

    /// Every app as texts (id, user, slug, cluster), sorted by id: for comparisons and tools.
    pub fn apps(&self) -> Vec<(String, String, String, u16)> {
        let mut v: Vec<_> = self
            .records()
            .map(|(id, name, c)| {
                let user = user_of_name(name);
                let slug = &name[..name.len() - user.len()];
                (id_text(id), label_text(user), label_text(slug), c)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// A new base holding this table's apps (the overlay folded in).
    pub fn fold(&self) -> Result<Base, BuildError> {
        let mut b = Base::builder(self.len);
        for (id, name, cluster) in self.records() {
            b.push(id, name, cluster)?;
        }
        Ok(b.finish())
    }

    /// Heap bytes of the base (the overlay is small and shared).
    pub fn heap_bytes(&self) -> usize {
        self.base.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
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
    fn overlay_shadows_base() {
        let mut t = Table::default();
        t.upsert("r1", "mark", "game", 1).unwrap();
        t.upsert("r2", "mark", "site", 2).unwrap();
        let t0 = Table::from_base(Arc::new(t.fold().unwrap()));
        let mut t = t0.clone();
        assert_eq!(t.lookup_one(&label("r1")), One::App(1));
        assert_eq!(t.lookup_one(&label("mark")), One::User);
        // Move r1, rename r2, delete nothing yet.
        t.upsert("r1", "mark", "game", 3).unwrap();
        t.upsert("r2", "mark", "blog", 2).unwrap();
        assert_eq!(t.lookup_two(&two("game", "mark")), Some(3));
        assert_eq!(t.lookup_two(&two("site", "mark")), None);
        assert_eq!(t.lookup_two(&two("blog", "mark")), Some(2));
        // The published copy is unaffected.
        assert_eq!(t0.lookup_two(&two("game", "mark")), Some(1));
        assert_eq!(t0.lookup_two(&two("site", "mark")), Some(2));
        // Delete both: the user disappears.
        t.delete("r1").unwrap();
        t.delete("r2").unwrap();
        assert_eq!(t.lookup_one(&label("r1")), One::Missing);
        assert_eq!(t.lookup_one(&label("mark")), One::Missing);
        assert_eq!(t.len(), 0);
        assert!(t.delete("r1").is_err());
        // A freed name can be taken by another app.
        t.upsert("r3", "mark", "blog", 0).unwrap();
        assert_eq!(t.lookup_two(&two("blog", "mark")), Some(0));
        assert_eq!(t.lookup_one(&label("mark")), One::User);
        assert_eq!(t.len(), 1);
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
            assert_eq!(t.lookup_one(&label(uuid)), One::App(4));
            assert_eq!(t.lookup_one(&label(other)), One::User);
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
            assert_eq!(folded.lookup_one(&l), t.lookup_one(&l), "r{i}");
        }
        for u in 0..13 {
            let l = label(&format!("u{u}"));
            assert_eq!(folded.lookup_one(&l), t.lookup_one(&l), "u{u}");
        }
        assert_eq!(t.lookup_one(&label("moved")), One::User);
    }
}
