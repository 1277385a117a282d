//! Signing answers on a worker: each thread has its own [`Signer`] (signature cache, miss
//! limiter, buffers), so the query path takes no lock; a cache hit copies 64 bytes.
//!
//! [`Signer::sign_reply`] turns a reply to a query with DO, in a signed zone, into the
//! signed one: the answer RRset's RRSIGs after it; for a negative answer (RFC 9824 compact
//! denial) the SOA's RRSIGs, one NSEC at the query name and its RRSIGs in the authority
//! section, with NOERROR (NXDOMAIN when the query set CO). What it writes lives in the
//! signer's buffer, which the reply borrows until it is encoded.

use std::cell::RefCell;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use domain::base::iana::{Rcode, Rtype};

use crate::dnssec::cache::{MissLimiter, SigCache};
use crate::dnssec::key::{SigningKey, SIGNATURE_LEN};
use crate::dnssec::nsec::{self, Types};
use crate::dnssec::rrsig::{self, Fields};
use crate::dnssec::window::{monotonic_nanos, now_secs, Window};
use crate::dnssec::zone::ZoneKeys;
use crate::resolve::Outcome;
use crate::snapshot::Snapshot;
use crate::table::LabelIs;
use crate::wire::header::HEADER_LEN;
use crate::wire::rrset::{Owner, RrSet};
use crate::wire::{Answer, Raw, Reply};
use crate::zone::{Shape, Zone};

/// Bytes for the records one answer adds: per section, up to two keys' RRSIGs of a set
/// (about 350 bytes each with the longest signer name) and an NSEC (up to 340).
const SECTION: usize = 2048;

/// Why an answer could not be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    /// A signature was needed and the worker's miss limit is spent.
    Limited,
    /// The key failed to sign (logged).
    Failed,
}

/// A worker's signing counters (one writer: its thread; read by the metrics endpoint).
#[derive(Debug, Default)]
pub struct SignerStats {
    pub signatures: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub limited: AtomicU64,
    pub failures: AtomicU64,
}

/// Totals over every worker's [`SignerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub signatures: u64,
    pub hits: u64,
    pub misses: u64,
    pub limited: u64,
    pub failures: u64,
}

static STATS: Mutex<Vec<Arc<SignerStats>>> = Mutex::new(Vec::new());

/// The sums of every signer's counters since the process started.
pub fn totals() -> Totals {
    let all = STATS.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = Totals::default();
    for s in all.iter() {
        t.signatures += s.signatures.load(Relaxed);
        t.hits += s.hits.load(Relaxed);
        t.misses += s.misses.load(Relaxed);
        t.limited += s.limited.load(Relaxed);
        t.failures += s.failures.load(Relaxed);
    }
    t
}

/// Adds one to a counter only this thread writes (no locked instruction).
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

/// What an RRset to sign holds.
#[derive(Clone, Copy)]
enum Records<'a> {
    /// A pre-encoded set (owners pointers).
    Set(&'a RrSet),
    /// One record's rdata.
    One(&'a [u8]),
}

/// One RRset to sign: its owner (lower-case wire name) and the pointer its records' owners
/// use, its type and TTL, its records.
#[derive(Clone, Copy)]
struct ToSign<'a> {
    owner: &'a [u8],
    owner_ptr: u16,
    rtype: Rtype,
    ttl: u32,
    records: Records<'a>,
}

/// A worker's signing state.
pub struct Signer {
    cache: SigCache,
    limiter: MissLimiter,
    /// The data being signed on a miss.
    data: Vec<u8>,
    /// Record ranges of a set being signed, to sort.
    ranges: Vec<(usize, usize)>,
    /// The records a signed reply adds: answer section, then authority section.
    out: Box<[u8]>,
    stats: Arc<SignerStats>,
    failure_logged: Option<std::time::Instant>,
}

