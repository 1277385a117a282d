//! Fuzzes the configuration parser (`clusterns::config::Config::parse`) with arbitrary UTF-8.
//!
//! Checks that it never panics; that an error names the file and, when it has a line, a line
//! within the text (1 to the number of newlines plus one); and that an accepted configuration
//! can be served: its zones pre-encode (`Served::from_config`), every cluster is found by
//! name at its index, and questions for the apex and the hosts get answers that pass the
//! packet checks (`clusterns_fuzz::check`), over an empty table.

#![no_main]

use std::path::Path;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::snapshot::{Served, Snapshot};
use clusterns::table::Table;
use clusterns::wire::Transport;
use clusterns_fuzz::{check, query, with_out};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match Config::parse(path, text) {
        Err(e) => {
            let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
            if let Some(line) = e.line {
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            }
            assert!(!e.message.is_empty(), "an error says what is wrong");
            assert!(e.to_string().starts_with("fuzz.toml"), "{e}");
        }
        Ok(cfg) => {
            assert!(!cfg.zones.is_empty() && !cfg.clusters.is_empty());
            for (i, c) in cfg.clusters.iter().enumerate() {
                assert_eq!(cfg.cluster_index(c.name.as_str()), Some(i as u16));
            }
            let served = Arc::new(Served::from_config(&cfg));
            let snap = Snapshot::new(served, Arc::new(Table::default()), 0);
            // Answers from the apex and every host, as a client would ask, with and without
            // EDNS, over UDP and TCP: the whole packet checks.
            with_out(|out| {
                for zone in &cfg.zones {
                    let names = std::iter::once(zone.apex.wire())
                        .chain(zone.hosts.iter().map(|h| h.name.wire()));
                    for name in names {
                        for qtype in [1, 2, 6, 15, 16, 28, 255, 257] {
                            for edns in [None, Some(4096)] {
                                let q = query(name, qtype, edns);
                                check(&snap, &q, out, Transport::Udp);
                                check(&snap, &q, out, Transport::Tcp);
                            }
                        }
                    }
                }
            });
        }
    }
});
