//! What the Debian package ships (dist/, Cargo.toml's `[package.metadata.deb]`), checked
//! without building or installing it (dist/test-deb.sh does that, as root, in CI):
//! - the systemd unit: `systemd-analyze` (Debian's `systemd` package) finds it valid and its
//!   exposure low (Debian's knot.service scores 7.0 MEDIUM); skipped, saying so, where
//!   systemd-analyze is not installed, never in CI;
//! - the default config /etc/clusterns/clusterns.toml passes `check-config` and answers;
//! - the unit, the config and the package's assets name the same paths, and every asset that is
//!   not generated at build time exists.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/clusterns.service");
const RELAY_UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/clusterns-relay.service");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/clusterns.toml");
const BIN: &str = env!("CARGO_BIN_EXE_clusterns");
/// Where the package puts the service's state; the shipped config names files in it.
const STATE: &str = "/var/lib/clusterns";
/// The unit's runtime directory (the control socket).
const RUNTIME: &str = "/run/clusterns";

fn analyze(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(o) => Some(o),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("systemd-analyze not installed ({e}): the unit is not checked");
            None
        }
        Err(e) => panic!("systemd-analyze is required in CI: {e}"),
    }
}

#[test]
fn the_unit_is_hardened() {
    // --threshold: fails above an exposure of 2.5 (of 10).
    let Some(o) = analyze(&["security", "--offline=true", "--threshold=25", UNIT]) else {
        return;
    };
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("Overall exposure level"), "{text}");
}

