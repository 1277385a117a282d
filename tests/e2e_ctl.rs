//! The control socket against the real binary: `clusterns ctl status` says what runs, `reload`
//! takes a good config (the new TTL answers) and fails on a bad one naming file and line (the
//! old config keeps answering), `app` agrees with DNS before and after a live `repl move`,
//! `apps --user` and `dump` match the journal, `checkpoint` writes the file, the socket is
//! 0660 and removed at stop, a second server on it is refused, bad requests are answered with
//! an error without harm, and the client says what to check when no server runs.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use common::*;

/// A config with a control socket (`ctl.sock` beside it) and, when asked, a checkpoint.
fn ctl_setup(checkpoint: bool) -> Setup {
    let s = setup("");
    let mut text = std::fs::read_to_string(&s.config_path).unwrap();
    if checkpoint {
        text = text.replace(
            "journal = \"journal.log\"",
            "journal = \"journal.log\"\ncheckpoint = \"state.ckpt\"",
        );
    }
    text.push_str("\n[control]\nsocket = \"ctl.sock\"\n");
    std::fs::write(&s.config_path, text).unwrap();
    s
}

fn socket_of(s: &Setup) -> PathBuf {
    s.dir.path().join("ctl.sock")
}

/// `clusterns ctl --config <config> <args>`: success, stdout, stderr.
fn ctl(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .arg("ctl")
        .arg("--config")
        .arg(config)
        .args(["--timeout", "20"])
        .args(args)
        .env_remove("CLUSTERNS_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ctl`, which must succeed: its stdout.
fn ctl_ok(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = ctl(config, args);
    assert!(ok, "ctl {args:?} failed: {err}");
    out
}

/// The value of `key: value` in a reply.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {key:?} in {out}"))
}

/// The apps a journal leaves (id, user, slug, cluster), replayed plainly.
fn journal_apps(path: &Path) -> BTreeSet<(String, String, String, String)> {
    let mut apps = std::collections::BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            [_, "set", id, user, slug, cluster] => {
                apps.insert(
                    id.to_string(),
                    (user.to_string(), slug.to_string(), cluster.to_string()),
                );
            }
            [_, "delete", id] => {
                apps.remove(*id);
            }
            _ => {}
        }
    }
    apps.into_iter()
        .map(|(id, (u, s, c))| (id, u, s, c))
        .collect()
}

/// The A addresses `name` is answered with, sorted.
fn dig_a(addr: std::net::SocketAddr, name: &str) -> Vec<String> {
    let mut a = a_records(&udp_ask(addr, name, RecordType::A));
    a.sort();
    a
}

#[test]
fn status_says_what_runs_and_the_socket_is_the_groups() {
    let s = ctl_setup(true);
    let log = s.dir.path().join("server.log");
    let mut c = spawn_binary_logged(&s.config_path, false, Some(&log));
    let out = ctl_ok(&s.config_path, &["status"]);
    assert!(
        field(&out, "version").starts_with(env!("CARGO_PKG_VERSION")),
        "{out}"
    );
    assert_eq!(field(&out, "config"), s.config_path.to_str().unwrap());
    assert_eq!(
        field(&out, "feed"),
        format!("journal {}", s.journal_path.display())
    );
    assert_eq!(field(&out, "feed sequence"), "3");
    assert_eq!(field(&out, "snapshot sequence"), "3");
    assert_eq!(field(&out, "apps"), "3");
    assert_eq!(field(&out, "feed source"), "up");
    assert!(field(&out, "snapshot generation").parse::<u64>().unwrap() >= 1);
    assert!(field(&out, "feed behind").ends_with(" s"));
    assert_eq!(field(&out, "last reload"), "none since start");
    assert!(field(&out, "checkpoint")
        .starts_with(&format!("{} (", s.dir.path().join("state.ckpt").display())));
    assert!(field(&out, "uptime").ends_with(" s"));

    let stats = ctl_ok(&s.config_path, &["stats"]);
    assert!(stats.starts_with("udp: received 0,"), "{stats}");
    dig_a(c.addr, "r-one.repl.co");
    let stats = ctl_ok(&s.config_path, &["stats"]);
    assert!(
        stats.starts_with("udp: received 1, answered 1 (NOERROR 1)"),
        "{stats}"
    );
    assert!(stats.contains("queries by type: A 1,"), "{stats}");

    let sock = socket_of(&s);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");

    // A clean stop removes the socket.
    c.signal(libc::SIGTERM);
    let status = c.child.wait().unwrap();
    assert!(status.success());
    assert!(!sock.exists(), "the socket is removed at stop");
    // The control thread let go of the feed: it stopped as usual, with its last checkpoint.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("still referenced"), "{text}");
    assert!(text.contains("control socket"), "{text}");
    assert!(text.contains("stopped"), "{text}");
}

