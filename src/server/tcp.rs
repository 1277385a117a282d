//! DNS over TCP (RFC 7766) on a mio event loop: length-prefixed messages, pipelined queries
//! answered in order, an idle timeout, a cap on open connections, and back-pressure so that a
//! client that does not read its answers only stalls itself. An UPDATE message (when the
//! server takes them) goes to the update thread; its connection reads nothing more until the
//! answer is back (the thread wakes the loop), so answers keep the order of the messages.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use domain::base::iana::{OptRcode, Rcode};

use crate::query::{header_error, respond_with, Policy, ResponseClass, Transport};
use crate::server::stats::{bump, WorkerStats};
use crate::server::update::{Job, ReplyTo, TcpAnswer, TcpReturn, Throttle, UpdateQueue};
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::wire::header::HEADER_LEN;

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
///
/// Under [`Policy::UPDATES`] an UPDATE message is not answered here: it is taken out
/// ([`take_update`](Framer::take_update)) and nothing more is answered until its answer
/// comes back ([`update_answered`](Framer::update_answered)), so answers stay in order.
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
    policy: Policy,
    /// An UPDATE message taken from the stream, not yet handed on.
    update: Option<Vec<u8>>,
    /// An UPDATE message's answer is awaited.
    awaiting: bool,
}

impl Framer {
    /// An empty stream.
    pub fn new() -> Framer {
        Framer::with_policy(Policy::QUERIES_ONLY)
    }

    /// An empty stream whose messages are answered under `policy`.
    pub fn with_policy(policy: Policy) -> Framer {
        Framer {
            rbuf: Vec::with_capacity(512),
            wbuf: Vec::new(),
            wpos: 0,
            taken: 0,
            policy,
            update: None,
            awaiting: false,
        }
    }

    /// The UPDATE message that stopped the stream, once: hand it on, then call
    /// [`update_answered`](Framer::update_answered) with its answer.
    pub fn take_update(&mut self) -> Option<Vec<u8>> {
        self.update.take()
    }

    /// Whether an UPDATE message's answer is awaited (nothing more is answered until then).
    pub fn awaiting_update(&self) -> bool {
        self.awaiting
    }

