//! `clusterns dnssec keygen` and `clusterns dnssec show` through the real binary: the key
//! file (name, mode 0600, never overwritten), the printed DNSKEY and DS records (checked with
//! hickory: the DS parses as a DS record and covers the DNSKEY), and the errors. Also, with a
//! counting allocator (this binary's own), that `SigningKey::sign` allocates nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use hickory_proto::rr::dnssec::rdata::{DNSSECRData, DNSKEY};
use hickory_proto::rr::dnssec::Algorithm;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;

const BIN: &str = env!("CARGO_BIN_EXE_clusterns");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("CLUSTERNS_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The printed DNSKEY line as hickory's DNSKEY (hickory 0.24 reads no DNSKEY text, so the
/// fields are taken apart here): owner, TTL, flags, algorithm, key.
fn dnskey_of(line: &str) -> (Name, u32, u16, DNSKEY) {
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 8, "{line}");
    assert_eq!((f[2], f[3], f[5]), ("IN", "DNSKEY", "3"), "{line}");
    let flags: u16 = f[4].parse().unwrap();
    let algorithm = Algorithm::from_u8(f[6].parse().unwrap());
    let key = base64::engine::general_purpose::STANDARD
        .decode(f[7])
        .unwrap();
    let dnskey = DNSKEY::new(flags & 0x100 != 0, flags & 1 != 0, false, algorithm, key);
    assert_eq!(dnskey.flags(), flags);
    (
        Name::from_ascii(f[0]).unwrap(),
        f[1].parse().unwrap(),
        flags,
        dnskey,
    )
}

/// The printed DS line, parsed by hickory's zone file parser.
fn ds_of(line: &str) -> hickory_proto::rr::dnssec::rdata::DS {
    let (_, records) = Parser::new(format!("{line}\n"), None, Some(Name::root()))
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    let set = records.values().next().unwrap();
    assert_eq!(set.record_type(), RecordType::DS);
    match set.records_without_rrsigs().next().unwrap().data() {
        Some(RData::DNSSEC(DNSSECRData::DS(ds))) => ds.clone(),
        other => panic!("not a DS: {other:?}"),
    }
}

