//! DNSSEC signing keys: generation, the key file (TOML, one key per file, the private key as
//! ring's PKCS#8 document in base64), the DNSKEY and DS records (RFC 4034, RFC 4509) and
//! signing (ECDSA P-256 with SHA-256, RFC 6605; Ed25519, RFC 8080), all through `ring`.
//!
//! The key file:
//! ```text
//! # clusterns DNSSEC key for repl.co. Keep it private: mode 0600, owned by the service user.
//! zone = "repl.co"
//! algorithm = "ecdsap256sha256"   # or "ed25519"
//! role = "csk"                     # "csk", "ksk" or "zsk"
//! created = 1764756000             # unix seconds, informational
//! private_key = "<base64 (standard, padded) of the PKCS#8 document>"
//! ```
//! Loading refuses unknown fields, algorithms and roles, bad base64, a PKCS#8 document ring
//! rejects for the algorithm, a zone that is not a domain name, and a file that its group or
//! others may read; every message names the file (and the line where it can).

use std::fmt;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use domain::base::iana::{DigestAlgorithm, SecurityAlgorithm};
use domain::base::rdata::ComposeRecordData;
use domain::rdata::{Dnskey, Ds};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Deserialize;
use toml::Spanned;

use crate::config::line_of;
use crate::name::DomainName;

/// Every signature either algorithm makes is this long (P-256 r||s per RFC 6605; Ed25519 per
/// RFC 8080).
pub const SIGNATURE_LEN: usize = 64;

/// The longest key file read (one is about 500 bytes).
const MAX_FILE_LEN: u64 = 64 * 1024;

/// The DNSKEY protocol field, always 3 (RFC 4034 section 2.1.2).
const PROTOCOL: u8 = 3;
/// The DNSKEY Zone Key flag (RFC 4034 section 2.1.1).
const FLAG_ZONE: u16 = 0x0100;
/// The DNSKEY Secure Entry Point flag (RFC 4034 section 2.1.1).
const FLAG_SEP: u16 = 0x0001;

/// A DNSSEC signing algorithm clusterns supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256, algorithm 13 (RFC 6605).
    EcdsaP256Sha256,
    /// Ed25519, algorithm 15 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    /// The IANA algorithm number: 13 or 15.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// The name used in key files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ecdsap256sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsap256sha256" => Ok(Algorithm::EcdsaP256Sha256),
            "ed25519" => Ok(Algorithm::Ed25519),
            _ => Err(format!(
                "unknown algorithm {s:?} (expected \"ecdsap256sha256\" or \"ed25519\")"
            )),
        }
    }
}

/// What a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Combined signing key: signs everything (flags 257).
    Csk,
    /// Key signing key: signs DNSKEY, CDS and CDNSKEY only (flags 257).
    Ksk,
    /// Zone signing key: signs everything else (flags 256).
    Zsk,
}

impl Role {
    /// The name used in key files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Csk => "csk",
            Role::Ksk => "ksk",
            Role::Zsk => "zsk",
        }
    }

    /// The DNSKEY flags of a key in this role: 257 (Zone Key and SEP) or 256 (Zone Key).
    pub fn flags(self) -> u16 {
        match self {
            Role::Csk | Role::Ksk => FLAG_ZONE | FLAG_SEP,
            Role::Zsk => FLAG_ZONE,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csk" => Ok(Role::Csk),
            "ksk" => Ok(Role::Ksk),
            "zsk" => Ok(Role::Zsk),
            _ => Err(format!(
                "unknown role {s:?} (expected \"csk\", \"ksk\" or \"zsk\")"
            )),
        }
    }
}

/// A key file that cannot be read, parsed or used; the message names the file (and the line
/// where it can).
#[derive(Debug)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// The ring key pair behind a [`SigningKey`].
enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One zone's signing key: its DNSKEY record data and key tag, computed once, and the private
/// key. `Send + Sync`: the query workers share it through an `Arc`.
pub struct SigningKey {
    zone: DomainName,
    algorithm: Algorithm,
    role: Role,
    key_tag: u16,
    dnskey: Box<[u8]>,
    pair: Pair,
    rng: SystemRandom,
}

