//! End-to-end through the real `clusterns` binary: serve, change the journal with the CLI,
//! stop with SIGTERM; config errors name file and line.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_clusterns");

#[test]
fn serve_move_and_stop() {
    let s = setup("");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            path_str(&s.config_path),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("CLUSTERNS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("clusterns: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();

    let m = udp_ask(addr, "coolgame.mark.repl.co", RecordType::A);
    assert_eq!(a_records(&m).len(), 2);

    let moved = Command::new(BIN)
        .args([
            "repl",
            "--config",
            path_str(&s.config_path),
            "move",
            "r-one",
            "west",
        ])
        .output()
        .unwrap();
    assert!(moved.status.success(), "{moved:?}");
    assert_eq!(
        String::from_utf8_lossy(&moved.stdout).trim(),
        "4 set r-one mark coolgame west"
    );
    assert!(wait_for(Duration::from_secs(2), || {
        a_records(&udp_ask(addr, "coolgame.mark.repl.co", RecordType::A)) == vec!["198.51.100.7"]
    }));

    let deleted = Command::new(BIN)
        .args([
            "repl",
            "--config",
            path_str(&s.config_path),
            "delete",
            "r-two",
        ])
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(wait_for(Duration::from_secs(2), || {
        udp_ask(addr, "notes.mark.repl.co", RecordType::A).response_code() == ResponseCode::NXDomain
    }));

    // Unknown cluster and unknown app are refused by the CLI, and nothing is written.
    let before = std::fs::read_to_string(&s.journal_path).unwrap();
    for args in [["move", "r-one", "mars"], ["move", "r-nope", "west"]] {
        let o = Command::new(BIN)
            .args(["repl", "--config", path_str(&s.config_path)])
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(!o.stderr.is_empty());
    }
    assert_eq!(std::fs::read_to_string(&s.journal_path).unwrap(), before);

    // SIGTERM: a clean exit.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn config_errors_name_file_and_line() {
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    let bad = text.replace("198.51.100.7", "198.51.100.700");
    std::fs::write(&s.config_path, &bad).unwrap();
    let line = bad[..bad.find("198.51.100.700").unwrap()].lines().count();
    for sub in [vec!["check-config"], vec!["serve", "--config"]] {
        let o = Command::new(BIN)
            .args(&sub)
            .arg(&s.config_path)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        let want = format!("{}:{line}:", s.config_path.display());
        assert!(err.contains(&want), "{err:?} lacks {want:?}");
    }
}

/// What `serve` would only find when it runs, `check-config` finds first, naming file and line:
/// a checkpoint directory that does not exist or is not writable, a checkpoint that is a
/// directory, a service user that does not exist. A PostgreSQL password is never printed.
#[test]
fn check_config_finds_what_fails_at_run_time() {
    let s = setup("");
    let good = std::fs::read_to_string(&s.config_path).unwrap();
    let check = |text: &str| {
        std::fs::write(&s.config_path, text).unwrap();
        Command::new(BIN)
            .arg("check-config")
            .arg(&s.config_path)
            .output()
            .unwrap()
    };
    let expect_error = |text: String, at: &str, says: &str| {
        let o = check(&text);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{text}");
        let line = text[..text.find(at).unwrap()].lines().count() + 1;
        let want = format!("{}:{line}:", s.config_path.display());
        assert!(err.contains(&want), "{err:?} lacks {want:?}");
        assert!(err.contains(says), "{err:?} lacks {says:?}");
    };
    let with_feed = |extra: &str| good.replace("[feed]\n", &format!("[feed]\n{extra}\n"));
    expect_error(
        with_feed("checkpoint = \"no-such-dir/table.ckpt\""),
        "checkpoint =",
        "No such file",
    );
    std::fs::create_dir(s.dir.path().join("ckpt.d")).unwrap();
    expect_error(
        with_feed("checkpoint = \"ckpt.d\""),
        "checkpoint =",
        "is a directory",
    );
    expect_error(
        good.replace(
            "[server]\n",
            "[server]\nuser = \"no-such-user-clusterns\"\n",
        ),
        "user =",
        "no such user",
    );
    // Not writable by the service user: a directory only root may write to, checked for
    // `nobody`.
    let locked = s.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    expect_error(
        with_feed("checkpoint = \"locked/table.ckpt\"")
            .replace("[server]\n", "[server]\nuser = \"nobody\"\n"),
        "checkpoint =",
        "not writable",
    );
    let ok = check(&with_feed("checkpoint = \"table.ckpt\""));
    assert!(ok.status.success(), "{ok:?}");

    let pg = good.replace(
        "source = \"journal\"\njournal = \"journal.log\"",
        "source = \"postgres\"\npostgres = \"host=127.0.0.1 user=ns password=s3cret\"",
    );
    assert_ne!(pg, good);
    let o = check(&pg);
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("password=***"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    // `clusterns check-config ... | head`: the reader is gone before the first line is written.
    let s = setup("");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(BIN)
        .arg("check-config")
        .arg(&s.config_path)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing to say about it: {err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let s = setup("");
    let o = Command::new(BIN)
        .args(["lookup", "--config"])
        .arg(&s.config_path)
        .arg("coolgame.mark.repl.co")
        .env("CLUSTERNS_LOG", "debug")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("INFO") || err.contains("DEBUG"),
        "some log lines: {err}"
    );
    assert!(!err.contains('\u{1b}'), "no ANSI escapes: {err:?}");
}

#[test]
fn check_config_prints_what_it_serves() {
    let s = setup("");
    let o = Command::new(BIN)
        .arg("check-config")
        .arg(&s.config_path)
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("zone repl.co."), "{text}");
    assert!(text.contains("cluster east"), "{text}");
}

/// `repl set` refuses a name another app holds (the server would skip that line), and writes
/// nothing; a free name is taken.
#[test]
fn repl_set_refuses_a_name_another_app_holds() {
    let s = setup("");
    let before = std::fs::read_to_string(&s.journal_path).unwrap();
    let set = |id: &str, user: &str, slug: &str| {
        Command::new(BIN)
            .args(["repl", "--config", path_str(&s.config_path), "set"])
            .args([id, user, slug, "east"])
            .output()
            .unwrap()
    };
    let o = set("r-new", "mark", "coolgame");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{o:?}");
    assert!(err.contains("coolgame") && err.contains("r-one"), "{err}");
    assert_eq!(std::fs::read_to_string(&s.journal_path).unwrap(), before);
    // The app that holds it may set it again (a move); another name is free.
    assert!(set("r-one", "mark", "coolgame").status.success());
    let o = set("r-new", "mark", "newgame");
    assert!(o.status.success(), "{o:?}");
    let after = std::fs::read_to_string(&s.journal_path).unwrap();
    assert!(after.ends_with("set r-new mark newgame east\n"), "{after}");
}

/// Every command takes the configuration the same way: `--config`, else `$CLUSTERNS_CONFIG`,
/// else /etc/clusterns/clusterns.toml.
#[test]
fn every_command_finds_the_config_the_same_way() {
    let s = setup("");
    let run = |args: &[&str], env: Option<&std::path::Path>| {
        let mut c = Command::new(BIN);
        c.args(args).env_remove("CLUSTERNS_CONFIG");
        if let Some(p) = env {
            c.env("CLUSTERNS_CONFIG", p);
        }
        c.output().unwrap()
    };
    for args in [
        &["check-config"][..],
        &["lookup", "r-one.repl.co"],
        &["repl", "move", "r-one", "west"],
        &["journal", "compact"],
    ] {
        let o = run(args, Some(&s.config_path));
        assert!(o.status.success(), "{args:?} with $CLUSTERNS_CONFIG: {o:?}");
        let o = run(args, None);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            all.contains("/etc/clusterns/clusterns.toml"),
            "{args:?} without: {all}"
        );
    }
    // --config wins over the environment.
    let o = Command::new(BIN)
        .args([
            "lookup",
            "--config",
            path_str(&s.config_path),
            "r-one.repl.co",
        ])
        .env("CLUSTERNS_CONFIG", "/nonexistent/c.toml")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// Log lines for journald carry their syslog priority (`<6>` info, `<4>` warn, `<3>` error);
/// for log shippers, one JSON object per line.
#[test]
fn logs_for_journald_and_as_json() {
    let s = setup("");
    let logs = |format: &str| {
        let o = Command::new(BIN)
            .args(["lookup", "--config"])
            .arg(&s.config_path)
            .arg("coolgame.mark.repl.co")
            .env("CLUSTERNS_LOG", "info")
            .env("CLUSTERNS_LOG_FORMAT", format)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let j = logs("journald");
    assert!(!j.is_empty());
    for line in j.lines() {
        assert!(line.starts_with("<6>") || line.starts_with("<4>"), "{line}");
    }
    let js = logs("json");
    assert!(!js.is_empty());
    for line in js.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert!(line.contains("\"level\":\"INFO\""), "{line}");
    }
}

/// `--version` names the git revision and features, so a bug report says what was running.
#[test]
fn version_names_the_revision() {
    let o = Command::new(BIN).arg("--version").output().unwrap();
    assert!(o.status.success());
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(
        v.starts_with(&format!("clusterns {} (git ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("; features: "), "{v}");
    // Built from this checkout: the revision is git's (not "unknown").
    if std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.git")).exists() {
        assert!(!v.contains("(git unknown"), "{v}");
    }
}

/// Manual pages (one per command) and shell completions come from the CLI's own definition.
#[test]
fn manual_pages_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let o = Command::new(BIN)
        .arg("manpages")
        .arg(&man)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    for page in [
        "clusterns.1",
        "clusterns-serve.1",
        "clusterns-check-config.1",
        "clusterns-repl-set.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(text.contains(".TH ") && text.contains(".SH NAME"), "{page}");
    }
    let o = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let script = dir.path().join("clusterns.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("check-config"));
    // The script is valid bash.
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success());
}
