//! Live-update benchmark: table memory per entry, checkpoint write/load times, and
//! change-to-visible latency (p50/p99/max) and query throughput while 10,000 changes/s stream
//! into the journal, at 1M and 10M apps.
//!
//! `cargo bench --bench feed` (sizes from `FEED_BENCH_SIZES`, default `1000000,10000000`;
//! seconds per phase from `FEED_BENCH_SECS`, default 5). Prints a markdown table. Throughput
//! under changes is measured in alternating quiet / changing windows, so that drifts of a
//! shared machine cancel, twice: with one query thread on CPU 0 and the feed side (builder,
//! writer, a watcher timing visibility) on CPU 1, and with a query thread on every CPU as the
//! server runs, the builder and writer floating among them (the capacity the server loses).
//! `FEED_BENCH_PIN=0` pins nothing; `FEED_BENCH_CONTROL=<duty %>` replaces the changes by a
//! busy loop of that duty, to show what any work on the feed side costs the queries.
//! `FEED_BENCH_FOLDS=<n>` (default 3): folds measured under load, the median reported.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use clusterns::config::Config;
use clusterns::feed::checkpoint::{self, Position};
use clusterns::feed::fold::RunningFold;
use clusterns::feed::Builder;
use clusterns::query::{respond, Transport};
use clusterns::synth;
use clusterns::table::Table;

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

