//! The test fixture every kind of test shares: one configuration with every shape of name, the
//! apps loaded into it, and the snapshot of both. Unit tests, the end-to-end tests, the
//! benches and the fuzz targets build their data from here instead of writing configs out.
//!
//! Compiled for the crate's own tests and with the `testkit` feature (which `tests/`,
//! `benches/` and `fuzz/` turn on); not part of the server.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::config::Config;
use crate::snapshot::{Served, Snapshot};
use crate::table::{App, Table};

/// `[feed]` for an in-memory snapshot: a journal that is never read.
pub const FEED: &str = "[feed]\njournal = \"j\"\n";

/// The zone `repl.co` with everything an apex can hold: NS (one in-zone host with glue, one in
/// an empty non-terminal, one outside), A, AAAA, TXT, MX, CAA, the ACME delegation, a negative
/// TTL of 30 s and an SOA with TTL 600 and serial 7.
pub const REPL_CO: &str = r#"
[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co", "ns2.infra.repl.co", "ns.example.net"]
a = ["192.0.2.1"]
aaaa = ["2001:db8::1"]
txt = ["v=spf1 -all"]
mx = [{ preference = 10, exchange = "mx.example.net" }]
caa = [{ tag = "issue", value = "letsencrypt.org" }]
acme_validation_zone = "acme.example.net"
negative_ttl = 30
soa = { rname = "hostmaster.repl.co", ttl = 600, serial = 7 }
[[zone.host]]
name = "ns1"
a = ["192.0.2.53"]
aaaa = ["2001:db8::53"]
[[zone.host]]
name = "ns2.infra"
a = ["192.0.2.54"]
"#;

/// A zone nested under `repl.co`, and one with its own TTL.
pub const OTHER_ZONES: &str = r#"
[[zone]]
apex = "sub.repl.co"
ns = ["ns.example.net"]
soa = { rname = "hostmaster.repl.co" }
[[zone]]
apex = "repl.dev"
ttl = 30
ns = ["ns.example.net"]
soa = { rname = "hostmaster.repl.co" }
"#;

/// Cluster `c0` (index 0): one IPv4 and one IPv6 address.
pub const C0: &str = r#"
[[cluster]]
name = "c0"
ipv4 = ["203.0.113.1"]
ipv6 = ["2001:db8::1"]
"#;

/// Cluster `c1` (index 1 after [`C0`]): two IPv4 addresses.
pub const C1: &str = r#"
[[cluster]]
name = "c1"
ipv4 = ["198.51.100.1", "198.51.100.2"]
"#;

/// IPv6 addresses of cluster [`WIDE`]: its AAAA answer is over 512 bytes but fits 1232.
pub const WIDE_V6: usize = 40;
/// IPv6 addresses of cluster [`HUGE`]: its AAAA answer does not fit 1232 bytes.
pub const HUGE_V6: usize = 60;

/// The labels of the zone whose validation zone makes a CNAME target of up to 255 bytes.
pub fn long_validation_zone() -> String {
    format!("{}.{}.example.net", "l".repeat(60), "m".repeat(50))
}

/// A TOML list of `n` IPv6 addresses in `2001:db8:<net>::/64`.
pub fn v6_list(n: usize, net: u16) -> String {
    (0..n)
        .map(|i| format!("\"2001:db8:{net:x}::{:x}\"", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cluster `name` with one IPv4 address and `v6` IPv6 addresses in `2001:db8:<net>::/64`.
pub fn cluster(name: &str, v4: &str, v6: usize, net: u16) -> String {
    format!(
        "\n[[cluster]]\nname = \"{name}\"\nipv4 = [\"{v4}\"]\nipv6 = [{}]\n",
        v6_list(v6, net)
    )
}

/// Clusters `wide` (index 2) and `huge` (index 3), to follow [`C0`] and [`C1`].
pub fn wide_and_huge() -> String {
    cluster("wide", "198.51.100.3", WIDE_V6, 1) + &cluster("huge", "198.51.100.4", HUGE_V6, 2)
}

/// The zone `x.co` with the validation zone `validation_zone` (for [`long_validation_zone`]
/// and its variants: CNAME targets near the 255-byte limit).
pub fn x_co(validation_zone: &str) -> String {
    format!(
        "\n[[zone]]\napex = \"x.co\"\nns = [\"ns.example.net\"]\n\
         acme_validation_zone = \"{validation_zone}\"\nsoa = {{ rname = \"hostmaster.repl.co\" }}\n"
    )
}

/// The fixture configuration: [`FEED`], [`REPL_CO`], [`OTHER_ZONES`], the zone [`x_co`] with
/// the [`long_validation_zone`], and clusters c0, c1, wide, huge (indices 0 to 3).
pub fn config_text() -> String {
    format!(
        "{FEED}{REPL_CO}{OTHER_ZONES}{}{C0}{C1}{}",
        x_co(&long_validation_zone()),
        wide_and_huge()
    )
}

/// Parses a fixture configuration text (as the file `t.toml`); panics on an error.
pub fn parse(text: &str) -> Config {
    match Config::parse(Path::new("t.toml"), text) {
        Ok(c) => c,
        Err(e) => panic!("fixture config: {e}"),
    }
}

/// An app; panics when a label is not valid.
pub fn app(id: &str, user: &str, slug: &str, cluster: u16) -> App {
    App {
        id: id.parse().expect("fixture repl id"),
        user: user.parse().expect("fixture user"),
        slug: slug.parse().expect("fixture slug"),
        cluster,
    }
}

/// A snapshot of `config` and `apps` at sequence number 0.
pub fn snapshot_of(config: &Config, apps: &[App]) -> Snapshot {
    let table = Table::build(apps).expect("fixture apps are unique");
    Snapshot::new(Arc::new(Served::from_config(config)), Arc::new(table), 0)
}

/// The repl id of the app that lives in [`snapshot`]'s overlay.
pub const UUID: &str = "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c";

/// The apps of [`snapshot`]'s base table: one per cluster, one on a cluster the configuration
/// lacks (index 7), and one with 63-byte labels.
pub fn apps() -> Vec<App> {
    let (s63, u63) = ("s".repeat(63), "u".repeat(63));
    vec![
        app("r0", "mark", "coolgame", 0),
        app("r1", "ann", "site", 1),
        app("r2", "ann", "wide", 2),
        app("r3", "ann", "huge", 3),
        app("r7", "zed", "lost", 7),
        app("r8", &u63, &s63, 0),
    ]
}

/// The fixture snapshot (built once): [`config_text`]'s zones, the base table of [`apps`],
/// and an overlay on top of it (an app with a UUID id on c1, a deleted app whose user has no
/// app left).
pub fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let cfg = parse(&config_text());
        let mut table = Table::build(&apps()).expect("fixture apps are unique");
        table
            .upsert(UUID, "mark", "notes", 1)
            .expect("fixture upsert");
        table
            .upsert("r9", "bob", "blog", 0)
            .expect("fixture upsert");
        table.delete("r9").expect("fixture delete");
        Snapshot::new(Arc::new(Served::from_config(&cfg)), Arc::new(table), 0)
    })
}

/// Challenge TXT values held in [`acme_snapshot`]: two at `_acme-challenge.mark.repl.dev`
/// (user `mark` exists), one at the apex's, one at `_acme-challenge.nobody.repl.dev` (no such
/// owner).
pub const ACME_VALUES: [(&str, &str); 4] = [
    ("_acme-challenge.mark.repl.dev", "first-token"),
    ("_acme-challenge.mark.repl.dev", "second-token"),
    ("_acme-challenge.repl.dev", "apex-token"),
    ("_acme-challenge.nobody.repl.dev", "orphan-token"),
];

/// [`snapshot`]'s configuration and apps (`repl.dev` answers challenges with TXT records: it
/// has no validation zone) with the challenge records of [`ACME_VALUES`], expiring at 1000.
pub fn acme_snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let base = snapshot();
        let mut table = (*base.table).clone();
        for (name, value) in ACME_VALUES {
            let name = name.parse().expect("fixture challenge name");
            table
                .acme_mut()
                .add(&name, value.as_bytes(), 1000)
                .expect("fixture challenge value");
        }
        Snapshot::new(base.served.clone(), Arc::new(table), 0)
    })
}

