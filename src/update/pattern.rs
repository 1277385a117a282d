//! Grant name patterns (`[[update.grant]] names`): which challenge names a key may touch.
//!
//! A pattern is a domain name whose first label is `_acme-challenge`; one of its other labels
//! may be `*`, which matches one or more whole labels (not part of a label). So
//! `_acme-challenge.*.mark.repl.co` matches `_acme-challenge.app.mark.repl.co` and
//! `_acme-challenge.a.b.mark.repl.co`, but not `_acme-challenge.mark.repl.co` itself (list it
//! too). Comparison ignores case; a trailing dot is optional.

use std::fmt;
use std::str::FromStr;

use crate::name::{DomainName, MAX_LABEL_LEN};

/// The first label of every challenge name (RFC 8555 §8.4).
pub const CHALLENGE_LABEL: &[u8] = b"_acme-challenge";

/// One grant pattern, lower-case.
#[derive(Clone, PartialEq, Eq)]
pub struct NamePattern {
    /// The labels before the `*` (all of them when there is none).
    head: Vec<Vec<u8>>,
    /// The labels after the `*`; `None` when the pattern has no `*`.
    tail: Option<Vec<Vec<u8>>>,
}

impl NamePattern {
    /// Whether `name` matches this pattern.
    pub fn matches(&self, name: &DomainName) -> bool {
        let labels: Vec<&[u8]> = name.labels().collect();
        match &self.tail {
            None => {
                labels.len() == self.head.len()
                    && labels.iter().zip(&self.head).all(|(a, b)| *a == &b[..])
            }
            Some(tail) => {
                labels.len() > self.head.len() + tail.len()
                    && labels.iter().zip(&self.head).all(|(a, b)| *a == &b[..])
                    && labels
                        .iter()
                        .rev()
                        .zip(tail.iter().rev())
                        .all(|(a, b)| *a == &b[..])
            }
        }
    }

    /// The fixed name every match ends with: what follows the `*`, or the pattern less its
    /// first label. Used to check that a pattern lies in a configured zone.
    pub fn suffix(&self) -> DomainName {
        let labels: &[Vec<u8>] = match &self.tail {
            Some(tail) => tail,
            None => &self.head[1..],
        };
        let mut wire = Vec::new();
        for l in labels {
            wire.push(l.len() as u8);
            wire.extend_from_slice(l);
        }
        wire.push(0);
        DomainName::from_wire(&wire).unwrap_or_else(|_| DomainName::root())
    }
}

impl FromStr for NamePattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if text.is_empty() {
            return Err("empty name pattern".into());
        }
        let mut head = Vec::new();
        let mut tail: Option<Vec<Vec<u8>>> = None;
        let mut wire_len = 1;
        for label in text.split('.') {
            if label == "*" {
                if tail.is_some() {
                    return Err(format!("{s:?} has more than one `*`"));
                }
                if head.is_empty() {
                    return Err(format!(
                        "{s:?} must start with `_acme-challenge.` (a `*` may follow it)"
                    ));
                }
                tail = Some(Vec::new());
                wire_len += 2;
                continue;
            }
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(format!("{s:?} has an empty label or one over 63 bytes"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "{s:?}: labels are letters, digits, `-` and `_` (or a whole `*`)"
                ));
            }
            wire_len += 1 + label.len();
            match &mut tail {
                Some(t) => t.push(label.as_bytes().to_vec()),
                None => head.push(label.as_bytes().to_vec()),
            }
        }
        if wire_len > crate::name::MAX_NAME_LEN {
            return Err(format!("{s:?} is longer than a domain name can be"));
        }
        if head.first().map(|l| &l[..]) != Some(CHALLENGE_LABEL) {
            return Err(format!(
                "{s:?} must start with `_acme-challenge.`: a key may only touch challenge names"
            ));
        }
        if tail.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(format!("{s:?} ends with `*`: name the zone after it"));
        }
        Ok(NamePattern { head, tail })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .head
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        if let Some(tail) = &self.tail {
            parts.push("*".into());
            parts.extend(tail.iter().map(|l| String::from_utf8_lossy(l).into_owned()));
        }
        write!(f, "{}.", parts.join("."))
    }
}

impl fmt::Debug for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamePattern({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    #[test]
    fn exact_and_star() {
        let exact: NamePattern = "_acme-challenge.Mark.repl.co".parse().unwrap();
        assert!(exact.matches(&n("_acme-challenge.mark.repl.co")));
        assert!(!exact.matches(&n("_acme-challenge.x.mark.repl.co")));
        assert!(!exact.matches(&n("mark.repl.co")));
        assert_eq!(exact.suffix(), n("mark.repl.co"));
        let star: NamePattern = "_acme-challenge.*.mark.repl.co.".parse().unwrap();
        assert!(star.matches(&n("_acme-challenge.app.mark.repl.co")));
        assert!(star.matches(&n("_acme-challenge.a.b.mark.repl.co")));
        assert!(!star.matches(&n("_acme-challenge.mark.repl.co")));
        assert!(!star.matches(&n("_acme-challenge.app.other.repl.co")));
        assert!(!star.matches(&n("x.app.mark.repl.co")));
        assert_eq!(star.suffix(), n("mark.repl.co"));
        assert_eq!(star.to_string(), "_acme-challenge.*.mark.repl.co.");
    }

    #[test]
    fn bad_patterns() {
        for (p, why) in [
            ("", "empty"),
            ("*.repl.co", "must start with"),
            ("www.repl.co", "must start with"),
            ("_acme-challenge.*.*.repl.co", "more than one"),
            ("_acme-challenge.*", "ends with"),
            ("_acme-challenge..repl.co", "empty label"),
            ("_acme-challenge.a b.repl.co", "labels are"),
        ] {
            let e = p.parse::<NamePattern>().unwrap_err();
            assert!(e.contains(why), "{p:?}: {e}");
        }
    }
}
