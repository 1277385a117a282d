//! Key encodings shared by the base table, the overlay and the query path.
//!
//! Keys are wire-form labels, lower-case: a repl id is one label (`\x05abcde`), a name is the
//! slug label followed by the user label, a user is one label. A repl id in canonical UUID
//! form (36 characters) is stored as `0xFF` plus its 16 bytes, which saves 20 bytes per app;
//! the query path encodes a queried label the same way before looking it up.

use std::hash::BuildHasher;

/// The first byte of a compressed UUID id key (never a label length: those are <= 63).
pub const UUID_MARK: u8 = 0xFF;
/// The length of a compressed UUID id key.
pub const UUID_KEY_LEN: usize = 17;

/// The hash used for every key: a fixed seed, so that checkpointed indexes stay valid.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x636c_7573_7465_726e).hash_one(key)
}

/// Hex digit values for lower-case `0-9a-f`; 0xFF for every other byte.
const HEX: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Positions of the 32 hex digits in a canonical UUID's text.
const UUID_DIGITS: [usize; 32] = {
    let mut p = [0; 32];
    let (mut i, mut j) = (0, 0);
    while i < 36 {
        if !(i == 8 || i == 13 || i == 18 || i == 23) {
            p[j] = i;
            j += 1;
        }
        i += 1;
    }
    p
};

/// The id key for a lower-case wire label (`len` byte + text): the compressed form for a
/// canonical lower-case UUID, the label itself otherwise. Table-driven and branch-light: on
/// the query path for every single-label name.
#[inline]
pub fn id_key<'a>(label: &'a [u8], buf: &'a mut [u8; UUID_KEY_LEN]) -> &'a [u8] {
    let Some(text) = label
        .get(1..37)
        .filter(|_| label.len() == 37 && label[0] == 36)
    else {
        return label;
    };
    let dashes = (text[8] ^ b'-') | (text[13] ^ b'-') | (text[18] ^ b'-') | (text[23] ^ b'-');
    let mut bad = 0u8;
    buf[0] = UUID_MARK;
    for k in 0..16 {
        let hi = HEX[usize::from(text[UUID_DIGITS[2 * k]])];
        let lo = HEX[usize::from(text[UUID_DIGITS[2 * k + 1]])];
        bad |= hi | lo;
        buf[1 + k] = hi << 4 | (lo & 0x0f);
    }
    // A non-hex byte sets the high bits of `bad` (0xFF in the table).
    if dashes != 0 || bad & 0xF0 != 0 {
        return label;
    }
    &buf[..]
}

/// The length of the id key at the start of `bytes`.
#[inline]
pub fn id_key_len(bytes: &[u8]) -> usize {
    if bytes[0] == UUID_MARK {
        UUID_KEY_LEN
    } else {
        usize::from(bytes[0]) + 1
    }
}

/// Writes the text of an id key (the UUID with its dashes, or the label's text).
pub fn id_text(key: &[u8]) -> String {
    match key.split_first() {
        Some((&UUID_MARK, bytes)) => {
            let mut s = String::with_capacity(36);
            for (i, b) in bytes.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        _ => label_text(key),
    }
}

/// Appends a label's wire form.
pub fn push_label(out: &mut Vec<u8>, text: &str) {
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// The id key of a label text (lower-case).
pub fn id_key_of(text: &str) -> Vec<u8> {
    let mut wire = Vec::with_capacity(text.len() + 1);
    push_label(&mut wire, text);
    let mut buf = [0u8; UUID_KEY_LEN];
    id_key(&wire, &mut buf).to_vec()
}

/// The name key `<slug>.<user>` of two label texts.
pub fn name_key_of(slug: &str, user: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(slug.len() + user.len() + 2);
    push_label(&mut k, slug);
    push_label(&mut k, user);
    k
}

/// The user part (second label) of a name key.
#[inline]
pub fn user_of_name(name: &[u8]) -> &[u8] {
    // Total: a clipped key from a damaged checkpoint gives a short or empty user.
    let skip = name
        .first()
        .map_or(0, |&l| usize::from(l) + 1)
        .min(name.len());
    &name[skip..]
}

/// The text of a single wire label.
pub fn label_text(label: &[u8]) -> String {
    String::from_utf8_lossy(label.get(1..).unwrap_or_default()).into_owned()
}

/// Whether `k` has the shape of an id key: a label of 1 to 63 bytes, or a compressed UUID.
pub(crate) fn is_id_key(k: &[u8]) -> bool {
    match k.first() {
        Some(&UUID_MARK) => k.len() == UUID_KEY_LEN,
        _ => is_label(k),
    }
}

/// Whether `k` is one label of 1 to 63 bytes in wire form.
pub(crate) fn is_label(k: &[u8]) -> bool {
    matches!(k.first(), Some(&n) if (1..=63).contains(&n) && k.len() == usize::from(n) + 1)
}

/// Whether `k` has the shape of a name key: two labels.
pub(crate) fn is_name_key(k: &[u8]) -> bool {
    match k.first() {
        Some(&n) if usize::from(n) < k.len() => {
            let split = usize::from(n) + 1;
            is_label(&k[..split]) && is_label(&k[split..])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_compressed_and_restored() {
        let text = "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c";
        let k = id_key_of(text);
        assert_eq!(k.len(), UUID_KEY_LEN);
        assert_eq!(k[0], UUID_MARK);
        assert_eq!(k[1], 0x3f);
        assert_eq!(id_key_len(&k), UUID_KEY_LEN);
        assert_eq!(id_text(&k), text);
    }

    #[test]
    fn other_ids_stay_labels() {
        for text in [
            "r1",
            "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6", // 35 characters
            "3f2b9c1e-0b7a-4c1e-9a53x1d2e3f4a5b6c", // dash missing
            "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6g", // not hex
            "3f2b9c1e00b7a-4c1e-9a53-1d2e3f4a5b6c", // 36 but misplaced dash
        ] {
            let k = id_key_of(text);
            assert_eq!(usize::from(k[0]), text.len(), "{text}");
            assert_eq!(id_key_len(&k), text.len() + 1);
            assert_eq!(id_text(&k), text);
        }
    }

    #[test]
    fn name_keys() {
        let k = name_key_of("game", "mark");
        assert_eq!(k, b"\x04game\x04mark");
        assert_eq!(user_of_name(&k), b"\x04mark");
        assert_eq!(label_text(user_of_name(&k)), "mark");
    }
}
