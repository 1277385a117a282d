//! Pre-encoded resource record sets: built once per snapshot, copied into responses.
//!
//! A record's owner is written either as a compression pointer (to the query name or to the
//! zone apex inside it, patched per response) or inline as a full name (glue for a host that is
//! not the query name). Everything after the owner (type, class, TTL, rdata) is fixed bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use domain::base::iana::{Class, Rtype};

use super::header::{COMPRESSED_QNAME, POINTER, RR_FIXED_LEN};
use crate::name::DomainName;

/// How the owner of every record in a set is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A pointer to the query name (offset 12): the set's owner is the query name.
    Query,
    /// A pointer to the zone apex inside the query name.
    Apex,
    /// The owner name is part of the bytes.
    Inline,
}

/// One RRset in wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrSet {
    pub rtype: Rtype,
    pub count: u16,
    pub owner: Owner,
    /// The records: each starts with a 2-byte pointer placeholder (for `Query` and `Apex`) or
    /// the full owner name (`Inline`).
    pub bytes: Box<[u8]>,
}

impl RrSet {
    /// Starts an empty set of `rtype` owned by `owner` (`Inline` sets name it with
    /// [`RrSetBuilder::push_named`]).
    pub fn builder(rtype: Rtype, owner: Owner) -> RrSetBuilder {
        RrSetBuilder {
            rtype,
            owner,
            count: 0,
            bytes: Vec::new(),
        }
    }

    /// An A set for the query name.
    pub fn a(addrs: &[Ipv4Addr], ttl: u32, owner: Owner) -> RrSet {
        let mut b = RrSet::builder(Rtype::A, owner);
        for a in addrs {
            b.push(ttl, &a.octets());
        }
        b.finish()
    }

    /// An AAAA set for the query name.
    pub fn aaaa(addrs: &[Ipv6Addr], ttl: u32, owner: Owner) -> RrSet {
        let mut b = RrSet::builder(Rtype::AAAA, owner);
        for a in addrs {
            b.push(ttl, &a.octets());
        }
        b.finish()
    }

