//! Building UPDATE responses: header and zone section echoed from the request, the rcode,
//! and a TSIG record signing it when the request was validly signed (RFC 8945 §5.3).

use std::sync::Arc;

use domain::base::iana::{Rcode, TsigRcode};
use domain::base::{Message, MessageBuilder, Rtype};
use domain::rdata::tsig::Time48;
use domain::tsig::{Key, ServerError, ServerTransaction};

/// The signing state of a validly signed request.
pub(super) type Signer = ServerTransaction<Arc<Key>>;

/// `now` as a TSIG time (clamped to 48 bits: `Time48::from_u64` panics above).
pub(super) fn time48(now: u64) -> Time48 {
    Time48::from_u64(now.min((1 << 48) - 1))
}

/// The reply to an accepted update, built once the change is durable (or failed).
#[derive(Debug)]
pub struct PendingReply {
    request: Message<Vec<u8>>,
    signer: Box<Signer>,
}

impl PendingReply {
    pub(super) fn new(request: Message<Vec<u8>>, signer: Signer) -> PendingReply {
        PendingReply {
            request,
            signer: Box::new(signer),
        }
    }

    /// The request's ID.
    pub fn id(&self) -> u16 {
        self.request.header().id()
    }

    /// NOERROR, signed: the change is durable.
    pub fn success(self, now: u64) -> Vec<u8> {
        answer(&self.request, Some(*self.signer), Rcode::NOERROR, now)
    }

    /// `rcode` (SERVFAIL when the durable write failed), signed.
    pub fn failure(self, rcode: Rcode, now: u64) -> Vec<u8> {
        answer(&self.request, Some(*self.signer), rcode, now)
    }
}

/// The response to `request` with `rcode`, signed by `signer` when there is one.
pub(super) fn answer(
    request: &Message<Vec<u8>>,
    signer: Option<Signer>,
    rcode: Rcode,
    now: u64,
) -> Vec<u8> {
    let built = MessageBuilder::new_vec()
        .start_answer(request, rcode)
        .map(|a| a.additional());
    let Ok(mut add) = built else {
        return bare(request.as_slice(), rcode);
    };
    if let Some(signer) = signer {
        if signer.answer(&mut add, time48(now)).is_err() {
            return bare(request.as_slice(), Rcode::SERVFAIL);
        }
    }
    add.finish()
}

/// A header-only response to the message starting with `request` (at least 12 bytes), for
/// requests too broken to echo.
pub(super) fn bare(request: &[u8], rcode: Rcode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&request[..2]);
    // QR, the request's opcode, RD copied; RCODE.
    out[2] = 0x80 | (request[2] & 0x79);
    out[3] = rcode.to_int() & 0x0f;
    out
}

/// The error response domain builds for a TSIG failure, with one fix: domain 0.12 reports a
/// wrong MAC with the TSIG error FORMERR where RFC 8945 §5.2.2 says BADSIG; the record it
/// builds then is unsigned with empty other data, so the error field is the 4th and 3rd
/// bytes from the end, and is set to BADSIG there.
pub(super) fn tsig_error(
    err: ServerError<Arc<Key>>,
    request: &Message<Vec<u8>>,
) -> (Vec<u8>, TsigRcode) {
    let mut code = err.error();
    let built = err
        .build_message(request, MessageBuilder::new_vec())
        .map(|b| b.finish());
    let Ok(mut wire) = built else {
        return (bare(request.as_slice(), Rcode::SERVFAIL), code);
    };
    if code == TsigRcode::FORMERR && last_is_unsigned_notauth_tsig(&wire) {
        let n = wire.len();
        wire[n - 4..n - 2].copy_from_slice(&TsigRcode::BADSIG.to_int().to_be_bytes());
        code = TsigRcode::BADSIG;
    }
    (wire, code)
}

/// Whether `wire` is a NOTAUTH response ending with a TSIG record without MAC or other data.
fn last_is_unsigned_notauth_tsig(wire: &[u8]) -> bool {
    let Ok(msg) = Message::from_octets(wire) else {
        return false;
    };
    if msg.header().rcode() != Rcode::NOTAUTH {
        return false;
    }
    let Ok(section) = msg.additional() else {
        return false;
    };
    let Some(Ok(last)) = section.last() else {
        return false;
    };
    last.rtype() == Rtype::TSIG && wire.ends_with(&[0, 1, 0, 0]) && {
        // original id (2), error (2), other len (2) = 0: the error is 0x0001 (FORMERR).
        wire.len() >= 6 && wire[wire.len() - 6..wire.len() - 4] == msg.header().id().to_be_bytes()
    }
}
