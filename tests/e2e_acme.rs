//! ACME DNS-01 against the real binary and the real tools: `nsupdate` (bind9-dnsutils) adds
//! and deletes challenge records, and every refusal comes back with its rcode; `lego` (the
//! ACME client, `--dns rfc2136`) obtains a certificate for `*.mark.repl.co` and
//! `coolgame.mark.repl.co` from `pebble` (the ACME test CA), which validates against this
//! server; the records are gone afterwards. Each tool's test skips, saying so, where the tool
//! is not installed, never in CI.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use common::*;

/// The key the grants name, and its secret (32 bytes, base64).
const KEY: &str = "acme-mark";
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";
/// The same name with another secret (a forged or stale key).
const WRONG_SECRET: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXIzMmI=";

/// A server that takes updates signed with `KEY` for `_acme-challenge` names under
/// `mark.repl.co`, answering challenges itself (`acme = "txt"`).
struct Acme {
    dir: tempfile::TempDir,
    child: Child,
}

impl Acme {
    fn start() -> Acme {
        Acme::start_with("")
    }

    /// With more `[acme]` settings.
    fn start_with(acme: &str) -> Acme {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("journal.log"), JOURNAL).unwrap();
        let keys = dir.path().join("keys.conf");
        std::fs::write(&keys, key_file(KEY, SECRET)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.path().join("clusterns.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[server]
listen = ["127.0.0.1:0"]
threads = 2

[feed]
source = "journal"
journal = "journal.log"

[acme]
ttl_secs = 10
{acme}

[update]
enabled = true
keys = "keys.conf"

[[update.grant]]
key = "{KEY}"
names = ["_acme-challenge.mark.repl.co", "_acme-challenge.*.mark.repl.co"]

[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co"]
acme = "txt"
soa = {{ rname = "hostmaster.repl.co" }}
[[zone.host]]
name = "ns1"
a = ["127.0.0.1"]

[[cluster]]
name = "east"
ipv4 = ["203.0.113.1", "203.0.113.2"]

[[cluster]]
name = "west"
ipv4 = ["198.51.100.7"]
"#
            ),
        )
        .unwrap();
        let child = spawn_binary_logged(&config, false, Some(&dir.path().join("server.log")));
        Acme { dir, child }
    }

    fn addr(&self) -> SocketAddr {
        self.child.addr
    }

