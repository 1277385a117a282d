//! TLS to PostgreSQL, end to end: a private server with `ssl = on` and a CA and certificates
//! made here (rcgen), the real binary fed through it. Proves that `sslmode=require` follows
//! changes over an encrypted connection (checked in `pg_stat_ssl`), that `verify-full` takes
//! the right CA and refuses another one and a wrong host name with clear errors, that a
//! `hostssl`-only server refuses `sslmode=disable` clearly, that client certificates
//! authenticate, and that the password never shows in logs or `check-config` output.
//!
//! Needs CLUSTERNS_TEST_PG (PostgreSQL's bin directory); the `check-config` tests do not.

mod common;
mod pg;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use clusterns::feed::postgres::{apply_schema, PgSource};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_clusterns");
/// The database password; it must never be printed.
const SECRET: &str = "Tls-s3cret-never-printed";
/// The name in the server's certificate (with 127.0.0.1).
const DB_NAME: &str = "db.clusterns.test";

/// A test CA.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses), with `cn` as its common name:
    /// (certificate PEM, key PEM).
    fn issue(&self, cn: &str, names: &[&str], client: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A private PostgreSQL with TLS on (certificate for [`DB_NAME`] and 127.0.0.1 by `ca`, which
/// it also trusts for client certificates), `hba` as its pg_hba.conf, the schema and one app
/// `a1` on `east`, and the password [`SECRET`] for `postgres`. None where PostgreSQL is not
/// available (said why).
fn tls_server(ca: &Ca, hba: &str) -> Option<pg::PgServer> {
    let Some(mut db) = pg::PgServer::start_new() else {
        println!("{}", pg::SKIP);
        return None;
    };
    let (cert, key) = ca.issue(DB_NAME, &[DB_NAME, "127.0.0.1"], false);
    db.reconfigure(
        &[
            ("server.crt", &cert),
            ("server.key", &key),
            ("ca.pem", &ca.pem),
        ],
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
         ssl_ca_file = 'ca.pem'\npassword_encryption = 'scram-sha-256'",
        Some(hba),
    );
    let mut client = db.socket_client();
    apply_schema(&mut client).unwrap();
    client
        .batch_execute(&format!(
            "ALTER ROLE postgres PASSWORD '{SECRET}';
             INSERT INTO repls (id, user_name, slug, cluster) VALUES ('a1', 'u1', 's1', 'east')"
        ))
        .unwrap();
    Some(db)
}

/// pg_hba.conf: the socket trusted (for the test's own client), TCP only over TLS, with a
/// password.
const HBA_HOSTSSL_PASSWORD: &str = "local all all trust\n\
     hostssl all all 127.0.0.1/32 scram-sha-256\n";

/// The TCP connection string of `db` with `extra` and the password.
fn conninfo(db: &pg::PgServer, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres password={SECRET} \
         connect_timeout=5 {extra}",
        db.port()
    )
}

/// A config in a temp dir fed by PostgreSQL at `conninfo`.
fn setup_pg(conninfo: &str) -> Setup {
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    let journal = "source = \"journal\"\njournal = \"journal.log\"";
    assert!(text.contains(journal));
    let text = text.replace(
        journal,
        &format!("source = \"postgres\"\npostgres = \"{conninfo}\"\npoll_interval_ms = 200"),
    );
    std::fs::write(&s.config_path, text).unwrap();
    s
}

fn cluster_of(addr: SocketAddr, name: &str) -> Option<&'static str> {
    let m = udp_ask(addr, name, RecordType::A);
    match a_records(&m).first().map(String::as_str) {
        Some("203.0.113.1") | Some("203.0.113.2") => Some("east"),
        Some("198.51.100.7") => Some("west"),
        _ => None,
    }
}

