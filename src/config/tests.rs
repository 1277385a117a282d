//! Tests of configuration parsing: good files, and errors with their locations.

use super::*;

const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:0"]
threads = 2

[feed]
source = "journal"
journal = "journal.log"

[[zone]]
apex = "Repl.CO"
ns = ["ns1.repl.co", "ns.example.net"]
a = ["192.0.2.1"]
acme_validation_zone = "acme.example.net"
soa = { rname = "hostmaster.repl.co", serial = 7 }
[[zone.host]]
name = "ns1"
a = ["192.0.2.53"]

[[cluster]]
name = "us-east"
ipv4 = ["203.0.113.1", "203.0.113.2"]
ipv6 = ["2001:db8::1"]
"#;

#[test]
fn parses_a_good_config() {
    let c = Config::parse(Path::new("/etc/clusterns/c.toml"), GOOD).unwrap();
    assert_eq!(c.server.threads, 2);
    assert_eq!(
        c.feed.source,
        SourceConfig::Journal {
            path: PathBuf::from("/etc/clusterns/journal.log")
        }
    );
    assert_eq!(c.feed.checkpoint, None);
    assert_eq!(c.feed.poll_interval_ms, 2);
    let pg = GOOD.replace(
        "source = \"journal\"",
        "source = \"postgres\"\npostgres = \"host=127.0.0.1\"\ncheckpoint = \"c.ckpt\"",
    );
    let c = Config::parse(Path::new("/etc/clusterns/c.toml"), &pg).unwrap();
    assert_eq!(
        c.feed.source,
        SourceConfig::Postgres {
            conninfo: "host=127.0.0.1".into()
        }
    );
    assert_eq!(
        c.feed.checkpoint,
        Some(PathBuf::from("/etc/clusterns/c.ckpt"))
    );
    let z = &c.zones[0];
    assert_eq!(z.apex.to_string(), "repl.co.");
    assert_eq!(z.ttl, 60);
    assert_eq!(z.soa.serial, 7);
    assert_eq!(z.soa.refresh, 3600);
    assert_eq!(z.hosts[0].name.to_string(), "ns1.repl.co.");
    assert_eq!(c.clusters[0].ipv4.len(), 2);
    assert_eq!(c.cluster_index("us-east"), Some(0));
    assert_eq!(c.cluster_index("nope"), None);
}

