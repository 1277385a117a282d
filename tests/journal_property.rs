//! A randomized test of the journal feed as an operator's bad day goes: appends by the CLI
//! and by hand, torn writes, rotations (mv), copytruncate, edits (sed -i), deletion,
//! compactions, checkpoints, kill -9 and restarts with and without a checkpoint. After every
//! step the builder, read to the end of the journal, must hold exactly the table a plain
//! model computes from the feed and the config alone.
//!
//! The model is deliberately simple: a map of apps, the last sequence number, and whether
//! the journal file on disk holds the whole history (true until a rotation or copytruncate
//! leaves part of it in another file, true again after a compaction). A restart without a
//! checkpoint gives the model's replay of the file alone.
//!
//! Seeds: `JOURNAL_PROPERTY_SEEDS` (default 6) seeds from `JOURNAL_PROPERTY_SEED` (default
//! 1), `JOURNAL_PROPERTY_STEPS` steps each (default 120). A failure prints the seed, the
//! step and the history of operations.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clusterns::config::Config;
use clusterns::feed::change::{ChangeTarget, UpsertRef};
use clusterns::feed::journal::{self, parse_entry, Entry};
use clusterns::feed::{Builder, Change};
use clusterns::name::Label;
use common::append_raw;

/// xorshift64*: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const IDS: &[&str] = &["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"];
const USERS: &[&str] = &["ann", "bob", "cy"];
const SLUGS: &[&str] = &["a", "b", "c"];
const CLUSTERS: &[&str] = &["east", "west"];

type Apps = BTreeMap<String, (String, String, String)>;

/// The model of the table: apps and the last sequence number applied.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    apps: Apps,
    last: u64,
}

impl Model {
    /// Applies `change` numbered `seq`, as the table's rules say (a name held by another app,
    /// or an unknown id to delete, is rejected). Sequence numbers must increase.
    fn apply(&mut self, seq: u64, change: &Change) {
        if seq <= self.last {
            return;
        }
        self.last = seq;
        change.apply_to(self);
    }
}

/// The table's rules, written out plainly.
impl ChangeTarget for Model {
    type Outcome = ();

    fn upsert(&mut self, app: UpsertRef<'_>) {
        let taken = self.apps.iter().any(|(other, (u, s, _))| {
            other != app.id.as_str() && u == app.user.as_str() && s == app.slug.as_str()
        });
        if !taken {
            self.apps.insert(
                app.id.to_string(),
                (
                    app.user.to_string(),
                    app.slug.to_string(),
                    app.cluster.to_string(),
                ),
            );
        }
    }

    fn delete(&mut self, id: &Label) {
        self.apps.remove(id.as_str());
    }
    // Challenge records are not apps: this model leaves them out.
    fn txt_add(&mut self, _: &clusterns::name::DomainName, _: &[u8], _: u64) {}

    fn txt_delete(&mut self, _: &clusterns::name::DomainName, _: Option<&[u8]>) {}

    // Health reports are not apps either.
    fn health(&mut self, _: &clusterns::health::report::HealthReport) {}
}

impl Model {
    /// The table a fresh reader builds from `text` alone: a snapshot block at the start sets
    /// the table, then the changes in order; an incomplete last line does not count.
    fn replay(text: &str) -> Model {
        let mut m = Model::default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        let mut seen_entry = false;
        for line in complete.lines() {
            match parse_entry(line) {
                Ok(Some(Entry::SnapshotBegin { seq, .. })) if !seen_entry => {
                    seen_entry = true;
                    m.last = seq;
                }
                Ok(Some(Entry::SnapshotApp(s))) if s.seq == m.last => {
                    if let Change::Upsert {
                        id,
                        user,
                        slug,
                        cluster,
                    } = s.change
                    {
                        m.apps.insert(
                            id.to_string(),
                            (user.to_string(), slug.to_string(), cluster.to_string()),
                        );
                    }
                }
                Ok(Some(Entry::Change(s))) => {
                    seen_entry = true;
                    m.apply(s.seq, &s.change);
                }
                _ => {}
            }
        }
        m
    }
}

