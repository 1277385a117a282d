//! Regression tests for what the fuzz targets in `fuzz/` found. Each feeds the exact input
//! that crashed a target (kept here in hex) through the same entry point the target uses and
//! asserts the correct behaviour. `fuzz/README.md` says how to add one.
//!
//! The `checkpoint` target reads every input twice: as it is, and with its last 4 bytes
//! replaced by the CRC-32 of the rest ([`fix_crc`]); the tests do the same.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::feed::checkpoint::{self, Loaded, Position};
use clusterns::table::Table;

/// The system allocator, noting the largest single request made by each thread, so that a
/// test can assert that a hostile length is not allocated up front (under libFuzzer that is
/// an out-of-memory crash; in a plain test it may even succeed on a machine that
/// overcommits).
struct Tracking;

thread_local! {
    static MAX_ALLOC: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = MAX_ALLOC.try_with(|m| m.set(m.get().max(size)));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is the same for
        // `System`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract, which is the same for
        // `System`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which is the same for
        // `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract, which is the same for
        // `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    MAX_ALLOC.with(|m| m.set(0));
    let r = f();
    (r, MAX_ALLOC.with(|m| m.get()))
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// What the `checkpoint` target reads second: the input with its last 4 bytes replaced by
/// the CRC-32 of the rest, so that a mutated checkpoint passes its checksum.
fn fix_crc(data: &[u8]) -> Vec<u8> {
    let body = &data[..data.len().saturating_sub(4)];
    let mut v = body.to_vec();
    v.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    v
}

/// Both reads of the `checkpoint` target.
fn read_both(hex: &str) -> [std::io::Result<Loaded>; 2] {
    let data = unhex(hex);
    [
        checkpoint::read_from(&data[..], data.len() as u64),
        checkpoint::read_from(&fix_crc(&data)[..], data.len() as u64),
    ]
}

/// Asserts that both reads of a checkpoint target input fail with an error containing
/// `needle` (for the checksummed one).
fn assert_damaged(hex: &str, needle: &str) {
    let [raw, fixed] = read_both(hex);
    assert!(raw.is_err(), "the raw input fails its checksum");
    match fixed {
        Ok(l) => panic!(
            "accepted a damaged checkpoint: {} apps, len {}",
            l.table.apps().len(),
            l.table.len()
        ),
        Err(e) => assert!(e.to_string().contains(needle), "{e}"),
    }
}

/// The reader allocates no array larger than its input (a few bytes here), plus its buffers.
const ALLOC_LIMIT: usize = 4 << 20;

/// Asserts that both reads of a checkpoint target input fail without allocating more than
/// `ALLOC_LIMIT` at once.
fn assert_not_allocated_ahead(hex: &str) {
    let data = unhex(hex);
    for input in [data.clone(), fix_crc(&data)] {
        let (r, most) = largest_allocation(|| {
            checkpoint::read_from(&input[..], input.len() as u64).map(|_| ())
        });
        assert!(r.is_err());
        assert!(most <= ALLOC_LIMIT, "allocated {most} bytes at once");
    }
}

/// checkpoint: an arena length of 4,278,190,080 bytes in a 56-byte file. Before: the reader
/// allocated it at once (`vec![0; arena_len]`: libFuzzer out-of-memory, malloc(4278190080)).
#[test]
fn checkpoint_arena_length_is_not_allocated_ahead_of_the_data() {
    assert_not_allocated_ahead(ARENA_LEN_OOM);
}

/// checkpoint: an index of about 2^31 slots in a 219-byte file. Before: the reader reserved
/// them all (`Vec::with_capacity(n)` of u64: libFuzzer out-of-memory in `get_index`,
/// malloc(14495514624) and the like).
#[test]
fn checkpoint_slot_count_is_not_allocated_ahead_of_the_data() {
    assert_not_allocated_ahead(SLOT_COUNT_OOM);
}

/// checkpoint: an overlay app on cluster 107 of a checkpoint that lists 3. Before: accepted;
/// the loader indexes its renumbering map with the cluster (`map[usize::from(c)]` in
/// `feed::builder::load_checkpoint`), out of bounds when the configuration's order differs.
#[test]
fn checkpoint_overlay_cluster_outside_the_list_is_damage() {
    assert_damaged(OVERLAY_CLUSTER, "overlay");
}

/// checkpoint: an overlay name key `\x08coolgame\xfbmark` whose user label claims 251
/// bytes. Before: accepted; folding the table copied it into a base whose records then ran
/// past the arena (a slice out of range in `Base::part` from `Table::apps`).
#[test]
fn checkpoint_malformed_overlay_name_key_is_damage() {
    assert_damaged(OVERLAY_NAME_KEY, "malformed overlay");
}

/// checkpoint: an overlay user difference of 2^26 and an app count (4) below the apps the
/// table holds (5). Before: accepted; `len()` undercounted, so deleting every app underflows
/// it, and a user's count could overflow.
#[test]
fn checkpoint_implausible_overlay_user_count_is_damage() {
    assert_damaged(OVERLAY_USER_COUNT, "implausible");
}

/// checkpoint: a damaged app count. Before: accepted, and `Table::fold` reserved space for
/// that many apps (ASan: requested allocation size exceeds the maximum supported size).
#[test]
fn checkpoint_app_count_cannot_make_fold_allocate() {
    let [raw, fixed] = read_both(APP_COUNT_FOLD);
    assert!(raw.is_err());
    assert!(fixed.is_err(), "accepted a damaged checkpoint");
}

/// checkpoint (found after commit cd4b88f, "bounds-safe record access lets checkpoint
/// validation skip the arena walk"): a base record whose slug label claims 109 bytes past
/// the arena's end. The reader accepts it (it no longer walks base records); the record's
/// name part is then empty, and `Table::apps` (also `get`, `upsert`, `delete`, `fold`)
/// panicked in `table::key::user_of_name` (`name[0]` of an empty name, src/table/key.rs)
/// until the key helpers were made total. Correct: the table copes; never a panic.
#[test]
fn checkpoint_base_record_past_the_arena_does_not_panic() {
    for loaded in read_both(BASE_EMPTY_NAME).into_iter().flatten() {
        let mut t = loaded.table;
        let apps = t.apps();
        for (id, ..) in &apps {
            let _ = t.get(id);
        }
        let _ = t.fold();
        for (id, ..) in apps.iter().take(4) {
            let _ = t.upsert(id, "mark", "renamed", 0);
            let _ = t.delete(id);
        }
    }
}

/// checkpoint (found by the CI fuzz smoke after commit 61fbf44, which folds by patching a
/// copy of the base): a base whose record for an id the overlay changes is malformed (its
/// parts clip to nothing). `Base::patch` computed the garbage left as `end - offset` and
/// underflowed (src/table/base.rs). Correct: a fold of a damaged base neither panics nor
/// loops; the table keeps answering.
#[test]
fn fold_patching_a_damaged_base_record_does_not_panic() {
    for loaded in read_both(PATCH_DAMAGED_RECORD).into_iter().flatten() {
        let mut t = loaded.table;
        if let Ok(base) = t.fold() {
            let folded = Table::from_base(Arc::new(base));
            let _ = folded.apps();
        }
        let apps = t.apps();
        for (id, ..) in apps.iter().take(4) {
            let _ = t.upsert(id, "mark", "renamed", 0);
            let _ = t.delete(id);
        }
        let _ = t.fold();
    }
}

/// builder: a checkpoint (checksum correct: written by `checkpoint::write`) whose base has
/// an app on cluster 5 while it lists 3 clusters, loaded under a configuration that orders
/// the clusters differently. `load_checkpoint` (src/feed/builder.rs) renumbered with
/// `map[usize::from(c)]`: index out of bounds, a panic at start-up. Now the checkpoint's list
/// is the table's cluster registry, used as it is (nothing renumbered), and an index beyond it
/// is still damage: the feed is replayed. The reader checks the overlay's clusters; the base's
/// are checked by the builder (`Base::max_cluster`, a prefetched pass over the id index).
/// The same checkpoint without that app loads, under the configuration's other order.
#[test]
fn builder_refuses_checkpoint_with_an_unknown_cluster_index() {
    let dir = tempfile::tempdir().unwrap();
    let write = |bad: bool| {
        let mut t = Table::default();
        if bad {
            t.upsert("r1", "mark", "game", 5).unwrap();
        }
        t.upsert("r2", "ann", "site", 1).unwrap();
        let t = Table::from_base(Arc::new(t.fold().unwrap()));
        let names: Vec<String> = ["c0", "c1", "c2"].map(String::from).to_vec();
        checkpoint::write(&dir.path().join("t.ckpt"), &t, Position::default(), &names).unwrap();
    };
    std::fs::write(dir.path().join("j.log"), "").unwrap();
    let cfg = r#"
[feed]
journal = "j.log"
checkpoint = "t.ckpt"
[[zone]]
apex = "repl.co"
ns = ["ns.example.net"]
soa = { rname = "hostmaster.repl.co" }
[[cluster]]
name = "c2"
ipv4 = ["203.0.113.2"]
[[cluster]]
name = "c1"
ipv4 = ["203.0.113.1"]
[[cluster]]
name = "c0"
ipv4 = ["203.0.113.3"]
"#;
    let cfg = Arc::new(Config::parse(&dir.path().join("c.toml"), cfg).unwrap());
    write(true);
    let b = clusterns::feed::Builder::load(cfg.clone()).unwrap();
    // The checkpoint was refused: the (empty) journal replayed.
    assert_eq!(b.table().len(), 0);
    drop(b);
    write(false);
    let b = clusterns::feed::Builder::load(cfg).unwrap();
    assert_eq!(b.table().len(), 1, "loaded from the checkpoint");
    let names: Vec<&str> = b
        .table()
        .clusters()
        .names()
        .iter()
        .map(|l| l.as_str())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2"]);
    assert_eq!(b.table().get("r2").map(|a| a.2), Some(1), "not renumbered");
    let snap = b.shared().load_full();
    let z = &snap.served.zones[0];
    let c1 = z.clusters[1].as_ref().expect("c1 is configured");
    assert_eq!(c1.a.set.bytes[c1.a.set.bytes.len() - 4..], [203, 0, 113, 1]);
}

/// config: a NUL inside a comment. `toml` reports it with an empty message, so
/// `Config::parse` (src/config.rs) returned `fuzz.toml:2: ` with nothing after it. Correct:
/// the error says what is wrong. (Also the shortest form: `#\0`.)
#[test]
fn config_error_for_a_control_character_says_what_is_wrong() {
    assert_eq!(CONFIG_NUL_IN_COMMENT.len(), 589, "the exact input");
    for text in [CONFIG_NUL_IN_COMMENT, "#\0"] {
        let e = Config::parse(Path::new("fuzz.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(if text.len() > 2 { 2 } else { 1 }));
        assert!(!e.message.trim().is_empty(), "{e:?}");
    }
}

/// `artifacts/config/crash-d595fa0bc451ab185724fc5732e7f654cbe391b4` (589 bytes).
const CONFIG_NUL_IN_COMMENT: &str = "# Example clusterns configuration: two zones, three clusters, the journal feed.\n\
# Relative paths are relative to this file\t\0 directory.\n\
\n\
[server]\n\
listen = [\"127.0.0.1:5300\"]   # UDP and TCP; use port 53 on an edge hots\n\
threads = 0   )               # UDP workers, each with its own SO_REUSEPORT socket; 0 = one per core\n\
udp_payload = 1232            # EDNS payload size advertised and the largest UDP answer sent\n\
tcp_idle_timeout_secs = 10\n\
tcp_max_connections = 1024\n\
\n\
[feed]\n\
source = \"journal\"\n\
journal = \"journal.log\"\n\
\n\
[[zone]]\n\
apex = \"repl.co\"\n\
ttl = 60                      # TTL .2.30\"]\n\
";

/// `artifacts/nats_message/crash-1dff7759d32f60f092afd5043e018800cfebef22` (64 bytes): mode
/// 0x2e (a `Clusterns-Reset` header only), the header value `l)` and 60 bytes 0x13, no body.
/// The error quoted the value with every control character escaped (`\u{13}`): longer than
/// the target allowed. The target now bounds errors by what quoting can make of a 64-byte
/// cut (under 2 KiB); the error still says what is wrong.
#[test]
fn nats_message_error_for_control_characters_is_bounded() {
    use clusterns::feed::nats::message::decode;
    let input = unhex(&format!("2e6c29{}0a", "13".repeat(60)));
    assert_eq!(input.len(), 64, "the exact input");
    let value = String::from_utf8_lossy(&input[1..input.len() - 1]).into_owned();
    let e = decode(None, Some(&value), b"").unwrap_err();
    assert!(
        e.contains("Clusterns-Reset") && e.contains("not a sequence number"),
        "{e}"
    );
    assert!(e.len() < 2048, "{} bytes", e.len());
}

/// Writes the seed corpus of the `checkpoint` fuzz target: real checkpoints, small.
/// `cargo test --test fuzz_regressions -- --ignored write_checkpoint_seeds`
/// (ignored: a plain `cargo test` must not write into the source tree).
#[test]
#[ignore = "writes fuzz/corpus/checkpoint"]
fn write_checkpoint_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let clusters: Vec<String> = ["c0", "c1", "wide"].map(String::from).to_vec();
    let pos = Position {
        last_seq: 42,
        journal: clusterns::feed::journal::JournalPos {
            offset: 1234,
            line: 40,
            head_len: 20,
            head_crc: 0x1234_5678,
            tail_crc: 0x9abc_def0,
            origin: 0,
            first: 1,
        },
    };
    let mut base = Table::default();
    for (id, user, slug, c) in [
        ("r0", "mark", "coolgame", 0),
        ("r1", "ann", "site", 1),
        ("3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c", "mark", "notes", 2),
        ("r2", "ann", "blog", 0),
    ] {
        base.upsert(id, user, slug, c).unwrap();
    }
    let base = Table::from_base(Arc::new(base.fold().unwrap()));
    let mut overlay = base.clone();
    overlay.upsert("r1", "ann", "site", 2).unwrap(); // a move
    overlay.upsert("r2", "bob", "blog", 0).unwrap(); // a rename to a new user
    overlay.delete("r0").unwrap();
    overlay.upsert("r9", "mark", "coolgame", 1).unwrap(); // the freed name, taken

    // Health reports (checkpoint version 4): two checkers on one address, one on another.
    let mut health = overlay.clone();
    for (checker, addr, up, until) in [
        ("eu", "203.0.113.1", false, 1_700_000_030),
        ("us", "203.0.113.1", true, 1_700_000_020),
        ("eu", "2001:db8::1", true, u64::MAX),
    ] {
        let report = clusterns::health::report::HealthReport {
            checker: checker.parse().unwrap(),
            cluster: "c0".parse().unwrap(),
            addr: addr.parse().unwrap(),
            up,
            until,
        };
        health.health_mut().apply(&report).unwrap();
    }
    for (name, table) in [
        ("empty", Table::default()),
        ("base", base),
        ("overlay", overlay),
        ("health", health),
    ] {
        checkpoint::write(&dir.join(name), &table, pos, &clusters).unwrap();
        let back = checkpoint::read(&dir.join(name)).unwrap();
        assert_eq!(back.table.apps(), table.apps());
    }
}

// The inputs, as the fuzzer wrote them (hex).

/// `crash-556c662f2a7d19dab21043aa3ed7a54f7d85c8ea` (56 bytes).
const ARENA_LEN_OOM: &str = concat!(
    "434c4e53434b5031020000002aff0700000000000000ffffffff0000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635300000000",
    "000000ff00000000",
);

/// `oom-641c716a322c5b7d8fe0b34816d5928fa55bace9` (219 bytes).
const SLOT_COUNT_OOM: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d204000000000000000000002800000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "026330027600047701696400000000000000000000cd650000000000000010000000000000000000185519ae6b626353",
    "030000000263300263310477696465010000000000000000100000000000000000000000000000000000000000000000",
    "00000001040000000000000000000000000000000000000000000000000000000000000000001000000000000000002d",
    "0000000000000000000000000000000000000000000000bc8226f4",
);

/// `crash-556c662f2a7d19dab21043aa3ed7a54f7d85c8ea` (853 bytes).
const OVERLAY_CLUSTER: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d204000000000000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "02633002633104776964654e00000000000000000100027231047369746503616e6e0200ff3f2b9c1e0b7a4c1e9a531d",
    "5b2e4a3f6c056e6f746573046d61726b000002723008636f6f6c67616d65046d61726b000002723204626c6f6703616e",
    "6e100000000000000004000000000000000000000000000000d68309432d000000000000000000000000000000000000",
    "00000000000000000000000000000000009c0bf75c010000009dedbb3340000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000e4cfb0000f00000000000000000000",
    "0010000000000000000400000000000000bf4e0c382d000000f42160f1400000000000000000000000099509f8010000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000041fe4fa70f000000000000000000000000000000000000",
    "001000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000f2b5cf58010000000000000000000000d83a96b70f0000",
    "001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000020000000000000002000000040000000000000003027239010e08636f6f6c67616d65",
    "046d6101726b00030272310109047369746503616e6e0200030272300003027232010904626c6f6703626f6200000400",
    "0000000000000904626c6f6703616e6e000904626c6f6703626f62010302723200000e08636f6f6c67616d65046d6172",
    "6b0103027239016f09047369746503616e6e0103027231020003000000000000000403616e6effffffffffffffff0403",
    "626f62010000000000000005046d61726b0000000000000000040000000000000028508d16",
);

