//! clusterns-fanout: change-to-delivery latency through `clusterns relay` and NATS JetStream,
//! on 127.0.0.1 only (`perf/fanout.sh` runs it and appends its report to perf/RESULTS.md).
//!
//! It starts a private `nats-server -js` (temp store, free port), writes a journal with
//! `--apps` apps, starts `clusterns relay` on it, and opens `--consumers` ordered JetStream
//! consumers in this process: simulated edges that decode every message as an edge's source
//! does (`feed::nats::message`), without the rest of an edge (the builder's apply and publish,
//! measured elsewhere). Then it appends app moves to the journal at `--rate` changes per second
//! for `--secs` seconds, recording when each line was written, and each consumer records when
//! each change arrived. It reports the latency from the journal write to the delivery at a
//! consumer (p50, p90, p99, max over every change at every consumer), whether every consumer
//! got every change once and in order, and the CPU time the relay, nats-server and the
//! consumers used per 10,000 changes.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;

use clusterns::feed::nats::message::{decode, Message, HEADER_RESET, HEADER_SEQ};

#[derive(Parser)]
#[command(about = "Change-to-delivery latency through clusterns relay and NATS JetStream")]
struct Args {
    /// The clusterns binary (default: `clusterns` beside this one).
    #[arg(long)]
    clusterns: Option<PathBuf>,
    /// The nats-server binary.
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats_server: PathBuf,
    /// Changes per second written to the journal.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of changes.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Simulated edges (ordered consumers in this process).
    #[arg(long, default_value_t = 50)]
    consumers: usize,
    /// Apps in the journal before the moves start.
    #[arg(long, default_value_t = 10_000)]
    apps: u64,
    /// The relay's `batch_wait_ms`.
    #[arg(long, default_value_t = 2)]
    batch_wait_ms: u64,
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A directory of our own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("clusterns-fanout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    (ticks(11) + ticks(12)) / hz
}

fn self_cpu_secs() -> f64 {
    cpu_secs(std::process::id())
}

fn wait_for_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn write_config(dir: &Path, nats_port: u16, batch_wait_ms: u64) -> PathBuf {
    let path = dir.join("relay.toml");
    let clusters: String = (0..8)
        .map(|c| {
            format!(
                "[[cluster]]\nname = \"c{c}\"\nipv4 = [\"192.0.2.{}\"]\n\n",
                c + 1
            )
        })
        .collect();
    std::fs::write(
        &path,
        format!(
            r#"
[feed]
source = "journal"
journal = "journal.log"
poll_interval_ms = 1

[[zone]]
apex = "repl.co"
ns = ["ns.example.org"]
soa = {{ rname = "hostmaster.repl.co" }}

{clusters}
[nats]
servers = ["nats://127.0.0.1:{nats_port}"]
retention_secs = 3600

[relay]
batch_wait_ms = {batch_wait_ms}
snapshot_interval_secs = 3600
"#
        ),
    )
    .expect("write the relay's config");
    path
}

/// What one consumer saw.
#[derive(Default)]
struct Seen {
    changes: u64,
    out_of_order: u64,
    last: u64,
}

fn main() {
    let args = Args::parse();
    let clusterns = args.clusterns.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("this binary's path")
            .with_file_name("clusterns")
    });
    let dir = TempDir::new();
    let nats_port = free_port();
    let _nats = Proc(
        Command::new(&args.nats_server)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-sd",
            ])
            .arg(dir.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", args.nats_server.display())),
    );
    assert!(
        wait_for_port(nats_port, Duration::from_secs(10)),
        "nats-server did not listen"
    );
    let nats_pid = _nats.0.id();

    // The journal: the apps, then the moves.
    let journal = dir.path().join("journal.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&journal).unwrap());
        for i in 1..=args.apps {
            writeln!(f, "{i} set r{i} u{} s{i} c{}", i % 1000, i % 8).unwrap();
        }
    }
    let config = write_config(dir.path(), nats_port, args.batch_wait_ms);
    let relay = Proc(
        Command::new(&clusterns)
            .args(["relay", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("relay.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} relay: {e}", clusterns.display())),
    );
    let relay_pid = relay.0.id();

    let total = args.rate * args.secs;
    let first = args.apps + 1;
    let t0 = Instant::now();
    // Nanoseconds after t0 at which change `first + i` was written (0: not yet).
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let url = format!("nats://127.0.0.1:{nats_port}");
    let (hist, seen, consumer_cpu) = rt.block_on(async {
        let client = async_nats::connect(&url)
            .await
            .expect("connect to nats-server");
        let js = async_nats::jetstream::new(client.clone());
        // The relay creates the stream and publishes the apps: wait for all of them.
        let stream = loop {
            if let Ok(mut s) = js.get_stream("clusterns").await {
                let last = s
                    .info()
                    .await
                    .map(|i| (i.state.messages, i.state.last_sequence));
                if let Ok((messages, last)) = last {
                    if messages > 0 {
                        if let Ok(m) = s.get_raw_message(last).await {
                            // The first load of an empty stream is a snapshot and a reset.
                            let h = m.headers;
                            let seq = h.get(HEADER_SEQ).map(|v| v.as_str().to_string());
                            let reset = h.get(HEADER_RESET).map(|v| v.as_str().to_string());
                            if seq.is_some_and(|v| v.ends_with(&format!("-{}", args.apps)))
                                || reset.is_some_and(|v| v == args.apps.to_string())
                            {
                                break s;
                            }
                        }
                    }
                }
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "the relay did not publish the journal's {} apps within 60 s; its log ends:\n{}",
                    args.apps,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut tasks = Vec::new();
        for _ in 0..args.consumers {
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::push::OrderedConfig {
                    deliver_subject: client.new_inbox(),
                    deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
                    ..Default::default()
                })
                .await
                .expect("an ordered consumer");
            let mut messages = consumer.messages().await.expect("its messages");
            let sent = sent.clone();
            tasks.push(tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut seen = Seen::default();
                while let Some(Ok(m)) = messages.next().await {
                    let now = t0.elapsed().as_nanos() as u64;
                    let header = |name: &str| {
                        m.headers
                            .as_ref()
                            .and_then(|h| h.get(name))
                            .map(|v| v.as_str().to_string())
                    };
                    let seq = header(HEADER_SEQ);
                    let reset = header(HEADER_RESET);
                    let Ok(Message::Changes { changes, .. }) =
                        decode(seq.as_deref(), reset.as_deref(), &m.payload)
                    else {
                        continue;
                    };
                    for c in changes {
                        if c.seq < first {
                            continue;
                        }
                        if seen.last != 0 && c.seq != seen.last + 1 {
                            seen.out_of_order += 1;
                        }
                        seen.last = c.seq;
                        seen.changes += 1;
                        let at = sent[(c.seq - first) as usize].load(Ordering::Acquire);
                        if at > 0 && now > at {
                            let _ = hist.record((now - at) / 1000);
                        }
                    }
                    if seen.last >= first + total - 1 {
                        break;
                    }
                }
                (hist, seen)
            }));
        }
        let cpu_before = self_cpu_secs();
        // The writer, on its own thread: `rate` lines per second in 1 ms ticks.
        let writer = {
            let sent = sent.clone();
            let journal = journal.clone();
            let (rate, apps) = (args.rate, args.apps);
            std::thread::spawn(move || {
                let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
                let start = Instant::now();
                let mut written = 0u64;
                let mut line = String::new();
                while written < total {
                    let due =
                        ((start.elapsed().as_micros() as u64 * rate) / 1_000_000 + 1).min(total);
                    line.clear();
                    let from = written;
                    while written < due {
                        let seq = first + written;
                        let app = 1 + written % apps;
                        line.push_str(&format!(
                            "{seq} set r{app} u{} s{app} c{}\n",
                            app % 1000,
                            (app + seq) % 8
                        ));
                        written += 1;
                    }
                    if !line.is_empty() {
                        f.write_all(line.as_bytes()).unwrap();
                        let now = t0.elapsed().as_nanos() as u64;
                        for i in from..written {
                            sent[i as usize].store(now, Ordering::Release);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        };
        let cpu_relay_before = cpu_secs(relay_pid);
        let cpu_nats_before = cpu_secs(nats_pid);
        let deadline = Duration::from_secs(args.secs + 30);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut seen = Vec::new();
        for t in tasks {
            match tokio::time::timeout(deadline, t).await {
                Ok(Ok((h, s))) => {
                    hist.add(&h).unwrap();
                    seen.push(s);
                }
                _ => seen.push(Seen::default()),
            }
        }
        writer.join().expect("the writer");
        let cpu = (
            cpu_secs(relay_pid) - cpu_relay_before,
            cpu_secs(nats_pid) - cpu_nats_before,
            self_cpu_secs() - cpu_before,
        );
        (hist, seen, cpu)
    });
    drop(relay);
    let complete = seen
        .iter()
        .filter(|s| s.changes == total && s.out_of_order == 0)
        .count();
    let per_10k = |cpu: f64| cpu / (total as f64 / 10_000.0);
    println!(
        "| {} changes/s x {} s | {} consumers | {complete} complete and in order | p50 {:.2} ms | p90 {:.2} ms | p99 {:.2} ms | max {:.2} ms | relay {:.3} CPU s per 10k changes | nats-server {:.3} | consumers {:.3} |",
        args.rate,
        args.secs,
        args.consumers,
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.90) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        per_10k(consumer_cpu.0),
        per_10k(consumer_cpu.1),
        per_10k(consumer_cpu.2),
    );
    if complete != args.consumers {
        for (i, s) in seen.iter().enumerate() {
            if s.changes != total || s.out_of_order != 0 {
                eprintln!(
                    "consumer {i}: {} of {total} changes, {} out of order, last {}",
                    s.changes, s.out_of_order, s.last
                );
            }
        }
        std::process::exit(1);
    }
}
