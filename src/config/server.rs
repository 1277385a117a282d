//! `[server]`: listeners and resource limits, with their defaults and checks.

use std::net::SocketAddr;

use serde::Deserialize;

use super::error::{ConfigError, ConfigText};
use super::rrl::RrlConfig;

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
    /// The most TCP connections open at once; at the cap a new connection replaces the idlest.
    #[serde(default = "default_tcp_max")]
    pub tcp_max_connections: usize,
    /// Milliseconds a TCP message may take to arrive once its first byte has: a connection
    /// that trickles a message slower than this is closed (as Knot's `tcp-io-timeout`).
    #[serde(default = "default_tcp_message_timeout")]
    pub tcp_message_timeout_ms: u64,
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
    pub rrl: RrlConfig,
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
fn default_tcp_message_timeout() -> u64 {
    2000
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
            tcp_message_timeout_ms: default_tcp_message_timeout(),
            user: None,
            udp_coalesce_us: default_udp_coalesce(),
            query_log_sample: 0,
            rrl: RrlConfig::default(),
        }
    }
}

/// Checks `[server]` (the whole section: its errors have no line).
pub(super) fn validate(
    server: ServerConfig,
    at: &ConfigText<'_>,
) -> Result<ServerConfig, ConfigError> {
    let key = |k: &str| at.key_span("server", k);
    if server.listen.is_empty() {
        return Err(at.err(
            key("listen"),
            "server.listen must name at least one address".into(),
        ));
    }
    if server.udp_payload < 512 {
        return Err(at.err(
            key("udp_payload"),
            "server.udp_payload must be at least 512".into(),
        ));
    }
    if server.udp_coalesce_us > 1000 {
        return Err(at.err(
            key("udp_coalesce_us"),
            "server.udp_coalesce_us must be at most 1000 (one millisecond)".into(),
        ));
    }
    if server.tcp_message_timeout_ms == 0 {
        return Err(at.err(
            key("tcp_message_timeout_ms"),
            "server.tcp_message_timeout_ms must be at least 1".into(),
        ));
    }
    if server.tcp_max_connections == 0 {
        return Err(at.err(
            key("tcp_max_connections"),
            "server.tcp_max_connections must be at least 1".into(),
        ));
    }
    Ok(server)
}
