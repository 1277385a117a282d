//! A private PostgreSQL server for one test: `initdb` into a temp dir, `pg_ctl start` on a free
//! port on 127.0.0.1 (and a Unix socket inside the temp dir), stopped and removed on drop.
//!
//! The binaries come from the directory named by `CLUSTERNS_TEST_PG` (Debian:
//! `/usr/lib/postgresql/15/bin`). Without the variable [`PgServer::start_new`] returns None and
//! the test prints [`SKIP`] and passes. PostgreSQL refuses to run as root: as root, `initdb` and
//! `pg_ctl` run as the `postgres` user (created by Debian's `postgresql` package) through
//! `runuser`, and the temp dir is given to that user.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// What a test prints when it skips.
pub const SKIP: &str = "skipped: set CLUSTERNS_TEST_PG=<postgres bin dir>";

/// The variable naming PostgreSQL's bin directory.
pub const ENV: &str = "CLUSTERNS_TEST_PG";

/// A running (or stopped) private server. Stopped, and its files removed, on drop.
pub struct PgServer {
    bin: PathBuf,
    /// Holds `data/` (the cluster), `sock/` (the Unix socket) and `log` (the server's log).
    dir: tempfile::TempDir,
    port: u16,
    /// Run the binaries as the `postgres` user (we are root).
    as_postgres: bool,
    running: bool,
}

/// A private server with clusterns's schema applied and `rows` (SQL; may be empty) run on
/// it: the server and a client of it. None, with [`SKIP`] printed, without
/// `CLUSTERNS_TEST_PG`.
pub fn with_schema(rows: &str) -> Option<(PgServer, postgres::Client)> {
    let Some(db) = PgServer::start_new() else {
        println!("{SKIP}");
        return None;
    };
    let mut client = db.client();
    clusterns::feed::postgres::apply_schema(&mut client).expect("apply the schema");
    if !rows.is_empty() {
        client
            .batch_execute(rows)
            .unwrap_or_else(|e| panic!("{rows}: {e:?}"));
    }
    Some((db, client))
}

/// SQL for `n` changes to `repls` from app number `first` on, one row each, in one
/// transaction: creations `a<k>` (user `u<k % 31>`, slug `s<k>`, cluster `east`, every fifth
/// `west`), and every fifth statement deletes the app created three before.
pub fn change_statements(first: u64, n: u64) -> String {
    let mut sql = String::from("BEGIN;");
    for k in first..first + n {
        if k % 5 == 4 {
            sql.push_str(&format!("DELETE FROM repls WHERE id = 'a{}';", k - 3));
        } else {
            let c = if k % 5 == 3 { "west" } else { "east" };
            sql.push_str(&format!(
                "INSERT INTO repls VALUES ('a{k}', 'u{}', 's{k}', '{c}');",
                k % 31
            ));
        }
    }
    sql.push_str("COMMIT;");
    sql
}

impl PgServer {
    /// Creates and starts a server, or returns None if `CLUSTERNS_TEST_PG` is not set. Panics
    /// with the tools' output if the server cannot be set up.
    pub fn start_new() -> Option<PgServer> {
        let bin = PathBuf::from(std::env::var_os(ENV).filter(|v| !v.is_empty())?);
        for tool in ["initdb", "pg_ctl", "postgres"] {
            assert!(
                bin.join(tool).is_file(),
                "{ENV}={}: no {tool} there (expected PostgreSQL's bin directory, e.g. \
                 /usr/lib/postgresql/15/bin)",
                bin.display()
            );
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        // As root, stay out of a TMPDIR under /root, which the postgres user cannot enter.
        let parent = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("clusterns-pg-")
            .tempdir_in(&parent)
            .expect("create a temp dir for PostgreSQL");
        std::fs::create_dir(dir.path().join("sock")).expect("create the socket dir");
        if as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .output()
                .expect("run chown");
            check(&out, "chown -R postgres: (is there a postgres user?)");
        }
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            as_postgres,
            running: false,
        };
        let data = server.data_dir();
        let out = server
            .tool("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        check(&out, "initdb");

        // A free port can be taken by someone else before the server binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => return Some(server),
                Err(e) => last_error = e,
            }
        }
        panic!("could not start PostgreSQL: {last_error}");
    }

    /// libpq connection string for the server (TCP on 127.0.0.1, trust auth).
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A new client connection (panics on failure).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.conninfo(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test database: {e:?}"))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// libpq connection string for the server over its Unix socket (no TLS there).
    pub fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().join("sock").display(),
            self.port
        )
    }

    /// A new client connection over the Unix socket (panics on failure).
    pub fn socket_client(&self) -> postgres::Client {
        postgres::Client::connect(&self.socket_conninfo(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test database's socket: {e:?}"))
    }

    /// Stops the server, writes `files` (name, contents) into its data directory (mode 0600,
    /// owned by the server's user: fit for TLS keys), appends `conf` to `postgresql.conf`,
    /// replaces `pg_hba.conf` with `hba` if given, and starts it again. E.g. TLS:
    /// `ssl = on`, `ssl_cert_file = 'server.crt'`, `ssl_key_file = 'server.key'`.
    pub fn reconfigure(&mut self, files: &[(&str, &str)], conf: &str, hba: Option<&str>) {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        if self.running {
            self.stop();
        }
        let data = self.data_dir();
        let mut written: Vec<PathBuf> = Vec::new();
        for (name, text) in files {
            let path = data.join(name);
            std::fs::write(&path, text).expect("write a file into the data dir");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600");
            written.push(path);
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(f, "\n{conf}").expect("append to postgresql.conf");
        if let Some(hba) = hba {
            let path = data.join("pg_hba.conf");
            std::fs::write(&path, hba).expect("write pg_hba.conf");
            written.push(path);
        }
        if self.as_postgres && !written.is_empty() {
            let out = Command::new("chown")
                .arg("postgres:")
                .args(&written)
                .output()
                .expect("run chown");
            check(&out, "chown postgres:");
        }
        self.start();
    }

    /// Whether the server is running (as far as this harness knows).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Kills the database: `pg_ctl stop -m fast` (clients are disconnected, the server exits
    /// cleanly). Waits until it is down.
    pub fn stop(&mut self) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .expect("run pg_ctl stop");
        check(&out, "pg_ctl stop");
        self.running = false;
    }

    /// Starts the server again, on the same port and data dir. Waits until it accepts
    /// connections.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("could not restart PostgreSQL on port {}: {e}", self.port);
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn try_start(&mut self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c shared_buffers=16MB -c max_connections=40",
            self.port,
            self.dir.path().join("sock").display()
        );
        // -l: the server must not inherit our pipes, or output() would wait for it to exit.
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("run pg_ctl: {e}"))?;
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            // A failed start may leave nothing running; make sure of it before retrying.
            let _ = self.stop_quietly("immediate");
            Err(format!(
                "pg_ctl start: {}\nlog:\n{}",
                describe(&out),
                self.log()
            ))
        }
    }

    fn stop_quietly(&self, mode: &str) -> Option<Output> {
        self.tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "30", "stop"])
            .output()
            .ok()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command running PostgreSQL's `name`, as the postgres user if we are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The test's own directory may not be readable by the postgres user.
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop_quietly("immediate");
            self.running = false;
        }
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
