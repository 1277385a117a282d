//! From an [`Outcome`] to the codec's [`Reply`]: which records go in which section, with
//! which owner pointers (the query name at offset 12, or the zone apex inside it). A
//! cluster's answer with more addresses than it carries (`max_answers`) is one of its
//! precomputed weighted picks, chosen here at random per query (`health::pick`): the only
//! randomness of the query path.

use domain::base::iana::Rcode;

use crate::health::pick;
use crate::resolve::Outcome;
use crate::wire::header::HEADER_LEN;
use crate::wire::rrset::Owner;
use crate::wire::{Answer, Raw, Reply, ResponseOpt};
use crate::zone::Zone;

/// The reply for `outcome` to the question whose lower-cased name is `name`. A hit with
/// picks gets one of them, chosen with this thread's random numbers ([`pick::random`]).
#[inline(always)]
pub fn for_outcome<'a>(
    outcome: &Outcome<'a>,
    name: &'a [u8],
    opt: Option<ResponseOpt>,
) -> Reply<'a> {
    // The apex's offset inside the question name.
    let apex_ptr = |zone: &Zone| (HEADER_LEN + name.len() - zone.apex.wire().len()) as u16;
    let mut reply = Reply {
        rcode: outcome.rcode(),
        authoritative: outcome.is_authoritative(),
        answer: Answer::None,
        answer_extra: Raw::NONE,
        authority: None,
        authority_extra: Raw::NONE,
        additional: &[],
        opt,
    };
    match *outcome {
        Outcome::Hit {
            zone,
            answer,
            additional,
            picks,
        } => {
            let owner_ptr = match answer.owner {
                Owner::Apex => apex_ptr(zone),
                Owner::Query | Owner::Inline => HEADER_LEN as u16,
            };
            let set = if picks.is_empty() {
                answer
            } else {
                picks
                    .get(pick::index(pick::random(), picks.len()))
                    .unwrap_or(answer)
            };
            reply.answer = Answer::Set { set, owner_ptr };
            reply.additional = additional;
        }
        Outcome::AcmeCname { zone, .. } => {
            if let Some((prefix, target)) = outcome.acme_target(name) {
                reply.answer = Answer::Cname {
                    ttl: zone.ttl,
                    prefix,
                    suffix: target.wire(),
                };
            }
        }
        Outcome::NoData { zone } | Outcome::NxDomain { zone } => {
            reply.authority = Some((&zone.soa_negative, apex_ptr(zone)));
        }
        Outcome::YxDomain { .. }
        | Outcome::Refused
        | Outcome::NotImp
        | Outcome::FormErr
        | Outcome::ServFail => {}
    }
    reply
}

/// The reply to a query with an EDNS version this server does not speak: no records, not
/// authoritative, BADVERS in the OPT record (`opt`).
#[inline]
pub fn bad_version(opt: Option<ResponseOpt>) -> Reply<'static> {
    empty(Rcode::NOERROR, false, opt)
}

/// A reply with `rcode` and no records but the OPT record `opt`.
#[inline]
pub fn empty(rcode: Rcode, authoritative: bool, opt: Option<ResponseOpt>) -> Reply<'static> {
    Reply {
        rcode,
        authoritative,
        answer: Answer::None,
        answer_extra: Raw::NONE,
        authority: None,
        authority_extra: Raw::NONE,
        additional: &[],
        opt,
    }
}