/// `crash-07cff0de7ddfdbd0d28fe7e42f99ede1072b1a6b` (853 bytes).
const OVERLAY_NAME_KEY: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d204000000000000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "02633002633104776964654e00000000000000000100027231047369746503616e6e0200ff3f2b9c1e0b7a4c1e9a531d",
    "2e3f4a5b6c056e6f746573046d61726b000002723008636f6f6c67616d65046d61726b000002723204626c6f6703616e",
    "6e100000000000000004000000000000000000000000000000d68309432d000000000000000000000000000000000000",
    "00000000000000000000000000000000009c0bf75c010000009dedbb3340000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000e4cfb0000f00000000000000000000",
    "0010000000000000000400000000000000bf4e0c382d000000f42160f1400000000000000000000000099509f8010000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000041fe4fa70f000000000000000000000000000000000000",
    "001000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000f2b5cf58010000000000000000000000d83a96b70f0000",
    "001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000020000000000000002000004040000000000000003027239010e08636f6f6c67616d65",
    "fb6d61726b0100030272310109047369746503616e6e0200030272300003027232010904626c6f6703626f6200000400",
    "0000000000000904626c6f6703616e6e000904626c6f6703626f62010302723200000e08636f6f6c67616d65046d6172",
    "6b0103027239010009047369746503616e6e0103027231020003000000000000000403616e6effffffffffffffff0403",
    "626f62010000000000000005046d61726b0000000000000000040000000000000028508d16",
);

