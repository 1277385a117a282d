//! The change events every feed produces: upsert or delete an app, with a sequence number,
//! and how a change applies: to the table (the builder's, a fold's, the offline lookup's), or
//! to a model of it (tests and fuzz targets), through [`ChangeTarget`]. A new kind of change
//! is a new variant here and a new method there, not a new match in every consumer.

use std::fmt;

use crate::name::Label;
use crate::table::{Lookup, Moved, Table};

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create or replace the app with this id (a rename of user or slug is an upsert).
    Upsert {
        id: Label,
        user: Label,
        slug: Label,
        cluster: Label,
    },
    /// Remove the app with this id.
    Delete { id: Label },
}

/// The app an upsert creates or replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertRef<'a> {
    pub id: &'a Label,
    pub user: &'a Label,
    pub slug: &'a Label,
    pub cluster: &'a Label,
}

/// What changes apply to: [`Table`], or a model of it that checks the table's rules (tests,
/// fuzz targets). Each kind of change is one method.
pub trait ChangeTarget {
    /// What applying one change returns.
    type Outcome;
    /// Creates or replaces the app `app.id`.
    fn upsert(&mut self, app: UpsertRef<'_>) -> Self::Outcome;
    /// Removes the app `id`.
    fn delete(&mut self, id: &Label) -> Self::Outcome;
}

/// An upsert's cluster is looked up in the table's cluster registry, and added to it when
/// new, whether or not the configuration has it: what the table holds depends on the feed
/// alone (an app on a cluster the configuration lacks answers SERVFAIL until a configuration
/// with it is loaded). Refused: a name another app holds, an unknown id to delete, a new
/// cluster name once the registry is full. Returns what the change did to the app's cluster,
/// for the caller to count and report.
impl ChangeTarget for Table {
    type Outcome = Result<Moved, String>;

    fn upsert(&mut self, app: UpsertRef<'_>) -> Result<Moved, String> {
        self.upsert_named(
            app.id.as_str(),
            app.user.as_str(),
            app.slug.as_str(),
            app.cluster,
        )
    }

    fn delete(&mut self, id: &Label) -> Result<Moved, String> {
        self.delete_moved(id.as_str())
    }
}

impl Change {
    /// Applies this change to `target` (see [`ChangeTarget`]; for a [`Table`]:
    /// `Result<Moved, String>`).
    pub fn apply_to<T: ChangeTarget + ?Sized>(&self, target: &mut T) -> T::Outcome {
        match self {
            Change::Upsert {
                id,
                user,
                slug,
                cluster,
            } => target.upsert(UpsertRef {
                id,
                user,
                slug,
                cluster,
            }),
            Change::Delete { id } => target.delete(id),
        }
    }

    /// The table lookups that applying this change starts with (for prefetching).
    pub fn lookups(&self) -> [Option<Lookup>; 2] {
        match self {
            Change::Upsert { id, user, slug, .. } => {
                Table::lookups_of_change(id.as_str(), Some((slug.as_str(), user.as_str())))
            }
            Change::Delete { id } => Table::lookups_of_change(id.as_str(), None),
        }
    }

    /// The labels this change makes answer as an app directly under a zone, with what they
    /// are: an upsert's id (`"repl id"`) and user.
    pub fn labels_answered(&self) -> [Option<(&'static str, &Label)>; 2] {
        match self {
            Change::Upsert { id, user, .. } => [Some(("repl id", id)), Some(("user", user))],
            Change::Delete { .. } => [None, None],
        }
    }
}

/// A change with its position in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// Strictly increasing within a feed.
    pub seq: u64,
    pub change: Change,
}

impl fmt::Display for Sequenced {
    /// The journal's line format (without the newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Upsert {
                id,
                user,
                slug,
                cluster,
            } => write!(f, "{} set {id} {user} {slug} {cluster}", self.seq),
            Change::Delete { id } => write!(f, "{} delete {id}", self.seq),
        }
    }
}