    fn txt(&self, name: &str) -> (ResponseCode, Vec<String>) {
        let m = udp_ask(self.addr(), name, RecordType::TXT);
        let values = m
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                Some(RData::TXT(t)) => Some(
                    t.txt_data()
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect::<Vec<_>>();
        (m.response_code(), values)
    }

    /// Waits until `name`'s TXT values are `want` (sorted; empty: NXDOMAIN).
    fn wait_txt(&self, name: &str, want: &[&str]) -> bool {
        wait_for(Duration::from_secs(5), || {
            let (rcode, mut got) = self.txt(name);
            got.sort();
            if want.is_empty() {
                rcode == ResponseCode::NXDomain
            } else {
                got == want
            }
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

fn key_file(name: &str, secret: &str) -> String {
    format!("key \"{name}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n")
}

/// `nsupdate [-v] -k <key file>` with `script` (server, zone, updates, send).
fn nsupdate(dir: &Path, key_name: &str, secret: Option<&str>, tcp: bool, script: &str) -> Output {
    let mut cmd = Command::new("nsupdate");
    if tcp {
        cmd.arg("-v");
    }
    if let Some(secret) = secret {
        let keys = dir.join(format!("nsupdate-{key_name}-{}.key", secret.len()));
        std::fs::write(&keys, key_file(key_name, secret)).unwrap();
        cmd.arg("-k").arg(&keys);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn script(addr: SocketAddr, lines: &str) -> String {
    format!(
        "server {} {}\nzone repl.co\n{lines}\nsend\n",
        addr.ip(),
        addr.port()
    )
}

#[test]
fn nsupdate_adds_deletes_and_every_refusal_has_its_rcode() {
    if !have("nsupdate", "-V") {
        return;
    }
    let s = Acme::start();
    let dir = s.dir.path();
    let name = "_acme-challenge.coolgame.mark.repl.co";
    // Two values at once (a certificate for x and *.x), over UDP and over TCP.
    for (tcp, value) in [(false, "token-one"), (true, "token-two")] {
        let o = nsupdate(
            dir,
            KEY,
            Some(SECRET),
            tcp,
            &script(s.addr(), &format!("update add {name} 60 TXT \"{value}\"")),
        );
        assert!(o.status.success(), "{}\n{}", text(&o), s.log());
    }
    assert!(s.wait_txt(name, &["token-one", "token-two"]), "{}", s.log());
    // ANY: the TXT set (RFC 8482); A at the challenge name: NODATA.
    let m = udp_ask(s.addr(), name, RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    // Delete one value, then the RRset.
    let o = nsupdate(
        dir,
        KEY,
        Some(SECRET),
        false,
        &script(s.addr(), &format!("update delete {name} TXT \"token-one\"")),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(s.wait_txt(name, &["token-two"]), "{}", s.log());
    let o = nsupdate(
        dir,
        KEY,
        Some(SECRET),
        false,
        &script(s.addr(), &format!("update delete {name} TXT")),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(s.wait_txt(name, &[]), "{}", s.log());

    let add = |n: &str, t: &str| format!("update add {n} 60 {t}");
    for (what, key, secret, lines, want) in [
        ("unsigned", KEY, None, add(name, "TXT \"x\""), "REFUSED"),
        (
            "a wrong secret",
            KEY,
            Some(WRONG_SECRET),
            add(name, "TXT \"x\""),
            "NOTAUTH",
        ),
        (
            "an unknown key",
            "someone-else",
            Some(SECRET),
            add(name, "TXT \"x\""),
            "NOTAUTH",
        ),
        (
            "a name outside the grant",
            KEY,
            Some(SECRET),
            add("_acme-challenge.site.ann.repl.co", "TXT \"x\""),
            "REFUSED",
        ),
        (
            "a type other than TXT",
            KEY,
            Some(SECRET),
            add(name, "CAA 0 issue \"letsencrypt.org\""),
            "REFUSED",
        ),
        (
            "an app's own name",
            KEY,
            Some(SECRET),
            add("coolgame.mark.repl.co", "TXT \"x\""),
            "REFUSED",
        ),
    ] {
        let o = nsupdate(dir, key, secret, false, &script(s.addr(), &lines));
        let t = text(&o);
        assert!(!o.status.success(), "{what}: accepted\n{t}\n{}", s.log());
        assert!(t.contains(want), "{what}: want {want}\n{t}\n{}", s.log());
    }
    // Nothing refused was written: the name has no records, the app still answers.
    assert_eq!(s.txt(name).0, ResponseCode::NXDomain);
    assert_eq!(
        a_records(&udp_ask(s.addr(), "coolgame.mark.repl.co", RecordType::A)).len(),
        2
    );
    // The check can fail: the same update signed right is accepted.
    let o = nsupdate(
        dir,
        KEY,
        Some(SECRET),
        false,
        &script(s.addr(), &add(name, "TXT \"x\"")),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(s.wait_txt(name, &["x"]));
}

/// pebble (the ACME test CA) on free loopback ports, validating DNS-01 against `dns`.
struct Pebble {
    child: std::process::Child,
    directory: String,
    ca_file: std::path::PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    fn start(dir: &Path, dns: SocketAddr) -> Pebble {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.join("pebble-cert.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();
        let port = free_port();
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble": {{"listenAddress": "127.0.0.1:{port}", "managementListenAddress": "127.0.0.1:{}",
  "certificate": "{}", "privateKey": "{}", "httpPort": {}, "tlsPort": {},
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
                free_port(),
                dir.join("pebble-cert.pem").display(),
                dir.join("pebble-key.pem").display(),
                free_port(),
                free_port(),
            ),
        )
        .unwrap();
        let child = Command::new("pebble")
            .args(["-config", path_str(&config), "-dnsserver", &dns.to_string()])
            // Validate at once, and never refuse a nonce at random (pebble's test modes).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(dir.join("pebble.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "pebble did not start"
        );
        Pebble {
            child,
            directory: format!("https://127.0.0.1:{port}/dir"),
            ca_file,
        }
    }
}

#[test]
fn lego_gets_a_wildcard_certificate_from_pebble_through_rfc2136() {
    if !have("lego", "--version") || !have("pebble", "-version") {
        return;
    }
    let s = Acme::start();
    let dir = s.dir.path();
    let pebble = Pebble::start(dir, s.addr());
    let lego_dir = dir.join("lego");
    let o = Command::new("lego")
        .args([
            "--server",
            &pebble.directory,
            "--email",
            "mark@example.com",
            "--accept-tos",
            "--dns",
            "rfc2136",
            // Find the zone by asking this server (SOA), and don't wait for the zone's NS
            // names to agree: they are not on loopback.
            "--dns.resolvers",
            &s.addr().to_string(),
            "--dns.disable-cp",
            "--domains",
            "*.mark.repl.co",
            "--domains",
            "coolgame.mark.repl.co",
            "--path",
            path_str(&lego_dir),
            "run",
        ])
        .env("LEGO_CA_CERTIFICATES", &pebble.ca_file)
        .env("RFC2136_NAMESERVER", s.addr().to_string())
        .env("RFC2136_TSIG_KEY", KEY)
        .env("RFC2136_TSIG_SECRET", SECRET)
        .env("RFC2136_TSIG_ALGORITHM", "hmac-sha256.")
        .env("RFC2136_PROPAGATION_TIMEOUT", "30")
        .env("RFC2136_POLLING_INTERVAL", "1")
        // lego solves the two names one after the other, waiting this long between them.
        .env("RFC2136_SEQUENCE_INTERVAL", "1")
        .output()
        .unwrap();
    let pebble_log = std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "lego failed:\n{}\npebble:\n{pebble_log}\nclusterns:\n{}",
        text(&o),
        s.log()
    );
    // The certificate names both.
    let pem = std::fs::read_to_string(lego_dir.join("certificates/_.mark.repl.co.crt")).unwrap();
    let names = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(pem.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(names.contains("DNS:*.mark.repl.co"), "{names}");
    assert!(names.contains("DNS:coolgame.mark.repl.co"), "{names}");
    // lego cleaned up: no challenge record is left.
    for n in [
        "_acme-challenge.mark.repl.co",
        "_acme-challenge.coolgame.mark.repl.co",
    ] {
        assert!(s.wait_txt(n, &[]), "{n} still has records\n{}", s.log());
    }
}

/// Key rollover without a restart: a new secret in the key file and SIGHUP; the old secret is
/// refused from then on. A key file that does not load rejects the reload and the running
/// keys stay.
#[test]
fn a_reload_takes_new_keys_and_keeps_them_when_the_file_is_broken() {
    if !have("nsupdate", "-V") {
        return;
    }
    let s = Acme::start();
    let dir = s.dir.path();
    let keys = dir.join("keys.conf");
    let name = "_acme-challenge.coolgame.mark.repl.co";
    let add = |v: &str| script(s.addr(), &format!("update add {name} 60 TXT \"{v}\""));
    let reloads = |n: usize| {
        s.child.signal(libc::SIGHUP);
        assert!(
            wait_for(Duration::from_secs(5), || s
                .log()
                .matches("SIGHUP: ")
                .count()
                >= n),
            "{}",
            s.log()
        );
    };
    assert!(nsupdate(dir, KEY, Some(SECRET), false, &add("one"))
        .status
        .success());
    std::fs::write(&keys, key_file(KEY, WRONG_SECRET)).unwrap();
    reloads(1);
    let o = nsupdate(dir, KEY, Some(SECRET), false, &add("two"));
    assert!(
        !o.status.success() && text(&o).contains("NOTAUTH"),
        "{}",
        text(&o)
    );
    // The service takes the new keys at its next message at the latest.
    let o = nsupdate(dir, KEY, Some(WRONG_SECRET), false, &add("three"));
    assert!(o.status.success(), "{}\n{}", text(&o), s.log());
    // A broken key file: the reload is refused, the keys in force keep working.
    std::fs::write(&keys, "key \"acme-mark\" { algorithm hmac-sha256; };\n").unwrap();
    reloads(2);
    assert!(
        s.log().contains("keeping the running configuration"),
        "{}",
        s.log()
    );
    let o = nsupdate(dir, KEY, Some(WRONG_SECRET), false, &add("four"));
    assert!(o.status.success(), "{}\n{}", text(&o), s.log());
    assert!(s.wait_txt(name, &["four", "one", "three"]), "{}", s.log());
}

/// Expiry is written to the source by the server that takes updates (its janitor), so every
/// edge drops the value at the same point of the feed: a `txt-del` line in the journal.
#[test]
fn the_update_server_expires_challenge_values_through_the_journal() {
    if !have("nsupdate", "-V") {
        return;
    }
    let s = Acme::start_with("expire_secs = 1");
    let name = "_acme-challenge.coolgame.mark.repl.co";
    let o = nsupdate(
        s.dir.path(),
        KEY,
        Some(SECRET),
        false,
        &script(
            s.addr(),
            &format!("update add {name} 60 TXT \"short-lived\""),
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(s.wait_txt(name, &["short-lived"]), "{}", s.log());
    // The janitor looks every 5 s; the value expired after 1 s.
    assert!(
        wait_for(Duration::from_secs(12), || s.txt(name).0
            == ResponseCode::NXDomain),
        "{}",
        s.log()
    );
    let journal = std::fs::read_to_string(s.dir.path().join("journal.log")).unwrap();
    let last = journal.lines().last().unwrap();
    assert!(
        last.contains(" txt-del ") && last.contains(name),
        "{journal}"
    );
    // (Logged once the write returned: maybe after the feed applied it.)
    assert!(
        wait_for(Duration::from_secs(5), || s
            .log()
            .contains("challenge records expired")),
        "{}",
        s.log()
    );
}
