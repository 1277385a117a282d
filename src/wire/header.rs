//! The fixed layout of a DNS message (RFC 1035 4.1): the header's length, flag bits and count
//! offsets, a resource record's fixed part, compression pointers, and the OPT record this
//! server writes (RFC 6891). Every such number in the crate is named here, once.

/// Bytes in the message header; the question starts right after it.
pub const HEADER_LEN: usize = 12;

/// Offset of the first flags byte (QR, opcode, AA, TC, RD).
pub const FLAGS_HI: usize = 2;
/// Offset of the second flags byte (RA, Z, AD, CD, rcode).
pub const FLAGS_LO: usize = 3;

/// QR (response), in [`FLAGS_HI`].
pub const QR: u8 = 0x80;
/// The opcode's shift and mask (after shifting), in [`FLAGS_HI`].
pub const OPCODE_SHIFT: u8 = 3;
pub const OPCODE_MASK: u8 = 0x0f;
/// AA (authoritative answer), in [`FLAGS_HI`].
pub const AA: u8 = 0x04;
/// TC (truncated), in [`FLAGS_HI`].
pub const TC: u8 = 0x02;
/// RD (recursion desired), in [`FLAGS_HI`].
pub const RD: u8 = 0x01;
/// CD (checking disabled), in [`FLAGS_LO`].
pub const CD: u8 = 0x10;
/// The header rcode's mask, in [`FLAGS_LO`].
pub const RCODE_MASK: u8 = 0x0f;

/// Offsets of the section counts.
pub const QDCOUNT: usize = 4;
pub const ANCOUNT: usize = 6;
pub const NSCOUNT: usize = 8;
pub const ARCOUNT: usize = 10;

/// Bytes after a question's name: type and class.
pub const QUESTION_FIXED_LEN: usize = 4;
/// Bytes of a resource record after its owner name: type, class, TTL, rdata length.
pub const RR_FIXED_LEN: usize = 10;

/// The high bits of a compression pointer (RFC 1035 4.1.4), as the first 2 bytes of a name.
pub const POINTER: u16 = 0xC000;
/// Bits of a length byte that mark anything but a plain label (pointer, extended label).
pub const LABEL_KIND_BITS: u8 = 0xC0;
/// A compression pointer to the question name (which starts right after the header).
pub const COMPRESSED_QNAME: [u8; 2] = (POINTER | HEADER_LEN as u16).to_be_bytes();

/// Bytes of the OPT record this server appends: root owner, type, class (the UDP payload),
/// TTL (extended rcode, version, flags) and an empty rdata.
pub const OPT_LEN: usize = 1 + RR_FIXED_LEN;
/// The shift of the EDNS version in the OPT TTL (extended rcode, version, flags).
pub const OPT_VERSION_SHIFT: u32 = 16;
/// The DO bit (DNSSEC OK, RFC 3225) in the OPT TTL's flags (its high byte there).
pub const OPT_DO: u8 = 0x80;
/// The CO bit (compact answers OK, RFC 9824), next to DO.
pub const OPT_CO: u8 = 0x40;
/// Bits of an extended rcode that go into the header; the rest go into the OPT TTL.
pub const EXT_RCODE_SHIFT: u16 = 4;

/// The largest UDP response without EDNS, and the smallest payload size EDNS may announce
/// (RFC 1035 2.3.4, RFC 6891 6.2.3).
pub const CLASSIC_UDP_LIMIT: u16 = 512;
