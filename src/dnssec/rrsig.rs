//! RRSIG records (RFC 4034 section 3): the data a signature covers (RFC 4034 3.1.8.1 and
//! 6: the RRSIG rdata without its signature, then the RRset in canonical form and order),
//! and the record as it goes on the wire.
//!
//! The RRsets signed here are this server's own: pre-encoded sets ([`RrSet`], each record
//! a placeholder owner, fixed fields and rdata) and single records built per answer (a
//! CNAME, an NSEC). Their owner names and the names inside their rdata are lower case
//! already (configuration names are lowered when read, the query name is lowered by the
//! query layer), so their wire form is their canonical form.

use domain::base::iana::{Class, Rtype};

use crate::dnssec::key::SIGNATURE_LEN;
use crate::wire::header::RR_FIXED_LEN;
use crate::wire::rrset::{Owner, RrSet};

/// RRSIG rdata before the signer's name: type covered, algorithm, labels, original TTL,
/// expiration, inception, key tag.
pub const FIXED_RDATA_LEN: usize = 18;

/// The RRSIG fields of one signature, all but the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub type_covered: Rtype,
    pub algorithm: u8,
    /// Labels of the owner name, the root not counted (RFC 4034 3.1.3).
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    /// The zone apex in wire form (never compressed on the wire, RFC 4034 3.1.7).
    pub signer: &'a [u8],
}

impl Fields<'_> {
    fn put_rdata_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.type_covered.to_int().to_be_bytes());
        out.push(self.algorithm);
        out.push(self.labels);
        out.extend_from_slice(&self.original_ttl.to_be_bytes());
        out.extend_from_slice(&self.expiration.to_be_bytes());
        out.extend_from_slice(&self.inception.to_be_bytes());
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.extend_from_slice(self.signer);
    }

    /// The length of the whole RRSIG record with a compressed (pointer) owner.
    #[inline]
    pub fn record_len(&self) -> usize {
        2 + RR_FIXED_LEN + FIXED_RDATA_LEN + self.signer.len() + SIGNATURE_LEN
    }

    /// Writes the RRSIG record, owner a pointer to `owner_ptr`, TTL the original TTL, into
    /// `out` (at least [`Fields::record_len`] bytes); returns its length.
    #[inline]
    pub fn write_record(
        &self,
        out: &mut [u8],
        owner_ptr: u16,
        signature: &[u8; SIGNATURE_LEN],
    ) -> usize {
        let len = self.record_len();
        let rdlen = (len - 2 - RR_FIXED_LEN) as u16;
        let out = &mut out[..len];
        out[..2].copy_from_slice(&(crate::wire::header::POINTER | owner_ptr).to_be_bytes());
        out[2..4].copy_from_slice(&Rtype::RRSIG.to_int().to_be_bytes());
        out[4..6].copy_from_slice(&Class::IN.to_int().to_be_bytes());
        out[6..10].copy_from_slice(&self.original_ttl.to_be_bytes());
        out[10..12].copy_from_slice(&rdlen.to_be_bytes());
        let r = &mut out[12..];
        r[..2].copy_from_slice(&self.type_covered.to_int().to_be_bytes());
        r[2] = self.algorithm;
        r[3] = self.labels;
        r[4..8].copy_from_slice(&self.original_ttl.to_be_bytes());
        r[8..12].copy_from_slice(&self.expiration.to_be_bytes());
        r[12..16].copy_from_slice(&self.inception.to_be_bytes());
        r[16..18].copy_from_slice(&self.key_tag.to_be_bytes());
        let s = FIXED_RDATA_LEN + self.signer.len();
        r[FIXED_RDATA_LEN..s].copy_from_slice(self.signer);
        r[s..].copy_from_slice(signature);
        len
    }
}

/// The labels of a wire name, the root not counted.
pub fn label_count(wire: &[u8]) -> u8 {
    let (mut pos, mut n) = (0usize, 0u8);
    while pos < wire.len() && wire[pos] != 0 {
        pos += usize::from(wire[pos]) + 1;
        n = n.saturating_add(1);
    }
    n
}

