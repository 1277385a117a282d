//! The reply to a query with DO in a signed zone: the unsigned reply, signed by this
//! worker's signer (`dnssec::sign`), then encoded. When the worker's miss limit is spent a
//! UDP query gets an empty truncated answer (its resolver retries over TCP, which a spoofed
//! flood cannot) and a TCP query SERVFAIL; both are counted.

use domain::base::iana::{OptRcode, Rcode};

use crate::dnssec::sign::{with_signer, Unsigned};
use crate::dnssec::zone::ZoneKeys;
use crate::resolve::Outcome;
use crate::snapshot::Snapshot;
use crate::wire::header::{FLAGS_HI, TC};
use crate::wire::{encode, Encoded, Reply, Request, Transport};
use crate::zone::Zone;

/// The signing keys for `outcome`'s answer to a query with `edns`: the zone's, when the
/// query has DO and the zone signs.
#[inline]
pub fn keys_for<'s>(
    outcome: &Outcome<'s>,
    edns: Option<crate::wire::Edns>,
) -> Option<(&'s Zone, &'s ZoneKeys)> {
    if !edns.is_some_and(|e| e.dnssec_ok) {
        return None;
    }
    let zone = outcome.zone()?;
    Some((zone, zone.dnssec.as_deref()?))
}

/// Signs and encodes `reply` (for `outcome`, to `req` whose lower-cased name is `name`);
/// returns what was written, the header rcode and the full rcode.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn encode_signed(
    snap: &Snapshot,
    zone: &Zone,
    keys: &ZoneKeys,
    outcome: &Outcome<'_>,
    reply: Reply<'_>,
    name: &[u8],
    req: &Request<'_>,
    out: &mut [u8],
    limit: usize,
    transport: Transport,
) -> (Encoded, Rcode, OptRcode) {
    let compact = req.edns.is_some_and(|e| e.compact_ok);
    with_signer(keys, |signer| {
        match signer.sign_reply(snap, zone, outcome, &reply, name, compact) {
            Ok(signed) => {
                let (answer_extra, authority_extra) = signer.extras(&signed);
                let mut r = reply;
                r.answer_extra = answer_extra;
                r.authority_extra = authority_extra;
                r.rcode = signed.rcode;
                if let Some(opt) = &mut r.opt {
                    opt.compact_ok = compact;
                }
                let e = encode(out, req, &r, limit);
                (e, r.rcode, OptRcode::from_rcode(r.rcode))
            }
            Err(why) => {
                let limited_udp = why == Unsigned::Limited && transport == Transport::Udp;
                let rcode = if limited_udp {
                    reply.rcode
                } else {
                    Rcode::SERVFAIL
                };
                let r = super::reply::empty(rcode, limited_udp && reply.authoritative, reply.opt);
                let mut e = encode(out, req, &r, limit);
                if limited_udp {
                    out[FLAGS_HI] |= TC;
                    e.truncated = true;
                }
                (e, rcode, OptRcode::from_rcode(rcode))
            }
        }
    })
}
