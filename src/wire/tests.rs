//! Codec unit tests. The whole packet path (decode, answer, encode), checked with
//! `hickory-proto`, is tested beside the query layer (`query/tests.rs`).

use super::*;

#[test]
fn presentation_form() {
    assert_eq!(name_text(b"\x04Mark\x04repl\x02co\x00"), "Mark.repl.co.");
    assert_eq!(name_text(b"\x00"), ".");
    assert_eq!(name_text(b"\x03a b\x00"), "a\\032b.");
}

#[test]
fn question_names_are_read_uncompressed_and_bounded() {
    let mut pkt = vec![0u8; 12];
    pkt.extend_from_slice(b"\x04GaMe\x04mark\x04repl\x02co\x00\x00\x01\x00\x01");
    assert_eq!(
        question_name(&pkt),
        Some(&b"\x04GaMe\x04mark\x04repl\x02co\x00"[..])
    );
    // Truncated, compressed, or too short: none.
    assert_eq!(question_name(&pkt[..20]), None);
    let mut compressed = vec![0u8; 12];
    compressed.extend_from_slice(b"\x04game\xc0\x0c");
    assert_eq!(question_name(&compressed), None);
    assert_eq!(question_name(&[0u8; 5]), None);
    let mut long = vec![0u8; 12];
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.push(0);
    assert_eq!(question_name(&long), None);
}

#[test]
fn truncation_keeps_the_question() {
    let mut r = vec![0u8; 12];
    r[7] = 1;
    r[11] = 1;
    r.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    let n = truncate(&mut r, 12 + 3 + 4);
    assert_eq!(n, 12 + 3 + 4);
    assert_eq!(r[2] & 0x02, 0x02);
    assert_eq!(&r[6..12], &[0; 6]);
}

#[test]
fn the_opt_record_carries_the_extended_rcode_and_do() {
    let opt = ResponseOpt {
        payload: 1232,
        ext_rcode: 16,
        dnssec_ok: true,
        compact_ok: false,
    };
    assert_eq!(opt.bytes(), [0, 0, 41, 0x04, 0xd0, 1, 0, 0x80, 0, 0, 0]);
}
