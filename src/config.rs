//! Parsing and validation of the TOML configuration file (server, feed, zones, clusters).
//!
//! Every error names the file, the line and the problem: syntax and type errors come from the
//! `toml` parser's spans; semantic checks (duplicates, glue outside its zone, ...) use
//! `serde_spanned::Spanned` fields so that they can point at the offending line as well.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::name::{DomainName, Label};

/// A configuration error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line number, when the error can be located.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

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
    /// The lines of the feed's file settings, for messages about those files.
    pub feed_lines: FeedLines,
}

/// Lines (1-based) of the `[feed]` keys that name files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedLines {
    pub journal: Option<usize>,
    pub checkpoint: Option<usize>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: SocketAddr,
}

/// `[server]`: listeners and resource limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to answer on, over both UDP and TCP.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads (each with its own SO_REUSEPORT socket); 0 = one per core.
    #[serde(default)]
    pub threads: usize,
    /// The EDNS UDP payload size this server advertises and the largest UDP answer it sends.
    #[serde(default = "default_udp_payload")]
    pub udp_payload: u16,
    /// Seconds after which an idle TCP connection is closed.
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout_secs: u64,
    /// The most TCP connections open at once; further connections are refused.
    #[serde(default = "default_tcp_max")]
    pub tcp_max_connections: usize,
    /// After binding its sockets (port 53 needs root or CAP_NET_BIND_SERVICE), switch to this
    /// user and its primary group.
    #[serde(default)]
    pub user: Option<String>,
    /// Receive coalescing, in microseconds (0: off, at most 1000): while queries keep
    /// arriving on a UDP worker (at least one per this interval) without filling its batch of
    /// 32, it waits this long before the next receive, trading at most that much latency
    /// for fewer wake-ups per query.
    #[serde(default = "default_udp_coalesce")]
    pub udp_coalesce_us: u32,
    /// Log one UDP query in this many (0: no query log).
    #[serde(default)]
    pub query_log_sample: u64,
    /// Response rate limiting for UDP (`[server.rrl]`; off unless `rate` is set).
    #[serde(default)]
    pub rrl: crate::server::rrl::RrlConfig,
}

fn default_listen() -> Vec<SocketAddr> {
    vec!["127.0.0.1:5353".parse().expect("literal address")]
}
fn default_udp_payload() -> u16 {
    1232
}
fn default_udp_coalesce() -> u32 {
    100
}
fn default_tcp_idle() -> u64 {
    10
}
fn default_tcp_max() -> usize {
    1024
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            threads: 0,
            udp_payload: default_udp_payload(),
            tcp_idle_timeout_secs: default_tcp_idle(),
            tcp_max_connections: default_tcp_max(),
            user: None,
            udp_coalesce_us: default_udp_coalesce(),
            query_log_sample: 0,
            rrl: crate::server::rrl::RrlConfig::default(),
        }
    }
}

/// `[feed]`: where the table of apps comes from, and where its checkpoints go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    pub source: SourceConfig,
    /// The checkpoint file; none: no checkpoints (start-up replays the whole feed).
    pub checkpoint: Option<PathBuf>,
    /// Seconds between checkpoints while changes arrive (one is also written at shutdown).
    pub checkpoint_interval_secs: u64,
    /// How often the journal is checked for new lines, or the database read when no
    /// notification came (milliseconds).
    pub poll_interval_ms: u64,
}

/// The change source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// The embedded default: an append-only journal file of changes.
    Journal { path: PathBuf },
    /// PostgreSQL (see `sql/schema.sql`): a libpq-style connection string.
    Postgres { conninfo: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    #[serde(default = "default_source")]
    source: Spanned<String>,
    journal: Option<Spanned<PathBuf>>,
    postgres: Option<String>,
    checkpoint: Option<Spanned<PathBuf>>,
    #[serde(default = "default_checkpoint_interval")]
    checkpoint_interval_secs: u64,
    poll_interval_ms: Option<u64>,
}

fn default_checkpoint_interval() -> u64 {
    300
}

fn default_source() -> Spanned<String> {
    Spanned::new(0..0, "journal".to_string())
}

