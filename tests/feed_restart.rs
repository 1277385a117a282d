//! Restarting from a checkpoint plus the journal's tail gives exactly the table that a full
//! replay gives; a damaged checkpoint falls back to a full replay; folds in the background lose
//! nothing.

mod common;

use std::fmt::Write as _;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::feed::Builder;

/// A deterministic stream of journal lines: creates, moves, renames, deletes, and a few bad
/// lines, from sequence number `from`.
fn changes(from: u64, n: u64, seed: &mut u64) -> String {
    let mut out = String::new();
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    for seq in from..from + n {
        let r = next();
        let id = format!("app{}", r % 400);
        let cluster = if r % 2 == 0 { "east" } else { "west" };
        match (r >> 16) % 10 {
            0..=5 => writeln!(out, "{seq} set {id} user{} s{} {cluster}", r % 37, r % 400).unwrap(),
            6 => writeln!(
                out,
                "{seq} set {id} user{} renamed{} {cluster}",
                (r >> 8) % 37,
                r % 400
            )
            .unwrap(),
            7 | 8 => writeln!(out, "{seq} delete {id}").unwrap(),
            _ => writeln!(out, "{seq} set {id} bad.label x {cluster}").unwrap(),
        }
    }
    out
}

fn config_with(setup: &common::Setup, checkpoint: bool) -> Arc<Config> {
    let mut text = std::fs::read_to_string(&setup.config_path).unwrap();
    if checkpoint {
        text = text.replace(
            "journal = \"journal.log\"",
            "journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"",
        );
    }
    Arc::new(Config::parse(&setup.config_path, &text).unwrap())
}

#[test]
fn checkpoint_plus_tail_equals_full_replay() {
    let s = common::setup("");
    let mut seed = 0x1234_5678_9abc_def0;
    std::fs::write(&s.journal_path, changes(1, 3000, &mut seed)).unwrap();

    // First run: load, fold part of it in the background, apply more, checkpoint.
    let mut b = Builder::load(config_with(&s, true)).unwrap();
    b.set_fold_min(50);
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.journal_path)
        .unwrap();
    std::io::Write::write_all(&mut more, changes(3001, 500, &mut seed).as_bytes()).unwrap();
    b.poll_once(std::time::Duration::ZERO).unwrap();
    b.maintain();
    std::io::Write::write_all(&mut more, changes(3501, 500, &mut seed).as_bytes()).unwrap();
    b.poll_once(std::time::Duration::ZERO).unwrap();
    b.finish_fold();
    b.checkpoint_now();
    assert!(s.dir.path().join("table.ckpt").exists());
    let at_checkpoint = b.table().apps();
    drop(b);

    // More lines after the checkpoint, one of them torn (completed later).
    std::io::Write::write_all(&mut more, changes(4001, 700, &mut seed).as_bytes()).unwrap();
    std::io::Write::write_all(&mut more, b"4701 set late").unwrap();

    let resumed = Builder::load(config_with(&s, true)).unwrap();
    let replayed = Builder::load(config_with(&s, false)).unwrap();
    assert_eq!(resumed.last_seq(), 4700);
    assert_eq!(replayed.last_seq(), 4700);
    assert_eq!(resumed.table().apps(), replayed.table().apps());
    assert_eq!(resumed.table().len(), replayed.table().len());
    assert_ne!(
        resumed.table().apps(),
        at_checkpoint,
        "the tail changed something"
    );
    assert!(replayed.table().len() > 100);

    // Complete the torn line: both see it the same way.
    std::io::Write::write_all(&mut more, b" user1 late east\n").unwrap();
    let resumed = Builder::load(config_with(&s, true)).unwrap();
    let replayed = Builder::load(config_with(&s, false)).unwrap();
    assert_eq!(resumed.last_seq(), 4701);
    assert_eq!(resumed.table().apps(), replayed.table().apps());
    assert!(resumed.table().get("late").is_some());
}

#[test]
fn damaged_checkpoint_falls_back_to_full_replay() {
    let s = common::setup("");
    let mut seed = 42;
    std::fs::write(&s.journal_path, changes(1, 1000, &mut seed)).unwrap();
    let mut b = Builder::load(config_with(&s, true)).unwrap();
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.journal_path)
        .unwrap();
    std::io::Write::write_all(&mut more, changes(1001, 10, &mut seed).as_bytes()).unwrap();
    b.poll_once(std::time::Duration::ZERO).unwrap();
    b.checkpoint_now();
    let want = b.table().apps();
    drop(b);
    let ckpt = s.dir.path().join("table.ckpt");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&ckpt, bytes).unwrap();
    let b = Builder::load(config_with(&s, true)).unwrap();
    assert_eq!(b.table().apps(), want);
    assert_eq!(b.last_seq(), 1010);

    // A checkpoint from a journal that was replaced by a shorter one is not used either.
    let mut b = Builder::load(config_with(&s, true)).unwrap();
    b.poll_once(std::time::Duration::ZERO).unwrap();
    std::fs::write(&s.journal_path, "1 set only user1 one east\n").unwrap();
    let b2 = Builder::load(config_with(&s, true)).unwrap();
    assert_eq!(b2.table().len(), 1);
    drop(b);
}

#[test]
fn folding_while_changes_stream_loses_nothing() {
    let s = common::setup("");
    std::fs::write(&s.journal_path, "").unwrap();
    let mut b = Builder::load(config_with(&s, false)).unwrap();
    b.set_fold_min(100);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.journal_path)
        .unwrap();
    let mut seq = 1;
    for round in 0..40 {
        let mut text = String::new();
        for i in 0..50 {
            let n = round * 50 + i;
            writeln!(text, "{seq} set id{n} user{} app{n} east", n % 17).unwrap();
            seq += 1;
            if n % 3 == 0 {
                writeln!(text, "{seq} set id{n} user{} app{n} west", n % 17).unwrap();
                seq += 1;
            }
        }
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        b.poll_once(std::time::Duration::ZERO).unwrap();
        b.maintain();
    }
    b.finish_fold();
    assert!(b.table().overlay().len() < 2000, "folded at least once");
    assert_eq!(b.table().len(), 2000);
    let west = b.table().apps().iter().filter(|a| a.3 == 1).count();
    assert_eq!(west, 667);
    let snap = b.shared().load();
    assert_eq!(snap.table.apps(), b.table().apps());
}

#[test]
fn changes_that_keep_moving_one_app_start_a_fold_before_the_log_fills() {
    let s = common::setup("");
    // 1,500 moves of one app: 3,000 versions in a log made for 4,096, but one id, far below
    // the fold threshold in ids (100,000).
    let mut lines = String::new();
    for seq in 1..=1500u64 {
        let cluster = if seq % 2 == 0 { "east" } else { "west" };
        writeln!(lines, "{seq} set hotapp hotuser game {cluster}").unwrap();
    }
    std::fs::write(&s.journal_path, "").unwrap();
    let mut b = Builder::load(config_with(&s, false)).unwrap();
    std::fs::write(&s.journal_path, lines).unwrap();
    b.poll_once(std::time::Duration::ZERO).unwrap();
    let before = b.table().get("hotapp");
    assert!(before.is_some());
    assert!(
        b.table().overlay().fill() > 0.5,
        "the journal did not fill the log past half: {}",
        b.table().overlay().fill()
    );
    b.maintain();
    b.finish_fold();
    assert!(
        b.table().overlay().fill() < 0.01,
        "no fold emptied the log: {}",
        b.table().overlay().fill()
    );
    assert_eq!(b.table().get("hotapp"), before);
    assert_eq!(b.table().len(), 1);
}
