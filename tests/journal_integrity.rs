//! Feed integrity with the journal, against the real binary and CLI: rotation, deletion,
//! truncation, rewrites, torn and hostile lines (issue 13's journal items, one test each).
//! Every recovery must be visible in the log (WARN or ERROR) and in a metric.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::*;

/// The binary, serving with its log in a file and metrics on.
struct Served {
    child: Child,
    log: PathBuf,
}

impl Served {
    fn start(s: &Setup) -> Served {
        let log = s.dir.path().join(format!("server-{}.log", now_ns()));
        let child = spawn_binary_logged(&s.config_path, true, Some(&log));
        Served { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn metric(&self, name: &str) -> f64 {
        metric(
            &http_get(self.child.metrics.unwrap(), "/metrics"),
            name,
            &[],
        )
    }

    fn answers(&self, name: &str) -> Vec<String> {
        a_records(&udp_ask(self.child.addr, name, RecordType::A))
    }

    fn rcode(&self, name: &str) -> ResponseCode {
        udp_ask(self.child.addr, name, RecordType::A).response_code()
    }

    /// Waits until `name` answers `want` (empty: NXDOMAIN).
    fn wait_answer(&self, name: &str, want: &[&str]) -> bool {
        wait_for(Duration::from_secs(5), || {
            let m = udp_ask(self.child.addr, name, RecordType::A);
            if want.is_empty() {
                m.response_code() == ResponseCode::NXDomain
            } else {
                a_records(&m) == want
            }
        })
    }

    /// Stops it with SIGTERM (a last checkpoint is written) and waits.
    fn stop(mut self) {
        self.child.signal(libc::SIGTERM);
        let _ = self.child.child.wait();
    }

    /// kill -9.
    fn kill(mut self) {
        let _ = self.child.child.kill();
        let _ = self.child.child.wait();
    }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

const EAST: &[&str] = &["203.0.113.1", "203.0.113.2"];
const WEST: &[&str] = &["198.51.100.7"];

/// A setup with a checkpoint and the metrics endpoint.
fn setup_ckpt() -> Setup {
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
        "journal = \"journal.log\"",
        "journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"",
    );
    std::fs::write(
        &s.config_path,
        format!("{text}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    s
}

/// Runs the CLI; returns (success, stdout, stderr).
fn cli(s: &Setup, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(args)
        .args(["--config", path_str(&s.config_path)])
        .env("CLUSTERNS_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces the journal with `text` as `sed -i` or an editor does (a new file renamed over).
fn replace_journal(s: &Setup, text: &str) {
    let tmp = s.dir.path().join("journal.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &s.journal_path).unwrap();
}

#[test]
fn item1_rotation_is_followed_and_survives_a_restart() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    // mv journal.log journal.log.1, and a new file. (Lines that a writer still holding the
    // old file appends are read up to the moment the server moves on: `journal`'s unit tests;
    // here that would race.)
    std::fs::rename(&s.journal_path, s.dir.path().join("journal.log.1")).unwrap();
    std::fs::write(
        &s.journal_path,
        "4 set r-four ann blog west\n5 set r-five ann shop west\n",
    )
    .unwrap();
    assert!(srv.wait_answer("r-five.repl.co", WEST), "new file followed");
    assert_eq!(srv.answers("r-four.repl.co"), WEST);
    // The CLI continues the numbering.
    let (ok, out, err) = cli(&s, &["repl", "move", "r-five", "east"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "6 set r-five ann shop east");
    assert!(srv.wait_answer("r-five.repl.co", EAST));
    assert!(srv.metric("clusterns_feed_journal_switches_total") >= 1.0);
    assert!(
        srv.log().contains("another file now") || srv.log().contains("appeared"),
        "{}",
        srv.log()
    );
    assert_eq!(
        srv.metric("clusterns_feed_gaps_total"),
        0.0,
        "{}",
        srv.log()
    );
    // kill -9 and restart: the checkpoint is kept; every older app still answers.
    srv.kill();
    let srv = Served::start(&s);
    for (name, want) in [
        ("r-one.repl.co", EAST),
        ("r-two.repl.co", WEST),
        ("r-four.repl.co", WEST),
        ("r-five.repl.co", EAST),
    ] {
        assert_eq!(srv.answers(name), want, "{name}");
    }
    // sed -i on a journal that does not hold the whole history (it began after a rotation):
    // what came before it is not known, so its lines already applied are kept as applied,
    // and that is said loudly.
    let text = std::fs::read_to_string(&s.journal_path).unwrap();
    replace_journal(
        &s,
        &text.replace("6 set r-five ann shop east", "6 delete r-five"),
    );
    assert!(wait_for(Duration::from_secs(5), || srv
        .metric("clusterns_feed_gaps_total")
        >= 1.0));
    assert_eq!(srv.answers("r-five.repl.co"), EAST);
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    assert!(
        srv.log().contains("compact the journal before editing"),
        "{}",
        srv.log()
    );
    srv.stop();
}

#[test]
fn item1_sed_i_on_the_journal_is_served_as_edited_running_or_not() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    assert_eq!(srv.answers("r-two.repl.co"), WEST);
    let text = std::fs::read_to_string(&s.journal_path).unwrap();
    replace_journal(
        &s,
        &text.replace("2 set r-two mark notes west", "2 set r-two mark notes east"),
    );
    assert!(srv.wait_answer("r-two.repl.co", EAST));
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    assert_eq!(srv.metric("clusterns_feed_reloads_total"), 1.0);
    srv.stop();
    // Edited while stopped (the checkpoint is at its end): the edit is seen at start.
    let text = std::fs::read_to_string(&s.journal_path).unwrap();
    replace_journal(
        &s,
        &text.replace("3 set r-three ann site east", "3 set r-three ann site west"),
    );
    let srv = Served::start(&s);
    assert_eq!(srv.answers("r-three.repl.co"), WEST);
    assert_eq!(srv.answers("r-two.repl.co"), EAST);
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    srv.stop();
    // Lines added while stopped, in the same file: resumed from the checkpoint's position.
    append_raw(&s.journal_path, "4 delete r-one\n");
    let srv = Served::start(&s);
    assert_eq!(srv.rcode("r-one.repl.co"), ResponseCode::NXDomain);
    assert_eq!(srv.metric("clusterns_feed_journal_switches_total"), 0.0);
    srv.stop();
}

#[test]
fn item1_deletion_is_loud_and_the_cli_refuses_to_start_over() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    std::fs::remove_file(&s.journal_path).unwrap();
    assert!(wait_for(Duration::from_secs(5), || srv
        .metric("clusterns_feed_journal_missing")
        == 1.0));
    assert!(srv.log().contains("does not exist"), "{}", srv.log());
    // The table is still served, and was checkpointed.
    assert_eq!(srv.answers("r-two.repl.co"), WEST);
    assert!(wait_for(Duration::from_secs(5), || s
        .dir
        .path()
        .join("table.ckpt")
        .exists()));
    // `repl set` would start at 1 and be ignored: refused with a way out.
    let (ok, _, err) = cli(&s, &["repl", "set", "r-new", "ann", "new", "east"]);
    assert!(!ok);
    assert!(err.contains("journal compact"), "{err}");
    // compact writes the journal again from the checkpoint; the server follows it without a
    // reload and the CLI works again.
    let (ok, out, err) = cli(&s, &["journal", "compact"]);
    assert!(ok, "{err}");
    assert!(out.contains("3 apps at sequence 3"), "{out}");
    let (ok, out, err) = cli(&s, &["repl", "set", "r-new", "ann", "new", "east"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4 set r-new ann new east");
    assert!(srv.wait_answer("r-new.repl.co", EAST));
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    assert_eq!(srv.metric("clusterns_feed_journal_missing"), 0.0);
    assert_eq!(srv.metric("clusterns_feed_reloads_total"), 0.0);
    srv.stop();
}

#[test]
fn item2_copytruncate_loses_nothing_and_is_reported_once() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    assert_eq!(srv.answers("r-three.repl.co"), EAST);
    // copytruncate: copy, truncate, and stay short for a while.
    std::fs::copy(&s.journal_path, s.dir.path().join("journal.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.journal_path)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || srv
        .metric("clusterns_feed_journal_switches_total")
        == 1.0));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(srv.log().matches("truncated").count(), 1, "{}", srv.log());
    // Then more lines than there were bytes: all of them read, from the start.
    let mut more = String::new();
    for i in 4..40 {
        more.push_str(&format!("{i} set r-{i} ann app{i} west\n"));
    }
    append_raw(&s.journal_path, &more);
    for i in [4, 20, 39] {
        assert!(srv.wait_answer(&format!("r-{i}.repl.co"), WEST), "r-{i}");
    }
    assert_eq!(srv.answers("r-one.repl.co"), EAST);
    assert!(!srv.log().contains("not a whole number"), "{}", srv.log());
    assert_eq!(srv.metric("clusterns_feed_changes_rejected_total"), 0.0);
    srv.stop();
}

#[test]
fn item3_a_torn_last_line_is_removed_by_the_cli_not_renumbered() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    // A writer died after a complete-looking line, before its newline.
    append_raw(&s.journal_path, "4 set r-torn ann torn west");
    let (ok, out, err) = cli(&s, &["repl", "set", "r-next", "ann", "next", "west"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4 set r-next ann next west");
    assert!(err.contains("incomplete last line"), "{err}");
    assert!(srv.wait_answer("r-next.repl.co", WEST));
    assert_eq!(srv.rcode("r-torn.repl.co"), ResponseCode::NXDomain);
    assert_eq!(srv.metric("clusterns_feed_changes_rejected_total"), 0.0);
    srv.stop();
}

#[test]
fn item4_the_largest_sequence_number_is_a_bad_line_not_a_wall() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    append_raw(
        &s.journal_path,
        "18446744073709551615 set r-big ann big west\n",
    );
    let (ok, out, err) = cli(&s, &["repl", "set", "r-after", "ann", "after", "west"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4 set r-after ann after west");
    assert!(srv.wait_answer("r-after.repl.co", WEST));
    assert_eq!(srv.rcode("r-big.repl.co"), ResponseCode::NXDomain);
    assert!(
        srv.log().contains("journal.log:4: sequence number"),
        "{}",
        srv.log()
    );
    // At the largest allowed number the CLI refuses instead of wrapping.
    append_raw(&s.journal_path, "9223372036854775807 delete r-after\n");
    let (ok, _, err) = cli(&s, &["repl", "set", "r-x", "ann", "x", "west"]);
    assert!(!ok);
    assert!(err.contains("no room"), "{err}");
    srv.stop();
}

/// CPU seconds the process has used (user + system).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn item5_a_torn_line_or_endless_garbage_costs_neither_cpu_nor_memory() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    let pid = srv.child.child.id();
    append_raw(&s.journal_path, "4 set r-slow ann slow west");
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_secs(pid) - before;
    // Spinning on the line would use about 2 s; idle is a few hundredths.
    assert!(used < 0.5, "the idle server used {used} s of CPU in 2 s");
    append_raw(&s.journal_path, "\n");
    assert!(srv.wait_answer("r-slow.repl.co", WEST));
    // 64 MB without a newline, written in pieces while the server reads.
    let rss_before = rss_kib(pid);
    let chunk = "z".repeat(1 << 20);
    for _ in 0..64 {
        append_raw(&s.journal_path, &chunk);
    }
    std::thread::sleep(Duration::from_millis(300));
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    append_raw(&s.journal_path, "\n5 delete r-slow\n");
    assert!(srv.wait_answer("r-slow.repl.co", &[]));
    srv.stop();
}

#[test]
fn item6_bad_lines_are_quoted_briefly_and_every_rejection_has_its_line() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    let huge = "x".repeat(2 << 20);
    append_raw(
        &s.journal_path,
        &format!(
            "4 {huge}\n5 set r-dup mark coolgame west\n6 delete r-nobody\n7 set r-ok ann ok west\n"
        ),
    );
    assert!(srv.wait_answer("r-ok.repl.co", WEST));
    let log = srv.log();
    assert!(log.lines().all(|l| l.len() < 1000), "a log line is long");
    assert!(log.contains("journal.log:4: line is longer than"), "{log}");
    assert!(log.contains("journal.log:5: change 5 set"), "{log}");
    assert!(log.contains("journal.log:6: change 6 delete"), "{log}");
    assert_eq!(srv.metric("clusterns_feed_changes_rejected_total"), 3.0);
    srv.stop();
}

#[test]
fn item10_a_missing_journal_is_an_error_for_check_config_and_loud_for_the_server() {
    let s = setup_ckpt();
    std::fs::remove_file(&s.journal_path).unwrap();
    let (ok, _, err) = cli(&s, &["check-config"]);
    // check-config takes the file as an argument, not --config: run it as documented.
    let _ = (ok, err);
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["check-config", path_str(&s.config_path)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("clusterns.toml:"), "{err}");
    assert!(err.contains("journal.log does not exist"), "{err}");
    let srv = Served::start(&s);
    assert_eq!(srv.metric("clusterns_feed_journal_missing"), 1.0);
    assert!(srv.log().contains("ERROR"), "{}", srv.log());
    assert!(srv.log().contains("does not exist"), "{}", srv.log());
    // Created later, it is followed.
    std::fs::write(&s.journal_path, "1 set r-late ann late east\n").unwrap();
    assert!(srv.wait_answer("r-late.repl.co", EAST));
    assert_eq!(srv.metric("clusterns_feed_journal_missing"), 0.0);
    srv.stop();
}

#[test]
fn item11_names_that_could_never_answer_are_refused_at_the_source() {
    let s = setup_ckpt();
    let srv = Served::start(&s);
    for args in [
        ["repl", "set", "ns1", "ann", "x", "east"],
        ["repl", "set", "r-x", "ns1", "x", "east"],
        ["repl", "set", "r-x", "ann", "_acme-challenge", "east"],
        ["repl", "set", "_acme-challenge", "ann", "x", "east"],
    ] {
        let (ok, _, err) = cli(&s, &args);
        assert!(!ok, "{args:?} was accepted");
        assert!(
            err.contains("reserved") || err.contains("host ns1"),
            "{err}"
        );
    }
    // Written by hand, the server rejects it with its line.
    append_raw(&s.journal_path, "4 set r-acme ann _acme-challenge east\n");
    assert!(wait_for(Duration::from_secs(5), || srv
        .log()
        .contains("journal.log:4: slug _acme-challenge is reserved")));
    assert_eq!(srv.metric("clusterns_feed_changes_rejected_total"), 1.0);
    // A name the config answers itself, written by hand (or from a database, which cannot
    // know the config): taken, but said loudly.
    append_raw(&s.journal_path, "5 set ns1 ann x east\n");
    assert!(wait_for(Duration::from_secs(5), || srv
        .metric("clusterns_feed_changes_shadowed_total")
        == 1.0));
    assert!(
        srv.log().contains("journal.log:5: change 5 set ns1"),
        "{}",
        srv.log()
    );
    assert_eq!(
        udp_ask(srv.child.addr, "ns1.repl.co", RecordType::A).answers()[0]
            .data()
            .and_then(|d| d.as_a())
            .map(|a| a.to_string()),
        Some("192.0.2.53".to_string()),
        "the host still answers"
    );
    srv.stop();
}

#[test]
fn item11_rejections_while_loading_are_counted() {
    let s = setup_ckpt();
    append_raw(&s.journal_path, "4 bogus\n5 delete r-nobody\n");
    let srv = Served::start(&s);
    assert_eq!(srv.metric("clusterns_feed_changes_rejected_total"), 2.0);
    srv.stop();
}

#[test]
fn compaction_concurrent_with_writers_loses_and_repeats_nothing() {
    use clusterns::feed::journal::{self, JournalReader};
    use clusterns::feed::Change;
    let s = setup_ckpt();
    let config = std::sync::Arc::new(clusterns::config::Config::load(&s.config_path).unwrap());
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let path = s.journal_path.clone();
            std::thread::spawn(move || {
                let mut written = Vec::new();
                for i in 0..60 {
                    let change = Change::Upsert {
                        id: format!("w{w}-{i}").parse().unwrap(),
                        user: format!("u{w}").parse().unwrap(),
                        slug: format!("s{i}").parse().unwrap(),
                        cluster: "east".parse().unwrap(),
                    };
                    let a = journal::append(&path, &[change], 0, None, false).unwrap();
                    written.push(a.written[0].seq);
                }
                written
            })
        })
        .collect();
    for _ in 0..8 {
        clusterns::feed::compact::compact(config.clone(), None).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut seqs: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 120, "a sequence number was handed out twice");
    // Every app written is in the journal as it ends (snapshot or line), read as a server would.
    let mut reader = JournalReader::new(&s.journal_path);
    let mut apps = std::collections::BTreeSet::new();
    loop {
        let b = reader.read_new().unwrap();
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        for c in b.changes() {
            if let Change::Upsert { id, .. } = &c.change {
                apps.insert(id.to_string());
            }
        }
        if b.at_end {
            break;
        }
    }
    for w in 0..2 {
        for i in 0..60 {
            assert!(apps.contains(&format!("w{w}-{i}")), "w{w}-{i} lost");
        }
    }
    assert_eq!(reader.last_seq(), 123);
}

#[test]
fn no_checkpoint_is_taken_inside_a_snapshot_block() {
    let s = setup_ckpt();
    std::fs::write(
        &s.journal_path,
        "# compacted\n5 snapshot begin 00000000\n5 app r-one mark coolgame east\n",
    )
    .unwrap();
    let config = std::sync::Arc::new(clusterns::config::Config::load(&s.config_path).unwrap());
    let mut b = clusterns::feed::Builder::load(config.clone()).unwrap();
    let ckpt = s.dir.path().join("table.ckpt");
    b.checkpoint_now();
    assert!(!ckpt.exists(), "a checkpoint inside the block");
    append_raw(
        &s.journal_path,
        "5 snapshot end 1\n6 set r-two mark notes west\n",
    );
    b.poll_once(Duration::ZERO).unwrap();
    b.checkpoint_now();
    assert!(ckpt.exists());
    drop(b);
    let b = clusterns::feed::Builder::load(config).unwrap();
    assert_eq!(b.table().len(), 2);
    assert_eq!(b.last_seq(), 6);
}
