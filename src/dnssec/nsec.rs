//! Compact denial of existence (RFC 9824): a negative answer is one NSEC record at the query
//! name whose next name is the name's immediate successor (`\000.<name>`), so it covers
//! nothing else, with the type bitmap of what the name holds; a name that does not exist
//! holds nothing but the NXNAME pseudo-type. The bitmap is RFC 4034 4.1.2's windowed form.

use domain::base::iana::{Class, Rtype};

use crate::wire::header::{POINTER, RR_FIXED_LEN};

/// RFC 9824's NXNAME meta type: "this name does not exist".
pub const NXNAME: u16 = 128;

/// The longest bitmap this server writes: windows 0 and 1, 32 octets each, with headers.
pub const MAX_BITMAP: usize = 2 * (2 + 32);

/// A set of record types at a name (those this server can hold, plus RRSIG, NSEC and
/// NXNAME), kept as a sorted list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Types {
    list: [u16; 16],
    len: u8,
}

impl Types {
    /// The types of a name that does not exist (RFC 9824 section 3.2).
    pub fn nxname() -> Types {
        let mut t = Types::default();
        t.add(Rtype::RRSIG.to_int());
        t.add(Rtype::NSEC.to_int());
        t.add(NXNAME);
        t
    }

    /// RRSIG and NSEC: the types every existing name gets in its NSEC (an empty
    /// non-terminal has these alone).
    pub fn existing() -> Types {
        let mut t = Types::default();
        t.add(Rtype::RRSIG.to_int());
        t.add(Rtype::NSEC.to_int());
        t
    }

    /// Adds `rtype` (once; types past the 16th are ignored: a name here has at most 14).
    pub fn add(&mut self, rtype: u16) {
        let n = usize::from(self.len);
        if self.list[..n].contains(&rtype) || n == self.list.len() {
            return;
        }
        let at = self.list[..n].partition_point(|&t| t < rtype);
        self.list.copy_within(at..n, at + 1);
        self.list[at] = rtype;
        self.len += 1;
    }

    pub fn contains(&self, rtype: u16) -> bool {
        self.list[..usize::from(self.len)].contains(&rtype)
    }

    /// The types, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.list[..usize::from(self.len)]
    }

    /// Writes the type bitmap into `out` (at least [`MAX_BITMAP`] bytes); returns its length.
    pub fn write_bitmap(&self, out: &mut [u8]) -> usize {
        let mut pos = 0;
        let types = self.as_slice();
        let mut i = 0;
        while i < types.len() {
            let window = (types[i] >> 8) as u8;
            let mut bits = [0u8; 32];
            let mut used = 0;
            while i < types.len() && (types[i] >> 8) as u8 == window {
                let low = usize::from(types[i] & 0xff);
                bits[low / 8] |= 0x80 >> (low % 8);
                used = used.max(low / 8 + 1);
                i += 1;
            }
            out[pos] = window;
            out[pos + 1] = used as u8;
            out[pos + 2..pos + 2 + used].copy_from_slice(&bits[..used]);
            pos += 2 + used;
        }
        pos
    }
}

/// The NSEC rdata for the lower-case wire name `name`: next name `\000.<name>` (never
/// compressed, RFC 4034 4.1.1) and `types`' bitmap, into `out`; returns its length. `out`
/// must hold `2 + name.len() + MAX_BITMAP` bytes. The successor of a 255-byte name would be
/// too long; such names cannot be asked with room for it, so the query layer never
/// calls this for them (see [`successor_fits`]).
pub fn write_rdata(out: &mut [u8], name: &[u8], types: &Types) -> usize {
    out[0] = 1;
    out[1] = 0;
    out[2..2 + name.len()].copy_from_slice(name);
    let pos = 2 + name.len();
    pos + types.write_bitmap(&mut out[pos..])
}

/// Whether `\000.<name>` is a legal name (at most 255 bytes).
pub fn successor_fits(name: &[u8]) -> bool {
    name.len() + 2 <= crate::name::MAX_NAME_LEN
}

/// Writes the NSEC record owned by the query name (a pointer to `owner_ptr`) with `rdata`
/// and `ttl` into `out`; returns its length.
pub fn write_record(out: &mut [u8], owner_ptr: u16, ttl: u32, rdata: &[u8]) -> usize {
    let len = 2 + RR_FIXED_LEN + rdata.len();
    out[..2].copy_from_slice(&(POINTER | owner_ptr).to_be_bytes());
    out[2..4].copy_from_slice(&Rtype::NSEC.to_int().to_be_bytes());
    out[4..6].copy_from_slice(&Class::IN.to_int().to_be_bytes());
    out[6..10].copy_from_slice(&ttl.to_be_bytes());
    out[10..12].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    out[12..len].copy_from_slice(rdata);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_match_rfc_4034s_example_and_the_second_window() {
        // RFC 4034 4.3: A MX RRSIG NSEC TYPE1234 -> windows 0 and 4.
        let mut t = Types::default();
        for ty in [1u16, 15, 46, 47, 1234] {
            t.add(ty);
        }
        let mut out = [0u8; 80];
        let n = t.write_bitmap(&mut out);
        assert_eq!(
            &out[..n],
            &[
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20
            ][..]
        );
        // NXNAME is bit 128 of window 0; CAA (257) opens window 1.
        let mut nx = [0u8; MAX_BITMAP];
        let n = Types::nxname().write_bitmap(&mut nx);
        assert_eq!(n, 2 + 17);
        assert_eq!(nx[2 + 16], 0x80);
        let mut caa = Types::existing();
        caa.add(257);
        let n = caa.write_bitmap(&mut nx);
        assert_eq!(&nx[n - 3..n], &[1, 1, 0x40]);
    }

    #[test]
    fn types_stay_sorted_and_unique() {
        let mut t = Types::default();
        for ty in [48, 1, 48, 6, 2] {
            t.add(ty);
        }
        assert_eq!(t.as_slice(), &[1, 2, 6, 48]);
        assert!(t.contains(6) && !t.contains(5));
    }

    #[test]
    fn rdata_is_the_immediate_successor_and_the_bitmap() {
        let name = b"\x01x\x04repl\x02co\x00";
        let mut out = [0u8; 300];
        let n = write_rdata(&mut out, name, &Types::nxname());
        assert_eq!(&out[..2 + name.len()], b"\x01\x00\x01x\x04repl\x02co\x00");
        assert_eq!(n, 2 + name.len() + 19);
        assert!(successor_fits(name));
        assert!(!successor_fits(&[0u8; 254]));
    }
}
