//! Decoding `repl_changes` rows into changes: every name must already be exactly a
//! lower-case label (nothing is lower-cased here, see the module above), and the id, user and
//! slug must not be reserved.

use super::{quote, RESERVED_LABEL};
use crate::feed::change::{Change, Sequenced};
use crate::health::report::HealthReport;
use crate::name::{check_label, DomainName, Label, MAX_LABEL_LEN};

/// Decodes one `repl_changes` row. Every name must already be exactly a lower-case label (1 to
/// 63 bytes of `a`-`z`, `0`-`9`, `-`, `_`), and the id, user and slug must not be
/// [`RESERVED_LABEL`]; nothing is lower-cased, so a row is either taken as it is or rejected.
///
/// A `set` needs `user`, `slug` and `cluster`; a `delete` uses only the id (the other fields
/// hold the app's last values, for the record, and are ignored). An error names the row (its
/// seq, op and id) and says why; the values it quotes are cut at [`QUOTE_MAX`](super::QUOTE_MAX) bytes.
pub fn decode_row(
    seq: i64,
    op: &str,
    id: &str,
    user: Option<&str>,
    slug: Option<&str>,
    cluster: Option<&str>,
) -> Result<Sequenced, String> {
    let seq = u64::try_from(seq)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("repl_changes seq {seq}: sequence numbers start at 1"))?;
    let change = match op {
        "set" => decode_app(id, user, slug, cluster),
        "delete" => app_label("id", Some(id)).map(|id| Change::Delete { id }),
        other => Err(format!(
            "unknown op {} (expected 'set' or 'delete')",
            quote(other)
        )),
    };
    change.map(|change| Sequenced { seq, change }).map_err(|e| {
        format!(
            "repl_changes seq {seq} ({} of app {}): {e}",
            quote(op),
            quote(id)
        )
    })
}

/// Decodes one `repl_changes` row of a challenge record (op `txt-add` or `txt-del`): `id`
/// holds the name, exactly in its lower-case form without the final dot
/// (`_acme-challenge.<owner>`), `value` the TXT value (1 to 255 bytes; NULL in a `txt-del`:
/// every value of the name), `expires_at` the expiry of a `txt-add` (unix seconds).
pub fn decode_txt_row(
    seq: i64,
    op: &str,
    name: &str,
    value: Option<&[u8]>,
    expires_at: Option<i64>,
) -> Result<Sequenced, String> {
    let seq = u64::try_from(seq)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("repl_changes seq {seq}: sequence numbers start at 1"))?;
    let change = (|| match op {
        "txt-add" => Ok(Change::TxtAdd {
            name: txt_name(name)?,
            value: txt_value(value.ok_or("value is NULL")?)?,
            expires: expires_at
                .ok_or("expires_at is NULL")
                .and_then(|e| u64::try_from(e).map_err(|_| "expires_at is negative"))?,
        }),
        "txt-del" => Ok(Change::TxtDelete {
            name: txt_name(name)?,
            value: value.map(txt_value).transpose()?,
        }),
        other => Err(format!(
            "unknown op {} (expected 'txt-add' or 'txt-del')",
            quote(other)
        )),
    })();
    change.map(|change| Sequenced { seq, change }).map_err(|e| {
        format!(
            "repl_changes seq {seq} ({} of {}): {e}",
            quote(op),
            quote(name)
        )
    })
}

