//! The app table the query path reads: an immutable compact [`Base`] shared by `Arc`, plus an
//! [`Overlay`] of the changes applied since it was built.
//!
//! Readers look in the overlay first (only when it is not empty), then in the base. The builder
//! thread applies changes to its own `Table` (copy-on-write overlay, O(1) to clone for a
//! snapshot) and, when the overlay grows, folds it into a new base in the background.
//!
//! Modules: `base` (the compact store) over `index` (its open-addressing indexes) and
//! `memory` (huge-page allocations, prefetch hints); `overlay` over `versions` (the
//! multi-version maps); `key` (key encodings and the hash); `clusters` (the cluster registry);
//! `persist` (the on-disk form a checkpoint holds) over `le` (its integer encodings).

pub mod acme;
pub(crate) mod base;
pub(crate) mod clusters;
pub mod health;
mod index;
#[doc(hidden)]
pub mod key;
pub(crate) mod le;
mod memory;
pub(crate) mod overlay;
pub(crate) mod persist;
pub(crate) mod versions;

use std::sync::Arc;

pub use acme::{AcmeEntry, AcmeReject, AcmeStore};
pub use base::{Base, BuildError, Which};
pub use clusters::{Clusters, MAX_CLUSTERS};
pub use health::{HealthReject, HealthStore};
pub use key::hash_key;
pub use overlay::Overlay;

use key::{id_key, id_key_of, id_text, label_text, name_key_of, user_of_name, UUID_KEY_LEN};
use overlay::{Bytes, Owned, Val, IDS, NAMES, USERS};

/// One app, by its texts (for building tables and for tests).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct App {
    pub id: crate::name::Label,
    pub user: crate::name::Label,
    pub slug: crate::name::Label,
    /// Index into the table's cluster registry ([`Table::clusters`]).
    pub cluster: u16,
}

/// Where a lookup starts: its base index and key hash (for prefetching).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub which: Which,
    pub hash: u64,
}

/// What a single label under a zone is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelIs {
    /// A repl id: the app's cluster.
    App(u16),
    /// A user with at least one app (an empty non-terminal).
    User,
    Missing,
}

/// The overlay map that holds the keys of a base index.
fn overlay_map(which: Which) -> usize {
    match which {
        Which::Ids => IDS,
        Which::Names => NAMES,
    }
}

/// The table of apps: base plus overlay, and the registry of cluster names its apps' cluster
/// indexes refer to.
#[derive(Clone, Debug, Default)]
pub struct Table {
    base: Arc<Base>,
    overlay: Overlay,
    len: usize,
    clusters: Clusters,
    /// The ACME challenge TXT records (not apps: they travel with the table).
    acme: AcmeStore,
    /// The checkers' health reports (they travel with the table too).
    health: HealthStore,
}

