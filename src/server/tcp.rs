//! DNS over TCP (RFC 7766) on a mio event loop: length-prefixed messages, pipelined queries
//! answered in order, an idle timeout, a cap on open connections, and back-pressure so that a
//! client that does not read its answers only stalls itself.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::server::stats::WorkerStats;
use crate::snapshot::SharedSnapshot;
use crate::wire::{respond, Transport};

/// Largest DNS message over TCP plus its length prefix.
const FRAME_MAX: usize = 2 + 65535;
/// Stop reading from a connection while this many answer bytes wait to be written.
const WRITE_BACKLOG: usize = 64 * 1024;

/// TCP limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    last_active: Instant,
    /// The peer closed its side: finish writing, then close.
    read_closed: bool,
    interest: Interest,
}

impl Conn {
    fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

/// Runs the TCP loop on `listeners` until `stop` is set; then stops accepting, writes the
/// answers already computed (for up to a second) and returns.
pub fn run(
    mut listeners: Vec<TcpListener>,
    shared: SharedSnapshot,
    limits: TcpLimits,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    for (i, l) in listeners.iter_mut().enumerate() {
        poll.registry().register(l, Token(i), Interest::READABLE)?;
    }
    let first_conn = listeners.len();
    let mut next_token = first_conn;
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut events = Events::with_capacity(256);
    let mut scratch = vec![0u8; 65535].into_boxed_slice();
    let mut last_sweep = Instant::now();
    let mut stopping: Option<Instant> = None;

    loop {
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            for l in &mut listeners {
                let _ = poll.registry().deregister(l);
            }
            // Nothing more is read: close connections with nothing left to write.
            conns.retain(|_, c| c.pending() > 0);
            stopping = Some(Instant::now());
        }
        if let Some(since) = stopping {
            if conns.is_empty() || since.elapsed() > Duration::from_secs(1) {
                return Ok(());
            }
        }
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let token = event.token();
            if token.0 < first_conn {
                if stopping.is_some() {
                    continue;
                }
                accept_all(
                    &mut poll,
                    &mut listeners[token.0],
                    &mut conns,
                    &mut next_token,
                    limits,
                    &stats,
                );
                continue;
            }
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            let alive = if stopping.is_some() {
                flush(conn).is_ok() && conn.pending() > 0
            } else {
                service(conn, &shared, &mut scratch, &stats)
            };
            if !alive {
                if let Some(mut c) = conns.remove(&token) {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                continue;
            }
            let want = if conn.pending() > 0 {
                if conn.pending() >= WRITE_BACKLOG || conn.read_closed {
                    Interest::WRITABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                }
            } else {
                Interest::READABLE
            };
            if want != conn.interest {
                conn.interest = want;
                let _ = poll.registry().reregister(&mut conn.stream, token, want);
            }
        }
        stats
            .tcp_open
            .store(conns.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if last_sweep.elapsed() >= Duration::from_millis(250) {
            last_sweep = Instant::now();
            let now = Instant::now();
            conns.retain(|_, c| {
                let keep = now.duration_since(c.last_active) < limits.idle_timeout;
                if !keep {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                keep
            });
        }
    }
}

fn accept_all(
    poll: &mut Poll,
    listener: &mut TcpListener,
    conns: &mut HashMap<Token, Conn>,
    next_token: &mut usize,
    limits: TcpLimits,
    stats: &WorkerStats,
) {
    loop {
        match listener.accept() {
            Ok((mut stream, _peer)) => {
                if conns.len() >= limits.max_connections {
                    // Over the cap: close at once (the client may retry).
                    drop(stream);
                    crate::server::stats::bump(&stats.tcp_refused);
                    continue;
                }
                crate::server::stats::bump(&stats.tcp_accepted);
                let _ = stream.set_nodelay(true);
                let token = Token(*next_token);
                *next_token += 1;
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_err()
                {
                    continue;
                }
                conns.insert(
                    token,
                    Conn {
                        stream,
                        rbuf: Vec::with_capacity(512),
                        wbuf: Vec::new(),
                        wpos: 0,
                        last_active: Instant::now(),
                        read_closed: false,
                        interest: Interest::READABLE,
                    },
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and the like: leave the rest in the backlog for later.
                tracing::warn!("tcp accept: {e}");
                return;
            }
        }
    }
}

/// Reads what is there, answers every complete message, writes what it can. Returns whether
/// the connection stays open.
fn service(
    conn: &mut Conn,
    shared: &SharedSnapshot,
    scratch: &mut [u8],
    stats: &WorkerStats,
) -> bool {
    if flush(conn).is_err() || !answer_frames(conn, shared, scratch, stats) {
        return false;
    }
    let mut buf = [0u8; 16 * 1024];
    while !conn.read_closed && conn.pending() < WRITE_BACKLOG {
        match conn.stream.read(&mut buf) {
            Ok(0) => conn.read_closed = true,
            Ok(n) => {
                conn.last_active = Instant::now();
                conn.rbuf.extend_from_slice(&buf[..n]);
                if !answer_frames(conn, shared, scratch, stats) {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    if flush(conn).is_err() {
        return false;
    }
    !(conn.read_closed && conn.pending() == 0)
}

/// Answers the complete frames in the read buffer, in order. Returns false when the stream is
/// beyond repair (a zero-length frame).
fn answer_frames(
    conn: &mut Conn,
    shared: &SharedSnapshot,
    scratch: &mut [u8],
    stats: &WorkerStats,
) -> bool {
    let snap = shared.load();
    let started = Instant::now();
    let mut answered = 0;
    let mut pos = 0;
    while conn.rbuf.len() - pos >= 2 && conn.pending() < WRITE_BACKLOG {
        let len = usize::from(u16::from_be_bytes([conn.rbuf[pos], conn.rbuf[pos + 1]]));
        if len == 0 {
            return false;
        }
        if conn.rbuf.len() - pos - 2 < len {
            break;
        }
        let pkt = &conn.rbuf[pos + 2..pos + 2 + len];
        let handled = respond(&snap, pkt, scratch, Transport::Tcp);
        stats.record(&handled, false);
        answered += 1;
        pos += 2 + len;
        if handled.len > 0 {
            conn.wbuf
                .extend_from_slice(&(handled.len as u16).to_be_bytes());
            conn.wbuf.extend_from_slice(&scratch[..handled.len]);
        }
    }
    if answered > 0 {
        stats.record_latency(started.elapsed().as_nanos() as u64, answered);
    }
    conn.rbuf.drain(..pos);
    debug_assert!(conn.rbuf.len() <= FRAME_MAX + 16 * 1024);
    true
}

fn flush(conn: &mut Conn) -> io::Result<()> {
    while conn.pending() > 0 {
        match conn.stream.write(&conn.wbuf[conn.wpos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.wpos += n;
                conn.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if conn.pending() == 0 {
        conn.wbuf.clear();
        conn.wpos = 0;
    } else if conn.wpos > WRITE_BACKLOG {
        conn.wbuf.drain(..conn.wpos);
        conn.wpos = 0;
    }
    Ok(())
}