thread_local! {
    static SIGNER: RefCell<Option<Signer>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's signer, made (or remade, when the zone's cache size or miss
/// rate changed) for `keys`.
pub fn with_signer<R>(keys: &ZoneKeys, f: impl FnOnce(&mut Signer) -> R) -> R {
    SIGNER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fits = slot.as_ref().is_some_and(|s| {
            s.cache.capacity() == SigCache::capacity_for(keys.cache_entries)
                && s.limiter.rate() == keys.misses_per_sec
        });
        if !fits {
            let stats = slot.take().map(|s| s.stats);
            *slot = Some(Signer::new(keys.cache_entries, keys.misses_per_sec, stats));
        }
        f(slot.as_mut().expect("made above"))
    })
}

/// The result of signing a reply: the records it adds, and its rcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    answer: (usize, u16),
    authority: (usize, u16),
    pub rcode: Rcode,
}

impl Signer {
    /// A signer with a cache of `entries` signatures and `rate` misses a second; `stats`
    /// carries the counters of the signer it replaces.
    pub fn new(entries: usize, rate: u32, stats: Option<Arc<SignerStats>>) -> Signer {
        let stats = stats.unwrap_or_else(|| {
            let s = Arc::new(SignerStats::default());
            STATS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.clone());
            s
        });
        Signer {
            cache: SigCache::new(entries),
            limiter: MissLimiter::new(rate, monotonic_nanos()),
            data: Vec::with_capacity(4096),
            ranges: Vec::with_capacity(64),
            out: vec![0; 2 * SECTION].into_boxed_slice(),
            stats,
            failure_logged: None,
        }
    }

    /// Signs `reply`, the reply for `outcome` to the question whose lower-cased name is
    /// `name`, in `zone` (which must have keys), for a query with DO (and CO when
    /// `compact`).
    pub fn sign_reply(
        &mut self,
        snap: &Snapshot,
        zone: &Zone,
        outcome: &Outcome<'_>,
        reply: &Reply<'_>,
        name: &[u8],
        compact: bool,
    ) -> Result<Signed, Unsigned> {
        let Some(keys) = zone.dnssec.as_deref() else {
            return Err(Unsigned::Failed);
        };
        let window = keys.schedule.window(now_secs());
        let apex_ptr = (HEADER_LEN + name.len() - zone.apex.wire().len()) as u16;
        let mut signed = Signed {
            answer: (0, 0),
            authority: (0, 0),
            rcode: reply.rcode,
        };
        match (outcome, reply.answer) {
            (Outcome::Hit { .. }, Answer::Set { set, owner_ptr }) => {
                let owner = if set.owner == Owner::Apex {
                    zone.apex.wire()
                } else {
                    name
                };
                let ttl = rrsig::records(set).next().map_or(0, |(t, _)| t);
                let s = ToSign {
                    owner,
                    owner_ptr,
                    rtype: set.rtype,
                    ttl,
                    records: Records::Set(set),
                };
                signed.answer = self.sign_into(keys, window, &s, 0)?;
            }
            (
                Outcome::AcmeCname { .. },
                Answer::Cname {
                    ttl,
                    prefix,
                    suffix,
                },
            ) => {
                let mut rdata = [0u8; crate::name::MAX_NAME_LEN];
                let len = prefix.len() + suffix.len();
                rdata[..prefix.len()].copy_from_slice(prefix);
                rdata[prefix.len()..len].copy_from_slice(suffix);
                let s = ToSign {
                    owner: name,
                    owner_ptr: HEADER_LEN as u16,
                    rtype: Rtype::CNAME,
                    ttl,
                    records: Records::One(&rdata[..len]),
                };
                signed.answer = self.sign_into(keys, window, &s, 0)?;
            }
            (Outcome::NoData { .. } | Outcome::NxDomain { .. }, _)
                if nsec::successor_fits(name) =>
            {
                let types = match outcome {
                    Outcome::NxDomain { .. } => Types::nxname(),
                    _ => types_at(snap, zone, name),
                };
                signed.authority = self.sign_denial(keys, window, zone, apex_ptr, name, &types)?;
                if matches!(outcome, Outcome::NxDomain { .. }) && !compact {
                    signed.rcode = Rcode::NOERROR;
                }
            }
            _ => {}
        }
        Ok(signed)
    }

    /// The records [`Signer::sign_reply`] added, for the reply to borrow.
    pub fn extras(&self, signed: &Signed) -> (Raw<'_>, Raw<'_>) {
        (
            Raw {
                bytes: &self.out[..signed.answer.0],
                count: signed.answer.1,
            },
            Raw {
                bytes: &self.out[SECTION..SECTION + signed.authority.0],
                count: signed.authority.1,
            },
        )
    }

    /// The negative answer's additions at `self.out[SECTION..]`: the SOA's RRSIGs, the NSEC
    /// at the query name and its RRSIGs.
    fn sign_denial(
        &mut self,
        keys: &ZoneKeys,
        window: Window,
        zone: &Zone,
        apex_ptr: u16,
        name: &[u8],
        types: &Types,
    ) -> Result<(usize, u16), Unsigned> {
        let soa = &zone.soa_negative;
        let soa_ttl = rrsig::records(soa).next().map_or(0, |(t, _)| t);
        let s = ToSign {
            owner: zone.apex.wire(),
            owner_ptr: apex_ptr,
            rtype: Rtype::SOA,
            ttl: soa_ttl,
            records: Records::Set(soa),
        };
        let (mut len, mut count) = self.sign_into(keys, window, &s, SECTION)?;
        let mut rdata = [0u8; 2 + crate::name::MAX_NAME_LEN + nsec::MAX_BITMAP];
        let rdlen = nsec::write_rdata(&mut rdata, name, types);
        // RFC 9077: the NSEC TTL is the negative TTL, that of the SOA in the answer.
        len += nsec::write_record(
            &mut self.out[SECTION + len..],
            HEADER_LEN as u16,
            soa_ttl,
            &rdata[..rdlen],
        );
        count += 1;
        let s = ToSign {
            owner: name,
            owner_ptr: HEADER_LEN as u16,
            rtype: Rtype::NSEC,
            ttl: soa_ttl,
            records: Records::One(&rdata[..rdlen]),
        };
        let (l, c) = self.sign_into(keys, window, &s, SECTION + len)?;
        Ok((len + l, count + c))
    }

    /// Writes the RRSIGs of `s`, one per key that signs its type, at `self.out[at..]`;
    /// returns their length and count.
    fn sign_into(
        &mut self,
        keys: &ZoneKeys,
        window: Window,
        s: &ToSign<'_>,
        at: usize,
    ) -> Result<(usize, u16), Unsigned> {
        let mut len = 0;
        let mut count = 0;
        for key in keys.signers(s.rtype) {
            let fields = Fields {
                type_covered: s.rtype,
                algorithm: key.algorithm().number(),
                labels: rrsig::label_count(s.owner),
                original_ttl: s.ttl,
                expiration: window.expiration,
                inception: window.inception,
                key_tag: key.key_tag(),
                signer: &keys.signer,
            };
            let sig = self.signature(key, window, &fields, s)?;
            if at + len + fields.record_len() > self.out.len() {
                return Err(Unsigned::Failed);
            }
            len += fields.write_record(&mut self.out[at + len..], s.owner_ptr, &sig);
            count += 1;
        }
        Ok((len, count))
    }

    /// The signature of `s` by `key` with `fields`: from the cache, or made (within the
    /// miss limit) and cached.
    fn signature(
        &mut self,
        key: &SigningKey,
        window: Window,
        fields: &Fields<'_>,
        s: &ToSign<'_>,
    ) -> Result<[u8; SIGNATURE_LEN], Unsigned> {
        let mut h = self.cache.hasher();
        h.write_u32(window.id);
        h.write_u16(fields.key_tag);
        h.write_u8(fields.algorithm);
        h.write(s.owner);
        h.write_u16(s.rtype.to_int());
        h.write_u32(s.ttl);
        match s.records {
            Records::Set(set) => h.write(&set.bytes),
            Records::One(rdata) => h.write(rdata),
        }
        let tag = SigCache::tag(&h);
        if let Some(sig) = self.cache.get(tag) {
            bump(&self.stats.hits);
            return Ok(*sig);
        }
        bump(&self.stats.misses);
        if !self.limiter.allow(monotonic_nanos()) {
            bump(&self.stats.limited);
            return Err(Unsigned::Limited);
        }
        self.ranges.clear();
        let src: &[u8] = match s.records {
            Records::Set(set) => {
                let base = set.bytes.as_ptr() as usize;
                for (_, rdata) in rrsig::records(set) {
                    let start = rdata.as_ptr() as usize - base;
                    self.ranges.push((start, start + rdata.len()));
                }
                &set.bytes
            }
            Records::One(rdata) => {
                self.ranges.push((0, rdata.len()));
                rdata
            }
        };
        rrsig::signed_data(&mut self.data, fields, s.owner, src, &mut self.ranges);
        match key.sign(&self.data) {
            Ok(sig) => {
                bump(&self.stats.signatures);
                self.cache.put(tag, &sig);
                Ok(sig)
            }
            Err(e) => {
                bump(&self.stats.failures);
                let now = std::time::Instant::now();
                if self
                    .failure_logged
                    .is_none_or(|t| now.duration_since(t).as_secs() >= 10)
                {
                    self.failure_logged = Some(now);
                    tracing::error!(key_tag = key.key_tag(), "DNSSEC signing failed: {e}");
                }
                Err(Unsigned::Failed)
            }
        }
    }
}