/// The key file as written, before checking.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    zone: Spanned<String>,
    algorithm: Spanned<String>,
    role: Spanned<String>,
    #[allow(dead_code)]
    created: Option<u64>,
    private_key: Spanned<String>,
}

impl SigningKey {
    /// A new key (ring's SystemRandom), and its file text (the format above).
    pub fn generate(
        zone: &DomainName,
        algorithm: Algorithm,
        role: Role,
        now_unix: u64,
    ) -> Result<(SigningKey, String), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| {
            KeyError(format!(
                "generating a {} key for {zone}: the system random number generator failed",
                algorithm.name()
            ))
        })?;
        let pair = pair_from_pkcs8(algorithm, pkcs8.as_ref(), &rng).map_err(|e| {
            KeyError(format!(
                "generating a {} key for {zone}: ring refused its own key: {e}",
                algorithm.name()
            ))
        })?;
        let text = key_file_text(
            zone,
            algorithm,
            role,
            now_unix,
            &base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()),
        );
        let key = SigningKey::from_pair(zone.clone(), role, pair, rng)
            .map_err(|e| KeyError(format!("generating a key for {zone}: {e}")))?;
        Ok((key, text))
    }

    /// Reads a key file, refusing one that its group or others may read (mode & 0o077).
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display();
        let file = std::fs::File::open(path)
            .map_err(|e| KeyError(format!("{shown}: cannot open: {e}")))?;
        // The mode of the file opened, not of whatever the path names later.
        let meta = file
            .metadata()
            .map_err(|e| KeyError(format!("{shown}: cannot read its metadata: {e}")))?;
        if !meta.is_file() {
            return Err(KeyError(format!("{shown}: not a regular file")));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError(format!(
                "{shown}: a private key readable by group or others (mode {mode:04o}): \
                 run `chmod 600 {shown}`"
            )));
        }
        let mut text = String::new();
        file.take(MAX_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|e| KeyError(format!("{shown}: cannot read: {e}")))?;
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(KeyError(format!(
                "{shown}: longer than {MAX_FILE_LEN} bytes: not a key file"
            )));
        }
        SigningKey::parse(&text, &shown.to_string())
    }

    /// Parses key file text (no permission check); `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SigningKey, KeyError> {
        let at = |pos: usize, message: String| -> KeyError {
            KeyError(format!("{origin}:{}: {message}", line_of(text, pos)))
        };
        let raw: RawKey = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim_end().to_string();
            if message.is_empty() {
                message = "invalid TOML".into();
            }
            match e.span() {
                Some(span) => at(span.start, message),
                None => KeyError(format!("{origin}: {message}")),
            }
        })?;
        let zone: DomainName = raw
            .zone
            .get_ref()
            .parse()
            .map_err(|e: String| at(raw.zone.span().start, format!("zone: {e}")))?;
        let algorithm: Algorithm = raw
            .algorithm
            .get_ref()
            .parse()
            .map_err(|e: String| at(raw.algorithm.span().start, e))?;
        let role: Role = raw
            .role
            .get_ref()
            .parse()
            .map_err(|e: String| at(raw.role.span().start, e))?;
        let key_at = raw.private_key.span().start;
        let pkcs8 = base64::engine::general_purpose::STANDARD
            .decode(raw.private_key.get_ref().trim())
            .map_err(|e| {
                at(
                    key_at,
                    format!("private_key is not base64 (standard alphabet, padded): {e}"),
                )
            })?;
        let rng = SystemRandom::new();
        let pair = pair_from_pkcs8(algorithm, &pkcs8, &rng).map_err(|e| {
            at(
                key_at,
                format!(
                    "private_key is not a PKCS#8 {} key that ring accepts: {e}",
                    algorithm.name()
                ),
            )
        })?;
        SigningKey::from_pair(zone, role, pair, rng).map_err(|e| KeyError(format!("{origin}: {e}")))
    }

    /// The key of `zone` in `role` for a ring key pair: its DNSKEY record data and key tag.
    fn from_pair(
        zone: DomainName,
        role: Role,
        pair: Pair,
        rng: SystemRandom,
    ) -> Result<SigningKey, String> {
        let (algorithm, public) = match &pair {
            // ring gives the uncompressed point, 0x04 | x | y; DNSKEY holds x | y (RFC 6605).
            Pair::Ecdsa(p) => (
                Algorithm::EcdsaP256Sha256,
                p.public_key().as_ref().get(1..).unwrap_or_default(),
            ),
            Pair::Ed25519(p) => (Algorithm::Ed25519, p.public_key().as_ref()),
        };
        let (dnskey, key_tag) = dnskey_of(role.flags(), algorithm, public)?;
        Ok(SigningKey {
            zone,
            algorithm,
            role,
            key_tag,
            dnskey,
            pair,
            rng,
        })
    }

    /// The zone the key signs.
    pub fn zone(&self) -> &DomainName {
        &self.zone
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// What the key signs.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The DNSKEY flags: 257 (csk, ksk) or 256 (zsk).
    pub fn flags(&self) -> u16 {
        self.role.flags()
    }

    /// The key tag (RFC 4034 appendix B), computed with `domain`.
    pub fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// flags (2) | protocol 3 (1) | algorithm (1) | public key (P-256: 64 bytes x||y without
    /// the 0x04 prefix; Ed25519: 32 bytes).
    pub fn dnskey_rdata(&self) -> &[u8] {
        &self.dnskey
    }

    /// DS rdata with digest type 2 (SHA-256, RFC 4509): key tag | algorithm | 2 |
    /// SHA-256(owner in lower-case wire format | DNSKEY rdata).
    pub fn ds_rdata(&self) -> Vec<u8> {
        ds_rdata_of(&self.zone, self.key_tag, self.algorithm, &self.dnskey)
    }

    /// Signs `data` (RFC 4034 section 3.1.8.1: the RRSIG rdata without its signature, then the
    /// records in canonical form). ECDSA draws its nonce from the system's random number
    /// generator, whose failure is the only error; Ed25519 is deterministic and cannot fail.
    /// Allocates nothing.
    pub fn sign(&self, data: &[u8]) -> Result<[u8; SIGNATURE_LEN], KeyError> {
        let signature = match &self.pair {
            Pair::Ecdsa(p) => p.sign(&self.rng, data).map_err(|_| {
                KeyError(format!(
                    "signing with key {} of {}: the system random number generator failed",
                    self.key_tag, self.zone
                ))
            })?,
            Pair::Ed25519(p) => p.sign(data),
        };
        signature.as_ref().try_into().map_err(|_| {
            KeyError(format!(
                "signing with key {} of {}: a signature of {} bytes, not {SIGNATURE_LEN}",
                self.key_tag,
                self.zone,
                signature.as_ref().len()
            ))
        })
    }

    /// `repl.co. 3600 IN DNSKEY 257 3 13 <base64>` (the record data as `domain` presents it).
    pub fn dnskey_text(&self, ttl: u32) -> String {
        let public = self.dnskey.get(4..).unwrap_or_default();
        let record = Dnskey::new(
            self.flags(),
            PROTOCOL,
            SecurityAlgorithm::from_int(self.algorithm.number()),
            public,
        );
        match record {
            Ok(record) => format!("{} {ttl} IN DNSKEY {record}", self.zone),
            // Never: 4 + 64 bytes is far below the 65,535 bytes of record data.
            Err(_) => String::new(),
        }
    }

    /// `repl.co. 3600 IN DS <tag> 13 2 <HEX>` (the record data as `domain` presents it, the
    /// digest in upper case as BIND and Knot print it).
    pub fn ds_text(&self, ttl: u32) -> String {
        let digest = ds_digest(&self.zone, &self.dnskey);
        let ds = Ds::new(
            self.key_tag,
            SecurityAlgorithm::from_int(self.algorithm.number()),
            DigestAlgorithm::SHA256,
            digest.as_ref(),
        );
        match ds {
            Ok(ds) => format!(
                "{} {ttl} IN DS {}",
                self.zone,
                ds.to_string().to_ascii_uppercase()
            ),
            // Never: 4 + 32 bytes.
            Err(_) => String::new(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("zone", &self.zone)
            .field("algorithm", &self.algorithm)
            .field("role", &self.role)
            .field("flags", &self.flags())
            .field("key_tag", &self.key_tag)
            .finish_non_exhaustive()
    }
}

/// The ring key pair for `algorithm` from a PKCS#8 document.
fn pair_from_pkcs8(
    algorithm: Algorithm,
    pkcs8: &[u8],
    rng: &SystemRandom,
) -> Result<Pair, ring::error::KeyRejected> {
    Ok(match algorithm {
        Algorithm::EcdsaP256Sha256 => Pair::Ecdsa(EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            rng,
        )?),
        // v2 (ring's, with the public key, checked against the private one) or v1 (as
        // `openssl genpkey -algorithm ED25519` writes it; the public key is derived).
        Algorithm::Ed25519 => Pair::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)?),
    })
}

