//! Folding in the background: a thread folds a table's overlay into a new base while the
//! builder keeps applying changes, then catches up with the changes the builder sent it
//! meanwhile. The builder installs the result and replays only what arrived after the fold
//! thread's last look.
//!
//! Applying a change (`Change::apply_to`) depends on the table and the change alone (not on
//! the configuration), so the changes the builder applied apply again, in the same order, on
//! the folded copy of the same state: to the same apps, and with the same cluster names
//! entering the cluster registry at the same indexes.
//!
//! The fold thread runs at a raised priority (`os::FOLD_NICE`) where the process may raise it
//! (root or CAP_SYS_NICE): a fold costs the query threads mostly while it runs (it streams the
//! whole base through the shared cache), so a short fold costs them less than a long, polite
//! one.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::feed::change::Change;
use crate::os;
use crate::table::{BuildError, Table};

/// A fold in the background, and the channel on which the builder sends it the changes it
/// applies meanwhile.
pub struct RunningFold {
    thread: JoinHandle<Result<Table, BuildError>>,
    feed: crossbeam_channel::Sender<Change>,
    left: crossbeam_channel::Receiver<Change>,
}

impl RunningFold {
    /// Starts folding `table` (a copy of the builder's) on a thread of its own.
    pub fn start(table: Table) -> io::Result<RunningFold> {
        let (feed, left) = crossbeam_channel::unbounded::<Change>();
        let changes = left.clone();
        let thread = std::thread::Builder::new()
            .name("fold".into())
            .spawn(move || {
                if !os::set_thread_nice(os::FOLD_NICE) {
                    tracing::debug!(
                        "fold thread: cannot set nice {}; it runs at the default",
                        os::FOLD_NICE
                    );
                }
                fold_and_catch_up(table, &changes)
            })?;
        Ok(RunningFold { thread, feed, left })
    }

    /// Hands the fold a change the builder applied after the fold started.
    pub fn send(&self, change: Change) {
        // The receiver lives in `self`: the send cannot fail.
        let _ = self.feed.send(change);
    }

    /// Whether the fold thread is done (`finish` then does not wait).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the fold, then applies the changes still queued (accepted once by the
    /// builder on the same state, they apply again).
    pub fn finish(self) -> Result<Table, String> {
        match self.thread.join() {
            Ok(Ok(mut table)) => {
                for change in self.left.try_iter() {
                    reapply(&mut table, &change);
                }
                Ok(table)
            }
            Ok(Err(e)) => Err(format!("folding the table failed: {e}")),
            Err(_) => Err("the fold thread panicked".into()),
        }
    }
}

/// Applies again a change the builder applied. It cannot fail (the same change on the same
/// state); if it did, the fold's table would differ from the builder's: say so.
fn reapply(table: &mut Table, change: &Change) {
    if let Err(e) = change.apply_to(table) {
        tracing::error!("fold: a change the builder applied does not apply again: {change:?}: {e}");
    }
}

