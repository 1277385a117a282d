//! `clusterns health`: the checker. It probes every address of every cluster that has a
//! `[cluster.check]` (`probe`), damps flapping with the rise/fall thresholds (`flap`), decides
//! which reports are due, state changes and lease renewals (`ledger`), runs the rounds on a
//! small pool of threads (`run`) and shows what it does on a Prometheus endpoint (`metrics`).
//! The reports go to a [`ReportSink`]: the source of truth's writer in production, stdout for
//! `--dry-run`.

pub mod flap;
pub mod ledger;
pub mod metrics;
pub mod probe;
pub mod run;

use crate::health::report::HealthReport;

/// Where a checker's reports go, one batch per round.
pub trait ReportSink: Send {
    /// Writes the batch, in order. An error leaves the reports due: the checker logs it,
    /// counts it and writes them (with whatever changed since) the next round.
    fn write(&mut self, reports: &[HealthReport]) -> Result<(), String>;
}
