//! EDNS policy (RFC 6891): the response size a query allows over its transport, the version
//! check (BADVERS), and the OPT record the response carries.

use domain::base::iana::OptRcode;

use crate::wire::header::CLASSIC_UDP_LIMIT;
use crate::wire::{Edns, Request, ResponseOpt, Transport};

/// The largest response allowed for `req` over `transport` when this server's UDP payload
/// size is `payload`: 512 bytes without EDNS, the client's size clamped to 512..=`payload`
/// with it, 65535 over TCP.
#[inline]
pub fn size_limit(req: &Request<'_>, transport: Transport, payload: u16) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match req.edns {
            Some(e) => usize::from(
                e.udp_size
                    .clamp(CLASSIC_UDP_LIMIT, payload.max(CLASSIC_UDP_LIMIT)),
            ),
            None => usize::from(CLASSIC_UDP_LIMIT),
        },
    }
}

/// Whether the query asks for an EDNS version this server does not speak (only 0).
#[inline]
pub fn bad_version(edns: Option<Edns>) -> bool {
    edns.is_some_and(|e| e.version > 0)
}

/// The response's OPT record for a query with `edns`: this server's payload size, BADVERS
/// when the version is not 0, DO echoed. None without EDNS.
#[inline]
pub fn response_opt(edns: Option<Edns>, payload: u16) -> Option<ResponseOpt> {
    edns.map(|e| ResponseOpt {
        payload,
        ext_rcode: if e.version > 0 {
            OptRcode::BADVERS.to_int()
        } else {
            0
        },
        dnssec_ok: e.dnssec_ok,
        compact_ok: false,
    })
}
