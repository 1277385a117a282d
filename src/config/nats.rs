//! `[nats]` and `[relay]`: the NATS JetStream fan-out. `[nats]` says where the JetStream
//! servers are and what the stream, the snapshot object store and the relays' lease bucket
//! are called (edges with `feed.source = "nats"` and relays both read it); `[relay]` says how a
//! `clusterns relay` batches changes, how often it publishes a snapshot and how long its
//! leadership lease lasts. A relay reads the source of truth that its own `[feed]` names
//! (a journal or PostgreSQL).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, ConfigText};
use crate::name::Label;

/// `[nats]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port` or `tls://host:port`); the client connects to one and
    /// learns the rest of the cluster from it.
    pub servers: Vec<String>,
    /// The JetStream stream the changes are published to.
    pub stream: String,
    /// The subject of the change messages (the stream's only subject).
    pub subject: String,
    /// The object store bucket holding the table snapshots edges bootstrap from.
    pub snapshot_bucket: String,
    /// The key-value bucket holding the relays' leadership lease.
    pub lease_bucket: String,
    /// A NATS credentials file (`.creds`: user JWT and NKey seed); none: no authentication.
    pub credentials: Option<PathBuf>,
    /// How long a connection attempt may take.
    pub connect_timeout_ms: u64,
    /// How long the stream keeps a change message (its `max_age`): an edge away for longer
    /// bootstraps from a snapshot. Applied when a relay creates the stream.
    pub retention_secs: u64,
    /// The stream's and the buckets' replicas (1; 3 on a three-node JetStream cluster).
    pub replicas: usize,
}

/// `[relay]`, validated (defaults when the section is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// This relay's name in the lease (none: the host name and process id).
    pub name: Option<Label>,
    /// The most changes in one message.
    pub batch_max: usize,
    /// How long a change may wait for more to fill its message.
    pub batch_wait_ms: u64,
    /// Time between two snapshots published to the object store (one is also published when
    /// the stream starts over).
    pub snapshot_interval_secs: u64,
    /// How long a relay's leadership lasts unless renewed (renewed every third of it); a
    /// standby takes over within about this long after the leader stops.
    pub lease_secs: u64,
    /// Where the relay's Prometheus endpoint listens (none: no endpoint).
    pub metrics: Option<SocketAddr>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            name: None,
            batch_max: 1000,
            batch_wait_ms: 5,
            snapshot_interval_secs: 300,
            lease_secs: 6,
            metrics: None,
        }
    }
}

/// `[nats]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNats {
    servers: Vec<String>,
    stream: Option<String>,
    subject: Option<String>,
    snapshot_bucket: Option<String>,
    lease_bucket: Option<String>,
    credentials: Option<PathBuf>,
    connect_timeout_ms: Option<u64>,
    retention_secs: Option<u64>,
    replicas: Option<usize>,
}

/// `[relay]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    name: Option<Label>,
    batch_max: Option<usize>,
    batch_wait_ms: Option<u64>,
    snapshot_interval_secs: Option<u64>,
    lease_secs: Option<u64>,
    metrics: Option<SocketAddr>,
}

/// Whether `name` can name a stream or a bucket: 1 to 64 of `A-Z a-z 0-9 _ -`.
fn is_store_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `subject` is a literal subject: dot-separated tokens of printable ASCII, none
/// empty, no wildcard.
fn is_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= 255
        && subject.split('.').all(|t| {
            !t.is_empty() && t != "*" && t != ">" && t.bytes().all(|b| b.is_ascii_graphic())
        })
}

