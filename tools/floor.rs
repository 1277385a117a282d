//! `clusterns-floor`: the physical floor of this machine's UDP packet path, for `perf/`.
//!
//! It does what a DNS server's UDP path cannot avoid and nothing else: N workers, each with
//! its own SO_REUSEPORT socket, receive datagrams in batches of 32 with `recvmmsg` and answer
//! every one that is at least a DNS header long with the same pre-built response (two A
//! records for `floor.repl.co`, 63 bytes) carrying the query's ID, sent back in one `sendmmsg`
//! per batch: the same batched syscalls, buffers and socket options as the server
//! (`clusterns::server::batch` and `clusterns::server::udp_socket`, shared with
//! `src/server/udp.rs`), and the same receive coalescing, with no decoding, lookup or encoding. The CPU a real server spends
//! per query, divided by this one's, says how far above the floor it is.
//!
//! ```text
//! clusterns-floor --listen 127.0.0.1:5399 --threads 1
//! ```
//!
//! Prints `clusterns-floor: listening on ADDR` once bound; stops on SIGTERM or SIGINT and
//! prints how many datagrams it answered.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use clusterns::server::batch::{Datagrams, BATCH};
use clusterns::server::coalesce::Coalescer;
use clusterns::server::{free_port, udp_socket};

#[derive(Parser)]
#[command(
    name = "clusterns-floor",
    version,
    about = "Answer every UDP datagram with a fixed DNS response (recvmmsg/sendmmsg): the packet path's floor"
)]
struct Args {
    /// The address to answer on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:5399")]
    listen: SocketAddr,
    /// Worker threads, each with its own SO_REUSEPORT socket.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Receive coalescing wait in microseconds, as `server.udp_coalesce_us` (0: off).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    coalesce_us: u32,
}

/// A DNS header.
const HEADER: usize = 12;

/// The fixed response: ID 0 (replaced by the query's), QR AA, one question
/// (`floor.repl.co. IN A`), two answers (`192.0.2.1`, `192.0.2.2`, TTL 60, owner compressed
/// to the question).
const RESPONSE: [u8; 63] = [
    0x00, 0x00, // ID
    0x84, 0x00, // QR, AA, NOERROR
    0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, // QD 1, AN 2, NS 0, AR 0
    5, b'f', b'l', b'o', b'o', b'r', 4, b'r', b'e', b'p', b'l', 2, b'c', b'o',
    0, // floor.repl.co.
    0x00, 0x01, 0x00, 0x01, // A IN
    0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 192, 0, 2, 1, 0xc0,
    0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 192, 0, 2, 2,
];

/// Answers datagrams on `sock` until `stop` is set; adds the number answered to `answered`.
fn worker(sock: UdpSocket, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>, coalesce_us: u32) {
    let fd = sock.as_raw_fd();
    let mut b = Datagrams::new();
    for tx in &mut b.tx {
        tx[..RESPONSE.len()].copy_from_slice(&RESPONSE);
    }
    let mut coalescer = Coalescer::new(coalesce_us);
    let mut count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = match b.recv(fd) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                eprintln!("clusterns-floor: recvmmsg: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let mut out = 0;
        for i in 0..n {
            let (pkt, _) = b.datagram(i);
            // Shorter than a header, or a response: no answer (as a server would do).
            if pkt.len() < HEADER || pkt[2] & 0x80 != 0 {
                continue;
            }
            let id = [pkt[0], pkt[1]];
            b.tx[out][..2].copy_from_slice(&id);
            b.queue(out, i, RESPONSE.len());
            out += 1;
        }
        count += b.send(fd, out).ok as u64;
        coalescer.after_batch(n, BATCH);
    }
    answered.fetch_add(count, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("clusterns-floor: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Port 0 is resolved first (a SO_REUSEPORT socket must not pick it); every socket
    // then binds the same port.
    let listen = match free_port(args.listen) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("clusterns-floor: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let first = match udp_socket(listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clusterns-floor: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = match first.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("clusterns-floor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut socks = vec![first];
    for _ in 1..args.threads {
        match udp_socket(bound) {
            Ok(s) => socks.push(s),
            Err(e) => {
                eprintln!("clusterns-floor: cannot listen on {bound}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let answered = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let (w_stop, w_answered) = (stop.clone(), answered.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("floor-{i}"))
            .spawn(move || worker(sock, w_stop, w_answered, args.coalesce_us));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("clusterns-floor: cannot start a worker: {e}");
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    println!("clusterns-floor: listening on {bound}");
    let failed = handles.len() < usize::from(args.threads);
    for h in handles {
        let _ = h.join();
    }
    eprintln!(
        "clusterns-floor: answered {} datagrams",
        answered.load(Ordering::Relaxed)
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
