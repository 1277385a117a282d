//! Fuzzes DNS-over-TCP framing (`clusterns::server::tcp::Framer`): a byte stream cut into
//! chunks at points the fuzzer chooses, with answers written out a fuzzer-chosen amount at a
//! time.
//!
//! Input: byte 0 is the number of cuts `k` (mod 32), the next `k` bytes the chunk lengths and
//! the next `k` bytes how much of the pending answers is written after each chunk; the rest
//! is the stream (the last chunk takes what the others leave).
//!
//! Checks that the framer never panics and that
//! - what it writes is exactly the answers `respond` gives to the stream's frames, in order,
//!   each with a length prefix that matches, up to the first zero-length frame (which closes
//!   the stream) or the incomplete frame at the end;
//! - every answer is a valid DNS response, parsed to its last byte (`clusterns_fuzz::parse`);
//! - cutting the stream into chunks gives the same output as one chunk, and closes the
//!   stream exactly when one chunk does;
//! - back-pressure holds: while answers are pending past the backlog nothing is answered.

#![no_main]

use clusterns::server::stats::WorkerStats;
use clusterns::server::tcp::{Close, Framer, WRITE_BACKLOG};
use clusterns::snapshot::Snapshot;
use clusterns::query::{respond, Transport};
use clusterns_fuzz::{parse, snapshot, with_out};
use libfuzzer_sys::fuzz_target;

/// What a connection sent back: the answer bytes and whether it was closed.
type Outcome = (Vec<u8>, Option<Close>);

/// Feeds `chunks` to a framer the way the server's loop does: no chunk is read while the
/// backlog is reached; after each chunk `drain[i]` (a fraction of 255) of the pending answers
/// is written. At the end everything is written and the framer goes on until it is done.
fn run(snap: &Snapshot, chunks: &[&[u8]], drain: &[u8], scratch: &mut [u8]) -> Outcome {
    let stats = WorkerStats::new(Transport::Tcp);
    let mut f = Framer::new();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        while f.backlogged() {
            take(&mut out, &mut f, None);
            let before = f.buffered();
            if let Err(e) = f.feed(&[], snap, scratch, &stats) {
                return (collect(out, &f), Some(e));
            }
            assert!(f.buffered() < before || f.pending() == 0, "progress");
        }
        let pending = f.pending();
        let buffered = f.buffered();
        let result = f.feed(chunk, snap, scratch, &stats);
        if pending >= WRITE_BACKLOG {
            assert_eq!(f.pending(), pending, "nothing answered past the backlog");
            assert_eq!(f.buffered(), buffered + chunk.len());
        }
        if let Err(e) = result {
            return (collect(out, &f), Some(e));
        }
        let share = drain.get(i).copied().unwrap_or(255);
        take(&mut out, &mut f, Some(share));
    }
    loop {
        take(&mut out, &mut f, None);
        if let Err(e) = f.feed(&[], snap, scratch, &stats) {
            return (collect(out, &f), Some(e));
        }
        if f.pending() == 0 {
            return (out, None);
        }
    }
}

/// Writes `share` 255ths of the pending answers (all of them for `None`) to `out`.
fn take(out: &mut Vec<u8>, f: &mut Framer, share: Option<u8>) {
    let n = share.map_or(f.pending(), |s| f.pending() * usize::from(s) / 255);
    out.extend_from_slice(&f.output()[..n]);
    f.consume(n);
}

/// What was written plus what is still pending.
fn collect(mut out: Vec<u8>, f: &Framer) -> Vec<u8> {
    out.extend_from_slice(f.output());
    out
}

/// The answers to `stream` computed frame by frame with `respond`.
fn reference(snap: &Snapshot, stream: &[u8], scratch: &mut [u8]) -> Outcome {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len == 0 {
            return (out, Some(Close::ZeroLength));
        }
        if rest.len() - 2 < len {
            break;
        }
        let handled = respond(snap, &rest[2..2 + len], scratch, Transport::Tcp);
        if handled.len > 0 {
            out.extend_from_slice(&(handled.len as u16).to_be_bytes());
            out.extend_from_slice(&scratch[..handled.len]);
        }
        rest = &rest[2 + len..];
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    let k = usize::from(data.first().copied().unwrap_or(0) % 32);
    if data.len() < 1 + 2 * k {
        return;
    }
    let (lens, drain) = data[1..1 + 2 * k].split_at(k);
    let stream = &data[1 + 2 * k..];
    let mut chunks = Vec::with_capacity(k + 1);
    let mut rest = stream;
    for &n in lens {
        let (c, r) = rest.split_at(usize::from(n).min(rest.len()));
        chunks.push(c);
        rest = r;
    }
    chunks.push(rest);

    let (whole, split, expected) = with_out(|scratch| {
        (
            run(snap, &[stream], &[], scratch),
            run(snap, &chunks, drain, scratch),
            reference(snap, stream, scratch),
        )
    });
    assert!(
        whole == expected,
        "one chunk differs from the frames' answers"
    );
    assert!(split == whole, "chunks differ from one chunk ({k} cuts)");

    // Every answer is a valid DNS response (parsed to its last byte), and the length prefixes
    // add up. (What each answer says is the `packet` target's business: the reference above
    // makes these answers the ones `respond` gives.)
    let mut out = &whole.0[..];
    while !out.is_empty() {
        assert!(out.len() >= 2, "a whole length prefix");
        let len = usize::from(u16::from_be_bytes([out[0], out[1]]));
        assert!(len >= 12 && out.len() >= 2 + len, "a whole message");
        parse(&out[2..2 + len]);
        out = &out[2 + len..];
    }
});