/// CPU seconds (user + system) used so far by this process's threads named `name`.
fn thread_cpu_s(name: &str) -> f64 {
    let mut ticks = 0u64;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that ends the command: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 12 {
            ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
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

/// Answers queries in batches of 32 (one snapshot load per batch) until `stop`, keeping the
/// number answered so far in `count`.
fn query_loop(
    shared: clusterns::snapshot::SharedSnapshot,
    packets: Arc<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    count: Arc<Counter>,
    first: usize,
) {
    let mut out = vec![0u8; 4096];
    let mut n = 0u64;
    let mut i = first % packets.len();
    while !stop.load(Ordering::Relaxed) {
        let snap = shared.load();
        for _ in 0..32 {
            let h = respond(&snap, &packets[i], &mut out, Transport::Udp);
            assert!(h.len > 0);
            i = (i + 1) % packets.len();
        }
        n += 32;
        count.0.store(n, Ordering::Relaxed);
    }
}

/// Whether the bench pins threads (`FEED_BENCH_PIN`, default on where there are at least
/// two CPUs).
fn pinning() -> bool {
    std::env::var("FEED_BENCH_PIN").map_or(cpus() >= 2, |v| v != "0")
}

/// CPUs online. Not `available_parallelism`: that counts the calling thread's affinity, so a
/// thread started from one pinned to CPU 1 would see one CPU and pin nothing.
fn cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Pins thread `tid` (0: the calling one; threads it starts later inherit it) to `cpus`, when
/// the bench pins.
fn pin_tid(tid: i32, cpus: &[usize]) {
    if !pinning() {
        return;
    }
    // SAFETY: `set` is a plain bit set owned by this frame; sched_setaffinity only changes
    // the affinity of a thread of this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Pins the calling thread to CPU `cpu`.
fn pin(cpu: usize) {
    if cpu < cpus() {
        pin_tid(0, &[cpu]);
    }
}

/// Lets the calling thread and the builder run on every CPU.
fn unpin_feed_side() {
    let all: Vec<usize> = (0..cpus()).collect();
    pin_tid(0, &all);
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "builder" {
            if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()) {
                pin_tid(tid, &all);
            }
        }
    }
}

/// CPU seconds the calling thread has used.
fn own_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid and writable.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// A counter on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Counter(AtomicU64);

/// Running query threads, one pinned to each of a list of CPUs.
struct Queries {
    stop: Arc<AtomicBool>,
    counts: Vec<Arc<Counter>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Queries {
    fn start(
        shared: &clusterns::snapshot::SharedSnapshot,
        packets: &Arc<Vec<Vec<u8>>>,
        cpus: &[usize],
    ) -> Queries {
        let stop = Arc::new(AtomicBool::new(false));
        let mut counts = Vec::new();
        let mut threads = Vec::new();
        for (k, &cpu) in cpus.iter().enumerate() {
            let count = Arc::new(Counter::default());
            let (s, p, st, c) = (shared.clone(), packets.clone(), stop.clone(), count.clone());
            threads.push(std::thread::spawn(move || {
                pin(cpu);
                query_loop(s, p, st, c, k * 997)
            }));
            counts.push(count);
        }
        Queries {
            stop,
            counts,
            threads,
            started: Instant::now(),
        }
    }

    /// (queries answered so far, the threads' CPU seconds so far).
    fn sample(&self) -> (u64, f64) {
        use std::os::unix::thread::JoinHandleExt;
        let mut cpu = 0.0;
        for t in &self.threads {
            let mut clock: libc::clockid_t = 0;
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: the thread is alive (it is joined only in `stop`), `clock` and `ts`
            // are valid and writable.
            unsafe {
                libc::pthread_getcpuclockid(t.as_pthread_t(), &mut clock);
                libc::clock_gettime(clock, &mut ts);
            }
            cpu += ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
        }
        let n = self
            .counts
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum();
        (n, cpu)
    }

    /// Stops the threads: queries per second of wall time and per CPU-second.
    fn stop(self) -> (f64, f64) {
        let (n, cpu) = self.sample();
        let wall = self.started.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (n as f64 / wall, n as f64 / cpu.max(1e-9))
    }
}

/// The table work per change alone (no journal, no threads): `changes` moves of apps spread
/// over the table, a snapshot-like clone taken every 10 (as the builder publishes per batch)
/// and kept for 20 clones (as it retires them). Returns microseconds per change.
fn apply_cost(table: &mut Table, ids: &[(String, String, String)], changes: usize) -> f64 {
    let mut retired = std::collections::VecDeque::new();
    let t = Instant::now();
    for seq in 0..changes {
        let (id, user, slug) = &ids[seq % ids.len()];
        table.upsert(id, user, slug, (seq % 8) as u16).unwrap();
        if seq % 10 == 9 {
            retired.push_back(Arc::new(table.clone()));
            if retired.len() > 20 {
                retired.pop_front();
            }
        }
    }
    t.elapsed().as_secs_f64() * 1e6 / changes as f64
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
    one: Stream,
    all: Stream,
    qps_overlay: f64,
    overlay_len: usize,
    apply_us: f64,
    /// A fold of `fold_changes` changes, and a checkpoint, each under query load.
    fold: Background,
    fold_changes: usize,
    ckpt_load: Background,
    ckpt_interval_s: f64,
    /// Reading a checkpoint whose overlay is as large as it gets before a fold.
    ckpt_overlay_load_s: f64,
}

/// Background work (a fold, a checkpoint) measured under query load on every CPU.
struct Background {
    /// Its duration.
    secs: f64,
    /// The query threads' q/s while it ran over their q/s in the second before and after.
    qps_ratio: f64,
}

impl Background {
    /// The share of the query threads' capacity it costs over time when it runs once every
    /// `period_s`: the q/s lost while it runs, times the share of time it runs.
    fn amortized_loss(&self, period_s: f64) -> f64 {
        (1.0 - self.qps_ratio).max(0.0) * (self.secs / period_s.max(1e-9)).min(1.0)
    }
}

/// Runs `work` (which returns once the background work is done) while `queries` answer, and
/// compares their q/s meanwhile with the second before and the second after.
fn under_load(what: &str, queries: &Queries, work: impl FnOnce()) -> Background {
    let rate = |a: (u64, Instant), b: (u64, Instant)| {
        (b.0 - a.0) as f64 / b.1.duration_since(a.1).as_secs_f64()
    };
    let s0 = (queries.sample().0, Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let s1 = (queries.sample().0, Instant::now());
    work();
    let s2 = (queries.sample().0, Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let s3 = (queries.sample().0, Instant::now());
    let b = Background {
        secs: s2.1.duration_since(s1.1).as_secs_f64(),
        qps_ratio: rate(s1, s2) / ((rate(s0, s1) + rate(s2, s3)) / 2.0),
    };
    eprintln!(
        "{what}: {:.2} s under load; q/s {:.0} before, {:.0} during, {:.0} after (ratio {:.3})",
        b.secs,
        rate(s0, s1),
        rate(s1, s2),
        rate(s2, s3),
        b.qps_ratio
    );
    b
}

/// What a stream of changes did to the query threads.
struct Stream {
    /// Mean q/s of the quiet and of the change windows.
    qps_quiet: f64,
    qps_changes: f64,
    /// Median over change windows of their q/s (and q/s per query-thread CPU-second) over
    /// the mean of the quiet windows on either side.
    ratio_wall: f64,
    ratio_cpu: f64,
    changes_per_s: f64,
    /// Share of one core used in the change windows by the builder and by the writer, and by
    /// the builder in the quiet windows (polling an unchanged journal).
    builder_cpu: f64,
    builder_quiet: f64,
    writer_cpu: f64,
    /// Change-to-visible latencies (when watched), sorted.
    lat: Vec<u64>,
}

/// Runs query threads on `query_cpus` while this thread alternates quiet windows and windows
/// in which 10,000 changes/s are appended to the journal (1 ms batches of 10): Q C Q C ... Q.
/// Each change window's q/s is compared with the mean of the quiet windows on either side, so
/// that slow drifts of this shared machine's speed cancel out. With `watch`, a thread notes
/// when each change becomes visible. `FEED_BENCH_CONTROL=<duty %>` replaces the changes by a
/// busy loop of that duty.
#[allow(clippy::too_many_arguments)]
fn stream(
    shared: &clusterns::snapshot::SharedSnapshot,
    packets: &Arc<Vec<Vec<u8>>>,
    journal: &std::path::Path,
    sample_ids: &[(String, String, String)],
    seq: &mut usize,
    secs: u64,
    query_cpus: &[usize],
    watch: bool,
) -> Stream {
    const WINDOW: Duration = Duration::from_millis(200);
    let windows = (secs * 1000 / WINDOW.as_millis() as u64).max(1) as usize;
    let queries = Queries::start(shared, packets, query_cpus);
    let stop = Arc::new(AtomicBool::new(false));
    let per_window = (WINDOW.as_millis() * 10) as usize;
    let total = windows * per_window;
    let first_seq = *seq;
    let written: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let watcher = watch.then(|| {
        let (s, w, st) = (shared.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(total);
            let mut next = 0usize;
            while next < total && !st.load(Ordering::Relaxed) {
                let seen = (s.load().last_seq as usize).saturating_sub(first_seq);
                let now = epoch.elapsed().as_micros() as u64;
                while next < seen.min(total) {
                    let at = w[next].load(Ordering::Acquire);
                    lat.push(now.saturating_sub(at));
                    next += 1;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            lat
        })
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(journal)
        .unwrap();
    let builder_cpu0 = thread_cpu_s("builder");
    let control: Option<u64> = std::env::var("FEED_BENCH_CONTROL")
        .ok()
        .and_then(|v| v.parse().ok());
    // `FEED_BENCH_CONTROL_MEMORY=1`: the control loop reads memory instead of spinning.
    let control_memory: Option<Vec<u64>> = std::env::var("FEED_BENCH_CONTROL_MEMORY")
        .is_ok_and(|v| v == "1")
        .then(|| {
            let n = 8 << 20;
            (0..n as u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40)
                .collect()
        });
    let mut walk = 0u64;
    let mut writer_cpu = 0.0;
    let mut line = String::new();
    // (queries, query-thread CPU seconds, wall seconds) per window, quiet ones at even indexes.
    let mut samples: Vec<(f64, f64, f64)> = Vec::with_capacity(2 * windows + 1);
    let mut change_s = 0.0;
    let mut n = 0usize;
    // The quiet windows write the same lines at the same pace to a file the server does not
    // read: the writer is the load generator, not the server, and its cost is in both.
    let mut decoy = std::fs::File::create(journal.with_extension("decoy")).unwrap();
    let mut builder_quiet = 0.0;
    let mut quiet_s = 0.0;
    let mut last = (queries.sample(), Instant::now());
    for w in 0..=2 * windows {
        let start = Instant::now();
        let quiet = w % 2 == 0;
        let cpu0 = own_cpu_s();
        let builder0 = thread_cpu_s("builder");
        let first = n;
        if !quiet {
            if let Some(duty) = control {
                // Control run: no changes; the feed side's CPU is replaced by a busy loop for
                // `duty` of every millisecond.
                let busy = Duration::from_micros(duty * 10);
                while start.elapsed() < WINDOW {
                    let slot = Instant::now();
                    while slot.elapsed() < busy {
                        match &control_memory {
                            // Dependent random reads over 64 MiB: work that, like the
                            // builder's, waits on memory instead of pausing.
                            Some(mem) => {
                                for _ in 0..64 {
                                    walk = mem[walk as usize % mem.len()];
                                }
                            }
                            None => std::hint::spin_loop(),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1).saturating_sub(slot.elapsed()));
                }
                n += per_window;
            }
        }
        let mut k = 0;
        while k < per_window && (quiet || n < first + per_window) {
            let due = start + Duration::from_micros((k as u64) * 100);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            line.clear();
            let batch_at = epoch.elapsed().as_micros() as u64;
            for _ in 0..10 {
                let (id, user, slug) = &sample_ids[(first_seq + n) % sample_ids.len()];
                use std::fmt::Write as _;
                writeln!(
                    line,
                    "{} set {id} {user} {slug} {}",
                    first_seq + n + 1,
                    synth::cluster_name((if quiet { k } else { first_seq + n } % 8) as u16)
                )
                .unwrap();
                if !quiet {
                    written[n].store(batch_at, Ordering::Release);
                    n += 1;
                }
                k += 1;
            }
            if quiet {
                decoy.write_all(line.as_bytes()).unwrap();
            } else {
                f.write_all(line.as_bytes()).unwrap();
            }
        }
        if quiet {
            // Windows end on time, whatever the writer took.
            if let Some(rest) = (start + WINDOW).checked_duration_since(Instant::now()) {
                std::thread::sleep(rest);
            }
            builder_quiet += thread_cpu_s("builder") - builder0;
            quiet_s += start.elapsed().as_secs_f64();
        } else {
            change_s += start.elapsed().as_secs_f64();
            writer_cpu += own_cpu_s() - cpu0;
        }
        let now = (queries.sample(), Instant::now());
        samples.push((
            (now.0 .0 - last.0 .0) as f64,
            now.0 .1 - last.0 .1,
            now.1.duration_since(last.1).as_secs_f64(),
        ));
        last = now;
    }
    let builder_cpu = (thread_cpu_s("builder") - builder_cpu0 - builder_quiet) / change_s;
    let builder_quiet = builder_quiet / quiet_s;
    if control.is_none() {
        *seq += total;
    }
    // Let the last changes land, then stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while control.is_none() && (shared.load().last_seq as usize) < *seq && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    queries.stop();
    let mut lat = watcher.map(|w| w.join().unwrap()).unwrap_or_default();
    lat.sort_unstable();
    if control.is_none() && watch {
        assert_eq!(lat.len(), total, "every change became visible");
    }
    let rate = |(q, _, wall): (f64, f64, f64)| q / wall;
    let per_cpu = |(q, cpu, _): (f64, f64, f64)| q / cpu.max(1e-9);
    let ratios = |f: &dyn Fn((f64, f64, f64)) -> f64| -> f64 {
        let mut r: Vec<f64> = (1..samples.len())
            .step_by(2)
            .map(|i| f(samples[i]) / ((f(samples[i - 1]) + f(samples[i + 1])) / 2.0))
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let mean = |f: &dyn Fn((f64, f64, f64)) -> f64, parity: usize| -> f64 {
        let v: Vec<f64> = samples
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, &s)| f(s))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    Stream {
        qps_quiet: mean(&rate, 0),
        qps_changes: mean(&rate, 1),
        ratio_wall: ratios(&rate),
        ratio_cpu: ratios(&per_cpu),
        changes_per_s: total as f64 / change_s,
        builder_cpu,
        builder_quiet,
        writer_cpu: writer_cpu / change_s,
        lat,
    }
}

fn run(n: usize, secs: u64) -> Row {
    // The feed side (builder, journal writer, watcher) on CPU 1, the measured query thread on
    // CPU 0: what is measured is the interference through memory and caches; the builder's
    // own CPU time is reported beside it.
    pin(1);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    std::fs::write(&journal, "").unwrap();
    let cfg_path = dir.path().join("clusterns.toml");
    // `FEED_BENCH_POLL_MS`: the builder's batching interval (default: the server's).
    let poll = std::env::var("FEED_BENCH_POLL_MS")
        .map(|ms| format!("\npoll_interval_ms = {ms}"))
        .unwrap_or_default();
    let cfg_text = synth::config_toml(8, "journal.log").replace(
        "journal = \"journal.log\"",
        &format!("journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"{poll}"),
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

    let apply_us = {
        let mut t = table.clone();
        apply_cost(&mut t, &sample_ids, 50_000)
    };
    // What a fold costs (on the fold thread): the overlay the builder folds at, a tenth of
    // the apps (at least 100,000) moved, folded into a new base, while a query thread on
    // every CPU answers from the table being folded (as in the server, where the fold thread
    // floats among the query threads): its duration, and the query threads' q/s while it
    // runs against the q/s in the second before and after it. Then, the same way, what
    // writing a checkpoint of that table costs (the builder has one written every
    // `checkpoint_interval_secs` while changes arrive).
    // The queries every query thread sends, round robin.
    let packets: Arc<Vec<Vec<u8>>> = Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(i, nm)| packet(nm, i as u16))
            .collect(),
    );
    let fold_at = (n / 10).max(100_000).min(n);
    let (fold, ckpt_load, ckpt_overlay_load_s) = {
        let mut t = table.clone();
        let apps = synth::apps(n, 8, 7);
        for (i, a) in apps
            .iter()
            .step_by((n / fold_at).max(1))
            .take(fold_at)
            .enumerate()
        {
            t.upsert(
                a.id.as_str(),
                a.user.as_str(),
                a.slug.as_str(),
                (a.cluster + 1 + i as u16) % 8,
            )
            .unwrap();
        }
        drop(apps);
        let fold_shared = clusterns::snapshot::shared(clusterns::snapshot::Snapshot::new(
            Arc::new(clusterns::snapshot::Served::from_config(&config)),
            Arc::new(t.clone()),
            0,
        ));
        unpin_feed_side();
        let all_cpus: Vec<usize> = (0..cpus()).collect();
        let queries = Queries::start(&fold_shared, &packets, &all_cpus);
        std::thread::sleep(Duration::from_millis(300));
        // `FEED_BENCH_FOLDS` folds (default 3), each as the builder runs one (on a thread of
        // its own, at its priority); the median by cost is reported.
        let rounds: usize = std::env::var("FEED_BENCH_FOLDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1);
        let mut folds: Vec<Background> = (0..rounds)
            .map(|_| {
                under_load("fold", &queries, || {
                    let running = RunningFold::start(t.clone()).unwrap();
                    while !running.is_finished() {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let folded = running.finish().unwrap();
                    assert_eq!(folded.len(), n);
                    assert!(folded.overlay().is_empty());
                })
            })
            .collect();
        folds.sort_by(|a, b| a.amortized_loss(1.0).total_cmp(&b.amortized_loss(1.0)));
        let fold = folds.swap_remove(rounds / 2);
        // A checkpoint of the same table (overlay and all), written as the builder has one
        // written: on a thread of its own.
        let ckpt = dir.path().join("load.ckpt");
        let clusters: Vec<String> = (0..8).map(synth::cluster_name).collect();
        let ckpt_load = under_load("checkpoint", &queries, || {
            let (t, ckpt) = (t.clone(), ckpt.clone());
            std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || {
                    let cpu = own_cpu_s();
                    checkpoint::write(&ckpt, &t, Position::default(), &clusters).unwrap();
                    eprintln!("checkpoint thread: {:.2} CPU s", own_cpu_s() - cpu);
                })
                .unwrap()
                .join()
                .unwrap();
        });
        queries.stop();
        pin(1);
        // Start-up's main part from that checkpoint (a full overlay to load and check).
        let started = Instant::now();
        let loaded = checkpoint::read(&ckpt).unwrap();
        let load_s = started.elapsed().as_secs_f64();
        assert_eq!(loaded.table.len(), n);
        drop(loaded);
        std::fs::remove_file(&ckpt).unwrap();
        (fold, ckpt_load, load_s)
    };
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

    // Phase 1: queries, no changes.
    let queries = Queries::start(&shared, &packets, &[0]);
    std::thread::sleep(Duration::from_secs(secs));
    let (qps_idle, _) = queries.stop();

    // Phase 2: one query thread on CPU 0; the feed side (builder, writer, a watcher that
    // notes when each change becomes visible) on CPU 1.
    let mut seq = 0usize;
    let one = stream(
        &shared,
        &packets,
        &journal,
        &sample_ids,
        &mut seq,
        secs,
        &[0],
        true,
    );
    // Phase 2b: a query thread on every CPU, as the server runs; the builder and the writer
    // float among them, and nothing watches (that would be work no server does).
    unpin_feed_side();
    let all_cpus: Vec<usize> = (0..cpus()).collect();
    let all = stream(
        &shared,
        &packets,
        &journal,
        &sample_ids,
        &mut seq,
        secs,
        &all_cpus,
        false,
    );
    pin(1);

    // Phase 3: queries again, no changes, with the overlay the stream left behind.
    let queries = Queries::start(&shared, &packets, &[0]);
    std::thread::sleep(Duration::from_secs(secs));
    let (qps_overlay, _) = queries.stop();
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
        one,
        all,
        qps_overlay,
        overlay_len,
        apply_us,
        fold,
        fold_changes: fold_at,
        ckpt_load,
        ckpt_interval_s: config.feed.checkpoint_interval_secs as f64,
        ckpt_overlay_load_s,
    }
}
/// The server's checkpoint interval with the configuration the bench runs.
fn default_checkpoint_interval() -> u64 {
    Config::parse(
        std::path::Path::new("clusterns.toml"),
        &synth::config_toml(8, "journal.log"),
    )
    .unwrap()
    .feed
    .checkpoint_interval_secs
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // The builder's warnings (slow steps, rejected changes) on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLUSTERNS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let sizes: Vec<usize> = std::env::var("FEED_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u64 = std::env::var("FEED_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("| apps | build s | heap B/app | bench RSS B/app | server RSS B/app | ckpt write s | ckpt MB | start-up from ckpt s | reading a ckpt with a full overlay s | q/s idle | 1 query thread: q/s quiet | q/s changes | ratio | ratio per CPU-s | builder CPU % (quiet) | writer CPU % | {} query threads: q/s quiet | q/s changes | ratio | builder CPU % (quiet) | writer CPU % | q/s after (overlay) | overlay apps | changes/s | table us/change | fold s (per change folded us) | q/s while folding | fold loss % (amortized) | checkpoint s under load | q/s while writing it | checkpoint loss % (every {} s) | {} query threads: ratio incl. folds and checkpoints | visible p50 us | p99 us | max us |", cpus(), default_checkpoint_interval(), cpus());
    println!(
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for n in sizes {
        let r = run(n, secs);
        let (one, all) = (&r.one, &r.all);
        // One fold per `fold_changes` changes at the stream's rate; one checkpoint per interval.
        let fold_loss = r
            .fold
            .amortized_loss(r.fold_changes as f64 / all.changes_per_s.max(1.0));
        let ckpt_loss = r.ckpt_load.amortized_loss(r.ckpt_interval_s);
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {:.1} ({:.1}) | {:.1} | {:.0} | {:.0} | {:.3} | {:.1} ({:.1}) | {:.1} | {:.0} | {} | {:.0} | {:.1} | {:.2} ({:.1}) | {:.3} | {:.2} | {:.2} | {:.3} | {:.2} | {:.3} | {} | {} | {} |",
            r.apps,
            r.build_s,
            r.heap_per_entry,
            r.rss_per_entry,
            r.server_per_entry,
            r.ckpt_write_s,
            r.ckpt_mb,
            r.startup_s,
            r.ckpt_overlay_load_s,
            r.qps_idle,
            one.qps_quiet,
            one.qps_changes,
            one.ratio_wall,
            one.ratio_cpu,
            one.builder_cpu * 100.0,
            one.builder_quiet * 100.0,
            one.writer_cpu * 100.0,
            all.qps_quiet,
            all.qps_changes,
            all.ratio_wall,
            all.builder_cpu * 100.0,
            all.builder_quiet * 100.0,
            all.writer_cpu * 100.0,
            r.qps_overlay,
            r.overlay_len,
            one.changes_per_s,
            r.apply_us,
            r.fold.secs,
            r.fold.secs * 1e6 / r.fold_changes as f64,
            r.fold.qps_ratio,
            fold_loss * 100.0,
            r.ckpt_load.secs,
            r.ckpt_load.qps_ratio,
            ckpt_loss * 100.0,
            all.ratio_wall - fold_loss - ckpt_loss,
            percentile(&one.lat, 0.5),
            percentile(&one.lat, 0.99),
            one.lat.last().copied().unwrap_or(0)
        );
    }
}
