//! The master table: the mutable set of apps the builder thread owns and applies changes to.

use std::collections::HashMap;

use crate::feed::change::{Change, Sequenced};
use crate::name::Label;
use crate::table::{App, BuildError, Table};

/// An app as the master table keeps it: the cluster by name, so that a config reload can
/// renumber clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    user: Label,
    slug: Label,
    cluster: Label,
}

/// The mutable table of apps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Master {
    apps: HashMap<Label, Entry>,
    /// `(user, slug)` -> repl id, to keep names unique.
    names: HashMap<(Label, Label), Label>,
    last_seq: u64,
}

impl Master {
    /// An empty table.
    pub fn new() -> Master {
        Master::default()
    }

    /// The sequence number of the last change applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The number of apps.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Whether there is no app.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Applies one change. `known_cluster` says whether a cluster name is configured. A
    /// rejected change leaves the table as it was (its sequence number still counts as seen).
    pub fn apply(
        &mut self,
        s: &Sequenced,
        known_cluster: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        self.last_seq = self.last_seq.max(s.seq);
        match &s.change {
            Change::Upsert {
                id,
                user,
                slug,
                cluster,
            } => {
                if !known_cluster(cluster.as_str()) {
                    return Err(format!("cluster {cluster} is not in the configuration"));
                }
                let name = (user.clone(), slug.clone());
                if let Some(holder) = self.names.get(&name) {
                    if holder != id {
                        return Err(format!(
                            "{slug}.{user} already belongs to repl {holder}; delete or rename it first"
                        ));
                    }
                }
                let entry = Entry {
                    user: user.clone(),
                    slug: slug.clone(),
                    cluster: cluster.clone(),
                };
                if let Some(old) = self.apps.insert(id.clone(), entry) {
                    if (&old.user, &old.slug) != (user, slug) {
                        self.names.remove(&(old.user, old.slug));
                    }
                }
                self.names.insert(name, id.clone());
                Ok(())
            }
            Change::Delete { id } => match self.apps.remove(id) {
                Some(old) => {
                    self.names.remove(&(old.user, old.slug));
                    Ok(())
                }
                None => Err(format!("repl {id} does not exist")),
            },
        }
    }

    /// Every app, with its cluster numbered by `cluster_index` (apps whose cluster it does not
    /// know are left out).
    pub fn apps(&self, cluster_index: impl Fn(&str) -> Option<u16>) -> Vec<App> {
        let mut apps: Vec<App> = self
            .apps
            .iter()
            .filter_map(|(id, e)| {
                Some(App {
                    id: id.clone(),
                    user: e.user.clone(),
                    slug: e.slug.clone(),
                    cluster: cluster_index(e.cluster.as_str())?,
                })
            })
            .collect();
        apps.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        apps
    }

    /// Builds the immutable lookup table.
    pub fn table(&self, cluster_index: impl Fn(&str) -> Option<u16>) -> Result<Table, BuildError> {
        Table::build(&self.apps(cluster_index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::journal::parse_line;
    use crate::table::hash_key;

    fn apply(m: &mut Master, line: &str) -> Result<(), String> {
        let s = parse_line(line).unwrap().unwrap();
        m.apply(&s, |c| c == "c1" || c == "c2")
    }

    #[test]
    fn upsert_move_rename_delete() {
        let mut m = Master::new();
        apply(&mut m, "1 set r1 mark game c1").unwrap();
        apply(&mut m, "2 set r2 mark site c1").unwrap();
        apply(&mut m, "3 set r1 mark game c2").unwrap(); // move
        apply(&mut m, "4 set r2 mark blog c2").unwrap(); // rename
        assert_eq!(m.len(), 2);
        assert_eq!(m.last_seq(), 4);
        let t = m.table(|c| Some(if c == "c1" { 0 } else { 1 })).unwrap();
        let k = b"\x04game\x04mark";
        assert_eq!(t.by_name(k, hash_key(k)), Some(1));
        let k = b"\x04site\x04mark";
        assert_eq!(t.by_name(k, hash_key(k)), None);
        apply(&mut m, "5 delete r2").unwrap();
        // The freed name can be taken by another app.
        apply(&mut m, "6 set r3 mark game2 c1").unwrap();
        apply(&mut m, "7 set r4 mark blog c1").unwrap();
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn rejects_without_changing_anything() {
        let mut m = Master::new();
        apply(&mut m, "1 set r1 mark game c1").unwrap();
        let before = m.clone();
        assert!(apply(&mut m, "2 set r2 mark game c1")
            .unwrap_err()
            .contains("already belongs"));
        assert!(apply(&mut m, "3 set r2 mark x nope")
            .unwrap_err()
            .contains("not in the configuration"));
        assert!(apply(&mut m, "4 delete r9")
            .unwrap_err()
            .contains("does not exist"));
        assert_eq!(m.apps, before.apps);
        assert_eq!(m.names, before.names);
        assert_eq!(m.last_seq(), 4);
    }
}