/// `crash-a1857898ab8ae74b89b6570ee41398a018327f5f` (853 bytes).
const OVERLAY_USER_COUNT: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d204000000000000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "02633002633104776964654e00000000000000000100027231047369746503616e6e0200ff3f2b9c1e0b7a4c1e9a531d",
    "2e3f4a5b6c056e6f746573046d61726b000002723008636f6f6c67616d65046d61726b000002723204626c6f6703616e",
    "6e100000000000000004000000000000000000000000000000d68309432d000000000000000000000000000000000000",
    "00000000000000000000000000000000009c0bf75c010000009dedbb3340000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000e4cfb0000f00000000000000000000",
    "0010000000000000000400000000000000bf4e0c382d000000f42160f1400000000000000000000000099509f8010000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000041fe4fa70f000000000000000000000000000000000000",
    "001000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000f2b5cf58010000000000000000000000d83a96b70f0000",
    "001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000020000000000000002000004040000000000000003027239010e08636f6f6c67616d65",
    "046d61726b0100030272310109047369746503616e6e02000302047e0003027232010904626c6f6703626f6200000400",
    "0000000000000904626c6f6703616e6e000904626c6f6703626f62010302723200000e08636f6f6c67616d65046d6172",
    "6b0103027239010009047369746503616e6e0103027231020003000000000000000403616e6effffffffffffffff0403",
    "626f62010000000000000005046d61726b0000000000000000040000000000000028508d16",
);

