//! What a key may do: its grants (name patterns) and the limits against abuse, and the
//! per-key token bucket that enforces the update rate.

use std::collections::HashMap;

use super::pattern::NamePattern;
use crate::name::DomainName;

/// The limits of `[update]` (see README, "Dynamic updates").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest TXT value accepted, in bytes (one character-string holds 255 at most).
    pub max_value_len: usize,
    /// The most TXT values one challenge name may hold after an update.
    pub max_values_per_name: usize,
    /// The most challenge names one key may hold values at.
    pub max_names_per_key: usize,
    /// Updates per second per key (0: no limit).
    pub rate: u32,
    /// Updates a key may send at once before `rate` applies.
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_len: 255,
            max_values_per_name: 8,
            max_names_per_key: 100,
            rate: 10,
            burst: 20,
        }
    }
}

/// The names one key may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key's name, lower-case, without the trailing dot (as in the key file).
    pub key: String,
    /// The patterns (any of them allows a name).
    pub names: Vec<NamePattern>,
}

/// Every grant and the limits: the policy [`super::process`] applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePolicy {
    pub grants: Vec<Grant>,
    pub limits: Limits,
}

impl UpdatePolicy {
    /// Whether `key` may touch `name`.
    pub fn allows(&self, key: &str, name: &DomainName) -> bool {
        self.grants
            .iter()
            .filter(|g| g.key.eq_ignore_ascii_case(key))
            .any(|g| g.names.iter().any(|p| p.matches(name)))
    }

    /// Whether `key` has any grant at all.
    pub fn has_grant(&self, key: &str) -> bool {
        self.grants.iter().any(|g| g.key.eq_ignore_ascii_case(key))
    }
}

/// A token bucket per key: `rate` updates a second, `burst` at once. Owned by the caller
/// (one per server), passed to [`super::process`]; time is the caller's `now`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: u32,
    burst: u32,
    buckets: HashMap<String, (u32, u64)>,
}

impl RateLimiter {
    /// A limiter for `limits.rate` and `limits.burst`.
    pub fn new(limits: &Limits) -> RateLimiter {
        RateLimiter {
            rate: limits.rate,
            burst: limits.burst.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `key` at time `now` (seconds); false when its bucket is empty.
    pub fn allow(&mut self, key: &str, now: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, last) = self
            .buckets
            .entry(key.to_ascii_lowercase())
            .or_insert((burst, now));
        let refill = now.saturating_sub(*last).saturating_mul(u64::from(rate));
        *tokens = (u64::from(*tokens) + refill).min(u64::from(burst)) as u32;
        // A clock that steps back does not refill, nor does it hold the bucket empty forever.
        *last = now;
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_per_second() {
        let mut l = RateLimiter::new(&Limits {
            rate: 2,
            burst: 3,
            ..Limits::default()
        });
        assert!((0..3).all(|_| l.allow("k", 100)));
        assert!(!l.allow("k", 100));
        assert!(l.allow("other", 100), "buckets are per key");
        assert!(
            l.allow("K", 101) && l.allow("k", 101),
            "two a second, any case"
        );
        assert!(!l.allow("k", 101));
        assert!(
            (0..3).all(|_| l.allow("k", 200)),
            "refill stops at the burst"
        );
        assert!(!l.allow("k", 200));
        let mut off = RateLimiter::new(&Limits {
            rate: 0,
            ..Limits::default()
        });
        assert!((0..1000).all(|_| off.allow("k", 1)));
    }

    #[test]
    fn grants_are_per_key() {
        let p = UpdatePolicy {
            grants: vec![Grant {
                key: "acme-mark".into(),
                names: vec!["_acme-challenge.*.mark.repl.co".parse().unwrap()],
            }],
            limits: Limits::default(),
        };
        let name: DomainName = "_acme-challenge.app.mark.repl.co".parse().unwrap();
        assert!(p.allows("ACME-mark", &name));
        assert!(!p.allows("acme-other", &name));
        assert!(p.has_grant("acme-mark") && !p.has_grant("x"));
    }
}
