//! `[metrics]`: where the Prometheus endpoint listens (optional).

use std::net::SocketAddr;

use serde::Deserialize;

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: SocketAddr,
}

/// The endpoint's address (none: no `[metrics]`, no endpoint). Nothing to check beyond its
/// type.
pub(super) fn listen(raw: Option<RawMetrics>) -> Option<SocketAddr> {
    raw.map(|m| m.listen)
}