fn err(text: &str) -> ConfigError {
    Config::parse(Path::new("c.toml"), text).unwrap_err()
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = err("[server]\nthreads = 1\nlisten = [\"nonsense\"]\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.to_string().starts_with("c.toml:3:"), "{e}");
}

#[test]
fn bad_address_and_name_are_located() {
    let bad_ip = GOOD.replace("203.0.113.2", "203.0.113.300");
    let e = err(&bad_ip);
    assert_eq!(
        e.line,
        Some(line_of(&bad_ip, bad_ip.find("203.0.113.300").unwrap()))
    );
    let bad_name = GOOD.replace("Repl.CO", "repl..co");
    let e = err(&bad_name);
    assert_eq!(
        e.line,
        Some(line_of(&bad_name, bad_name.find("repl..co").unwrap()))
    );
    assert!(e.message.contains("empty label"), "{e}");
}

#[test]
fn semantic_errors_are_reported() {
    let dup = format!("{GOOD}\n[[cluster]]\nname = \"us-east\"\nipv4 = [\"192.0.2.9\"]\n");
    let e = err(&dup);
    assert!(e.message.contains("duplicate cluster"), "{e}");
    assert!(e.line.unwrap() > 20, "{e}");

    // Two hosts of one name (the check once compared absolute names with a relative one).
    let twice = GOOD.replace(
        "[[zone.host]]\nname = \"ns1\"\n",
        "[[zone.host]]\nname = \"ns1\"\na = [\"192.0.2.9\"]\n[[zone.host]]\nname = \"NS1\"\n",
    );
    assert_ne!(twice, GOOD);
    let e = err(&twice);
    assert!(e.message.contains("duplicate host"), "{e}");
    assert_eq!(
        e.line,
        Some(line_of(&twice, twice.rfind("[[zone.host]]").unwrap()))
    );

    let noglue = GOOD.replace("name = \"ns1\"", "name = \"ns9\"");
    let e = err(&noglue);
    assert!(e.message.contains("glue"), "{e}");
    assert_eq!(e.line, Some(12));

    let e = err(&GOOD.replace("source = \"journal\"", "source = \"carrier-pigeon\""));
    assert!(e.message.contains("unknown feed source"), "{e}");
    assert_eq!(e.line, Some(7));

    let e = err(&GOOD.replace("threads = 2", "threads = 2\nbogus = 1"));
    assert!(e.message.contains("unknown field"), "{e}");
    assert_eq!(e.line, Some(5));

    let e = err(&GOOD.replace("threads = 2", "threads = 2\nudp_coalesce_us = 1001"));
    assert!(e.message.contains("udp_coalesce_us"), "{e}");

    // A CAA tag is letters and digits (found by the config fuzz target: "issue$" was
    // accepted and encoded into an answer that no parser accepts).
    for tag in ["issue$", "", "issuewildcardxyz1", "is-sue"] {
        let text = GOOD.replace(
            "a = [\"192.0.2.1\"]",
            &format!("a = [\"192.0.2.1\"]\ncaa = [{{ tag = \"{tag}\", value = \"ca.example\" }}]"),
        );
        let e = err(&text);
        assert!(e.message.contains("caa tag"), "{tag}: {e}");
        assert_eq!(e.line, Some(14), "{tag}: {e}");
    }
    let ok = GOOD.replace(
        "a = [\"192.0.2.1\"]",
        "a = [\"192.0.2.1\"]\ncaa = [{ tag = \"issuewild\", value = \"ca.example\" }]",
    );
    assert_eq!(
        Config::parse(Path::new("c.toml"), &ok).unwrap().zones[0]
            .caa
            .len(),
        1
    );
}

#[test]
fn udp_coalescing_is_read() {
    let c = Config::parse(Path::new("c.toml"), GOOD).unwrap();
    assert_eq!(c.server.udp_coalesce_us, 100);
    for v in [0, 1000] {
        let text = GOOD.replace(
            "threads = 2",
            &format!("threads = 2\nudp_coalesce_us = {v}"),
        );
        let c = Config::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!(c.server.udp_coalesce_us, v);
    }
}

#[test]
fn server_limits_and_the_metrics_port_are_located() {
    for (setting, what) in [
        ("udp_payload = 100", "udp_payload"),
        ("tcp_max_connections = 0", "tcp_max_connections"),
        ("udp_coalesce_us = 5000", "udp_coalesce_us"),
    ] {
        let text = GOOD.replace("threads = 2", &format!("threads = 2\n{setting}"));
        let e = err(&text);
        assert!(e.message.contains(what), "{e}");
        assert_eq!(
            e.line,
            Some(line_of(&text, text.find(setting).unwrap())),
            "{e}"
        );
    }
    let text =
        GOOD.replace("127.0.0.1:0", "127.0.0.1:5300") + "\n[metrics]\nlisten = \"0.0.0.0:5300\"\n";
    let e = err(&text);
    assert!(e.message.contains("metrics.listen"), "{e}");
    assert_eq!(
        e.line,
        Some(line_of(&text, text.find("listen = \"0.0.0.0").unwrap()))
    );
    // Another port, or the same port on another address, is fine.
    let ok = GOOD.replace("127.0.0.1:0", "127.0.0.1:5300")
        + "\n[metrics]\nlisten = \"127.0.0.2:5300\"\n";
    assert!(Config::parse(Path::new("c.toml"), &ok).is_ok());
}

#[test]
fn passwords_are_left_out_of_printed_conninfo() {
    for (given, shown) in [
        (
            "host=db user=ns password=s3cret dbname=repls",
            "host=db user=ns password=*** dbname=repls",
        ),
        (
            "host=db password='two words' user=ns",
            "host=db password=*** user=ns",
        ),
        ("host=db user=ns", "host=db user=ns"),
        (
            "postgresql://ns:s3cret@db:5432/repls?sslmode=require",
            "postgresql://ns:***@db:5432/repls?sslmode=require",
        ),
        (
            "postgres://db/repls?user=ns&password=s3cret",
            "postgres://db/repls?user=ns&password=***",
        ),
        ("postgresql://ns@db/repls", "postgresql://ns@db/repls"),
    ] {
        let out = redact_conninfo(given);
        assert_eq!(out, shown);
        assert!(!out.contains("s3cret") && !out.contains("words"), "{out}");
    }
}

#[test]
fn the_control_socket_is_optional_and_relative_to_the_file() {
    let c = Config::parse(Path::new("/etc/clusterns/c.toml"), GOOD).unwrap();
    assert_eq!(c.control, None, "no [control]: no socket");
    let text = format!("{GOOD}\n[control]\nsocket = \"run/ctl.sock\"\n");
    let c = Config::parse(Path::new("/etc/clusterns/c.toml"), &text).unwrap();
    let ctl = c.control.unwrap();
    assert_eq!(ctl.socket, PathBuf::from("/etc/clusterns/run/ctl.sock"));
    assert_eq!(ctl.line, GOOD.lines().count() + 3);
    let text = format!("{GOOD}\n[control]\nsocket = \"{PACKAGE_SOCKET}\"\n");
    let c = Config::parse(Path::new("/etc/clusterns/c.toml"), &text).unwrap();
    assert_eq!(c.control.unwrap().socket, PathBuf::from(PACKAGE_SOCKET));
}

#[test]
fn bad_control_sockets_are_located() {
    let line = GOOD.lines().count() + 3;
    for (value, says) in [
        ("\"\"", "is empty"),
        ("\"run/\"", "names a directory"),
        (&format!("\"/{}\"", "x".repeat(120)), "at most 107"),
        ("5", "invalid type"),
    ] {
        let e = err(&format!("{GOOD}\n[control]\nsocket = {value}\n"));
        assert_eq!(e.line, Some(line), "{value}: {e}");
        assert!(e.message.contains(says), "{value}: {e}");
    }
    let e = err(&format!("{GOOD}\n[control]\nsokcet = \"x\"\n"));
    assert!(e.message.contains("unknown field"), "{e}");
    assert_eq!(e.line, Some(line), "{e}");
    let e = err(&format!("{GOOD}\n[control]\n"));
    assert!(
        e.message.contains("socket"),
        "a [control] without a socket: {e}"
    );
}

const UPDATE: &str = r#"
[update]
enabled = true
keys = "update.keys"
max_values_per_name = 4
rate = 5
burst = 7

[[update.grant]]
key = "ACME-mark."
names = ["_acme-challenge.*.mark.repl.co", "_acme-challenge.mark.repl.co"]
"#;

#[test]
fn update_is_off_by_default_and_parses() {
    let c = Config::parse(Path::new("/etc/clusterns/c.toml"), GOOD).unwrap();
    assert!(!c.update.enabled);
    assert!(c.update.grants.is_empty());
    let c = Config::parse(
        Path::new("/etc/clusterns/c.toml"),
        &format!("{GOOD}{UPDATE}"),
    )
    .unwrap();
    let u = &c.update;
    assert!(u.enabled);
    assert_eq!(u.keys, Some(PathBuf::from("/etc/clusterns/update.keys")));
    assert_eq!(u.limits.max_values_per_name, 4);
    assert_eq!((u.limits.rate, u.limits.burst), (5, 7));
    assert_eq!(u.limits.max_value_len, 255, "a default");
    assert_eq!(u.grants.len(), 1);
    assert_eq!(u.grants[0].key, "acme-mark");
    assert_eq!(u.grants[0].line, GOOD.lines().count() + 10);
    let name: crate::name::DomainName = "_acme-challenge.app.mark.repl.co".parse().unwrap();
    assert!(u.policy().allows("acme-mark", &name));
}

#[test]
fn bad_update_sections_are_located() {
    let base = GOOD.lines().count();
    for (from, to, line, says) in [
        (
            "max_values_per_name = 4",
            "max_values_per_name = 0",
            base + 5,
            "must be 1 to",
        ),
        (
            "max_values_per_name = 4",
            "max_value_len = 256",
            base + 5,
            "must be 1 to 255",
        ),
        ("burst = 7", "burst = 0", base + 7, "at least 1"),
        (
            "keys = \"update.keys\"",
            "keys = \"\"",
            base + 4,
            "is empty",
        ),
        (
            "keys = \"update.keys\"\n",
            "",
            base + 3,
            "needs update.keys",
        ),
        (
            ", \"_acme-challenge.mark.repl.co\"",
            ", \"www.mark.repl.co\"",
            base + 11,
            "must start with `_acme-challenge.`",
        ),
        (
            ", \"_acme-challenge.mark.repl.co\"",
            ", \"_acme-challenge.example.com\"",
            base + 11,
            "in no configured zone",
        ),
        (
            "key = \"ACME-mark.\"",
            "key = \"\"",
            base + 10,
            "key is empty",
        ),
        (
            "names = [\"_acme-challenge.*.mark.repl.co\", \"_acme-challenge.mark.repl.co\"]",
            "names = []",
            base + 11,
            "has no names",
        ),
        ("rate = 5", "rat = 5", base + 6, "unknown field"),
    ] {
        let text = format!("{GOOD}{UPDATE}");
        assert_eq!(text.matches(from).count(), 1, "{from}");
        let e = err(&text.replace(from, to));
        assert!(e.message.contains(says), "{to}: {e}");
        assert_eq!(e.line, Some(line), "{to}: {e}");
    }
    let no_grant = format!(
        "{GOOD}{}",
        &UPDATE[..UPDATE.find("[[update.grant]]").unwrap()]
    );
    let e = err(&no_grant);
    assert!(e.message.contains("without any [[update.grant]]"), "{e}");
    assert_eq!(e.line, Some(base + 3), "{e}");
}

#[cfg(unix)]
#[test]
fn update_load_reads_the_keys_and_checks_the_grants() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let keys = dir.path().join("update.keys");
    let key = |name: &str| {
        format!("key \"{name}\" {{\n algorithm hmac-sha256;\n secret \"c2VjcmV0\";\n}};\n")
    };
    std::fs::write(&keys, key("acme-mark")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!("{GOOD}{UPDATE}");
    let c = Config::parse(&path, &text).unwrap();
    let (k, policy) = c.update.load().unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!(policy.limits.burst, 7);
    // A grant for a key the file lacks, located at the grant.
    std::fs::write(&keys, key("someone-else")).unwrap();
    let e = c.update.load().unwrap_err();
    assert_eq!(
        (e.file.clone(), e.line),
        (path.clone(), Some(GOOD.lines().count() + 10)),
        "{e}"
    );
    assert!(e.message.contains("not in the key file"), "{e}");
    // A key file others can read, and a broken one, name the key file.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = c.update.load().unwrap_err();
    assert_eq!(e.file, keys);
    assert!(e.message.contains("chmod"), "{e}");
    std::fs::write(&keys, "key \"acme-mark\" {\n algorithm hmac-md5;\n};\n").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = c.update.load().unwrap_err();
    assert_eq!((e.file.clone(), e.line), (keys.clone(), Some(2)), "{e}");
}

#[test]
fn acme_mode_and_section() {
    let c = Config::parse(Path::new("c.toml"), GOOD).unwrap();
    // A validation zone and no `acme`: the CNAME, as before.
    assert_eq!(c.zones[0].acme, AcmeMode::Cname);
    assert_eq!(c.acme, AcmeConfig::default());
    assert_eq!((c.acme.ttl_secs, c.acme.expire_secs), (60, 3600));
    let no_zone = GOOD.replace("acme_validation_zone = \"acme.example.net\"\n", "");
    let c = Config::parse(Path::new("c.toml"), &no_zone).unwrap();
    assert_eq!(c.zones[0].acme, AcmeMode::Txt);
    let txt = GOOD.replace(
        "acme_validation_zone = \"acme.example.net\"\n",
        "acme_validation_zone = \"acme.example.net\"\nacme = \"txt\"\n",
    );
    let c = Config::parse(Path::new("c.toml"), &txt).unwrap();
    assert_eq!(c.zones[0].acme, AcmeMode::Txt);
    let section = format!("{GOOD}\n[acme]\nttl_secs = 5\nexpire_secs = 600\nmax_names = 3\n");
    let c = Config::parse(Path::new("c.toml"), &section).unwrap();
    assert_eq!((c.acme.ttl_secs, c.acme.expire_secs), (5, 600));
    assert_eq!((c.acme.max_names, c.acme.max_values_per_name), (3, 8));

    // Errors name the line.
    let cname = no_zone.replace(
        "a = [\"192.0.2.1\"]\n",
        "a = [\"192.0.2.1\"]\nacme = \"cname\"\n",
    );
    let e = Config::parse(Path::new("c.toml"), &cname).unwrap_err();
    assert!(e.message.contains("needs acme_validation_zone"), "{e}");
    // Inside a `[[zone]]`, the zone's line (as for its other keys).
    assert_eq!(e.line, Some(14), "{e}");
    let other = GOOD.replace(
        "a = [\"192.0.2.1\"]\n",
        "a = [\"192.0.2.1\"]\nacme = \"dns\"\n",
    );
    let e = Config::parse(Path::new("c.toml"), &other).unwrap_err();
    assert!(e.message.contains("expected \"txt\" or \"cname\""), "{e}");
    for (key, value, needle) in [
        ("ttl_secs", "3601", "above 3600"),
        ("expire_secs", "0", "1 to 604800"),
        ("max_value_len", "256", "1 to 255"),
        ("max_values_per_name", "0", "1 to 64"),
        ("max_names", "0", "1 to 1000000"),
    ] {
        let text = format!("{GOOD}\n[acme]\n\n{key} = {value}\n");
        let e = Config::parse(Path::new("c.toml"), &text).unwrap_err();
        assert!(e.message.contains(needle), "{key}: {e}");
        assert_eq!(e.line, Some(GOOD.lines().count() + 4), "{key}: {e}");
    }
    let unknown = format!("{GOOD}\n[acme]\nttl = 5\n");
    assert!(Config::parse(Path::new("c.toml"), &unknown).is_err());
}

/// `GOOD` with its cluster's table followed by `extra` (more keys of it, or more tables).
fn with_cluster(extra: &str) -> String {
    format!("{GOOD}{extra}\n")
}

#[test]
fn cluster_policy_and_checks_are_read() {
    let text = GOOD.replace(
        "ipv4 = [\"203.0.113.1\", \"203.0.113.2\"]",
        "ipv4 = [\"203.0.113.1\", { address = \"203.0.113.2\", weight = 3, priority = 2 }]",
    ) + r#"max_answers = 1
failover = "eu"
degraded_ttl = 20
[cluster.check]
kind = "https"
path = "/healthz"
host = "lb.repl.co"

[[cluster]]
name = "eu"
ipv4 = ["198.51.100.1"]
[cluster.check]
kind = "tcp"
port = 443

[health]
checker = "fra-1"
interval_ms = 500
lease_secs = 10
"#;
    let c = Config::parse(Path::new("c.toml"), &text).unwrap();
    let us = &c.clusters[0];
    assert_eq!(us.ipv4[1].weight, 3);
    assert_eq!(us.ipv4[1].priority, 2);
    assert_eq!((us.ipv4[0].weight, us.ipv4[0].priority), (1, 1));
    assert_eq!(us.max_answers, Some(1));
    assert_eq!(us.failover.as_ref().map(|l| l.as_str()), Some("eu"));
    assert_eq!(us.degraded_ttl, Some(20));
    let check = us.check.as_ref().unwrap();
    assert_eq!(check.port, 443);
    assert_eq!(check.host.as_deref(), Some("lb.repl.co"));
    assert_eq!(
        check.kind,
        CheckKind::Https {
            path: "/healthz".into(),
            expect_status: 200
        }
    );
    assert_eq!(c.clusters[1].check.as_ref().unwrap().kind, CheckKind::Tcp);
    assert_eq!(c.health.interval_ms, 500);
    assert_eq!(c.health.lease_secs, 10);
    assert_eq!(c.health.rise, 2);
    assert_eq!(
        c.health.timeout_ms, 500,
        "an unset timeout is at most the interval"
    );
}

#[test]
fn bad_cluster_policies_are_refused_with_their_line() {
    let line = |text: &str| {
        let e = err(text);
        (e.line, e.message)
    };
    let cases: [(&str, &str); 9] = [
        (
            "failover = \"us-east\"",
            "failover cycle us-east -> us-east",
        ),
        ("failover = \"nowhere\"", "not a configured cluster"),
        ("max_answers = 0", "max_answers is 0"),
        ("degraded_ttl = 100000", "above a day"),
        ("[cluster.check]\nkind = \"icmp\"", "is not one of"),
        ("[cluster.check]\nkind = \"tcp\"", "check.port is needed"),
        (
            "[cluster.check]\nkind = \"http\"\npath = \"healthz\"",
            "must start with /",
        ),
        (
            "[cluster.check]\nkind = \"http\"\nexpect_status = 42",
            "not an HTTP status",
        ),
        (
            "[health]\ninterval_ms = 1000\nlease_secs = 2",
            "at least three intervals",
        ),
    ];
    for (extra, want) in cases {
        let (l, message) = line(&with_cluster(extra));
        assert!(message.contains(want), "{extra:?}: {message}");
        assert!(l.is_some(), "{extra:?}: no line in {message}");
    }
    // A cycle through two clusters, reported at the first cluster that starts it.
    let two = with_cluster("failover = \"eu\"\n[[cluster]]\nname = \"eu\"\nipv4 = [\"198.51.100.1\"]\nfailover = \"us-east\"");
    let (l, message) = line(&two);
    assert!(message.contains("us-east -> eu -> us-east"), "{message}");
    assert_eq!(l, Some(20));
    // Addresses: twice, every one drained, a weight out of range.
    for (ipv4, want) in [
        (r#"["203.0.113.1", "203.0.113.1"]"#, "twice"),
        (
            r#"[{ address = "203.0.113.1", weight = 0 }]"#,
            "weight 0 (drained)",
        ),
        (
            r#"[{ address = "203.0.113.1", weight = 70000 }]"#,
            "at most 65535",
        ),
    ] {
        let text = GOOD.replace(r#"["203.0.113.1", "203.0.113.2"]"#, ipv4);
        let message = err(&text).message;
        assert!(message.contains(want), "{ipv4}: {message}");
    }
}

/// `GOOD` with `[[zone.dnssec.key]]` tables after its zone (keys made into `dir`) and `extra`
/// appended; parsed as `dir/c.toml`.
fn with_keys(
    dir: &Path,
    keys: &[(&str, crate::dnssec::key::Role, &str)],
    extra: &str,
) -> Result<Config, ConfigError> {
    use crate::dnssec::key::Algorithm;
    let mut list = String::new();
    for (zone, role, state) in keys {
        let file = crate::testkit::write_key(dir, zone, Algorithm::EcdsaP256Sha256, *role);
        list.push_str(&format!(
            "[[zone.dnssec.key]]\nfile = {:?}\nstate = \"{state}\"\n",
            file.file_name().unwrap().to_str().unwrap()
        ));
    }
    let text = GOOD.replacen("[[cluster]]", &format!("{list}\n[[cluster]]"), 1) + extra;
    Config::parse(&dir.join("c.toml"), &text)
}

#[test]
fn dnssec_keys_and_settings_are_read() {
    use crate::dnssec::key::Role;
    let dir = tempfile::tempdir().unwrap();
    let c = with_keys(
        dir.path(),
        &[
            ("repl.co", Role::Ksk, "active"),
            ("repl.co", Role::Zsk, "active"),
            ("repl.co", Role::Zsk, "published"),
        ],
        "[dnssec]\nwindow_days = 3\nvalidity_days = 9\ncache_entries = 100\n",
    )
    .unwrap();
    let d = c.zones[0].dnssec.as_ref().unwrap();
    assert_eq!(d.keys.len(), 3);
    assert_eq!(d.keys[2].state, KeyState::Published);
    assert_eq!((d.settings.window_days, d.settings.validity_days), (3, 9));
    assert_eq!(d.settings.cache_entries, 100);
    assert_eq!(c.dnssec.misses_per_sec, 2000);
    assert!(with_keys(dir.path(), &[], "").unwrap().zones[0]
        .dnssec
        .is_none());
}

#[test]
fn bad_dnssec_settings_and_keys_are_refused_with_their_line() {
    use crate::dnssec::key::Role::{Csk, Ksk, Zsk};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(Result<Config, ConfigError>, &str)> = vec![
        (
            with_keys(d, &[("repl.co", Csk, "on")], ""),
            "key state \"on\"",
        ),
        (
            with_keys(d, &[("example.org", Csk, "active")], ""),
            "is for zone example.org",
        ),
        (
            with_keys(d, &[("repl.co", Ksk, "active")], ""),
            "csk or zsk to sign its records",
        ),
        (
            with_keys(d, &[("repl.co", Zsk, "active")], ""),
            "csk or ksk to sign its DNSKEY",
        ),
        (
            with_keys(
                d,
                &[("repl.co", Csk, "published"), ("repl.co", Zsk, "active")],
                "",
            ),
            "csk or ksk",
        ),
        (
            with_keys(
                d,
                &[
                    ("repl.co", Csk, "active"),
                    ("repl.co", Csk, "active"),
                    ("repl.co", Csk, "active"),
                ],
                "",
            ),
            "at most 2",
        ),
        (
            with_keys(
                d,
                &[("repl.co", Csk, "active")],
                "[dnssec]\nvalidity_days = 7\n",
            ),
            "validity_days",
        ),
        (
            with_keys(
                d,
                &[("repl.co", Csk, "active")],
                "[dnssec]\nwindow_days = 0\n",
            ),
            "window_days",
        ),
        (
            with_keys(
                d,
                &[("repl.co", Csk, "active")],
                "[dnssec]\nmisses_per_sec = 0\n",
            ),
            "misses_per_sec",
        ),
        (
            with_keys(d, &[("repl.co", Csk, "active")], "[dnssec]\ncache = 1\n"),
            "unknown field",
        ),
    ];
    for (result, want) in cases {
        let e = result.expect_err(want);
        assert!(e.message.contains(want), "{want}: {e}");
        assert!(e.line.is_some(), "{want}: no line in {e}");
    }
    // A missing key file and one others may read: named, with the line of its table.
    let text = GOOD.replacen(
        "[[cluster]]",
        "[[zone.dnssec.key]]\nfile = \"nope.key\"\n\n[[cluster]]",
        1,
    );
    let e = Config::parse(&d.join("c.toml"), &text).unwrap_err();
    assert!(
        e.message.contains("nope.key") && e.message.contains("cannot open"),
        "{e}"
    );
    assert!(e.line.is_some());
    let file = crate::testkit::write_key(d, "repl.co", crate::dnssec::key::Algorithm::Ed25519, Csk);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = GOOD.replacen(
        "[[cluster]]",
        &format!(
            "[[zone.dnssec.key]]\nfile = {:?}\n\n[[cluster]]",
            file.to_str().unwrap()
        ),
        1,
    );
    let e = Config::parse(&d.join("c.toml"), &text).unwrap_err();
    assert!(e.message.contains("chmod 600"), "{e}");
}
