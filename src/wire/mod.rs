//! The packet path without I/O: bytes of a query in, bytes of the response out.
//!
//! `decode` validates with the `domain` crate, the name is lower-cased once into a stack
//! buffer, `resolve` answers from the snapshot and `encode` writes pre-encoded records.

pub mod decode;
pub mod encode;
#[cfg(test)]
mod tests;

pub use decode::{decode, Decoded, Edns, ErrorHeader, Request};
pub use encode::{encode, encode_error, MIN_BUFFER};

use crate::name::MAX_NAME_LEN;
use crate::resolve::{resolve, Outcome, Question};
use crate::snapshot::Snapshot;

/// The transport a query came over: it sets the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What happened to one packet, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// Response length; 0 when nothing is to be sent.
    pub len: usize,
    /// The response code sent (extended codes included), or `None` when dropped.
    pub rcode: Option<u16>,
    /// The query type, when the question could be read.
    pub qtype: Option<u16>,
    /// Whether the response was truncated (TC set).
    pub truncated: bool,
}

/// Lower-cases a wire name into `buf` and returns it.
#[inline]
pub fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME_LEN]) -> &'b [u8] {
    let n = name.len().min(MAX_NAME_LEN);
    for (d, s) in buf[..n].iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    &buf[..n]
}

/// The largest response allowed for `req` over `transport` when this server's UDP payload
/// size is `payload`.
#[inline]
pub fn size_limit(req: &Request<'_>, transport: Transport, payload: u16) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match req.edns {
            Some(e) => usize::from(e.udp_size.clamp(512, payload.max(512))),
            None => 512,
        },
    }
}

/// Answers one packet from `snap` into `out` (at least [`MIN_BUFFER`] bytes; 65535 for full
/// TCP answers).
#[inline]
pub fn respond(snap: &Snapshot, pkt: &[u8], out: &mut [u8], transport: Transport) -> Handled {
    match decode(pkt) {
        Decoded::Query(req) => {
            let mut buf = [0u8; MAX_NAME_LEN];
            let name = lowercase(req.qname(), &mut buf);
            let q = Question {
                name,
                qtype: req.qtype,
                qclass: req.qclass,
            };
            let outcome = resolve(snap, &q);
            let payload = snap.served.udp_payload;
            let limit = size_limit(&req, transport, payload);
            let len = encode(out, &req, name, &outcome, limit, payload);
            let badvers = req.edns.is_some_and(|e| e.version > 0);
            Handled {
                len,
                rcode: Some(if badvers {
                    encode::BADVERS
                } else {
                    u16::from(outcome.rcode())
                }),
                qtype: Some(req.qtype),
                truncated: out[2] & 0x02 != 0,
            }
        }
        Decoded::FormErr(h) => error(out, &h, 1),
        Decoded::NotImp(h) => error(out, &h, 4),
        Decoded::Drop => Handled {
            len: 0,
            rcode: None,
            qtype: None,
            truncated: false,
        },
    }
}

fn error(out: &mut [u8], h: &ErrorHeader, rcode: u8) -> Handled {
    Handled {
        len: encode_error(out, h, rcode),
        rcode: Some(u16::from(rcode)),
        qtype: None,
        truncated: false,
    }
}

/// The presentation form of a wire name (for logs): labels joined by dots, unusual bytes
/// escaped.
pub fn name_text(wire: &[u8]) -> String {
    let mut out = String::with_capacity(wire.len() + 1);
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len > 63 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(wire.len());
        for &b in &wire[pos + 1..end] {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
        pos = end;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Whether an outcome is one the server answers authoritatively.
pub fn is_authoritative(o: &Outcome<'_>) -> bool {
    matches!(
        o,
        Outcome::Hit { .. }
            | Outcome::AcmeCname { .. }
            | Outcome::NoData { .. }
            | Outcome::NxDomain { .. }
            | Outcome::YxDomain { .. }
    )
}

#[cfg(test)]
mod name_text_tests {
    use super::name_text;

    #[test]
    fn presentation_form() {
        assert_eq!(name_text(b"\x04Mark\x04repl\x02co\x00"), "Mark.repl.co.");
        assert_eq!(name_text(b"\x00"), ".");
        assert_eq!(name_text(b"\x03a b\x00"), "a\\032b.");
    }
}
