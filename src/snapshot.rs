//! The immutable snapshot the query path answers from, and its publication through `arc-swap`.
//!
//! A snapshot pairs what the configuration serves (zones with their pre-encoded records and
//! per-cluster answers) with the app table. The two parts are shared `Arc`s so that a table
//! update does not re-encode zones and a config reload does not rebuild the table.
//!
//! The table's apps hold indexes into its cluster registry (the names the feed has used, in
//! the order it first used them), so the per-cluster answers are laid out in that order:
//! [`Served::for_registry`]. The builder builds them again when the registry grows or the
//! configuration is reloaded.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::health::answer::{choose, ClusterChoice, ClusterStatus};
use crate::health::view::HealthView;
use crate::name::Label;
use crate::table::Table;
use crate::zone::Zone;

/// What the configuration serves, pre-encoded.
#[derive(Debug)]
pub struct Served {
    pub zones: Vec<Zone>,
    /// Cluster names by index (the table stores indexes): the registry these answers were
    /// built for.
    pub cluster_names: Vec<Label>,
    /// What the answer policy made of each cluster under the health these answers were
    /// built for, by registry index (`None`: not configured): for metrics and `lookup`.
    pub cluster_status: Vec<Option<ClusterStatus>>,
    /// The EDNS UDP payload size this server advertises and the largest UDP answer it sends.
    pub udp_payload: u16,
}

impl Served {
    /// Pre-encodes everything a configuration serves, for a table whose cluster indexes are
    /// the configuration's own order (its registry is the configured cluster names; for
    /// tables built by hand: the builder uses [`Served::for_registry`]).
    pub fn from_config(cfg: &Config) -> Served {
        let names: Vec<Label> = cfg.clusters.iter().map(|c| c.name.clone()).collect();
        Served::for_registry(cfg, &names)
    }

    /// Pre-encodes everything a configuration serves, for a table whose cluster indexes refer
    /// to `registry`: each zone's answers by registry index, `None` (SERVFAIL) for a name
    /// the configuration does not have.
    pub fn for_registry(cfg: &Config, registry: &[Label]) -> Served {
        Served::for_registry_health(cfg, registry, &HealthView::none())
    }

    /// [`Served::for_registry`] with the clusters' answers chosen for the addresses' health
    /// (`health::answer`'s policy: priority groups, drained addresses, failover, fail open,
    /// the TTL while degraded; the per-query pick by weight is the query layer's).
    pub fn for_registry_health(cfg: &Config, registry: &[Label], health: &HealthView) -> Served {
        let choices: Vec<Option<ClusterChoice>> = registry
            .iter()
            .map(|name| {
                cfg.cluster(name.as_str())
                    .map(|c| choose(c, &cfg.clusters, health))
            })
            .collect();
        Served {
            zones: cfg.zones.iter().map(|z| Zone::build(z, &choices)).collect(),
            cluster_names: registry.to_vec(),
            cluster_status: choices
                .iter()
                .map(|c| c.as_ref().map(ClusterChoice::status))
                .collect(),
            udp_payload: cfg.server.udp_payload,
        }
    }

    /// The zone that holds `name` (lower-case wire form, ending in the root label), the deepest
    /// one when zones nest, with the length of the part of `name` before the apex.
    #[inline]
    pub fn find_zone(&self, name: &[u8]) -> Option<(&Zone, usize)> {
        let mut best: Option<(&Zone, usize)> = None;
        for zone in &self.zones {
            let apex = zone.apex.wire();
            if apex.len() > name.len() || name[name.len() - apex.len()..] != *apex {
                continue;
            }
            let start = name.len() - apex.len();
            let mut pos = 0;
            while pos < start {
                pos += 1 + usize::from(name[pos]);
            }
            if pos == start && best.is_none_or(|(_, s)| start < s) {
                best = Some((zone, start));
            }
        }
        best
    }
}

/// One consistent view of everything the responder answers from.
pub struct Snapshot {
    /// Increases by one with every publication.
    pub generation: u64,
    /// The sequence number of the last change applied to `table`.
    pub last_seq: u64,
    pub served: Arc<Served>,
    pub table: Arc<Table>,
    /// When it was published.
    pub published: std::time::SystemTime,
}

impl Snapshot {
    /// A first snapshot.
    pub fn new(served: Arc<Served>, table: Arc<Table>, last_seq: u64) -> Snapshot {
        Snapshot {
            generation: 1,
            last_seq,
            served,
            table,
            published: std::time::SystemTime::now(),
        }
    }
}

/// The published snapshot: readers `load()` without locking; the builder thread `store()`s.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Wraps a first snapshot for publication.
pub fn shared(snapshot: Snapshot) -> SharedSnapshot {
    Arc::new(ArcSwap::from_pointee(snapshot))
}
