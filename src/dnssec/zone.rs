//! A signed zone's keys as the query path uses them: which active keys sign which RRsets
//! (a KSK or CSK the DNSKEY, CDS and CDNSKEY sets, a ZSK or CSK everything else), the
//! DNSKEY, CDS and CDNSKEY sets the apex publishes, and the settings every worker's signer
//! follows. Built with the zone, once per configuration.

use std::sync::Arc;

use domain::base::iana::Rtype;

use crate::config::{DnssecConfig, KeyState, ZoneDnssec};
use crate::dnssec::key::{Role, SigningKey};
use crate::dnssec::window::Schedule;
use crate::name::DomainName;
use crate::wire::rrset::{Owner, RrSet};

/// The keys and key records of one signed zone.
#[derive(Debug)]
pub struct ZoneKeys {
    /// The apex in wire form: every RRSIG's signer name.
    pub signer: Box<[u8]>,
    pub schedule: Schedule,
    /// What each worker's cache holds and how many signatures a second it may make.
    pub cache_entries: usize,
    pub misses_per_sec: u32,
    /// Active keys that sign the DNSKEY, CDS and CDNSKEY sets.
    key_signers: Vec<Arc<SigningKey>>,
    /// Active keys that sign every other set.
    zone_signers: Vec<Arc<SigningKey>>,
    /// DNSKEY (every listed key), CDS and CDNSKEY (active and published KSKs and CSKs:
    /// the DS set the parent should hold, RFC 7344); empty sets are not published.
    pub key_sets: Vec<RrSet>,
}

impl PartialEq for ZoneKeys {
    fn eq(&self, other: &ZoneKeys) -> bool {
        let tags = |v: &[Arc<SigningKey>]| v.iter().map(|k| k.key_tag()).collect::<Vec<_>>();
        self.signer == other.signer
            && self.schedule == other.schedule
            && self.cache_entries == other.cache_entries
            && self.misses_per_sec == other.misses_per_sec
            && tags(&self.key_signers) == tags(&other.key_signers)
            && tags(&self.zone_signers) == tags(&other.zone_signers)
            && self.key_sets == other.key_sets
    }
}

impl Eq for ZoneKeys {}

impl ZoneKeys {
    pub fn build(apex: &DomainName, keys: &ZoneDnssec, settings: &DnssecConfig) -> ZoneKeys {
        let active = |roles: &[Role]| -> Vec<Arc<SigningKey>> {
            keys.keys
                .iter()
                .filter(|k| k.state == KeyState::Active && roles.contains(&k.key.role()))
                .map(|k| k.key.clone())
                .collect()
        };
        let ttl = settings.dnskey_ttl;
        let mut dnskey = RrSet::builder(Rtype::DNSKEY, Owner::Apex);
        let mut cds = RrSet::builder(Rtype::CDS, Owner::Apex);
        let mut cdnskey = RrSet::builder(Rtype::CDNSKEY, Owner::Apex);
        for k in &keys.keys {
            dnskey.push(ttl, k.key.dnskey_rdata());
            if k.state != KeyState::Retired && k.key.role() != Role::Zsk {
                cds.push(ttl, &k.key.ds_rdata());
                cdnskey.push(ttl, k.key.dnskey_rdata());
            }
        }
        let mut key_sets = vec![dnskey.finish(), cds.finish(), cdnskey.finish()];
        key_sets.retain(|s| !s.is_empty());
        ZoneKeys {
            signer: apex.wire().into(),
            schedule: settings.schedule(),
            cache_entries: settings.cache_entries,
            misses_per_sec: settings.misses_per_sec,
            key_signers: active(&[Role::Csk, Role::Ksk]),
            zone_signers: active(&[Role::Csk, Role::Zsk]),
            key_sets,
        }
    }

    /// The keys that sign an RRset of `rtype`.
    #[inline]
    pub fn signers(&self, rtype: Rtype) -> &[Arc<SigningKey>] {
        match rtype {
            Rtype::DNSKEY | Rtype::CDS | Rtype::CDNSKEY => &self.key_signers,
            _ => &self.zone_signers,
        }
    }

    /// The most signatures one RRset gets.
    pub fn max_signers(&self) -> usize {
        self.key_signers.len().max(self.zone_signers.len())
    }
}
