//! The messages of the NATS fan-out, as bytes: pure encoding and decoding (no client), fuzzed
//! by `fuzz/fuzz_targets/nats_message.rs`.
//!
//! A relay publishes two kinds of message to the stream's subject:
//! - **changes**: header `Clusterns-Seq: <first>-<last>`, the sequence numbers of its first
//!   and last change; body: the changes in the journal's line format (`feed::journal`), one
//!   per line, each ending with `\n`, sequence numbers strictly increasing from `<first>` to
//!   `<last>` (gaps allowed: PostgreSQL's sequences skip);
//! - **reset**: header `Clusterns-Reset: <seq>`, empty body: the table starts over as of
//!   `<seq>` (the source was reloaded); the table as of then is the snapshot the relay put in
//!   the object store before it, and an edge loads it.
//!
//! Each also carries `Nats-Msg-Id` ([`msg_id`]), derived from the sequence numbers only, so
//! that JetStream drops a message a relay publishes twice (a retry, or a new leader
//! publishing what the old one had published).

use crate::feed::change::Sequenced;
use crate::feed::journal::{parse_line, MAX_SEQ};
use crate::name::quote;

/// The header naming a change message's first and last sequence numbers.
pub const HEADER_SEQ: &str = "Clusterns-Seq";
/// The header of a reset message.
pub const HEADER_RESET: &str = "Clusterns-Reset";
/// JetStream's de-duplication header.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The largest body a relay publishes or an edge accepts (NATS's default `max_payload` is
/// 1 MiB; a change line is at most about 300 bytes).
pub const MAX_BODY: usize = 1 << 20;

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Changes `first..=last`, in order.
    Changes {
        first: u64,
        last: u64,
        changes: Vec<Sequenced>,
    },
    /// The table starts over as of `seq`.
    Reset { seq: u64 },
}

impl Message {
    /// The last sequence number the message covers.
    pub fn last_seq(&self) -> u64 {
        match self {
            Message::Changes { last, .. } => *last,
            Message::Reset { seq } => *seq,
        }
    }
}

/// The de-duplication id of a change message covering `first..=last` (`c<first>-<last>`) or
/// of a reset at `seq` (`r<seq>`).
pub fn msg_id(message: &Message) -> String {
    match message {
        Message::Changes { first, last, .. } => format!("c{first}-{last}"),
        Message::Reset { seq } => format!("r{seq}"),
    }
}

/// The `Clusterns-Seq` value and the body of a change message holding `changes` (at least one,
/// sequence numbers strictly increasing; the caller keeps the body under [`MAX_BODY`]).
pub fn encode_changes(changes: &[Sequenced]) -> (String, Vec<u8>) {
    use std::io::Write;
    let first = changes.first().map_or(0, |c| c.seq);
    let last = changes.last().map_or(0, |c| c.seq);
    let mut body = Vec::with_capacity(changes.len() * 64);
    for c in changes {
        let _ = writeln!(body, "{c}");
    }
    (format!("{first}-{last}"), body)
}

/// The bytes one change takes in a change message's body.
pub fn encoded_len(change: &Sequenced) -> usize {
    change.to_string().len() + 1
}

/// Decodes a message from its `Clusterns-Seq` and `Clusterns-Reset` header values (`None`:
/// absent) and its body. Anything malformed is an error naming what and where (the body's
/// line number), short however long the input.
pub fn decode(seq: Option<&str>, reset: Option<&str>, body: &[u8]) -> Result<Message, String> {
    match (seq, reset) {
        (Some(_), Some(_)) => Err(format!("both {HEADER_SEQ} and {HEADER_RESET}")),
        (None, None) => Err(format!("neither {HEADER_SEQ} nor {HEADER_RESET}")),
        (None, Some(r)) => {
            let seq = parse_seq(r).map_err(|e| format!("{HEADER_RESET}: {e}"))?;
            if !body.is_empty() {
                return Err(format!("a reset message has a body ({} bytes)", body.len()));
            }
            Ok(Message::Reset { seq })
        }
        (Some(s), None) => {
            let (first, last) = s
                .split_once('-')
                .ok_or_else(|| format!("{HEADER_SEQ} {} is not <first>-<last>", quote(s)))?;
            let first = parse_seq(first).map_err(|e| format!("{HEADER_SEQ}: {e}"))?;
            let last = parse_seq(last).map_err(|e| format!("{HEADER_SEQ}: {e}"))?;
            if first > last {
                return Err(format!("{HEADER_SEQ} {first}-{last}: first after last"));
            }
            decode_changes(first, last, body)
        }
    }
}

