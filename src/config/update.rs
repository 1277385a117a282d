//! `[update]`: DNS UPDATE for ACME challenges (see `crate::update`): whether this server
//! accepts updates, its TSIG key file, the limits, and `[[update.grant]]`, the names each key
//! may touch. [`UpdateConfig::load`] reads the key file and checks the grants against it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigText};
use super::zone::ZoneConfig;
use crate::update::{keys, Grant, Keys, Limits, NamePattern, UpdatePolicy};

/// `[update]`, validated. Disabled by default: UPDATE (opcode 5) then gets NOTIMP.
#[derive(Debug, Clone, Default)]
pub struct UpdateConfig {
    pub enabled: bool,
    /// The TSIG key file (BIND format), resolved against the config file's directory.
    pub keys: Option<PathBuf>,
    pub grants: Vec<GrantConfig>,
    pub limits: Limits,
    /// The configuration file, for messages about grants.
    pub file: PathBuf,
}

/// One `[[update.grant]]`.
#[derive(Debug, Clone)]
pub struct GrantConfig {
    /// The key's name, lower-case, without a trailing dot.
    pub key: String,
    pub names: Vec<NamePattern>,
    /// The line of `key = ...`.
    pub line: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpdate {
    #[serde(default)]
    enabled: bool,
    keys: Option<Spanned<PathBuf>>,
    max_value_len: Option<Spanned<usize>>,
    max_values_per_name: Option<Spanned<usize>>,
    max_names_per_key: Option<Spanned<usize>>,
    rate: Option<u32>,
    burst: Option<Spanned<u32>>,
    #[serde(default)]
    grant: Vec<RawGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    key: Spanned<String>,
    names: Spanned<Vec<Spanned<String>>>,
}

impl UpdateConfig {
    /// Reads the key file (refusing one others can read), and checks that every grant names
    /// a key in it: the keys and the policy [`crate::update::process`] applies.
    pub fn load(&self) -> Result<(Keys, UpdatePolicy), ConfigError> {
        let Some(path) = &self.keys else {
            return Ok((Keys::default(), self.policy()));
        };
        let keys = keys::load(path).map_err(|e| ConfigError {
            file: e.file,
            line: e.line,
            message: e.message,
        })?;
        for g in &self.grants {
            if keys.get(&g.key).is_none() {
                return Err(ConfigError {
                    file: self.file.clone(),
                    line: Some(g.line),
                    message: format!(
                        "update.grant key {:?} is not in the key file {}",
                        g.key,
                        path.display()
                    ),
                });
            }
        }
        Ok((keys, self.policy()))
    }

    /// The grants and limits as the engine's policy.
    pub fn policy(&self) -> UpdatePolicy {
        UpdatePolicy {
            grants: self
                .grants
                .iter()
                .map(|g| Grant {
                    key: g.key.clone(),
                    names: g.names.clone(),
                })
                .collect(),
            limits: self.limits,
        }
    }
}

/// Checks `[update]` (none: disabled) against the zones.
pub(super) fn validate(
    raw: Option<RawUpdate>,
    base_dir: &Path,
    zones: &[ZoneConfig],
    at: &ConfigText<'_>,
) -> Result<UpdateConfig, ConfigError> {
    let file = at.path.to_path_buf();
    let Some(raw) = raw else {
        return Ok(UpdateConfig {
            file,
            ..UpdateConfig::default()
        });
    };
    let section = at.key_span("update", "enabled");
    let mut limits = Limits::default();
    let bounded = |v: Option<Spanned<usize>>, key: &str, max: usize, into: &mut usize| {
        if let Some(v) = v {
            let span = v.span();
            let v = v.into_inner();
            if v == 0 || v > max {
                return Err(at.err(
                    Some(span),
                    format!("update.{key} must be 1 to {max}, not {v}"),
                ));
            }
            *into = v;
        }
        Ok(())
    };
    bounded(
        raw.max_value_len,
        "max_value_len",
        255,
        &mut limits.max_value_len,
    )?;
    bounded(
        raw.max_values_per_name,
        "max_values_per_name",
        1000,
        &mut limits.max_values_per_name,
    )?;
    bounded(
        raw.max_names_per_key,
        "max_names_per_key",
        1_000_000,
        &mut limits.max_names_per_key,
    )?;
    if let Some(rate) = raw.rate {
        limits.rate = rate;
    }
    if let Some(burst) = raw.burst {
        let span = burst.span();
        let burst = burst.into_inner();
        if burst == 0 {
            return Err(at.err(Some(span), "update.burst must be at least 1".into()));
        }
        limits.burst = burst;
    }
    let keys = match raw.keys {
        Some(k) => {
            let span = k.span();
            let k = k.into_inner();
            if k.as_os_str().is_empty() {
                return Err(at.err(
                    Some(span),
                    "update.keys is empty: name the TSIG key file".into(),
                ));
            }
            Some(base_dir.join(k))
        }
        None => None,
    };
    let mut grants = Vec::with_capacity(raw.grant.len());
    for g in raw.grant {
        let key_span = g.key.span();
        let key = g.key.into_inner();
        let key = key.strip_suffix('.').unwrap_or(&key).to_ascii_lowercase();
        if key.is_empty() {
            return Err(at.err(Some(key_span), "update.grant key is empty".into()));
        }
        let names_span = g.names.span();
        let written = g.names.into_inner();
        if written.is_empty() {
            return Err(at.err(
                Some(names_span),
                format!("update.grant for key {key:?} has no names"),
            ));
        }
        let mut names = Vec::with_capacity(written.len());
        for n in written {
            let span = n.span();
            let pattern: NamePattern = n.into_inner().parse().map_err(|e: String| {
                at.err(Some(span.clone()), format!("update.grant names: {e}"))
            })?;
            let suffix = pattern.suffix();
            if !zones.iter().any(|z| suffix.ends_with(&z.apex)) {
                return Err(at.err(
                    Some(span),
                    format!("update.grant names: {pattern} is in no configured zone"),
                ));
            }
            names.push(pattern);
        }
        grants.push(GrantConfig {
            key,
            names,
            line: at.line(key_span.start),
        });
    }
    if raw.enabled {
        if keys.is_none() {
            return Err(at.err(
                section.clone(),
                "update.enabled needs update.keys, the TSIG key file (BIND format, as tsig-keygen prints)".into(),
            ));
        }
        if grants.is_empty() {
            return Err(at.err(
                section,
                "update.enabled without any [[update.grant]]: every update would be refused".into(),
            ));
        }
    }
    Ok(UpdateConfig {
        enabled: raw.enabled,
        keys,
        grants,
        limits,
        file,
    })
}
