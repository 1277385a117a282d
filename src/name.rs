//! Owned, validated, lower-case domain names and labels for configuration and table data.
//!
//! Text is parsed with the `domain` crate and kept in uncompressed wire format
//! (length-prefixed labels ending in the root label), lower-cased once so that the query path
//! can compare bytes directly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The longest name in wire format (RFC 1035).
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// An absolute domain name, lower-case, in wire format.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DomainName {
    wire: Box<[u8]>,
}

impl DomainName {
    /// The root name.
    pub fn root() -> DomainName {
        DomainName {
            wire: Box::new([0]),
        }
    }

    /// Builds a name from wire bytes that are already validated (labels of 1..=63 bytes,
    /// ending with the root label, at most 255 bytes), lower-casing them.
    pub fn from_wire(wire: &[u8]) -> Result<DomainName, String> {
        let mut pos = 0;
        loop {
            let Some(&len) = wire.get(pos) else {
                return Err("name is not terminated by the root label".into());
            };
            let len = usize::from(len);
            if len > MAX_LABEL_LEN {
                return Err("label longer than 63 bytes or compressed".into());
            }
            pos += 1 + len;
            if len == 0 {
                break;
            }
        }
        if pos != wire.len() {
            return Err("trailing bytes after the root label".into());
        }
        if wire.len() > MAX_NAME_LEN {
            return Err("name longer than 255 bytes".into());
        }
        Ok(DomainName {
            wire: wire.to_ascii_lowercase().into_boxed_slice(),
        })
    }

    /// The name in wire format.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Whether this is the root name.
    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// The number of labels, not counting the root label.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The labels from left to right, not counting the root label.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut pos = 0;
        std::iter::from_fn(move || {
            let len = usize::from(self.wire[pos]);
            if len == 0 {
                return None;
            }
            let label = &self.wire[pos + 1..pos + 1 + len];
            pos += 1 + len;
            Some(label)
        })
    }

    /// Whether `self` is `base` or a name below it.
    pub fn ends_with(&self, base: &DomainName) -> bool {
        if base.wire.len() > self.wire.len() {
            return false;
        }
        let start = self.wire.len() - base.wire.len();
        // The suffix must start at a label boundary.
        let mut pos = 0;
        while pos < start {
            pos += 1 + usize::from(self.wire[pos]);
        }
        pos == start && self.wire[start..] == base.wire[..]
    }

    /// `self` (taken as relative, its root label dropped) followed by `base`.
    pub fn join(&self, base: &DomainName) -> Result<DomainName, String> {
        let mut wire = Vec::with_capacity(self.wire.len() + base.wire.len());
        wire.extend_from_slice(&self.wire[..self.wire.len() - 1]);
        wire.extend_from_slice(&base.wire);
        if wire.len() > MAX_NAME_LEN {
            return Err(format!("{self}{base} is longer than 255 bytes"));
        }
        Ok(DomainName {
            wire: wire.into_boxed_slice(),
        })
    }
}

impl FromStr for DomainName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("empty domain name".into());
        }
        if s == "." {
            return Ok(DomainName::root());
        }
        if s.contains("..") || s.starts_with('.') {
            return Err(format!("{s:?} has an empty label"));
        }
        let name: domain::base::Name<Vec<u8>> = domain::base::Name::from_str(s)
            .map_err(|e| format!("{s:?} is not a valid domain name: {e}"))?;
        DomainName::from_wire(name.as_slice())
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainName({self})")
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One label as used for user names, slugs, repl ids and cluster names: 1 to 63 bytes of
/// lower-case letters, digits, `-` and `_`. Kept inline (a change read from a feed carries four
/// of them: no allocation each).
#[derive(Clone)]
pub struct Label {
    len: u8,
    bytes: [u8; MAX_LABEL_LEN],
}

impl Label {
    /// The label's text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (`check_label`), so this never takes the fallback.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// How much of an untrusted value a message quotes.
pub const QUOTE_MAX: usize = 64;

/// `value` quoted (as `{:?}` does) for a log line or an error, cut after [`QUOTE_MAX`] bytes
/// (at a character boundary) with its length added: `"abc..."... (1048576 bytes)`. A value
/// from a feed or a file may be of any size; a log line must not be.
pub fn quote(value: &str) -> String {
    if value.len() <= QUOTE_MAX {
        return format!("{value:?}");
    }
    let mut end = QUOTE_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &value[..end], value.len())
}

/// Checks that `s` is a label clusterns can store, lower-casing it.
pub fn check_label(s: &str) -> Result<Label, String> {
    if s.is_empty() {
        return Err("empty label".into());
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(format!("label {} is longer than 63 bytes", quote(s)));
    }
    if let Some(c) = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .and_then(|at| s[at..].chars().next())
    {
        return Err(format!(
            "label {} has the character {c:?} (letters, digits, '-' and '_' only)",
            quote(s)
        ));
    }
    let mut bytes = [0u8; MAX_LABEL_LEN];
    bytes[..s.len()].copy_from_slice(s.as_bytes());
    bytes.make_ascii_lowercase();
    Ok(Label {
        len: s.len() as u8,
        bytes,
    })
}

impl FromStr for Label {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_label(s)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_label(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        let n: DomainName = "Repl.CO".parse().unwrap();
        assert_eq!(n.wire(), b"\x04repl\x02co\x00");
        assert_eq!(n.to_string(), "repl.co.");
        let n2: DomainName = "repl.co.".parse().unwrap();
        assert_eq!(n, n2);
        assert_eq!(n.label_count(), 2);
    }

    #[test]
    fn rejects_bad_names() {
        assert!("".parse::<DomainName>().is_err());
        assert!("a..b".parse::<DomainName>().is_err());
        assert!(format!("{}.com", "x".repeat(64))
            .parse::<DomainName>()
            .is_err());
        let long = vec!["abcdefghi"; 30].join(".");
        assert!(long.parse::<DomainName>().is_err());
    }

    #[test]
    fn suffix_and_join() {
        let apex: DomainName = "repl.co".parse().unwrap();
        let n: DomainName = "ns1.repl.co".parse().unwrap();
        let tricky: DomainName = "xrepl.co".parse().unwrap();
        assert!(n.ends_with(&apex));
        assert!(apex.ends_with(&apex));
        assert!(!tricky.ends_with(&apex));
        assert!(!apex.ends_with(&n));
        let host: DomainName = "ns1".parse().unwrap();
        assert_eq!(host.join(&apex).unwrap(), n);
    }

    #[test]
    fn labels() {
        assert_eq!(check_label("CoolGame").unwrap().as_str(), "coolgame");
        assert!(check_label("").is_err());
        assert!(check_label("a.b").is_err());
        assert!(check_label("a b").is_err());
        assert!(check_label(&"x".repeat(64)).is_err());
        assert!(check_label("_under-score9").is_ok());
    }
}