/// The builder's table as (id -> user, slug, cluster name).
fn served(b: &Builder) -> Apps {
    let names = b.table().clusters().names();
    b.table()
        .apps()
        .into_iter()
        .map(|(id, user, slug, c)| {
            let cluster = names[usize::from(c)].to_string();
            (id, (user, slug, cluster))
        })
        .collect()
}

fn load(config: &Arc<Config>) -> Builder {
    let mut b = Builder::load(config.clone()).expect("loads");
    settle(&mut b);
    b
}

/// Reads the journal to its end, and lets a due checkpoint (a switched journal forces one)
/// finish, as the running thread would between reads.
fn settle(b: &mut Builder) {
    for _ in 0..1000 {
        b.poll_once(Duration::ZERO).expect("poll");
        b.maintain();
        b.wait_checkpoint();
        if b.caught_up() {
            b.poll_once(Duration::ZERO).expect("poll");
            if b.caught_up() {
                return;
            }
        }
    }
    panic!("the builder never caught up");
}

fn random_change(rng: &mut Rng) -> Change {
    let id = rng.pick(IDS).parse().unwrap();
    if rng.below(4) == 0 {
        Change::Delete { id }
    } else {
        Change::Upsert {
            id,
            user: rng.pick(USERS).parse().unwrap(),
            slug: rng.pick(SLUGS).parse().unwrap(),
            cluster: rng.pick(CLUSTERS).parse().unwrap(),
        }
    }
}

fn line(seq: u64, change: &Change) -> String {
    clusterns::feed::Sequenced {
        seq,
        change: change.clone(),
    }
    .to_string()
}

struct World {
    dir: tempfile::TempDir,
    config: Arc<Config>,
    journal: std::path::PathBuf,
    ckpt: std::path::PathBuf,
    model: Model,
    /// The journal file holds the whole history.
    complete: bool,
    /// The first sequence number in the journal file (None: no entry yet), and for the file
    /// before the last switch: whether it was complete, and its first number. A new file whose
    /// first change is numbered at or below the last one applied rewrites the history when the
    /// file before was complete and it starts where that one did; otherwise its lines up to
    /// the last one applied are taken as applied (the reader's rule).
    file_first: Option<u64>,
    prev_complete: bool,
    prev_first: u64,
    /// A line written without its newline: the rest of it, and the change it makes.
    torn: Option<(String, u64, Change)>,
    rotated: u32,
}

