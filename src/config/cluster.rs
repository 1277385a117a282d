//! `[[cluster]]`: the clusters apps live on, their load balancers' addresses with the answer
//! policy (weights, priority groups, how many addresses an answer carries, a failover cluster,
//! the TTL while degraded), and how `clusterns health` probes them (`[cluster.check]`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigText};
use crate::name::Label;

/// The most addresses of one family a cluster may have (an answer's pick works in a fixed
/// array of this size).
pub const MAX_ADDRESSES: usize = 64;
/// The largest weight.
pub const MAX_WEIGHT: u32 = 65_535;

/// One load-balancer address with its share of the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<A> {
    pub addr: A,
    /// Relative share of the answers among the addresses picked from; 0 = drained (never
    /// answered, whatever its health).
    pub weight: u32,
    /// Priority group: the answer comes from the lowest-numbered group that has a healthy
    /// address.
    pub priority: u8,
}

/// How `clusterns health` probes a cluster's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection to the port is accepted.
    Tcp,
    /// An HTTP GET of `path` answers `expect_status`.
    Http { path: String, expect_status: u16 },
    /// The same over TLS; the certificate is checked against `host` (or the address).
    Https { path: String, expect_status: u16 },
}

/// `[cluster.check]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    pub port: u16,
    /// The Host header and the TLS server name (none: the address).
    pub host: Option<String>,
}

/// One `[[cluster]]`: a name, its load balancer's addresses and their answer policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: Label,
    pub ipv4: Vec<Member<Ipv4Addr>>,
    pub ipv6: Vec<Member<Ipv6Addr>>,
    /// How many addresses one answer carries at most (none: every eligible address).
    pub max_answers: Option<u16>,
    /// The cluster whose answer is given when none of this one's addresses is healthy.
    pub failover: Option<Label>,
    /// The answers' TTL while degraded (an address down, or failing over); none: half the
    /// zone's TTL.
    pub degraded_ttl: Option<u32>,
    /// What `clusterns health` probes (none: this cluster is not checked).
    pub check: Option<CheckConfig>,
}

impl ClusterConfig {
    /// Every address of the cluster, both families, in configuration order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ipv4
            .iter()
            .map(|m| IpAddr::V4(m.addr))
            .chain(self.ipv6.iter().map(|m| IpAddr::V6(m.addr)))
    }

    /// A cluster with these addresses, weight 1, one priority group, no policy and no check
    /// (tests, synthetic configs).
    pub fn plain(name: Label, ipv4: &[Ipv4Addr], ipv6: &[Ipv6Addr]) -> ClusterConfig {
        ClusterConfig {
            name,
            ipv4: ipv4.iter().map(|&addr| Member::plain(addr)).collect(),
            ipv6: ipv6.iter().map(|&addr| Member::plain(addr)).collect(),
            max_answers: None,
            failover: None,
            degraded_ttl: None,
            check: None,
        }
    }
}

impl<A> Member<A> {
    /// Weight 1, priority group 1.
    pub fn plain(addr: A) -> Member<A> {
        Member {
            addr,
            weight: 1,
            priority: 1,
        }
    }
}

/// An address as written: `"198.51.100.20"` or `{ address = "...", weight = 3, priority = 2 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawMember<A> {
    Plain(A),
    Table(RawMemberTable<A>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMemberTable<A> {
    address: A,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default = "one_u8")]
    priority: u8,
}

fn one() -> u32 {
    1
}
fn one_u8() -> u8 {
    1
}

/// `[cluster.check]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    kind: String,
    port: Option<u16>,
    path: Option<String>,
    expect_status: Option<u16>,
    host: Option<String>,
}

/// One `[[cluster]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    name: Label,
    #[serde(default)]
    ipv4: Vec<RawMember<Ipv4Addr>>,
    #[serde(default)]
    ipv6: Vec<RawMember<Ipv6Addr>>,
    max_answers: Option<u16>,
    failover: Option<Label>,
    degraded_ttl: Option<u32>,
    check: Option<RawCheck>,
}

/// The members as configured, checked: no address twice, at most [`MAX_ADDRESSES`], weights
/// in range, at least one with a weight above 0 when there are any.
fn members<A: Copy + PartialEq + std::fmt::Display>(
    raw: Vec<RawMember<A>>,
    family: &str,
    cluster: &str,
) -> Result<Vec<Member<A>>, String> {
    let list: Vec<Member<A>> = raw
        .into_iter()
        .map(|m| match m {
            RawMember::Plain(addr) => Member::plain(addr),
            RawMember::Table(t) => Member {
                addr: t.address,
                weight: t.weight,
                priority: t.priority,
            },
        })
        .collect();
    if list.len() > MAX_ADDRESSES {
        return Err(format!(
            "cluster {cluster:?} has {} {family} addresses (at most {MAX_ADDRESSES})",
            list.len()
        ));
    }
    for (i, m) in list.iter().enumerate() {
        if list[..i].iter().any(|o| o.addr == m.addr) {
            return Err(format!(
                "cluster {cluster:?} lists {family} address {} twice",
                m.addr
            ));
        }
        if m.weight > MAX_WEIGHT {
            return Err(format!(
                "cluster {cluster:?} address {} has weight {} (at most {MAX_WEIGHT})",
                m.addr, m.weight
            ));
        }
    }
    if !list.is_empty() && list.iter().all(|m| m.weight == 0) {
        return Err(format!(
            "cluster {cluster:?}: every {family} address has weight 0 (drained); keep one"
        ));
    }
    Ok(list)
}

