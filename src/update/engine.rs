//! The RFC 2136 rules on a request whose signature is already checked: zone section (§3.1),
//! prerequisites (§3.2), update section format (§3.4.1), then the key's grants, the type and
//! the limits. Yields the ops, or the rcode and reason of a refusal.

use std::collections::HashMap;

use domain::base::iana::{Class, Rcode, Rtype};
use domain::base::{Message, ToName};
use domain::rdata::Txt;

use super::pattern::CHALLENGE_LABEL;
use super::{Op, UpdatePolicy, UpdateView};
use crate::name::DomainName;

/// How a rate-limited refusal's reason starts.
pub(super) const RATE_REASON: &str = "over the key's update rate";

type Refusal = (Rcode, String);

fn formerr(what: impl std::fmt::Display) -> Refusal {
    (Rcode::FORMERR, what.to_string())
}

/// The name as a [`DomainName`] (lower-case, uncompressed).
fn dname<N: ToName>(name: &N) -> Result<DomainName, Refusal> {
    DomainName::from_wire(name.to_vec().as_slice()).map_err(formerr)
}

/// Types that only exist in queries or as pseudo-records (RFC 2136 §3.4.1.2 and RFC 8945).
fn is_meta(t: Rtype) -> bool {
    [
        Rtype::ANY,
        Rtype::AXFR,
        Rtype::IXFR,
        Rtype::MAILA,
        Rtype::MAILB,
        Rtype::OPT,
        Rtype::TSIG,
        Rtype::TKEY,
    ]
    .contains(&t)
}

/// The text of TXT RDATA holding exactly one character-string; `Err(true)` when the RDATA is
/// malformed, `Err(false)` when it holds several (or no) strings.
fn single_string(rdata: &[u8]) -> Result<&[u8], bool> {
    let mut pos = 0;
    let mut count = 0;
    while pos < rdata.len() {
        let len = usize::from(rdata[pos]);
        if pos + 1 + len > rdata.len() {
            return Err(true);
        }
        pos += 1 + len;
        count += 1;
    }
    if count != 1 {
        return Err(false);
    }
    Ok(&rdata[1..])
}

/// TXT RDATA for a value of one character-string.
fn rdata_of(value: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(value.len()).ok()?;
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(len);
    out.extend_from_slice(value);
    Some(out)
}

/// `name` less its first label.
fn parent(name: &DomainName) -> Option<DomainName> {
    let wire = name.wire();
    let first = usize::from(*wire.first()?);
    if first == 0 {
        return None;
    }
    DomainName::from_wire(&wire[1 + first..]).ok()
}

/// One record of a section, owned.
struct Rr {
    name: DomainName,
    rtype: Rtype,
    class: Class,
    ttl: u32,
    rdlen: u16,
    rdata: Vec<u8>,
}

fn records(msg: &Message<Vec<u8>>, section: &str, authority: bool) -> Result<Vec<Rr>, Refusal> {
    let parsed = if authority {
        msg.authority()
    } else {
        msg.answer()
    };
    let parsed = parsed.map_err(|e| formerr(format!("{section} section: {e}")))?;
    let mut out = Vec::new();
    for rr in parsed {
        let rr = rr.map_err(|e| formerr(format!("{section} section: {e}")))?;
        // Only TXT data is ever read: kept in canonical form (each character-string with its
        // length byte), empty for every other type (whose length `rdlen` tells).
        let mut rdata = Vec::new();
        if rr.rtype() == Rtype::TXT && rr.rdlen() > 0 {
            let rec = rr
                .to_record::<Txt<&[u8]>>()
                .map_err(|e| formerr(format!("{section} section: {e}")))?
                .ok_or_else(|| formerr(format!("{section} section: bad TXT data")))?;
            for s in rec.data().iter() {
                rdata.push(s.len() as u8);
                rdata.extend_from_slice(s);
            }
        }
        out.push(Rr {
            rdlen: rr.rdlen(),
            name: dname(&rr.owner())?,
            rtype: rr.rtype(),
            class: rr.class(),
            ttl: rr.ttl().as_secs(),
            rdata,
        });
    }
    Ok(out)
}