impl World {
    fn new() -> World {
        let s = common::setup("");
        let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
            "journal = \"journal.log\"",
            "journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"",
        );
        std::fs::write(&s.config_path, text).unwrap();
        let config = Arc::new(Config::load(&s.config_path).unwrap());
        let journal_text = std::fs::read_to_string(&s.journal_path).unwrap();
        let model = Model::replay(&journal_text);
        World {
            ckpt: s.dir.path().join("table.ckpt"),
            journal: s.journal_path.clone(),
            config,
            model,
            complete: true,
            file_first: Some(1),
            prev_complete: true,
            prev_first: 1,
            torn: None,
            rotated: 0,
            dir: s.dir,
        }
    }

    /// The journal became another file (mv, copytruncate).
    fn switched(&mut self) {
        // A file with no entry yet leaves no trace: what came before it still counts.
        if let Some(first) = self.file_first {
            self.prev_complete = self.complete;
            self.prev_first = first;
        }
        self.complete = false;
        self.file_first = None;
        self.torn = None;
    }

    /// A change line numbered `seq` was appended by hand.
    fn appended(&mut self, seq: u64, change: &Change) {
        if self.file_first.is_none() {
            self.file_first = Some(seq);
            // A file that begins with nothing applied before it holds the whole history.
            if seq > self.model.last && self.model.last == 0 {
                self.complete = true;
            }
            if seq <= self.model.last && self.prev_complete && seq <= self.prev_first.max(1) {
                self.model = Model::replay(&self.journal_text());
                self.complete = true;
                return;
            }
        }
        self.model.apply(seq, change);
    }

    /// The whole file is the history now (a compaction, or a restart from it alone).
    fn file_is_history(&mut self) {
        self.complete = true;
        self.file_first = first_seq(&self.journal_text());
    }

    fn journal_text(&self) -> String {
        std::fs::read_to_string(&self.journal).unwrap_or_default()
    }

    /// The CLI's floor: the checkpoint's sequence number, and its position in the journal
    /// (where the CLI starts reading).
    fn floor(&self) -> (u64, Option<journal::JournalPos>) {
        journal_floor(&self.ckpt)
    }

    /// Performs one random operation; returns its name, or None if it did not apply.
    fn step(&mut self, rng: &mut Rng, b: &mut Option<Builder>) -> Option<String> {
        match rng.below(15) {
            // The CLI (`repl set`): numbered after the journal and the checkpoint; a torn
            // line goes.
            0..=3 => {
                let change = random_change(rng);
                let (floor, from) = self.floor();
                let a = match journal::append(
                    &self.journal,
                    std::slice::from_ref(&change),
                    floor,
                    from,
                    floor == 0,
                ) {
                    Ok(a) => a,
                    // A journal with no change below a checkpoint: the CLI refuses (see item
                    // 1's test), and writes nothing.
                    Err(e) if floor > 0 && e.kind() == std::io::ErrorKind::NotFound => return None,
                    Err(e) => panic!("append: {e}"),
                };
                self.torn = None;
                let s = &a.written[0];
                self.appended(s.seq, &s.change);
                Some(format!("cli {s}"))
            }
            // By hand: a good line, completing a torn one first.
            4 | 5 => {
                let mut text = String::new();
                let mut done = Vec::new();
                if let Some((rest, seq, change)) = self.torn.take() {
                    text.push_str(&rest);
                    text.push('\n');
                    done.push((seq, change));
                }
                let change = random_change(rng);
                let seq = done
                    .last()
                    .map_or(self.model.last, |d| d.0.max(self.model.last))
                    + 1;
                text.push_str(&line(seq, &change));
                text.push('\n');
                append_raw(&self.journal, &text);
                done.push((seq, change.clone()));
                for (seq, change) in done {
                    self.appended(seq, &change);
                }
                Some(format!("hand {seq} {change:?}"))
            }
            // By hand: a bad line, or a stale sequence number.
            6 => {
                if self.torn.is_some() {
                    return None;
                }
                let bad = match rng.below(3) {
                    0 => "garbage here\n".to_string(),
                    // Not in the config: taken all the same (it answers SERVFAIL).
                    1 => format!("{} set r1 ann a nowhere-cluster\n", self.model.last + 1),
                    _ => format!("{} delete r1\n", self.model.last.max(1)),
                };
                append_raw(&self.journal, &bad);
                if let Ok(Some(Entry::Change(s))) = parse_entry(bad.trim_end()) {
                    self.appended(s.seq, &s.change);
                }
                Some(format!("bad {bad:?}"))
            }
            // A torn write.
            7 => {
                if self.torn.is_some() {
                    return None;
                }
                let change = random_change(rng);
                let seq = self.model.last + 1;
                let full = line(seq, &change);
                let cut = 1 + rng.below(full.len() as u64 - 1) as usize;
                append_raw(&self.journal, &full[..cut]);
                self.torn = Some((full[cut..].to_string(), seq, change));
                Some(format!("torn {:?}", &full[..cut]))
            }
            // Compaction.
            8 => {
                clusterns::feed::compact::compact(self.config.clone(), None).expect("compact");
                self.torn = None;
                self.file_is_history();
                Some("compact".into())
            }
            // mv journal.log journal.log.N; a new empty file.
            9 => {
                self.rotated += 1;
                let to = self
                    .dir
                    .path()
                    .join(format!("journal.log.{}", self.rotated));
                if std::fs::rename(&self.journal, &to).is_err() {
                    return None;
                }
                std::fs::write(&self.journal, "").unwrap();
                self.switched();
                Some("mv".into())
            }
            // copytruncate.
            10 => {
                self.rotated += 1;
                let to = self
                    .dir
                    .path()
                    .join(format!("journal.log.{}", self.rotated));
                if std::fs::copy(&self.journal, &to).is_err() {
                    return None;
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.journal)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                self.switched();
                Some("copytruncate".into())
            }
            // sed -i: one line's cluster changed, a new file renamed over the journal.
            11 => {
                let text = self.journal_text();
                if self.torn.is_some() || !text.contains(" set ") {
                    return None;
                }
                let (from, to) = if rng.below(2) == 0 {
                    (" east\n", " west\n")
                } else {
                    (" west\n", " east\n")
                };
                let at = text.find(from)?;
                let edited = format!("{}{to}{}", &text[..at], &text[at + from.len()..]);
                let tmp = self.dir.path().join("sed.tmp");
                std::fs::write(&tmp, &edited).unwrap();
                std::fs::rename(&tmp, &self.journal).unwrap();
                if self.complete {
                    // The whole history was rewritten: the table is its replay.
                    self.model = Model::replay(&edited);
                    self.file_is_history();
                }
                // Else the lines already applied are kept as applied (a gap is reported).
                Some(format!("sed -i at {at}"))
            }
            // A checkpoint now.
            12 => {
                if let Some(b) = b {
                    b.checkpoint_now();
                }
                Some("checkpoint".into())
            }
            // kill -9 and restart from the checkpoint there is.
            13 => {
                drop(b.take());
                *b = Some(load(&self.config));
                Some("restart".into())
            }
            // Restart without a checkpoint: only the file is left.
            _ => {
                drop(b.take());
                let _ = std::fs::remove_file(&self.ckpt);
                *b = Some(load(&self.config));
                self.model = Model::replay(&self.journal_text());
                self.file_is_history();
                if let Some((_, seq, _)) = &self.torn {
                    if *seq <= self.model.last {
                        self.torn = None;
                    }
                }
                Some("restart without checkpoint".into())
            }
        }
    }
}