    /// Appends the awaited UPDATE answer (none when empty) to the output; the stream goes on
    /// with the next [`feed`](Framer::feed). An answer longer than a frame is not sent.
    pub fn update_answered(&mut self, answer: &[u8]) {
        self.awaiting = false;
        self.update = None;
        if let Ok(len) = u16::try_from(answer.len()) {
            if len > 0 {
                self.wbuf.extend_from_slice(&len.to_be_bytes());
                self.wbuf.extend_from_slice(answer);
            }
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
        while !self.awaiting && self.rbuf.len() - pos >= 2 && self.pending() < WRITE_BACKLOG {
            let len = usize::from(u16::from_be_bytes([self.rbuf[pos], self.rbuf[pos + 1]]));
            if len == 0 {
                result = Err(Close::ZeroLength);
                break;
            }
            if self.rbuf.len() - pos - 2 < len {
                break;
            }
            let pkt = &self.rbuf[pos + 2..pos + 2 + len];
            let handled = respond_with(snap, pkt, scratch, Transport::Tcp, self.policy);
            if handled.class == ResponseClass::Update {
                bump(&stats.received);
                bump(&stats.updates);
                self.update = Some(pkt.to_vec());
                self.awaiting = true;
                self.taken += 1;
                pos += 2 + len;
                break;
            }
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
    peer: SocketAddr,
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

    /// Whether the connection still has something to do while the server stops: answers to
    /// write, or an update's answer to wait for.
    fn busy(&self) -> bool {
        self.pending() > 0 || self.framer.awaiting_update()
    }
}

/// The poll token of the waker the update thread wakes the loop with.
pub const WAKER: Token = Token(usize::MAX);
/// How long a stopping loop waits for update answers (a durable write may take a while).
const UPDATE_GRACE: Duration = Duration::from_secs(10);

/// The TCP loop's way to the update thread.
struct Updates {
    queue: UpdateQueue,
    back: TcpReturn,
    answers: crossbeam_channel::Receiver<TcpAnswer>,
    full: Throttle,
}

/// What every connection's servicing needs.
struct Ctx<'a> {
    shared: &'a SharedSnapshot,
    scratch: &'a mut [u8],
    stats: &'a WorkerStats,
    updates: Option<&'a mut Updates>,
}

/// Runs the TCP loop on `listeners` until `stop` is set; then stops accepting, writes the
/// answers already computed (for up to a second; up to `UPDATE_GRACE` while an update's
/// answer is awaited) and returns. With `updates`, UPDATE messages go to the update thread;
/// without, they get NOTIMP.
pub fn run(
    mut listeners: Vec<TcpListener>,
    shared: SharedSnapshot,
    limits: TcpLimits,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    updates: Option<UpdateQueue>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    for (i, l) in listeners.iter_mut().enumerate() {
        poll.registry().register(l, Token(i), Interest::READABLE)?;
    }
    let policy = Policy {
        updates: updates.is_some(),
    };
    let mut updates = match updates {
        Some(queue) => {
            let (tx, answers) = crossbeam_channel::unbounded();
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
            Some(Updates {
                queue,
                back: TcpReturn { tx, waker },
                answers,
                full: Throttle::default(),
            })
        }
        None => None,
    };
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
            // Nothing more is read: close connections with nothing left to write or wait for.
            conns.retain(|_, c| c.busy());
            stopping = Some(Instant::now());
        }
        if let Some(since) = stopping {
            let grace = if conns.values().any(|c| c.framer.awaiting_update()) {
                UPDATE_GRACE
            } else {
                Duration::from_secs(1)
            };
            if conns.is_empty() || since.elapsed() > grace {
                return Ok(());
            }
        }
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut ctx = Ctx {
            shared: &shared,
            scratch: &mut scratch,
            stats: &stats,
            updates: updates.as_mut(),
        };
        for event in events.iter() {
            let token = event.token();
            if token == WAKER {
                answers_back(&mut poll, &mut conns, &mut ctx, stopping.is_some());
                continue;
            }
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
                    policy,
                );
                continue;
            }
            drive(&mut poll, &mut conns, token, &mut ctx, stopping.is_some());
        }
        stats
            .tcp_open
            .store(conns.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if last_sweep.elapsed() >= Duration::from_millis(250) {
            last_sweep = Instant::now();
            let now = Instant::now();
            conns.retain(|_, c| {
                // A connection waiting for its update's answer is not idle: the update
                // thread holds it up, not the client.
                if c.framer.awaiting_update() {
                    return true;
                }
                let slow = c
                    .message_since
                    .is_some_and(|t| now.duration_since(t) >= limits.message_timeout);
                if slow {
                    bump(&stats.tcp_timed_out);
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

/// Services connection `token` after an event (or an update's answer): reads, answers and
/// writes what it can, then closes it or sets the readiness it waits for.
fn drive(
    poll: &mut Poll,
    conns: &mut HashMap<Token, Conn>,
    token: Token,
    ctx: &mut Ctx<'_>,
    stopping: bool,
) {
    let Some(conn) = conns.get_mut(&token) else {
        return;
    };
    let alive = if stopping {
        flush(conn).is_ok() && conn.busy()
    } else {
        service(conn, token, ctx)
    };
    if !alive {
        if let Some(mut c) = conns.remove(&token) {
            let _ = poll.registry().deregister(&mut c.stream);
        }
        return;
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

/// Takes the update answers the update thread has sent back and goes on with their
/// connections; an answer whose connection has closed meanwhile is dropped quietly.
fn answers_back(
    poll: &mut Poll,
    conns: &mut HashMap<Token, Conn>,
    ctx: &mut Ctx<'_>,
    stopping: bool,
) {
    let Some(up) = ctx.updates.as_deref_mut() else {
        return;
    };
    let answers: Vec<TcpAnswer> = up.answers.try_iter().collect();
    for a in answers {
        let token = Token(a.token);
        match conns.get_mut(&token) {
            Some(conn) if conn.framer.awaiting_update() => {
                conn.framer.update_answered(&a.answer);
                let now = Instant::now();
                conn.last_active = now;
                // The next message's clock starts afresh: it waited on the update.
                conn.message_since = (conn.framer.buffered() > 0).then_some(now);
            }
            _ => {
                bump(&ctx.stats.update_answers_lost);
                continue;
            }
        }
        drive(poll, conns, token, ctx, stopping);
    }
}

fn accept_all(
    poll: &mut Poll,
    listener: &mut TcpListener,
    conns: &mut HashMap<Token, Conn>,
    next_token: &mut usize,
    limits: TcpLimits,
    stats: &WorkerStats,
    policy: Policy,
) {
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                if conns.len() >= limits.max_connections {
                    // At the cap: the connection idle the longest makes room, so that
                    // connections held open on purpose cannot lock everyone else out. One
                    // waiting for its update's answer is not idle.
                    let idlest = conns
                        .iter()
                        .filter(|(_, c)| !c.framer.awaiting_update())
                        .min_by_key(|(_, c)| c.last_active)
                        .map(|(t, _)| *t);
                    match idlest.and_then(|t| conns.remove(&t)) {
                        Some(mut old) => {
                            let _ = poll.registry().deregister(&mut old.stream);
                            bump(&stats.tcp_evicted);
                        }
                        None => {
                            drop(stream);
                            bump(&stats.tcp_refused);
                            continue;
                        }
                    }
                }
                bump(&stats.tcp_accepted);
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
                        peer,
                        framer: Framer::with_policy(policy),
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
/// the connection stays open. Nothing is read while an update's answer is awaited.
fn service(conn: &mut Conn, token: Token, ctx: &mut Ctx<'_>) -> bool {
    if flush(conn).is_err() || feed(conn, token, &[], ctx).is_err() {
        return false;
    }
    if conn.framer.buffered() == 0 {
        // The messages held back (by the backlog or an update) are answered: none arriving.
        conn.message_since = None;
    }
    let mut buf = [0u8; READ_CHUNK];
    while !conn.read_closed && !conn.framer.backlogged() && !conn.framer.awaiting_update() {
        match conn.stream.read(&mut buf) {
            Ok(0) => conn.read_closed = true,
            Ok(n) => {
                conn.last_active = Instant::now();
                let taken = conn.framer.messages();
                if feed(conn, token, &buf[..n], ctx).is_err() {
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
    // A client that sent an UPDATE and closed its side still gets the answer.
    !(conn.read_closed && conn.pending() == 0 && !conn.framer.awaiting_update())
}

/// Feeds `bytes` to the connection's framer and hands an UPDATE it stops at to the update
/// thread; when the queue is full the UPDATE is answered SERVFAIL and the stream goes on.
fn feed(conn: &mut Conn, token: Token, bytes: &[u8], ctx: &mut Ctx<'_>) -> Result<(), Close> {
    let snap = ctx.shared.load();
    let mut result = conn.framer.feed(bytes, &snap, ctx.scratch, ctx.stats);
    while let Some(msg) = conn.framer.take_update() {
        let Some(up) = ctx.updates.as_deref_mut() else {
            // Not reached: the framer hands updates on only when the loop has a queue.
            conn.framer.update_answered(&[]);
            result = result.and(conn.framer.feed(&[], &snap, ctx.scratch, ctx.stats));
            continue;
        };
        let job = Job {
            msg,
            client: conn.peer,
            reply: ReplyTo::Tcp {
                token: token.0,
                back: up.back.clone(),
            },
            max_len: usize::from(u16::MAX),
        };
        let Err(job) = up.queue.offer(job) else {
            break;
        };
        bump(&ctx.stats.update_queue_full);
        up.full.warn(format_args!(
            "update queue full: UPDATE from {} answered SERVFAIL",
            conn.peer
        ));
        let mut err = [0u8; HEADER_LEN];
        match header_error(&job.msg, &mut err, Rcode::SERVFAIL) {
            Some(r) => {
                ctx.stats.responded(OptRcode::SERVFAIL);
                conn.framer.update_answered(&err[..r.len]);
            }
            None => conn.framer.update_answered(&[]),
        }
        result = result.and(conn.framer.feed(&[], &snap, ctx.scratch, ctx.stats));
    }
    result
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

    /// An UPDATE message (zone `repl.co`, nothing else), length-prefixed.
    fn update_frame(id: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(b"\x04repl\x02co\x00\x00\x06\x00\x01");
        let mut f = (m.len() as u16).to_be_bytes().to_vec();
        f.extend(m);
        f
    }

    /// Like `run` under [`Policy::UPDATES`]: each UPDATE taken is checked to hold the
    /// stream (nothing more answered while it waits), then answered with itself, QR set.
    fn run_updates(snap: &Snapshot, chunks: &[&[u8]], stats: &WorkerStats) -> Vec<u8> {
        let mut scratch = vec![0u8; 65535];
        let mut f = Framer::with_policy(Policy::UPDATES);
        let mut out = Vec::new();
        for chunk in chunks {
            f.feed(chunk, snap, &mut scratch, stats).unwrap();
            loop {
                out.extend_from_slice(f.output());
                f.consume(f.pending());
                let took = match f.take_update() {
                    Some(mut u) => {
                        assert!(f.awaiting_update());
                        assert_eq!(f.take_update(), None, "taken once");
                        f.feed(&[], snap, &mut scratch, stats).unwrap();
                        assert_eq!(f.pending(), 0, "nothing answered while it waits");
                        u[2] |= 0x80;
                        f.update_answered(&u);
                        assert!(!f.awaiting_update());
                        true
                    }
                    None => false,
                };
                f.feed(&[], snap, &mut scratch, stats).unwrap();
                if !took && f.pending() == 0 {
                    break;
                }
            }
        }
        assert!(!f.awaiting_update());
        out
    }

    #[test]
    fn updates_between_pipelined_queries_keep_their_order_at_every_split() {
        let snap = snapshot();
        let mut s = frame(1, "coolgame.mark.repl.co", 1);
        s.extend(update_frame(2));
        s.extend(frame(3, "nope.mark.repl.co", 1));
        s.extend(update_frame(4));
        s.extend(update_frame(5));
        s.extend(frame(6, "huge.ann.repl.co", 28));
        let stats = WorkerStats::new(Transport::Tcp);
        let whole = run_updates(snap, &[&s], &stats);
        assert_eq!(stats.updates.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(stats.received.load(std::sync::atomic::Ordering::Relaxed), 6);
        let answers = frames(&whole);
        let ids: Vec<u16> = answers
            .iter()
            .map(|m| u16::from_be_bytes([m[0], m[1]]))
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        for u in [1, 3, 4] {
            assert_eq!(
                answers[u][2],
                0x80 | 0x28,
                "the handler's answer, opcode UPDATE"
            );
        }
        assert_eq!(answers[2][3] & 0x0f, 3, "NXDOMAIN");
        for i in 0..=s.len() {
            let got = run_updates(snap, &[&s[..i], &s[i..]], &stats);
            assert_eq!(got, whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(run_updates(snap, &bytes, &stats), whole);
        // Without updates the same stream is answered NOTIMP in place, nothing held.
        let (plain, _) = run(snap, &[&s]);
        let answers = frames(&plain);
        assert_eq!(answers.len(), 6);
        assert_eq!(answers[1][3] & 0x0f, 4, "NOTIMP");
    }

    #[test]
    fn an_update_without_answer_lets_the_stream_go_on() {
        let snap = snapshot();
        let stats = WorkerStats::new(Transport::Tcp);
        let mut scratch = vec![0u8; 65535];
        let mut f = Framer::with_policy(Policy::UPDATES);
        let mut s = update_frame(1);
        s.extend(frame(2, "coolgame.mark.repl.co", 1));
        f.feed(&s, snap, &mut scratch, &stats).unwrap();
        assert!(f.take_update().is_some());
        let rest = s.len() - update_frame(1).len();
        assert_eq!((f.pending(), f.buffered()), (0, rest));
        f.update_answered(&[]);
        f.feed(&[], snap, &mut scratch, &stats).unwrap();
        assert_eq!(frames(f.output()).len(), 1);
        assert_eq!(f.buffered(), 0);
        // An answer longer than a frame cannot be sent: dropped, the stream goes on.
        let mut f = Framer::with_policy(Policy::UPDATES);
        f.feed(&update_frame(3), snap, &mut scratch, &stats)
            .unwrap();
        f.take_update().unwrap();
        f.update_answered(&vec![0; 70_000]);
        assert_eq!(f.pending(), 0);
        assert!(!f.awaiting_update());
    }
}
