//! Fuzzes the decoding of a PostgreSQL change row (`clusterns::feed::postgres::decode_row`):
//! arbitrary sequence numbers, operations and column texts (or NULLs).
//!
//! Input: one row as text, columns separated by tabs as in `COPY`: seq, op, id, user, slug,
//! cluster; `\N` is NULL, missing columns are NULL (the id: empty). A seq that is not an
//! `i64` is taken as the input's length, negated when it starts with `-`.
//!
//! Checks that it never panics; that a decoded row keeps the sequence number (positive), the
//! operation and the columns' texts lower-cased, and prints (the journal format) to a line
//! that `parse_line` reads back as the same change; that an error names the row.

#![no_main]

use clusterns::feed::journal::parse_line;
use clusterns::feed::postgres::decode_row;
use clusterns::feed::Change;
use libfuzzer_sys::fuzz_target;

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
            let lower = |t: &Option<String>| t.as_deref().map(str::to_ascii_lowercase);
            match &s.change {
                Change::Upsert {
                    id,
                    user,
                    slug,
                    cluster,
                } => {
                    assert_eq!(op, "set");
                    assert_eq!(id.as_str(), row.id.to_ascii_lowercase());
                    assert_eq!(Some(user.to_string()), lower(&row.user));
                    assert_eq!(Some(slug.to_string()), lower(&row.slug));
                    assert_eq!(Some(cluster.to_string()), lower(&row.cluster));
                }
                Change::Delete { id } => {
                    assert_eq!(op, "delete");
                    assert_eq!(id.as_str(), row.id.to_ascii_lowercase());
                }
            }
            let line = s.to_string();
            assert_eq!(parse_line(&line), Ok(Some(s)), "{line:?}");
        }
        Err(e) => assert!(e.starts_with("repl_changes seq "), "{e}"),
    }
});
