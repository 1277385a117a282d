//! The change events every feed produces: upsert or delete an app, add or delete an ACME
//! challenge TXT value, a checker's health report, with a sequence number, and how a change applies: to the table (the builder's, a fold's, the offline lookup's), or
//! to a model of it (tests and fuzz targets), through [`ChangeTarget`]. A new kind of change
//! is a new variant here and a new method there, not a new match in every consumer.

use std::fmt;

use crate::health::report::HealthReport;
use crate::name::{DomainName, Label};
use crate::table::{Lookup, Moved, Table};

/// The journal's form of a TXT value: hex, lower case (any bytes, one word, round trip).
pub fn value_hex(value: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 * value.len());
    for b in value {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The bytes of a hex value ([`value_hex`]'s form; upper case accepted).
pub fn value_from_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "value {} is not an even number of hex digits",
            crate::name::quote(text)
        ));
    }
    Ok((0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect())
}

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
    /// Add one value (a TXT character-string, 1..=255 bytes) to the challenge RRset at
    /// `name` (`_acme-challenge.<owner>`), or move its expiry when it holds it already.
    /// `expires`: unix seconds, chosen by the writer; the janitor of a writing server deletes
    /// the value then (`feed::acme::expired`).
    TxtAdd {
        name: DomainName,
        value: Box<[u8]>,
        expires: u64,
    },
    /// Delete one value at `name`, or all of them (`None`). Deleting what is not there is no
    /// change.
    TxtDelete {
        name: DomainName,
        value: Option<Box<[u8]>>,
    },
    /// A checker's report about one address of a cluster: replaces the same checker's
    /// earlier report about it (`until` 0: withdraws it). See `table::health`.
    Health(HealthReport),
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
    /// Adds a challenge TXT value (see [`Change::TxtAdd`]).
    fn txt_add(&mut self, name: &DomainName, value: &[u8], expires: u64) -> Self::Outcome;
    /// Deletes one challenge TXT value or all at a name (see [`Change::TxtDelete`]).
    fn txt_delete(&mut self, name: &DomainName, value: Option<&[u8]>) -> Self::Outcome;
    /// Takes a checker's health report (see [`Change::Health`]).
    fn health(&mut self, report: &HealthReport) -> Self::Outcome;
}

/// What a challenge record change does to the apps: nothing.
const NO_MOVE: Moved = Moved {
    from: None,
    to: None,
    new_cluster: false,
};

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

    /// Refused over the limits of the store's parameters (`AcmeStore::set_params`).
    fn txt_add(&mut self, name: &DomainName, value: &[u8], expires: u64) -> Result<Moved, String> {
        self.acme_mut()
            .add(name, value, expires)
            .map(|()| NO_MOVE)
            .map_err(|e| format!("{e} ({})", e.reason()))
    }

    fn txt_delete(&mut self, name: &DomainName, value: Option<&[u8]>) -> Result<Moved, String> {
        self.acme_mut().delete(name, value);
        Ok(NO_MOVE)
    }

    /// Refused over the store's limits (`table::health`).
    fn health(&mut self, report: &HealthReport) -> Result<Moved, String> {
        self.health_mut()
            .apply(report)
            .map(|()| NO_MOVE)
            .map_err(|e| format!("{e} ({})", e.reason()))
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
            Change::TxtAdd {
                name,
                value,
                expires,
            } => target.txt_add(name, value, *expires),
            Change::TxtDelete { name, value } => target.txt_delete(name, value.as_deref()),
            Change::Health(report) => target.health(report),
        }
    }

    /// The challenge record name this change is about, if it is a `TxtAdd` or `TxtDelete`.
    pub fn acme_name(&self) -> Option<&DomainName> {
        match self {
            Change::TxtAdd { name, .. } | Change::TxtDelete { name, .. } => Some(name),
            Change::Upsert { .. } | Change::Delete { .. } | Change::Health(_) => None,
        }
    }

    /// The health report this change carries, if it is one.
    pub fn health_report(&self) -> Option<&HealthReport> {
        match self {
            Change::Health(r) => Some(r),
            _ => None,
        }
    }

    /// The table lookups that applying this change starts with (for prefetching).
    pub fn lookups(&self) -> [Option<Lookup>; 2] {
        match self {
            Change::Upsert { id, user, slug, .. } => {
                Table::lookups_of_change(id.as_str(), Some((slug.as_str(), user.as_str())))
            }
            Change::Delete { id } => Table::lookups_of_change(id.as_str(), None),
            Change::TxtAdd { .. } | Change::TxtDelete { .. } | Change::Health(_) => [None, None],
        }
    }

    /// The labels this change makes answer as an app directly under a zone, with what they
    /// are: an upsert's id (`"repl id"`) and user.
    pub fn labels_answered(&self) -> [Option<(&'static str, &Label)>; 2] {
        match self {
            Change::Upsert { id, user, .. } => [Some(("repl id", id)), Some(("user", user))],
            Change::Delete { .. }
            | Change::TxtAdd { .. }
            | Change::TxtDelete { .. }
            | Change::Health(_) => [None, None],
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
            Change::TxtAdd {
                name,
                value,
                expires,
            } => write!(
                f,
                "{} txt-add {} {expires} {}",
                self.seq,
                name_text(name),
                value_hex(value)
            ),
            Change::TxtDelete { name, value: None } => {
                write!(f, "{} txt-del {}", self.seq, name_text(name))
            }
            Change::TxtDelete {
                name,
                value: Some(v),
            } => write!(
                f,
                "{} txt-del {} {}",
                self.seq,
                name_text(name),
                value_hex(v)
            ),
            Change::Health(r) => write!(
                f,
                "{} health {} {} {} {} {}",
                self.seq,
                r.checker,
                r.cluster,
                r.addr,
                if r.up { "up" } else { "down" },
                r.until
            ),
        }
    }
}

/// A challenge name as the journal writes it: without the final dot.
fn name_text(name: &DomainName) -> String {
    let t = name.to_string();
    match t.strip_suffix('.') {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => t,
    }
}
