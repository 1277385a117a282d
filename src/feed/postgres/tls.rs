//! TLS to PostgreSQL with libpq's meanings, on rustls (ring provider).
//!
//! From the connection string (see [`conninfo`](super::conninfo)): `sslmode` = `disable`,
//! `prefer` (the default, as in libpq), `require`, `verify-ca` or `verify-full`; `sslrootcert`
//! (a PEM file of CA certificates, or `system` for the operating system's trust store);
//! `sslcert` and `sslkey` (a client certificate and its unencrypted PEM key). As in libpq:
//!
//! - `prefer` and `require` encrypt without checking the server's certificate, unless
//!   `sslrootcert` is given: then its chain must lead to one of those CAs (as `verify-ca`);
//!   `prefer` falls back to an unencrypted connection when the server offers no TLS or the
//!   handshake fails;
//! - `verify-ca` checks the chain, `verify-full` the chain and the host name (the `host` of
//!   the connection string, a DNS name or an IP address);
//! - `sslrootcert=system` makes `verify-full` the default and refuses weaker modes;
//! - on a Unix socket TLS is not used.
//!
//! Unlike libpq, nothing is read from `~/.postgresql/`: `verify-ca`/`verify-full` need an
//! explicit `sslrootcert`. `sslpassword`, `sslcrl` and `sslcrldir` are refused with a clear
//! error rather than ignored. Certificates are checked by rustls's own webpki functions; only
//! the choice of which checks apply is made here.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::{Host, SslMode as PgSslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::conninfo::Split;

/// `sslmode`, with libpq's values (`allow` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode \"allow\" is not supported: use \"prefer\" (TLS when the \
                            server offers it) or \"disable\""
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "unknown sslmode {other:?}: expected disable, prefer, require, verify-ca or \
                     verify-full"
                ))
            }
        })
    }

    /// The name libpq gives it.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A PEM file.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`).
    System,
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::File(p) => write!(f, "sslrootcert {:?}", p.display().to_string()),
            Roots::System => f.write_str("sslrootcert=system (the operating system's trust store)"),
        }
    }
}

/// Which checks the server's certificate must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// None: encrypted, but any certificate is accepted (`require` without `sslrootcert`).
    Nothing,
    /// The chain leads to a trusted CA.
    Chain,
    /// The chain, and the host name.
    ChainAndName,
}

/// The TLS settings of a connection string, checked for consistency (files not read yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub roots: Option<Roots>,
    /// `sslcert` and `sslkey`.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// The settings in `split` (the TLS parameters of a connection string). Fails, naming the
    /// problem, on an unknown `sslmode`, a `verify-*` mode without `sslrootcert`, a weak mode
    /// with `sslrootcert=system`, half a client certificate, and the parameters clusterns
    /// does not support.
    pub fn from_split(split: &Split) -> Result<TlsSettings, String> {
        for (key, why) in [
            (
                "sslpassword",
                "encrypted client keys are not supported: give sslkey an unencrypted key \
                 readable only by clusterns",
            ),
            ("sslcrl", "certificate revocation lists are not supported"),
            (
                "sslcrldir",
                "certificate revocation lists are not supported",
            ),
        ] {
            if split.get(key).is_some() {
                return Err(format!("{key}: {why}"));
            }
        }
        let roots = match split.get("sslrootcert") {
            None => None,
            Some("") => return Err("sslrootcert is empty".into()),
            Some("system") => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
        };
        let mode = match split.get("sslmode") {
            Some(value) => SslMode::parse(value)?,
            None if roots == Some(Roots::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if roots == Some(Roots::System) && mode != SslMode::VerifyFull && mode != SslMode::Disable {
            return Err(format!(
                "weak sslmode {:?} may not be used with sslrootcert=system (use \"verify-full\", \
                 the default with sslrootcert=system, as in libpq)",
                mode.name()
            ));
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots.is_none() {
            return Err(format!(
                "sslmode={} needs sslrootcert=<PEM file of CA certificates> (or \
                 sslrootcert=system for the operating system's trust store); clusterns does not \
                 read ~/.postgresql/root.crt",
                mode.name()
            ));
        }
        let client = match (split.get("sslcert"), split.get("sslkey")) {
            (None, None) => None,
            (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => {
                Some((PathBuf::from(cert), PathBuf::from(key)))
            }
            _ => {
                return Err(
                    "sslcert and sslkey go together: the client certificate (PEM) and its \
                     private key (unencrypted PEM)"
                        .into(),
                )
            }
        };
        Ok(TlsSettings {
            mode,
            roots,
            client,
        })
    }

    /// The files named, each with its parameter.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = Vec::new();
        if let Some(Roots::File(p)) = &self.roots {
            out.push(("sslrootcert", p.as_path()));
        }
        if let Some((cert, key)) = &self.client {
            out.push(("sslcert", cert.as_path()));
            out.push(("sslkey", key.as_path()));
        }
        out
    }

    /// Sets `config`'s TLS mode for its hosts and returns it: none over Unix sockets only
    /// (PostgreSQL offers no TLS there, and libpq does not ask), else whether TLS is required
    /// or only preferred. With `hostaddr` and no `host`, the addresses stand for the host names
    /// (the handshake needs one); `verify-full` then fails: it needs a `host` name to check.
    pub fn prepare(&self, config: &mut postgres::Config) -> Result<PgSslMode, String> {
        let hosts = config.get_hosts();
        let unix_only = !hosts.is_empty() && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)));
        let mode = match self.mode {
            SslMode::Disable => PgSslMode::Disable,
            _ if unix_only => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        };
        if mode != PgSslMode::Disable && hosts.is_empty() && !config.get_hostaddrs().is_empty() {
            if self.mode == SslMode::VerifyFull {
                return Err(
                    "sslmode=verify-full needs host=<name> (the name the server's \
                            certificate is checked against), not only hostaddr"
                        .into(),
                );
            }
            let addrs: Vec<String> = config
                .get_hostaddrs()
                .iter()
                .map(|a| a.to_string())
                .collect();
            for addr in addrs {
                config.host(&addr);
            }
        }
        config.ssl_mode(mode);
        Ok(mode)
    }

    fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => Check::ChainAndName,
            (_, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        }
    }

    /// The rustls configuration: reads the CA file (or the system's store), and the client
    /// certificate and key. Fails, naming the file and the problem, where one cannot be read
    /// or holds no usable certificate or key.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.roots {
            None => None,
            Some(roots) => Some(Arc::new(load_roots(roots)?)),
        };
        let verifier = Verifier {
            check: self.check(),
            roots,
            algorithms: provider.signature_verification_algorithms,
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs("sslcert", cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| pem_error("sslkey", key, "private key", e))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    format!(
                        "sslcert {:?} with sslkey {:?}: not a usable client certificate and \
                         key: {e}",
                        cert.display().to_string(),
                        key.display().to_string()
                    )
                })?
            }
        };
        // As libpq 17 does; PostgreSQL 17 needs it for sslnegotiation=direct.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(config)
    }

    /// What went wrong in a handshake, in words, if `e` is a TLS failure.
    pub fn explain(&self, e: &postgres::Error) -> Option<String> {
        let tls = rustls_error(e)?;
        let hint = match tls {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                let roots = self
                    .roots
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ({r})"));
                format!("the server's certificate is not signed by a trusted CA{roots}")
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => "the server's certificate is not valid for the host name of the connection \
                  string (sslmode=verify-full checks it; connect by a name the certificate \
                  holds)"
                .to_string(),
            rustls::Error::InvalidCertificate(_) => {
                "the server's certificate was refused".to_string()
            }
            rustls::Error::AlertReceived(_) => "the server refused the TLS handshake".to_string(),
            _ => "the TLS handshake failed".to_string(),
        };
        Some(format!("TLS (sslmode={}): {hint}: {tls}", self.mode.name()))
    }
}

