//! DNS UPDATE (RFC 2136) authenticated by TSIG (RFC 8945), for ACME DNS-01 challenge TXT
//! records: a pure function from a request to a [`Decision`], with no I/O and no global state.
//!
//! [`process`] checks, in order: the header (responses and short messages are dropped; other
//! opcodes get NOTIMP), the TSIG signature (`domain::tsig`; unsigned: REFUSED; unknown key:
//! NOTAUTH/BADKEY; wrong MAC: NOTAUTH/BADSIG; clock off by more than the fudge:
//! NOTAUTH/BADTIME, signed, with the server's time), the key's rate, the zone section
//! (RFC 2136 §3.1), the prerequisites (§3.2), the update section's format (§3.4.1), the
//! key's grants and the type (only TXT at `_acme-challenge.` names the key's patterns match,
//! whose owner exists), and the limits. Every reply to a validly signed request is signed.
//!
//! An accepted update yields [`Op`]s for the records store to write durably, and a
//! [`PendingReply`] the server sends once that write is done (or failed: SERVFAIL).

mod engine;
pub mod keys;
pub mod pattern;
pub mod policy;
mod reply;
pub mod service;
pub mod view;

#[cfg(test)]
mod tests;

use domain::base::iana::{Rcode, TsigRcode};
use domain::base::Message;
use domain::tsig::ServerTransaction;

use crate::name::DomainName;

pub use keys::{KeyFileError, Keys, NamedKey};
pub use pattern::NamePattern;
pub use policy::{Grant, Limits, RateLimiter, UpdatePolicy};
pub use reply::PendingReply;
pub use view::{MemView, UpdateView};

/// One change to the challenge records. Values are the text of one TXT character-string
/// (1 to `max_value_len` bytes, e.g. the 43-byte ACME key authorization digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add `value` to the TXT RRset at `name` (already there: no change, but the store may
    /// restart its expiry).
    Add { name: DomainName, value: Vec<u8> },
    /// Delete `value` from the TXT RRset at `name` (absent: no change).
    DeleteValue { name: DomainName, value: Vec<u8> },
    /// Delete the TXT RRset at `name`.
    DeleteRrset { name: DomainName },
    /// Delete every RRset at `name` (only challenge TXT can be there).
    DeleteName { name: DomainName },
}

impl Op {
    /// The name the op changes.
    pub fn name(&self) -> &DomainName {
        match self {
            Op::Add { name, .. }
            | Op::DeleteValue { name, .. }
            | Op::DeleteRrset { name }
            | Op::DeleteName { name } => name,
        }
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Write `ops` durably (in order, all or none), then send `reply.success(now)`, or
    /// `reply.failure(Rcode::SERVFAIL, now)` when the write failed. Never empty.
    Apply {
        /// The key that signed the request (lower-case, no trailing dot): the records' holder.
        key: String,
        /// The zone's apex.
        zone: DomainName,
        ops: Vec<Op>,
        reply: PendingReply,
    },
    /// Send this reply: a refusal, or NOERROR for an update with nothing to change.
    Reply(Reply),
    /// Send nothing (a response, or fewer than 12 bytes).
    Drop,
}

/// A reply decided without writing anything.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The response, signed when the request was validly signed.
    pub wire: Vec<u8>,
    pub rcode: Rcode,
    /// The TSIG error (BADKEY, BADSIG, BADTIME) when the signature failed.
    pub tsig_error: Option<TsigRcode>,
    /// The key that validly signed the request.
    pub key: Option<String>,
    /// Why, for the log (never a secret).
    pub reason: String,
}

impl Reply {
    /// A short label for metrics: `noerror`, `refused`, `ratelimited`, `formerr`, `notauth`,
    /// `notzone`, `notimp`, `nxdomain`, `yxdomain`, `nxrrset`, `yxrrset`, `badkey`, `badsig`,
    /// `badtime`, `servfail`.
    pub fn result(&self) -> &'static str {
        match self.tsig_error {
            Some(TsigRcode::BADKEY) => return "badkey",
            Some(TsigRcode::BADSIG) => return "badsig",
            Some(TsigRcode::BADTIME) => return "badtime",
            _ => {}
        }
        if self.reason.starts_with(engine::RATE_REASON) {
            return "ratelimited";
        }
        match self.rcode {
            Rcode::NOERROR => "noerror",
            Rcode::FORMERR => "formerr",
            Rcode::SERVFAIL => "servfail",
            Rcode::NXDOMAIN => "nxdomain",
            Rcode::NOTIMP => "notimp",
            Rcode::REFUSED => "refused",
            Rcode::YXDOMAIN => "yxdomain",
            Rcode::YXRRSET => "yxrrset",
            Rcode::NXRRSET => "nxrrset",
            Rcode::NOTAUTH => "notauth",
            Rcode::NOTZONE => "notzone",
            _ => "other",
        }
    }
}

