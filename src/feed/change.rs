//! The change events every feed produces: upsert or delete an app, with a sequence number.

use std::fmt;

use crate::name::Label;

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
