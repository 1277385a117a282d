//! `[[cluster]]`: the clusters apps live on and their load balancers' addresses, with their
//! checks.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigText};
use crate::name::Label;

/// One `[[cluster]]`: a name and its load balancer's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: Label,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

/// One `[[cluster]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    name: Label,
    #[serde(default)]
    ipv4: Vec<Ipv4Addr>,
    #[serde(default)]
    ipv6: Vec<Ipv6Addr>,
}

/// Checks every `[[cluster]]` (at least one; each located at its table).
pub(super) fn validate(
    raw: Vec<Spanned<RawCluster>>,
    at: &ConfigText<'_>,
) -> Result<Vec<ClusterConfig>, ConfigError> {
    let mut clusters: Vec<ClusterConfig> = Vec::with_capacity(raw.len());
    for spanned in raw {
        let span = spanned.span();
        let c = spanned.into_inner();
        if clusters.iter().any(|o| o.name == c.name) {
            return Err(at.err(
                Some(span),
                format!("duplicate cluster {:?}", c.name.as_str()),
            ));
        }
        if c.ipv4.is_empty() {
            return Err(at.err(
                Some(span),
                format!(
                    "cluster {:?} needs at least one ipv4 address",
                    c.name.as_str()
                ),
            ));
        }
        if clusters.len() >= usize::from(u16::MAX) {
            return Err(at.err(Some(span), "too many clusters (at most 65535)".into()));
        }
        clusters.push(ClusterConfig {
            name: c.name,
            ipv4: c.ipv4,
            ipv6: c.ipv6,
        });
    }
    if clusters.is_empty() {
        return Err(at.err(None, "no [[cluster]] defined".into()));
    }
    Ok(clusters)
}
