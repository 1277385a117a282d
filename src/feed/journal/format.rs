//! The journal's line format: one change per line, and the snapshot block of a compacted
//! journal (see the module above). Parsing is pure: bytes in, an entry or a short error out.

use crate::feed::change::{value_from_hex, Change, Sequenced};
use crate::health::report::HealthReport;
pub use crate::name::quote;
use crate::name::{check_label, DomainName};

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
    /// `<seq> app ...`, `<seq> txt ...` or `<seq> health-held ...`: one app, challenge TXT
    /// value or health report of a snapshot (a `Change::Upsert`, `Change::TxtAdd` or
    /// `Change::Health`).
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
    let special = match parse_txt(verb, &mut fields)? {
        Some(change) => Some(change),
        None => parse_health(verb, &mut fields)?,
    };
    if let Some(change) = special {
        let s = Sequenced { seq, change };
        let entry = if verb == "txt" || verb == SNAPSHOT_HEALTH {
            Entry::SnapshotApp(s)
        } else {
            Entry::Change(s)
        };
        if let Some(extra) = fields.next() {
            return Err(format!(
                "unexpected field {} after the {verb} line",
                quote(extra)
            ));
        }
        return Ok(Some(entry));
    }
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

/// Parses the fields after a challenge record verb: `txt-add <name> <expires> <hex value>`,
/// `txt-del <name> [<hex value>]`, or the snapshot's `txt <name> <expires> <hex value>`.
/// `Ok(None)`: another verb.
fn parse_txt<'a>(
    verb: &str,
    fields: &mut impl Iterator<Item = &'a str>,
) -> Result<Option<Change>, String> {
    if !matches!(verb, "txt-add" | "txt-del" | "txt") {
        return Ok(None);
    }
    let name_text = fields
        .next()
        .ok_or_else(|| format!("{verb}: missing name"))?;
    let name: DomainName = name_text
        .parse()
        .map_err(|_| format!("{verb}: name {} is not a domain name", quote(name_text)))?;
    if !crate::feed::acme::is_challenge_name(&name) {
        return Err(format!(
            "{verb}: name {} does not start with {RESERVED_LABEL}.",
            quote(name_text)
        ));
    }
    let value = |text: &str| -> Result<Box<[u8]>, String> {
        let v = value_from_hex(text).map_err(|e| format!("{verb}: {e}"))?;
        if v.is_empty() || v.len() > crate::config::acme::MAX_VALUE_LEN {
            return Err(format!(
                "{verb}: a value is 1 to {} bytes, not {}",
                crate::config::acme::MAX_VALUE_LEN,
                v.len()
            ));
        }
        Ok(v.into())
    };
    if verb == "txt-del" {
        let value = fields.next().map(value).transpose()?;
        return Ok(Some(Change::TxtDelete { name, value }));
    }
    let exp_text = fields
        .next()
        .ok_or_else(|| format!("{verb}: missing expiry"))?;
    let expires: u64 = exp_text.parse().map_err(|_| {
        format!(
            "{verb}: expiry {} is not a whole number of unix seconds",
            quote(exp_text)
        )
    })?;
    let hex = fields
        .next()
        .ok_or_else(|| format!("{verb}: missing value"))?;
    Ok(Some(Change::TxtAdd {
        name,
        value: value(hex)?,
        expires,
    }))
}

/// The snapshot's verb for a health report (the change's is `health`).
pub const SNAPSHOT_HEALTH: &str = "health-held";

