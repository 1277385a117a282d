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

use crate::query::{respond, Transport};
use crate::server::stats::WorkerStats;
use crate::snapshot::{SharedSnapshot, Snapshot};

/// Largest DNS message over TCP plus its length prefix.
pub const FRAME_MAX: usize = 2 + 65535;
/// Stop reading from a connection while this many answer bytes wait to be written.
pub const WRITE_BACKLOG: usize = 64 * 1024;
/// How much one `read` takes from a socket.
const READ_CHUNK: usize = 16 * 1024;

/// TCP limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// How long a message may take to arrive once it has begun.
    pub message_timeout: Duration,
}

/// Why a stream cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// A zero-length frame: no message can have it, so the stream is beyond repair.
    ZeroLength,
}

/// DNS over TCP framing without I/O: the bytes read from a connection go in, the answers to
/// be written come out, length-prefixed and in the order of the queries.
///
/// Each message is preceded by its length (2 bytes, big-endian). A zero-length frame closes
/// the stream. While [`WRITE_BACKLOG`] or more answer bytes wait to be written no further
/// query is answered (nor should more be read): a client that does not read its answers only
/// stalls itself. Queries that get no response (too short for a header, QR set) are consumed
/// without output.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes read and not yet answered: a partial frame, or whole frames held back by the
    /// write backlog.
    rbuf: Vec<u8>,
    /// Answers; the first `wpos` bytes are already written.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Messages taken from the stream so far.
    taken: u64,
}

impl Framer {
    /// An empty stream.
    pub fn new() -> Framer {
        Framer {
            rbuf: Vec::with_capacity(512),
            wbuf: Vec::new(),
            wpos: 0,
            taken: 0,
        }
    }

    /// Appends `bytes` to what was read and answers every complete frame from `snap`, in
    /// order, until the write backlog is reached. `scratch` holds one response (65535 bytes
    /// for full answers). Call it with no bytes to go on after [`consume`](Framer::consume)
    /// made room. `Err` means the connection must be closed; the answers before the
    /// offending frame are still in [`output`](Framer::output).
    pub fn feed(
        &mut self,
        bytes: &[u8],
        snap: &Snapshot,
        scratch: &mut [u8],
        stats: &WorkerStats,
    ) -> Result<(), Close> {
        self.rbuf.extend_from_slice(bytes);
        let started = Instant::now();
        let mut answered = 0;
        let mut pos = 0;
        let mut result = Ok(());
        while self.rbuf.len() - pos >= 2 && self.pending() < WRITE_BACKLOG {
            let len = usize::from(u16::from_be_bytes([self.rbuf[pos], self.rbuf[pos + 1]]));
            if len == 0 {
                result = Err(Close::ZeroLength);
                break;
            }
            if self.rbuf.len() - pos - 2 < len {
                break;
            }
            let pkt = &self.rbuf[pos + 2..pos + 2 + len];
            let handled = respond(snap, pkt, scratch, Transport::Tcp);
            stats.record(&handled, false);
            answered += 1;
            self.taken += 1;
            pos += 2 + len;
            if handled.len > 0 {
                self.wbuf
                    .extend_from_slice(&(handled.len as u16).to_be_bytes());
                self.wbuf.extend_from_slice(&scratch[..handled.len]);
            }
        }
        if answered > 0 {
            stats.record_latency(started.elapsed().as_nanos() as u64, answered);
        }
        self.rbuf.drain(..pos);
        result
    }

    /// The answers not yet written.
    pub fn output(&self) -> &[u8] {
        &self.wbuf[self.wpos..]
    }

    /// How many answer bytes wait to be written.
    pub fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Whether the write backlog is reached: nothing more is answered, and nothing more
    /// should be read, until answers are written.
    pub fn backlogged(&self) -> bool {
        self.pending() >= WRITE_BACKLOG
    }

    /// Bytes read but not yet answered.
    pub fn buffered(&self) -> usize {
        self.rbuf.len()
    }

    /// Messages taken from the stream so far (answered or not).
    pub fn messages(&self) -> u64 {
        self.taken
    }

    /// Marks the first `n` bytes of [`output`](Framer::output) as written.
    ///
    /// # Panics
    /// If `n` is more than [`pending`](Framer::pending).
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.pending(),
            "consumed more than the pending answers"
        );
        self.wpos += n;
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > WRITE_BACKLOG {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
    }
}

