//! Encoding responses from pre-encoded bytes: header, the query's own question (case kept),
//! then the outcome's records with their owners as compression pointers into that question.
//!
//! A UDP response never exceeds the client's limit (512 bytes without EDNS): when the answer
//! or authority does not fit, the response is sent with TC set and no records (as Knot does);
//! additional records that do not fit are left out.

use crate::name::MAX_NAME_LEN;
use crate::resolve::{acme_target_prefix, Outcome};
use crate::rrset::{rtype, RrSet, CLASS_IN};
use crate::wire::decode::{ErrorHeader, Request};

const QR: u8 = 0x80;
const AA: u8 = 0x04;
const TC: u8 = 0x02;
const RD: u8 = 0x01;
const CD: u8 = 0x10;

/// The extended RCODE BADVERS (RFC 6891): 16, i.e. upper bits 1 in the OPT record.
pub const BADVERS: u16 = 16;

/// Bytes of the OPT record this server appends.
const OPT_LEN: usize = 11;

/// The smallest buffer `encode` may be given: a header, the longest question and an OPT.
pub const MIN_BUFFER: usize = 12 + 255 + 4 + OPT_LEN;

/// Writes a header-only error response (FORMERR, NOTIMP) and returns its length.
pub fn encode_error(out: &mut [u8], h: &ErrorHeader, rcode: u8) -> usize {
    out[..12].fill(0);
    out[..2].copy_from_slice(&h.id.to_be_bytes());
    out[2] = QR | (h.opcode & 0x0f) << 3 | if h.rd { RD } else { 0 };
    out[3] = rcode & 0x0f | if h.cd { CD } else { 0 };
    12
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

/// Writes the response to `req` for `outcome` and returns its length.
///
/// `name` is the lower-cased question name (for the CNAME target); `limit` is the largest
/// response allowed (the transport's and the client's limit, at least 512); `payload` is the
/// UDP size this server advertises in its OPT record. `out` must hold at least `limit` bytes
/// and at least [`MIN_BUFFER`].
pub fn encode(
    out: &mut [u8],
    req: &Request<'_>,
    name: &[u8],
    outcome: &Outcome<'_>,
    limit: usize,
    payload: u16,
) -> usize {
    let opt_len = if req.edns.is_some() { OPT_LEN } else { 0 };
    let limit = limit.min(out.len()).max(MIN_BUFFER.min(out.len()));
    let mut w = Writer { out, pos: 0 };
    // Header: counts are filled in below.
    w.put(&req.id.to_be_bytes());
    let authoritative = crate::wire::is_authoritative(outcome);
    let badvers = req.edns.is_some_and(|e| e.version > 0);
    let rcode = if badvers { 0 } else { outcome.rcode() };
    w.put(&[
        QR | if req.rd { RD } else { 0 } | if authoritative && !badvers { AA } else { 0 },
        rcode | if req.cd { CD } else { 0 },
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    w.put(req.question);
    let after_question = w.pos;
    let budget = limit - opt_len;
    let (mut an, mut ns, mut ar) = (0u16, 0u16, 0u16);
    let mut truncated = false;

    if !badvers {
        let apex_ptr = |zone: &crate::zone::Zone| (12 + name.len() - zone.apex.wire().len()) as u16;
        match *outcome {
            Outcome::Hit {
                zone,
                answer,
                additional,
            } => {
                if w.pos + answer.wire_len() > budget {
                    truncated = true;
                } else {
                    let ptr = match answer.owner {
                        crate::rrset::Owner::Apex => apex_ptr(zone),
                        _ => 12,
                    };
                    w.set(answer, ptr);
                    an = answer.count;
                    for set in additional {
                        if w.pos + set.wire_len() <= budget {
                            w.set(set, 12);
                            ar += set.count;
                        }
                    }
                }
            }
            Outcome::AcmeCname { zone, target_zone } => {
                let prefix = acme_target_prefix(name);
                let rdlen = prefix.len() + target_zone.wire().len();
                debug_assert!(rdlen <= MAX_NAME_LEN, "resolve answers YXDOMAIN instead");
                if w.pos + 12 + rdlen > budget {
                    truncated = true;
                } else {
                    w.put(&[0xC0, 12]);
                    w.put(&rtype::CNAME.to_be_bytes());
                    w.put(&CLASS_IN.to_be_bytes());
                    w.put(&zone.ttl.to_be_bytes());
                    w.put(&(rdlen as u16).to_be_bytes());
                    w.put(prefix);
                    w.put(target_zone.wire());
                    an = 1;
                }
            }
            Outcome::NoData { zone } | Outcome::NxDomain { zone } => {
                if w.pos + zone.soa_negative.wire_len() > budget {
                    truncated = true;
                } else {
                    w.set(&zone.soa_negative, apex_ptr(zone));
                    ns = 1;
                }
            }
            Outcome::YxDomain { .. }
            | Outcome::Refused
            | Outcome::NotImp
            | Outcome::FormErr
            | Outcome::ServFail => {}
        }
    }
    if truncated {
        w.pos = after_question;
        w.out[2] |= TC;
    }
    if let Some(edns) = req.edns {
        w.put(&[0, 0, 41]);
        w.put(&payload.to_be_bytes());
        let ext_rcode = if badvers { (BADVERS >> 4) as u8 } else { 0 };
        let flags: u8 = if edns.dnssec_ok { 0x80 } else { 0 };
        w.put(&[ext_rcode, 0, flags, 0, 0, 0]);
        ar += 1;
    }
    let pos = w.pos;
    let out = w.out;
    out[6..8].copy_from_slice(&an.to_be_bytes());
    out[8..10].copy_from_slice(&ns.to_be_bytes());
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    pos
}