fn decode_changes(first: u64, last: u64, body: &[u8]) -> Result<Message, String> {
    if body.len() > MAX_BODY {
        return Err(format!("body of {} bytes is over {MAX_BODY}", body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("line {line}: not UTF-8")
    })?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the body does not end with a newline".into());
    }
    let mut changes: Vec<Sequenced> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let change = parse_line(line)
            .map_err(|e| format!("line {n}: {e}"))?
            .ok_or_else(|| format!("line {n}: blank or a comment"))?;
        if let Some(prev) = changes.last() {
            if change.seq <= prev.seq {
                return Err(format!(
                    "line {n}: sequence number {} does not follow {}",
                    change.seq, prev.seq
                ));
            }
        }
        changes.push(change);
    }
    match (changes.first(), changes.last()) {
        (Some(f), Some(l)) if f.seq == first && l.seq == last => Ok(Message::Changes {
            first,
            last,
            changes,
        }),
        (Some(f), Some(l)) => Err(format!(
            "{HEADER_SEQ} {first}-{last} but the changes run {}-{}",
            f.seq, l.seq
        )),
        _ => Err("a change message without changes".into()),
    }
}

/// A sequence number in 1..=[`MAX_SEQ`], as decimal digits only.
fn parse_seq(text: &str) -> Result<u64, String> {
    let n = if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match n {
        Some(n) if (1..=MAX_SEQ).contains(&n) => Ok(n),
        _ => Err(format!(
            "{} is not a sequence number (1 to {MAX_SEQ})",
            quote(text)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::journal::parse_line;

    fn changes(lines: &[&str]) -> Vec<Sequenced> {
        lines
            .iter()
            .map(|l| parse_line(l).unwrap().unwrap())
            .collect()
    }

    #[test]
    fn changes_round_trip() {
        let cs = changes(&[
            "3 set r1 mark coolgame us-east",
            "5 delete r2",
            "6 txt-add _acme-challenge.mark.repl.co 1700000000 6869",
            "9 health eu-1 us-east 192.0.2.1 down 1700000030",
        ]);
        let (seq, body) = encode_changes(&cs);
        assert_eq!(seq, "3-9");
        assert!(body.ends_with(b"\n"));
        let m = decode(Some(&seq), None, &body).unwrap();
        assert_eq!(m.last_seq(), 9);
        assert_eq!(msg_id(&m), "c3-9");
        assert_eq!(
            m,
            Message::Changes {
                first: 3,
                last: 9,
                changes: cs.clone()
            }
        );
        assert_eq!(encoded_len(&cs[1]), "5 delete r2\n".len());
        let r = decode(None, Some("12"), b"").unwrap();
        assert_eq!(
            (r.clone(), msg_id(&r)),
            (Message::Reset { seq: 12 }, "r12".into())
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_where() {
        let body = b"3 set r1 mark coolgame us-east\n4 delete r2\n";
        for (seq, reset, body, want) in [
            (None, None, &body[..], "neither"),
            (Some("3-4"), Some("4"), &body[..], "both"),
            (Some("3"), None, &body[..], "not <first>-<last>"),
            (Some("4-3"), None, &body[..], "first after last"),
            (Some("0-4"), None, &body[..], "not a sequence number"),
            (Some("+3-4"), None, &body[..], "not a sequence number"),
            (Some("3-4"), None, &b""[..], "without changes"),
            (Some("3-5"), None, &body[..], "the changes run 3-4"),
            (Some("3-4"), None, &body[..body.len() - 1], "newline"),
            (
                Some("3-4"),
                None,
                &b"3 set r1 mark x c\n3 delete r2\n"[..],
                "line 2: sequence",
            ),
            (
                Some("3-4"),
                None,
                &b"3 set r1 mark x c\n\n4 delete r2\n"[..],
                "line 2: blank",
            ),
            (
                Some("3-4"),
                None,
                &b"3 set r1 m x c\n4 frob r2\n"[..],
                "line 2: unknown verb",
            ),
            (
                Some("3-4"),
                None,
                &b"3 set r1 m x c\n4 delete \xff\n"[..],
                "line 2: not UTF-8",
            ),
            (
                Some("3-4"),
                None,
                &b"3 app r1 m x c\n"[..],
                "line 1: a snapshot line",
            ),
            (None, Some("7"), &b"x"[..], "has a body"),
            (None, Some("x"), &b""[..], "Clusterns-Reset"),
        ] {
            let e = decode(seq, reset, body).unwrap_err();
            assert!(e.contains(want), "{seq:?} {reset:?}: {e} (wanted {want})");
            assert!(e.len() < 200, "{e}");
        }
        // Control characters quote long (`\u{13}`): the error stays bounded all the same
        // (the fuzz target's first crash: a 61-byte reset header).
        let long = format!("l){}", "\u{13}".repeat(5000));
        let e = decode(None, Some(&long), b"").unwrap_err();
        assert!(e.len() < 1024, "{} bytes", e.len());
        let e = decode(Some(&long), None, b"").unwrap_err();
        assert!(e.len() < 1024, "{} bytes", e.len());
        let big = vec![b'a'; MAX_BODY + 1];
        assert!(decode(Some("1-2"), None, &big)
            .unwrap_err()
            .contains("over"));
    }
}
