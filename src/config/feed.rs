//! `[feed]`: the change source and the checkpoint, with their defaults and checks.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigText};

/// `[feed]`: where the table of apps comes from, and where its checkpoints go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    pub source: SourceConfig,
    /// The checkpoint file; none: no checkpoints (start-up replays the whole feed).
    pub checkpoint: Option<PathBuf>,
    /// Seconds between checkpoints while changes arrive (one is also written at shutdown).
    pub checkpoint_interval_secs: u64,
    /// How often the journal is checked for new lines, or the database read when no
    /// notification came (milliseconds).
    pub poll_interval_ms: u64,
}

/// The change source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// The embedded default: an append-only journal file of changes.
    Journal { path: PathBuf },
    /// PostgreSQL (see `sql/schema.sql`): a libpq-style connection string.
    Postgres { conninfo: String },
    /// A NATS JetStream stream that relays fill (`[nats]` says where; edges bootstrap from
    /// its snapshot object store).
    Nats,
}

/// `conninfo` with its secrets left out, for printing: `password=...` (and `sslpassword=...`)
/// in the key/value form, and the `:password@` of a `postgresql://` URI.
pub fn redact_conninfo(conninfo: &str) -> String {
    let t = conninfo.trim_start();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        let scheme_end = t.find("://").map_or(0, |i| i + 3);
        let rest = &t[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let mut out = t[..scheme_end + colon + 1].to_string();
                out.push_str("***");
                out.push_str(&rest[at..]);
                return redact_query_password(&out);
            }
        }
        return redact_query_password(t);
    }
    if let Some(pairs) = crate::feed::postgres::conninfo::pairs(conninfo) {
        let mut out = String::with_capacity(conninfo.len());
        let mut kept_from = 0;
        for pair in pairs {
            let key = &conninfo[pair.key];
            if is_secret(key) {
                out.push_str(&conninfo[kept_from..pair.span.start]);
                out.push_str(key);
                out.push_str("=***");
                kept_from = pair.span.end;
            }
        }
        out.push_str(&conninfo[kept_from..]);
        return out;
    }
    // Not a well-formed string: leave out whatever follows a secret's key on its word.
    let mut out = Vec::new();
    let mut words = conninfo.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        if is_secret(k) {
            out.push(format!("{k}=***"));
            // A quoted value with spaces: skip to its closing quote.
            if v.starts_with('\'') && !(v.len() > 1 && v.ends_with('\'')) {
                for rest in words.by_ref() {
                    if rest.ends_with('\'') {
                        break;
                    }
                }
            }
        } else {
            out.push(w.to_string());
        }
    }
    out.join(" ")
}

/// Whether a connection parameter holds a secret.
fn is_secret(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword")
}

/// `password=` in a URI's query string, left out.
fn redact_query_password(uri: &str) -> String {
    let Some(q) = uri.find('?') else {
        return uri.to_string();
    };
    let params: Vec<String> = uri[q + 1..]
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if is_secret(k) => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{}?{}", &uri[..q], params.join("&"))
}

/// `[feed]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    #[serde(default = "default_source")]
    source: Spanned<String>,
    journal: Option<Spanned<PathBuf>>,
    postgres: Option<Spanned<String>>,
    checkpoint: Option<Spanned<PathBuf>>,
    #[serde(default = "default_checkpoint_interval")]
    checkpoint_interval_secs: u64,
    poll_interval_ms: Option<u64>,
}

fn default_checkpoint_interval() -> u64 {
    300
}

fn default_source() -> Spanned<String> {
    Spanned::new(0..0, "journal".to_string())
}

/// Lines (1-based) of the `[feed]` keys that name files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedLines {
    pub journal: Option<usize>,
    pub checkpoint: Option<usize>,
}

/// Checks `[feed]` (required) and resolves its file names against `base_dir`, the
/// configuration's directory; also says on which lines those names are.
pub(super) fn validate(
    raw: Option<RawFeed>,
    base_dir: &Path,
    at: &ConfigText<'_>,
) -> Result<(FeedConfig, FeedLines), ConfigError> {
    let mut feed_lines = FeedLines::default();
    let feed = match raw {
        None => {
            return Err(at.err(
                None,
                "missing [feed] section (source = \"journal\", journal = \"<file>\")".into(),
            ))
        }
        Some(feed) => {
            let source = match feed.source.get_ref().as_str() {
                "journal" => {
                    let Some(journal) = feed.journal else {
                        return Err(at.err(
                            Some(feed.source.span()),
                            "feed source \"journal\" needs `journal = \"<file>\"`".into(),
                        ));
                    };
                    feed_lines.journal = Some(at.line(journal.span().start));
                    SourceConfig::Journal {
                        path: base_dir.join(journal.into_inner()),
                    }
                }
                "postgres" => {
                    let Some(conninfo) = feed.postgres else {
                        return Err(at.err(
                            Some(feed.source.span()),
                            "feed source \"postgres\" needs `postgres = \"host=... dbname=...\"`"
                                .into(),
                        ));
                    };
                    // What can be checked without connecting: the TLS settings and their files.
                    if let Err(e) = crate::feed::postgres::tls::check_conninfo(conninfo.get_ref()) {
                        return Err(at.err(Some(conninfo.span()), format!("feed.postgres: {e}")));
                    }
                    SourceConfig::Postgres {
                        conninfo: conninfo.into_inner(),
                    }
                }
                "nats" => SourceConfig::Nats,
                other => {
                    return Err(at.err(
                        Some(feed.source.span()),
                        format!(
                            "unknown feed source {other:?} (expected \"journal\", \"postgres\" or \"nats\")"
                        ),
                    ))
                }
            };
            let default_poll = match source {
                SourceConfig::Journal { .. } => 2,
                // Bounds the latency of a change whose NOTIFY was lost (p99 under 1 s).
                SourceConfig::Postgres { .. } => 500,
                // The stream pushes; this bounds only the wait for a reconnection.
                SourceConfig::Nats => 100,
            };
            FeedConfig {
                source,
                checkpoint: feed.checkpoint.map(|c| {
                    feed_lines.checkpoint = Some(at.line(c.span().start));
                    base_dir.join(c.into_inner())
                }),
                checkpoint_interval_secs: feed.checkpoint_interval_secs.max(1),
                poll_interval_ms: feed.poll_interval_ms.unwrap_or(default_poll).max(1),
            }
        }
    };
    Ok((feed, feed_lines))
}

#[cfg(test)]
mod tests {
    use super::redact_conninfo;

    #[test]
    fn secrets_are_left_out_however_the_pair_is_written() {
        for (given, shown) in [
            (
                "host=db password = s3cret user=ns",
                "host=db password=*** user=ns",
            ),
            (
                "host=db sslpassword='s3cret x' sslmode=require",
                "host=db sslpassword=*** sslmode=require",
            ),
            (
                "host=db PASSWORD=s3cret sslrootcert=/etc/ca.pem",
                "host=db PASSWORD=*** sslrootcert=/etc/ca.pem",
            ),
            (
                "postgresql://db/x?sslpassword=s3cret&sslmode=verify-full",
                "postgresql://db/x?sslpassword=***&sslmode=verify-full",
            ),
            // Not well formed (an unterminated quote): still left out.
            ("host=db password='s3cret", "host=db password=***"),
        ] {
            let out = redact_conninfo(given);
            assert_eq!(out, shown);
            assert!(!out.contains("s3cret"), "{out}");
        }
    }
}
