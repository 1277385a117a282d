//! Fuzzes the TSIG key file parser (`clusterns::update::keys::parse`): arbitrary UTF-8 text.
//!
//! Checks that nothing panics and that
//! - an error names a line inside the text and quotes no secret (the quoted value of a
//!   `secret`, base64 text longer than 8 bytes, never appears in the message);
//! - parsed keys have distinct, non-empty lower-case names without a trailing dot, and their
//!   `Debug` output holds no secret text.

#![no_main]

use std::path::Path;

use clusterns::update::keys::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The quoted values of `secret` settings that occur once in the text (a value that also
    // occurs elsewhere, as a key's name say, may rightly appear in a message).
    let pieces: Vec<&str> = text.split('"').collect();
    let quoted: Vec<&str> = (1..pieces.len())
        .step_by(2)
        .filter(|&i| {
            pieces[i - 1]
                .trim_end()
                .to_ascii_lowercase()
                .ends_with("secret")
        })
        .map(|i| pieces[i])
        .filter(|q| q.len() > 8 && text.matches(q).count() == 1)
        // Only what could be a secret: base64 text (not, say, words that a message or the
        // `Debug` output holds anyway).
        .filter(|q| {
            q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
        .filter(|q| q.bytes().any(|b| b.is_ascii_digit() || b"+/=".contains(&b)))
        .collect();
    match parse(Path::new("k.key"), text) {
        Ok(keys) => {
            let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            for (i, n) in names.iter().enumerate() {
                assert!(!n.is_empty() && !n.ends_with('.'));
                assert_eq!(*n, n.to_ascii_lowercase());
                assert!(!names[..i].contains(n), "duplicate {n}");
            }
            let debug = format!("{keys:?}");
            for q in &quoted {
                assert!(!debug.contains(q), "{debug} shows {q:?}");
            }
        }
        Err(e) => {
            let lines = text.split('\n').count();
            let line = e.line.expect("a parse error has a line");
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            let m = e.to_string();
            for q in &quoted {
                assert!(!m.contains(q), "{m} quotes {q:?}");
            }
        }
    }
});
