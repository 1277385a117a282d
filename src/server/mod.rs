//! Sockets and threads: per listen address, N UDP workers each with its own SO_REUSEPORT
//! socket, and one TCP event loop for all addresses; with an [`UpdateHandler`], one more
//! thread, `update`, that handles DNS UPDATE messages ([`update`]).

pub mod batch;
pub mod coalesce;
pub(crate) mod rrl;
#[doc(hidden)]
pub mod stats;
#[doc(hidden)]
pub mod tcp;
pub(crate) mod udp;
pub mod update;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ServerConfig;
use crate::snapshot::SharedSnapshot;
use stats::WorkerStats;
pub use update::{UpdateHandler, UpdateStats};

/// A running server.
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    local_addrs: Vec<SocketAddr>,
    stats: Vec<Arc<WorkerStats>>,
    update_stats: Option<Arc<UpdateStats>>,
}

/// How many UDP workers `threads = 0` means: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A UDP socket as every worker gets it: SO_REUSEPORT, 4 MiB buffers where the kernel allows,
/// a 100 ms receive timeout (so that workers notice shutdown), bound to `addr`.
pub fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Room for bursts; the kernel caps this at net.core.rmem_max / wmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(s.into()))
}

/// Binds `threads` UDP sockets and one TCP listener on the same port. Port 0 picks a port
/// free for both (see [`free_port`]).
fn bind_all(
    addr: SocketAddr,
    threads: usize,
) -> io::Result<(Vec<UdpSocket>, mio::net::TcpListener, SocketAddr)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let bound = match free_port(addr) {
            Ok(a) => a,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let first = match udp_socket(bound) {
            Ok(s) => s,
            // Taken between the probe and this bind: another try.
            Err(e) if addr.port() == 0 => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let tcp = match tcp_listener(bound) {
            Ok(t) => t,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let mut socks = vec![first];
        for _ in 1..threads {
            socks.push(udp_socket(bound)?);
        }
        return Ok((socks, tcp, bound));
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for UDP and TCP")))
}

/// `addr`, or with port 0 an unused UDP port on its address, found by binding a socket *without* SO_REUSEPORT
/// to port 0 and letting it go. Binding port 0 with SO_REUSEPORT set would not do: Linux
/// then counts ports held by another SO_REUSEPORT group of the same user as free, and the
/// new socket joins that group, so two servers would split one port's datagrams between
/// them.
pub fn free_port(addr: SocketAddr) -> io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = UdpSocket::bind(addr)?;
    probe.local_addr()
}

impl Server {
    /// Binds every listener and starts the worker threads answering from `shared`. UPDATE
    /// messages get NOTIMP (see [`start_with_updates`](Server::start_with_updates)).
    pub fn start(cfg: &ServerConfig, shared: SharedSnapshot) -> io::Result<Server> {
        Server::start_with_updates(cfg, shared, None)
    }

    /// [`start`](Server::start), and with `updates` a thread named `update` that handles
    /// every UPDATE message (opcode 5) received over UDP or TCP with that handler: the
    /// workers copy each into a bounded queue ([`update::QUEUE_DEPTH`]; a message that finds
    /// it full is answered SERVFAIL and counted in `WorkerStats::update_queue_full`), the
    /// handler's answer goes back from the socket the message came on (UDP) or on its
    /// connection in order with the queries around it (TCP). Without `updates`, UPDATE gets
    /// NOTIMP as every other opcode but QUERY. [`stop`](Server::stop) answers every message
    /// already queued before the update thread ends.
    pub fn start_with_updates(
        cfg: &ServerConfig,
        shared: SharedSnapshot,
        updates: Option<Box<dyn UpdateHandler>>,
    ) -> io::Result<Server> {
        let threads = if cfg.threads == 0 {
            default_threads()
        } else {
            cfg.threads
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let mut local_addrs = Vec::new();
        let mut listeners = Vec::new();
        let mut stats = Vec::new();
        let mut udp_socks = Vec::new();
        for &addr in &cfg.listen {
            let (socks, tcp, bound) = bind_all(addr, threads)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            local_addrs.push(bound);
            listeners.push(tcp);
            udp_socks.extend(socks);
        }
        let (queue, update_stats) = match updates {
            Some(handler) => {
                let (queue, jobs) = update::queue(update::QUEUE_DEPTH);
                let st = Arc::new(UpdateStats::default());
                let thread_stats = st.clone();
                // Joined last: it ends once every worker (each holding a sender) has.
                let t = std::thread::Builder::new()
                    .name("update".into())
                    .spawn(move || update::run(handler, jobs, thread_stats))?;
                (Some((queue, t)), Some(st))
            }
            None => (None, None),
        };
        let (queue, update_thread) = match queue {
            Some((q, t)) => (Some(q), Some(t)),
            None => (None, None),
        };
        for (i, sock) in udp_socks.into_iter().enumerate() {
            let st = Arc::new(WorkerStats::new(crate::query::Transport::Udp));
            stats.push(st.clone());
            let (shared, stop, queue) = (shared.clone(), stop.clone(), queue.clone());
            let opts = udp::Options {
                rrl: cfg.rrl,
                query_log_sample: cfg.query_log_sample,
                coalesce_us: cfg.udp_coalesce_us,
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("udp-{i}"))
                    .spawn(move || udp::run(sock, shared, stop, st, opts, queue))?,
            );
        }
        let limits = tcp::TcpLimits {
            idle_timeout: Duration::from_secs(cfg.tcp_idle_timeout_secs),
            max_connections: cfg.tcp_max_connections,
            message_timeout: Duration::from_millis(cfg.tcp_message_timeout_ms),
        };
        let st = Arc::new(WorkerStats::new(crate::query::Transport::Tcp));
        stats.push(st.clone());
        let tcp_stop = stop.clone();
        handles.push(
            std::thread::Builder::new()
                .name("tcp".into())
                .spawn(move || {
                    if let Err(e) = tcp::run(listeners, shared, limits, tcp_stop, st, queue) {
                        tracing::error!("tcp loop failed: {e}");
                    }
                })?,
        );
        handles.extend(update_thread);
        Ok(Server {
            stop,
            threads: handles,
            local_addrs,
            stats,
            update_stats,
        })
    }

    /// The addresses actually bound (ports resolved when the config said 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The counters of every worker (UDP workers first, the TCP loop last).
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// The update thread's counters, when the server takes updates.
    pub fn update_stats(&self) -> Option<&Arc<UpdateStats>> {
        self.update_stats.as_ref()
    }

    /// Stops accepting, lets in-flight TCP answers go out, and waits for every thread (the
    /// update thread last, once it has answered every message queued).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port 0 never lands on a port another SO_REUSEPORT group of this user holds. 400 such
    /// sockets are held while 400 servers bind port 0: binding port 0 with SO_REUSEPORT
    /// itself lands on a held port several times in that many tries (Linux counts them as
    /// free), so this fails with the old binding almost surely.
    #[test]
    fn port_zero_never_joins_another_reuseport_group() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let held: Vec<UdpSocket> = (0..400).map(|_| udp_socket(any).unwrap()).collect();
        let taken: std::collections::HashSet<u16> = held
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        for _ in 0..400 {
            let (socks, tcp, bound) = bind_all(any, 2).unwrap();
            assert!(!taken.contains(&bound.port()), "joined {bound}");
            assert_eq!(tcp.local_addr().unwrap(), bound);
            for s in &socks {
                assert_eq!(s.local_addr().unwrap(), bound);
            }
        }
    }
}
