//! One probe of one address: a TCP connection accepted, or an HTTP(S) GET answered with the
//! expected status, within the timeout. Every probe opens a new connection (nothing pooled:
//! a reused connection would hide a listener that stopped accepting).

use std::error::Error as _;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use crate::config::{CheckConfig, CheckKind};

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Up,
    /// Down, and why: `refused`, `timeout`, `status 503`, `tls: ...`.
    Down(String),
}

impl ProbeResult {
    /// The probe succeeded.
    pub fn is_up(&self) -> bool {
        *self == ProbeResult::Up
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeResult::Up => f.write_str("up"),
            ProbeResult::Down(why) => write!(f, "down ({why})"),
        }
    }
}

/// How one address is probed, prepared once (the URL checked, the HTTP agent built).
pub struct Prober {
    addr: SocketAddr,
    timeout: Duration,
    http: Option<Http>,
}

/// An HTTP(S) check of one address.
struct Http {
    agent: ureq::Agent,
    url: String,
    expect_status: u16,
}

impl Prober {
    /// The probe `check` describes for address `ip`, failing after `timeout`. HTTPS checks
    /// need `tls` (the roots to trust: [`native_roots`] in production); the certificate is
    /// checked against `check.host`, else against the address.
    pub fn new(
        check: &CheckConfig,
        ip: IpAddr,
        timeout: Duration,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Prober, String> {
        let addr = SocketAddr::new(ip, check.port);
        let (scheme, path, expect_status) = match &check.kind {
            CheckKind::Tcp => {
                return Ok(Prober {
                    addr,
                    timeout,
                    http: None,
                })
            }
            CheckKind::Http {
                path,
                expect_status,
            } => ("http", path, *expect_status),
            CheckKind::Https {
                path,
                expect_status,
            } => ("https", path, *expect_status),
        };
        let host = match (&check.host, ip) {
            (Some(h), _) => h.clone(),
            (None, IpAddr::V4(v4)) => v4.to_string(),
            (None, IpAddr::V6(v6)) => format!("[{v6}]"),
        };
        let url = format!("{scheme}://{host}:{}{path}", check.port);
        let mut builder = ureq::AgentBuilder::new()
            .timeout(timeout)
            .timeout_connect(timeout)
            .redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .user_agent(concat!("clusterns-health/", env!("CARGO_PKG_VERSION")))
            // The URL names the host (the Host header, the TLS server name); the connection
            // goes to this address whatever the host resolves to.
            .resolver(move |_: &str| Ok(vec![addr]));
        if scheme == "https" {
            let tls = tls.ok_or_else(|| format!("{url}: an https check needs TLS roots"))?;
            builder = builder.tls_config(tls.clone());
        }
        let agent = builder.build();
        agent
            .get(&url)
            .request_url()
            .map_err(|e| format!("check URL {url:?}: {e}"))?;
        Ok(Prober {
            addr,
            timeout,
            http: Some(Http {
                agent,
                url,
                expect_status,
            }),
        })
    }

    /// The address and port probed.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Probes once (blocks at most about the timeout).
    pub fn probe(&self) -> ProbeResult {
        let Some(http) = &self.http else {
            return match TcpStream::connect_timeout(&self.addr, self.timeout) {
                Ok(_) => ProbeResult::Up,
                Err(e) => ProbeResult::Down(io_reason(&e)),
            };
        };
        let status = match http.agent.get(&http.url).call() {
            Ok(response) => response.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(ureq::Error::Transport(t)) => return ProbeResult::Down(transport_reason(&t)),
        };
        if status == http.expect_status {
            ProbeResult::Up
        } else {
            ProbeResult::Down(format!("status {status}"))
        }
    }
}

/// The trust roots of the operating system (as `sslrootcert=system` reads them), for HTTPS
/// checks, with rustls on the ring provider.
pub fn native_roots() -> Result<Arc<ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("health: reading the system's trust roots: {e}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("https checks: no trust roots found in the system's store".into());
    }
    client_config(roots)
}

/// A TLS client configuration trusting `roots` (rustls, ring provider).
pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A short reason for a failed connection.
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        _ => e.to_string(),
    }
}

/// A short reason for a failed HTTP(S) request: the I/O or TLS error underneath when there is
/// one, else ureq's message.
fn transport_reason(t: &ureq::Transport) -> String {
    let mut source = t.source();
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return format!("tls: {tls}");
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return format!("tls: {tls}");
            }
            return io_reason(io);
        }
        source = e.source();
    }
    match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    }
}

#[cfg(test)]
mod tests;