struct Conn {
    stream: TcpStream,
    framer: Framer,
    last_active: Instant,
    /// Since when a message has been arriving (bytes of it read, the rest not yet): a
    /// connection that trickles one in slower than `message_timeout` is closed.
    message_since: Option<Instant>,
    /// The peer closed its side: finish writing, then close.
    read_closed: bool,
    interest: Interest,
}

impl Conn {
    fn pending(&self) -> usize {
        self.framer.pending()
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
                let slow = c
                    .message_since
                    .is_some_and(|t| now.duration_since(t) >= limits.message_timeout);
                if slow {
                    crate::server::stats::bump(&stats.tcp_timed_out);
                }
                let keep = !slow && now.duration_since(c.last_active) < limits.idle_timeout;
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
                    // At the cap: the connection idle the longest makes room, so that
                    // connections held open on purpose cannot lock everyone else out.
                    let idlest = conns
                        .iter()
                        .min_by_key(|(_, c)| c.last_active)
                        .map(|(t, _)| *t);
                    match idlest.and_then(|t| conns.remove(&t)) {
                        Some(mut old) => {
                            let _ = poll.registry().deregister(&mut old.stream);
                            crate::server::stats::bump(&stats.tcp_evicted);
                        }
                        None => {
                            drop(stream);
                            crate::server::stats::bump(&stats.tcp_refused);
                            continue;
                        }
                    }
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
                        framer: Framer::new(),
                        last_active: Instant::now(),
                        message_since: None,
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
    if flush(conn).is_err()
        || conn
            .framer
            .feed(&[], &shared.load(), scratch, stats)
            .is_err()
    {
        return false;
    }
    let mut buf = [0u8; READ_CHUNK];
    while !conn.read_closed && !conn.framer.backlogged() {
        match conn.stream.read(&mut buf) {
            Ok(0) => conn.read_closed = true,
            Ok(n) => {
                conn.last_active = Instant::now();
                let snap = shared.load();
                let taken = conn.framer.messages();
                if conn.framer.feed(&buf[..n], &snap, scratch, stats).is_err() {
                    return false;
                }
                // A message is arriving while bytes of it wait; its clock starts with its
                // first byte (a new message after a completed one starts a new clock).
                if conn.framer.buffered() == 0 {
                    conn.message_since = None;
                } else if conn.message_since.is_none() || conn.framer.messages() != taken {
                    conn.message_since = Some(conn.last_active);
                }
                debug_assert!(conn.framer.buffered() <= FRAME_MAX + READ_CHUNK);
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

fn flush(conn: &mut Conn) -> io::Result<()> {
    while conn.pending() > 0 {
        match conn.stream.write(conn.framer.output()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.framer.consume(n);
                conn.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::snapshot;

    /// A query for `name` (dotted, no trailing dot) with `qtype`, length-prefixed.
    fn frame(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
        let mut f = (m.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&m);
        f
    }

    /// A stream of pipelined frames: hits, NXDOMAIN, a big answer, a FORMERR and a dropped
    /// packet (a response, QR set).
    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(frame(1, "coolgame.mark.repl.co", 1));
        s.extend(frame(2, "nobody.repl.co", 1));
        s.extend(frame(3, "huge.ann.repl.co", 28));
        s.extend([0, 3, 0xab, 0xcd, 0xef]); // too short for a header: dropped
        s.extend([0, 12, 0, 4, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // a response: dropped
        s.extend([0, 12, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // no question: FORMERR
        s.extend(frame(6, "r0.repl.co", 28));
        s
    }

    /// Feeds `chunks` in turn, writing everything out after each (and going on while the
    /// backlog held queries back); returns what was written and whether the stream was
    /// closed.
    fn run(snap: &Snapshot, chunks: &[&[u8]]) -> (Vec<u8>, Option<Close>) {
        let stats = WorkerStats::new(crate::query::Transport::Tcp);
        let mut scratch = vec![0u8; 65535];
        let mut f = Framer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut r = f.feed(chunk, snap, &mut scratch, &stats);
            loop {
                out.extend_from_slice(f.output());
                f.consume(f.pending());
                if let Err(e) = r {
                    return (out, Some(e));
                }
                r = f.feed(&[], snap, &mut scratch, &stats);
                if r.is_ok() && f.pending() == 0 {
                    break;
                }
            }
        }
        (out, None)
    }

    /// Splits a stream of length-prefixed responses.
    fn frames(mut out: &[u8]) -> Vec<&[u8]> {
        let mut v = Vec::new();
        while !out.is_empty() {
            let len = usize::from(u16::from_be_bytes([out[0], out[1]]));
            v.push(&out[2..2 + len]);
            out = &out[2 + len..];
        }
        v
    }

    #[test]
    fn answers_in_order_whole_and_split_at_every_point() {
        let snap = snapshot();
        let s = stream();
        let (whole, closed) = run(snap, &[&s]);
        assert_eq!(closed, None);
        let answers = frames(&whole);
        let ids: Vec<u16> = answers
            .iter()
            .map(|m| u16::from_be_bytes([m[0], m[1]]))
            .collect();
        assert_eq!(ids, [1, 2, 3, 5, 6]);
        assert_eq!(answers[1][3] & 0x0f, 3, "NXDOMAIN");
        assert!(answers[2].len() > 1500, "the big answer whole over TCP");
        assert_eq!(answers[3][3] & 0x0f, 1, "FORMERR");
        // Every split into two and into three chunks gives the same bytes.
        for i in 0..=s.len() {
            assert_eq!(run(snap, &[&s[..i], &s[i..]]).0, whole, "split at {i}");
        }
        for i in (0..=s.len()).step_by(3) {
            for j in (i..=s.len()).step_by(5) {
                let got = run(snap, &[&s[..i], &s[i..j], &s[j..]]).0;
                assert_eq!(got, whole, "split at {i} and {j}");
            }
        }
        // One byte at a time, with empty feeds in between.
        let bytes: Vec<&[u8]> = s.chunks(1).flat_map(|b| [b, &[][..]]).collect();
        assert_eq!(run(snap, &bytes).0, whole);
    }

    #[test]
    fn zero_length_frame_closes_after_the_answers_before_it() {
        let snap = snapshot();
        let mut s = frame(1, "coolgame.mark.repl.co", 1);
        s.extend([0, 0]);
        s.extend(frame(2, "coolgame.mark.repl.co", 1));
        let (out, closed) = run(snap, &[&s]);
        assert_eq!(closed, Some(Close::ZeroLength));
        assert_eq!(frames(&out).len(), 1);
        // Split inside the zero-length prefix: the same.
        let first = frame(1, "coolgame.mark.repl.co", 1).len();
        let (split, closed) = run(snap, &[&s[..first + 1], &s[first + 1..]]);
        assert_eq!((split, closed), (out, Some(Close::ZeroLength)));
        // A lone zero-length frame.
        assert_eq!(run(snap, &[&[0, 0]]).1, Some(Close::ZeroLength));
        // Half a prefix is not a frame yet.
        assert_eq!(run(snap, &[&[0]]), (vec![], None));
    }

    #[test]
    fn backlog_holds_queries_until_answers_are_written() {
        let snap = snapshot();
        let stats = WorkerStats::new(crate::query::Transport::Tcp);
        let mut scratch = vec![0u8; 65535];
        let q = frame(7, "huge.ann.repl.co", 28);
        let n = 100;
        let s: Vec<u8> = q.iter().copied().cycle().take(q.len() * n).collect();
        let mut f = Framer::new();
        f.feed(&s, snap, &mut scratch, &stats).unwrap();
        assert!(f.backlogged());
        assert!(f.pending() < WRITE_BACKLOG + FRAME_MAX);
        assert!(
            f.buffered() > 0,
            "queries wait while the client does not read"
        );
        let mut out = Vec::new();
        let mut rounds = 0;
        loop {
            // Write a little at a time, as a slow socket would.
            let n = f.pending().min(3000);
            out.extend_from_slice(&f.output()[..n]);
            f.consume(n);
            f.feed(&[], snap, &mut scratch, &stats).unwrap();
            rounds += 1;
            if f.pending() == 0 {
                break;
            }
        }
        assert!(rounds > 10);
        assert_eq!(f.buffered(), 0);
        let answers = frames(&out);
        assert_eq!(answers.len(), n);
        assert!(answers.iter().all(|a| a[..2] == [0, 7]));
        assert_eq!(out, run(snap, &[&s]).0);
    }
}