/// Writes a key file for `zone` with `algorithm` and `role` into `dir` (mode 0600) and
/// returns its path.
pub fn write_key(
    dir: &Path,
    zone: &str,
    algorithm: crate::dnssec::key::Algorithm,
    role: crate::dnssec::key::Role,
) -> std::path::PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let apex = zone.parse().expect("fixture zone");
    let (key, text) =
        crate::dnssec::key::SigningKey::generate(&apex, algorithm, role, 0).expect("fixture key");
    let path = dir.join(format!("{zone}-{}.key", key.key_tag()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("fixture key file");
    f.write_all(text.as_bytes()).expect("fixture key file");
    path
}

/// [`config_text`] with `repl.co` signed by a CSK of `algorithm` and `repl.dev` (which
/// answers challenges with TXT records) by a KSK and a ZSK of it, their key files written
/// into `dir`, and `extra` appended (a `[dnssec]` table, say); the configuration is
/// `dir/t.toml`.
pub fn signed_config(dir: &Path, algorithm: crate::dnssec::key::Algorithm, extra: &str) -> Config {
    use crate::dnssec::key::Role;
    let csk = write_key(dir, "repl.co", algorithm, Role::Csk);
    let ksk = write_key(dir, "repl.dev", algorithm, Role::Ksk);
    let zsk = write_key(dir, "repl.dev", algorithm, Role::Zsk);
    let key = |zone: &str, p: &Path| {
        format!(
            "[[zone.dnssec.key]]\nfile = {:?}\nstate = \"active\"\n",
            p.file_name().unwrap().to_str().unwrap()
        )
        .replace("[[zone.", &format!("# {zone}\n[[zone."))
    };
    // Each zone's keys go right after its own `[[zone]]` table (before its hosts).
    let text = config_text()
        .replacen(
            "soa = { rname = \"hostmaster.repl.co\", ttl = 600, serial = 7 }\n",
            &format!(
                "soa = {{ rname = \"hostmaster.repl.co\", ttl = 600, serial = 7 }}\n{}",
                key("repl.co", &csk)
            ),
            1,
        )
        .replacen(
            "apex = \"repl.dev\"\nttl = 30\nns = [\"ns.example.net\"]\nsoa = { rname = \"hostmaster.repl.co\" }\n",
            &format!(
                "apex = \"repl.dev\"\nttl = 30\nns = [\"ns.example.net\"]\nsoa = {{ rname = \"hostmaster.repl.co\" }}\n{}{}",
                key("repl.dev", &ksk),
                key("repl.dev", &zsk)
            ),
            1,
        )
        + extra;
    match Config::parse(&dir.join("t.toml"), &text) {
        Ok(c) => c,
        Err(e) => panic!("signed fixture config: {e}\n{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_parses_and_answers() {
        let snap = snapshot();
        assert_eq!(parse(&config_text()).clusters.len(), 4);
        assert!(snap.served.find_zone(b"\x01x\x04repl\x02co\x00").is_some());
    }
}
