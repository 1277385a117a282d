//! `clusterns-floor`: the physical floor of this machine's UDP packet path, for `perf/`.
//!
//! It does what a DNS server's UDP path cannot avoid and nothing else: N workers, each with
//! its own SO_REUSEPORT socket, receive datagrams in batches of 32 with `recvmmsg` and answer
//! every one that is at least a DNS header long with the same pre-built response (two A
//! records for `floor.repl.co`, 63 bytes) carrying the query's ID, sent back in one `sendmmsg`
//! per batch: the same batched syscalls, buffers and socket options as
//! `src/server/udp.rs`, with no decoding, lookup or encoding. The CPU a real server spends
//! per query, divided by this one's, says how far above the floor it is.
//!
//! ```text
//! clusterns-floor --listen 127.0.0.1:5399 --threads 1
//! ```
//!
//! Prints `clusterns-floor: listening on ADDR` once bound; stops on SIGTERM or SIGINT and
//! prints how many datagrams it answered.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};

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

/// Datagrams per `recvmmsg`/`sendmmsg` call (as in `src/server/udp.rs`).
const BATCH: usize = 32;
/// The receive buffer per datagram (as in `src/server/udp.rs`).
const RX_SIZE: usize = 4096;
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

/// The buffers and message headers of one batch, allocated once per worker.
struct Batch {
    rx: Vec<[u8; RX_SIZE]>,
    /// One copy of the response per slot: only the ID changes per datagram.
    tx: Vec<[u8; RESPONSE.len()]>,
    addrs: [libc::sockaddr_storage; BATCH],
    rx_iov: [libc::iovec; BATCH],
    tx_iov: [libc::iovec; BATCH],
    rx_msgs: [libc::mmsghdr; BATCH],
    tx_msgs: [libc::mmsghdr; BATCH],
}

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are C structs of integers and raw
        // pointers, for which all-zero is a valid value; pointers are set before use.
        let (addrs, rx_iov, tx_iov, rx_msgs, tx_msgs) =
            unsafe { (zeroed(), zeroed(), zeroed(), zeroed(), zeroed()) };
        // Boxed so that the headers' pointers into it stay valid.
        let mut b = Box::new(Batch {
            rx: vec![[0; RX_SIZE]; BATCH],
            tx: vec![RESPONSE; BATCH],
            addrs,
            rx_iov,
            tx_iov,
            rx_msgs,
            tx_msgs,
        });
        for i in 0..BATCH {
            b.rx_iov[i] = libc::iovec {
                iov_base: b.rx[i].as_mut_ptr().cast(),
                iov_len: RX_SIZE,
            };
        }
        b
    }

    /// Re-arms the receive headers (the kernel overwrites lengths and flags).
    fn arm_rx(&mut self) {
        for i in 0..BATCH {
            let h = &mut self.rx_msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.rx_iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.rx_msgs[i].msg_len = 0;
        }
    }
}

/// A socket set up as `src/server/mod.rs` sets up its UDP sockets.
fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Answers datagrams on `sock` until `stop` is set; adds the number answered to `answered`.
fn worker(sock: UdpSocket, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>, coalesce_us: u32) {
    let fd = sock.as_raw_fd();
    let mut b = Batch::new();
    let mut coalescer = clusterns::server::coalesce::Coalescer::new(coalesce_us);
    let mut count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        b.arm_rx();
        // SAFETY: `rx_msgs` holds BATCH initialised headers whose name and iovec pointers
        // point into `b`, which outlives the call; the kernel writes at most BATCH entries.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                b.rx_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted
                | io::ErrorKind::TimedOut => continue,
                _ => {
                    eprintln!("clusterns-floor: recvmmsg: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let mut out = 0;
        for i in 0..n as usize {
            let len = b.rx_msgs[i].msg_len as usize;
            // Shorter than a header, or a response: no answer (as a server would do).
            if len < HEADER || b.rx[i][2] & 0x80 != 0 {
                continue;
            }
            b.tx[out][..2].copy_from_slice(&b.rx[i][..2]);
            b.tx_iov[out] = libc::iovec {
                iov_base: b.tx[out].as_mut_ptr().cast(),
                iov_len: RESPONSE.len(),
            };
            let h = &mut b.tx_msgs[out].msg_hdr;
            h.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = b.rx_msgs[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut b.tx_iov[out];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            out += 1;
        }
        count += send_all(fd, &mut b.tx_msgs[..out]) as u64;
        coalescer.after_batch(n as usize, BATCH);
    }
    answered.fetch_add(count, Ordering::Relaxed);
}

/// Sends every prepared message, retrying after partial sends and waiting when the socket
/// buffer is full; a message the kernel refuses is skipped. Returns the number sent.
fn send_all(fd: libc::c_int, msgs: &mut [libc::mmsghdr]) -> usize {
    let mut sent = 0;
    let mut ok = 0;
    while sent < msgs.len() {
        let rest = &mut msgs[sent..];
        // SAFETY: `rest` holds initialised headers pointing into the worker's batch buffers,
        // which live across the call.
        let r = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if e.kind() == io::ErrorKind::WouldBlock {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                continue;
            }
            sent += 1;
        } else {
            sent += r as usize;
            ok += r as usize;
        }
    }
    ok
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
    // The first socket resolves port 0; the others join it.
    let first = match udp_socket(args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clusterns-floor: cannot listen on {}: {e}", args.listen);
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
