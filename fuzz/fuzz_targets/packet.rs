//! Fuzzes the packet path: raw bytes in, through `clusterns::query::respond` over UDP and TCP,
//! with the checks of `clusterns_fuzz::check` (the crate's `src/lib.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clusterns_fuzz::check_packet(data));
