//! A UDP worker: one SO_REUSEPORT socket, one thread, batches of datagrams received with
//! `recvmmsg` and answered with `sendmmsg`. The snapshot is loaded once per batch; nothing is
//! allocated and no lock is taken per packet.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::server::coalesce::Coalescer;
use crate::server::rrl::{self, Rrl, RrlConfig, Verdict};
use crate::server::stats::{bump, WorkerStats};
use crate::snapshot::SharedSnapshot;
use crate::wire::{respond, Transport};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;
/// The receive buffer per datagram: larger queries are cut and answered FORMERR.
const RX_SIZE: usize = 4096;
/// The transmit buffer per datagram: at least the largest UDP payload the config allows.
const TX_SIZE: usize = 4096;

/// The buffers and message headers of one batch, allocated once per worker.
struct Batch {
    rx: Vec<[u8; RX_SIZE]>,
    tx: Vec<[u8; TX_SIZE]>,
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
            tx: vec![[0; TX_SIZE]; BATCH],
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

/// Per-worker options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub rrl: RrlConfig,
    /// Log one query in this many (0: none).
    pub query_log_sample: u64,
    /// Receive coalescing wait in microseconds (0: off); see `coalesce`.
    pub coalesce_us: u32,
}

/// Logs one query (the sampled query log).
fn log_query(client: Option<std::net::SocketAddr>, pkt: &[u8], rcode: Option<u16>) {
    if let crate::wire::Decoded::Query(req) = crate::wire::decode(pkt) {
        tracing::info!(
            target: "clusterns::query",
            client = ?client,
            qname = %crate::wire::name_text(req.qname()),
            qtype = req.qtype,
            rcode = ?rcode,
            "query"
        );
    }
}

/// Runs a worker until `stop` is set. The socket must have a receive timeout so that the
/// worker notices `stop`.
pub fn run(
    sock: UdpSocket,
    shared: SharedSnapshot,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    opts: Options,
) {
    let fd = sock.as_raw_fd();
    let mut b = Batch::new();
    let mut limiter = Rrl::new(opts.rrl);
    let mut until_log = opts.query_log_sample;
    let epoch = std::time::Instant::now();
    let mut coalescer = Coalescer::new(opts.coalesce_us);
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
                    tracing::warn!("recvmmsg: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            }
        }
        let n = n as usize;
        let started = std::time::Instant::now();
        let snap = shared.load();
        let mut out = 0;
        for i in 0..n {
            let len = b.rx_msgs[i].msg_len as usize;
            let truncated_rx = b.rx_msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let pkt = &b.rx[i][..len.min(RX_SIZE)];
            let handled = respond(&snap, pkt, &mut b.tx[out], Transport::Udp);
            stats.record(&handled, truncated_rx);
            if until_log > 0 {
                until_log -= 1;
                if until_log == 0 {
                    until_log = opts.query_log_sample;
                    log_query(to_socket_addr(&b.addrs[i]), pkt, handled.rcode);
                }
            }
            if handled.len == 0 {
                continue;
            }
            let mut len = handled.len;
            if let Some(limiter) = &mut limiter {
                if let Some(client) = to_socket_addr(&b.addrs[i]) {
                    let now = epoch.elapsed().as_secs() as u32;
                    match limiter.check(client, &b.tx[out][..len], now) {
                        Verdict::Send => {}
                        Verdict::Slip => {
                            bump(&stats.rate_limited);
                            len = rrl::truncate(&mut b.tx[out], len);
                        }
                        Verdict::Drop => {
                            bump(&stats.rate_limited);
                            continue;
                        }
                    }
                }
            }
            b.tx_iov[out] = libc::iovec {
                iov_base: b.tx[out].as_mut_ptr().cast(),
                iov_len: len,
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
        drop(snap);
        send_all(fd, &mut b.tx_msgs[..out], &stats);
        stats.record_latency(started.elapsed().as_nanos() as u64, n as u64);
        coalescer.after_batch(n, BATCH);
    }
}

/// The address in a `sockaddr_storage` filled in by the kernel.
fn to_socket_addr(sa: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which it is large
            // enough and aligned for.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(std::net::SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(std::net::SocketAddr::from((
                a.sin6_addr.s6_addr,
                u16::from_be(a.sin6_port),
            )))
        }
        _ => None,
    }
}

/// Sends every prepared message, retrying after partial sends; a message the kernel refuses
/// (an unreachable address, say) is counted and skipped.
fn send_all(fd: libc::c_int, msgs: &mut [libc::mmsghdr], stats: &WorkerStats) {
    let mut sent = 0;
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
                // The socket buffer is full: wait for room rather than drop.
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                continue;
            }
            stats.send_error();
            sent += 1;
        } else {
            sent += r as usize;
        }
    }
}