/// Whether the connections named `clusterns` are encrypted, one entry per connection.
fn feed_ssl(db: &pg::PgServer) -> Vec<bool> {
    db.socket_client()
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'clusterns'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `clusterns check-config <config>`.
fn check_config(config: &Path) -> Output {
    Command::new(BIN)
        .arg("check-config")
        .arg(config)
        .output()
        .unwrap()
}

/// `clusterns serve` on a config whose feed cannot start: waits for it to exit (failing the
/// test if it does not within 30 s) and returns its stderr.
fn serve_fails(config: &Path) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("CLUSTERNS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not fail within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "serve should fail: {err}");
    println!("serve failed as expected:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains(SECRET), "the password is printed: {err}");
    err
}

#[test]
fn sslmode_require_follows_changes_over_tls_and_never_prints_the_password() {
    let ca = Ca::new("clusterns test CA");
    let Some(db) = tls_server(&ca, HBA_HOSTSSL_PASSWORD) else {
        return;
    };
    let s = setup_pg(&conninfo(&db, "sslmode=require"));
    let o = check_config(&s.config_path);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("password=***") && out.contains("sslmode=require"),
        "{out}"
    );
    assert!(
        !out.contains(SECRET),
        "check-config prints the password: {out}"
    );

    let log = s.dir.path().join("server.log");
    let c = spawn_binary_logged(&s.config_path, false, Some(&log));
    assert_eq!(cluster_of(c.addr, "a1.repl.co"), Some("east"));
    assert_eq!(feed_ssl(&db), [true], "the feed's connection is encrypted");
    db.socket_client()
        .batch_execute("UPDATE repls SET cluster = 'west' WHERE id = 'a1'")
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || cluster_of(c.addr, "a1.repl.co")
            == Some("west")),
        "the move reaches DNS through TLS"
    );
    drop(c);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "the log is written: {text}");
    assert!(
        !text.contains(SECRET),
        "the log prints the password: {text}"
    );
}

#[test]
fn verify_full_takes_the_servers_ca_and_refuses_another() {
    let ca = Ca::new("clusterns test CA");
    let Some(db) = tls_server(&ca, HBA_HOSTSSL_PASSWORD) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ca.pem");
    std::fs::write(&ours, &ca.pem).unwrap();
    let theirs = dir.path().join("other-ca.pem");
    std::fs::write(&theirs, Ca::new("another CA").pem).unwrap();

    let s = setup_pg(&conninfo(
        &db,
        &format!("sslmode=verify-full sslrootcert={}", ours.display()),
    ));
    assert!(check_config(&s.config_path).status.success());
    let c = spawn_binary(&s.config_path, false);
    assert_eq!(cluster_of(c.addr, "a1.repl.co"), Some("east"));
    assert_eq!(feed_ssl(&db), [true]);
    drop(c);

    let s = setup_pg(&conninfo(
        &db,
        &format!("sslmode=verify-full sslrootcert={}", theirs.display()),
    ));
    // sslmode=prefer with that CA: the handshake fails, then the plain connection that libpq
    // would try next, which this server refuses; the error says both.
    let err = PgSource::new(&conninfo(
        &db,
        &format!("sslmode=prefer sslrootcert={}", theirs.display()),
    ))
    .load_all()
    .unwrap_err()
    .to_string();
    println!("{err}");
    assert!(
        err.contains("not signed by a trusted CA")
            && err.contains("then without TLS (sslmode=prefer)")
            && err.contains("no encryption"),
        "{err}"
    );
    // The file is a good CA file: only connecting can tell it is the wrong one.
    assert!(check_config(&s.config_path).status.success());
    let err = serve_fails(&s.config_path);
    assert!(
        err.contains(
            "TLS (sslmode=verify-full): the server's certificate is not signed by a trusted CA"
        ) && err.contains(&theirs.display().to_string()),
        "{err}"
    );
}