#[test]
fn reload_applies_a_good_config_and_refuses_a_bad_one_naming_the_line() {
    let s = ctl_setup(false);
    let c = spawn_binary(&s.config_path, false);
    let ttl = |c: &Child| udp_ask(c.addr, "r-one.repl.co", RecordType::A).answers()[0].ttl();
    assert_eq!(ttl(&c), 60);
    let good = std::fs::read_to_string(&s.config_path)
        .unwrap()
        .replace("apex = \"repl.co\"", "apex = \"repl.co\"\nttl = 7");
    std::fs::write(&s.config_path, &good).unwrap();
    let out = ctl_ok(&s.config_path, &["reload"]);
    assert_eq!(out.trim(), "configuration reloaded");
    assert_eq!(ttl(&c), 7, "the reload is in force when ctl returns");

    let bad = good.replace("negative_ttl = 30", "negative_ttl = \"thirty\"");
    let line = bad.lines().position(|l| l.contains("thirty")).unwrap() + 1;
    std::fs::write(&s.config_path, &bad).unwrap();
    let (ok, out, err) = ctl(&s.config_path, &["reload"]);
    assert!(!ok, "a rejected config fails the reload: {out}");
    let at = format!("{}:{line}:", s.config_path.display());
    assert!(err.contains(&at), "names {at}: {err}");
    assert_eq!(ttl(&c), 7, "the running config keeps answering");
    let status = ctl_ok(&s.config_path, &["status"]);
    let last = field(&status, "last reload");
    assert!(
        last.contains("via control socket: rejected:") && last.contains(&at),
        "{last}"
    );
}

#[test]
fn app_agrees_with_dns_before_and_after_a_live_move_and_dump_is_the_journal() {
    let s = ctl_setup(false);
    let c = spawn_binary(&s.config_path, false);
    let addresses = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = field(out, "answers")
            .split(' ')
            .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let out = ctl_ok(&s.config_path, &["app", "r-one"]);
    assert_eq!(field(&out, "id"), "r-one");
    assert_eq!(field(&out, "user"), "mark");
    assert_eq!(field(&out, "slug"), "coolgame");
    assert_eq!(field(&out, "cluster"), "east");
    assert_eq!(
        field(&out, "answers"),
        "203.0.113.1 203.0.113.2 2001:db8::1"
    );
    assert_eq!(addresses(&out), dig_a(c.addr, "r-one.repl.co"));
    assert_eq!(
        ctl_ok(&s.config_path, &["app", "coolgame.mark"]),
        out,
        "by name as by id"
    );

    // A live move through the journal, as an operator does it.
    let moved = Command::new(env!("CARGO_BIN_EXE_clusterns"))
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
    assert!(moved.status.success(), "{:?}", moved);
    assert!(wait_for(Duration::from_secs(5), || dig_a(
        c.addr,
        "r-one.repl.co"
    ) == ["198.51.100.7"]));
    let out = ctl_ok(&s.config_path, &["app", "r-one"]);
    assert_eq!(field(&out, "cluster"), "west");
    assert_eq!(addresses(&out), dig_a(c.addr, "coolgame.mark.repl.co"));

    let (ok, _, err) = ctl(&s.config_path, &["app", "nobody"]);
    assert!(!ok);
    assert!(
        err.contains("no app or user nobody in the live table"),
        "{err}"
    );
    let (ok, _, err) = ctl(&s.config_path, &["app", "x.mark"]);
    assert!(!ok && err.contains("no app x.mark"), "{err}");

    let apps = ctl_ok(&s.config_path, &["apps", "--user", "mark"]);
    assert_eq!(apps, "r-one mark coolgame west\nr-two mark notes west\n");
    let (ok, _, err) = ctl(&s.config_path, &["apps", "--user", "nobody"]);
    assert!(!ok && err.contains("user nobody has no apps"), "{err}");

    let dump = ctl_ok(&s.config_path, &["dump"]);
    let mut dumped = BTreeSet::new();
    for (i, l) in dump.lines().enumerate() {
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!(w.len(), 6, "{l}");
        assert_eq!((w[0], w[1]), (format!("{}", i + 1).as_str(), "set"), "{l}");
        dumped.insert((w[2].into(), w[3].into(), w[4].into(), w[5].into()));
    }
    assert_eq!(dumped, journal_apps(&s.journal_path));
    assert_eq!(dumped.len(), 3);
    // The dump seeds a journal: a server on it serves the same apps.
    let seeded = ctl_setup(false);
    std::fs::write(&seeded.journal_path, &dump).unwrap();
    assert_eq!(journal_apps(&seeded.journal_path), dumped);
}