    /// Whether the set holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes this set takes in a response.
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }

    /// The length of each record of an A or AAAA set whose owners are pointers (records of
    /// one length, which can be picked by index); `None` for other sets.
    #[inline]
    pub fn record_len(&self) -> Option<usize> {
        let rdlen = match self.rtype {
            Rtype::A => 4,
            Rtype::AAAA => 16,
            _ => return None,
        };
        let len = 2 + RR_FIXED_LEN + rdlen;
        (self.owner != Owner::Inline && len * usize::from(self.count) == self.bytes.len())
            .then_some(len)
    }

    /// The records at `indexes`, in that order, as a set of their own (an index past the
    /// set's end is left out). Only for sets [`RrSet::record_len`] accepts: others are
    /// returned whole.
    pub fn select(&self, indexes: &[u8]) -> RrSet {
        let Some(len) = self.record_len() else {
            return self.clone();
        };
        let mut bytes = Vec::with_capacity(len * indexes.len());
        let mut count = 0;
        for &i in indexes {
            if u16::from(i) < self.count {
                let start = usize::from(i) * len;
                bytes.extend_from_slice(&self.bytes[start..start + len]);
                count += 1;
            }
        }
        RrSet {
            rtype: self.rtype,
            count,
            owner: self.owner,
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// Copies the set into `out` (which must be at least `wire_len()` long), writing owner
    /// pointers to `owner_ptr` where the owner is not inline.
    #[inline]
    pub fn write(&self, out: &mut [u8], owner_ptr: u16) {
        let out = &mut out[..self.bytes.len()];
        out.copy_from_slice(&self.bytes);
        if self.owner == Owner::Inline {
            return;
        }
        let ptr = (POINTER | owner_ptr).to_be_bytes();
        // Each record: the 2-byte owner pointer, the fixed fields, the rdata.
        let mut pos = 0;
        while pos + 2 + RR_FIXED_LEN <= out.len() {
            out[pos..pos + 2].copy_from_slice(&ptr);
            let rdlen_at = pos + 2 + RR_FIXED_LEN - 2;
            let rdlen = usize::from(u16::from_be_bytes([out[rdlen_at], out[rdlen_at + 1]]));
            pos += 2 + RR_FIXED_LEN + rdlen;
        }
    }
}

/// Accumulates the records of one set.
pub struct RrSetBuilder {
    rtype: Rtype,
    owner: Owner,
    count: u16,
    bytes: Vec<u8>,
}

impl RrSetBuilder {
    /// Adds a record whose owner is a pointer.
    pub fn push(&mut self, ttl: u32, rdata: &[u8]) {
        debug_assert!(self.owner != Owner::Inline);
        self.bytes.extend_from_slice(&COMPRESSED_QNAME);
        self.push_tail(ttl, rdata);
    }

    /// Adds a record with an inline owner name.
    pub fn push_named(&mut self, owner: &DomainName, ttl: u32, rdata: &[u8]) {
        debug_assert!(self.owner == Owner::Inline);
        self.bytes.extend_from_slice(owner.wire());
        self.push_tail(ttl, rdata);
    }

    fn push_tail(&mut self, ttl: u32, rdata: &[u8]) {
        self.bytes
            .extend_from_slice(&self.rtype.to_int().to_be_bytes());
        self.bytes
            .extend_from_slice(&Class::IN.to_int().to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        self.bytes
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(rdata);
        self.count += 1;
    }

    /// The finished set.
    pub fn finish(self) -> RrSet {
        RrSet {
            rtype: self.rtype,
            count: self.count,
            owner: self.owner,
            bytes: self.bytes.into_boxed_slice(),
        }
    }
}

/// TXT rdata: the text split into character-strings of at most 255 bytes.
pub fn txt_rdata(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 255 + 1);
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        out.push(0);
    }
    for chunk in bytes.chunks(255) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_patched_per_record() {
        let set = RrSet::a(
            &["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
            60,
            Owner::Query,
        );
        assert_eq!(set.count, 2);
        assert_eq!(set.wire_len(), 32);
        let mut out = [0u8; 32];
        set.write(&mut out, 0x1f);
        assert_eq!(
            &out[..16],
            &[0xC0, 0x1f, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]
        );
        assert_eq!(&out[16..18], &[0xC0, 0x1f]);
        assert_eq!(&out[28..], &[192, 0, 2, 2]);
    }

    #[test]
    fn selected_records_keep_the_order_given() {
        let set = RrSet::a(
            &[
                "192.0.2.1".parse().unwrap(),
                "192.0.2.2".parse().unwrap(),
                "192.0.2.3".parse().unwrap(),
            ],
            60,
            Owner::Query,
        );
        assert_eq!(set.record_len(), Some(16));
        // An index past the set's end is left out, not a panic.
        let picked = set.select(&[2, 0, 9]);
        assert_eq!((picked.count, picked.wire_len()), (2, 32));
        assert_eq!((picked.rtype, picked.owner), (Rtype::A, Owner::Query));
        let mut out = [0u8; 48];
        picked.write(&mut out, 0x1f);
        assert_eq!(&out[..2], &[0xC0, 0x1f]);
        assert_eq!(&out[12..16], &[192, 0, 2, 3]);
        assert_eq!(&out[16..18], &[0xC0, 0x1f]);
        assert_eq!(&out[28..32], &[192, 0, 2, 1]);
        assert_eq!(&out[32..], &[0; 16], "nothing past the picked records");
        // Sets whose records are not of one length are not picked from.
        let mut b = RrSet::builder(Rtype::TXT, Owner::Query);
        b.push(60, &txt_rdata("a"));
        b.push(60, &txt_rdata("abc"));
        let txt = b.finish();
        assert_eq!(txt.record_len(), None);
        assert_eq!(txt.select(&[1]), txt);
        assert_eq!(RrSet::a(&[], 60, Owner::Query).record_len(), Some(16));
        let aaaa = RrSet::aaaa(&["2001:db8::1".parse().unwrap()], 60, Owner::Query);
        assert_eq!(aaaa.record_len(), Some(28));
        assert_eq!(aaaa.select(&[0]), aaaa);
        let mut glue = RrSet::builder(Rtype::A, Owner::Inline);
        glue.push_named(&"ns1.repl.co".parse().unwrap(), 60, &[1, 2, 3, 4]);
        assert_eq!(glue.finish().record_len(), None, "inline owners");
    }

    #[test]
    fn inline_owner_is_kept() {
        let name: DomainName = "ns1.repl.co".parse().unwrap();
        let mut b = RrSet::builder(Rtype::A, Owner::Inline);
        b.push_named(&name, 300, &[1, 2, 3, 4]);
        let set = b.finish();
        let mut out = vec![0u8; set.wire_len()];
        set.write(&mut out, 12);
        assert!(out.starts_with(name.wire()));
    }

    #[test]
    fn txt_is_chunked() {
        assert_eq!(txt_rdata(""), vec![0]);
        assert_eq!(txt_rdata("ab"), vec![2, b'a', b'b']);
        let long = "x".repeat(300);
        let r = txt_rdata(&long);
        assert_eq!(r[0], 255);
        assert_eq!(r[256], 45);
        assert_eq!(r.len(), 302);
    }
}