#[test]
fn keygen_writes_a_private_file_and_prints_records_that_match() {
    for (algorithm, number, key_len) in [("ecdsap256sha256", 13u8, 64), ("ed25519", 15, 32)] {
        let dir = tempfile::tempdir().unwrap();
        let out = stdout(&run(
            dir.path(),
            &[
                "dnssec",
                "keygen",
                "--zone",
                "Repl.Co",
                "--algorithm",
                algorithm,
            ],
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let (owner, ttl, flags, dnskey) = dnskey_of(lines[1]);
        assert_eq!(owner, Name::from_ascii("repl.co.").unwrap());
        assert_eq!((ttl, flags), (3600, 257));
        assert_eq!(u8::from(dnskey.algorithm()), number);
        assert_eq!(dnskey.public_key().len(), key_len);
        let tag = dnskey.calculate_key_tag().unwrap();

        // BIND's file name, in the current folder, mode 0600.
        let name = format!("Krepl.co.+{number:03}+{tag:05}.key");
        assert_eq!(lines[0], name);
        let path = dir.path().join(&name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("zone = \"repl.co\"\n"), "{text}");
        assert!(
            text.contains(&format!("algorithm = \"{algorithm}\"")),
            "{text}"
        );

        // The DS parses as a DS record and covers the DNSKEY.
        assert!(lines[2].starts_with(&format!("repl.co. 3600 IN DS {tag} {number} 2 ")));
        let ds = ds_of(lines[2]);
        assert_eq!(ds.key_tag(), tag);
        assert!(ds.covers(&owner, &dnskey).unwrap());
        assert!(!ds
            .covers(&Name::from_ascii("repl.com.").unwrap(), &dnskey)
            .unwrap());

        // show prints the same records (with the TTL asked for).
        let shown = stdout(&run(dir.path(), &["dnssec", "show", &name]));
        assert_eq!(shown, format!("{}\n{}\n", lines[1], lines[2]));
        let shown = stdout(&run(dir.path(), &["dnssec", "show", &name, "--ttl", "300"]));
        assert_eq!(
            shown,
            format!(
                "{}\n{}\n",
                lines[1].replacen(" 3600 ", " 300 ", 1),
                lines[2].replacen(" 3600 ", " 300 ", 1)
            )
        );
    }
}

#[test]
fn roles_out_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let zsk = stdout(&run(
        dir.path(),
        &[
            "dnssec", "keygen", "--zone", "repl.co", "--role", "zsk", "--out", "z.key", "--ttl",
            "86400",
        ],
    ));
    let lines: Vec<&str> = zsk.lines().collect();
    // A zsk has no DS: the parent never sees it.
    assert_eq!(lines.len(), 2, "{zsk}");
    assert_eq!(lines[0], "z.key");
    let (_, ttl, flags, _) = dnskey_of(lines[1]);
    assert_eq!((ttl, flags), (86400, 256));
    assert_eq!(
        stdout(&run(
            dir.path(),
            &["dnssec", "show", "z.key", "--ttl", "86400"]
        )),
        format!("{}\n", lines[1])
    );
    let ksk = stdout(&run(
        dir.path(),
        &[
            "dnssec", "keygen", "--zone", "repl.co", "--role", "ksk", "--out", "k.key",
        ],
    ));
    let lines: Vec<&str> = ksk.lines().collect();
    assert_eq!(lines.len(), 3, "{ksk}");
    assert_eq!(dnskey_of(lines[1]).2, 257);
    assert_eq!(
        std::fs::metadata(dir.path().join("k.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn keygen_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("taken.key"), "precious\n").unwrap();
    let err = stderr(&run(
        dir.path(),
        &[
            "dnssec",
            "keygen",
            "--zone",
            "repl.co",
            "--out",
            "taken.key",
        ],
    ));
    assert!(
        err.contains("taken.key already exists: not overwritten"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken.key")).unwrap(),
        "precious\n"
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        dir.path(),
        &["dnssec", "keygen", "--zone", "repl.co", "--out", "good.key"],
    ));
    assert!(out.starts_with("good.key\n"));
    let good = std::fs::read_to_string(dir.path().join("good.key")).unwrap();

    // A file others may read: refused, with the fix.
    let open = dir.path().join("open.key");
    std::fs::write(&open, &good).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = stderr(&run(dir.path(), &["dnssec", "show", "open.key"]));
    assert_eq!(
        err,
        "clusterns: open.key: a private key readable by group or others (mode 0644): \
         run `chmod 600 open.key`\n"
    );

    // A bad field: the file and the line.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, good.replace("role = \"csk\"", "role = \"boss\"")).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = stderr(&run(dir.path(), &["dnssec", "show", "bad.key"]));
    assert!(
        err.starts_with("clusterns: bad.key:4: unknown role \"boss\""),
        "{err}"
    );

    let err = stderr(&run(dir.path(), &["dnssec", "show", "missing.key"]));
    assert!(
        err.starts_with("clusterns: missing.key: cannot open: "),
        "{err}"
    );

    // A zone that is no domain name, an unknown algorithm: refused by the command line.
    let err = stderr(&run(dir.path(), &["dnssec", "keygen", "--zone", "a..b"]));
    assert!(err.contains("has an empty label"), "{err}");
    let err = stderr(&run(
        dir.path(),
        &[
            "dnssec",
            "keygen",
            "--zone",
            "repl.co",
            "--algorithm",
            "rsasha256",
        ],
    ));
    assert!(
        err.contains("possible values: ecdsap256sha256, ed25519"),
        "{err}"
    );
    // Nothing was written by the failures.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bad.key", "good.key", "open.key"]);
}

#[test]
fn man_pages_and_completions_know_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&run(dir.path(), &["manpages", "man"]));
    for page in [
        "clusterns-dnssec.1",
        "clusterns-dnssec-keygen.1",
        "clusterns-dnssec-show.1",
    ] {
        assert!(dir.path().join("man").join(page).exists(), "{page}");
    }
    let bash = stdout(&run(dir.path(), &["completions", "bash"]));
    assert!(
        bash.contains("keygen") && bash.contains("ecdsap256sha256"),
        "no dnssec in bash completions"
    );
}

/// Counts this thread's heap allocations, for `signing_allocates_nothing` (a thread-local
/// count: the other tests of this binary run on other threads).
struct Counting;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the count is a
// thread-local Cell with a const initializer and no destructor, so touching it neither
// allocates nor re-enters the allocator.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (the contract of `dealloc`).
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `SigningKey::sign` allocates nothing on the heap, for both algorithms (it runs where an
/// RRSIG cache misses, on the query path's side).
#[test]
fn signing_allocates_nothing() {
    use clusterns::dnssec::key::{Algorithm, Role, SigningKey};
    let zone = "repl.co".parse().unwrap();
    let data = [7u8; 300];
    for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let (key, _) = SigningKey::generate(&zone, algorithm, Role::Csk, 0).unwrap();
        // Once outside the count: ring's CPU feature detection and the random number
        // generator's first use set themselves up.
        key.sign(&data).unwrap();
        let before = ALLOCATIONS.with(|n| n.get());
        for _ in 0..100 {
            std::hint::black_box(key.sign(std::hint::black_box(&data)).unwrap());
        }
        let after = ALLOCATIONS.with(|n| n.get());
        assert_eq!(after - before, 0, "{algorithm:?}");
        // The counter counts: a Vec is one allocation.
        std::hint::black_box(vec![0u8; 10]);
        assert_eq!(ALLOCATIONS.with(|n| n.get()), after + 1);
    }
}