#[test]
fn the_relay_unit_is_hardened_shipped_and_runs_the_relay() {
    let unit = std::fs::read_to_string(RELAY_UNIT).unwrap();
    let execs: Vec<&str> = unit.lines().filter(|l| l.starts_with("Exec")).collect();
    assert_eq!(
        execs,
        [
            "ExecStartPre=/usr/bin/clusterns check-config --config /etc/clusterns/clusterns.toml",
            "ExecStart=/usr/bin/clusterns relay --config /etc/clusterns/clusterns.toml",
        ]
    );
    assert!(assets()
        .iter()
        .any(|(s, d)| s == "dist/clusterns-relay.service"
            && d == "lib/systemd/system/clusterns-relay.service"));
    let Some(o) = analyze(&["security", "--offline=true", "--threshold=25", RELAY_UNIT]) else {
        return;
    };
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_check_that_can_fail_does() {
    // The same check on a unit with no hardening fails: the test above can fail.
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.service");
    std::fs::write(&bare, "[Service]\nExecStart=/bin/true\n").unwrap();
    let Some(o) = analyze(&[
        "security",
        "--offline=true",
        "--threshold=25",
        bare.to_str().unwrap(),
    ]) else {
        return;
    };
    assert!(!o.status.success());
}

/// The shipped config with its state and runtime directories moved into `dir`, as the
/// package's postinst and the unit leave them (an empty journal), for a test without root.
fn shipped_config_in(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(CONFIG).unwrap();
    assert!(
        text.contains(STATE),
        "the shipped config names no file in {STATE}"
    );
    let text = text
        .replace(STATE, dir.to_str().unwrap())
        .replace(RUNTIME, dir.to_str().unwrap());
    let path = dir.join("clusterns.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("journal.log"), "").unwrap();
    path
}

fn clusterns(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_shipped_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_in(dir.path());
    let o = clusterns(&["check-config", "--config", config.to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // Port 53 on every address, the journal and checkpoint in the state directory.
    for line in [
        "listen 0.0.0.0:53",
        "listen [::]:53",
        "zone apps.example.net.",
        "cluster us-east",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    let journal = dir.path().join("journal.log");
    assert!(
        out.contains(&format!("feed journal {}", journal.display())),
        "{out}"
    );
    let ckpt = dir.path().join("table.ckpt");
    assert!(
        out.contains(&format!("checkpoint {}", ckpt.display())),
        "{out}"
    );

    // The check can fail: without the journal the package creates, it does, naming the line.
    std::fs::remove_file(&journal).unwrap();
    let o = clusterns(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("clusterns.toml:"), "{}", text(&o));
    assert!(text(&o).contains("does not exist"), "{}", text(&o));
}

#[test]
fn the_shipped_config_answers_for_its_example_zone() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_in(dir.path());
    let config = config.to_str().unwrap();
    let id = "3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c";
    let o = clusterns(&[
        "repl", "--config", config, "set", id, "mark", "coolgame", "eu-west",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = clusterns(&[
        "lookup",
        "--config",
        config,
        "coolgame.mark.apps.example.net",
        "A",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("198.51.100.20"), "{}", text(&o));
}

#[test]
fn the_metrics_endpoint_of_the_shipped_config_is_on_loopback_only() {
    let config: toml::Table = std::fs::read_to_string(CONFIG).unwrap().parse().unwrap();
    let listen = config["metrics"]["listen"].as_str().unwrap();
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    assert!(addr.ip().is_loopback(), "metrics.listen {listen}");
}

/// `[package.metadata.deb]` in Cargo.toml.
fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = std::fs::read_to_string(format!("{ROOT}/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("Cargo.toml has a [package.metadata.deb] table")
        .clone()
}

/// The package's assets as (source, destination).
fn assets() -> Vec<(String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let s = |i: usize| a[i].as_str().unwrap().to_string();
            (s(0), s(1))
        })
        .collect()
}

#[test]
fn the_package_ships_what_the_unit_and_the_config_name() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let assets = assets();
    let dest_of = |src: &str| {
        assets
            .iter()
            .find(|(s, _)| s == src)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no asset {src}"))
    };
    assert_eq!(dest_of("target/release/clusterns"), "usr/bin/");
    assert_eq!(
        dest_of("dist/clusterns.toml"),
        "etc/clusterns/clusterns.toml"
    );
    // The README that the unit's Documentation= names.
    assert_eq!(dest_of("README.md"), "usr/share/doc/clusterns/README.md");
    assert!(unit.contains("file:///usr/share/doc/clusterns/README.md"));
    // Every command the unit runs is the packaged binary with the packaged config.
    let execs: Vec<&str> = unit.lines().filter(|l| l.starts_with("Exec")).collect();
    assert_eq!(execs.len(), 3, "{execs:?}");
    for e in execs {
        let (_, cmd) = e.split_once('=').unwrap();
        assert!(cmd.starts_with("/usr/bin/clusterns "), "{e}");
        assert!(
            cmd.ends_with(" --config /etc/clusterns/clusterns.toml"),
            "{e}"
        );
    }
    // The control socket's directory, for the service's group only.
    assert!(unit.contains("\nRuntimeDirectory=clusterns\n"));
    assert!(unit.contains("\nRuntimeDirectoryMode=0750\n"));
}

#[test]
fn every_asset_not_built_exists_and_the_scripts_are_sound() {
    for (src, _) in assets() {
        if src.starts_with("target/release/") {
            continue; // dist/build-deb.sh makes these before `cargo deb`
        }
        assert!(
            Path::new(ROOT).join(&src).is_file(),
            "asset {src} is missing"
        );
    }
    let meta = deb_metadata();
    let scripts = meta["maintainer-scripts"].as_str().unwrap();
    for name in ["postinst", "postrm"] {
        let path = format!("{ROOT}/{scripts}/{name}");
        let body = std::fs::read_to_string(&path).unwrap();
        // cargo-deb puts the unit's enable/stop fragments at the marker, on a line of its own
        // and only once: it replaces every occurrence, in a comment too.
        assert!(
            body.contains("\n#DEBHELPER#\n"),
            "{name} has no #DEBHELPER# line"
        );
        assert_eq!(body.matches("DEBHELPER").count(), 1, "{name}");
        assert!(body.starts_with("#!/bin/sh\n"), "{name}");
        // sh -n: the script parses (dpkg runs it with /bin/sh, dash on Debian).
        let o = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
    // The unit is found as <package>.service in unit-scripts.
    let units = meta["systemd-units"]["unit-scripts"].as_str().unwrap();
    assert!(Path::new(ROOT)
        .join(units)
        .join("clusterns.service")
        .is_file());
    assert_eq!(meta["systemd-units"]["start"].as_bool(), Some(false));
}
