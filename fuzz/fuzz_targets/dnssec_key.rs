//! Fuzzes the DNSSEC key file parser (`clusterns::dnssec::key::SigningKey::parse`):
//! arbitrary UTF-8 text.
//!
//! Checks that nothing panics and that
//! - an error names the file and a line inside the text, and never quotes the private key
//!   (the value of `private_key`, when base64 text longer than 8 bytes, never appears in the
//!   message);
//! - a parsed key's `Debug` output holds no private key text, its DNSKEY rdata has the
//!   flags of its role, protocol 3, its algorithm and a public key of the algorithm's
//!   length, and a signature it makes verifies with ring against that public key.

#![no_main]

use clusterns::dnssec::key::{Algorithm, Role, SigningKey};
use libfuzzer_sys::fuzz_target;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pieces: Vec<&str> = text.split('"').collect();
    let secrets: Vec<&str> = (1..pieces.len())
        .step_by(2)
        .filter(|&i| pieces[i - 1].trim_end().ends_with("private_key ="))
        .map(|i| pieces[i])
        .filter(|q| q.len() > 8 && text.matches(q).count() == 1)
        // Only what could be a key: base64 text (not words a message holds anyway).
        .filter(|q| {
            q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
        .collect();
    match SigningKey::parse(text, "k.key") {
        Ok(key) => {
            let debug = format!("{key:?}");
            for s in &secrets {
                assert!(!debug.contains(s), "{debug} shows the private key");
            }
            let rdata = key.dnskey_rdata();
            let flags = u16::from_be_bytes([rdata[0], rdata[1]]);
            assert_eq!(flags, if key.role() == Role::Zsk { 256 } else { 257 });
            assert_eq!(rdata[2], 3);
            assert_eq!(rdata[3], key.algorithm().number());
            let public = &rdata[4..];
            let sig = key.sign(data).expect("a parsed key signs");
            match key.algorithm() {
                Algorithm::EcdsaP256Sha256 => {
                    assert_eq!(public.len(), 64);
                    let mut point = vec![4u8];
                    point.extend_from_slice(public);
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                        .verify(data, &sig)
                        .expect("the signature verifies");
                }
                Algorithm::Ed25519 => {
                    assert_eq!(public.len(), 32);
                    UnparsedPublicKey::new(&ED25519, public)
                        .verify(data, &sig)
                        .expect("the signature verifies");
                }
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with("k.key"), "{m}");
            if let Some(line) = m
                .strip_prefix("k.key:")
                .and_then(|r| r.split(':').next())
                .and_then(|l| l.parse::<usize>().ok())
            {
                let lines = text.split('\n').count();
                assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            }
            for s in &secrets {
                assert!(!m.contains(s), "{m} quotes the private key");
            }
        }
    }
});
