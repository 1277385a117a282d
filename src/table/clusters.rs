//! The cluster registry: the cluster names the feed has used, in the order it first used
//! them. A table's cluster indexes point into its registry, not into the configuration's list
//! of clusters, so what the table holds depends on the feed alone: a change naming a cluster
//! the configuration lacks is kept like any other (its app answers SERVFAIL until a
//! configuration with that cluster is loaded), and a configuration that reorders, adds or
//! drops clusters renumbers nothing.
//!
//! Append-only: an index, once given, names the same cluster for the life of the table and of
//! every checkpoint written from it. Shared by `Arc` between a table's copies (a snapshot, a
//! fold, a checkpoint) and copied only when a new name arrives (rare, and at most
//! [`MAX_CLUSTERS`] names).

use std::sync::Arc;

use crate::name::Label;

/// The most cluster names a registry holds; a change that would add one more is refused.
pub const MAX_CLUSTERS: usize = 4096;

/// The cluster names a table's indexes refer to, by index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clusters {
    names: Arc<Vec<Label>>,
}

impl Clusters {
    /// A registry of `names` (as read from a checkpoint), or why it cannot be one: a name
    /// listed twice, or more than [`MAX_CLUSTERS`] of them.
    pub fn from_names(names: Vec<Label>) -> Result<Clusters, String> {
        if names.len() > MAX_CLUSTERS {
            return Err(format!(
                "{} cluster names (at most {MAX_CLUSTERS})",
                names.len()
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("cluster {n} is listed twice"));
            }
        }
        Ok(Clusters {
            names: Arc::new(names),
        })
    }

    /// The names, by index.
    pub fn names(&self) -> &[Label] {
        &self.names
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of index `i`.
    pub fn get(&self, i: u16) -> Option<&Label> {
        self.names.get(usize::from(i))
    }

    /// The index of `name`, if it has one.
    #[inline]
    pub fn index_of(&self, name: &str) -> Option<u16> {
        self.names
            .iter()
            .position(|n| n.as_str() == name)
            .map(|i| i as u16)
    }

    /// The index `name` has, or would get if it were added now (then `true`); an error when
    /// the registry is full.
    pub fn slot_for(&self, name: &Label) -> Result<(u16, bool), String> {
        if let Some(i) = self.index_of(name.as_str()) {
            return Ok((i, false));
        }
        if self.names.len() >= MAX_CLUSTERS {
            return Err(format!(
                "cluster {name} would be cluster name number {} the feed has used (at most {MAX_CLUSTERS})",
                self.names.len() + 1
            ));
        }
        Ok((self.names.len() as u16, true))
    }

    /// Adds `name` at the end (its index: the old length). The caller checked with `slot_for`
    /// that it is new and fits.
    pub(crate) fn push(&mut self, name: Label) {
        debug_assert!(self.index_of(name.as_str()).is_none());
        debug_assert!(self.names.len() < MAX_CLUSTERS);
        Arc::make_mut(&mut self.names).push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> Label {
        s.parse().unwrap()
    }

    #[test]
    fn names_keep_their_index_and_copies_do_not_see_later_names() {
        let mut c = Clusters::default();
        assert_eq!(c.slot_for(&label("b")), Ok((0, true)));
        c.push(label("b"));
        let before = c.clone();
        assert_eq!(c.slot_for(&label("a")), Ok((1, true)));
        c.push(label("a"));
        assert_eq!(c.slot_for(&label("b")), Ok((0, false)));
        assert_eq!(c.index_of("a"), Some(1));
        assert_eq!(before.len(), 1, "a copy is unchanged");
        assert_eq!(c.get(1).map(Label::as_str), Some("a"));
        assert_eq!(c.get(2), None);
    }

    #[test]
    fn the_registry_is_capped_and_checked_when_read() {
        let names: Vec<Label> = (0..MAX_CLUSTERS).map(|i| label(&format!("c{i}"))).collect();
        let full = Clusters::from_names(names.clone()).unwrap();
        assert_eq!(full.slot_for(&label("c7")), Ok((7, false)));
        let e = full.slot_for(&label("one-more")).unwrap_err();
        assert!(e.contains("at most 4096"), "{e}");
        let mut over = names;
        over.push(label("one-more"));
        assert!(Clusters::from_names(over).is_err());
        let e = Clusters::from_names(vec![label("a"), label("b"), label("a")]).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }
}
