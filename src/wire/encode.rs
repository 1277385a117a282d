//! Encoding responses from pre-encoded bytes: header, the query's own question (case kept),
//! then the records a [`Reply`] names, their owners as compression pointers into that
//! question.
//!
//! A response never exceeds the limit it is given: when the answer or authority does not fit,
//! the response is sent with TC set and no records ([`truncate`], as Knot does); additional
//! records that do not fit are left out.

use domain::base::iana::{Class, Rcode, Rtype};

use super::rrset::RrSet;
use crate::name::MAX_NAME_LEN;
use crate::wire::decode::{ErrorHeader, Request};
use crate::wire::edns::ResponseOpt;
use crate::wire::header::{
    AA, ANCOUNT, ARCOUNT, CD, COMPRESSED_QNAME, FLAGS_HI, FLAGS_LO, HEADER_LEN, NSCOUNT,
    OPCODE_MASK, OPCODE_SHIFT, OPT_LEN, QR, QUESTION_FIXED_LEN, RCODE_MASK, RD, RR_FIXED_LEN, TC,
};

/// The smallest buffer `encode` may be given: a header, the longest question and an OPT.
pub const MIN_BUFFER: usize = HEADER_LEN + MAX_NAME_LEN + QUESTION_FIXED_LEN + OPT_LEN;

/// The answer section of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    None,
    /// An RRset, its owners written as pointers to `owner_ptr` (unless inline).
    Set {
        set: &'a RrSet,
        owner_ptr: u16,
    },
    /// One CNAME owned by the question name, to the name `prefix` + `suffix` (wire labels;
    /// `suffix` ends with the root label).
    Cname {
        ttl: u32,
        prefix: &'a [u8],
        suffix: &'a [u8],
    },
}

/// Complete records in wire form (their owners pointers or full names), written as they
/// are: the signatures and NSEC records a signed answer adds (`dnssec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Raw<'a> {
    pub bytes: &'a [u8],
    /// How many records `bytes` holds.
    pub count: u16,
}

impl Raw<'_> {
    pub const NONE: Raw<'static> = Raw {
        bytes: &[],
        count: 0,
    };
}

/// What a response holds besides the query's header fields and question: built by the query
/// layer, written by [`encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The header's rcode (the low 4 bits of an extended one).
    pub rcode: Rcode,
    pub authoritative: bool,
    pub answer: Answer<'a>,
    /// Records written right after the answer (its signatures).
    pub answer_extra: Raw<'a>,
    /// An RRset for the authority section, with its owner pointer.
    pub authority: Option<(&'a RrSet, u16)>,
    /// Records written right after the authority set (its signatures, an NSEC and the
    /// NSEC's signatures).
    pub authority_extra: Raw<'a>,
    /// Sets for the additional section (owners inline or the question name): each written
    /// when it fits.
    pub additional: &'a [RrSet],
    /// The OPT record, when the query had one.
    pub opt: Option<ResponseOpt>,
}

/// What [`encode`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub len: usize,
    /// Records in the answer section.
    pub answers: u16,
    /// Whether the answer or authority did not fit (TC set, no records).
    pub truncated: bool,
}

/// Writes a header-only error response (FORMERR, NOTIMP) and returns its length.
pub fn encode_error(out: &mut [u8], h: &ErrorHeader, rcode: Rcode) -> usize {
    out[..HEADER_LEN].fill(0);
    out[..2].copy_from_slice(&h.id.to_be_bytes());
    out[FLAGS_HI] =
        QR | (h.opcode.to_int() & OPCODE_MASK) << OPCODE_SHIFT | if h.rd { RD } else { 0 };
    out[FLAGS_LO] = rcode.to_int() & RCODE_MASK | if h.cd { CD } else { 0 };
    HEADER_LEN
}

/// Cuts an encoded response down to its header and question, `question_end` bytes: TC set,
/// every count but QDCOUNT zero. Returns the new length. Used when an answer does not fit and
/// for response rate limiting's slip.
#[inline]
pub fn truncate(out: &mut [u8], question_end: usize) -> usize {
    out[FLAGS_HI] |= TC;
    out[ANCOUNT..HEADER_LEN].fill(0);
    question_end
}

