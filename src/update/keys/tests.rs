//! Tests of the key file parser: BIND's format as `tsig-keygen` prints it, errors with their
//! lines, the file mode check, and that no secret is ever printed.

use std::path::Path;

use super::*;

const GOOD: &str = r#"# keys for the ACME clients
key "acme-mark" {
	algorithm hmac-sha256;
	secret "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
};
// a second one
key acme-other. { algorithm HMAC-SHA512; /* inline */ secret "YW5vdGhlcg=="; };
"#;

fn p(text: &str) -> Result<Keys, KeyFileError> {
    parse(Path::new("/etc/k.key"), text)
}

#[test]
fn parses_bind_keys() {
    let k = p(GOOD).unwrap();
    assert_eq!(k.len(), 2);
    let mark = k.get("ACME-mark.").unwrap();
    assert_eq!(mark.name, "acme-mark");
    assert_eq!(mark.line, 2);
    assert_eq!(mark.key.algorithm(), Algorithm::Sha256);
    assert_eq!(
        k.get("acme-other").unwrap().key.algorithm(),
        Algorithm::Sha512
    );
    let name: KeyName = "Acme-Mark.".parse().unwrap();
    assert!(k.get_key(&name, Algorithm::Sha256).is_some());
    assert!(k.get_key(&name, Algorithm::Sha512).is_none());
    assert!(p("").unwrap().is_empty());
    // The closing `;` may be missing at the end.
    assert_eq!(
        p("key k { algorithm hmac-sha256; secret \"YQ==\"; }")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn errors_name_the_line() {
    for (text, line, want) in [
        ("options { };", 1, "expected a `key` statement"),
        ("key \"a\" {\n algorithm hmac-md5;\n secret \"YQ==\";\n};", 2, "not supported"),
        ("key \"a\" {\n algorithm hmac-sha256;\n};", 1, "has no secret"),
        ("key \"a\" {\n secret \"YQ==\";\n};", 1, "has no algorithm"),
        ("key \"a\" {\n algorithm hmac-sha256;\n secret \"!!\";\n};", 3, "not valid base64"),
        ("key \"a\" {\n algorithm hmac-sha256;\n secret \"\";\n};", 1, "empty secret"),
        ("key \"a\" {\n algorithm hmac-sha256\n secret \"YQ==\";\n};", 3, "expected `;`"),
        ("key \"a\" {\n colour blue;\n};", 2, "unknown setting"),
        ("key \"a\" {\n algorithm hmac-sha256;\n secret \"YQ==\";\n", 3, "file ends"),
        ("key \"a\" { algorithm hmac-sha256; secret \"YQ==\"; };\nkey \"A\" { algorithm hmac-sha256; secret \"YQ==\"; };", 2, "defined twice"),
        ("\n\nkey \"a\n", 3, "unterminated"),
        ("/* never closed", 1, "unterminated"),
        ("key \"a..b\" { algorithm hmac-sha256; secret \"YQ==\"; };", 1, "not a domain name"),
    ] {
        let e = p(text).unwrap_err();
        assert_eq!(e.line, Some(line), "{text:?}: {e}");
        assert!(e.message.contains(want), "{text:?}: {e}");
        assert!(e.to_string().starts_with(&format!("/etc/k.key:{line}: ")), "{e}");
    }
}

#[test]
fn no_secret_is_ever_printed() {
    let k = p(GOOD).unwrap();
    let debug = format!("{k:?}");
    assert!(
        debug.contains("acme-mark") && debug.contains("redacted"),
        "{debug}"
    );
    assert!(
        !debug.contains("MDEy") && !debug.contains("0123456789"),
        "{debug}"
    );
    // An unquoted secret in a broken statement is not quoted back.
    let e = p("key a { algorithm hmac-sha256; secret c2VjcmV0IHNlY3JldA== x; };").unwrap_err();
    assert!(!e.to_string().contains("c2Vj"), "{e}");
    let e = p("key a { algorithm hmac-sha256; secret \"c2VjcmV0\" \"c2VjcmV0\"; };").unwrap_err();
    assert!(!e.to_string().contains("c2Vj"), "{e}");
}

#[cfg(unix)]
#[test]
fn load_refuses_a_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    std::fs::write(&path, GOOD).unwrap();
    for (mode, ok) in [
        (0o600, true),
        (0o640, true),
        (0o644, false),
        (0o660, false),
        (0o604, false),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = load(&path);
        assert_eq!(r.is_ok(), ok, "{mode:o}: {r:?}");
        if let Err(e) = r {
            assert!(e.message.contains("chmod 0600"), "{e}");
        }
    }
    let e = load(&dir.path().join("missing")).unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
}

/// `tsig-keygen` (bind9) output parses, when the tool is there. The format is the one
/// `parses_bind_keys` reads, as BIND 9.18 prints it.
#[test]
fn tsig_keygen_output_parses() {
    for alg in ["hmac-sha256", "hmac-sha512"] {
        let out = match std::process::Command::new("tsig-keygen")
            .args(["-a", alg, "acme-x"])
            .output()
        {
            Ok(out) => out,
            // Skipped even in CI: tsig-keygen comes with the bind9 server package, which CI
            // need not install (the nsupdate test covers a real BIND client).
            Err(_) => {
                eprintln!("skipped: tsig-keygen (bind9) is not installed");
                return;
            }
        };
        assert!(out.status.success());
        let keys = p(&String::from_utf8(out.stdout).unwrap()).unwrap();
        assert_eq!(keys.get("acme-x").unwrap().key.algorithm().to_string(), alg);
    }
}
