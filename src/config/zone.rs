//! `[[zone]]`: the zones served, their apex records and hosts, with their defaults and
//! checks.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use toml::Spanned;

use super::acme::AcmeMode;
use super::error::{ConfigError, ConfigText};
use crate::name::DomainName;

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
    /// `_acme-challenge.<name>` answers a CNAME to `<name>.<acme_validation_zone>` (in
    /// [`AcmeMode::Cname`]).
    pub acme_validation_zone: Option<DomainName>,
    /// Whether `_acme-challenge.<name>` answers the TXT records held here or the CNAME.
    pub acme: AcmeMode,
    /// Named hosts inside the zone (name servers' glue and the like).
    pub hosts: Vec<HostConfig>,
    /// `[[zone.dnssec.key]]`: the zone signs answers to queries with DO.
    pub dnssec: Option<super::dnssec::ZoneDnssec>,
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

/// One `[[zone]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
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
    acme: Option<Spanned<String>>,
    #[serde(default)]
    host: Vec<Spanned<HostConfig>>,
    dnssec: Option<super::dnssec::RawZoneDnssec>,
}

fn default_ttl() -> u32 {
    60
}
fn default_negative_ttl() -> u32 {
    60
}

/// Checks every `[[zone]]` (at least one; each located at its table, or at the value at
/// fault).
pub(super) fn validate(
    raw: Vec<Spanned<RawZone>>,
    base_dir: &std::path::Path,
    at: &ConfigText<'_>,
) -> Result<Vec<ZoneConfig>, ConfigError> {
    let mut zones: Vec<ZoneConfig> = Vec::with_capacity(raw.len());
    for spanned in raw {
        let span = spanned.span();
        let z = spanned.into_inner();
        if z.apex.is_root() {
            return Err(at.err(Some(span), "the root zone cannot be served".into()));
        }
        if zones.iter().any(|o| o.apex == z.apex) {
            return Err(at.err(Some(span), format!("duplicate zone {}", z.apex)));
        }
        if z.ns.is_empty() {
            return Err(at.err(Some(span), format!("zone {} needs at least one ns", z.apex)));
        }
        check_records(&z, at)?;
        let hosts = hosts(z.host, &z.apex, at)?;
        let ns = name_servers(z.ns, &z.apex, &hosts, at)?;
        let soa = z.soa;
        let txt = z.txt.into_iter().map(|t| t.into_inner()).collect();
        let acme = AcmeMode::choose(
            z.acme.as_ref().map(|a| a.get_ref().as_str()),
            z.acme_validation_zone.is_some(),
        )
        .map_err(|m| {
            let at_span = z.acme.as_ref().map_or(span.clone(), |a| a.span());
            at.err(Some(at_span), format!("zone {}: {m}", z.apex))
        })?;
        let dnssec = super::dnssec::validate_zone(z.dnssec, span.clone(), &z.apex, base_dir, at)?;
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
            acme,
            hosts,
            dnssec,
        });
    }
    if zones.is_empty() {
        return Err(at.err(None, "no [[zone]] defined".into()));
    }
    Ok(zones)
}

/// Checks a zone's TXT and CAA records: their sizes, and CAA tags.
fn check_records(z: &RawZone, at: &ConfigText<'_>) -> Result<(), ConfigError> {
    for txt in &z.txt {
        if txt.get_ref().len() > 255 * 8 {
            return Err(at.err(Some(txt.span()), "txt record too long".into()));
        }
    }
    for caa in &z.caa {
        // RFC 8659: a tag is 1 to 15 letters and digits.
        let tag = &caa.get_ref().tag;
        if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(at.err(
                Some(caa.span()),
                format!("caa tag {tag:?} must be 1 to 15 letters and digits"),
            ));
        }
        if caa.get_ref().value.len() > 255 * 8 {
            return Err(at.err(Some(caa.span()), "caa value too long".into()));
        }
    }
    Ok(())
}

/// Checks a zone's `[[zone.host]]` tables and makes their names absolute under `apex`.
fn hosts(
    raw: Vec<Spanned<HostConfig>>,
    apex: &DomainName,
    at: &ConfigText<'_>,
) -> Result<Vec<HostConfig>, ConfigError> {
    let mut hosts: Vec<HostConfig> = Vec::new();
    for h in raw {
        let hspan = h.span();
        let h = h.into_inner();
        if h.name.is_root() {
            return Err(at.err(Some(hspan), "host name must not be empty".into()));
        }
        if h.a.is_empty() && h.aaaa.is_empty() {
            return Err(at.err(
                Some(hspan),
                format!("host {} needs an a or aaaa address", h.name),
            ));
        }
        let full = h
            .name
            .join(apex)
            .map_err(|m| at.err(Some(hspan.clone()), m))?;
        // `hosts` holds absolute names: compare the absolute name.
        if hosts.iter().any(|o| o.name == full) {
            return Err(at.err(Some(hspan), format!("duplicate host {}", h.name)));
        }
        hosts.push(HostConfig {
            name: full,
            a: h.a,
            aaaa: h.aaaa,
        });
    }
    Ok(hosts)
}

/// Checks a zone's name servers: one inside the zone needs a host with its address (glue).
fn name_servers(
    raw: Vec<Spanned<DomainName>>,
    apex: &DomainName,
    hosts: &[HostConfig],
    at: &ConfigText<'_>,
) -> Result<Vec<DomainName>, ConfigError> {
    let mut ns = Vec::with_capacity(raw.len());
    for n in raw {
        let nspan = n.span();
        let n = n.into_inner();
        if n.ends_with(apex) && !hosts.iter().any(|h| h.name == n) {
            return Err(at.err(
                Some(nspan),
                format!("name server {n} is inside zone {apex} but has no [[zone.host]] with its address (glue)"),
            ));
        }
        ns.push(n);
    }
    Ok(ns)
}