/// The fold thread: folds `table`'s overlay into a new base (the cluster registry kept), then
/// applies on top of it the changes the builder has applied since (sent on `changes`) until
/// none is waiting. Building the new table's overlay (page faults in fresh maps included)
/// happens here, not on the builder, which only replays what arrives after.
fn fold_and_catch_up(
    table: Table,
    changes: &crossbeam_channel::Receiver<Change>,
) -> Result<Table, BuildError> {
    let base = table.fold()?;
    let clusters = table.clusters().clone();
    let acme = table.acme().clone();
    let health = table.health().clone();
    drop(table);
    let mut table = Table::from_base(Arc::new(base))
        .with_clusters(clusters)
        .with_acme(acme)
        .with_health(health);
    while let Ok(change) = changes.try_recv() {
        reapply(&mut table, &change);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::check_label;
    use crate::synth;

    fn upsert(id: &str, cluster: &str) -> Change {
        Change::Upsert {
            id: check_label(id).unwrap(),
            user: check_label("someone").unwrap(),
            slug: check_label(id).unwrap(),
            cluster: check_label(cluster).unwrap(),
        }
    }

    /// 100 apps in the base (on clusters 0 and 1 of a registry of two), and app "first" (on
    /// cluster 0) in the overlay.
    fn table_with_first() -> Table {
        let names = (0..2).map(|i| check_label(&synth::cluster_name(i)).unwrap());
        let clusters = crate::table::Clusters::from_names(names.collect()).unwrap();
        let mut table = Table::build(&synth::apps(100, 2, 1))
            .unwrap()
            .with_clusters(clusters);
        upsert("first", &synth::cluster_name(0))
            .apply_to(&mut table)
            .unwrap();
        crate::feed::acme::add(acme_name(), b"before", 0, 60)
            .apply_to(&mut table)
            .unwrap();
        table
    }

    fn acme_name() -> crate::name::DomainName {
        "_acme-challenge.someone.repl.co".parse().unwrap()
    }

    /// Changes the builder applies during a fold: moves, a new app on a cluster name the
    /// registry does not have yet (a configuration may not have it either), another after it.
    fn during() -> Vec<Change> {
        vec![
            upsert("second", &synth::cluster_name(1)),
            upsert("first", &synth::cluster_name(1)),
            upsert("third", "elsewhere"),
            upsert("fourth", &synth::cluster_name(0)),
            upsert("fifth", "later"),
            crate::feed::acme::add(acme_name(), b"during", 0, 60),
        ]
    }

    #[test]
    fn a_fold_catches_up_with_the_changes_sent_to_it_as_the_builder_applied_them() {
        let table = table_with_first();
        let mut builders = table.clone();
        let (feed, changes) = crossbeam_channel::unbounded();
        for c in during() {
            c.apply_to(&mut builders).unwrap();
            feed.send(c).unwrap();
        }
        let folded = fold_and_catch_up(table.clone(), &changes).unwrap();
        assert!(changes.is_empty(), "every change applied");
        assert_eq!(
            folded.base().len(),
            101,
            "the base holds the folded overlay"
        );
        assert_eq!(folded.overlay().len(), 5);
        assert_eq!(folded.len(), 105);
        assert_eq!(folded.apps(), builders.apps());
        // The same names at the same indexes as the builder's registry.
        assert_eq!(folded.clusters(), builders.clusters());
        let names: Vec<&str> = folded
            .clusters()
            .names()
            .iter()
            .map(|l| l.as_str())
            .collect();
        assert_eq!(names, ["c0", "c1", "elsewhere", "later"]);
        assert_eq!(folded.get("first").map(|a| a.2), Some(1));
        assert_eq!(folded.get("third").map(|a| a.2), Some(2));
        assert_eq!(folded.get("fifth").map(|a| a.2), Some(3));
        assert_eq!(
            table.clusters().len(),
            2,
            "the builder's older copy is unchanged"
        );
    }

    #[test]
    fn a_finished_fold_applies_what_its_thread_left() {
        let table = table_with_first();
        let mut builders = table.clone();
        let fold = RunningFold::start(table.clone()).unwrap();
        // Sent before or after the thread's look: either way the result holds them all.
        for c in during() {
            c.apply_to(&mut builders).unwrap();
            fold.send(c);
        }
        let folded = fold.finish().unwrap();
        assert_eq!(folded.acme(), builders.acme(), "challenge records kept");
        assert_eq!(folded.acme().value_count(), 2);
        assert_eq!(folded.len(), 105);
        assert_eq!(folded.apps(), builders.apps());
        assert_eq!(folded.clusters(), builders.clusters());
        assert_eq!(
            folded.base().len(),
            101,
            "the base holds what came before the fold"
        );
        assert_eq!(
            folded.overlay().len(),
            5,
            "and the overlay what came during it"
        );
    }
}
