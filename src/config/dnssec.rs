//! `[dnssec]` (how signatures are made and cached: the validity schedule, the per-worker
//! cache and miss limit) and a zone's `[[zone.dnssec.key]]` list (its key files and their
//! rollover states). A zone with keys signs every answer to a query with DO.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigText;
use super::ConfigError;
use crate::dnssec::key::{Role, SigningKey};
use crate::dnssec::window::Schedule;
use crate::name::DomainName;

/// `[dnssec]` in the configuration (defaults when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecConfig {
    /// Length of a validity window: every signature made in one carries the same inception
    /// and expiration.
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// From a window's start to its signatures' expiration (more than `window_days`).
    #[serde(default = "default_validity_days")]
    pub validity_days: u32,
    /// How far before a window's start its signatures' inception lies (clock skew).
    #[serde(default = "default_inception_offset")]
    pub inception_offset_secs: u32,
    /// Signatures each worker thread caches (rounded up to a power of two).
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// Signatures each worker may make per second on cache misses (bursts as large); over
    /// it a UDP query gets a truncated answer (its resolver retries over TCP) and a TCP
    /// query SERVFAIL.
    #[serde(default = "default_misses_per_sec")]
    pub misses_per_sec: u32,
    /// TTL of the DNSKEY, CDS and CDNSKEY records.
    #[serde(default = "default_dnskey_ttl")]
    pub dnskey_ttl: u32,
}

fn default_window_days() -> u32 {
    7
}
fn default_validity_days() -> u32 {
    14
}
fn default_inception_offset() -> u32 {
    3600
}
fn default_cache_entries() -> usize {
    65_536
}
fn default_misses_per_sec() -> u32 {
    2_000
}
fn default_dnskey_ttl() -> u32 {
    3600
}

impl Default for DnssecConfig {
    fn default() -> Self {
        DnssecConfig {
            window_days: default_window_days(),
            validity_days: default_validity_days(),
            inception_offset_secs: default_inception_offset(),
            cache_entries: default_cache_entries(),
            misses_per_sec: default_misses_per_sec(),
            dnskey_ttl: default_dnskey_ttl(),
        }
    }
}

impl DnssecConfig {
    /// The validity schedule these settings describe.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            window_secs: u64::from(self.window_days) * 86_400,
            validity_secs: u64::from(self.validity_days) * 86_400,
            inception_offset_secs: u64::from(self.inception_offset_secs),
        }
    }
}

/// Checks `[dnssec]`.
pub(super) fn validate(
    raw: Option<DnssecConfig>,
    at: &ConfigText<'_>,
) -> Result<DnssecConfig, ConfigError> {
    let c = raw.unwrap_or_default();
    let line = |key: &str| at.key_span("dnssec", key);
    if c.window_days == 0 || c.window_days > 90 {
        return Err(at.err(
            line("window_days"),
            "dnssec.window_days must be 1..=90".into(),
        ));
    }
    if c.validity_days <= c.window_days || c.validity_days > 365 {
        return Err(at.err(
            line("validity_days"),
            format!(
                "dnssec.validity_days must be more than window_days ({}) and at most 365: a \
                 signature made at a window's end must stay valid for a while",
                c.window_days
            ),
        ));
    }
    if c.inception_offset_secs > 86_400 {
        return Err(at.err(
            line("inception_offset_secs"),
            "dnssec.inception_offset_secs must be at most 86400".into(),
        ));
    }
    if c.cache_entries == 0 || c.cache_entries > 1 << 26 {
        return Err(at.err(
            line("cache_entries"),
            "dnssec.cache_entries must be 1..=67108864 (per worker)".into(),
        ));
    }
    if c.misses_per_sec == 0 {
        return Err(at.err(
            line("misses_per_sec"),
            "dnssec.misses_per_sec must be at least 1".into(),
        ));
    }
    Ok(c)
}

/// The most active keys that sign one RRset (each adds a signature to every answer).
pub const MAX_ACTIVE: usize = 2;

/// A key's place in a rollover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// In the DNSKEY set and signing.
    Active,
    /// In the DNSKEY set (and, for a KSK or CSK, in CDS/CDNSKEY), not signing yet: a new key
    /// pre-published until resolvers' caches hold it.
    Published,
    /// In the DNSKEY set, not signing, not in CDS/CDNSKEY: an old key kept until the
    /// signatures it made have expired from caches.
    Retired,
}

