//! Fuzzes the decoding of a PostgreSQL change row (`clusterns::feed::postgres::decode_row`):
//! arbitrary sequence numbers, operations and column texts (or NULLs).
//!
//! Input: one row as text, columns separated by tabs as in `COPY`: seq, op, id, user, slug,
//! cluster; `\N` is NULL, missing columns are NULL (the id: empty). A seq that is not an
//! `i64` is taken as the input's length, negated when it starts with `-`.
//!
//! Checks that it never panics; that a decoded row keeps the sequence number (positive), the
//! operation and the columns' texts exactly (never lower-cased: a row with a capital is
//! rejected, not folded into another app's name), that every name it accepted is a lower-case
//! label (1 to 63 bytes of `a`-`z`, `0`-`9`, `-`, `_`) and no id, user or slug is the reserved
//! `_acme-challenge`, and that it prints (the journal format) to a line that `parse_line` reads
//! back as the same change; that an error names the row and stays short (values quoted in it
//! are cut), however long the input.
//!
//! Rows whose op starts with `txt-` go to `decode_txt_row` (challenge records): the user column
//! is the value's bytes, the slug column the expiry. A decoded one keeps the name's text
//! exactly (lower-case, `_acme-challenge.` first, no final dot), a value of 1 to 255 bytes, and
//! prints to a journal line read back as the same change.
//!
//! Rows whose op is `health` go to `decode_health_row`: the id column is the checker, then
//! cluster, address, up (`t`/`f`, else NULL) and until. A decoded one keeps the checker's and
//! cluster's texts exactly (lower-case labels), the address and the state, and prints to a
//! journal line read back as the same change.

#![no_main]

use clusterns::feed::journal::parse_line;
use clusterns::feed::postgres::{decode_health_row, decode_row, decode_txt_row, RESERVED_LABEL};
use clusterns::feed::Change;
use libfuzzer_sys::fuzz_target;

/// Whether `s` is a label exactly as clusterns stores it.
fn is_lower_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `s` may name an app (its id, user or slug).
fn is_app_label(s: &str) -> bool {
    is_lower_label(s) && s != RESERVED_LABEL
}

#[derive(Debug)]
struct Row {
    seq: i64,
    id: String,
    user: Option<String>,
    slug: Option<String>,
    cluster: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut cols = text.split('\t');
    let mut col = || cols.next().filter(|c| *c != "\\N").map(str::to_string);
    let seq_text = col().unwrap_or_default();
    let seq = seq_text.parse().unwrap_or_else(|_| {
        let n = data.len() as i64;
        if seq_text.starts_with('-') {
            -n
        } else {
            n
        }
    });
    let op = col().unwrap_or_default();
    let op = op.as_str();
    let row = Row {
        seq,
        id: col().unwrap_or_default(),
        user: col(),
        slug: col(),
        cluster: col(),
    };
    if op.starts_with("txt-") {
        txt_row(&row, op);
        return;
    }
    if op == "health" {
        let until = col().and_then(|u| u.parse::<i64>().ok());
        health_row(&row, until);
        return;
    }
    let decoded = decode_row(
        row.seq,
        op,
        &row.id,
        row.user.as_deref(),
        row.slug.as_deref(),
        row.cluster.as_deref(),
    );
    match decoded {
        Ok(s) => {
            assert!(row.seq > 0 && s.seq == row.seq as u64);
            match &s.change {
                Change::Upsert {
                    id,
                    user,
                    slug,
                    cluster,
                } => {
                    assert_eq!(op, "set");
                    assert_eq!(id.as_str(), row.id);
                    assert_eq!(Some(user.as_str()), row.user.as_deref());
                    assert_eq!(Some(slug.as_str()), row.slug.as_deref());
                    assert_eq!(Some(cluster.as_str()), row.cluster.as_deref());
                    assert!(is_app_label(id.as_str()), "{id:?}");
                    assert!(is_app_label(user.as_str()), "{user:?}");
                    assert!(is_app_label(slug.as_str()), "{slug:?}");
                    assert!(is_lower_label(cluster.as_str()), "{cluster:?}");
                }
                Change::Delete { id } => {
                    assert_eq!(op, "delete");
                    assert_eq!(id.as_str(), row.id);
                    assert!(is_app_label(id.as_str()), "{id:?}");
                }
                Change::TxtAdd { .. } | Change::TxtDelete { .. } | Change::Health(_) => {
                    panic!("decode_row made a change that is not an app's: {s:?}")
                }
            }
            let line = s.to_string();
            assert_eq!(parse_line(&line), Ok(Some(s)), "{line:?}");
        }
        Err(e) => {
            assert!(e.starts_with("repl_changes seq "), "{e}");
            // At most a few quoted values of 64 bytes each (escaped: up to 10 characters a
            // byte, as \u{10ffff}), whatever the input's size.
            assert!(e.len() < 4096, "{} bytes", e.len());
            // A row that breaks the rules is never taken: an upsert whose names are all
            // labels as stored was not refused for them.
            if row.seq > 0 && op == "set" {
                let all = is_app_label(&row.id)
                    && row.user.as_deref().is_some_and(is_app_label)
                    && row.slug.as_deref().is_some_and(is_app_label)
                    && row.cluster.as_deref().is_some_and(is_lower_label);
                assert!(!all, "a valid row was refused: {row:?}: {e}");
            }
        }
    }
});

