//! The DNS codec: bytes of a query in ([`decode`]), bytes of a response out ([`encode`]) from
//! a codec-level description ([`Reply`]). Nothing here looks anything up or decides what to
//! answer: that is the query layer's (`crate::query`).

pub(crate) mod decode;
pub(crate) mod edns;
pub(crate) mod encode;
pub mod header;
pub mod present;
pub mod rrset;

pub use decode::{decode, question_name, Decoded, ErrorHeader, Request};
pub use edns::{Edns, ResponseOpt};
pub use encode::{encode, encode_error, truncate, Answer, Encoded, Raw, Reply, MIN_BUFFER};

use crate::name::MAX_NAME_LEN;

/// The transport a message came over: a UDP datagram or a TCP (length-prefixed) stream. It
/// sets the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Its name in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Lower-cases a wire name into `buf` and returns it.
#[inline]
pub fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME_LEN]) -> &'b [u8] {
    let n = name.len().min(MAX_NAME_LEN);
    for (d, s) in buf[..n].iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    &buf[..n]
}

/// The presentation form of a wire name (for logs): labels joined by dots, unusual bytes
/// escaped.
pub fn name_text(wire: &[u8]) -> String {
    let mut out = String::with_capacity(wire.len() + 1);
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len > 63 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(wire.len());
        for &b in &wire[pos + 1..end] {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
        pos = end;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests;
