//! EDNS(0) (RFC 6891) in the codec: the OPT record of a query read into [`Edns`], and the OPT
//! record of a response ([`ResponseOpt`]) written. What to do with them (version check, size
//! limits) is the query layer's.

use domain::base::opt::Opt;
use domain::base::ParsedRecord;

use crate::wire::header::{EXT_RCODE_SHIFT, OPT_CO, OPT_DO, OPT_VERSION_SHIFT};

/// The EDNS(0) parameters of a query. Options (client subnet, cookies, padding) are not read
/// yet; they will be fields here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The requester's UDP payload size (the OPT record's class).
    pub udp_size: u16,
    pub version: u8,
    /// DO: DNSSEC OK (RFC 3225).
    pub dnssec_ok: bool,
    /// CO: compact answers OK (RFC 9824): a compact denial may say NXDOMAIN.
    pub compact_ok: bool,
}

impl Edns {
    /// Reads an OPT record (already known to be one, owned by the root); `None` when its
    /// options are malformed.
    #[inline]
    pub(crate) fn from_record(record: &ParsedRecord<'_, [u8]>) -> Option<Edns> {
        record.to_record::<Opt<_>>().ok()??;
        let ttl = record.ttl().as_secs();
        Some(Edns {
            udp_size: record.class().to_int(),
            version: (ttl >> OPT_VERSION_SHIFT) as u8,
            dnssec_ok: ttl & (u32::from(OPT_DO) << 8) != 0,
            compact_ok: ttl & (u32::from(OPT_CO) << 8) != 0,
        })
    }
}

/// The OPT record of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseOpt {
    /// The UDP payload size this server advertises.
    pub payload: u16,
    /// The extended rcode's full value (its low 4 bits go in the header, not here).
    pub ext_rcode: u16,
    pub dnssec_ok: bool,
    /// CO echoed: set on signed answers to queries with CO (RFC 9824).
    pub compact_ok: bool,
}

impl ResponseOpt {
    /// The record's bytes ([`crate::wire::header::OPT_LEN`] of them).
    #[inline]
    pub(crate) fn bytes(&self) -> [u8; crate::wire::header::OPT_LEN] {
        let [p0, p1] = self.payload.to_be_bytes();
        let [t0, t1] = domain::base::iana::Rtype::OPT.to_int().to_be_bytes();
        let ext = (self.ext_rcode >> EXT_RCODE_SHIFT) as u8;
        let flags =
            if self.dnssec_ok { OPT_DO } else { 0 } | if self.compact_ok { OPT_CO } else { 0 };
        // Root owner; type; class: payload; TTL: extended rcode, version 0, flags; no rdata.
        [0, t0, t1, p0, p1, ext, 0, flags, 0, 0, 0]
    }
}