/// Decodes one `repl_changes` row of a health report (op `health`): `checker` (the row's
/// `id`) and `cluster` lower-case labels, `addr` one address (`host(addr)`: no mask), `up`,
/// and `until` (the row's `expires_at`, unix seconds; 0 withdraws the checker's report).
pub fn decode_health_row(
    seq: i64,
    checker: &str,
    cluster: Option<&str>,
    addr: Option<&str>,
    up: Option<bool>,
    until: Option<i64>,
) -> Result<Sequenced, String> {
    let seq = u64::try_from(seq)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("repl_changes seq {seq}: sequence numbers start at 1"))?;
    let report = (|| -> Result<HealthReport, String> {
        let addr = addr.ok_or("addr is NULL")?;
        Ok(HealthReport {
            checker: label("checker (id)", Some(checker))?,
            cluster: label("cluster", cluster)?,
            addr: addr
                .parse()
                .map_err(|_| format!("addr {} is not an IPv4 or IPv6 address", quote(addr)))?,
            up: up.ok_or("up is NULL")?,
            until: until
                .ok_or("until (expires_at) is NULL")
                .and_then(|e| u64::try_from(e).map_err(|_| "until (expires_at) is negative"))?,
        })
    })();
    report
        .map(|r| Sequenced {
            seq,
            change: Change::Health(r),
        })
        .map_err(|e| {
            format!(
                "repl_changes seq {seq} ('health' of checker {}): {e}",
                quote(checker)
            )
        })
}

/// A challenge name column: `_acme-challenge.<owner>`, lower-case, no final dot.
pub(super) fn txt_name(text: &str) -> Result<DomainName, String> {
    // The parser's message repeats the whole text: quote it cut instead.
    let name: DomainName = text
        .parse()
        .map_err(|_| format!("name {} is not a domain name", quote(text)))?;
    let canonical = name.to_string();
    if canonical.strip_suffix('.') != Some(text) {
        return Err(format!(
            "name {} is not a lower-case name without its final dot",
            quote(text)
        ));
    }
    if !crate::feed::acme::is_challenge_name(&name) {
        return Err(format!(
            "name {} does not start with {RESERVED_LABEL}.",
            quote(text)
        ));
    }
    Ok(name)
}

/// A challenge value column: 1 to 255 bytes.
pub(super) fn txt_value(value: &[u8]) -> Result<Box<[u8]>, String> {
    if value.is_empty() || value.len() > crate::config::acme::MAX_VALUE_LEN {
        return Err(format!("a value is 1 to 255 bytes, not {}", value.len()));
    }
    Ok(value.into())
}

/// An app's four columns as an upsert.
pub(super) fn decode_app(
    id: &str,
    user: Option<&str>,
    slug: Option<&str>,
    cluster: Option<&str>,
) -> Result<Change, String> {
    Ok(Change::Upsert {
        id: app_label("id", Some(id))?,
        user: app_label("user_name", user)?,
        slug: app_label("slug", slug)?,
        cluster: label("cluster", cluster)?,
    })
}

/// A column that must hold a lower-case label.
pub(super) fn label(column: &str, value: Option<&str>) -> Result<Label, String> {
    let value = value.ok_or_else(|| format!("{column} is NULL"))?;
    lower_label(value).map_err(|e| format!("{column}: {e}"))
}

/// A column that must hold a lower-case label other than [`RESERVED_LABEL`] (an app's id, user
/// or slug: each becomes a label of the app's DNS names).
pub(super) fn app_label(column: &str, value: Option<&str>) -> Result<Label, String> {
    let label = label(column, value)?;
    if label.as_str() == RESERVED_LABEL {
        return Err(format!(
            "{column}: {RESERVED_LABEL:?} is reserved (ACME DNS challenges are looked up there)"
        ));
    }
    Ok(label)
}

/// `value` as a label if it is exactly one already: lower-case letters, digits, `-` and `_`,
/// 1 to 63 bytes (the rules of [`check_label`], without its lower-casing, which would merge
/// `DupId` into `dupid`). The schema's CHECK constraints on `repls` say the same.
pub(super) fn lower_label(value: &str) -> Result<Label, String> {
    if value.is_empty() {
        return Err("empty label".into());
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label {} is longer than {MAX_LABEL_LEN} bytes",
            quote(value)
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return Err(if c.is_ascii_uppercase() {
            format!(
                "label {} has upper-case letters (names must be stored lower-case; clusterns does \
                 not fold them, so that two rows never become one DNS name)",
                quote(value)
            )
        } else {
            format!(
                "label {} has the character {c:?} (lower-case letters, digits, '-' and '_' only)",
                quote(value)
            )
        });
    }
    check_label(value)
}