/// `crash-529bdd99ffbb6c5ca03e231de48a3d515ee5db3b` (853 bytes).
const APP_COUNT_FOLD: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d204000000000000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "02633002633104776964654e00000000000000000100027231047369746503616e6e0200ff3f2b9c1e0b7a4c1e9a531d",
    "2e3f4a5b6c056e6f746573046d61726b000002723008636f6f6c67616d65046d61726b000002723204626c6f6703616e",
    "6e100000000000000004000000000000000000000000000000d68309432d000000000000000000000000000000000000",
    "00000000000000000000000000000000009c0bf75c010000009dedbb3340000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000e4cfb0000f00000000000000000000",
    "0010000000000000000400000000000000bf4e0c392d000000f42160f1400000000000000000000000099509f8010000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000041fe4fa70f000000000000000000000000000000000000",
    "001000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000f2b5cf58010000000000000000000000d83a96b70f0000",
    "00100000000000000000000000000000000000f9ffffffffffffff000000000000000000000000000000000000000000",
    "00000000000000000000000000020000000000000002000004040000000000000003027239010e08636f6f6c67616d65",
    "046d61726b0100030272310109047369746503616e6e0200030272300003027232010904626c6f6703626f6200000400",
    "0000000000000904626c6f6703616e6e000904626c6f6703626f62010302723300000e08636f6f6c67616d65046d6172",
    "6b0103027239010009047369746503616e6e0103027231020003000000000000000403616e6effffffffffffffff0403",
    "626f62010000000000000005046d61726b000000000000000004000000d400000000000000",
);

