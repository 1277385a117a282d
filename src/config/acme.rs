//! `[acme]`: the ACME DNS-01 challenge TXT records a zone in `acme = "txt"` mode answers
//! itself: their answer TTL, how long a record lives before the janitor deletes it, and the
//! limits every writer (the CLI, the UPDATE engine) and every reader of the feed enforce.

use serde::Deserialize;

use super::error::{ConfigError, ConfigText};

/// The longest TXT value (one character-string).
pub const MAX_VALUE_LEN: usize = 255;
/// The largest `ttl_secs`.
pub const MAX_TTL_SECS: u32 = 3600;

/// `[acme]`, validated (defaults when the section is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// TTL of the TXT answers (0..=3600).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u32,
    /// How long a record lives after it is written before the janitor deletes it.
    #[serde(default = "default_expire")]
    pub expire_secs: u64,
    /// The longest value, in bytes (1..=255).
    #[serde(default = "default_value_len")]
    pub max_value_len: usize,
    /// Values one name may hold at once.
    #[serde(default = "default_values")]
    pub max_values_per_name: usize,
    /// Names holding values, in all.
    #[serde(default = "default_names")]
    pub max_names: usize,
}

fn default_ttl() -> u32 {
    60
}
fn default_expire() -> u64 {
    3600
}
fn default_value_len() -> usize {
    MAX_VALUE_LEN
}
fn default_values() -> usize {
    8
}
fn default_names() -> usize {
    10_000
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            ttl_secs: default_ttl(),
            expire_secs: default_expire(),
            max_value_len: default_value_len(),
            max_values_per_name: default_values(),
            max_names: default_names(),
        }
    }
}

/// Checks `[acme]` (each bad value named with its line).
pub(super) fn validate(
    raw: Option<AcmeConfig>,
    at: &ConfigText<'_>,
) -> Result<AcmeConfig, ConfigError> {
    let Some(c) = raw else {
        return Ok(AcmeConfig::default());
    };
    let err = |key: &str, message: String| at.err(at.key_span("acme", key), message);
    if c.ttl_secs > MAX_TTL_SECS {
        return Err(err(
            "ttl_secs",
            format!(
                "acme.ttl_secs {} is above {MAX_TTL_SECS} (challenge answers must not linger)",
                c.ttl_secs
            ),
        ));
    }
    if c.expire_secs == 0 || c.expire_secs > 7 * 86_400 {
        return Err(err(
            "expire_secs",
            format!(
                "acme.expire_secs {} must be 1 to 604800 (a week)",
                c.expire_secs
            ),
        ));
    }
    if c.max_value_len == 0 || c.max_value_len > MAX_VALUE_LEN {
        return Err(err(
            "max_value_len",
            format!(
                "acme.max_value_len {} must be 1 to {MAX_VALUE_LEN} (one TXT character-string)",
                c.max_value_len
            ),
        ));
    }
    if c.max_values_per_name == 0 || c.max_values_per_name > 64 {
        return Err(err(
            "max_values_per_name",
            format!(
                "acme.max_values_per_name {} must be 1 to 64",
                c.max_values_per_name
            ),
        ));
    }
    if c.max_names == 0 || c.max_names > 1_000_000 {
        return Err(err(
            "max_names",
            format!("acme.max_names {} must be 1 to 1000000", c.max_names),
        ));
    }
    Ok(c)
}

/// How a zone answers `_acme-challenge.<owner>` (`[[zone]] acme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeMode {
    /// The challenge TXT records this server holds (`acme = "txt"`).
    Txt,
    /// A CNAME to `<owner>.<acme_validation_zone>` (`acme = "cname"`).
    Cname,
}

impl AcmeMode {
    /// The mode a zone's `acme` key names; none given: `cname` when the zone has an
    /// `acme_validation_zone`, else `txt`.
    pub fn choose(key: Option<&str>, has_validation_zone: bool) -> Result<AcmeMode, String> {
        match key {
            None if has_validation_zone => Ok(AcmeMode::Cname),
            None | Some("txt") => Ok(AcmeMode::Txt),
            Some("cname") if has_validation_zone => Ok(AcmeMode::Cname),
            Some("cname") => Err("acme = \"cname\" needs acme_validation_zone".into()),
            Some(other) => Err(format!("acme = {other:?}: expected \"txt\" or \"cname\"")),
        }
    }
}
