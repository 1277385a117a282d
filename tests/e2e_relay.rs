//! `clusterns relay` end to end, with a private `nats-server -js` and the real binary on a
//! journal: 10,000 changes appended while relays run arrive in the stream exactly once and in
//! order, across a SIGKILL of the relay and a second one taking over; of two relays only one
//! leads, and the other publishes within the lease and 2 s of its death; the object store's
//! snapshot equals the journal's table; a damaged snapshot is refused. Skipped, saying so,
//! where `nats-server` is missing (never in CI: `CI` set makes that a failure).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterns::feed::change::Sequenced;
use clusterns::feed::journal::parse_line;
use clusterns::feed::nats::message::Message;
use clusterns::feed::nats::{client, snapshot};
use clusterns::table::Table;

#[path = "natsd/mod.rs"]
mod natsd;
#[path = "pg/mod.rs"]
mod pg;

use natsd::{free_port, Natsd};

/// A private nats-server (`tests/natsd`), or None where it is missing outside CI.
fn start_nats() -> Option<Natsd> {
    Natsd::start_new()
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A relay's config in `dir`: the journal `journal.log`, the NATS server, relay `name`.
fn write_config(dir: &Path, url: &str, name: &str) -> PathBuf {
    write_config_feed(
        dir,
        url,
        name,
        "source = \"journal\"\njournal = \"journal.log\"",
    )
}

/// The same with another `[feed]`.
fn write_config_feed(dir: &Path, url: &str, name: &str, feed: &str) -> PathBuf {
    let text = format!(
        r#"
[feed]
{feed}

[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co"]
soa = {{ rname = "hostmaster.repl.co" }}
[[zone.host]]
name = "ns1"
a = ["192.0.2.53"]

[[cluster]]
name = "east"
ipv4 = ["203.0.113.1"]

[[cluster]]
name = "west"
ipv4 = ["198.51.100.7"]

[nats]
servers = ["{url}"]
retention_secs = 3600

[relay]
name = "{name}"
batch_max = 500
batch_wait_ms = 5
snapshot_interval_secs = 2
lease_secs = 3
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running relay, killed when dropped.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Relay {
    fn start(config: &Path, log: &Path) -> Relay {
        let child = Command::new(env!("CARGO_BIN_EXE_clusterns"))
            .args(["relay", "--config"])
            .arg(config)
            .env("CLUSTERNS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Relay(child)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, sig) };
    }

    /// Waits (bounded) for it to exit; its status.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The `n` journal lines from `first` on: apps created, moved, deleted in turn.
fn lines(first: u64, n: u64) -> String {
    let mut out = String::new();
    for seq in first..first + n {
        let app = seq % 700;
        let line = match seq % 5 {
            4 => format!("{seq} delete r{}", (seq - 3) % 700),
            3 => format!("{seq} set r{app} u{} s{seq} west", app % 31),
            _ => format!("{seq} set r{app} u{} s{seq} east", app % 31),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Everything the stream holds, decoded, by stream sequence.
/// The snapshot in the object store, verified.
fn get_snapshot(
    rt: &tokio::runtime::Runtime,
    url: &str,
) -> (clusterns::feed::checkpoint::Loaded, snapshot::SnapshotInfo) {
    rt.block_on(async {
        let cfg = natsd::config_for(url);
        let c = client::connect(&cfg, "e2e-snap").await.unwrap();
        let js = async_nats::jetstream::new(c);
        let store = client::snapshot_store(&js, &cfg, false).await.unwrap();
        snapshot::get(&store).await
    })
    .unwrap()
    .expect("a snapshot")
}

fn read_stream(rt: &tokio::runtime::Runtime, url: &str) -> Vec<Message> {
    rt.block_on(async {
        let cfg = natsd::config_for(url);
        let c = client::connect(&cfg, "e2e-reader").await.unwrap();
        let js = async_nats::jetstream::new(c);
        let stream = client::get_stream(&js, &cfg).await.unwrap();
        let last = client::last_stream_seq(&stream).await.unwrap();
        let mut out = Vec::new();
        for seq in 1..=last {
            if let Some(m) = client::message_at(&stream, seq).await.unwrap() {
                out.push(m);
            }
        }
        out
    })
}

/// The last change sequence number in the stream (0: none).
fn published(rt: &tokio::runtime::Runtime, url: &str) -> u64 {
    rt.block_on(async {
        let cfg = natsd::config_for(url);
        let Ok(c) = client::connect(&cfg, "e2e-tail").await else {
            return 0;
        };
        let js = async_nats::jetstream::new(c);
        let Ok(stream) = client::get_stream(&js, &cfg).await else {
            return 0;
        };
        client::last_message(&stream)
            .await
            .ok()
            .flatten()
            .map_or(0, |(_, m)| m.last_seq())
    })
}

/// The changes in the stream's messages, in order (resets must not appear here).
fn changes_of(messages: &[Message]) -> Vec<Sequenced> {
    let mut out = Vec::new();
    for m in messages {
        match m {
            Message::Changes { changes, .. } => out.extend(changes.iter().cloned()),
            Message::Reset { seq } => panic!("an unexpected reset at {seq}"),
        }
    }
    out
}

fn journal_changes(path: &Path) -> Vec<Sequenced> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| parse_line(l).unwrap())
        .collect()
}

/// The apps of `table` with their cluster names, sorted.
fn apps(table: &Table) -> Vec<(String, String, String, String)> {
    let names = table.clusters().names();
    let mut v: Vec<_> = table
        .apps()
        .into_iter()
        .map(|(id, user, slug, c)| (id, user, slug, names[usize::from(c)].as_str().to_string()))
        .collect();
    v.sort();
    v
}

/// The sequence number of the snapshot in the object store, if there is one.
fn snapshot_seq(rt: &tokio::runtime::Runtime, url: &str) -> Option<u64> {
    rt.block_on(async {
        let cfg = natsd::config_for(url);
        let c = client::connect(&cfg, "e2e-snap-info").await.ok()?;
        let js = async_nats::jetstream::new(c);
        let store = client::snapshot_store(&js, &cfg, false).await.ok()?;
        snapshot::info(&store).await.ok()?.map(|i| i.seq)
    })
}

/// Waits until a relay has done its first load (of an empty journal: no reset) and put its
/// first snapshot, so that what is appended next is published as changes.
fn wait_first_load(rt: &tokio::runtime::Runtime, url: &str) {
    assert!(
        wait_for(Duration::from_secs(20), || snapshot_seq(rt, url).is_some()),
        "no relay put its first snapshot in 20 s"
    );
    assert_eq!(snapshot_seq(rt, url), Some(0));
}

/// Who holds the lease.
fn leader(rt: &tokio::runtime::Runtime, url: &str) -> Option<String> {
    rt.block_on(async {
        let c = client::connect(&natsd::config_for(url), "e2e-lease")
            .await
            .ok()?;
        let js = async_nats::jetstream::new(c);
        let kv = js.get_key_value("clusterns-relay").await.ok()?;
        let v = kv.get("leader").await.ok()??;
        Some(String::from_utf8_lossy(&v).into_owned())
    })
}

#[test]
fn ten_thousand_changes_exactly_once_across_a_sigkill_then_the_snapshot() {
    let Some(nats) = start_nats() else { return };
    let rt = client::runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    append(&journal, "");
    let config = write_config(dir.path(), &nats.url, "ra");
    let mut relay = Relay::start(&config, &dir.path().join("ra.log"));
    wait_first_load(&rt, &nats.url);
    // 10,000 changes in 100 appends; the relay killed after 5,000.
    let started = Instant::now();
    for i in 0..100u64 {
        append(&journal, &lines(i * 100 + 1, 100));
        std::thread::sleep(Duration::from_millis(5));
        if i == 49 {
            assert!(
                wait_for(Duration::from_secs(20), || published(&rt, &nats.url)
                    >= 2000),
                "the relay published nothing much in 20 s"
            );
            relay.signal(libc::SIGKILL);
            assert!(relay.wait_exit(Duration::from_secs(5)).is_some());
            relay = Relay::start(&config, &dir.path().join("ra2.log"));
        }
    }
    assert!(
        wait_for(Duration::from_secs(60), || published(&rt, &nats.url)
            == 10_000),
        "not all 10,000 changes published in 60 s (at {})",
        published(&rt, &nats.url)
    );
    eprintln!("10,000 changes published in {:?}", started.elapsed());
    let got = changes_of(&read_stream(&rt, &nats.url));
    let want = journal_changes(&journal);
    assert_eq!(want.len(), 10_000);
    assert_eq!(got.len(), want.len(), "every change exactly once");
    assert!(
        got == want,
        "the stream's changes are the journal's, in order"
    );
    // SIGTERM: a clean exit, lease released.
    relay.signal(libc::SIGTERM);
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(leader(&rt, &nats.url), None, "the lease is released");
    // `--once` puts a snapshot of the whole table; it equals the journal's.
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["relay", "--once", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = Table::default();
    for c in &want {
        let _ = c.change.apply_to(&mut expected);
    }
    let (loaded, info) = get_snapshot(&rt, &nats.url);
    assert_eq!(info.seq, 10_000);
    let (table, pos) = loaded.into_table().unwrap();
    assert_eq!(pos.last_seq, 10_000);
    assert_eq!(apps(&table), apps(&expected));
    assert!(!apps(&table).is_empty());
}

#[test]
fn one_leader_of_two_and_the_standby_takes_over_within_the_lease() {
    let Some(nats) = start_nats() else { return };
    let rt = client::runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    append(&journal, "");
    let mut a = Relay::start(
        &write_config(dir.path(), &nats.url, "ra"),
        &dir.path().join("ra.log"),
    );
    let mut b = Relay::start(
        &write_config(dir.path(), &nats.url, "rb"),
        &dir.path().join("rb.log"),
    );
    wait_first_load(&rt, &nats.url);
    append(&journal, &lines(1, 10));
    assert!(wait_for(Duration::from_secs(20), || published(
        &rt, &nats.url
    ) == 10));
    let first = leader(&rt, &nats.url).expect("a leader");
    // It stays the one leader for a while (renewals work; the other stands by).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(leader(&rt, &nats.url).as_deref(), Some(first.as_str()));
    let (dead, alive) = if first == "ra" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    dead.signal(libc::SIGKILL);
    assert!(dead.wait_exit(Duration::from_secs(5)).is_some());
    let killed = Instant::now();
    append(&journal, &lines(11, 10));
    // The lease (3 s) runs out; the standby publishes within it and 2 s more.
    assert!(
        wait_for(Duration::from_secs(5), || published(&rt, &nats.url) == 20),
        "the standby did not publish within lease + 2 s"
    );
    eprintln!("taken over and published in {:?}", killed.elapsed());
    assert_ne!(leader(&rt, &nats.url).as_deref(), Some(first.as_str()));
    assert!(alive.0.try_wait().unwrap().is_none(), "the standby runs on");
    for log in ["ra.log", "rb.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
        eprintln!("--- {log}\n{text}");
    }
    let got = changes_of(&read_stream(&rt, &nats.url));
    assert_eq!(got, journal_changes(&journal), "exactly once, in order");
}

#[test]
fn a_damaged_snapshot_is_refused() {
    let Some(nats) = start_nats() else { return };
    let rt = client::runtime().unwrap();
    rt.block_on(async {
        let cfg = natsd::config_for(&nats.url);
        let c = client::connect(&cfg, "e2e-damage").await.unwrap();
        let js = async_nats::jetstream::new(c);
        let store = client::snapshot_store(&js, &cfg, true).await.unwrap();
        assert!(snapshot::get(&store).await.unwrap().is_none());
        assert!(snapshot::info(&store).await.unwrap().is_none());
        let mut t = Table::default();
        t.upsert("r1", "mark", "game", 0).unwrap();
        let names = vec!["east".to_string()];
        let put = snapshot::put(&store, &t, 7, &names).await.unwrap();
        assert_eq!(snapshot::info(&store).await.unwrap(), Some(put));
        let (loaded, info) = snapshot::get(&store).await.unwrap().unwrap();
        assert_eq!((info.seq, loaded.table.len()), (7, 1));
        // One byte flipped, put back raw: refused, naming what failed.
        let pos = clusterns::feed::checkpoint::Position {
            last_seq: 7,
            ..Default::default()
        };
        let mut bytes = snapshot::checkpoint_bytes(&t, pos, &names).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        snapshot::put_raw(&store, &bytes, 7).await.unwrap();
        let e = snapshot::get(&store).await.err().expect("refused");
        assert!(e.contains("snapshot table (seq 7)"), "{e}");
        // Intact bytes announced at another sequence number: refused too.
        let bytes = snapshot::checkpoint_bytes(&t, pos, &names).unwrap();
        snapshot::put_raw(&store, &bytes, 8).await.unwrap();
        let e = snapshot::get(&store).await.err().expect("refused");
        assert!(e.contains("not the announced 8"), "{e}");
    });
}

/// Runs `clusterns relay --once`; its status and stderr.
fn relay_once(config: &Path) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["relay", "--once", "--config"])
        .arg(config)
        .env("CLUSTERNS_LOG", "info")
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_first_load_is_a_snapshot_and_a_reset_and_a_damaged_snapshot_is_replaced() {
    let Some(nats) = start_nats() else { return };
    let rt = client::runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    append(&journal, &lines(1, 50));
    let config = write_config(dir.path(), &nats.url, "ra");
    // A damaged snapshot waits in the store.
    rt.block_on(async {
        let cfg = natsd::config_for(&nats.url);
        let c = client::connect(&cfg, "e2e").await.unwrap();
        let js = async_nats::jetstream::new(c);
        let store = client::snapshot_store(&js, &cfg, true).await.unwrap();
        snapshot::put_raw(&store, b"CLNSCKP1 not really", 40)
            .await
            .unwrap();
    });
    let (status, log) = relay_once(&config);
    assert!(status.success(), "{log}");
    assert!(log.contains("refused, rebuilding from the source"), "{log}");
    let messages = read_stream(&rt, &nats.url);
    assert_eq!(messages, [Message::Reset { seq: 50 }]);
    let want = journal_changes(&journal);
    let check_snapshot = |seq: u64, want: &[Sequenced]| {
        let (loaded, info) = get_snapshot(&rt, &nats.url);
        assert_eq!(info.seq, seq);
        let mut expected = Table::default();
        for c in want.iter().filter(|c| c.seq <= seq) {
            let _ = c.change.apply_to(&mut expected);
        }
        let (table, _) = loaded.into_table().unwrap();
        assert_eq!(apps(&table), apps(&expected));
    };
    check_snapshot(50, &want);
    // More changes: published as changes after the reset, and a new snapshot.
    append(&journal, &lines(51, 10));
    let want = journal_changes(&journal);
    let (status, log) = relay_once(&config);
    assert!(status.success(), "{log}");
    let messages = read_stream(&rt, &nats.url);
    assert_eq!(messages[0], Message::Reset { seq: 50 });
    assert_eq!(changes_of(&messages[1..]), want[50..]);
    check_snapshot(60, &want);
    // Nothing new: nothing published again.
    let (status, log) = relay_once(&config);
    assert!(status.success(), "{log}");
    assert_eq!(read_stream(&rt, &nats.url), messages);
}

#[test]
fn a_relay_refuses_a_nats_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "nats://127.0.0.1:4222", "ra");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "source = \"journal\"\njournal = \"journal.log\"",
        "source = \"nats\"",
    );
    std::fs::write(&config, text).unwrap();
    let (status, log) = relay_once(&config);
    assert!(!status.success());
    assert!(log.contains("source = \"nats\""), "{log}");
}

/// The change log's changes after `after`, as journal-format changes.
fn pg_changes(client: &mut postgres::Client, after: u64) -> Vec<Sequenced> {
    client
        .query(
            "SELECT seq, op, id, user_name, slug, cluster FROM repl_changes WHERE seq > $1 ORDER BY seq",
            &[&(after as i64)],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let seq: i64 = r.get(0);
            let op: String = r.get(1);
            let id: String = r.get(2);
            let line = if op == "delete" {
                format!("{seq} delete {id}")
            } else {
                let (u, s, c): (String, String, String) = (r.get(3), r.get(4), r.get(5));
                format!("{seq} set {id} {u} {s} {c}")
            };
            parse_line(&line).unwrap().unwrap()
        })
        .collect()
}

#[test]
fn postgres_ten_thousand_changes_exactly_once_across_a_sigkill() {
    let Some((db, mut pgc)) = pg::with_schema(&pg::change_statements(100_000, 100)) else {
        return;
    };
    let Some(nats) = start_nats() else { return };
    let rt = client::runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feed = format!(
        "source = \"postgres\"\npostgres = \"{}\"\npoll_interval_ms = 20",
        db.conninfo()
    );
    let config = write_config_feed(dir.path(), &nats.url, "ra", &feed);
    let mut relay = Relay::start(&config, &dir.path().join("ra.log"));
    // The first load: the table as a snapshot, and a reset at the log's last change.
    assert!(
        wait_for(Duration::from_secs(20), || snapshot_seq(&rt, &nats.url)
            .is_some()),
        "no first snapshot in 20 s"
    );
    let loaded_at = snapshot_seq(&rt, &nats.url).unwrap();
    assert!(loaded_at >= 100, "{loaded_at}");
    for i in 0..100u64 {
        pgc.batch_execute(&pg::change_statements(i * 100 + 1, 100))
            .unwrap();
        if i == 49 {
            assert!(wait_for(Duration::from_secs(20), || published(
                &rt, &nats.url
            ) >= loaded_at + 2000));
            relay.signal(libc::SIGKILL);
            assert!(relay.wait_exit(Duration::from_secs(5)).is_some());
            relay = Relay::start(&config, &dir.path().join("ra2.log"));
        }
    }
    let want = pg_changes(&mut pgc, loaded_at);
    assert_eq!(want.len(), 10_000);
    let last = want[want.len() - 1].seq;
    assert!(
        wait_for(Duration::from_secs(60), || published(&rt, &nats.url)
            == last),
        "not all changes published in 60 s (at {} of {last})",
        published(&rt, &nats.url)
    );
    let messages = read_stream(&rt, &nats.url);
    assert_eq!(messages[0], Message::Reset { seq: loaded_at });
    let got = changes_of(&messages[1..]);
    assert_eq!(got.len(), want.len(), "every change exactly once");
    assert!(
        got == want,
        "the stream's changes are the change log's, in order"
    );
    // PostgreSQL away for a while: the relay keeps the lease, and publishes what follows once
    // it is back.
    let mut db = db;
    drop(pgc);
    db.stop();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(leader(&rt, &nats.url).as_deref(), Some("ra"));
    db.start();
    let mut pgc = db.client();
    pgc.batch_execute(&pg::change_statements(20_001, 10))
        .unwrap();
    let more = pg_changes(&mut pgc, last);
    assert_eq!(more.len(), 10);
    let last = more[9].seq;
    assert!(
        wait_for(Duration::from_secs(20), || published(&rt, &nats.url)
            == last),
        "nothing published after PostgreSQL came back"
    );
    let got = changes_of(&read_stream(&rt, &nats.url)[1..]);
    assert_eq!(got[want.len()..], more[..]);
    relay.signal(libc::SIGTERM);
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(
        status.success(),
        "{status:?}\n{}",
        std::fs::read_to_string(dir.path().join("ra2.log")).unwrap_or_default()
    );
}

/// GET /metrics from `addr`.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A metric's value in a scrape (-1: absent).
fn metric(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(-1, |v| v.trim().parse().unwrap())
}

#[test]
fn a_message_from_a_stale_leader_fences_the_relay_off_and_it_resumes_after_it() {
    let Some(nats) = start_nats() else { return };
    let rt = client::runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    append(&journal, "");
    let config = write_config(dir.path(), &nats.url, "ra");
    let metrics = format!("127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}metrics = \"{metrics}\"\n")).unwrap();
    let _relay = Relay::start(&config, &dir.path().join("ra.log"));
    wait_first_load(&rt, &nats.url);
    append(&journal, &lines(1, 10));
    assert!(wait_for(Duration::from_secs(20), || published(
        &rt, &nats.url
    ) == 10));
    let m = scrape(&metrics);
    assert_eq!(metric(&m, "clusterns_relay_leader"), 1, "{m}");
    assert_eq!(metric(&m, "clusterns_relay_published_changes_total"), 10);
    assert_eq!(metric(&m, "clusterns_relay_last_published_seq"), 10);
    assert_eq!(metric(&m, "clusterns_relay_publish_errors_total"), 0);
    // Another publisher (a stale leader) puts change 11 in the stream behind the relay's back.
    let next = lines(11, 10);
    let first_line = next.lines().next().unwrap();
    rt.block_on(async {
        let cfg = natsd::config_for(&nats.url);
        let c = client::connect(&cfg, "e2e-stale").await.unwrap();
        let js = async_nats::jetstream::new(c);
        let mut h = async_nats::HeaderMap::new();
        h.insert("Clusterns-Seq", "11-11");
        h.insert("Nats-Msg-Id", "c11-11");
        js.publish_with_headers(cfg.subject.clone(), h, format!("{first_line}\n").into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    append(&journal, &next);
    assert!(wait_for(Duration::from_secs(20), || published(
        &rt, &nats.url
    ) == 20));
    let got = changes_of(&read_stream(&rt, &nats.url));
    assert_eq!(got, journal_changes(&journal), "exactly once, in order");
    let m = scrape(&metrics);
    assert!(
        metric(&m, "clusterns_relay_publish_errors_total") >= 1,
        "{m}"
    );
    assert_eq!(metric(&m, "clusterns_relay_last_published_seq"), 20);
    assert_eq!(metric(&m, "clusterns_relay_published_changes_total"), 19);
}
