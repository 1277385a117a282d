//! Parsing and validation of the TOML configuration file (server, feed, zones, clusters), and
//! every configuration type.
//!
//! Every error names the file, the line and the problem: syntax and type errors come from the
//! `toml` parser's spans; semantic checks (duplicates, glue outside its zone, ...) use
//! `serde_spanned::Spanned` fields so that they can point at the offending line as well. Each
//! section has its module (types, defaults, and a validator); [`Config::parse`] deserialises
//! the file and runs the validators in order: server, feed, clusters, zones.

pub mod acme;
mod cluster;
mod control;
mod dnssec;
mod error;
mod feed;
mod health;
mod metrics;
mod nats;
mod rrl;
mod server;
mod update;
mod zone;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::name::DomainName;

pub use acme::{AcmeConfig, AcmeMode};
pub use cluster::{CheckConfig, CheckKind, ClusterConfig, Member, MAX_ADDRESSES, MAX_WEIGHT};
pub use control::{ControlConfig, PACKAGE_SOCKET};
pub use dnssec::{DnssecConfig, KeyState, ZoneDnssec, ZoneKey};
pub use error::{line_of, ConfigError};
pub use feed::{redact_conninfo, FeedConfig, FeedLines, SourceConfig};
pub use health::HealthConfig;
pub use nats::{NatsConfig, RelayConfig};
pub use rrl::RrlConfig;
pub use server::ServerConfig;
pub use update::{GrantConfig, UpdateConfig};
pub use zone::{CaaConfig, HostConfig, MxConfig, SoaConfig, ZoneConfig};

use error::ConfigText;

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration was read from (relative paths inside it are relative to its
    /// directory).
    pub path: PathBuf,
    pub server: ServerConfig,
    pub feed: FeedConfig,
    pub zones: Vec<ZoneConfig>,
    pub clusters: Vec<ClusterConfig>,
    /// Where the Prometheus endpoint listens (none: no endpoint).
    pub metrics: Option<SocketAddr>,
    /// The control socket (none: no `[control]`, no socket).
    pub control: Option<ControlConfig>,
    /// DNS UPDATE for ACME challenges (`[update]`; disabled when absent).
    pub update: UpdateConfig,
    /// The lines of the feed's file settings, for messages about those files.
    pub feed_lines: FeedLines,
    /// The line of `server.user`, for messages about that user.
    pub user_line: Option<usize>,
    /// `[acme]`: challenge TXT records' TTL, expiry and limits.
    pub acme: AcmeConfig,
    /// `[health]`: how a `clusterns health` checker probes (defaults when absent).
    pub health: HealthConfig,
    /// `[nats]`: the JetStream fan-out (required by `feed.source = "nats"` and by relays).
    pub nats: Option<NatsConfig>,
    /// `[relay]`: how a `clusterns relay` publishes (defaults when absent).
    pub relay: RelayConfig,
    /// `[dnssec]`: signatures' validity schedule, caching and miss limit.
    pub dnssec: DnssecConfig,
}

/// The file as written, each section deserialised (types and unknown keys checked).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    feed: Option<feed::RawFeed>,
    metrics: Option<metrics::RawMetrics>,
    control: Option<control::RawControl>,
    update: Option<update::RawUpdate>,
    acme: Option<AcmeConfig>,
    health: Option<health::RawHealth>,
    nats: Option<nats::RawNats>,
    relay: Option<nats::RawRelay>,
    dnssec: Option<DnssecConfig>,
    #[serde(default)]
    zone: Vec<Spanned<zone::RawZone>>,
    #[serde(default)]
    cluster: Vec<Spanned<cluster::RawCluster>>,
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates configuration text; `path` is used for messages and for resolving
    /// relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let at = ConfigText { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim_end().to_string();
            if message.is_empty() {
                message = "invalid TOML (a control character or broken syntax)".into();
            }
            at.err(e.span(), message)
        })?;
        let server = server::validate(raw.server, &at)?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        let (feed, feed_lines) = feed::validate(raw.feed, base_dir, &at)?;
        let clusters = cluster::validate(raw.cluster, &at)?;
        let mut zones = zone::validate(raw.zone, base_dir, &at)?;
        let dnssec = dnssec::validate(raw.dnssec, &at)?;
        for z in zones.iter_mut().filter_map(|z| z.dnssec.as_mut()) {
            z.settings = dnssec;
        }
        let metrics = metrics::validate(raw.metrics, &server.listen, &at)?;
        let control = control::validate(raw.control, base_dir, &at)?;
        let update = update::validate(raw.update, base_dir, &zones, &at)?;
        let acme = acme::validate(raw.acme, &at)?;
        let health = health::validate(raw.health, &at)?;
        let nats = nats::validate(raw.nats, base_dir, &at)?;
        let relay = nats::validate_relay(raw.relay, &at)?;
        if feed.source == SourceConfig::Nats && nats.is_none() {
            return Err(at.err(
                at.key_span("feed", "source"),
                "feed source \"nats\" needs a [nats] section (servers = [\"nats://host:port\"])"
                    .into(),
            ));
        }
        Ok(Config {
            path: path.to_path_buf(),
            server,
            feed,
            zones,
            clusters,
            metrics,
            control,
            update,
            feed_lines,
            user_line: at.key_span("server", "user").map(|s| at.line(s.start)),
            acme,
            health,
            nats,
            relay,
            dnssec,
        })
    }

    /// What in this configuration answers `<label>.<apex>` (and the names below it) in some
    /// zone instead of an app or user called `label`: a host (`ns1`, or `infra` for a host
    /// `ns2.infra`) or a nested zone. None when nothing does.
    pub fn answered_elsewhere(&self, label: &str) -> Option<String> {
        self.labels_answered_elsewhere()
            .into_iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(label))
            .map(|(_, by)| by)
    }

    /// Every label right below a zone apex that a host or a nested zone answers, with what
    /// answers it (see [`Config::answered_elsewhere`]).
    pub fn labels_answered_elsewhere(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for zone in &self.zones {
            let apex: Vec<&[u8]> = zone.apex.labels().collect();
            let below = |name: &DomainName| -> Option<String> {
                let labels: Vec<&[u8]> = name.labels().collect();
                (labels.len() > apex.len() && labels.ends_with(&apex)).then(|| {
                    String::from_utf8_lossy(labels[labels.len() - apex.len() - 1])
                        .to_ascii_lowercase()
                })
            };
            for h in &zone.hosts {
                if let Some(l) = below(&h.name) {
                    out.push((l, format!("host {}", h.name)));
                }
            }
            for z in &self.zones {
                if let Some(l) = below(&z.apex) {
                    out.push((l, format!("zone {}", z.apex)));
                }
            }
        }
        out
    }

    /// The index of the cluster called `name` in this configuration's list (not what the
    /// table's cluster indexes refer to: those index the table's registry of the names the
    /// feed has used).
    pub fn cluster_index(&self, name: &str) -> Option<u16> {
        self.clusters
            .iter()
            .position(|c| c.name.as_str() == name)
            .map(|i| i as u16)
    }

    /// The cluster called `name`, if this configuration has it.
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests;