/// One `[[zone.dnssec.key]]`: a key file, loaded, and its state.
#[derive(Debug, Clone)]
pub struct ZoneKey {
    pub file: PathBuf,
    pub state: KeyState,
    pub key: Arc<SigningKey>,
}

/// A zone's `dnssec` table.
#[derive(Debug, Clone)]
pub struct ZoneDnssec {
    pub keys: Vec<ZoneKey>,
    /// A copy of `[dnssec]` (so that a zone is built from its own configuration).
    pub settings: DnssecConfig,
}

/// `[zone.dnssec]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZoneDnssec {
    #[serde(default)]
    key: Vec<Spanned<RawKey>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    file: PathBuf,
    #[serde(default = "default_state")]
    state: String,
}

fn default_state() -> String {
    "active".into()
}

/// Loads and checks a zone's keys: each file (relative to the configuration's directory),
/// its zone, its state; the zone must have an active key for its records (CSK or ZSK) and
/// one for its DNSKEY set (CSK or KSK).
pub(super) fn validate_zone(
    raw: Option<RawZoneDnssec>,
    zone_span: std::ops::Range<usize>,
    apex: &DomainName,
    base_dir: &Path,
    at: &ConfigText<'_>,
) -> Result<Option<ZoneDnssec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let table_span = raw.key.first().map_or(zone_span, |k| k.span());
    let mut keys: Vec<ZoneKey> = Vec::new();
    for k in raw.key {
        let span = k.span();
        let k = k.into_inner();
        let err = |m: String| at.err(Some(span.clone()), format!("zone {apex}: {m}"));
        let state = match k.state.as_str() {
            "active" => KeyState::Active,
            "published" => KeyState::Published,
            "retired" => KeyState::Retired,
            other => {
                return Err(err(format!(
                    "key state {other:?}: expected \"active\", \"published\" or \"retired\""
                )))
            }
        };
        let file = if k.file.is_absolute() {
            k.file.clone()
        } else {
            base_dir.join(&k.file)
        };
        let key = SigningKey::load(&file).map_err(|e| err(e.to_string()))?;
        if key.zone() != apex {
            return Err(err(format!(
                "key file {} is for zone {}, not {apex}",
                file.display(),
                key.zone()
            )));
        }
        if let Some(other) = keys.iter().find(|o| o.key.key_tag() == key.key_tag()) {
            return Err(err(format!(
                "key file {} has the key tag {} of {} (listed twice, or a tag collision: \
                 generate another key)",
                file.display(),
                key.key_tag(),
                other.file.display()
            )));
        }
        keys.push(ZoneKey {
            file,
            state,
            key: Arc::new(key),
        });
    }
    let active = |roles: &[Role]| {
        keys.iter()
            .any(|k| k.state == KeyState::Active && roles.contains(&k.key.role()))
    };
    if !active(&[Role::Csk, Role::Zsk]) {
        return Err(at.err(
            Some(table_span),
            format!(
                "zone {apex}: dnssec needs an active key of role csk or zsk to sign its records"
            ),
        ));
    }
    if !active(&[Role::Csk, Role::Ksk]) {
        return Err(at.err(
            Some(table_span),
            format!(
                "zone {apex}: dnssec needs an active key of role csk or ksk to sign its DNSKEY set"
            ),
        ));
    }
    for (roles, what) in [
        (&[Role::Csk, Role::Zsk][..], "its records (csk, zsk)"),
        (&[Role::Csk, Role::Ksk][..], "its DNSKEY set (csk, ksk)"),
    ] {
        let n = keys
            .iter()
            .filter(|k| k.state == KeyState::Active && roles.contains(&k.key.role()))
            .count();
        if n > MAX_ACTIVE {
            return Err(at.err(
                Some(table_span),
                format!(
                    "zone {apex}: {n} active keys sign {what}; at most {MAX_ACTIVE} (a rollover \
                     pre-publishes the new key with state = \"published\")"
                ),
            ));
        }
    }
    Ok(Some(ZoneDnssec {
        keys,
        settings: DnssecConfig::default(),
    }))
}