#[test]
fn checkpoint_is_written_on_request() {
    let s = ctl_setup(true);
    let _c = spawn_binary(&s.config_path, false);
    let ckpt = s.dir.path().join("state.ckpt");
    // The first checkpoint of a table not loaded from one is due at once: wait for it, then
    // remove it to see the requested one written.
    wait_for(Duration::from_secs(5), || ckpt.exists());
    let _ = std::fs::remove_file(&ckpt);
    append_raw(&s.journal_path, "4 set r-four ann blog west\n");
    let out = ctl_ok(&s.config_path, &["checkpoint"]);
    assert_eq!(field(&out, "path"), ckpt.to_str().unwrap());
    let seq: u64 = field(&out, "sequence").parse().unwrap();
    assert!(seq == 3 || seq == 4, "{out}");
    let written =
        clusterns::feed::checkpoint::read_position(&ckpt).expect("written when ctl returns");
    assert_eq!(
        written.last_seq, seq,
        "the file is at the sequence reported"
    );
    assert!(wait_for(Duration::from_secs(5), || {
        let out = ctl_ok(&s.config_path, &["checkpoint"]);
        field(&out, "sequence") == "4" && field(&out, "apps") == "4"
    }));
    let status = ctl_ok(&s.config_path, &["status"]);
    assert!(field(&status, "checkpoint").contains("written"), "{status}");

    // None configured: an error that says so.
    let n = ctl_setup(false);
    let _c = spawn_binary(&n.config_path, false);
    let (ok, _, err) = ctl(&n.config_path, &["checkpoint"]);
    assert!(!ok && err.contains("no checkpoint is configured"), "{err}");
}

#[test]
fn a_second_server_on_the_socket_is_refused_and_a_stale_one_replaced() {
    let s = ctl_setup(false);
    let mut first = spawn_binary(&s.config_path, false);
    let second = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(&s.config_path)])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!(
            "another clusterns is running on {}",
            socket_of(&s).display()
        )),
        "{err}"
    );
    ctl_ok(&s.config_path, &["status"]);
    dig_a(first.addr, "r-one.repl.co");

    // Killed: the socket stays and nothing answers on it; the client says so, and the next
    // server replaces it.
    first.signal(libc::SIGKILL);
    first.child.wait().unwrap();
    assert!(socket_of(&s).exists());
    let (ok, _, err) = ctl(&s.config_path, &["status"]);
    assert!(!ok && err.contains("nothing answers on"), "{err}");
    let _next = spawn_binary(&s.config_path, false);
    ctl_ok(&s.config_path, &["status"]);
}

