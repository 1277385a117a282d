//! The update thread's handler: an UPDATE message through the engine ([`super::process`]),
//! checked against the live snapshot, written durably to the source of truth
//! (`feed::writer`), then answered; and the janitor that expires challenge records.
//!
//! Runs on the server's `update` thread only (never on a query worker): it blocks on the
//! write (an fsync of the journal, or a PostgreSQL commit) before it answers, so that an
//! answered update is never lost. Every edge fed by the same source applies the change from
//! the feed, this server included.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::base::iana::{Class, Rcode, Rtype};

use super::{process, Decision, Keys, Op, RateLimiter, UpdatePolicy, UpdateView};
use crate::config::{AcmeMode, Config};
use crate::control::Live;
use crate::feed::acme::{expired, unix_now};
use crate::feed::writer::ChangeWriter;
use crate::feed::Change;
use crate::name::DomainName;
use crate::resolve::{resolve, Outcome, Question};
use crate::server::UpdateHandler;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::wire::Transport;

/// How often the janitor looks for expired challenge records.
const JANITOR_EVERY: Duration = Duration::from_secs(5);

/// Updates by result (`Reply::result()` labels), for the metrics.
#[derive(Default)]
pub struct UpdateCounters {
    counts: std::sync::Mutex<HashMap<&'static str, u64>>,
    /// Challenge values deleted by the janitor.
    pub expired: AtomicU64,
    /// Writes to the source that failed (the update was answered SERVFAIL).
    pub write_errors: AtomicU64,
}

impl UpdateCounters {
    fn count(&self, result: &'static str) {
        if let Ok(mut m) = self.counts.lock() {
            *m.entry(result).or_default() += 1;
        }
    }

    /// Every result seen so far, with its count, sorted by result.
    pub fn by_result(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .counts
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// The handler the server's update thread runs.
pub struct UpdateService {
    /// The configuration in force (SIGHUP and `ctl reload` replace it there).
    live: Arc<Live>,
    /// The one the keys, grants and limits below were read from.
    config: Arc<Config>,
    shared: SharedSnapshot,
    keys: Keys,
    policy: UpdatePolicy,
    limiter: RateLimiter,
    writer: Box<dyn ChangeWriter>,
    /// The challenge names each key added (for its `max_names_per_key`).
    held: HashMap<String, HashSet<DomainName>>,
    counters: Arc<UpdateCounters>,
    next_janitor: Instant,
}

impl UpdateService {
    /// The service for the configuration in force (its `[update]` keys and grants, `[acme]`
    /// expiry), writing through `writer`. A reload that changes the configuration in force
    /// is taken at the next message or tick: the key file is read again then.
    pub fn new(
        live: Arc<Live>,
        shared: SharedSnapshot,
        writer: Box<dyn ChangeWriter>,
    ) -> Result<UpdateService, String> {
        let config = live.config();
        let (keys, policy) = config.update.load().map_err(|e| e.to_string())?;
        let limiter = RateLimiter::new(&policy.limits);
        Ok(UpdateService {
            live,
            config,
            shared,
            keys,
            policy,
            limiter,
            writer,
            held: HashMap::new(),
            counters: Arc::default(),
            next_janitor: Instant::now(),
        })
    }

    /// Takes a reloaded configuration: its keys, grants and limits (a key file that no
    /// longer loads keeps the old ones, loudly; the reload itself checks it first).
    fn refresh(&mut self) {
        let config = self.live.config();
        if Arc::ptr_eq(&config, &self.config) {
            return;
        }
        if config.update.enabled {
            match config.update.load() {
                Ok((keys, policy)) => {
                    self.limiter = RateLimiter::new(&policy.limits);
                    self.keys = keys;
                    self.policy = policy;
                    tracing::info!(
                        keys = self.keys.len(),
                        grants = self.policy.grants.len(),
                        "update: keys and grants reloaded"
                    );
                }
                Err(e) => tracing::error!("update: keeping the old keys and grants: {e}"),
            }
        }
        self.config = config;
    }

    /// The counters the metrics endpoint renders.
    pub fn counters(&self) -> Arc<UpdateCounters> {
        self.counters.clone()
    }

    /// Why the store would refuse what `ops` add (the `[acme]` limits: names in total,
    /// values per name, value length), checked value by value on the current records.
    fn over_store_limits(&self, snap: &Snapshot, ops: &[Op]) -> Option<String> {
        let store = snap.table.acme();
        ops.iter().find_map(|op| match op {
            Op::Add { name, value } => store
                .check_add(name, value)
                .err()
                .map(|r| format!("{name}: {}", r.reason())),
            _ => None,
        })
    }

    /// The feed changes an accepted update's operations become.
    fn changes(&self, ops: &[Op], now: u64) -> Vec<Change> {
        ops.iter()
            .map(|op| match op {
                Op::Add { name, value } => {
                    crate::feed::acme::add(name.clone(), value, now, self.config.acme.expire_secs)
                }
                Op::DeleteValue { name, value } => Change::TxtDelete {
                    name: name.clone(),
                    value: Some(value.clone().into_boxed_slice()),
                },
                Op::DeleteRrset { name } | Op::DeleteName { name } => Change::TxtDelete {
                    name: name.clone(),
                    value: None,
                },
            })
            .collect()
    }
}

impl UpdateHandler for UpdateService {
    fn handle(
        &mut self,
        msg: &[u8],
        client: SocketAddr,
        transport: Transport,
        max_len: usize,
        out: &mut Vec<u8>,
    ) {
        self.refresh();
        if !self.config.update.enabled {
            // Turned off by a reload: answered as a server that takes no updates.
            self.counters.count("notimp");
            let mut buf = [0u8; 512];
            if let Some(r) = crate::query::header_error(msg, &mut buf, Rcode::NOTIMP) {
                out.extend_from_slice(&buf[..r.len]);
            }
            return;
        }
        let now = unix_now();
        let snap = self.shared.load();
        let view = SnapshotView {
            snap: &snap,
            config: &self.config,
            held: &self.held,
        };
        let wire = match process(&view, &self.keys, &self.policy, msg, now, &mut self.limiter) {
            Decision::Drop => return,
            Decision::Reply(r) => {
                self.counters.count(r.result());
                r.wire
            }
            Decision::Apply {
                key, ops, reply, ..
            } => {
                let changes = self.changes(&ops, now);
                if let Some(why) = self.over_store_limits(&snap, &ops) {
                    tracing::info!(key, %client, "update refused: {why}");
                    self.counters.count("refused");
                    out.extend_from_slice(&reply.failure(Rcode::REFUSED, now));
                    return;
                }
                match self.writer.write(&changes) {
                    Ok(_) => {
                        let names = self.held.entry(key.clone()).or_default();
                        for op in &ops {
                            match op {
                                Op::Add { name, .. } => {
                                    names.insert(name.clone());
                                }
                                Op::DeleteRrset { name } | Op::DeleteName { name } => {
                                    names.remove(name);
                                }
                                Op::DeleteValue { .. } => {}
                            }
                        }
                        tracing::info!(
                            key,
                            %client,
                            ?transport,
                            changes = changes.len(),
                            "update applied"
                        );
                        self.counters.count("noerror");
                        reply.success(now)
                    }
                    Err(e) => {
                        tracing::error!(key, %client, "update: writing to the source failed: {e}");
                        self.counters.write_errors.fetch_add(1, Relaxed);
                        self.counters.count("servfail");
                        reply.failure(Rcode::SERVFAIL, now)
                    }
                }
            }
        };
        if wire.len() > max_len {
            // Only a refusal that echoes a long zone section can be this long: the server cuts
            // it to the header and zone section with TC set (the client retries over TCP).
            tracing::debug!(len = wire.len(), max_len, "update answer too long for UDP");
        }
        out.extend_from_slice(&wire);
    }

    fn tick(&mut self, now: Instant) {
        if now < self.next_janitor {
            return;
        }
        self.next_janitor = now + JANITOR_EVERY;
        self.refresh();
        let snap = self.shared.load();
        // Names a key added that are gone (deleted or expired) no longer count against it.
        for names in self.held.values_mut() {
            names.retain(|n| snap.table.acme().get(n.wire()).is_some());
        }
        let deletes = expired(snap.table.acme(), unix_now());
        if deletes.is_empty() {
            return;
        }
        match self.writer.write(&deletes) {
            Ok(_) => {
                tracing::info!(values = deletes.len(), "challenge records expired");
                self.counters
                    .expired
                    .fetch_add(deletes.len() as u64, Relaxed);
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Relaxed);
                tracing::error!("update: writing expired challenge records failed: {e}");
            }
        }
    }
}

/// What the engine may know of the served data: the snapshot and the configuration.
struct SnapshotView<'a> {
    snap: &'a Snapshot,
    config: &'a Config,
    held: &'a HashMap<String, HashSet<DomainName>>,
}

