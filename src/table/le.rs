//! Little-endian integers and short length-prefixed byte strings, as the on-disk forms use
//! them (the table's, see [`super::persist`], and the checkpoint header around it). Readers
//! take no length from the input without a limit: see [`get_len`].

use std::io::{self, Read, Write};

/// An `InvalidData` error saying `msg`.
pub(crate) fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

pub(crate) fn put_u8(w: &mut impl Write, v: u8) -> io::Result<()> {
    w.write_all(&[v])
}
pub(crate) fn put_u16(w: &mut impl Write, v: u16) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
pub(crate) fn put_u32(w: &mut impl Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
pub(crate) fn put_u64(w: &mut impl Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
/// A byte string of at most 255 bytes, after its length.
pub(crate) fn put_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    put_u8(w, b.len() as u8)?;
    w.write_all(b)
}

pub(crate) fn get<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}
pub(crate) fn get_u8(r: &mut impl Read) -> io::Result<u8> {
    Ok(get::<1>(r)?[0])
}
pub(crate) fn get_u16(r: &mut impl Read) -> io::Result<u16> {
    Ok(u16::from_le_bytes(get(r)?))
}
pub(crate) fn get_u32(r: &mut impl Read) -> io::Result<u32> {
    Ok(u32::from_le_bytes(get(r)?))
}
pub(crate) fn get_u64(r: &mut impl Read) -> io::Result<u64> {
    Ok(u64::from_le_bytes(get(r)?))
}
/// A `u64` count of `what`, refused above `limit`.
pub(crate) fn get_len(r: &mut impl Read, limit: u64, what: &str) -> io::Result<usize> {
    let n = get_u64(r)?;
    if n > limit {
        return Err(bad(format!("{what} count {n} is implausible")));
    }
    Ok(n as usize)
}

/// A length-prefixed byte string.
pub(crate) fn get_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let n = usize::from(get_u8(r)?);
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// A length-prefixed byte string, borrowed from the input.
pub(crate) fn get_slice<'a>(b: &mut &'a [u8]) -> io::Result<&'a [u8]> {
    let n = usize::from(get_u8(b)?);
    if b.len() < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
}
