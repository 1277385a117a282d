//! Probes against real listeners on 127.0.0.1: a TCP listener, a small HTTP responder
//! written here, and the same over TLS with a test CA.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;
use std::time::Instant;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TIMEOUT: Duration = Duration::from_millis(500);

fn check(kind: CheckKind, port: u16, host: Option<&str>) -> CheckConfig {
    CheckConfig {
        kind,
        port,
        host: host.map(String::from),
    }
}

fn http(path: &str, expect_status: u16) -> CheckKind {
    CheckKind::Http {
        path: path.into(),
        expect_status,
    }
}

fn https(expect_status: u16) -> CheckKind {
    CheckKind::Https {
        path: "/healthz".into(),
        expect_status,
    }
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    TcpListener::bind((LOCAL, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a responder saw: each request's first line and Host header.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Reads a request's head; returns (request line, Host header).
fn read_head(stream: &mut impl Read) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).ok()?;
    let line = text.lines().next()?.to_string();
    let host = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Host: ")
                .or_else(|| l.strip_prefix("host: "))
        })
        .unwrap_or_default()
        .to_string();
    Some((line, host))
}

fn response(status: u16) -> String {
    format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

/// An HTTP responder on 127.0.0.1 answering every request with `status` after `delay`.
fn responder(status: u16, delay: Duration) -> (u16, Seen) {
    let listener = TcpListener::bind((LOCAL, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(head) = read_head(&mut stream) {
                    log.lock().unwrap().push(head);
                    std::thread::sleep(delay);
                    let _ = stream.write_all(response(status).as_bytes());
                }
            });
        }
    });
    (port, seen)
}

/// A test CA: its certificate and an issuer.
fn ca() -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "test ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.der().clone(), Issuer::new(params, key))
}

/// An HTTPS responder on 127.0.0.1 with a certificate for `names` signed by `issuer`,
/// answering `status`.
fn tls_responder(issuer: &Issuer<'static, KeyPair>, names: &[&str], status: u16) -> u16 {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let chain = vec![cert.der().clone()];
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind((LOCAL, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = ServerConnection::new(config).unwrap();
                let mut tls = StreamOwned::new(conn, stream);
                if read_head(&mut tls).is_some() {
                    let _ = tls.write_all(response(status).as_bytes());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            });
        }
    });
    port
}

fn trusting(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    client_config(roots).unwrap()
}

fn probe(check: &CheckConfig, tls: Option<&Arc<ClientConfig>>) -> ProbeResult {
    Prober::new(check, LOCAL, TIMEOUT, tls).unwrap().probe()
}

#[test]
fn tcp_accepted_is_up_refused_is_down() {
    let listener = TcpListener::bind((LOCAL, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        probe(&check(CheckKind::Tcp, port, None), None),
        ProbeResult::Up
    );
    drop(listener);
    assert_eq!(
        probe(&check(CheckKind::Tcp, port, None), None),
        ProbeResult::Down("refused".into())
    );
}

#[test]
fn http_expected_status_is_up_with_the_host_header() {
    let (port, seen) = responder(200, Duration::ZERO);
    assert_eq!(
        probe(&check(http("/healthz?x=1", 200), port, None), None),
        ProbeResult::Up
    );
    assert_eq!(
        probe(&check(http("/", 200), port, Some("lb.example")), None),
        ProbeResult::Up
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (
                "GET /healthz?x=1 HTTP/1.1".to_string(),
                format!("127.0.0.1:{port}")
            ),
            ("GET / HTTP/1.1".to_string(), format!("lb.example:{port}")),
        ]
    );
}

#[test]
fn http_status_mismatch_is_down() {
    let (port, _) = responder(503, Duration::ZERO);
    assert_eq!(
        probe(&check(http("/", 200), port, None), None),
        ProbeResult::Down("status 503".into())
    );
    // The expected status may be any status, an error one too.
    assert_eq!(
        probe(&check(http("/", 503), port, None), None),
        ProbeResult::Up
    );
    // A redirect is not followed: its status is the answer.
    let (port, _) = responder(302, Duration::ZERO);
    assert_eq!(
        probe(&check(http("/", 200), port, None), None),
        ProbeResult::Down("status 302".into())
    );
}