/// Checks `[nats]` (each bad value named with its line); `None` when the section is absent.
pub(super) fn validate(
    raw: Option<RawNats>,
    base_dir: &Path,
    at: &ConfigText<'_>,
) -> Result<Option<NatsConfig>, ConfigError> {
    let Some(r) = raw else { return Ok(None) };
    let err = |key: &str, message: String| at.err(at.key_span("nats", key), message);
    if r.servers.is_empty() {
        return Err(err("servers", "nats.servers lists no server".into()));
    }
    for s in &r.servers {
        let rest = s
            .strip_prefix("nats://")
            .or_else(|| s.strip_prefix("tls://"))
            .unwrap_or(s);
        let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
        let port_ok = host_port
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if rest.len() == s.len() || !port_ok {
            return Err(err(
                "servers",
                format!(
                    "nats.servers: {} is not nats://host:port or tls://host:port",
                    crate::name::quote(s)
                ),
            ));
        }
    }
    let c = NatsConfig {
        servers: r.servers,
        stream: r.stream.unwrap_or_else(|| "clusterns".into()),
        subject: r.subject.unwrap_or_else(|| "clusterns.changes".into()),
        snapshot_bucket: r
            .snapshot_bucket
            .unwrap_or_else(|| "clusterns-snapshots".into()),
        lease_bucket: r.lease_bucket.unwrap_or_else(|| "clusterns-relay".into()),
        credentials: r.credentials.map(|p| base_dir.join(p)),
        connect_timeout_ms: r.connect_timeout_ms.unwrap_or(2000),
        retention_secs: r.retention_secs.unwrap_or(86_400),
        replicas: r.replicas.unwrap_or(1),
    };
    for (key, name) in [
        ("stream", &c.stream),
        ("snapshot_bucket", &c.snapshot_bucket),
        ("lease_bucket", &c.lease_bucket),
    ] {
        if !is_store_name(name) {
            return Err(err(
                key,
                format!(
                    "nats.{key} {} is not 1 to 64 of A-Z a-z 0-9 _ -",
                    crate::name::quote(name)
                ),
            ));
        }
    }
    if !is_subject(&c.subject) {
        return Err(err(
            "subject",
            format!(
                "nats.subject {} is not a subject without wildcards",
                crate::name::quote(&c.subject)
            ),
        ));
    }
    if !(100..=60_000).contains(&c.connect_timeout_ms) {
        return Err(err(
            "connect_timeout_ms",
            format!(
                "nats.connect_timeout_ms {} is not in 100..=60000",
                c.connect_timeout_ms
            ),
        ));
    }
    if !(60..=365 * 86_400).contains(&c.retention_secs) {
        return Err(err(
            "retention_secs",
            format!(
                "nats.retention_secs {} is not in 60..=31536000",
                c.retention_secs
            ),
        ));
    }
    if !(1..=5).contains(&c.replicas) {
        return Err(err(
            "replicas",
            format!("nats.replicas {} is not in 1..=5", c.replicas),
        ));
    }
    Ok(Some(c))
}

/// Checks `[relay]` (defaults when absent).
pub(super) fn validate_relay(
    raw: Option<RawRelay>,
    at: &ConfigText<'_>,
) -> Result<RelayConfig, ConfigError> {
    let d = RelayConfig::default();
    let Some(r) = raw else { return Ok(d) };
    let err = |key: &str, message: String| at.err(at.key_span("relay", key), message);
    let c = RelayConfig {
        name: r.name,
        batch_max: r.batch_max.unwrap_or(d.batch_max),
        batch_wait_ms: r.batch_wait_ms.unwrap_or(d.batch_wait_ms),
        snapshot_interval_secs: r.snapshot_interval_secs.unwrap_or(d.snapshot_interval_secs),
        lease_secs: r.lease_secs.unwrap_or(d.lease_secs),
        metrics: r.metrics,
    };
    if !(1..=10_000).contains(&c.batch_max) {
        return Err(err(
            "batch_max",
            format!("relay.batch_max {} is not in 1..=10000", c.batch_max),
        ));
    }
    if c.batch_wait_ms > 1000 {
        return Err(err(
            "batch_wait_ms",
            format!("relay.batch_wait_ms {} is not in 0..=1000", c.batch_wait_ms),
        ));
    }
    if !(1..=86_400).contains(&c.snapshot_interval_secs) {
        return Err(err(
            "snapshot_interval_secs",
            format!(
                "relay.snapshot_interval_secs {} is not in 1..=86400",
                c.snapshot_interval_secs
            ),
        ));
    }
    if !(3..=300).contains(&c.lease_secs) {
        return Err(err(
            "lease_secs",
            format!("relay.lease_secs {} is not in 3..=300", c.lease_secs),
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::{is_store_name, is_subject};

    #[test]
    fn names_and_subjects() {
        assert!(is_store_name("clusterns-snapshots_1"));
        assert!(!is_store_name("") && !is_store_name("a.b") && !is_store_name("a b"));
        assert!(!is_store_name(&"x".repeat(65)));
        assert!(is_subject("clusterns.changes") && is_subject("x"));
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a", "a."] {
            assert!(!is_subject(bad), "{bad:?}");
        }
    }
}
