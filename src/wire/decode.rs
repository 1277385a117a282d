//! Decoding a query packet with the `domain` crate, zero-copy, into a [`Request`].
//!
//! Validation follows Knot DNS and NSD: a packet too short for a header is dropped, as is
//! every response (QR=1); an opcode other than QUERY is NOTIMP; anything else malformed
//! (QDCOUNT != 1, bad or compressed question name, broken records, OPT in the wrong place or
//! twice, trailing bytes) is FORMERR.

use domain::base::iana::Opcode;
use domain::base::name::ToLabelIter;
use domain::base::opt::Opt;
use domain::base::Message;

use crate::name::MAX_NAME_LEN;
use crate::rrset::rtype;

/// The EDNS(0) parameters of a query (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A decoded query, borrowing the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub id: u16,
    pub rd: bool,
    pub cd: bool,
    /// The question as it came: name (case preserved), type, class.
    pub question: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Request<'_> {
    /// The question name in wire form, case preserved.
    pub fn qname(&self) -> &[u8] {
        &self.question[..self.question.len() - 4]
    }
}

/// The header fields echoed in an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorHeader {
    pub id: u16,
    pub opcode: u8,
    pub rd: bool,
    pub cd: bool,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A well-formed query.
    Query(Request<'a>),
    /// Answer with a header-only FORMERR.
    FormErr(ErrorHeader),
    /// Answer with a header-only NOTIMP.
    NotImp(ErrorHeader),
    /// Send nothing: too short for a header, or not a query.
    Drop,
}

/// Decodes one packet.
pub fn decode(pkt: &[u8]) -> Decoded<'_> {
    let Ok(msg) = Message::from_slice(pkt) else {
        return Decoded::Drop;
    };
    let header = msg.header();
    if header.qr() {
        return Decoded::Drop;
    }
    let err = ErrorHeader {
        id: header.id(),
        opcode: header.opcode().to_int(),
        rd: header.rd(),
        cd: header.cd(),
    };
    if header.opcode() != Opcode::QUERY {
        return Decoded::NotImp(err);
    }
    match parse(msg, err) {
        Some(req) => Decoded::Query(req),
        None => Decoded::FormErr(err),
    }
}

fn parse(msg: &Message<[u8]>, err: ErrorHeader) -> Option<Request<'_>> {
    let pkt = msg.as_slice();
    if msg.header_counts().qdcount() != 1 {
        return None;
    }
    let mut questions = msg.question();
    let question = questions.next()?.ok()?;
    let qend = questions.pos();
    // The question name must be uncompressed: its length in the packet equals its length.
    let name_len = usize::from(question.qname().compose_len());
    if qend != 12 + name_len + 4 || name_len > MAX_NAME_LEN {
        return None;
    }
    let mut section = questions.answer().ok()?;
    let mut edns = None;
    // 0: answer, 1: authority, 2: additional.
    let mut section_index = 0;
    loop {
        for record in &mut section {
            let record = record.ok()?;
            if record.rtype().to_int() != rtype::OPT {
                continue;
            }
            // OPT only once, only in the additional section, owned by the root.
            if section_index != 2 || edns.is_some() || !record.owner().is_root() {
                return None;
            }
            record.to_record::<Opt<_>>().ok()??;
            let ttl = record.ttl().as_secs();
            edns = Some(Edns {
                udp_size: record.class().to_int(),
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
        let end = section.pos();
        match section.next_section().ok()? {
            Some(next) => {
                section = next;
                section_index += 1;
            }
            None => {
                if end != pkt.len() {
                    return None;
                }
                break;
            }
        }
    }
    Some(Request {
        id: err.id,
        rd: err.rd,
        cd: err.cd,
        question: &pkt[12..qend],
        qtype: question.qtype().to_int(),
        qclass: question.qclass().to_int(),
        edns,
    })
}