/// One `[[zone]]`.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    pub apex: DomainName,
    /// TTL of the app answers (A/AAAA) and of the apex records.
    pub ttl: u32,
    /// TTL of negative answers (the SOA MINIMUM field, RFC 2308).
    pub negative_ttl: u32,
    pub soa: SoaConfig,
    pub ns: Vec<DomainName>,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub caa: Vec<CaaConfig>,
    pub txt: Vec<String>,
    pub mx: Vec<MxConfig>,
    /// `_acme-challenge.<name>` answers a CNAME to `<name>.<acme_validation_zone>`.
    pub acme_validation_zone: Option<DomainName>,
    /// Named hosts inside the zone (name servers' glue and the like).
    pub hosts: Vec<HostConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaConfig {
    /// The primary name server; defaults to the first NS.
    pub mname: Option<DomainName>,
    /// The responsible mailbox as a domain name (`hostmaster.example.com`).
    pub rname: DomainName,
    #[serde(default = "default_serial")]
    pub serial: u32,
    #[serde(default = "default_refresh")]
    pub refresh: u32,
    #[serde(default = "default_retry")]
    pub retry: u32,
    #[serde(default = "default_expire")]
    pub expire: u32,
    /// TTL of the SOA record itself.
    #[serde(default = "default_soa_ttl")]
    pub ttl: u32,
}

fn default_serial() -> u32 {
    1
}
fn default_refresh() -> u32 {
    3600
}
fn default_retry() -> u32 {
    600
}
fn default_expire() -> u32 {
    1_209_600
}
fn default_soa_ttl() -> u32 {
    3600
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaaConfig {
    #[serde(default)]
    pub flags: u8,
    pub tag: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MxConfig {
    pub preference: u16,
    pub exchange: DomainName,
}

/// A host name inside a zone with its addresses (`ns1` -> `ns1.<apex>`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The host's labels relative to the zone apex.
    pub name: DomainName,
    #[serde(default)]
    pub a: Vec<Ipv4Addr>,
    #[serde(default)]
    pub aaaa: Vec<Ipv6Addr>,
}

/// One `[[cluster]]`: a name and its load balancer's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: Label,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    feed: Option<RawFeed>,
    metrics: Option<RawMetrics>,
    #[serde(default)]
    zone: Vec<Spanned<RawZone>>,
    #[serde(default)]
    cluster: Vec<Spanned<RawCluster>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    apex: DomainName,
    #[serde(default = "default_ttl")]
    ttl: u32,
    #[serde(default = "default_negative_ttl")]
    negative_ttl: u32,
    soa: SoaConfig,
    ns: Vec<Spanned<DomainName>>,
    #[serde(default)]
    a: Vec<Ipv4Addr>,
    #[serde(default)]
    aaaa: Vec<Ipv6Addr>,
    #[serde(default)]
    caa: Vec<Spanned<CaaConfig>>,
    #[serde(default)]
    txt: Vec<Spanned<String>>,
    #[serde(default)]
    mx: Vec<MxConfig>,
    acme_validation_zone: Option<DomainName>,
    #[serde(default)]
    host: Vec<Spanned<HostConfig>>,
}

