use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConfig, ServerConnection};

use super::*;
use crate::feed::postgres::conninfo::split;

fn settings(conninfo: &str) -> Result<TlsSettings, String> {
    TlsSettings::from_split(&split(conninfo))
}

/// A test CA: its PEM, and an issuer for server certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
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

/// A server certificate for `names` signed by `ca`: (certificate PEM, key PEM).
fn server_cert(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A TLS handshake in memory between the client config of `conninfo` and a server holding
/// `cert` (as `server_cert` returns), the client connecting to `host`.
fn handshake(conninfo: &str, host: &str, cert: &(String, String)) -> Result<(), rustls::Error> {
    let client_config = settings(conninfo).unwrap().client_config().unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap();
    let server_config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut client = ClientConnection::new(Arc::new(client_config), name).unwrap();
    let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        // The server's view of a refused handshake is an alert; the client's error matters.
        let _ = server.process_new_packets();
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets()?;
        if !client.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not end");
}

#[test]
fn the_default_is_prefer_and_system_roots_default_to_verify_full() {
    let s = settings("host=db").unwrap();
    assert_eq!((s.mode, s.check()), (SslMode::Prefer, Check::Nothing));
    let s = settings("host=db sslrootcert=system").unwrap();
    assert_eq!(s.mode, SslMode::VerifyFull);
    assert_eq!(s.roots, Some(Roots::System));
    let s = settings("host=db sslmode=require sslrootcert=/ca.pem").unwrap();
    assert_eq!(
        s.check(),
        Check::Chain,
        "require with a CA file checks the chain"
    );
    let s = settings("host=db sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
    assert_eq!(s.check(), Check::Chain);
    let s = settings("host=db sslmode=verify-full sslrootcert=/ca.pem").unwrap();
    assert_eq!(s.check(), Check::ChainAndName);
}

#[test]
fn settings_that_cannot_work_are_refused_naming_the_problem() {
    for (conninfo, expect) in [
        ("sslmode=verify_full", "unknown sslmode \"verify_full\""),
        ("sslmode=allow", "\"allow\" is not supported"),
        ("sslmode=verify-full", "needs sslrootcert="),
        ("sslmode=verify-ca", "needs sslrootcert="),
        (
            "sslmode=require sslrootcert=system",
            "weak sslmode \"require\"",
        ),
        ("sslcert=/c.pem", "sslcert and sslkey go together"),
        ("sslkey=/k.pem", "sslcert and sslkey go together"),
        (
            "sslpassword=hunter2 sslkey=/k sslcert=/c",
            "sslpassword: encrypted",
        ),
        ("sslcrl=/crl.pem", "sslcrl: certificate revocation"),
        ("sslrootcert=''", "sslrootcert is empty"),
    ] {
        let e = settings(conninfo).unwrap_err();
        assert!(e.contains(expect), "{conninfo}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn unix_sockets_use_no_tls_and_tcp_uses_the_mode() {
    let mode = |conninfo: &str, host: &str| {
        let mut config: postgres::Config = host.parse().unwrap();
        let mode = settings(conninfo).unwrap().prepare(&mut config);
        assert_eq!(mode.as_ref().ok(), Some(&config.get_ssl_mode()));
        mode
    };
    let full = "sslmode=verify-full sslrootcert=/ca.pem";
    assert_eq!(mode(full, "host=/run/postgresql"), Ok(PgSslMode::Disable));
    assert_eq!(mode(full, "host=db"), Ok(PgSslMode::Require));
    assert_eq!(mode("", "host=db"), Ok(PgSslMode::Prefer));
    assert_eq!(mode("sslmode=disable", "host=db"), Ok(PgSslMode::Disable));
}

#[test]
fn a_hostaddr_without_host_stands_for_the_name_except_for_verify_full() {
    let mut config: postgres::Config = "hostaddr=127.0.0.1".parse().unwrap();
    let s = settings("sslmode=require").unwrap();
    assert_eq!(s.prepare(&mut config), Ok(PgSslMode::Require));
    assert_eq!(
        config.get_hosts(),
        [postgres::config::Host::Tcp("127.0.0.1".into())]
    );
    let mut config: postgres::Config = "hostaddr=127.0.0.1".parse().unwrap();
    let s = settings("sslmode=verify-full sslrootcert=/ca.pem").unwrap();
    let e = s.prepare(&mut config).unwrap_err();
    assert!(e.contains("needs host="), "{e}");
}

#[test]
fn files_are_checked_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = ca("test CA");
    let good = write(d, "ca.pem", &ca.pem);
    let junk = write(d, "junk.pem", "not a certificate\n");
    let bad = write(
        d,
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB!!!\n-----END CERTIFICATE-----\n",
    );
    let (cert, key) = server_cert(&ca, &["db"]);
    let cert = write(d, "client.pem", &cert);
    let key = write(d, "client.key", &key);
    let missing = d.join("missing.pem");
    let p = |p: &Path| p.display().to_string();

    check_conninfo(&format!(
        "host=db sslmode=verify-full sslrootcert={}",
        p(&good)
    ))
    .unwrap();
    check_conninfo(&format!(
        "host=db sslmode=require sslcert={} sslkey={}",
        p(&cert),
        p(&key)
    ))
    .unwrap();
    for (conninfo, expect) in [
        (
            format!("sslmode=verify-ca sslrootcert={}", p(&missing)),
            format!("sslrootcert {:?}: cannot read it", p(&missing)),
        ),
        (
            format!("sslmode=verify-ca sslrootcert={}", p(&junk)),
            "no certificate in it".to_string(),
        ),
        (
            format!("sslmode=verify-ca sslrootcert={}", p(&bad)),
            "bad PEM".to_string(),
        ),
        (
            "sslmode=verify-ca sslrootcert=ca.pem".to_string(),
            "is a relative path".to_string(),
        ),
        (
            format!("sslcert={} sslkey={}", p(&cert), p(&good)),
            "sslkey".to_string() + &format!(" {:?}: no private key", p(&good)),
        ),
        (
            "host=db port=notaport password=s3cret".to_string(),
            "bad connection string".to_string(),
        ),
    ] {
        let e = check_conninfo(&conninfo).unwrap_err();
        assert!(e.contains(&expect), "{conninfo}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
    // sslmode=disable reads no file.
    check_conninfo(&format!("sslmode=disable sslrootcert={}", p(&missing))).unwrap();
}

#[test]
fn each_mode_applies_its_checks_and_each_check_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ours = ca("our CA");
    let theirs = ca("another CA");
    let ours_pem = write(d, "ours.pem", &ours.pem).display().to_string();
    let theirs_pem = write(d, "theirs.pem", &theirs.pem).display().to_string();
    let cert = server_cert(&ours, &["db.example.test", "127.0.0.1"]);

    // require without a CA: encrypted, nothing checked.
    handshake("sslmode=require", "elsewhere.test", &cert).unwrap();
    // verify-full: the chain and the name (a DNS name or an IP address).
    let full = format!("sslmode=verify-full sslrootcert={ours_pem}");
    handshake(&full, "db.example.test", &cert).unwrap();
    handshake(&full, "127.0.0.1", &cert).unwrap();
    let e = handshake(&full, "other.example.test", &cert).unwrap_err();
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{e}"
    );
    // verify-ca: the chain only.
    let ca_only = format!("sslmode=verify-ca sslrootcert={ours_pem}");
    handshake(&ca_only, "other.example.test", &cert).unwrap();
    // Another CA: refused by verify-ca, verify-full, and require with that CA file.
    for mode in ["verify-ca", "verify-full", "require", "prefer"] {
        let e = handshake(
            &format!("sslmode={mode} sslrootcert={theirs_pem}"),
            "db.example.test",
            &cert,
        )
        .unwrap_err();
        assert_eq!(
            e,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "{mode}"
        );
    }
}
