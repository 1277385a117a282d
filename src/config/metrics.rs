//! `[metrics]`: where the Prometheus endpoint listens (optional).

use std::net::SocketAddr;

use serde::Deserialize;

use super::error::{ConfigError, ConfigText};

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: SocketAddr,
}

/// The endpoint's address (none: no `[metrics]`, no endpoint). It must not be one where DNS
/// listens over TCP (`dns`: `server.listen`): one of the two could not bind.
pub(super) fn validate(
    raw: Option<RawMetrics>,
    dns: &[SocketAddr],
    at: &ConfigText<'_>,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(m) = raw else { return Ok(None) };
    let clash = dns.iter().find(|d| {
        // Port 0: each takes a free port of its own.
        d.port() == m.listen.port()
            && d.port() != 0
            && (d.ip() == m.listen.ip()
                || d.ip().is_unspecified()
                || m.listen.ip().is_unspecified())
    });
    if let Some(d) = clash {
        return Err(at.err(
            at.key_span("metrics", "listen"),
            format!(
                "metrics.listen {} is where DNS listens over TCP (server.listen {d}): use another port",
                m.listen
            ),
        ));
    }
    Ok(Some(m.listen))
}