fn check(raw: RawCheck, cluster: &str) -> Result<CheckConfig, String> {
    let path = raw.path.unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || path.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(format!(
            "cluster {cluster:?} check.path {path:?} must start with / and hold no spaces"
        ));
    }
    let expect_status = raw.expect_status.unwrap_or(200);
    if !(100..=599).contains(&expect_status) {
        return Err(format!(
            "cluster {cluster:?} check.expect_status {expect_status} is not an HTTP status"
        ));
    }
    let (kind, default_port) = match raw.kind.as_str() {
        "tcp" => (CheckKind::Tcp, None),
        "http" => (
            CheckKind::Http {
                path,
                expect_status,
            },
            Some(80),
        ),
        "https" => (
            CheckKind::Https {
                path,
                expect_status,
            },
            Some(443),
        ),
        other => {
            return Err(format!(
            "cluster {cluster:?} check.kind {other:?} is not one of \"tcp\", \"http\", \"https\""
        ))
        }
    };
    let port = match raw.port.or(default_port) {
        Some(0) | None => {
            return Err(format!(
                "cluster {cluster:?} check.port is needed (1..=65535) for a {} check",
                raw.kind
            ))
        }
        Some(p) => p,
    };
    if let Some(h) = &raw.host {
        if h.is_empty() || h.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(format!(
                "cluster {cluster:?} check.host {h:?} is not a host name"
            ));
        }
    }
    Ok(CheckConfig {
        kind,
        port,
        host: raw.host,
    })
}

/// Checks every `[[cluster]]` (at least one; each located at its table), then the failover
/// links: each names a configured cluster other than itself, and following them never comes
/// back (an answer fails over one hop, so a cycle would be a configuration mistake).
pub(super) fn validate(
    raw: Vec<Spanned<RawCluster>>,
    at: &ConfigText<'_>,
) -> Result<Vec<ClusterConfig>, ConfigError> {
    let mut clusters: Vec<ClusterConfig> = Vec::with_capacity(raw.len());
    let mut spans = Vec::with_capacity(raw.len());
    for spanned in raw {
        let span = spanned.span();
        let c = spanned.into_inner();
        let name = c.name.as_str().to_string();
        let err = |message: String| at.err(Some(span.clone()), message);
        if clusters.iter().any(|o| o.name == c.name) {
            return Err(err(format!("duplicate cluster {name:?}")));
        }
        if c.ipv4.is_empty() {
            return Err(err(format!(
                "cluster {name:?} needs at least one ipv4 address"
            )));
        }
        if clusters.len() >= usize::from(u16::MAX) {
            return Err(err("too many clusters (at most 65535)".into()));
        }
        let ipv4 = members(c.ipv4, "ipv4", &name).map_err(&err)?;
        let ipv6 = members(c.ipv6, "ipv6", &name).map_err(&err)?;
        if c.max_answers == Some(0) {
            return Err(err(format!(
                "cluster {name:?} max_answers is 0 (at least 1; leave it out for every address)"
            )));
        }
        if let Some(t) = c.degraded_ttl {
            if t > 86_400 {
                return Err(err(format!(
                    "cluster {name:?} degraded_ttl {t} is above a day"
                )));
            }
        }
        let check = c.check.map(|r| check(r, &name)).transpose().map_err(&err)?;
        clusters.push(ClusterConfig {
            name: c.name,
            ipv4,
            ipv6,
            max_answers: c.max_answers,
            failover: c.failover,
            degraded_ttl: c.degraded_ttl,
            check,
        });
        spans.push(span);
    }
    if clusters.is_empty() {
        return Err(at.err(None, "no [[cluster]] defined".into()));
    }
    for (i, c) in clusters.iter().enumerate() {
        let Some(first) = &c.failover else { continue };
        let err = |message: String| at.err(Some(spans[i].clone()), message);
        let mut path = vec![c.name.as_str()];
        let mut next = Some(first);
        while let Some(n) = next {
            let Some(target) = clusters.iter().find(|o| o.name == *n) else {
                return Err(err(format!(
                    "cluster {:?} fails over to {:?}, which is not a configured cluster",
                    c.name.as_str(),
                    n.as_str()
                )));
            };
            if path.contains(&n.as_str()) {
                path.push(n.as_str());
                return Err(err(format!(
                    "cluster {:?}: failover cycle {}",
                    c.name.as_str(),
                    path.join(" -> ")
                )));
            }
            path.push(n.as_str());
            next = target.failover.as_ref();
        }
    }
    Ok(clusters)
}
