//! The checker's rounds: every `interval_ms`, each target (an address of a checked cluster,
//! both families, drained ones too) is probed once on a bounded pool of threads, the probes
//! spread over the interval; the results go through the rise/fall damping, and the reports due
//! (changes, renewals) are written as one batch. A failed write is logged, counted and retried
//! the next round. Stops between two steps when the stop flag is set (SIGTERM, SIGINT).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::ledger::Ledger;
use super::metrics::CheckerMetrics;
use super::probe::{native_roots, ProbeResult, Prober};
use super::ReportSink;
use crate::config::{CheckKind, Config, HealthConfig};
use crate::health::view::AddrState;
use crate::name::{check_label, Label};

/// The most probing threads (more addresses than this queue up within a round).
const MAX_WORKERS: usize = 256;
/// How long past the round's end a late probe is waited for (beyond its own timeout).
const GRACE: Duration = Duration::from_secs(1);
/// The longest sleep between two looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// One probed address.
pub struct Target {
    pub cluster: Label,
    pub addr: IpAddr,
    prober: Prober,
}

/// What one round found about one address, for `--once`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub cluster: Label,
    pub addr: IpAddr,
    /// The decided state after the round (unknown unless rise/fall allow a decision).
    pub state: AddrState,
    /// The probe's own result (none: it did not finish in time).
    pub probe: Option<ProbeResult>,
}

/// A checker: its name, its targets, their report ledger and its metrics.
pub struct Checker {
    name: Label,
    health: HealthConfig,
    targets: Arc<Vec<Target>>,
    ledger: Ledger,
    metrics: Arc<CheckerMetrics>,
    round: u64,
}

/// The checker's name: `[health] checker`, else the host name's first label.
pub fn checker_name(health: &HealthConfig) -> Result<Label, String> {
    if let Some(name) = &health.checker {
        return Ok(name.clone());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| format!("reading the host name: {e}; set [health] checker"))?;
    let first = host.trim().split('.').next().unwrap_or_default();
    check_label(first)
        .map_err(|e| format!("the host name cannot name the checker ({e}); set [health] checker"))
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checker {
    /// A checker for every address of every cluster with a `[cluster.check]`, named by
    /// [`checker_name`]. Fails when nothing is to be probed, or a check cannot be prepared
    /// (an unusable URL, no trust roots for an https check).
    pub fn new(config: &Config) -> Result<Checker, String> {
        Checker::with_name(config, checker_name(&config.health)?)
    }

    /// The same, named `name`.
    pub fn with_name(config: &Config, name: Label) -> Result<Checker, String> {
        let health = config.health.clone();
        let timeout = Duration::from_millis(health.timeout_ms);
        let needs_tls = config.clusters.iter().any(|c| {
            matches!(
                c.check.as_ref().map(|k| &k.kind),
                Some(CheckKind::Https { .. })
            )
        });
        let tls = if needs_tls {
            Some(native_roots()?)
        } else {
            None
        };
        let mut targets = Vec::new();
        for c in &config.clusters {
            let Some(check) = &c.check else { continue };
            for addr in c.addresses() {
                let prober = Prober::new(check, addr, timeout, tls.as_ref())
                    .map_err(|e| format!("cluster {}: {e}", c.name))?;
                targets.push(Target {
                    cluster: c.name.clone(),
                    addr,
                    prober,
                });
            }
        }
        if targets.is_empty() {
            return Err("no [[cluster]] has a [cluster.check]: nothing to probe".into());
        }
        let list = || targets.iter().map(|t| (t.cluster.clone(), t.addr));
        let ledger = Ledger::new(list(), health.rise, health.fall, health.lease_secs);
        let metrics = Arc::new(CheckerMetrics::new(list()));
        Ok(Checker {
            name,
            health,
            targets: Arc::new(targets),
            ledger,
            metrics,
            round: 0,
        })
    }

    /// The name in this checker's reports.
    pub fn name(&self) -> &Label {
        &self.name
    }

    /// The probed addresses, in order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The counters the metrics endpoint shows.
    pub fn metrics(&self) -> &Arc<CheckerMetrics> {
        &self.metrics
    }

    /// Probes round after round, writing the reports due to `sink` after each, until `stop`
    /// is set.
    pub fn run(&mut self, sink: &mut dyn ReportSink, stop: &AtomicBool) -> Result<(), String> {
        let pool = self.pool()?;
        let interval = Duration::from_millis(self.health.interval_ms);
        tracing::info!(
            checker = %self.name,
            addresses = self.targets.len(),
            interval_ms = self.health.interval_ms,
            "health: checking"
        );
        while !stop.load(Relaxed) {
            let start = Instant::now();
            let results = self.probe_round(&pool, stop);
            if stop.load(Relaxed) {
                break;
            }
            self.apply(&results);
            self.write_due(sink);
            sleep_until(start + interval, stop);
        }
        tracing::info!(checker = %self.name, "health: stopped");
        Ok(())
    }

    /// One round, nothing written: each address's probe result and decided state.
    pub fn once(&mut self) -> Result<Vec<Outcome>, String> {
        let pool = self.pool()?;
        let results = self.probe_round(&pool, &AtomicBool::new(false));
        self.apply(&results);
        Ok(self
            .targets
            .iter()
            .zip(results)
            .enumerate()
            .map(|(i, (t, probe))| Outcome {
                cluster: t.cluster.clone(),
                addr: t.addr,
                state: self.ledger.state(i),
                probe,
            })
            .collect())
    }

    fn pool(&self) -> Result<Pool, String> {
        Pool::start(self.targets.clone(), self.targets.len().min(MAX_WORKERS))
            .map_err(|e| format!("starting the probe threads: {e}"))
    }

    /// Probes every target once, spread over the part of the interval that leaves each probe
    /// its timeout before the round ends; waits for the results (a probe still running after
    /// its timeout and [`GRACE`] has none this round).
    fn probe_round(&mut self, pool: &Pool, stop: &AtomicBool) -> Vec<Option<ProbeResult>> {
        self.round += 1;
        let round = self.round;
        let n = self.targets.len();
        let mut results: Vec<Option<ProbeResult>> = vec![None; n];
        let mut pending = 0usize;
        let start = Instant::now();
        let interval = Duration::from_millis(self.health.interval_ms);
        let timeout = Duration::from_millis(self.health.timeout_ms);
        let window = interval.saturating_sub(timeout);
        for i in 0..n {
            let at = start + window.mul_f64(i as f64 / n as f64);
            pending -= pool.collect(round, &mut results, at, pending, stop);
            sleep_until(at, stop);
            if stop.load(Relaxed) {
                return results;
            }
            if pool.send(round, i) {
                pending += 1;
            }
        }
        let deadline = start + interval.max(timeout) + GRACE;
        while pending > 0 && Instant::now() < deadline && !stop.load(Relaxed) {
            pending -= pool.collect(round, &mut results, deadline, pending, stop);
        }
        if pending > 0 && !stop.load(Relaxed) {
            self.metrics.late_probes(pending);
            tracing::warn!(
                late = pending,
                "health: probes still running past their timeout; skipped this round"
            );
        }
        results
    }

    /// Counts the round's results and runs them through the damping.
    fn apply(&mut self, results: &[Option<ProbeResult>]) {
        for (i, r) in results.iter().enumerate() {
            let Some(r) = r else { continue };
            let t = &self.targets[i];
            self.metrics.probed(i, r.is_up());
            if let Some(state) = self.ledger.observe(i, r.is_up()) {
                self.metrics.set_state(i, state);
                match r {
                    ProbeResult::Up => tracing::info!(
                        cluster = %t.cluster, addr = %t.addr, "health: address is up"
                    ),
                    ProbeResult::Down(why) => tracing::warn!(
                        cluster = %t.cluster, addr = %t.addr, reason = %why,
                        "health: address is down"
                    ),
                }
            }
        }
    }

    /// Writes the reports due as one batch; on failure they stay due.
    fn write_due(&mut self, sink: &mut dyn ReportSink) {
        let now = Instant::now();
        let due = self.ledger.due(&self.name, now, unix_now());
        if due.reports.is_empty() {
            return;
        }
        match sink.write(&due.reports) {
            Ok(()) => {
                self.ledger.written(&due.targets, now);
                for &i in &due.targets {
                    self.metrics.reported(i, now);
                }
                tracing::debug!(reports = due.reports.len(), "health: reports written");
            }
            Err(e) => {
                self.metrics.write_error();
                tracing::warn!(
                    reports = due.reports.len(),
                    error = %e,
                    "health: writing the reports failed; retrying the next round"
                );
            }
        }
    }
}

/// Sleeps until `at`, waking early when `stop` is set.
fn sleep_until(at: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= at || stop.load(Relaxed) {
            return;
        }
        std::thread::sleep((at - now).min(STOP_POLL));
    }
}

