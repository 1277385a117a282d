//! Fuzzes the decoding of a NATS fan-out message (`clusterns::feed::nats::message::decode`):
//! arbitrary `Clusterns-Seq` and `Clusterns-Reset` header values and bodies.
//!
//! Input: the first byte picks which headers the message has (bit 0: `Clusterns-Seq`, bit 1:
//! `Clusterns-Reset`); the header value is the text up to the first newline (lossily UTF-8,
//! the same value for whichever headers are present), the body is the rest.
//!
//! Checks that it never panics; that an error stays short however long the input; that a
//! decoded change message has at least one change, sequence numbers strictly increasing from
//! its first to its last, and encodes (`encode_changes`) to a header and body that decode to
//! the same message; that a decoded reset has an empty body.

#![no_main]

use clusterns::feed::nats::message::{decode, encode_changes, msg_id, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (value, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let value = String::from_utf8_lossy(value);
    let seq = (mode & 1 != 0).then_some(&*value);
    let reset = (mode & 2 != 0).then_some(&*value);
    match decode(seq, reset, body) {
        // Values are quoted cut at 64 bytes, each byte escaped in at most 10 characters.
        Err(e) => assert!(e.len() < 2048, "a long error: {} bytes", e.len()),
        Ok(Message::Reset { seq }) => {
            assert!(body.is_empty() && seq > 0);
            assert_eq!(msg_id(&Message::Reset { seq }), format!("r{seq}"));
        }
        Ok(m @ Message::Changes { .. }) => {
            let Message::Changes {
                first,
                last,
                changes,
            } = &m
            else {
                unreachable!()
            };
            assert!(!changes.is_empty());
            assert_eq!((changes[0].seq, changes[changes.len() - 1].seq), (*first, *last));
            assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
            let (header, encoded) = encode_changes(changes);
            assert_eq!(header, format!("{first}-{last}"));
            assert_eq!(decode(Some(&header), None, &encoded).as_ref(), Ok(&m));
        }
    }
});