/// Checks the request; the zone and the ops on success.
pub(super) fn check(
    view: &impl UpdateView,
    policy: &UpdatePolicy,
    key: &str,
    req: &Message<Vec<u8>>,
) -> Result<(DomainName, Vec<Op>), Refusal> {
    // §3.1: the zone section.
    let zcount = req.header_counts().qdcount();
    if zcount != 1 {
        return Err(formerr(format!(
            "the zone section holds {zcount} entries, not 1"
        )));
    }
    let zq = match req.question().next() {
        Some(Ok(q)) => q,
        Some(Err(e)) => return Err(formerr(format!("zone section: {e}"))),
        None => return Err(formerr("no zone section")),
    };
    if zq.qtype() != Rtype::SOA {
        return Err(formerr(format!(
            "the zone section's type is {}, not SOA",
            zq.qtype()
        )));
    }
    let zone = dname(zq.qname())?;
    if zq.qclass() != Class::IN || !view.serves_zone(&zone) {
        return Err((
            Rcode::NOTAUTH,
            format!("not authoritative for zone {zone} class {}", zq.qclass()),
        ));
    }
    if !view.challenges_direct(&zone) {
        return Err((
            Rcode::REFUSED,
            format!("zone {zone} delegates its challenges by CNAME"),
        ));
    }

    // §3.2: prerequisites, against the state before the update.
    let prereqs = records(req, "prerequisite", false)?;
    let mut value_dependent: Vec<(&DomainName, Rtype, &[u8])> = Vec::new();
    for rr in &prereqs {
        if rr.ttl != 0 {
            return Err(formerr(format!("prerequisite for {} has a TTL", rr.name)));
        }
        if !rr.name.ends_with(&zone) {
            return Err((
                Rcode::NOTZONE,
                format!("prerequisite name {} is outside zone {zone}", rr.name),
            ));
        }
        let exists = |t: Rtype| {
            (t == Rtype::TXT && !view.txt_values(&rr.name).is_empty())
                || view.rrset_exists(&rr.name, t.to_int())
        };
        if rr.class == Class::ANY || rr.class == Class::NONE {
            if rr.rdlen != 0 {
                return Err(formerr(format!("prerequisite for {} has data", rr.name)));
            }
            let want = rr.class == Class::ANY;
            if rr.rtype == Rtype::ANY {
                if view.name_in_use(&rr.name) != want {
                    return Err(if want {
                        (
                            Rcode::NXDOMAIN,
                            format!("prerequisite failed: {} is not in use", rr.name),
                        )
                    } else {
                        (
                            Rcode::YXDOMAIN,
                            format!("prerequisite failed: {} is in use", rr.name),
                        )
                    });
                }
            } else if is_meta(rr.rtype) {
                return Err(formerr(format!("prerequisite of type {}", rr.rtype)));
            } else if exists(rr.rtype) != want {
                return Err(if want {
                    (
                        Rcode::NXRRSET,
                        format!("prerequisite failed: no {} RRset at {}", rr.rtype, rr.name),
                    )
                } else {
                    (
                        Rcode::YXRRSET,
                        format!(
                            "prerequisite failed: a {} RRset is at {}",
                            rr.rtype, rr.name
                        ),
                    )
                });
            }
        } else if rr.class == Class::IN {
            if is_meta(rr.rtype) {
                return Err(formerr(format!("prerequisite of type {}", rr.rtype)));
            }
            value_dependent.push((&rr.name, rr.rtype, &rr.rdata));
        } else {
            return Err(formerr(format!("prerequisite of class {}", rr.class)));
        }
    }
    // "RRset exists (value dependent)": the RRset must be exactly the set given. Only
    // challenge TXT values can be compared; any other type fails.
    let mut groups: Vec<(&DomainName, Rtype, Vec<&[u8]>)> = Vec::new();
    for (name, t, rdata) in value_dependent {
        match groups.iter_mut().find(|g| g.0 == name && g.1 == t) {
            Some(g) => g.2.push(rdata),
            None => groups.push((name, t, vec![rdata])),
        }
    }
    for (name, t, mut given) in groups {
        given.sort();
        given.dedup();
        let mut current: Vec<Vec<u8>> = if t == Rtype::TXT {
            view.txt_values(name)
                .iter()
                .filter_map(|v| rdata_of(v))
                .collect()
        } else {
            Vec::new()
        };
        current.sort();
        current.dedup();
        if current.is_empty()
            || given.len() != current.len()
            || given.iter().zip(&current).any(|(a, b)| *a != &b[..])
        {
            return Err((
                Rcode::NXRRSET,
                format!("prerequisite failed: the {t} RRset at {name} differs"),
            ));
        }
    }

    // §3.4.1: the update section's format.
    let updates = records(req, "update", true)?;
    for rr in &updates {
        if !rr.name.ends_with(&zone) {
            return Err((
                Rcode::NOTZONE,
                format!("update name {} is outside zone {zone}", rr.name),
            ));
        }
        let bad = if rr.class == Class::IN {
            is_meta(rr.rtype)
        } else if rr.class == Class::ANY {
            rr.ttl != 0 || rr.rdlen != 0 || (is_meta(rr.rtype) && rr.rtype != Rtype::ANY)
        } else if rr.class == Class::NONE {
            rr.ttl != 0 || is_meta(rr.rtype)
        } else {
            true
        };
        if bad {
            return Err(formerr(format!(
                "malformed update for {} (class {}, type {})",
                rr.name, rr.class, rr.rtype
            )));
        }
    }

    // The key's grants, the type, the values.
    let limits = &policy.limits;
    let mut ops = Vec::with_capacity(updates.len());
    for rr in updates {
        let name = rr.name;
        if name.labels().next() != Some(CHALLENGE_LABEL) || !policy.allows(key, &name) {
            return Err((Rcode::REFUSED, format!("key {key} may not change {name}")));
        }
        if rr.class == Class::ANY && rr.rtype == Rtype::ANY {
            ops.push(Op::DeleteName { name });
            continue;
        }
        if rr.rtype != Rtype::TXT {
            return Err((
                Rcode::REFUSED,
                format!("{name}: only TXT records may be updated, not {}", rr.rtype),
            ));
        }
        if rr.class == Class::ANY {
            ops.push(Op::DeleteRrset { name });
            continue;
        }
        let value = match single_string(&rr.rdata) {
            Ok(v) => v.to_vec(),
            Err(true) => return Err(formerr(format!("malformed TXT data for {name}"))),
            Err(false) => {
                return Err((
                    Rcode::REFUSED,
                    format!("{name}: a TXT value must be one character-string"),
                ))
            }
        };
        if rr.class == Class::NONE {
            ops.push(Op::DeleteValue { name, value });
            continue;
        }
        if value.is_empty() || value.len() > limits.max_value_len {
            return Err((
                Rcode::REFUSED,
                format!(
                    "{name}: a TXT value of {} bytes (1 to {} allowed)",
                    value.len(),
                    limits.max_value_len
                ),
            ));
        }
        let owner_ok = parent(&name).is_some_and(|o| o.ends_with(&zone) && view.owner_exists(&o));
        if !owner_ok {
            return Err((
                Rcode::REFUSED,
                format!("{name}: no such name to hold a challenge for"),
            ));
        }
        ops.push(Op::Add { name, value });
    }

    // The limits, on the state the ops would leave.
    let mut after: HashMap<&DomainName, (bool, Vec<Vec<u8>>)> = HashMap::new();
    for op in &ops {
        let entry = after.entry(op.name()).or_insert_with(|| {
            let now = view.txt_values(op.name());
            (!now.is_empty(), now)
        });
        match op {
            Op::Add { value, .. } => {
                if !entry.1.contains(value) {
                    entry.1.push(value.clone());
                }
            }
            Op::DeleteValue { value, .. } => entry.1.retain(|v| v != value),
            Op::DeleteRrset { .. } | Op::DeleteName { .. } => entry.1.clear(),
        }
    }
    let mut new_names = 0;
    for (name, (had, values)) in &after {
        if values.len() > limits.max_values_per_name {
            return Err((
                Rcode::REFUSED,
                format!(
                    "{name} would hold {} values (at most {})",
                    values.len(),
                    limits.max_values_per_name
                ),
            ));
        }
        if !had && !values.is_empty() {
            new_names += 1;
        }
    }
    if new_names > 0 && view.names_held_by(key) + new_names > limits.max_names_per_key {
        return Err((
            Rcode::REFUSED,
            format!(
                "key {key} would hold more than {} challenge names",
                limits.max_names_per_key
            ),
        ));
    }
    Ok((zone, ops))
}