/// The types the lower-cased name `name` holds in `zone` (with RRSIG and NSEC), for the
/// NSEC of a NODATA answer; a name that does not exist gets NXNAME.
pub fn types_at(snap: &Snapshot, zone: &Zone, name: &[u8]) -> Types {
    let rel = &name[..name.len() - zone.apex.wire().len()];
    let mut t = Types::existing();
    let cluster = |t: &mut Types, c: u16| {
        if let Some(Some(c)) = zone.clusters.get(usize::from(c)) {
            if !c.a.set.is_empty() {
                t.add(Rtype::A.to_int());
            }
            if !c.aaaa.set.is_empty() {
                t.add(Rtype::AAAA.to_int());
            }
        }
    };
    match zone.classify(rel) {
        Shape::Apex => {
            t.add(Rtype::SOA.to_int());
            for s in &zone.apex_sets {
                t.add(s.rtype.to_int());
            }
        }
        Shape::Host(i) => {
            let h = &zone.hosts[i];
            if !h.a.is_empty() {
                t.add(Rtype::A.to_int());
            }
            if !h.aaaa.is_empty() {
                t.add(Rtype::AAAA.to_int());
            }
        }
        Shape::HostAncestor => {}
        Shape::IdOrUser(key) => match snap.table.find_id_or_user(key) {
            LabelIs::App(c) => cluster(&mut t, c),
            LabelIs::User => {}
            LabelIs::Missing => return Types::nxname(),
        },
        Shape::SlugUser(key) => match snap.table.find_slug_user(key) {
            Some(c) => cluster(&mut t, c),
            None => return Types::nxname(),
        },
        Shape::Acme { .. } if zone.acme_txt => {
            if snap.table.acme().answer(name).is_none() {
                return Types::nxname();
            }
            t.add(Rtype::TXT.to_int());
        }
        Shape::Acme { .. } => t.add(Rtype::CNAME.to_int()),
        Shape::Deep => return Types::nxname(),
    }
    t
}
