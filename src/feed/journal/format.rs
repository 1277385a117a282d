//! The journal's line format: one change per line, and the snapshot block of a compacted
//! journal (see the module above). Parsing is pure: bytes in, an entry or a short error out.

use crate::feed::change::{Change, Sequenced};
use crate::name::check_label;
pub use crate::name::quote;

/// The largest sequence number (PostgreSQL's bigint, and room to count past it).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// The longest line read; a longer one is reported and skipped. A change line is at most
/// about 300 bytes.
pub const MAX_LINE: usize = 4096;

/// Names an app's id, user or slug may not take: `_acme-challenge.<name>` is answered for
/// every app name, so an app there could never be reached.
pub const RESERVED_LABEL: &str = "_acme-challenge";

/// One journal line's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A change: `set` or `delete`.
    Change(Sequenced),
    /// `<seq> snapshot begin <from>`: the table as of `seq` follows.
    SnapshotBegin { seq: u64, from: u32 },
    /// `<seq> app ...`: one app of a snapshot.
    SnapshotApp(Sequenced),
    /// `<seq> snapshot end <count>`.
    SnapshotEnd { seq: u64, count: u64 },
}

/// Parses one line (without its newline). `Ok(None)` for blank lines and comments.
pub fn parse_entry(line: &str) -> Result<Option<Entry>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split_ascii_whitespace();
    let seq_text = fields.next().unwrap_or_default();
    let seq: u64 = seq_text
        .parse()
        .map_err(|_| format!("sequence number {} is not a whole number", quote(seq_text)))?;
    if seq == 0 {
        return Err("sequence numbers start at 1".into());
    }
    if seq > MAX_SEQ {
        return Err(format!("sequence number {seq} is larger than {MAX_SEQ}"));
    }
    let verb = fields.next().ok_or("missing verb (set or delete)")?;
    let mut label = |what: &str| -> Result<_, String> {
        let text = fields
            .next()
            .ok_or_else(|| format!("{verb}: missing {what}"))?;
        let l = check_label(text).map_err(|e| format!("{what}: {e}"))?;
        if what != "cluster" && l.as_str() == RESERVED_LABEL {
            return Err(format!("{what} {RESERVED_LABEL} is reserved"));
        }
        Ok(l)
    };
    let mut upsert = || -> Result<Change, String> {
        Ok(Change::Upsert {
            id: label("repl id")?,
            user: label("user")?,
            slug: label("slug")?,
            cluster: label("cluster")?,
        })
    };
    let entry = match verb {
        "set" => Entry::Change(Sequenced {
            seq,
            change: upsert()?,
        }),
        "app" => Entry::SnapshotApp(Sequenced {
            seq,
            change: upsert()?,
        }),
        "delete" => Entry::Change(Sequenced {
            seq,
            change: Change::Delete {
                id: label("repl id")?,
            },
        }),
        "snapshot" => {
            let what = fields.next().unwrap_or_default();
            let arg = fields.next().unwrap_or_default();
            match what {
                "begin" => Entry::SnapshotBegin {
                    seq,
                    from: u32::from_str_radix(arg, 16)
                        .ok()
                        .filter(|_| arg.len() == 8)
                        .ok_or_else(|| {
                            format!("snapshot begin: {} is not 8 hex digits", quote(arg))
                        })?,
                },
                "end" => Entry::SnapshotEnd {
                    seq,
                    count: arg.parse().map_err(|_| {
                        format!("snapshot end: count {} is not a whole number", quote(arg))
                    })?,
                },
                other => {
                    return Err(format!(
                        "snapshot: expected begin or end, not {}",
                        quote(other)
                    ))
                }
            }
        }
        other => {
            return Err(format!(
                "unknown verb {} (expected set or delete)",
                quote(other)
            ))
        }
    };
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected field {} after the {verb} line",
            quote(extra)
        ));
    }
    Ok(Some(entry))
}

/// Parses one change line (without its newline). `Ok(None)` for blank lines and comments;
/// snapshot lines are errors here (they only mean something in a whole journal).
pub fn parse_line(line: &str) -> Result<Option<Sequenced>, String> {
    match parse_entry(line)? {
        None => Ok(None),
        Some(Entry::Change(s)) => Ok(Some(s)),
        Some(_) => Err("a snapshot line outside a journal".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        assert_eq!(parse_line("  # comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        let s = parse_line("7 set R1 Mark coolgame us-east")
            .unwrap()
            .unwrap();
        assert_eq!(s.seq, 7);
        assert_eq!(s.to_string(), "7 set r1 mark coolgame us-east");
        let d = parse_line("8\tdelete r1").unwrap().unwrap();
        assert_eq!(d.to_string(), "8 delete r1");
        assert_eq!(
            parse_entry("9 snapshot begin 0000abcd").unwrap(),
            Some(Entry::SnapshotBegin {
                seq: 9,
                from: 0xabcd
            })
        );
        assert_eq!(
            parse_entry("9 snapshot end 2").unwrap(),
            Some(Entry::SnapshotEnd { seq: 9, count: 2 })
        );
        assert!(matches!(
            parse_entry("9 app a u s c").unwrap(),
            Some(Entry::SnapshotApp(_))
        ));
        assert!(parse_line("9 app a u s c").is_err());
        assert!(parse_line(&format!("{MAX_SEQ} delete a")).is_ok());
    }

    #[test]
    fn reports_bad_lines_briefly() {
        for (line, needle) in [
            ("x set a b c d", "not a whole number"),
            ("0 set a b c d", "start at 1"),
            ("18446744073709551615 set a b c d", "larger than"),
            ("9223372036854775808 delete a", "larger than"),
            ("1", "missing verb"),
            ("1 move a", "unknown verb"),
            ("1 set a b c", "missing cluster"),
            ("1 set a b.c d e", "user"),
            ("1 delete a extra", "unexpected field"),
            ("1 set _acme-challenge u s c", "reserved"),
            ("1 set a u _ACME-challenge c", "reserved"),
            ("1 snapshot begin xyz", "8 hex digits"),
            ("1 snapshot end x", "count"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
        // A long field is quoted in part.
        let long = format!("1 {} a", "v".repeat(100_000));
        let e = parse_line(&long).unwrap_err();
        assert!(e.len() < 200, "{e}");
        let long = format!("{} set a u s c", "9".repeat(100_000));
        assert!(parse_line(&long).unwrap_err().len() < 200);
    }
}
