//! The DNSSEC signers' metrics: the sums of every worker's counters (`dnssec::sign`).

use std::fmt::Write as _;

use crate::dnssec::sign::totals;

/// Appends the signing counters to `out`.
pub(super) fn render(out: &mut String) {
    let t = totals();
    for (name, help, v) in [
        (
            "clusterns_dnssec_signatures_total",
            "RRSIGs made (cache misses signed).",
            t.signatures,
        ),
        (
            "clusterns_dnssec_cache_hits_total",
            "Signatures taken from a worker's cache.",
            t.hits,
        ),
        (
            "clusterns_dnssec_cache_misses_total",
            "Signatures not in a worker's cache.",
            t.misses,
        ),
        (
            "clusterns_dnssec_miss_limited_total",
            "Signed answers not made because the worker's misses_per_sec was spent (UDP: answered truncated; TCP: SERVFAIL).",
            t.limited,
        ),
        (
            "clusterns_dnssec_failures_total",
            "Signatures the key failed to make (answered SERVFAIL; logged as ERROR).",
            t.failures,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
}