/// `crash-6c9dfd944c506876c06393eeb02733897e646ae0` (853 bytes).
const BASE_EMPTY_NAME: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d20400ffff000000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "02633002633104776964654e00000000000000000100027231047369746503616e6e0200ff3f2b9c1e0b7a4c1e9a531d",
    "2e3f4a5b6c6d73657405046f6e61726b000002723008636f6f6c67616d65046d61726b000002723204626c6f6703616e",
    "6e100000000000000004000000000000000000000000000000d68309432d000000000000000000000000000000000000",
    "00000000000000000000000000000000009c0bf75c010000009dedbb3340000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000e4cfb0000f00000000000000000000",
    "0010000000000000000400000000000000bf4e0c382d000000f42160f1400000000000000000000000099509f8010000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000041fe4fa70f000000000000000000000000000000000000",
    "001000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000f2b5cf58010000000000000000000000d83a96b70f0000",
    "001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000020000000000000002000000040000000000000003027234010e08636f6f6c67616d65",
    "046d61726b0100030272310109047369746503616e6e0200030272300003027232010904626c6f6703626f6200000400",
    "0000000000000904626c6f6703616e6e000904626c6f6703626f62010302723200000e08636f6f6c67616d65046d6172",
    "6b0103027239010009047369746503616e6e0103027231020003000000000000000403616e6effffffffffffffff0403",
    "626f62010000000000000005046d61726b0000000000000000040000000000000028508d16",
);