#[test]
fn http_refused_is_down() {
    assert_eq!(
        probe(&check(http("/", 200), closed_port(), None), None),
        ProbeResult::Down("refused".into())
    );
}

#[test]
fn slow_server_is_a_timeout() {
    let (port, seen) = responder(200, Duration::from_secs(3));
    let start = Instant::now();
    assert_eq!(
        probe(&check(http("/", 200), port, None), None),
        ProbeResult::Down("timeout".into())
    );
    let took = start.elapsed();
    assert!(took >= TIMEOUT && took < TIMEOUT * 3, "took {took:?}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the request reached the server"
    );
}

#[test]
fn a_server_that_never_answers_the_tls_handshake_is_a_timeout() {
    // Accepted connections (the kernel's backlog) that nobody reads.
    let listener = TcpListener::bind((LOCAL, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ca, _) = ca();
    let start = Instant::now();
    assert_eq!(
        probe(&check(https(200), port, None), Some(&trusting(&ca))),
        ProbeResult::Down("timeout".into())
    );
    assert!(start.elapsed() < TIMEOUT * 3);
    drop(listener);
}

#[test]
fn https_checks_the_certificate_against_the_host_or_the_address() {
    let (ca_cert, issuer) = ca();
    let port = tls_responder(&issuer, &["lb.example", "127.0.0.1"], 200);
    let tls = trusting(&ca_cert);
    assert_eq!(
        probe(&check(https(200), port, Some("lb.example")), Some(&tls)),
        ProbeResult::Up
    );
    assert_eq!(
        probe(&check(https(200), port, None), Some(&tls)),
        ProbeResult::Up
    );
    // A name the certificate does not hold.
    match probe(&check(https(200), port, Some("other.example")), Some(&tls)) {
        ProbeResult::Down(why) => assert!(why.starts_with("tls: "), "{why}"),
        up => panic!("{up}"),
    }
    // A CA nobody trusts.
    let (other_ca, _) = ca();
    match probe(
        &check(https(200), port, Some("lb.example")),
        Some(&trusting(&other_ca)),
    ) {
        ProbeResult::Down(why) => assert!(why.starts_with("tls: "), "{why}"),
        up => panic!("{up}"),
    }
}

#[test]
fn https_status_mismatch_is_down() {
    let (ca_cert, issuer) = ca();
    let port = tls_responder(&issuer, &["lb.example"], 500);
    assert_eq!(
        probe(
            &check(https(200), port, Some("lb.example")),
            Some(&trusting(&ca_cert))
        ),
        ProbeResult::Down("status 500".into())
    );
}

#[test]
fn https_without_roots_is_a_configuration_error() {
    let e = Prober::new(&check(https(200), 443, None), LOCAL, TIMEOUT, None)
        .err()
        .unwrap();
    assert!(e.contains("needs TLS roots"), "{e}");
}

#[test]
fn the_connection_goes_to_the_address_not_to_the_host_name() {
    // The host resolves nowhere; the probe still reaches the address.
    let (port, seen) = responder(200, Duration::ZERO);
    assert_eq!(
        probe(&check(http("/", 200), port, Some("lb.invalid")), None),
        ProbeResult::Up
    );
    assert_eq!(seen.lock().unwrap()[0].1, format!("lb.invalid:{port}"));
}

#[test]
fn ipv6_addresses_are_bracketed_in_the_url_and_probed() {
    let c = check(http("/", 200), 8080, None);
    let p = Prober::new(&c, "2001:db8::1".parse().unwrap(), TIMEOUT, None).unwrap();
    assert_eq!(p.addr(), "[2001:db8::1]:8080".parse().unwrap());
    // Where ::1 is configured, a probe reaches it.
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let p = Prober::new(
        &check(CheckKind::Tcp, port, None),
        "::1".parse().unwrap(),
        TIMEOUT,
        None,
    )
    .unwrap();
    assert_eq!(p.probe(), ProbeResult::Up);
}