/// DNSKEY record data (composed by `domain`) and its key tag.
fn dnskey_of(flags: u16, algorithm: Algorithm, public: &[u8]) -> Result<(Box<[u8]>, u16), String> {
    let expected = match algorithm {
        Algorithm::EcdsaP256Sha256 => 64,
        Algorithm::Ed25519 => 32,
    };
    if public.len() != expected {
        return Err(format!(
            "a {} public key of {} bytes, not {expected}",
            algorithm.name(),
            public.len()
        ));
    }
    let record = Dnskey::new(
        flags,
        PROTOCOL,
        SecurityAlgorithm::from_int(algorithm.number()),
        public,
    )
    .map_err(|e| format!("DNSKEY: {e}"))?;
    let mut rdata = Vec::with_capacity(4 + public.len());
    // Composing into a Vec cannot fail.
    let Ok(()) = record.compose_rdata(&mut rdata);
    Ok((rdata.into_boxed_slice(), record.key_tag()))
}

/// SHA-256(owner in lower-case wire format | DNSKEY rdata) (RFC 4509 section 2.1).
fn ds_digest(zone: &DomainName, dnskey: &[u8]) -> ring::digest::Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // DomainName keeps its wire form lower-cased already.
    ctx.update(zone.wire());
    ctx.update(dnskey);
    ctx.finish()
}

