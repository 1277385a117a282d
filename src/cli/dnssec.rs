//! `clusterns dnssec`: generate a signing key into its file, and print a key file's DNSKEY and
//! DS records (the DS goes to the parent zone).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clusterns::dnssec::key::{Role, SigningKey};

use crate::cli::args::DnssecAction;

/// `clusterns dnssec keygen` and `clusterns dnssec show`.
pub(crate) fn dnssec(action: DnssecAction) -> Result<(), String> {
    match action {
        DnssecAction::Keygen {
            zone,
            algorithm,
            role,
            out,
            ttl,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let (key, text) =
                SigningKey::generate(&zone, algorithm, role, now).map_err(|e| e.to_string())?;
            let path = out.unwrap_or_else(|| {
                // BIND's name: K<zone with its final dot>+<algorithm>+<key tag>.
                PathBuf::from(format!(
                    "K{zone}+{:03}+{:05}.key",
                    algorithm.number(),
                    key.key_tag()
                ))
            });
            write_new(&path, &text)?;
            println!("{}", path.display());
            print_records(&key, ttl);
            Ok(())
        }
        DnssecAction::Show { file, ttl } => {
            let key = SigningKey::load(&file).map_err(|e| e.to_string())?;
            print_records(&key, ttl);
            Ok(())
        }
    }
}

/// The DNSKEY record and, for a key that signs the DNSKEY RRset (csk, ksk), the DS record.
fn print_records(key: &SigningKey, ttl: u32) {
    println!("{}", key.dnskey_text(ttl));
    if key.role() != Role::Zsk {
        println!("{}", key.ds_text(ttl));
    }
}

/// Writes a new file with mode 0600; never replaces one. A file left half written is removed.
fn write_new(path: &Path, text: &str) -> Result<(), String> {
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!(
                    "{shown} already exists: not overwritten (remove it or choose another --out)"
                )
            }
            _ => format!("{shown}: cannot create: {e}"),
        })?;
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(format!("{shown}: cannot write: {e}"));
    }
    Ok(())
}