/// Decides what to do with the UPDATE request `msg` received at `now` (Unix seconds),
/// reading the current state through `view`. Logs each refusal (INFO when validly signed,
/// DEBUG otherwise) with its reason; never a secret.
pub fn process(
    view: &impl UpdateView,
    keys: &Keys,
    policy: &UpdatePolicy,
    msg: &[u8],
    now: u64,
    limiter: &mut RateLimiter,
) -> Decision {
    let decision = decide(view, keys, policy, msg, now, limiter);
    if let Decision::Reply(r) = &decision {
        if r.rcode != Rcode::NOERROR {
            match &r.key {
                Some(key) => {
                    tracing::info!(key = %key, rcode = %r.rcode, "UPDATE refused: {}", r.reason)
                }
                None => tracing::debug!(rcode = %r.rcode, "UPDATE refused: {}", r.reason),
            }
        }
    }
    decision
}

fn decide(
    view: &impl UpdateView,
    keys: &Keys,
    policy: &UpdatePolicy,
    msg: &[u8],
    now: u64,
    limiter: &mut RateLimiter,
) -> Decision {
    if msg.len() < 12 || msg[2] & 0x80 != 0 {
        return Decision::Drop;
    }
    let unsigned = |wire, rcode, reason: &str| {
        Decision::Reply(Reply {
            wire,
            rcode,
            tsig_error: None,
            key: None,
            reason: reason.to_string(),
        })
    };
    if (msg[2] >> 3) & 0x0f != 5 {
        return unsigned(
            reply::bare(msg, Rcode::NOTIMP),
            Rcode::NOTIMP,
            "not an UPDATE",
        );
    }
    let Ok(mut request) = Message::from_octets(msg.to_vec()) else {
        return Decision::Drop;
    };
    let signer = match ServerTransaction::request(keys, &mut request, reply::time48(now)) {
        Ok(Some(signer)) => signer,
        Ok(None) => {
            return unsigned(
                reply::answer(&request, None, Rcode::REFUSED, now),
                Rcode::REFUSED,
                "not signed with a TSIG key",
            )
        }
        Err(err) => {
            let (wire, code) = reply::tsig_error(err, &request);
            let rcode = Message::from_octets(&wire[..])
                .map(|m| m.header().rcode())
                .unwrap_or(Rcode::SERVFAIL);
            let tsig_error = (code != TsigRcode::FORMERR).then_some(code);
            return Decision::Reply(Reply {
                wire,
                rcode,
                tsig_error,
                key: None,
                reason: format!("TSIG check failed: {code}"),
            });
        }
    };
    let key = keys::key_name_text(signer.key().name());
    let signed = |request: &Message<Vec<u8>>, signer, rcode, reason: String, key: &str| {
        Decision::Reply(Reply {
            wire: reply::answer(request, Some(signer), rcode, now),
            rcode,
            tsig_error: None,
            key: Some(key.to_string()),
            reason,
        })
    };
    if !limiter.allow(&key, now) {
        let reason = format!(
            "{} ({} a second, burst {})",
            engine::RATE_REASON,
            policy.limits.rate,
            policy.limits.burst
        );
        return signed(&request, signer, Rcode::REFUSED, reason, &key);
    }
    match engine::check(view, policy, &key, &request) {
        Ok((_, ops)) if ops.is_empty() => signed(
            &request,
            signer,
            Rcode::NOERROR,
            "nothing to change".into(),
            &key,
        ),
        Ok((zone, ops)) => Decision::Apply {
            key,
            zone,
            ops,
            reply: PendingReply::new(request, signer),
        },
        Err((rcode, reason)) => signed(&request, signer, rcode, reason, &key),
    }
}
