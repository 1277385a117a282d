//! Decoding `repl_changes` rows into changes: every name must already be exactly a
//! lower-case label (nothing is lower-cased here, see the module above), and the id, user and
//! slug must not be reserved.

use super::{quote, RESERVED_LABEL};
use crate::feed::change::{Change, Sequenced};
use crate::name::{check_label, Label, MAX_LABEL_LEN};

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