/// A cursor over the output buffer.
struct Writer<'o> {
    out: &'o mut [u8],
    pos: usize,
}

impl Writer<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline]
    fn set(&mut self, set: &RrSet, owner_ptr: u16) {
        set.write(&mut self.out[self.pos..], owner_ptr);
        self.pos += set.wire_len();
    }
}

/// Writes the response to `req` that `reply` describes and says what it wrote.
///
/// `limit` is the largest response allowed (the transport's and the client's limit, at least
/// 512). `out` must hold at least `limit` bytes and at least [`MIN_BUFFER`].
#[inline(always)]
pub fn encode(out: &mut [u8], req: &Request<'_>, reply: &Reply<'_>, limit: usize) -> Encoded {
    let opt_len = if reply.opt.is_some() { OPT_LEN } else { 0 };
    let limit = limit.min(out.len()).max(MIN_BUFFER.min(out.len()));
    let mut w = Writer { out, pos: 0 };
    // Header: the counts but QDCOUNT are filled in below.
    w.put(&req.id.to_be_bytes());
    let flags_hi = QR | if req.rd { RD } else { 0 } | if reply.authoritative { AA } else { 0 };
    let flags_lo = reply.rcode.to_int() | if req.cd { CD } else { 0 };
    // The flags, then QDCOUNT 1 and the other counts 0 (filled in at the end).
    let rest: [u8; HEADER_LEN - FLAGS_HI] = [flags_hi, flags_lo, 0, 1, 0, 0, 0, 0, 0, 0];
    w.put(&rest);
    w.put(req.question);
    let after_question = w.pos;
    let budget = limit - opt_len;
    let (mut an, mut ns, mut ar) = (0u16, 0u16, 0u16);
    let mut truncated = false;

    match reply.answer {
        Answer::None => {}
        Answer::Set { set, owner_ptr } => {
            if w.pos + set.wire_len() + reply.answer_extra.bytes.len() > budget {
                truncated = true;
            } else {
                w.set(set, owner_ptr);
                w.put(reply.answer_extra.bytes);
                an = set.count + reply.answer_extra.count;
            }
        }
        Answer::Cname {
            ttl,
            prefix,
            suffix,
        } => {
            let rdlen = prefix.len() + suffix.len();
            debug_assert!(rdlen <= MAX_NAME_LEN, "resolve answers YXDOMAIN instead");
            if w.pos
                + COMPRESSED_QNAME.len()
                + RR_FIXED_LEN
                + rdlen
                + reply.answer_extra.bytes.len()
                > budget
            {
                truncated = true;
            } else {
                w.put(&COMPRESSED_QNAME);
                w.put(&Rtype::CNAME.to_int().to_be_bytes());
                w.put(&Class::IN.to_int().to_be_bytes());
                w.put(&ttl.to_be_bytes());
                w.put(&(rdlen as u16).to_be_bytes());
                w.put(prefix);
                w.put(suffix);
                w.put(reply.answer_extra.bytes);
                an = 1 + reply.answer_extra.count;
            }
        }
    }
    if let (false, Some((set, owner_ptr))) = (truncated, reply.authority) {
        if w.pos + set.wire_len() + reply.authority_extra.bytes.len() > budget {
            truncated = true;
        } else {
            w.set(set, owner_ptr);
            w.put(reply.authority_extra.bytes);
            ns = set.count + reply.authority_extra.count;
        }
    }
    if truncated {
        w.pos = truncate(w.out, after_question);
        an = 0;
        ns = 0;
    } else {
        for set in reply.additional {
            if w.pos + set.wire_len() <= budget {
                w.set(set, HEADER_LEN as u16);
                ar += set.count;
            }
        }
    }
    if let Some(opt) = &reply.opt {
        w.put(&opt.bytes());
        ar += 1;
    }
    let pos = w.pos;
    let out = w.out;
    out[ANCOUNT..ANCOUNT + 2].copy_from_slice(&an.to_be_bytes());
    out[NSCOUNT..NSCOUNT + 2].copy_from_slice(&ns.to_be_bytes());
    out[ARCOUNT..ARCOUNT + 2].copy_from_slice(&ar.to_be_bytes());
    Encoded {
        len: pos,
        answers: an,
        truncated,
    }
}