fn default_ttl() -> u32 {
    60
}
fn default_negative_ttl() -> u32 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Label,
    #[serde(default)]
    ipv4: Vec<Ipv4Addr>,
    #[serde(default)]
    ipv6: Vec<Ipv6Addr>,
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
        let err_at = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            file: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim_end().to_string();
            if message.is_empty() {
                message = "invalid TOML (a control character or broken syntax)".into();
            }
            err_at(e.span(), message)
        })?;

        let server = raw.server;
        if server.listen.is_empty() {
            return Err(err_at(
                None,
                "server.listen must name at least one address".into(),
            ));
        }
        if server.udp_payload < 512 {
            return Err(err_at(
                None,
                "server.udp_payload must be at least 512".into(),
            ));
        }
        if server.udp_coalesce_us > 1000 {
            return Err(err_at(
                None,
                "server.udp_coalesce_us must be at most 1000 (one millisecond)".into(),
            ));
        }
        if server.tcp_max_connections == 0 {
            return Err(err_at(
                None,
                "server.tcp_max_connections must be at least 1".into(),
            ));
        }

        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut feed_lines = FeedLines::default();
        let feed = match raw.feed {
            None => {
                return Err(err_at(
                    None,
                    "missing [feed] section (source = \"journal\", journal = \"<file>\")".into(),
                ))
            }
            Some(feed) => {
                let source = match feed.source.get_ref().as_str() {
                    "journal" => {
                        let Some(journal) = feed.journal else {
                            return Err(err_at(
                                Some(feed.source.span()),
                                "feed source \"journal\" needs `journal = \"<file>\"`".into(),
                            ));
                        };
                        feed_lines.journal = Some(line_of(text, journal.span().start));
                        SourceConfig::Journal {
                            path: base_dir.join(journal.into_inner()),
                        }
                    }
                    "postgres" => {
                        let Some(conninfo) = feed.postgres else {
                            return Err(err_at(
                                Some(feed.source.span()),
                                "feed source \"postgres\" needs `postgres = \"host=... dbname=...\"`"
                                    .into(),
                            ));
                        };
                        SourceConfig::Postgres { conninfo }
                    }
                    other => {
                        return Err(err_at(
                            Some(feed.source.span()),
                            format!(
                            "unknown feed source {other:?} (expected \"journal\" or \"postgres\")"
                        ),
                        ))
                    }
                };
                let default_poll = match source {
                    SourceConfig::Journal { .. } => 2,
                    SourceConfig::Postgres { .. } => 1000,
                };
                FeedConfig {
                    source,
                    checkpoint: feed.checkpoint.map(|c| {
                        feed_lines.checkpoint = Some(line_of(text, c.span().start));
                        base_dir.join(c.into_inner())
                    }),
                    checkpoint_interval_secs: feed.checkpoint_interval_secs.max(1),
                    poll_interval_ms: feed.poll_interval_ms.unwrap_or(default_poll).max(1),
                }
            }
        };

        let mut clusters: Vec<ClusterConfig> = Vec::with_capacity(raw.cluster.len());
        for spanned in raw.cluster {
            let span = spanned.span();
            let c = spanned.into_inner();
            if clusters.iter().any(|o| o.name == c.name) {
                return Err(err_at(
                    Some(span),
                    format!("duplicate cluster {:?}", c.name.as_str()),
                ));
            }
            if c.ipv4.is_empty() {
                return Err(err_at(
                    Some(span),
                    format!(
                        "cluster {:?} needs at least one ipv4 address",
                        c.name.as_str()
                    ),
                ));
            }
            if clusters.len() >= usize::from(u16::MAX) {
                return Err(err_at(
                    Some(span),
                    "too many clusters (at most 65535)".into(),
                ));
            }
            clusters.push(ClusterConfig {
                name: c.name,
                ipv4: c.ipv4,
                ipv6: c.ipv6,
            });
        }
        if clusters.is_empty() {
            return Err(err_at(None, "no [[cluster]] defined".into()));
        }

        let mut zones: Vec<ZoneConfig> = Vec::with_capacity(raw.zone.len());
        for spanned in raw.zone {
            let span = spanned.span();
            let z = spanned.into_inner();
            if z.apex.is_root() {
                return Err(err_at(Some(span), "the root zone cannot be served".into()));
            }
            if zones.iter().any(|o| o.apex == z.apex) {
                return Err(err_at(Some(span), format!("duplicate zone {}", z.apex)));
            }
            if z.ns.is_empty() {
                return Err(err_at(
                    Some(span),
                    format!("zone {} needs at least one ns", z.apex),
                ));
            }
            for txt in &z.txt {
                if txt.get_ref().len() > 255 * 8 {
                    return Err(err_at(Some(txt.span()), "txt record too long".into()));
                }
            }
            for caa in &z.caa {
                // RFC 8659: a tag is 1 to 15 letters and digits.
                let tag = &caa.get_ref().tag;
                if tag.is_empty()
                    || tag.len() > 15
                    || !tag.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(err_at(
                        Some(caa.span()),
                        format!("caa tag {tag:?} must be 1 to 15 letters and digits"),
                    ));
                }
                if caa.get_ref().value.len() > 255 * 8 {
                    return Err(err_at(Some(caa.span()), "caa value too long".into()));
                }
            }
            let mut hosts: Vec<HostConfig> = Vec::new();
            for h in z.host {
                let hspan = h.span();
                let h = h.into_inner();
                if h.name.is_root() {
                    return Err(err_at(Some(hspan), "host name must not be empty".into()));
                }
                if hosts.iter().any(|o| o.name == h.name) {
                    return Err(err_at(Some(hspan), format!("duplicate host {}", h.name)));
                }
                if h.a.is_empty() && h.aaaa.is_empty() {
                    return Err(err_at(
                        Some(hspan),
                        format!("host {} needs an a or aaaa address", h.name),
                    ));
                }
                let full = h
                    .name
                    .join(&z.apex)
                    .map_err(|m| err_at(Some(hspan.clone()), m))?;
                hosts.push(HostConfig {
                    name: full,
                    a: h.a,
                    aaaa: h.aaaa,
                });
            }
            let mut ns = Vec::with_capacity(z.ns.len());
            for n in z.ns {
                let nspan = n.span();
                let n = n.into_inner();
                if n.ends_with(&z.apex) && !hosts.iter().any(|h| h.name == n) {
                    return Err(err_at(
                        Some(nspan),
                        format!("name server {n} is inside zone {} but has no [[zone.host]] with its address (glue)", z.apex),
                    ));
                }
                ns.push(n);
            }
            let soa = z.soa;
            let txt = z.txt.into_iter().map(|t| t.into_inner()).collect();
            zones.push(ZoneConfig {
                apex: z.apex,
                ttl: z.ttl,
                negative_ttl: z.negative_ttl,
                soa,
                ns,
                a: z.a,
                aaaa: z.aaaa,
                caa: z.caa.into_iter().map(|c| c.into_inner()).collect(),
                txt,
                mx: z.mx,
                acme_validation_zone: z.acme_validation_zone,
                hosts,
            });
        }
        if zones.is_empty() {
            return Err(err_at(None, "no [[zone]] defined".into()));
        }

        Ok(Config {
            path: path.to_path_buf(),
            server,
            feed,
            zones,
            clusters,
            metrics: raw.metrics.map(|m| m.listen),
            feed_lines,
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

/// The 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:0"]
threads = 2

[feed]
source = "journal"
journal = "journal.log"

[[zone]]
apex = "Repl.CO"
ns = ["ns1.repl.co", "ns.example.net"]
a = ["192.0.2.1"]
acme_validation_zone = "acme.example.net"
soa = { rname = "hostmaster.repl.co", serial = 7 }
[[zone.host]]
name = "ns1"
a = ["192.0.2.53"]

[[cluster]]
name = "us-east"
ipv4 = ["203.0.113.1", "203.0.113.2"]
ipv6 = ["2001:db8::1"]
"#;

    #[test]
    fn parses_a_good_config() {
        let c = Config::parse(Path::new("/etc/clusterns/c.toml"), GOOD).unwrap();
        assert_eq!(c.server.threads, 2);
        assert_eq!(
            c.feed.source,
            SourceConfig::Journal {
                path: PathBuf::from("/etc/clusterns/journal.log")
            }
        );
        assert_eq!(c.feed.checkpoint, None);
        assert_eq!(c.feed.poll_interval_ms, 2);
        let pg = GOOD.replace(
            "source = \"journal\"",
            "source = \"postgres\"\npostgres = \"host=127.0.0.1\"\ncheckpoint = \"c.ckpt\"",
        );
        let c = Config::parse(Path::new("/etc/clusterns/c.toml"), &pg).unwrap();
        assert_eq!(
            c.feed.source,
            SourceConfig::Postgres {
                conninfo: "host=127.0.0.1".into()
            }
        );
        assert_eq!(
            c.feed.checkpoint,
            Some(PathBuf::from("/etc/clusterns/c.ckpt"))
        );
        let z = &c.zones[0];
        assert_eq!(z.apex.to_string(), "repl.co.");
        assert_eq!(z.ttl, 60);
        assert_eq!(z.soa.serial, 7);
        assert_eq!(z.soa.refresh, 3600);
        assert_eq!(z.hosts[0].name.to_string(), "ns1.repl.co.");
        assert_eq!(c.clusters[0].ipv4.len(), 2);
        assert_eq!(c.cluster_index("us-east"), Some(0));
        assert_eq!(c.cluster_index("nope"), None);
    }

    fn err(text: &str) -> ConfigError {
        Config::parse(Path::new("c.toml"), text).unwrap_err()
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = err("[server]\nthreads = 1\nlisten = [\"nonsense\"]\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().starts_with("c.toml:3:"), "{e}");
    }

    #[test]
    fn bad_address_and_name_are_located() {
        let bad_ip = GOOD.replace("203.0.113.2", "203.0.113.300");
        let e = err(&bad_ip);
        assert_eq!(
            e.line,
            Some(line_of(&bad_ip, bad_ip.find("203.0.113.300").unwrap()))
        );
        let bad_name = GOOD.replace("Repl.CO", "repl..co");
        let e = err(&bad_name);
        assert_eq!(
            e.line,
            Some(line_of(&bad_name, bad_name.find("repl..co").unwrap()))
        );
        assert!(e.message.contains("empty label"), "{e}");
    }

    #[test]
    fn semantic_errors_are_reported() {
        let dup = format!("{GOOD}\n[[cluster]]\nname = \"us-east\"\nipv4 = [\"192.0.2.9\"]\n");
        let e = err(&dup);
        assert!(e.message.contains("duplicate cluster"), "{e}");
        assert!(e.line.unwrap() > 20, "{e}");

        let noglue = GOOD.replace("name = \"ns1\"", "name = \"ns9\"");
        let e = err(&noglue);
        assert!(e.message.contains("glue"), "{e}");
        assert_eq!(e.line, Some(12));

        let e = err(&GOOD.replace("source = \"journal\"", "source = \"carrier-pigeon\""));
        assert!(e.message.contains("unknown feed source"), "{e}");
        assert_eq!(e.line, Some(7));

        let e = err(&GOOD.replace("threads = 2", "threads = 2\nbogus = 1"));
        assert!(e.message.contains("unknown field"), "{e}");
        assert_eq!(e.line, Some(5));

        let e = err(&GOOD.replace("threads = 2", "threads = 2\nudp_coalesce_us = 1001"));
        assert!(e.message.contains("udp_coalesce_us"), "{e}");

        // A CAA tag is letters and digits (found by the config fuzz target: "issue$" was
        // accepted and encoded into an answer that no parser accepts).
        for tag in ["issue$", "", "issuewildcardxyz1", "is-sue"] {
            let text = GOOD.replace(
                "a = [\"192.0.2.1\"]",
                &format!(
                    "a = [\"192.0.2.1\"]\ncaa = [{{ tag = \"{tag}\", value = \"ca.example\" }}]"
                ),
            );
            let e = err(&text);
            assert!(e.message.contains("caa tag"), "{tag}: {e}");
            assert_eq!(e.line, Some(14), "{tag}: {e}");
        }
        let ok = GOOD.replace(
            "a = [\"192.0.2.1\"]",
            "a = [\"192.0.2.1\"]\ncaa = [{ tag = \"issuewild\", value = \"ca.example\" }]",
        );
        assert_eq!(
            Config::parse(Path::new("c.toml"), &ok).unwrap().zones[0]
                .caa
                .len(),
            1
        );
    }

    #[test]
    fn udp_coalescing_is_read() {
        let c = Config::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(c.server.udp_coalesce_us, 100);
        for v in [0, 1000] {
            let text = GOOD.replace(
                "threads = 2",
                &format!("threads = 2\nudp_coalesce_us = {v}"),
            );
            let c = Config::parse(Path::new("c.toml"), &text).unwrap();
            assert_eq!(c.server.udp_coalesce_us, v);
        }
    }
}
