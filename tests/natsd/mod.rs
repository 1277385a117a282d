//! A private `nats-server -js` for one test (a free port on 127.0.0.1, a temp store dir), that
//! can be stopped and started again on the same port and store; killed when dropped. Where the
//! binary is missing, [`Natsd::start_new`] says so and returns None (a failure when `CI` is
//! set: `.ci/run` installs it). Plus the client side the tests use: a runtime, the config,
//! publishing change and reset messages, putting snapshots.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, object_store::ObjectStore, stream::Stream};
use async_nats::HeaderMap;

use clusterns::config::NatsConfig;
use clusterns::feed::change::Sequenced;
use clusterns::feed::journal::parse_line;
use clusterns::feed::nats::message::{self, Message};
use clusterns::feed::nats::{client, snapshot};
use clusterns::table::Table;

/// A nats-server with JetStream.
pub struct Natsd {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for Natsd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `[nats]` of the tests for the server at `url` (the defaults' names).
pub fn config_for(url: &str) -> NatsConfig {
    NatsConfig {
        servers: vec![url.into()],
        stream: "clusterns".into(),
        subject: "clusterns.changes".into(),
        snapshot_bucket: "clusterns-snapshots".into(),
        lease_bucket: "clusterns-relay".into(),
        credentials: None,
        connect_timeout_ms: 2000,
        retention_secs: 3600,
        replicas: 1,
    }
}

impl Natsd {
    /// Starts one, or returns None (having said why) where nats-server is missing outside CI.
    pub fn start_new() -> Option<Natsd> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "nats-server is missing in CI (.ci/run installs it)"
            );
            eprintln!("skipped: nats-server is not installed");
            return None;
        };
        let port = free_port();
        let mut n = Natsd {
            bin,
            child: None,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
        };
        n.start();
        Some(n)
    }

    /// Starts the server (again), on its port and store, and waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The `[nats]` of the tests (the defaults' names).
    pub fn config(&self) -> NatsConfig {
        config_for(&self.url)
    }

    /// The `[nats]` section for a config file.
    pub fn section(&self) -> String {
        format!(
            "\n[nats]\nservers = [\"{}\"]\nconnect_timeout_ms = 1000\n",
            self.url
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The test's client: a runtime and a JetStream context on the server, the stream created.
pub struct Pub {
    pub rt: tokio::runtime::Runtime,
    pub js: jetstream::Context,
    pub stream: Stream,
    pub store: ObjectStore,
    pub cfg: NatsConfig,
}

impl Pub {
    pub fn new(n: &Natsd) -> Pub {
        let rt = client::runtime().unwrap();
        let cfg = n.config();
        let (js, stream, store) = rt.block_on(async {
            let c = client::connect(&cfg, "test").await.unwrap();
            let js = jetstream::new(c);
            let stream = client::ensure_stream(&js, &cfg).await.unwrap();
            let store = client::snapshot_store(&js, &cfg, true).await.unwrap();
            (js, stream, store)
        });
        Pub {
            rt,
            js,
            stream,
            store,
            cfg,
        }
    }

    /// Publishes one message of raw headers and body; returns its stream sequence.
    /// (Tried again for up to 10 s: the server may just have been restarted.)
    pub fn publish_raw(&self, headers: HeaderMap, body: Vec<u8>) -> u64 {
        let started = Instant::now();
        loop {
            let sent = self.rt.block_on(async {
                let ack = self
                    .js
                    .publish_with_headers(
                        self.cfg.subject.clone(),
                        headers.clone(),
                        body.clone().into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
            });
            match sent {
                Ok(seq) => return seq,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    eprintln!("publish: {e}; again");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("publish: {e}"),
            }
        }
    }

    /// Publishes the journal lines `lines` as one change message.
    pub fn publish(&self, lines: &str) -> u64 {
        let changes = changes(lines);
        let (seq, body) = message::encode_changes(&changes);
        let m = Message::Changes {
            first: changes[0].seq,
            last: changes[changes.len() - 1].seq,
            changes: changes.clone(),
        };
        let mut h = HeaderMap::new();
        h.insert(message::HEADER_SEQ, seq.as_str());
        h.insert(message::HEADER_MSG_ID, message::msg_id(&m).as_str());
        self.publish_raw(h, body)
    }

    /// Publishes a reset at `seq`.
    pub fn reset(&self, seq: u64) -> u64 {
        let mut h = HeaderMap::new();
        h.insert(message::HEADER_RESET, seq.to_string().as_str());
        h.insert(
            message::HEADER_MSG_ID,
            message::msg_id(&Message::Reset { seq }).as_str(),
        );
        self.publish_raw(h, Vec::new())
    }

    /// Puts the table the journal lines `lines` build as the snapshot at `seq`.
    pub fn put_snapshot(&self, lines: &str, seq: u64) {
        let t = table(lines);
        let clusters: Vec<String> = t
            .clusters()
            .names()
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        self.rt
            .block_on(snapshot::put(&self.store, &t, seq, &clusters))
            .unwrap();
    }

    /// Puts `bytes` as the snapshot at `seq`, as they are.
    pub fn put_raw_snapshot(&self, bytes: &[u8], seq: u64) {
        self.rt
            .block_on(snapshot::put_raw(&self.store, bytes, seq))
            .unwrap();
    }
}

/// Journal lines as changes.
pub fn changes(lines: &str) -> Vec<Sequenced> {
    lines
        .lines()
        .filter_map(|l| parse_line(l).unwrap())
        .collect()
}

/// The table journal lines build.
pub fn table(lines: &str) -> Table {
    let mut t = Table::default();
    for c in changes(lines) {
        c.change.apply_to(&mut t).unwrap();
    }
    t
}
