//! What the builder keeps about the configuration: the apps on clusters it lacks (counted as
//! changes apply, reported), the app names it answers itself (warned of), and switching to a
//! new configuration.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{slow_step, Builder};
use crate::config::Config;
use crate::feed::change::Sequenced;
use crate::table::{Moved, Table};

/// Per index of `table`'s cluster registry: `None` where `config` has the cluster, else the
/// apps on it, taken from `known` where it has them already (counts kept for clusters the
/// previous configuration lacked too) and otherwise counted by one walk of the table (only
/// when some cluster needs it).
pub(super) fn count_unconfigured(
    table: &Table,
    config: &Config,
    known: &[Option<u64>],
) -> Vec<Option<u64>> {
    let names = table.clusters().names();
    let mut out: Vec<Option<u64>> = Vec::with_capacity(names.len());
    // The indexes to count.
    let mut walk = vec![false; names.len()];
    for (i, name) in names.iter().enumerate() {
        if config.cluster(name.as_str()).is_some() {
            out.push(None);
        } else if let Some(&Some(n)) = known.get(i) {
            out.push(Some(n));
        } else {
            out.push(Some(0));
            walk[i] = true;
        }
    }
    if walk.contains(&true) {
        let started = Instant::now();
        table.for_each_record(|_, _, c| {
            let c = usize::from(c);
            if walk.get(c) == Some(&true) {
                if let Some(Some(n)) = out.get_mut(c) {
                    *n += 1;
                }
            }
        });
        slow_step("counting the apps of clusters not configured", started);
    }
    out
}

impl Builder {
    /// Keeps the counts of apps on clusters the configuration lacks, and warns of a change
    /// that put an app on one (taken: its app answers SERVFAIL until a configuration with the
    /// cluster is loaded).
    pub(super) fn count_move(&mut self, change: &Sequenced, line: u64, moved: Moved) {
        let names = self.table.clusters().names();
        if moved.new_cluster {
            for name in &names[self.unconfigured.len().min(names.len())..] {
                let lacks = self.config.cluster(name.as_str()).is_none();
                self.unconfigured.push(lacks.then_some(0));
            }
        }
        if let Some(Some(n)) = moved
            .from
            .and_then(|c| self.unconfigured.get_mut(usize::from(c)))
        {
            *n = n.saturating_sub(1);
        }
        let Some(to) = moved.to else {
            return;
        };
        if let Some(Some(n)) = self.unconfigured.get_mut(usize::from(to)) {
            *n += 1;
            let cluster = names.get(usize::from(to)).map_or("?", |l| l.as_str());
            let e = self.at_change(
                line,
                format!("change {change}: cluster {cluster} is not in the configuration; applied: the app answers SERVFAIL until a configuration with that cluster is loaded"),
            );
            tracing::warn!("{e}");
        }
    }

    /// Warns of a change that put an app where the configuration answers otherwise (an id or
    /// user `ns1` under a host `ns1`): taken, but unreachable by that name. The `repl` CLI
    /// refuses such names; PostgreSQL cannot know the configuration.
    pub(super) fn warn_if_shadowed(&mut self, change: &Sequenced, line: u64) {
        for (what, l) in change.change.labels_answered().into_iter().flatten() {
            if let Some((_, by)) = self.shadowed.iter().find(|(s, _)| s == l.as_str()) {
                self.status.shadowed.fetch_add(1, Ordering::Relaxed);
                let e = self.at_change(
                    line,
                    format!("change {change}: {what} {l} is answered by the {by} in the configuration; the app cannot be reached by that name"),
                );
                tracing::warn!("{e}");
            }
        }
    }

    /// Logs the clusters that apps are on but the configuration lacks (they answer SERVFAIL).
    pub(super) fn report_unconfigured(&self) {
        let names = self.table.clusters().names();
        for (name, n) in names.iter().zip(&self.unconfigured) {
            if let Some(n) = n.filter(|&n| n > 0) {
                tracing::warn!(
                    apps = n,
                    "cluster {name} is not in the configuration: its apps answer SERVFAIL until a configuration with it is loaded"
                );
            }
        }
    }

    /// Apps on clusters the running configuration lacks.
    pub fn apps_on_unconfigured_clusters(&self) -> u64 {
        self.unconfigured.iter().flatten().sum()
    }

    /// Switches to a new configuration: zones, clusters and TTLs take effect in the next
    /// snapshot. The table is left as it is (its cluster indexes refer to its own registry,
    /// not to the configuration's order): apps on a cluster the configuration now has answer
    /// with its addresses at once. Refused, leaving everything as it was, when a cluster that
    /// apps still use is gone. Listener and feed settings take effect at the next restart.
    pub fn reload(&mut self, config: Arc<Config>) -> Result<(), String> {
        let counts = count_unconfigured(&self.table, &config, &self.unconfigured);
        let names = self.table.clusters().names();
        for (i, name) in names.iter().enumerate() {
            // Configured until now (no count kept), and used.
            let was_configured = matches!(self.unconfigured.get(i), Some(None));
            if let Some(n) = counts[i].filter(|&n| n > 0 && was_configured) {
                return Err(format!(
                    "cluster {name} is gone from the new configuration but {n} apps still use it; move them first"
                ));
            }
        }
        if config.server.listen != self.config.server.listen
            || config.server.threads != self.config.server.threads
            || config.feed != self.config.feed
        {
            tracing::warn!("listener and feed settings change at the next restart");
        }
        self.unconfigured = counts;
        self.shadowed = config.labels_answered_elsewhere();
        self.config = config;
        self.lay_out();
        self.store_health_summary();
        if let Some(t) = &mut self.pending {
            t.acme_mut().set_params(self.config.acme);
        }
        self.publish();
        tracing::info!(
            zones = self.config.zones.len(),
            clusters = self.config.clusters.len(),
            generation = self.generation,
            "configuration reloaded"
        );
        self.report_unconfigured();
        Ok(())
    }
}