/// Parses the fields after `health` (or the snapshot's `health-held`):
/// `<checker> <cluster> <addr> up|down <until-unix-secs>`. `Ok(None)`: another verb.
fn parse_health<'a>(
    verb: &str,
    fields: &mut impl Iterator<Item = &'a str>,
) -> Result<Option<Change>, String> {
    if verb != "health" && verb != SNAPSHOT_HEALTH {
        return Ok(None);
    }
    let mut field = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("{verb}: missing {what}"))
    };
    let label =
        |what: &str, text: &str| check_label(text).map_err(|e| format!("{verb}: {what}: {e}"));
    let checker = label("checker", field("checker")?)?;
    let cluster = label("cluster", field("cluster")?)?;
    let addr_text = field("address")?;
    let addr = addr_text.parse().map_err(|_| {
        format!(
            "{verb}: address {} is not an IPv4 or IPv6 address",
            quote(addr_text)
        )
    })?;
    let up = match field("state (up or down)")? {
        "up" => true,
        "down" => false,
        other => return Err(format!("{verb}: state {} is not up or down", quote(other))),
    };
    let until_text = field("until (unix seconds)")?;
    let until = until_text.parse().map_err(|_| {
        format!(
            "{verb}: until {} is not a whole number of unix seconds",
            quote(until_text)
        )
    })?;
    Ok(Some(Change::Health(HealthReport {
        checker,
        cluster,
        addr,
        up,
        until,
    })))
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
    fn challenge_lines_round_trip() {
        let add = Sequenced {
            seq: 5,
            change: Change::TxtAdd {
                name: "_acme-challenge.Mark.repl.co".parse().unwrap(),
                value: Box::from(&b"a b\"\n\x00\xff"[..]),
                expires: 1_700_000_000,
            },
        };
        let line = add.to_string();
        assert_eq!(
            line,
            "5 txt-add _acme-challenge.mark.repl.co 1700000000 612062220a00ff"
        );
        assert_eq!(parse_line(&line).unwrap(), Some(add));
        for change in [
            Change::TxtDelete {
                name: "_acme-challenge.repl.co".parse().unwrap(),
                value: None,
            },
            Change::TxtDelete {
                name: "_acme-challenge.x.repl.co".parse().unwrap(),
                value: Some(Box::from(&[7u8; 255][..])),
            },
        ] {
            let s = Sequenced { seq: 9, change };
            assert_eq!(parse_line(&s.to_string()).unwrap(), Some(s));
        }
        // Upper-case hex and a final dot are read too.
        assert!(parse_line("1 txt-add _acme-challenge.a.co. 1 AB").is_ok());
        // The snapshot's form.
        assert!(matches!(
            parse_entry("3 txt _acme-challenge.a.co 9 6162").unwrap(),
            Some(Entry::SnapshotApp(Sequenced {
                change: Change::TxtAdd { .. },
                ..
            }))
        ));
        assert!(parse_line("3 txt _acme-challenge.a.co 9 6162").is_err());
    }

    #[test]
    fn reports_bad_challenge_lines() {
        let long = "ab".repeat(256);
        for (line, needle) in [
            ("1 txt-add", "missing name"),
            ("1 txt-add a..b 1 61", "not a domain name"),
            (
                "1 txt-add www.a.co 1 61",
                "does not start with _acme-challenge",
            ),
            (
                "1 txt-del _acme-challenge",
                "does not start with _acme-challenge.",
            ),
            ("1 txt-add _acme-challenge.a.co", "missing expiry"),
            ("1 txt-add _acme-challenge.a.co -1 61", "unix seconds"),
            ("1 txt-add _acme-challenge.a.co 1", "missing value"),
            ("1 txt-add _acme-challenge.a.co 1 6", "hex digits"),
            ("1 txt-add _acme-challenge.a.co 1 zz", "hex digits"),
            ("1 txt-add _acme-challenge.a.co 1 ''", "hex digits"),
            (
                &format!("1 txt-add _acme-challenge.a.co 1 {long}"),
                "1 to 255 bytes",
            ),
            ("1 txt-del _acme-challenge.a.co 61 62", "unexpected field"),
            ("1 txt-add _acme-challenge.a.co 1 61 x", "unexpected field"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn health_lines_round_trip() {
        let report = |addr: &str, up: bool, until: u64| Sequenced {
            seq: 12,
            change: Change::Health(HealthReport {
                checker: "eu-1".parse().unwrap(),
                cluster: "us-east".parse().unwrap(),
                addr: addr.parse().unwrap(),
                up,
                until,
            }),
        };
        let down = report("10.0.0.7", false, 1_700_000_030);
        assert_eq!(
            down.to_string(),
            "12 health eu-1 us-east 10.0.0.7 down 1700000030"
        );
        assert_eq!(parse_line(&down.to_string()).unwrap(), Some(down));
        let up = report("2001:db8::1", true, 0);
        assert_eq!(up.to_string(), "12 health eu-1 us-east 2001:db8::1 up 0");
        assert_eq!(parse_line(&up.to_string()).unwrap(), Some(up.clone()));
        // Labels are lower-cased like the other verbs'.
        assert_eq!(
            parse_line("12 health EU-1 US-east 2001:DB8::1 up 0").unwrap(),
            Some(up)
        );
        // The snapshot's form.
        let held = "4 health-held a c 10.0.0.1 up 9";
        assert!(matches!(
            parse_entry(held).unwrap(),
            Some(Entry::SnapshotApp(Sequenced {
                change: Change::Health(_),
                ..
            }))
        ));
        assert!(parse_line(held).is_err());
    }

    #[test]
    fn reports_bad_health_lines() {
        for (line, needle) in [
            ("1 health", "health: missing checker"),
            ("1 health a", "health: missing cluster"),
            ("1 health a c", "health: missing address"),
            ("1 health a c 10.0.0.1", "missing state"),
            ("1 health a c 10.0.0.1 up", "missing until"),
            ("1 health a.b c 10.0.0.1 up 1", "checker"),
            ("1 health a c! 10.0.0.1 up 1", "cluster"),
            (
                "1 health a c 10.0.0.256 up 1",
                "address \"10.0.0.256\" is not an IPv4 or IPv6",
            ),
            ("1 health a c host.example up 1", "not an IPv4 or IPv6"),
            (
                "1 health a c 10.0.0.1 sideways 1",
                "state \"sideways\" is not up or down",
            ),
            ("1 health a c 10.0.0.1 UP 1", "not up or down"),
            (
                "1 health a c 10.0.0.1 up -5",
                "until \"-5\" is not a whole number",
            ),
            ("1 health a c 10.0.0.1 up 1.5", "not a whole number"),
            ("1 health a c 10.0.0.1 up 1 extra", "unexpected field"),
            (
                "1 health-held a c ::1 down 18446744073709551616",
                "not a whole number",
            ),
        ] {
            let e = parse_entry(line).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
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
            ("1 healthy a c 10.0.0.1 up 1", "unknown verb"),
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
        // A long challenge name too.
        let e = parse_line(&format!("1 txt-add {} 1 61", "a.".repeat(1000))).unwrap_err();
        assert!(e.len() < 200, "{e}");
        // A long field is quoted in part.
        let long = format!("1 {} a", "v".repeat(100_000));
        let e = parse_line(&long).unwrap_err();
        assert!(e.len() < 200, "{e}");
        let long = format!("{} set a u s c", "9".repeat(100_000));
        assert!(parse_line(&long).unwrap_err().len() < 200);
    }
}