/// A challenge record row: id the name, user the value, slug the expiry.
fn txt_row(row: &Row, op: &str) {
    let value = row.user.as_deref().map(str::as_bytes);
    let expires = row.slug.as_deref().and_then(|e| e.parse::<i64>().ok());
    match decode_txt_row(row.seq, op, &row.id, value, expires) {
        Ok(s) => {
            assert!(row.seq > 0 && s.seq == row.seq as u64);
            let (name, v) = match &s.change {
                Change::TxtAdd { name, value, expires: e } => {
                    assert_eq!(op, "txt-add");
                    assert_eq!(Some(*e as i64), expires);
                    (name, Some(value))
                }
                Change::TxtDelete { name, value } => {
                    assert_eq!(op, "txt-del");
                    (name, value.as_ref())
                }
                other => panic!("decode_txt_row made an app change: {other:?}"),
            };
            assert_eq!(format!("{}.", row.id), name.to_string());
            assert!(row.id.starts_with("_acme-challenge."), "{}", row.id);
            if let Some(v) = v {
                assert!((1..=255).contains(&v.len()));
                assert_eq!(Some(&v[..]), value);
            }
            let line = s.to_string();
            assert_eq!(parse_line(&line), Ok(Some(s)), "{line:?}");
        }
        Err(e) => {
            assert!(e.starts_with("repl_changes seq "), "{e}");
            assert!(e.len() < 4096, "{} bytes", e.len());
        }
    }
}

/// A health report row: id the checker, user the cluster, slug the address, cluster the state
/// (`t`/`f`), then until.
fn health_row(row: &Row, until: Option<i64>) {
    let up = match row.cluster.as_deref() {
        Some("t") => Some(true),
        Some("f") => Some(false),
        _ => None,
    };
    let decoded = decode_health_row(
        row.seq,
        &row.id,
        row.user.as_deref(),
        row.slug.as_deref(),
        up,
        until,
    );
    match decoded {
        Ok(s) => {
            assert!(row.seq > 0 && s.seq == row.seq as u64);
            let Change::Health(r) = &s.change else {
                panic!("decode_health_row made another change: {s:?}");
            };
            assert_eq!(r.checker.as_str(), row.id);
            assert_eq!(Some(r.cluster.as_str()), row.user.as_deref());
            assert!(is_lower_label(r.checker.as_str()) && is_lower_label(r.cluster.as_str()));
            assert_eq!(row.slug.as_deref().and_then(|a| a.parse().ok()), Some(r.addr));
            assert_eq!(Some(r.up), up);
            assert_eq!(Some(r.until as i64), until);
            let line = s.to_string();
            assert_eq!(parse_line(&line), Ok(Some(s)), "{line:?}");
        }
        Err(e) => {
            assert!(e.starts_with("repl_changes seq "), "{e}");
            assert!(e.len() < 4096, "{} bytes", e.len());
        }
    }
}