/// What a change did to an app's cluster (indexes into the table's registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// The app's cluster before the change (`None`: it did not exist).
    pub from: Option<u16>,
    /// Its cluster after the change (`None`: deleted).
    pub to: Option<u16>,
    /// Whether `to`'s name entered the registry with this change.
    pub new_cluster: bool,
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

    /// A table that is `base` with no change on top (and an empty cluster registry: see
    /// [`Table::with_clusters`]).
    pub fn from_base(base: Arc<Base>) -> Table {
        let len = base.len();
        Table {
            overlay: Overlay::for_base(len),
            base,
            len,
            clusters: Clusters::default(),
            acme: AcmeStore::default(),
            health: HealthStore::default(),
        }
    }

    /// A table from its parts (as read from a checkpoint; the overlay made with
    /// `Overlay::for_base(base.len())`; the registry set with [`Table::with_clusters`]).
    pub fn from_parts(base: Arc<Base>, overlay: Overlay, len: usize) -> Table {
        Table {
            base,
            overlay,
            len,
            clusters: Clusters::default(),
            acme: AcmeStore::default(),
            health: HealthStore::default(),
        }
    }

    /// This table with `clusters` as its cluster registry (the names its indexes refer to).
    pub fn with_clusters(mut self, clusters: Clusters) -> Table {
        self.clusters = clusters;
        self
    }

    /// This table with `acme` as its challenge records.
    pub fn with_acme(mut self, acme: AcmeStore) -> Table {
        self.acme = acme;
        self
    }

    /// This table with `health` as its health reports.
    pub fn with_health(mut self, health: HealthStore) -> Table {
        self.health = health;
        self
    }

    /// The checkers' health reports.
    pub fn health(&self) -> &HealthStore {
        &self.health
    }

    /// The health reports, to change (changes: `Change::apply_to`).
    pub fn health_mut(&mut self) -> &mut HealthStore {
        &mut self.health
    }

    /// The ACME challenge TXT records.
    #[inline]
    pub fn acme(&self) -> &AcmeStore {
        &self.acme
    }

    /// The ACME challenge TXT records, to change (changes: `Change::apply_to`; the TTL and
    /// limits: `AcmeStore::set_params`).
    pub fn acme_mut(&mut self) -> &mut AcmeStore {
        &mut self.acme
    }

    /// The cluster names this table's cluster indexes refer to, by index.
    pub fn clusters(&self) -> &Clusters {
        &self.clusters
    }

    /// Whether a table being filled by a stream of changes (a first load, a rebuild) should
    /// be folded now: its overlay holds more than 2^18 entries and more than its base, so
    /// folding as it grows costs amortised linear time.
    pub fn fold_due(&self) -> bool {
        self.overlay().len() > (1 << 18).max(self.base().len())
    }

    /// A table of this one's apps with the overlay folded into a new base (see
    /// [`Table::fold`]) and the same cluster registry.
    pub fn folded(&self) -> Result<Table, BuildError> {
        Ok(Table::from_base(Arc::new(self.fold()?))
            .with_clusters(self.clusters.clone())
            .with_acme(self.acme.clone())
            .with_health(self.health.clone()))
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
    pub fn find_id_or_user(&self, label: &[u8]) -> LabelIs {
        let mut buf = [0u8; UUID_KEY_LEN];
        let idk = id_key(label, &mut buf);
        let compressed = idk.len() != label.len();
        let id_hash = hash_key(idk);
        match self.overlay.cluster(IDS, idk, id_hash) {
            Some(Some(cluster)) => return LabelIs::App(cluster),
            Some(None) => {}
            None => {
                if let Some((cluster, _)) = self.base.by_id(idk, id_hash) {
                    return LabelIs::App(cluster);
                }
            }
        }
        let user_hash = if compressed { hash_key(label) } else { id_hash };
        if self.user_apps(label, user_hash) > 0 {
            LabelIs::User
        } else {
            LabelIs::Missing
        }
    }

    /// The lookup `find_id_or_user(label)` starts with, for prefetching.
    #[inline]
    pub fn lookup_of_id_or_user(&self, label: &[u8]) -> Lookup {
        let mut buf = [0u8; UUID_KEY_LEN];
        Lookup {
            which: Which::Ids,
            hash: hash_key(id_key(label, &mut buf)),
        }
    }

    /// The lookup `find_slug_user(key)` starts with, for prefetching.
    #[inline]
    pub fn lookup_of_slug_user(&self, key: &[u8]) -> Lookup {
        Lookup {
            which: Which::Names,
            hash: hash_key(key),
        }
    }

    /// Prefetches the base slot (and the overlay filter word) of a lookup.
    #[inline]
    pub fn prefetch_slot(&self, l: &Lookup) {
        self.base.prefetch_slot(l.which, l.hash);
        if !self.overlay.is_empty() {
            self.overlay.prefetch_filter(l.hash);
        }
    }

    /// Prefetches the base record a lookup's slot points to (after `prefetch_slot`).
    #[inline]
    pub fn prefetch_record(&self, l: &Lookup) {
        self.base.prefetch_record(l.which, l.hash);
    }

    /// The lookups a change to app `id` starts with: of its id, and for an upsert of its
    /// name `slug.user` (texts as the journal gives them; `None` for what cannot be a key).
    /// For the builder, to prefetch a batch's slots before applying it.
    pub fn lookups_of_change(id: &str, name: Option<(&str, &str)>) -> [Option<Lookup>; 2] {
        let mut wire = [0u8; 64];
        let mut buf = [0u8; UUID_KEY_LEN];
        let id = (id.len() < wire.len()).then(|| {
            wire[0] = id.len() as u8;
            wire[1..=id.len()].copy_from_slice(id.as_bytes());
            Lookup {
                which: Which::Ids,
                hash: hash_key(id_key(&wire[..=id.len()], &mut buf)),
            }
        });
        let name = name
            .filter(|(slug, user)| slug.len() < 64 && user.len() < 64)
            .map(|(slug, user)| {
                let mut key = [0u8; 128];
                key[0] = slug.len() as u8;
                key[1..=slug.len()].copy_from_slice(slug.as_bytes());
                let u = slug.len() + 1;
                key[u] = user.len() as u8;
                key[u + 1..=u + user.len()].copy_from_slice(user.as_bytes());
                Lookup {
                    which: Which::Names,
                    hash: hash_key(&key[..=u + user.len()]),
                }
            });
        [id, name]
    }

    /// Prefetches what a change's lookup reads first: the base slot, the overlay's filter
    /// word and its slot (the builder's first stage; a hint only).
    #[inline]
    pub fn prefetch_change_slot(&self, l: &Lookup) {
        self.base.prefetch_slot(l.which, l.hash);
        self.overlay.prefetch_home(overlay_map(l.which), l.hash);
    }

    /// Prefetches what a change's lookup reads next: the base record and the overlay version
    /// the slots point to (after `prefetch_change_slot`, once those are here).
    #[inline]
    pub fn prefetch_change_record(&self, l: &Lookup) {
        self.base.prefetch_record(l.which, l.hash);
        self.overlay.prefetch_head(overlay_map(l.which), l.hash);
    }

    /// The cluster of the app named by `key` (slug label then user label, lower-case).
    #[inline]
    pub fn find_slug_user(&self, key: &[u8]) -> Option<u16> {
        let hash = hash_key(key);
        if let Some(v) = self.overlay.cluster(NAMES, key, hash) {
            return v;
        }
        self.base.by_name(key, hash).map(|(c, _)| c)
    }

    fn user_apps(&self, user: &[u8], hash: u64) -> i64 {
        let delta = self.overlay.user_delta(user, hash);
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
    fn current(&self, idk: &[u8]) -> Option<(Bytes, u16)> {
        match self.overlay.record(IDS, idk) {
            Some(rec) => rec.map(|(c, name)| (name, c)),
            None => self
                .base
                .by_id(idk, hash_key(idk))
                .map(|(c, off)| (Bytes::from(self.base.part(off, index::Part::Name)), c)),
        }
    }

    fn add_user(&mut self, name: &[u8], delta: i64) -> Result<(), String> {
        let user = user_of_name(name);
        let now = self.overlay.user_delta(user, hash_key(user));
        self.overlay.put(USERS, user, Val::Count(now + delta))
    }

    /// The keys of an app, or why they cannot be.
    fn keys_of(id: &str, user: &str, slug: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
        let idk = id_key_of(id);
        let name = name_key_of(slug, user);
        if idk.len() > versions::MAX_BYTES || name.len() > versions::MAX_BYTES {
            return Err(format!("{id} / {slug}.{user}: a label is too long"));
        }
        Ok((idk, name))
    }

    /// Creates or replaces app `id` on the cluster called `cluster`, which enters the
    /// registry if it is not there yet (only when the change is taken: a refused change
    /// leaves the registry as it was). Refused, besides `upsert`'s reasons, when the registry
    /// is full.
    pub fn upsert_named(
        &mut self,
        id: &str,
        user: &str,
        slug: &str,
        cluster: &crate::name::Label,
    ) -> Result<Moved, String> {
        let (c, new_cluster) = self.clusters.slot_for(cluster)?;
        let from = self.upsert_from(id, user, slug, c)?;
        if new_cluster {
            self.clusters.push(cluster.clone());
        }
        Ok(Moved {
            from,
            to: Some(c),
            new_cluster,
        })
    }

    /// Removes app `id`, saying which cluster it was on.
    pub fn delete_moved(&mut self, id: &str) -> Result<Moved, String> {
        let from = self.delete_from(id)?;
        Ok(Moved {
            from: Some(from),
            to: None,
            new_cluster: false,
        })
    }

    /// Creates or replaces app `id` (texts are lower-case labels) on cluster index `cluster`.
    /// A new user or slug renames it; its old name is freed.
    pub fn upsert(&mut self, id: &str, user: &str, slug: &str, cluster: u16) -> Result<(), String> {
        self.upsert_from(id, user, slug, cluster).map(|_| ())
    }

    /// `upsert`, returning the app's cluster before (`None`: a new app). A refusal changes
    /// nothing.
    fn upsert_from(
        &mut self,
        id: &str,
        user: &str,
        slug: &str,
        cluster: u16,
    ) -> Result<Option<u16>, String> {
        let (idk, name) = Self::keys_of(id, user, slug)?;
        // Each key is looked up once, and its version replaced from there. What is compared
        // is compared in place; only a rename or a refusal copies a key out.
        let name_at = self.overlay.at(NAMES, &name);
        let other_holder = match self.overlay.state(&name_at) {
            Some(Some(e)) if !self.overlay.aux_is(e, &idk) => Some(self.overlay.aux(e)),
            Some(_) => None,
            None => self
                .base
                .by_name(&name, name_at.hash)
                .map(|(_, off)| self.base.part(off, index::Part::Id))
                .filter(|holder| **holder != idk[..])
                .map(Bytes::from),
        };
        if let Some(holder) = other_holder {
            return Err(format!(
                "{slug}.{user} already belongs to repl {}; delete or rename it first",
                id_text(&holder)
            ));
        }
        let id_at = self.overlay.at(IDS, &idk);
        // The app's cluster and name until now: `None` for a new app, else its cluster and
        // whether its name changes.
        let was = match self.overlay.state(&id_at) {
            Some(Some(e)) => Some((
                self.overlay.cluster_of(e).unwrap_or(cluster),
                (!self.overlay.aux_is(e, &name)).then(|| self.overlay.aux(e)),
            )),
            Some(None) => None,
            None => self.base.by_id(&idk, id_at.hash).map(|(c, off)| {
                let old = self.base.part(off, index::Part::Name);
                (c, (*old != name[..]).then(|| Bytes::from(old)))
            }),
        };
        let from = was.as_ref().map(|(c, _)| *c);
        match was.map(|(_, renamed_from)| renamed_from) {
            Some(Some(old)) => {
                self.add_user(&old, -1)?;
                self.add_user(&name, 1)?;
                self.overlay.put(NAMES, &old, Val::Gone)?;
            }
            Some(None) => {}
            None => {
                self.add_user(&name, 1)?;
                self.len += 1;
            }
        }
        self.overlay
            .put_at(NAMES, &name, &name_at, Val::Rec { cluster, aux: &idk })?;
        self.overlay.put_at(
            IDS,
            &idk,
            &id_at,
            Val::Rec {
                cluster,
                aux: &name,
            },
        )?;
        Ok(from)
    }

    /// Removes app `id`.
    pub fn delete(&mut self, id: &str) -> Result<(), String> {
        self.delete_from(id).map(|_| ())
    }

    /// `delete`, returning the cluster the app was on.
    fn delete_from(&mut self, id: &str) -> Result<u16, String> {
        let (idk, _) = Self::keys_of(id, "", "")?;
        let Some((old, cluster)) = self.current(&idk) else {
            return Err(format!("repl {id} does not exist"));
        };
        self.add_user(&old, -1)?;
        self.overlay.put(NAMES, &old, Val::Gone)?;
        self.overlay.put(IDS, &idk, Val::Gone)?;
        self.len -= 1;
        Ok(cluster)
    }

    /// App `id`'s user, slug and cluster.
    pub fn get(&self, id: &str) -> Option<(String, String, u16)> {
        let (name, cluster) = self.current(&id_key_of(id))?;
        let user = user_of_name(&name);
        let slug = &name[..name.len() - user.len()];
        Some((label_text(user), label_text(slug), cluster))
    }

    /// Calls `f` with every app as (id key, name key, cluster), base entries not overridden
    /// first.
    pub fn for_each_record(&self, mut f: impl FnMut(&[u8], &[u8], u16)) {
        for (id, name, c) in self.base.records() {
            if self.overlay.cluster(IDS, id, hash_key(id)).is_none() {
                f(id, name, c);
            }
        }
        for (id, val) in self.overlay.entries(IDS) {
            if let Owned::Rec(c, name) = val {
                f(&id, &name, c);
            }
        }
    }

    /// Every app as texts (id, user, slug, cluster), sorted by id: for comparisons and tools.
    pub fn apps(&self) -> Vec<(String, String, String, u16)> {
        let mut v = Vec::with_capacity(self.len);
        self.for_each_record(|id, name, c| {
            let user = user_of_name(name);
            let slug = &name[..name.len() - user.len()];
            v.push((id_text(id), label_text(user), label_text(slug), c));
        });
        v.sort_unstable();
        v
    }

    /// A new base holding this table's apps (the overlay folded in): a copy of the base with
    /// the overlay's ids patched in (a copy and O(overlay) work instead of a build of every
    /// record), compacted by a fresh build once an eighth of its arena is records no index
    /// uses any more (left by renames and deletes).
    pub fn fold(&self) -> Result<Base, BuildError> {
        // Prefetch distance, in changes: far enough ahead for an index slot to arrive from
        // memory before its change is patched, and as far again for the record it points to.
        const AHEAD: usize = 16;
        let mut b = self.base.copy_with_room(self.overlay.len() * 48);
        let order = self.overlay.versions_in_log_order(IDS);
        let hashes: Vec<u64> = order
            .iter()
            .map(|&e| hash_key(&self.overlay.version_key(e)))
            .collect();
        for (i, &e) in order.iter().enumerate() {
            if let Some(&h) = hashes.get(i + 2 * AHEAD) {
                b.prefetch_slot(Which::Ids, h);
            }
            if let Some(&h) = hashes.get(i + AHEAD) {
                b.prefetch_record(Which::Ids, h);
            }
            let (id, val) = self.overlay.version(IDS, e);
            match val {
                Owned::Rec(cluster, name) => {
                    b.patch_hashed(&id, hashes[i], Some((&name, cluster)))?
                }
                _ => b.patch_hashed(&id, hashes[i], None)?,
            }
        }
        if b.garbage() * 8 > b.arena_len() {
            return Table::from_base(Arc::new(b)).rebuild();
        }
        // No MADV_COLLAPSE here: the copy was advised for huge pages before it was written,
        // and collapsing drains every CPU's page lists (work queued on each CPU, waited for),
        // which stalled folds under query load for seconds.
        Ok(b)
    }

    /// A new base holding this table's apps, built record by record.
    pub fn rebuild(&self) -> Result<Base, BuildError> {
        let mut b = Base::builder(self.len);
        let mut failed = None;
        self.for_each_record(|id, name, cluster| {
            if failed.is_none() {
                failed = b.push(id, name, cluster).err();
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(b.finish()),
        }
    }

    /// Heap bytes of the base (the overlay is small and shared).
    pub fn heap_bytes(&self) -> usize {
        self.base.heap_bytes()
    }
}

#[cfg(test)]
mod tests;