#[test]
fn bad_requests_get_an_error_and_do_no_harm() {
    let s = ctl_setup(false);
    let c = spawn_binary(&s.config_path, false);
    let raw = |bytes: &[u8]| -> String {
        let mut st = UnixStream::connect(socket_of(&s)).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        st.write_all(bytes).unwrap();
        let mut text = String::new();
        st.read_to_string(&mut text).unwrap();
        text
    };
    let huge = vec![b'A'; 8192];
    assert_eq!(raw(&huge), "error request longer than 512 bytes\n");
    assert!(raw(b"\x00\x01\x02\n").starts_with("error request byte 0 is not printable"));
    assert!(raw(b"clusterns-ctl/1 launch\n").starts_with("error unknown command \"launch\""));
    assert!(raw(b"clusterns-ctl/1 app r-one extra\n").starts_with("error unexpected argument"));
    // A good raw request, to see the framing: body lines then the status line.
    let text = raw(b"clusterns-ctl/1 app r-one\n");
    assert!(
        text.starts_with("+id: r-one\n") && text.ends_with("\nok\n"),
        "{text}"
    );
    // The server is unharmed: control and DNS answer.
    assert_eq!(field(&ctl_ok(&s.config_path, &["status"]), "apps"), "3");
    assert_eq!(dig_a(c.addr, "r-two.repl.co"), ["198.51.100.7"]);
    // The client refuses what it could not ask.
    let (ok, _, err) = ctl(&s.config_path, &["app", "two words"]);
    assert!(!ok && err.contains("unexpected argument"), "{err}");
}

#[test]
fn the_client_says_what_to_check_when_no_server_runs() {
    let s = ctl_setup(false);
    let (ok, _, err) = ctl(&s.config_path, &["status"]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "no control socket at {}: is the server running? is [control] socket set in {}?",
            socket_of(&s).display(),
            s.config_path.display()
        )),
        "{err}"
    );
    let plain = setup("");
    let (ok, _, err) = ctl(&plain.config_path, &["status"]);
    assert!(!ok && err.contains("sets no control socket"), "{err}");
    let (ok, _, err) = ctl(
        &plain.config_path,
        &["--socket", path_str(&socket_of(&s)), "status"],
    );
    assert!(!ok && err.contains("is the server running?"), "{err}");
    // check-config finds a socket directory that does not exist.
    let text = std::fs::read_to_string(&s.config_path)
        .unwrap()
        .replace("socket = \"ctl.sock\"", "socket = \"no/such/dir/ctl.sock\"");
    std::fs::write(&s.config_path, &text).unwrap();
    let line = text.lines().position(|l| l.contains("no/such")).unwrap() + 1;
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["check-config", "--config", path_str(&s.config_path)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{}:{line}: control.socket",
            s.config_path.display()
        )) && err.contains("does not exist"),
        "{err}"
    );
}

/// Started as root with `server.user`, the socket is the service user's (and group's), so the
/// server's group can use `ctl` once root is dropped. Skipped, saying so, when not root.
#[test]
fn the_socket_belongs_to_the_service_user() {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid only reads the process's id.
    if unsafe { libc::geteuid() } != 0 {
        println!("not root: the socket's owner after dropping privileges is not checked");
        return;
    }
    let s = ctl_setup(false);
    let text = std::fs::read_to_string(&s.config_path)
        .unwrap()
        .replace("[server]\n", "[server]\nuser = \"nobody\"\n");
    std::fs::write(&s.config_path, text).unwrap();
    // The service user reads the journal in it.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = spawn_binary(&s.config_path, false);
    let (uid, gid) = clusterns::privs::lookup("nobody").unwrap();
    let meta = std::fs::metadata(socket_of(&s)).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(field(&ctl_ok(&s.config_path, &["status"]), "apps"), "3");
    assert_eq!(dig_a(c.addr, "r-two.repl.co"), ["198.51.100.7"]);
}

/// `ctl reload` is SIGHUP's reload: systemd hears RELOADING=1 (with the time) then READY=1,
/// for a rejected configuration too.
#[test]
fn systemd_hears_a_ctl_reload() {
    use std::os::unix::net::UnixDatagram;
    let s = ctl_setup(false);
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config", path_str(&s.config_path)])
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(recv().contains("READY=1"));
    ctl_ok(&s.config_path, &["reload"]);
    let reloading = recv();
    assert!(
        reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(recv().contains("READY=1"));
    std::fs::write(&s.config_path, "[server\n").unwrap();
    assert!(
        !ctl(
            &s.config_path,
            &["--socket", path_str(&socket_of(&s)), "reload"]
        )
        .0
    );
    assert!(recv().contains("RELOADING=1"));
    assert!(recv().contains("READY=1"));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(recv().contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
}
