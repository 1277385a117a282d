//! `[health]`: how a `clusterns health` checker probes the clusters' addresses (`[cluster.check]`
//! says what to probe) and how long what it reports holds. Edges need none of it: every report
//! carries its own lease.

use std::net::SocketAddr;

use serde::Deserialize;

use super::error::{ConfigError, ConfigText};
use crate::name::Label;

/// `[health]`, validated (defaults when the section is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// This checker's name in its reports (none: the host name). Every checker of a fleet
    /// needs its own: an address is down when a majority of the checkers whose reports are
    /// within their lease say so.
    pub checker: Option<Label>,
    /// Time between two probes of one address.
    pub interval_ms: u64,
    /// How long a probe may take before it counts as failed.
    pub timeout_ms: u64,
    /// Successful probes in a row before a down address is reported up.
    pub rise: u32,
    /// Failed probes in a row before an up address is reported down.
    pub fall: u32,
    /// How long a report holds: an edge treats an address whose reports are all older as
    /// unknown (answered: fail open). The checker renews its reports at a third of it.
    pub lease_secs: u64,
    /// Where the checker's Prometheus endpoint listens (none: no endpoint).
    pub metrics: Option<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            checker: None,
            interval_ms: 1000,
            timeout_ms: 800,
            rise: 2,
            fall: 2,
            lease_secs: 30,
            metrics: None,
        }
    }
}

/// `[health]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    checker: Option<Label>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
    lease_secs: Option<u64>,
    metrics: Option<SocketAddr>,
}

/// Checks `[health]` (each bad value named with its line).
pub(super) fn validate(
    raw: Option<RawHealth>,
    at: &ConfigText<'_>,
) -> Result<HealthConfig, ConfigError> {
    let d = HealthConfig::default();
    let Some(r) = raw else { return Ok(d) };
    let err = |key: &str, message: String| at.err(at.key_span("health", key), message);
    let c = HealthConfig {
        checker: r.checker,
        interval_ms: r.interval_ms.unwrap_or(d.interval_ms),
        // Unset: the default, but never longer than the interval.
        timeout_ms: r
            .timeout_ms
            .unwrap_or(d.timeout_ms.min(r.interval_ms.unwrap_or(d.interval_ms))),
        rise: r.rise.unwrap_or(d.rise),
        fall: r.fall.unwrap_or(d.fall),
        lease_secs: r.lease_secs.unwrap_or(d.lease_secs),
        metrics: r.metrics,
    };
    if !(50..=3_600_000).contains(&c.interval_ms) {
        return Err(err(
            "interval_ms",
            format!(
                "health.interval_ms {} is not in 50..=3600000",
                c.interval_ms
            ),
        ));
    }
    if c.timeout_ms == 0 || c.timeout_ms > c.interval_ms {
        return Err(err(
            "timeout_ms",
            format!(
                "health.timeout_ms {} must be above 0 and at most interval_ms ({})",
                c.timeout_ms, c.interval_ms
            ),
        ));
    }
    for (key, v) in [("rise", c.rise), ("fall", c.fall)] {
        if !(1..=100).contains(&v) {
            return Err(err(key, format!("health.{key} {v} is not in 1..=100")));
        }
    }
    if c.lease_secs * 1000 < 3 * c.interval_ms || c.lease_secs > 86_400 {
        return Err(err(
            "lease_secs",
            format!(
                "health.lease_secs {} must cover at least three intervals ({} ms) and at most a day",
                c.lease_secs,
                3 * c.interval_ms
            ),
        ));
    }
    Ok(c)
}