/// The probing threads: jobs (round, target) in, results out.
struct Pool {
    jobs: Option<Sender<(u64, usize)>>,
    results: Receiver<(u64, usize, ProbeResult)>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(targets: Arc<Vec<Target>>, workers: usize) -> std::io::Result<Pool> {
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<(u64, usize)>();
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers.max(1) {
            let jobs = job_rx.clone();
            let results = res_tx.clone();
            let targets = targets.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("probe-{n}"))
                    .spawn(move || {
                        for (round, i) in jobs.iter() {
                            let Some(t) = targets.get(i) else { continue };
                            if results.send((round, i, t.prober.probe())).is_err() {
                                return;
                            }
                        }
                    })?,
            );
        }
        Ok(Pool {
            jobs: Some(job_tx),
            results: res_rx,
            threads,
        })
    }

    /// Queues a probe; false if the threads are gone.
    fn send(&self, round: u64, i: usize) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|j| j.send((round, i)).is_ok())
    }

    /// Takes this round's results into `into` until `want` have come, `until` has passed or
    /// `stop` is set; returns how many came.
    fn collect(
        &self,
        round: u64,
        into: &mut [Option<ProbeResult>],
        until: Instant,
        want: usize,
        stop: &AtomicBool,
    ) -> usize {
        let mut got = 0;
        loop {
            let now = Instant::now();
            if got >= want || stop.load(Relaxed) {
                return got;
            }
            let wait = until.saturating_duration_since(now).min(STOP_POLL);
            match self.results.recv_timeout(wait) {
                Ok((r, i, result)) => {
                    // A result of an earlier round (a probe that ran late) is dropped.
                    if r == round {
                        if let Some(slot) = into.get_mut(i) {
                            *slot = Some(result);
                            got += 1;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < until => {}
                Err(_) => return got,
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
