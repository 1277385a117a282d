//! Live-update benchmark: table memory per entry, checkpoint write/load times, and
//! change-to-visible latency (p50/p99/max) and query throughput while 10,000 changes/s stream
//! into the journal, at 1M and 10M apps.
//!
//! `cargo bench --bench feed` (sizes from `FEED_BENCH_SIZES`, default `1000000,10000000`;
//! seconds per phase from `FEED_BENCH_SECS`, default 5). Prints a markdown table.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use clusterns::config::Config;
use clusterns::feed::checkpoint::{self, Position};
use clusterns::feed::Builder;
use clusterns::synth;
use clusterns::table::Table;
use clusterns::wire::{respond, Transport};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn trim() {
    // SAFETY: malloc_trim only returns free heap memory to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Starts the real server on `config` and returns its resident memory once it answers.
fn server_rss(config: &std::path::Path) -> u64 {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .env("CLUSTERNS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start clusterns");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "{line}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    kb * 1024
}

fn packet(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Answers queries in batches of 32 (one snapshot load per batch) until `stop`; returns the
/// number answered.
fn query_loop(
    shared: clusterns::snapshot::SharedSnapshot,
    packets: Arc<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut out = vec![0u8; 4096];
    let mut n = 0u64;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let snap = shared.load();
        for _ in 0..32 {
            let h = respond(&snap, &packets[i], &mut out, Transport::Udp);
            assert!(h.len > 0);
            i = (i + 1) % packets.len();
        }
        n += 32;
    }
    n
}

struct Row {
    apps: usize,
    build_s: f64,
    heap_per_entry: f64,
    rss_per_entry: f64,
    server_per_entry: f64,
    ckpt_write_s: f64,
    ckpt_mb: f64,
    startup_s: f64,
    qps_idle: f64,
    qps_changes: f64,
    qps_overlay: f64,
    overlay_len: usize,
    changes_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

fn run(n: usize, secs: u64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    std::fs::write(&journal, "").unwrap();
    let cfg_path = dir.path().join("clusterns.toml");
    let cfg_text = synth::config_toml(8, "journal.log").replace(
        "journal = \"journal.log\"",
        "journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"\npoll_interval_ms = 1",
    );
    std::fs::write(&cfg_path, &cfg_text).unwrap();
    let config = Arc::new(Config::load(&cfg_path).unwrap());

    trim();
    let rss0 = rss_bytes();
    let t = Instant::now();
    let (table, sample_ids, names) = {
        let apps = synth::apps(n, 8, 7);
        let table = Table::build(&apps).unwrap();
        let ids: Vec<(String, String, String)> = apps
            .iter()
            .step_by((n / 100_000).max(1))
            .map(|a| (a.id.to_string(), a.user.to_string(), a.slug.to_string()))
            .collect();
        let names: Vec<String> = apps
            .iter()
            .step_by((n / 4096).max(1))
            .map(|a| format!("{}.{}.repl.co", a.slug, a.user))
            .collect();
        (table, ids, names)
    };
    let build_s = t.elapsed().as_secs_f64();
    trim();
    let rss1 = rss_bytes();
    let heap_per_entry = table.heap_bytes() as f64 / n as f64;
    let rss_per_entry = rss1.saturating_sub(rss0) as f64 / n as f64;

    let ckpt = dir.path().join("table.ckpt");
    let t = Instant::now();
    let clusters: Vec<String> = (0..8).map(synth::cluster_name).collect();
    checkpoint::write(&ckpt, &table, Position::default(), &clusters).unwrap();
    let ckpt_write_s = t.elapsed().as_secs_f64();
    let ckpt_mb = std::fs::metadata(&ckpt).unwrap().len() as f64 / 1e6;
    drop(table);
    trim();
    // Resident memory of the real server holding the table (loaded from the checkpoint),
    // less that of the same server with an empty table.
    let server_with = server_rss(&cfg_path);
    let empty_dir = tempfile::tempdir().unwrap();
    let empty_cfg = empty_dir.path().join("clusterns.toml");
    std::fs::write(empty_dir.path().join("journal.log"), "").unwrap();
    std::fs::write(&empty_cfg, &cfg_text).unwrap();
    let server_empty = server_rss(&empty_cfg);
    let server_per_entry = server_with.saturating_sub(server_empty) as f64 / n as f64;

    // Start-up from the checkpoint, as the server does it.
    let t = Instant::now();
    let builder = Builder::load(config.clone()).unwrap();
    let startup_s = t.elapsed().as_secs_f64();
    assert_eq!(builder.table().len(), n);
    let shared = builder.shared();
    let handle = builder.spawn().unwrap();

    let packets: Arc<Vec<Vec<u8>>> = Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(i, nm)| packet(nm, i as u16))
            .collect(),
    );

    // Phase 1: queries, no changes.
    let stop = Arc::new(AtomicBool::new(false));
    let q = {
        let (s, p, st) = (shared.clone(), packets.clone(), stop.clone());
        std::thread::spawn(move || query_loop(s, p, st))
    };
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let qps_idle = q.join().unwrap() as f64 / secs as f64;

    // Phase 2: queries while 10,000 changes/s are appended in 1 ms batches of 10.
    let stop = Arc::new(AtomicBool::new(false));
    let q = {
        let (s, p, st) = (shared.clone(), packets.clone(), stop.clone());
        std::thread::spawn(move || query_loop(s, p, st))
    };
    let total = (secs * 10_000) as usize;
    let written: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let watcher = {
        let (s, w, st) = (shared.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(total);
            let mut next = 0usize;
            while next < total && !st.load(Ordering::Relaxed) {
                let seen = s.load().last_seq as usize;
                let now = epoch.elapsed().as_micros() as u64;
                while next < seen.min(total) {
                    let at = w[next].load(Ordering::Acquire);
                    lat.push(now.saturating_sub(at));
                    next += 1;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            lat
        })
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    let start = Instant::now();
    let mut seq = 0usize;
    let mut line = String::new();
    while seq < total {
        let due = start + Duration::from_micros((seq as u64) * 100);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        line.clear();
        let batch_at = epoch.elapsed().as_micros() as u64;
        for _ in 0..10 {
            let (id, user, slug) = &sample_ids[seq % sample_ids.len()];
            use std::fmt::Write as _;
            writeln!(
                line,
                "{} set {id} {user} {slug} {}",
                seq + 1,
                synth::cluster_name((seq % 8) as u16)
            )
            .unwrap();
            written[seq].store(batch_at, Ordering::Release);
            seq += 1;
        }
        f.write_all(line.as_bytes()).unwrap();
    }
    let stream_s = start.elapsed().as_secs_f64();
    // Let the last changes land, then stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (shared.load().last_seq as usize) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let qps_changes = q.join().unwrap() as f64 / start.elapsed().as_secs_f64();
    let mut lat = watcher.join().unwrap();
    lat.sort_unstable();
    assert_eq!(lat.len(), total, "every change became visible");

    // Phase 3: queries again, no changes, with the overlay the stream left behind.
    let stop = Arc::new(AtomicBool::new(false));
    let q = {
        let (s, p, st) = (shared.clone(), packets.clone(), stop.clone());
        std::thread::spawn(move || query_loop(s, p, st))
    };
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let qps_overlay = q.join().unwrap() as f64 / secs as f64;
    let overlay_len = shared.load().table.overlay().len();
    drop(handle);

    Row {
        apps: n,
        build_s,
        heap_per_entry,
        rss_per_entry,
        server_per_entry,
        ckpt_write_s,
        ckpt_mb,
        startup_s,
        qps_idle,
        qps_changes,
        qps_overlay,
        overlay_len,
        changes_per_s: total as f64 / stream_s,
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
        max_us: *lat.last().unwrap_or(&0),
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("FEED_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u64 = std::env::var("FEED_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("| apps | build s | heap B/app | bench RSS B/app | server RSS B/app | ckpt write s | ckpt MB | start-up from ckpt s | q/s idle | q/s during changes | ratio | q/s after (overlay) | overlay apps | changes/s | visible p50 us | p99 us | max us |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let r = run(n, secs);
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.3} | {:.0} | {} | {:.0} | {} | {} | {} |",
            r.apps,
            r.build_s,
            r.heap_per_entry,
            r.rss_per_entry,
            r.server_per_entry,
            r.ckpt_write_s,
            r.ckpt_mb,
            r.startup_s,
            r.qps_idle,
            r.qps_changes,
            r.qps_changes / r.qps_idle,
            r.qps_overlay,
            r.overlay_len,
            r.changes_per_s,
            r.p50_us,
            r.p99_us,
            r.max_us
        );
    }
}