/// The records of a pre-encoded set whose owners are pointers: (TTL, rdata) each. Sets with
/// inline owners (glue) yield nothing: they are never signed here.
pub fn records(set: &RrSet) -> impl Iterator<Item = (u32, &[u8])> {
    let bytes: &[u8] = if set.owner == Owner::Inline {
        &[]
    } else {
        &set.bytes
    };
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos + 2 + RR_FIXED_LEN > bytes.len() {
            return None;
        }
        let f = &bytes[pos + 2..pos + 2 + RR_FIXED_LEN];
        let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
        let rdlen = usize::from(u16::from_be_bytes([f[8], f[9]]));
        let start = pos + 2 + RR_FIXED_LEN;
        let rdata = bytes.get(start..start + rdlen)?;
        pos = start + rdlen;
        Some((ttl, rdata))
    })
}

/// Writes into `out` (cleared first) the data an RRSIG with `fields` signs over the RRset
/// owned by `owner` (lower-case wire name) of type `fields.type_covered` whose rdatas are
/// `src[a..b]` for each `(a, b)` of `ranges` (sorted here into canonical order, RFC 4034
/// 6.3; duplicates dropped).
pub fn signed_data(
    out: &mut Vec<u8>,
    fields: &Fields<'_>,
    owner: &[u8],
    src: &[u8],
    ranges: &mut [(usize, usize)],
) {
    out.clear();
    fields.put_rdata_prefix(out);
    ranges.sort_unstable_by(|x, y| src[x.0..x.1].cmp(&src[y.0..y.1]));
    let mut last: Option<&[u8]> = None;
    for &(a, b) in ranges.iter() {
        let rdata = &src[a..b];
        if last == Some(rdata) {
            continue;
        }
        last = Some(rdata);
        out.extend_from_slice(owner);
        out.extend_from_slice(&fields.type_covered.to_int().to_be_bytes());
        out.extend_from_slice(&Class::IN.to_int().to_be_bytes());
        out.extend_from_slice(&fields.original_ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn counts_labels_without_the_root() {
        assert_eq!(label_count(b"\x00"), 0);
        assert_eq!(label_count(b"\x04repl\x02co\x00"), 2);
        assert_eq!(label_count(b"\x08coolgame\x04mark\x04repl\x02co\x00"), 4);
    }

    #[test]
    fn reads_the_records_of_a_set_and_none_of_glue() {
        let set = RrSet::a(
            &[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1)],
            60,
            Owner::Query,
        );
        let got: Vec<(u32, Vec<u8>)> = records(&set).map(|(t, r)| (t, r.to_vec())).collect();
        assert_eq!(got, vec![(60, vec![10, 0, 0, 2]), (60, vec![10, 0, 0, 1])]);
        let mut glue = RrSet::builder(Rtype::A, Owner::Inline);
        glue.push_named(&"ns1.repl.co".parse().unwrap(), 60, &[1, 2, 3, 4]);
        assert_eq!(records(&glue.finish()).count(), 0);
    }

    #[test]
    fn signed_data_is_canonical_order_without_duplicates() {
        let fields = Fields {
            type_covered: Rtype::A,
            algorithm: 13,
            labels: 2,
            original_ttl: 60,
            expiration: 2,
            inception: 1,
            key_tag: 7,
            signer: b"\x04repl\x02co\x00",
        };
        let owner = b"\x01x\x04repl\x02co\x00";
        let mut out = Vec::new();
        let src = [10, 0, 0, 2, 10, 0, 0, 1];
        signed_data(
            &mut out,
            &fields,
            owner,
            &src,
            &mut [(0, 4), (4, 8), (0, 4)],
        );
        let prefix = FIXED_RDATA_LEN + fields.signer.len();
        let rr = owner.len() + 10 + 4;
        assert_eq!(out.len(), prefix + 2 * rr);
        assert_eq!(&out[prefix + rr - 4..prefix + rr], &[10, 0, 0, 1]);
        assert_eq!(&out[prefix + 2 * rr - 4..], &[10, 0, 0, 2]);
        let mut rec = [0u8; 256];
        let n = fields.write_record(&mut rec, 12, &[9; SIGNATURE_LEN]);
        assert_eq!(n, fields.record_len());
        assert_eq!(&rec[..4], &[0xc0, 12, 0, 46]);
        assert_eq!(&rec[12..12 + prefix], &out[..prefix]);
    }
}
