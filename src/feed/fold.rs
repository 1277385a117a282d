//! Folding in the background: a thread folds a table's overlay into a new base while the
//! builder keeps applying changes, then catches up with the changes the builder sent it
//! meanwhile. The builder installs the result and replays only what arrived after the fold
//! thread's last look.
//!
//! The fold thread runs at a raised priority where the process may raise it (root or
//! CAP_SYS_NICE): a fold costs the query threads mostly while it runs (it streams the whole
//! base through the shared cache), so a short fold costs them less than a long, polite one.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;
use crate::feed::builder::apply;
use crate::feed::change::Change;
use crate::table::{BuildError, Table};

/// The nice value of the fold thread, when the process may set it. Measured on 2 CPUs with a
/// query thread on each: at nice -5 a fold at 1M apps took a third to a half of its time at
/// nice 0 and cost the query threads about a third less in all (perf/RESULTS.md); a higher
/// priority would starve the query thread that shares its CPU for longer slices.
pub const FOLD_NICE: i32 = -5;

/// A fold in the background, and the channel on which the builder sends it the changes it
/// applies meanwhile.
pub struct RunningFold {
    thread: JoinHandle<Result<(Table, Option<Change>), BuildError>>,
    feed: crossbeam_channel::Sender<Change>,
    left: crossbeam_channel::Receiver<Change>,
}

impl RunningFold {
    /// Starts folding `table` (a copy of the builder's) on a thread of its own.
    pub fn start(table: Table, config: Arc<Config>) -> io::Result<RunningFold> {
        let (feed, left) = crossbeam_channel::unbounded::<Change>();
        let changes = left.clone();
        let thread = std::thread::Builder::new()
            .name("fold".into())
            .spawn(move || {
                raise_priority(FOLD_NICE);
                fold_and_catch_up(table, &config, &changes)
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

    /// Waits for the fold, then applies the changes it had not applied yet: the one it
    /// stopped at (if one failed under its configuration) and whatever is still queued, under
    /// `config` (the builder's, which may be newer). Those were accepted once on the same
    /// state and apply again.
    pub fn finish(self, config: &Config) -> Result<Table, String> {
        match self.thread.join() {
            Ok(Ok((mut table, stopped_at))) => {
                for change in stopped_at.into_iter().chain(self.left.try_iter()) {
                    let _ = apply(&mut table, config, &change);
                }
                Ok(table)
            }
            Ok(Err(e)) => Err(format!("folding the table failed: {e}")),
            Err(_) => Err("the fold thread panicked".into()),
        }
    }
}

/// Sets the calling thread's nice value to `nice`, if the process may (root or
/// CAP_SYS_NICE); otherwise the thread keeps its priority. Returns whether it was set.
pub fn raise_priority(nice: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority only reads its arguments and
        // applies to this thread alone (Linux nice values are per thread).
        let ok = unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) == 0
        };
        if !ok {
            tracing::debug!("fold thread: cannot set nice {nice}; it runs at the default");
        }
        ok
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        false
    }
}

/// The fold thread: folds `table`'s overlay into a new base, then applies on top of it the
/// changes the builder has applied since (sent on `changes`) until none is waiting (or one
/// fails to apply under the configuration the fold started with). Building the new table's
/// overlay (page faults in fresh maps included) happens here, not on the builder, which only
/// replays what arrives after. Returns the table and the change it stopped at, if one failed.
fn fold_and_catch_up(
    table: Table,
    config: &Config,
    changes: &crossbeam_channel::Receiver<Change>,
) -> Result<(Table, Option<Change>), BuildError> {
    let base = table.fold()?;
    drop(table);
    let mut table = Table::from_base(Arc::new(base));
    while let Ok(change) = changes.try_recv() {
        // Accepted once by the builder on the same state, it applies again, unless the
        // builder's configuration changed since (a cluster added by a reload): then the
        // builder applies this change and the rest itself.
        if apply(&mut table, config, &change).is_err() {
            return Ok((table, Some(change)));
        }
    }
    Ok((table, None))
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

    fn config() -> Config {
        Config::parse(
            std::path::Path::new("clusterns.toml"),
            &synth::config_toml(2, "journal.log"),
        )
        .unwrap()
    }

    /// 100 apps in the base, and app "first" (on cluster 0) in the overlay.
    fn table_with_first(config: &Config) -> Table {
        let mut table = Table::build(&synth::apps(100, 2, 1)).unwrap();
        apply(
            &mut table,
            config,
            &upsert("first", &synth::cluster_name(0)),
        )
        .unwrap();
        table
    }

    #[test]
    fn a_fold_catches_up_with_the_changes_sent_to_it_and_stops_at_one_that_fails() {
        let config = config();
        let table = table_with_first(&config);
        let (feed, changes) = crossbeam_channel::unbounded();
        for c in [
            upsert("second", &synth::cluster_name(1)),
            upsert("first", &synth::cluster_name(1)),
            // Not a cluster of this configuration (one a reload would have added).
            upsert("third", "elsewhere"),
            upsert("fourth", &synth::cluster_name(0)),
        ] {
            feed.send(c).unwrap();
        }
        let (folded, stopped_at) = fold_and_catch_up(table.clone(), &config, &changes).unwrap();
        assert_eq!(
            stopped_at,
            Some(upsert("third", "elsewhere")),
            "stops at the change it cannot apply"
        );
        assert_eq!(
            folded.overlay().len(),
            2,
            "the base holds the folded overlay"
        );
        assert_eq!(folded.len(), 102);
        assert_eq!(folded.get("first").map(|a| a.2), Some(1));
        assert_eq!(folded.get("second").map(|a| a.2), Some(1));
        assert_eq!(folded.get("third"), None);
        assert_eq!(folded.get("fourth"), None);
        // The rest stays queued for the builder, which applies it when it installs the fold.
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn a_finished_fold_applies_what_its_thread_left_under_the_builders_configuration() {
        let config = config();
        let table = table_with_first(&config);
        let fold = RunningFold::start(table.clone(), Arc::new(config.clone())).unwrap();
        // Sent before or after the thread's look: either way the result holds them all.
        fold.send(upsert("second", &synth::cluster_name(1)));
        fold.send(upsert("first", &synth::cluster_name(1)));
        let folded = fold.finish(&config).unwrap();
        assert_eq!(folded.len(), 102);
        assert_eq!(folded.get("first").map(|a| a.2), Some(1));
        assert_eq!(folded.get("second").map(|a| a.2), Some(1));
        assert_eq!(
            folded.base().len(),
            101,
            "the base holds what came before the fold"
        );
        assert_eq!(
            folded.overlay().len(),
            2,
            "and the overlay what came during it"
        );
    }

    #[test]
    fn raising_priority_is_refused_or_applied_to_this_thread_alone() {
        let nice_here = || {
            // SAFETY: gettid has no preconditions; getpriority only reads its arguments.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        };
        let before = nice_here();
        let want = before - 1;
        let (set, now) = std::thread::spawn(move || (raise_priority(want), nice_here()))
            .join()
            .unwrap();
        assert_eq!(now, if set { want } else { before });
        assert_eq!(nice_here(), before, "the caller's thread is unchanged");
    }
}