#[test]
fn verify_full_refuses_a_wrong_host_name_and_verify_ca_does_not_check_it() {
    let ca = Ca::new("clusterns test CA");
    let Some(db) = tls_server(&ca, HBA_HOSTSSL_PASSWORD) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ca.pem");
    std::fs::write(&ours, &ca.pem).unwrap();
    let at = |host: &str, mode: &str| {
        conninfo(
            &db,
            &format!("sslmode={mode} sslrootcert={}", ours.display()),
        )
        .replace("host=127.0.0.1", &format!("host={host} hostaddr=127.0.0.1"))
    };
    // The name in the certificate, reached at 127.0.0.1: accepted.
    PgSource::new(&at(DB_NAME, "verify-full"))
        .load_all()
        .unwrap();
    // Another name: refused by verify-full, clearly.
    let err = PgSource::new(&at("localhost", "verify-full"))
        .load_all()
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(
        err.contains("not valid for the host name") && err.contains("localhost"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    // verify-ca checks the chain only.
    PgSource::new(&at("localhost", "verify-ca"))
        .load_all()
        .unwrap();
    // And the binary says so at start-up.
    let s = setup_pg(&at("localhost", "verify-full"));
    let err = serve_fails(&s.config_path);
    assert!(err.contains("not valid for the host name"), "{err}");
}

#[test]
fn a_hostssl_only_server_refuses_sslmode_disable_clearly() {
    let ca = Ca::new("clusterns test CA");
    let Some(db) = tls_server(&ca, HBA_HOSTSSL_PASSWORD) else {
        return;
    };
    let err = PgSource::new(&conninfo(&db, "sslmode=disable"))
        .load_all()
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(
        err.contains("no pg_hba.conf entry")
            && err.contains("no encryption")
            && err.contains("use sslmode=require"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    // An address without a name: TLS still, the address standing for the name.
    PgSource::new(&conninfo(&db, "sslmode=require").replace("host=", "hostaddr="))
        .load_all()
        .unwrap();
    // The default (prefer) encrypts where the server offers TLS.
    let mut src = PgSource::new(&conninfo(&db, ""));
    src.load_all().unwrap();
    assert_eq!(
        feed_ssl(&db),
        [true],
        "sslmode=prefer, the default, encrypts"
    );
}

#[test]
fn client_certificates_authenticate() {
    let ca = Ca::new("clusterns test CA");
    let Some(db) = tls_server(
        &ca,
        "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue("postgres", &[], true);
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (cert, key, root) = (
        write("client.crt", &cert),
        write("client.key", &key),
        write("ca.pem", &ca.pem),
    );
    let base = format!(
        "host={DB_NAME} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         connect_timeout=5 sslmode=verify-full sslrootcert={root}",
        db.port()
    );
    PgSource::new(&format!("{base} sslcert={cert} sslkey={key}"))
        .load_all()
        .unwrap();
    let err = PgSource::new(&base).load_all().unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("certificate"), "without one: {err}");
}

#[test]
fn sslmode_require_refuses_a_server_without_tls_and_prefer_goes_on_without() {
    let Some(db) = pg::PgServer::start_new() else {
        println!("{}", pg::SKIP);
        return;
    };
    apply_schema(&mut db.client()).unwrap();
    let err = PgSource::new(&format!("{} sslmode=require", db.conninfo()))
        .load_all()
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(err.contains("server does not support TLS"), "{err}");
    let mut src = PgSource::new(&db.conninfo());
    src.load_all().unwrap();
    assert_eq!(feed_ssl(&db), [false], "sslmode=prefer goes on without TLS");
}

#[test]
fn check_config_rejects_bad_tls_settings_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not PEM at all\n").unwrap();
    for (extra, expect) in [
        (
            "sslmode=verify_full".to_string(),
            "unknown sslmode \"verify_full\"",
        ),
        (
            format!("sslmode=verify-full sslrootcert={}", missing.display()),
            "cannot read it",
        ),
        (
            format!("sslmode=verify-ca sslrootcert={}", junk.display()),
            "no certificate in it",
        ),
        ("sslmode=verify-full".to_string(), "needs sslrootcert="),
        (
            "sslrootcert=ca.pem sslmode=require".to_string(),
            "relative path",
        ),
    ] {
        let s = setup_pg(&format!("host=127.0.0.1 user=ns password={SECRET} {extra}"));
        let line = std::fs::read_to_string(&s.config_path)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("postgres = "))
            .unwrap()
            + 1;
        let o = check_config(&s.config_path);
        let err =
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        assert!(!o.status.success(), "{extra}: {err}");
        println!("{err}");
        let at = format!("clusterns.toml:{line}");
        assert!(err.contains(&at), "{extra}: expected {at}: {err}");
        assert!(err.contains(expect), "{extra}: {err}");
        assert!(!err.contains(SECRET), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