impl SnapshotView<'_> {
    fn outcome(&self, name: &DomainName, qtype: Rtype) -> Outcome<'_> {
        resolve(
            self.snap,
            &Question {
                name: name.wire(),
                qtype,
                qclass: Class::IN,
            },
        )
    }
}

impl UpdateView for SnapshotView<'_> {
    fn serves_zone(&self, apex: &DomainName) -> bool {
        self.config.zones.iter().any(|z| &z.apex == apex)
    }

    fn challenges_direct(&self, apex: &DomainName) -> bool {
        self.config
            .zones
            .iter()
            .any(|z| &z.apex == apex && z.acme == AcmeMode::Txt)
    }

    fn owner_exists(&self, owner: &DomainName) -> bool {
        !matches!(
            self.outcome(owner, Rtype::TXT),
            Outcome::NxDomain { .. } | Outcome::Refused
        )
    }

    fn name_in_use(&self, name: &DomainName) -> bool {
        self.snap.table.acme().get(name.wire()).is_some()
            || matches!(
                self.outcome(name, Rtype::ANY),
                Outcome::Hit { .. } | Outcome::AcmeCname { .. }
            )
    }

    fn rrset_exists(&self, name: &DomainName, rtype: u16) -> bool {
        // `resolve` answers a type only with an RRset of that type (NODATA otherwise).
        matches!(
            self.outcome(name, Rtype::from_int(rtype)),
            Outcome::Hit { .. }
        )
    }

    fn txt_values(&self, name: &DomainName) -> Vec<Vec<u8>> {
        self.snap
            .table
            .acme()
            .get(name.wire())
            .map(|e| e.values.iter().map(|(v, _)| v.to_vec()).collect())
            .unwrap_or_default()
    }

    fn names_held_by(&self, key: &str) -> usize {
        self.held.get(key).map_or(0, |n| n.len())
    }
}
