//! The overlay's key type: a short byte string kept inline (repl ids and most names fit),
//! longer ones shared on the heap. Every change copies the nodes on its path through the
//! persistent maps, and with them every key in those nodes: an inline key is copied as plain
//! bytes, without an allocation or a reference count.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// The longest key kept inline (a UUID id key is 17 bytes).
const INLINE: usize = 22;

/// A key in wire form.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl From<&[u8]> for Key {
    fn from(v: &[u8]) -> Key {
        if v.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..v.len()].copy_from_slice(v);
            Key::Inline {
                len: v.len() as u8,
                bytes,
            }
        } else {
            Key::Shared(v.into())
        }
    }
}

impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Key {
        if v.len() <= INLINE {
            Key::from(&v[..])
        } else {
            Key::Shared(v.into())
        }
    }
}

impl Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Shared(v) => v,
        }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// Hashes, compares and borrows as the bytes, so maps keyed by `Key` are looked up by `&[u8]`.
impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn short_and_long_keys_behave_as_their_bytes() {
        let hasher = std::collections::hash_map::RandomState::new();
        for len in [0usize, 1, 17, INLINE, INLINE + 1, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let k = Key::from(bytes.clone());
            assert_eq!(matches!(k, Key::Inline { .. }), len <= INLINE, "len {len}");
            assert_eq!(&*k, &bytes[..]);
            assert_eq!(k, Key::from(&bytes[..]));
            assert_eq!(hasher.hash_one(&k), hasher.hash_one(&bytes[..]));
            let mut other = bytes.clone();
            other.push(1);
            assert_ne!(k, Key::from(other));
        }
    }

    #[test]
    fn maps_find_keys_by_bytes() {
        let mut m = std::collections::HashMap::new();
        m.insert(Key::from(&b"\x04mark"[..]), 1);
        m.insert(Key::from(vec![7u8; 40]), 2);
        assert_eq!(m.get(&b"\x04mark"[..]), Some(&1));
        assert_eq!(m.get(&[7u8; 40][..]), Some(&2));
        assert_eq!(m.get(&b"\x04mar"[..]), None);
    }
}