const PATCH_DAMAGED_RECORD: &str = concat!(
    "434c4e53434b5031020000002a00000000000000d204000000000000280000000000000000000000000000000000000000000000000000000000000000000000185519ae6b62635303000000",
    "02633002633104776964654e00000000000000000100027231047369746503616e6e0200ffffff9c1e0b7a4c1e9a531d",
    "2e3f4aa093056e6f746573046d61726b0000027230fe626f6f6c67616d65046d0072026b0061723204626c6f6703616e",
    "6e100000000000000004000000000000000000000000000000d68309432d000000000000000000000000000000000000",
    "00000000000000000000000000000000009c0bf75c010000009dedbb3340000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000e4cfb0000f00000000000000000000",
    "0010000000000000000400000000000000bf4e0c382d000000f42160f1400000000000000000000000099509f8010000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000041fe4fa70f000000000000000000000000000000000000",
    "001000000000000000020000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000f2b5cf58010000000000000000000000d83a96b70f0000",
    "001000000000000000000000000000000000000000000000346600000000000000000000000000000000000000000000",
    "00000000000000000000000000020000000000000002000000040000000000000003027231010e08636f6f6c67616d65",
    "046d61726b0100030272310109047369746503616e6e0200030272300003027232010904626c6f6703626f6200000400",
    "0000000000000904626c6f6703616e6e000904626c6f6703626f62010302723200000e08636f6f6c67616d65046d6172",
    "6b0103027239010009047369746503656e6e0103027231020003000000000000000403616e6effffffffffffffff0403",
    "626f62010000000000000005046d61726b0000000000000000040000000000000028508d16",
);
