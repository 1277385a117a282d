//! Decoding a query packet with the `domain` crate, zero-copy, into a [`Request`].
//!
//! Only the QUERY opcode's layout is read: a packet too short for a header, a response
//! (QR=1) and any other opcode come back with what their header says, for the query layer to
//! decide. A QUERY message that is malformed (QDCOUNT != 1, bad or compressed question name,
//! broken records, OPT in the wrong place or twice, trailing bytes) is [`Decoded::Malformed`].

use domain::base::iana::{Class, Opcode, Rtype};
use domain::base::name::ToLabelIter;
use domain::base::Message;

use crate::name::MAX_NAME_LEN;
use crate::wire::edns::Edns;
use crate::wire::header::{HEADER_LEN, LABEL_KIND_BITS, QUESTION_FIXED_LEN};

/// A decoded query, borrowing the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub id: u16,
    pub rd: bool,
    pub cd: bool,
    /// The question as it came: name (case preserved), type, class.
    pub question: &'a [u8],
    pub qtype: Rtype,
    pub qclass: Class,
    pub edns: Option<Edns>,
}

impl Request<'_> {
    /// The question name in wire form, case preserved.
    #[inline]
    pub fn qname(&self) -> &[u8] {
        &self.question[..self.question.len() - QUESTION_FIXED_LEN]
    }
}

/// The header fields echoed in an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorHeader {
    pub id: u16,
    pub opcode: Opcode,
    pub rd: bool,
    pub cd: bool,
}

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A well-formed query (opcode QUERY).
    Query(Request<'a>),
    /// A QUERY message that does not parse.
    Malformed(ErrorHeader),
    /// A message with another opcode; its body is not read.
    OtherOpcode(ErrorHeader),
    /// A response (QR set).
    Response,
    /// Too short for a header.
    Runt,
}

/// Decodes one packet.
pub fn decode(pkt: &[u8]) -> Decoded<'_> {
    let Ok(msg) = Message::from_slice(pkt) else {
        return Decoded::Runt;
    };
    let header = msg.header();
    if header.qr() {
        return Decoded::Response;
    }
    let err = ErrorHeader {
        id: header.id(),
        opcode: header.opcode(),
        rd: header.rd(),
        cd: header.cd(),
    };
    if header.opcode() != Opcode::QUERY {
        return Decoded::OtherOpcode(err);
    }
    match parse(msg, err) {
        Some(req) => Decoded::Query(req),
        None => Decoded::Malformed(err),
    }
}

/// The question name of a packet as it is there (wire form, case kept, with its root label),
/// when it is uncompressed and at most [`MAX_NAME_LEN`] long; the rest of the packet is not
/// looked at. `decode` requires exactly this of a query's name (it checks it on the name
/// `domain` parsed, which costs less than reading it twice); the workers' prefetch pass and
/// the query log read names with it without decoding.
#[inline]
pub fn question_name(pkt: &[u8]) -> Option<&[u8]> {
    let mut at = HEADER_LEN;
    loop {
        let len = *pkt.get(at)?;
        if len & LABEL_KIND_BITS != 0 {
            return None;
        }
        at += 1 + usize::from(len);
        if at - HEADER_LEN > MAX_NAME_LEN || at > pkt.len() {
            return None;
        }
        if len == 0 {
            return Some(&pkt[HEADER_LEN..at]);
        }
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
    // The question name must be uncompressed: its length in the packet equals its length
    // (what [`question_name`] reads; `domain` has parsed it already, so its length is used).
    let name_len = usize::from(question.qname().compose_len());
    if qend != HEADER_LEN + name_len + QUESTION_FIXED_LEN || name_len > MAX_NAME_LEN {
        return None;
    }
    let mut section = questions.answer().ok()?;
    let mut edns = None;
    // 0: answer, 1: authority, 2: additional.
    let mut section_index = 0;
    loop {
        for record in &mut section {
            let record = record.ok()?;
            if record.rtype() != Rtype::OPT {
                continue;
            }
            // OPT only once, only in the additional section, owned by the root.
            if section_index != 2 || edns.is_some() || !record.owner().is_root() {
                return None;
            }
            edns = Some(Edns::from_record(&record)?);
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
        question: &pkt[HEADER_LEN..qend],
        qtype: question.qtype(),
        qclass: question.qclass(),
        edns,
    })
}
