//! Splitting a libpq connection string into what the `postgres` crate understands and the TLS
//! parameters that clusterns handles itself (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! and the ones it refuses), for both forms libpq accepts: `key=value` pairs and
//! `postgresql://` URIs.
//!
//! The rest of the string is passed on verbatim (only the TLS parameters are cut out), so that
//! the `postgres` crate parses, and reports errors in, exactly what the operator wrote.

use std::borrow::Cow;
use std::ops::Range;

/// The parameters taken out of a connection string: clusterns reads them, the `postgres`
/// crate never sees them (it rejects the ones it does not know, and knows no `verify-*`).
pub const TLS_KEYS: [&str; 7] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
];

/// A connection string with its TLS parameters taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// What is left, for the `postgres` crate.
    pub rest: String,
    /// The TLS parameters, in the order written (a later one overrides an earlier one).
    pub tls: Vec<(String, String)>,
}

impl Split {
    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.tls
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Takes the TLS parameters out of `conninfo`. A string this cannot tokenize is returned whole
/// with no TLS parameters: the `postgres` crate then reports what is wrong with it.
pub fn split(conninfo: &str) -> Split {
    let t = conninfo.trim_start();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        split_uri(t)
    } else {
        split_pairs(conninfo).unwrap_or_else(|| Split {
            rest: conninfo.to_string(),
            tls: Vec::new(),
        })
    }
}

fn is_tls_key(key: &str) -> bool {
    TLS_KEYS.contains(&key)
}

/// One `key=value` pair of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Where the key is in the string.
    pub key: Range<usize>,
    /// The value, unquoted and unescaped.
    pub value: String,
    /// Where the whole pair (key to the end of the value) is in the string.
    pub span: Range<usize>,
}

/// The pairs of the `key=value` form, tokenized as libpq (and the `postgres` crate) do:
/// blanks around `=` allowed, values single-quoted or bare, `\` escaping the next character.
/// None if it does not tokenize.
pub fn pairs(s: &str) -> Option<Vec<Pair>> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    loop {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key_end = start;
        while let Some((i, c)) = it.next_if(|&(_, c)| !c.is_whitespace() && c != '=') {
            key_end = i + c.len_utf8();
        }
        if key_end == start {
            return None;
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        it.next_if(|&(_, c)| c == '=')?;
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = it.next_if(|&(_, c)| c == '\'').is_some();
        let mut end = s.len();
        let mut closed = !quoted;
        while let Some(&(i, c)) = it.peek() {
            if quoted && c == '\'' {
                it.next();
                end = i + 1;
                closed = true;
                break;
            }
            if !quoted && c.is_whitespace() {
                end = i;
                break;
            }
            it.next();
            if c == '\\' {
                if let Some((_, escaped)) = it.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        if !closed || (!quoted && value.is_empty()) {
            return None;
        }
        out.push(Pair {
            key: start..key_end,
            value,
            span: start..end,
        });
    }
    Some(out)
}

/// The `key=value` form without its TLS pairs. None if it does not tokenize.
fn split_pairs(s: &str) -> Option<Split> {
    let mut rest = String::with_capacity(s.len());
    let mut tls = Vec::new();
    let mut kept_from = 0;
    for pair in pairs(s)? {
        let key = &s[pair.key.clone()];
        if is_tls_key(key) {
            rest.push_str(&s[kept_from..pair.span.start]);
            kept_from = pair.span.end;
            tls.push((key.to_string(), pair.value));
        }
    }
    rest.push_str(&s[kept_from..]);
    Some(Split { rest, tls })
}

/// The URI form: the TLS parameters are taken out of its query string (`?k=v&k=v`), their
/// values percent-decoded.
fn split_uri(s: &str) -> Split {
    let Some(q) = s.find('?') else {
        return Split {
            rest: s.to_string(),
            tls: Vec::new(),
        };
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for param in s[q + 1..].split('&') {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let key = decode(key);
        if is_tls_key(&key) {
            tls.push((key.into_owned(), decode(value).into_owned()));
        } else {
            kept.push(param);
        }
    }
    let mut rest = s[..q].to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Split { rest, tls }
}

fn decode(s: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn key_value_form_loses_only_its_tls_parameters() {
        let s = split("host=db port=5432 sslmode=verify-full user=ns sslrootcert=/etc/ca.pem");
        assert_eq!(s.rest, "host=db port=5432  user=ns ");
        assert_eq!(
            s.tls,
            pairs(&[("sslmode", "verify-full"), ("sslrootcert", "/etc/ca.pem")])
        );
        assert_eq!(s.get("sslmode"), Some("verify-full"));
        assert_eq!(s.get("sslcert"), None);
    }

    #[test]
    fn blanks_around_equals_quotes_and_escapes_are_understood() {
        let s = split(
            "host = db sslrootcert = '/etc/my ca\\'s.pem' password='a b' sslkey=/k\\ ey sslmode =require",
        );
        assert_eq!(s.rest, "host = db  password='a b'  ");
        assert_eq!(
            s.tls,
            pairs(&[
                ("sslrootcert", "/etc/my ca's.pem"),
                ("sslkey", "/k ey"),
                ("sslmode", "require"),
            ])
        );
    }

    #[test]
    fn the_last_value_wins() {
        let s = split("sslmode=disable sslmode=require");
        assert_eq!(s.get("sslmode"), Some("require"));
    }

    #[test]
    fn a_string_that_does_not_tokenize_is_passed_on_whole() {
        for bad in [
            "host",
            "host=db sslmode",
            "sslmode='require",
            "=x",
            "sslmode= ",
        ] {
            let s = split(bad);
            assert_eq!(s.rest, bad);
            assert!(s.tls.is_empty(), "{bad}");
        }
    }

    #[test]
    fn uri_form_loses_only_its_tls_parameters_decoded() {
        let s = split(
            "postgresql://ns:p%40ss@db:5432/apps?sslmode=verify-ca&connect_timeout=3&sslrootcert=%2Fetc%2Fca%20x.pem",
        );
        assert_eq!(
            s.rest,
            "postgresql://ns:p%40ss@db:5432/apps?connect_timeout=3"
        );
        assert_eq!(
            s.tls,
            pairs(&[("sslmode", "verify-ca"), ("sslrootcert", "/etc/ca x.pem")])
        );
        let s = split("postgres://db/apps?sslmode=require");
        assert_eq!(s.rest, "postgres://db/apps");
        assert_eq!(s.get("sslmode"), Some("require"));
        let s = split("postgres://db/apps");
        assert_eq!(s.rest, "postgres://db/apps");
        assert!(s.tls.is_empty());
    }

    #[test]
    fn what_is_left_parses_as_the_postgres_crate_expects() {
        for given in [
            "host=db user=ns sslmode=verify-full sslrootcert=/ca.pem dbname=apps",
            "postgresql://ns@db/apps?sslmode=verify-full&application_name=x",
        ] {
            let s = split(given);
            let config: postgres::Config = s.rest.parse().unwrap();
            assert_eq!(config.get_user(), Some("ns"), "{given}");
        }
    }
}
