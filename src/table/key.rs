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

#[inline]
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The id key for a lower-case wire label (`len` byte + text): the compressed form for a
/// canonical lower-case UUID, the label itself otherwise.
#[inline]
pub fn id_key<'a>(label: &'a [u8], buf: &'a mut [u8; UUID_KEY_LEN]) -> &'a [u8] {
    if label.len() != 37 || label[0] != 36 {
        return label;
    }
    let text = &label[1..];
    buf[0] = UUID_MARK;
    let mut out = 1;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if text[i] != b'-' {
                return label;
            }
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (hex(text[i]), hex(text[i + 1])) else {
            return label;
        };
        buf[out] = hi << 4 | lo;
        out += 1;
        i += 2;
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
    if key[0] == UUID_MARK {
        let mut s = String::with_capacity(36);
        for (i, b) in key[1..].iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push_str(&format!("{b:02x}"));
        }
        s
    } else {
        String::from_utf8_lossy(&key[1..]).into_owned()
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
    &name[usize::from(name[0]) + 1..]
}

/// The text of a single wire label.
pub fn label_text(label: &[u8]) -> String {
    String::from_utf8_lossy(&label[1..]).into_owned()
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
