//! A query's life without I/O (after Knot's `process_query`): the packet is decoded
//! (`wire::decode`), admitted or dropped or answered with an error by the header checks
//! (`policy`), its question name lower-cased once, screened (class, meta types) and
//! resolved (`resolve`); the outcome becomes the codec's reply ([`reply`]), written within
//! the transport's and the client's size limit ([`edns`]), truncated when it does not fit.
//! The [`Response`] says what was sent, for counting, rate limiting and logging.
//! An UPDATE message, when the server accepts them ([`Policy`]), is not answered here: it
//! comes back as [`ResponseClass::Update`] with nothing written, for the server to hand to
//! its update thread.

#[cfg(test)]
mod dnssec_tests;
pub mod edns;
#[cfg(test)]
mod health_tests;
pub(crate) mod policy;
pub mod reply;
pub mod signed;
#[cfg(test)]
mod tests;

use domain::base::iana::{OptRcode, Rcode, Rtype};

pub use crate::wire::Transport;
pub use policy::Policy;

use crate::name::MAX_NAME_LEN;
use crate::resolve::{resolve, Outcome, Question};
use crate::snapshot::Snapshot;
use crate::wire::header::HEADER_LEN;
use crate::wire::{decode, encode, encode_error, lowercase, Decoded, ErrorHeader, Request};

/// The kind of a response, for response rate limiting and metrics (Knot's RRL classes, those
/// this server sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// NOERROR with records in the answer section.
    Answer = 0,
    /// NOERROR without (no data, a truncated answer, BADVERS).
    NoData = 1,
    NxDomain = 2,
    /// Any other rcode.
    Error = 3,
    /// Nothing is sent.
    Dropped = 4,
    /// An UPDATE message, handed on unanswered (see [`Policy`]).
    Update = 5,
}

impl ResponseClass {
    /// The class of a response with header rcode `rcode` and `answers` answer records.
    #[inline]
    pub fn of(rcode: Rcode, answers: u16) -> ResponseClass {
        match rcode {
            Rcode::NOERROR if answers > 0 => ResponseClass::Answer,
            Rcode::NOERROR => ResponseClass::NoData,
            Rcode::NXDOMAIN => ResponseClass::NxDomain,
            _ => ResponseClass::Error,
        }
    }
}

/// What was done with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Response length; 0 when nothing is to be sent.
    pub len: usize,
    /// The response code sent (extended codes included), or `None` when dropped.
    pub rcode: Option<OptRcode>,
    /// The query type, when the question could be read.
    pub qtype: Option<Rtype>,
    /// Whether the response was truncated (TC set).
    pub truncated: bool,
    pub class: ResponseClass,
    /// Where the response's question ends (12 for a header-only response): the length of its
    /// truncated form ([`crate::wire::truncate`]).
    pub question_end: u16,
}

impl Response {
    /// Nothing sent.
    pub const DROPPED: Response = Response {
        len: 0,
        rcode: None,
        qtype: None,
        truncated: false,
        class: ResponseClass::Dropped,
        question_end: 0,
    };

    /// An UPDATE message to hand on: nothing written here.
    pub const UPDATE: Response = Response {
        len: 0,
        rcode: None,
        qtype: None,
        truncated: false,
        class: ResponseClass::Update,
        question_end: 0,
    };
}

/// Answers one packet from `snap` into `out` (at least [`crate::wire::MIN_BUFFER`] bytes;
/// 65535 for full TCP answers). Every opcode but QUERY gets NOTIMP
/// ([`Policy::QUERIES_ONLY`]).
#[inline]
pub fn respond(snap: &Snapshot, pkt: &[u8], out: &mut [u8], transport: Transport) -> Response {
    respond_with(snap, pkt, out, transport, Policy::QUERIES_ONLY)
}

/// [`respond`] under `policy`: with [`Policy::UPDATES`] an UPDATE message is not answered
/// but comes back as [`Response::UPDATE`] (nothing written to `out`) for the caller to hand
/// on.
#[inline]
pub fn respond_with(
    snap: &Snapshot,
    pkt: &[u8],
    out: &mut [u8],
    transport: Transport,
    policy: Policy,
) -> Response {
    match decode(pkt) {
        Decoded::Query(req) => answer(snap, &req, out, transport),
        other if policy::hands_on(&other, policy) => Response::UPDATE,
        other => match policy::reject(&other) {
            Some((h, rcode)) => error(out, &h, rcode),
            None => Response::DROPPED,
        },
    }
}

/// The outcome for question `q` (its name lower-cased): screened, then resolved.
#[inline]
pub fn outcome<'s>(snap: &'s Snapshot, q: &Question<'_>) -> Outcome<'s> {
    match policy::screen(q) {
        Some(o) => o,
        None => resolve(snap, q),
    }
}

/// Answers a well-formed query.
#[inline]
fn answer(snap: &Snapshot, req: &Request<'_>, out: &mut [u8], transport: Transport) -> Response {
    let mut buf = [0u8; MAX_NAME_LEN];
    let name = lowercase(req.qname(), &mut buf);
    let payload = snap.served.udp_payload;
    let limit = edns::size_limit(req, transport, payload);
    let opt = edns::response_opt(req.edns, payload);
    let (encoded, header_rcode, rcode) = if edns::bad_version(req.edns) {
        let reply = reply::bad_version(opt);
        let e = encode(out, req, &reply, limit);
        (e, reply.rcode, OptRcode::BADVERS)
    } else {
        let q = Question {
            name,
            qtype: req.qtype,
            qclass: req.qclass,
        };
        let outcome = outcome(snap, &q);
        let reply = reply::for_outcome(&outcome, name, opt);
        match signed::keys_for(&outcome, req.edns) {
            Some((zone, keys)) => signed::encode_signed(
                snap, zone, keys, &outcome, reply, name, req, out, limit, transport,
            ),
            None => {
                let e = encode(out, req, &reply, limit);
                (e, reply.rcode, OptRcode::from_rcode(reply.rcode))
            }
        }
    };
    Response {
        len: encoded.len,
        rcode: Some(rcode),
        qtype: Some(req.qtype),
        truncated: encoded.truncated,
        class: ResponseClass::of(header_rcode, encoded.answers),
        question_end: (HEADER_LEN + req.question.len()) as u16,
    }
}

/// A header-only error response with `rcode` to the message `pkt` (an UPDATE that cannot be
/// handed on, say), or `None` when `pkt` is not a request (too short, or a response).
pub fn header_error(pkt: &[u8], out: &mut [u8], rcode: Rcode) -> Option<Response> {
    let h = match decode(pkt) {
        Decoded::OtherOpcode(h) | Decoded::Malformed(h) => h,
        Decoded::Query(req) => ErrorHeader {
            id: req.id,
            opcode: domain::base::iana::Opcode::QUERY,
            rd: req.rd,
            cd: req.cd,
        },
        Decoded::Response | Decoded::Runt => return None,
    };
    Some(error(out, &h, rcode))
}

fn error(out: &mut [u8], h: &ErrorHeader, rcode: Rcode) -> Response {
    Response {
        len: encode_error(out, h, rcode),
        rcode: Some(OptRcode::from_rcode(rcode)),
        qtype: None,
        truncated: false,
        // FORMERR, NOTIMP, SERVFAIL.
        class: ResponseClass::Error,
        question_end: HEADER_LEN as u16,
    }
}