/// The first sequence number in a journal's text (a snapshot's, or the first change's).
fn first_seq(text: &str) -> Option<u64> {
    // Complete lines only: a torn last line does not count.
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete.lines().find_map(|l| match parse_entry(l) {
        Ok(Some(Entry::SnapshotBegin { seq, .. })) => Some(seq),
        Ok(Some(Entry::Change(s))) => Some(s.seq),
        _ => None,
    })
}

fn journal_floor(ckpt: &Path) -> (u64, Option<journal::JournalPos>) {
    match clusterns::feed::checkpoint::read_position(ckpt) {
        Ok(p) if ckpt.exists() => (p.last_seq, Some(p.journal)),
        _ => (0, None),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_served_table_is_a_function_of_the_journal_and_the_config() {
    let first = env_u64("JOURNAL_PROPERTY_SEED", 1);
    let seeds = env_u64("JOURNAL_PROPERTY_SEEDS", 6);
    let steps = env_u64("JOURNAL_PROPERTY_STEPS", 120);
    for seed in first..first + seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut w = World::new();
        let mut b = Some(load(&w.config));
        let mut history = Vec::new();
        for step in 0..steps {
            let Some(op) = w.step(&mut rng, &mut b) else {
                continue;
            };
            history.push(op);
            let builder = b.as_mut().unwrap();
            settle(builder);
            let got = served(builder);
            if got != w.model.apps {
                panic!(
                    "seed {seed}, step {step}: served {got:?}\nmodel {:?} (last {})\njournal:\n{}\nhistory:\n{}",
                    w.model.apps,
                    w.model.last,
                    w.journal_text(),
                    history.join("\n")
                );
            }
        }
    }
}
