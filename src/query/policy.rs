//! What this server answers at all, before looking anything up (Knot's `process_query`
//! checks): responses and runts are dropped, opcodes other than QUERY get NOTIMP, malformed
//! queries FORMERR; questions of another class than IN, zone transfers and meta types are
//! refused or rejected without a lookup. UPDATE (opcode 5) is handed on, not answered here,
//! when the server accepts updates ([`Policy`]).

use domain::base::iana::{Class, Opcode, Rcode, Rtype};

use crate::resolve::{Outcome, Question};
use crate::wire::{Decoded, ErrorHeader};

/// What a server accepts besides queries, as its workers hold it (a copy per packet costs
/// nothing: it is one flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// UPDATE messages are handed to the update thread instead of getting NOTIMP.
    pub updates: bool,
}

impl Policy {
    /// Queries only: every other opcode gets NOTIMP.
    pub const QUERIES_ONLY: Policy = Policy { updates: false };
    /// Queries answered, UPDATE messages handed on.
    pub const UPDATES: Policy = Policy { updates: true };
}

/// Whether `decoded` is an UPDATE message that `policy` hands on rather than rejects.
#[inline]
pub fn hands_on(decoded: &Decoded<'_>, policy: Policy) -> bool {
    policy.updates && matches!(decoded, Decoded::OtherOpcode(h) if h.opcode == Opcode::UPDATE)
}

/// The header checks, for a packet that is not a well-formed query (`Decoded::Query` is
/// answered and passes through `None`, as does what is dropped): the header-only error to
/// send, or `None` to send nothing. (The query itself is not moved through here: copying it
/// costs more than the check.)
#[inline]
pub fn reject(decoded: &Decoded<'_>) -> Option<(ErrorHeader, Rcode)> {
    match *decoded {
        Decoded::Malformed(h) => Some((h, Rcode::FORMERR)),
        Decoded::OtherOpcode(h) => Some((h, Rcode::NOTIMP)),
        Decoded::Query(_) | Decoded::Response | Decoded::Runt => None,
    }
}

/// The outcome of a question this server does not look up, if it is one: a class other than
/// IN or a zone transfer is refused, OPT as a type is FORMERR, MAILA, MAILB, TKEY and TSIG are
/// not implemented.
#[inline]
pub fn screen(q: &Question<'_>) -> Option<Outcome<'static>> {
    if q.qclass != Class::IN {
        return Some(Outcome::Refused);
    }
    match q.qtype {
        Rtype::AXFR | Rtype::IXFR => Some(Outcome::Refused),
        Rtype::OPT => Some(Outcome::FormErr),
        Rtype::MAILA | Rtype::MAILB | Rtype::TKEY | Rtype::TSIG => Some(Outcome::NotImp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screened(qtype: Rtype, qclass: Class) -> Option<Outcome<'static>> {
        screen(&Question {
            name: b"\x07repl\x02co\x00",
            qtype,
            qclass,
        })
    }

    #[test]
    fn classes_transfers_and_meta_types() {
        assert_eq!(screened(Rtype::A, Class::IN), None);
        assert_eq!(screened(Rtype::ANY, Class::IN), None);
        assert_eq!(screened(Rtype::A, Class::CH), Some(Outcome::Refused));
        assert_eq!(screened(Rtype::A, Class::ANY), Some(Outcome::Refused));
        assert_eq!(screened(Rtype::AXFR, Class::IN), Some(Outcome::Refused));
        assert_eq!(screened(Rtype::IXFR, Class::IN), Some(Outcome::Refused));
        assert_eq!(screened(Rtype::MAILB, Class::IN), Some(Outcome::NotImp));
        assert_eq!(screened(Rtype::TSIG, Class::IN), Some(Outcome::NotImp));
        assert_eq!(screened(Rtype::OPT, Class::IN), Some(Outcome::FormErr));
    }
}