/// DS record data with digest type 2 (composed by `domain`).
fn ds_rdata_of(zone: &DomainName, key_tag: u16, algorithm: Algorithm, dnskey: &[u8]) -> Vec<u8> {
    let digest = ds_digest(zone, dnskey);
    let mut rdata = Vec::with_capacity(4 + digest.as_ref().len());
    if let Ok(ds) = Ds::new(
        key_tag,
        SecurityAlgorithm::from_int(algorithm.number()),
        DigestAlgorithm::SHA256,
        digest.as_ref(),
    ) {
        let Ok(()) = ds.compose_rdata(&mut rdata);
    }
    rdata
}

/// The key file's text.
fn key_file_text(
    zone: &DomainName,
    algorithm: Algorithm,
    role: Role,
    now_unix: u64,
    private_key: &str,
) -> String {
    let shown = zone.to_string();
    let bare = if zone.is_root() {
        "."
    } else {
        shown.trim_end_matches('.')
    };
    format!(
        "# clusterns DNSSEC key for {shown} Keep it private: mode 0600, owned by the service user.\n\
         zone = \"{bare}\"\n\
         algorithm = \"{}\"   # or \"{}\"\n\
         role = \"{}\"   # \"csk\" (signs everything), \"ksk\" (DNSKEY/CDS/CDNSKEY only), \"zsk\" (everything else)\n\
         created = {now_unix}   # unix seconds, informational\n\
         private_key = \"{private_key}\"\n",
        algorithm.name(),
        match algorithm {
            Algorithm::EcdsaP256Sha256 => Algorithm::Ed25519.name(),
            Algorithm::Ed25519 => Algorithm::EcdsaP256Sha256.name(),
        },
        role.name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use hickory_proto::rr::dnssec::rdata::{DNSSECRData, DNSKEY as HDnskey, DS as HDs};
    use hickory_proto::rr::dnssec::{Algorithm as HAlgorithm, DigestType, PublicKey, PublicKeyBuf};
    use hickory_proto::rr::{Name, RData, RecordType};
    use hickory_proto::serialize::binary::{BinDecoder, Restrict};
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn zone(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// A key file's text with one line replaced (by its key), for the refusal tests.
    fn with_line(text: &str, key: &str, line: &str) -> String {
        text.lines()
            .map(|l| if l.starts_with(key) { line } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sample(algorithm: Algorithm) -> String {
        SigningKey::generate(&zone("repl.co"), algorithm, Role::Csk, 1_764_756_000)
            .unwrap()
            .1
    }

    fn parse_err(text: &str) -> String {
        SigningKey::parse(text, "/etc/clusterns/k.key")
            .unwrap_err()
            .to_string()
    }

    /// The key as hickory decodes its DNSKEY record data.
    fn hickory_dnskey(key: &SigningKey) -> HDnskey {
        match hickory_rdata(key.dnskey_rdata(), RecordType::DNSKEY) {
            DNSSECRData::DNSKEY(k) => k,
            other => panic!("not a DNSKEY: {other:?}"),
        }
    }

    fn hickory_rdata(rdata: &[u8], rtype: RecordType) -> DNSSECRData {
        let mut decoder = BinDecoder::new(rdata);
        match RData::read(&mut decoder, rtype, Restrict::new(rdata.len() as u16)).unwrap() {
            RData::DNSSEC(d) => d,
            other => panic!("not DNSSEC record data: {other:?}"),
        }
    }

    fn hickory_algorithm(algorithm: Algorithm) -> HAlgorithm {
        match algorithm {
            Algorithm::EcdsaP256Sha256 => HAlgorithm::ECDSAP256SHA256,
            Algorithm::Ed25519 => HAlgorithm::ED25519,
        }
    }

    #[test]
    fn names_numbers_and_flags() {
        assert_eq!(Algorithm::EcdsaP256Sha256.number(), 13);
        assert_eq!(Algorithm::Ed25519.number(), 15);
        for a in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
        for r in [Role::Csk, Role::Ksk, Role::Zsk] {
            assert_eq!(r.name().parse::<Role>(), Ok(r));
        }
        assert_eq!(Role::Csk.flags(), 257);
        assert_eq!(Role::Ksk.flags(), 257);
        assert_eq!(Role::Zsk.flags(), 256);
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SigningKey>();
    }

    #[test]
    fn generate_and_parse_round_trip() {
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            for role in [Role::Csk, Role::Ksk, Role::Zsk] {
                let (key, text) =
                    SigningKey::generate(&zone("Repl.CO."), algorithm, role, 1_764_756_000)
                        .unwrap();
                assert!(text.starts_with("# clusterns DNSSEC key for repl.co. Keep it private"));
                assert!(text.contains("\nzone = \"repl.co\"\n"), "{text}");
                assert!(text.contains("\ncreated = 1764756000 "), "{text}");
                let back = SigningKey::parse(&text, "k.key").unwrap();
                assert_eq!(back.zone(), &zone("repl.co"));
                assert_eq!(back.algorithm(), algorithm);
                assert_eq!(back.role(), role);
                assert_eq!(back.flags(), role.flags());
                assert_eq!(back.dnskey_rdata(), key.dnskey_rdata());
                assert_eq!(back.key_tag(), key.key_tag());
                assert_eq!(back.ds_rdata(), key.ds_rdata());
                let rdata = key.dnskey_rdata();
                assert_eq!(u16::from_be_bytes([rdata[0], rdata[1]]), role.flags());
                assert_eq!(rdata[2], 3);
                assert_eq!(rdata[3], algorithm.number());
                let public_len = match algorithm {
                    Algorithm::EcdsaP256Sha256 => 64,
                    Algorithm::Ed25519 => 32,
                };
                assert_eq!(rdata.len(), 4 + public_len);
                // The private key never shows in Debug.
                let debug = format!("{key:?}");
                let secret = text.lines().last().unwrap();
                let secret = &secret["private_key = \"".len()..secret.len() - 1];
                assert!(
                    !debug.contains(secret) && !debug.contains("private"),
                    "{debug}"
                );
            }
        }
        // Two keys are two keys.
        let a = sample(Algorithm::Ed25519);
        let b = sample(Algorithm::Ed25519);
        assert_ne!(a, b);
    }

    #[test]
    fn signatures_verify_with_ring_and_hickory() {
        let data = b"the RRSIG rdata and the canonical RRset would go here";
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let (key, _) = SigningKey::generate(&zone("repl.co"), algorithm, Role::Zsk, 0).unwrap();
            let sig = key.sign(data).unwrap();
            let public = &key.dnskey_rdata()[4..];
            let (ring_alg, ring_key) = match algorithm {
                Algorithm::EcdsaP256Sha256 => (
                    &ECDSA_P256_SHA256_FIXED as &dyn ring::signature::VerificationAlgorithm,
                    [&[4u8][..], public].concat(),
                ),
                Algorithm::Ed25519 => (
                    &ED25519 as &dyn ring::signature::VerificationAlgorithm,
                    public.to_vec(),
                ),
            };
            let ring_key = UnparsedPublicKey::new(ring_alg, ring_key);
            ring_key.verify(data, &sig).unwrap();
            let hickory_key = PublicKeyBuf::new(hickory_dnskey(&key).public_key().to_vec());
            let h_alg = hickory_algorithm(algorithm);
            hickory_key.verify(h_alg, data, &sig).unwrap();
            // Both refuse a wrong signature and other data: the checks can fail.
            let mut bad = sig;
            bad[10] ^= 1;
            assert!(ring_key.verify(data, &bad).is_err());
            assert!(hickory_key.verify(h_alg, data, &bad).is_err());
            assert!(hickory_key.verify(h_alg, b"other data", &sig).is_err());
        }
    }

    #[test]
    fn key_tag_and_ds_agree_with_hickory() {
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            for role in [Role::Csk, Role::Zsk] {
                let (key, _) = SigningKey::generate(&zone("repl.co"), algorithm, role, 0).unwrap();
                let dnskey = hickory_dnskey(&key);
                assert_eq!(dnskey.algorithm(), hickory_algorithm(algorithm));
                assert_eq!(dnskey.flags(), role.flags());
                assert_eq!(dnskey.calculate_key_tag().unwrap(), key.key_tag());
                let name = Name::from_ascii("repl.co.").unwrap();
                let digest = dnskey.to_digest(&name, DigestType::SHA256).unwrap();
                let ds = key.ds_rdata();
                assert_eq!(&ds[4..], digest.as_ref());
                let hds: HDs = match hickory_rdata(&ds, RecordType::DS) {
                    DNSSECRData::DS(ds) => ds,
                    other => panic!("not a DS: {other:?}"),
                };
                assert_eq!(hds.key_tag(), key.key_tag());
                assert!(hds.covers(&name, &dnskey).unwrap());
                let other = Name::from_ascii("repl.com.").unwrap();
                assert!(!hds.covers(&other, &dnskey).unwrap());
            }
        }
    }

    /// RFC 6605 section 6.1: the P-256 key of example.net., DS key tag 55648.
    #[test]
    fn rfc6605_p256_example() {
        let private = B64
            .decode("GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=")
            .unwrap();
        let public = B64
            .decode(
                "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb\
                 krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
            )
            .unwrap();
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &private,
            &[&[4u8][..], &public].concat(),
            &rng,
        )
        .unwrap();
        let key =
            SigningKey::from_pair(zone("example.net"), Role::Ksk, Pair::Ecdsa(pair), rng).unwrap();
        assert_eq!(key.key_tag(), 55648);
        assert_eq!(
            key.dnskey_text(3600),
            "example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA=="
        );
        assert_eq!(
            key.ds_text(3600),
            "example.net. 3600 IN DS 55648 13 2 \
             B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
        let ds = key.ds_rdata();
        assert_eq!(&ds[..4], &[0xd9, 0x60, 13, 2]);
        assert_eq!(
            hex(&ds[4..]),
            "B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
    }

    /// RFC 8080 section 6.1 (signature as corrected by erratum 4935): Ed25519 is
    /// deterministic, so signing the example MX RRset gives the published signature.
    #[test]
    fn rfc8080_ed25519_example() {
        let seed = B64
            .decode("ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=")
            .unwrap();
        let public = B64
            .decode("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")
            .unwrap();
        let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, &public).unwrap();
        let key = SigningKey::from_pair(
            zone("example.com"),
            Role::Csk,
            Pair::Ed25519(pair),
            SystemRandom::new(),
        )
        .unwrap();
        assert_eq!(key.key_tag(), 3613);
        assert_eq!(
            key.ds_text(3600),
            "example.com. 3600 IN DS 3613 15 2 \
             3AA5AB37EFCE57F737FC1627013FEE07BDF241BD10F3B1964AB55C78E79A304B"
        );
        // RRSIG rdata without the signature: MX, alg 15, 2 labels, TTL 3600, expiration
        // 1440021600, inception 1438207200, tag 3613, signer example.com.; then the record
        // example.com. 3600 IN MX 10 mail.example.com. in canonical form.
        let example_com: &[u8] = b"\x07example\x03com\x00";
        let mut data = Vec::new();
        data.extend_from_slice(&15u16.to_be_bytes());
        data.extend_from_slice(&[15, 2]);
        data.extend_from_slice(&3600u32.to_be_bytes());
        data.extend_from_slice(&1_440_021_600u32.to_be_bytes());
        data.extend_from_slice(&1_438_207_200u32.to_be_bytes());
        data.extend_from_slice(&3613u16.to_be_bytes());
        data.extend_from_slice(example_com);
        data.extend_from_slice(example_com);
        data.extend_from_slice(&15u16.to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&3600u32.to_be_bytes());
        let mx = [&10u16.to_be_bytes()[..], b"\x04mail", example_com].concat();
        data.extend_from_slice(&(mx.len() as u16).to_be_bytes());
        data.extend_from_slice(&mx);
        let sig = key.sign(&data).unwrap();
        assert_eq!(
            B64.encode(sig),
            "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg=="
        );
    }

    /// A PKCS#8 v1 Ed25519 document (RFC 8410, as OpenSSL writes it) is accepted: the
    /// RFC 8080 key wrapped that way has its key tag.
    #[test]
    fn ed25519_pkcs8_v1() {
        let seed = B64
            .decode("ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=")
            .unwrap();
        let mut v1 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        v1.extend_from_slice(&seed);
        let text = format!(
            "zone = \"example.com\"\nalgorithm = \"ed25519\"\nrole = \"csk\"\nprivate_key = \"{}\"\n",
            B64.encode(&v1)
        );
        let key = SigningKey::parse(&text, "v1.key").unwrap();
        assert_eq!(key.key_tag(), 3613);
        // The same bytes are no ECDSA key.
        let ecdsa = text.replace("ed25519", "ecdsap256sha256");
        assert!(SigningKey::parse(&ecdsa, "v1.key").is_err());
    }

    #[test]
    fn text_records() {
        let (key, _) =
            SigningKey::generate(&zone("repl.co"), Algorithm::Ed25519, Role::Csk, 0).unwrap();
        let dnskey = key.dnskey_text(300);
        let public = B64.encode(&key.dnskey_rdata()[4..]);
        assert_eq!(dnskey, format!("repl.co. 300 IN DNSKEY 257 3 15 {public}"));
        let ds = key.ds_text(86400);
        let want = format!(
            "repl.co. 86400 IN DS {} 15 2 {}",
            key.key_tag(),
            hex(&key.ds_rdata()[4..])
        );
        assert_eq!(ds, want);
    }

    #[test]
    fn refusals_name_the_file_and_line() {
        let good = sample(Algorithm::EcdsaP256Sha256);
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{good}colour = \"blue\"\n"),
                "/etc/clusterns/k.key:7: unknown field `colour`",
            ),
            (
                with_line(&good, "algorithm", "algorithm = \"rsasha256\""),
                "/etc/clusterns/k.key:3: unknown algorithm \"rsasha256\"",
            ),
            (
                with_line(&good, "role", "role = \"kzk\""),
                "/etc/clusterns/k.key:4: unknown role \"kzk\"",
            ),
            (
                with_line(&good, "private_key", "private_key = \"not*base64\""),
                "/etc/clusterns/k.key:6: private_key is not base64",
            ),
            (
                with_line(&good, "private_key", "private_key = \"aGVsbG8=\""),
                "/etc/clusterns/k.key:6: private_key is not a PKCS#8 ecdsap256sha256 key",
            ),
            // An ECDSA key under the Ed25519 name.
            (
                with_line(&good, "algorithm", "algorithm = \"ed25519\""),
                "/etc/clusterns/k.key:6: private_key is not a PKCS#8 ed25519 key",
            ),
            (
                with_line(&good, "zone", "zone = \"repl..co\""),
                "/etc/clusterns/k.key:2: zone: \"repl..co\" has an empty label",
            ),
            (
                with_line(&good, "zone", &format!("zone = \"{}.co\"", "a".repeat(64))),
                "/etc/clusterns/k.key:2: zone: ",
            ),
            (
                with_line(&good, "role", ""),
                "/etc/clusterns/k.key:1: missing field `role`",
            ),
            (
                with_line(&good, "created", "created = \"yesterday\""),
                "/etc/clusterns/k.key:5: invalid type",
            ),
            ("zone = \n".into(), "/etc/clusterns/k.key:1: "),
        ];
        for (text, want) in cases {
            let got = parse_err(&text);
            assert!(
                got.starts_with(want),
                "got {got:?}\nwant {want:?}\nfor\n{text}"
            );
            let secret = good.lines().last().unwrap();
            assert!(!got.contains(&secret[15..secret.len() - 1]), "{got}");
        }
        // An Ed25519 key under the ECDSA name.
        let ed = with_line(
            &sample(Algorithm::Ed25519),
            "algorithm",
            "algorithm = \"ecdsap256sha256\"",
        );
        assert!(parse_err(&ed).contains(":6: private_key is not a PKCS#8 ecdsap256sha256 key"));
    }

    #[test]
    fn load_checks_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        std::fs::write(&path, sample(Algorithm::Ed25519)).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = SigningKey::load(&path).unwrap_err().to_string();
            let want = format!(
                "{}: a private key readable by group or others (mode {mode:04o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            );
            assert_eq!(err, want);
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let key = SigningKey::load(&path).unwrap();
            assert_eq!(key.algorithm(), Algorithm::Ed25519);
        }
        let missing = dir.path().join("none.key");
        let err = SigningKey::load(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot open: ", missing.display())),
            "{err}"
        );
        std::fs::write(&path, " ".repeat(70_000)).unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: longer than 65536 bytes: not a key file",
                path.display()
            )
        );
        // A bad file loaded from disk names the path.
        std::fs::write(&path, "zone = \"repl.co\"\n").unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:1: missing field", path.display())),
            "{err}"
        );
    }
}