/// The rustls error behind a failed connection, if that is what it is.
pub fn rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error's source() skips the error it wraps: look at it first.
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        source = s.source();
    }
    None
}

/// Checks the TLS settings of `conninfo` as far as can be done without connecting: the
/// parameters, the rest of the string (as the `postgres` crate parses it), that the files
/// named are absolute paths, and that they hold usable certificates and keys. For `check-config`
/// and the configuration's load; the message never quotes the connection string.
pub fn check_conninfo(conninfo: &str) -> Result<(), String> {
    let split = super::conninfo::split(conninfo);
    let settings = TlsSettings::from_split(&split)?;
    let mut config = split
        .rest
        .parse::<postgres::Config>()
        .map_err(|e| format!("bad connection string: {}", super::PgError::Db(e)))?;
    settings.prepare(&mut config)?;
    for (key, path) in settings.files() {
        if !path.is_absolute() {
            return Err(format!(
                "{key} {:?} is a relative path: give an absolute one (libpq would read it from \
                 the working directory, which differs between check-config and the service)",
                path.display().to_string()
            ));
        }
    }
    if settings.mode != SslMode::Disable {
        settings.client_config()?;
    }
    Ok(())
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for (i, cert) in read_certs("sslrootcert", path)?.into_iter().enumerate() {
                store.add(cert).map_err(|e| {
                    format!(
                        "sslrootcert {:?}: certificate {} is not usable as a CA: {e}",
                        path.display().to_string(),
                        i + 1
                    )
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "sslrootcert=system: no usable certificate in the operating system's trust \
                     store{}",
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", errors.join("; "))
                    }
                ));
            }
        }
    }
    Ok(store)
}

/// Every certificate in a PEM file; at least one.
fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(key, path, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(
            key,
            path,
            "certificate",
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

fn pem_error(key: &str, path: &Path, what: &str, e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    let path = path.display().to_string();
    match e {
        Error::Io(e) => format!("{key} {path:?}: cannot read it: {e}"),
        Error::NoItemsFound => {
            format!("{key} {path:?}: no {what} in it (expected PEM, \"-----BEGIN ...\")")
        }
        e => format!("{key} {path:?}: bad PEM: {e}"),
    }
}

/// The server certificate check for one [`Check`], made of rustls's webpki functions.
#[derive(Debug)]
struct Verifier {
    check: Check,
    /// Present for [`Check::Chain`] and [`Check::ChainAndName`].
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(roots) = &self.roots else {
            // from_split never allows a check without roots.
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check == Check::ChainAndName {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
