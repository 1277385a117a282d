//! The update thread: DNS UPDATE messages (opcode 5) that the UDP workers and the TCP loop
//! take off the wire are copied into a bounded queue and handled here, one at a time, by the
//! server's [`UpdateHandler`] (which may block: it writes durably). Its answer goes back the
//! way the message came: a UDP answer is sent from the socket the message arrived on (so
//! from the address and port the client asked), a TCP answer is handed to the TCP loop,
//! which writes it on its connection in order. The handler's `tick` runs about once a
//! second. When every sender is gone (the server stops) the queue is finished first, so a
//! message once accepted is always answered.
//!
//! Queries never come here: the copy, the allocation and the queue are for UPDATE only.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use domain::base::iana::Rcode;
use domain::base::Message;

use crate::query::{header_error, Transport};
use crate::server::stats::bump;
use crate::wire::header::{CLASSIC_UDP_LIMIT, HEADER_LEN, QDCOUNT};
use crate::wire::truncate;

/// Handles one UPDATE message; may block (it writes durably). Runs on the update thread only.
pub trait UpdateHandler: Send + 'static {
    /// Answers `msg` (a whole UPDATE message, as received) from `client` over `transport` by
    /// writing the response into `out` (empty when called); an empty `out` sends nothing.
    ///
    /// `max_len` is the largest answer the client takes: over UDP 512 without EDNS, else
    /// its OPT size clamped to 512..=the server's UDP payload size; over TCP 65535. An
    /// answer that does not fit should be truncated by the handler itself (TC set, header
    /// and zone section, and, for a signed request, signed: RFC 8945 §5.3), so that the
    /// client retries over TCP. The server cuts a longer answer down to its header and zone
    /// section with TC set as a last resort (which drops a TSIG record: the client then
    /// retries over TCP all the same).
    fn handle(
        &mut self,
        msg: &[u8],
        client: SocketAddr,
        transport: Transport,
        max_len: usize,
        out: &mut Vec<u8>,
    );

    /// Periodic work (expiring records, say), about once a second, between messages.
    fn tick(&mut self, _now: Instant) {}
}

/// UPDATE messages waiting for the update thread; one more is answered SERVFAIL.
pub const QUEUE_DEPTH: usize = 64;
/// How often the handler's `tick` runs.
pub const TICK: Duration = Duration::from_secs(1);
/// At most one WARN per this long for the same kind of trouble.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The update thread's counters (it alone writes them).
#[derive(Debug, Default)]
pub struct UpdateStats {
    /// Answers sent over UDP, and handed to the TCP loop.
    pub answered_udp: AtomicU64,
    pub answered_tcp: AtomicU64,
    /// Messages the handler gave no answer to.
    pub unanswered: AtomicU64,
    /// Answers longer than the client's limit, cut down by the server (TC set).
    pub truncated: AtomicU64,
    /// UDP answers the kernel would not send.
    pub send_errors: AtomicU64,
    /// Messages whose handler panicked (answered SERVFAIL).
    pub panics: AtomicU64,
}

/// Where a TCP answer goes: the TCP loop's answer channel and the waker of its poll.
#[derive(Clone)]
pub struct TcpReturn {
    pub tx: Sender<TcpAnswer>,
    pub waker: Arc<mio::Waker>,
}

/// An answer for the TCP connection `token`; empty when nothing is to be sent (the
/// connection goes on reading all the same).
#[derive(Debug)]
pub struct TcpAnswer {
    pub token: usize,
    pub answer: Vec<u8>,
}

/// Where an answer goes.
pub enum ReplyTo {
    /// Sent from this socket (the one the message came on) to the client.
    Udp(Arc<UdpSocket>),
    /// Written on the TCP connection with this token.
    Tcp { token: usize, back: TcpReturn },
}

/// One UPDATE message, owned, with where its answer goes.
pub struct Job {
    pub msg: Vec<u8>,
    pub client: SocketAddr,
    pub reply: ReplyTo,
    pub max_len: usize,
}

impl Job {
    fn transport(&self) -> Transport {
        match self.reply {
            ReplyTo::Udp(_) => Transport::Udp,
            ReplyTo::Tcp { .. } => Transport::Tcp,
        }
    }
}

/// The sending side of the update queue, one per worker.
#[derive(Clone)]
pub struct UpdateQueue {
    tx: Sender<Job>,
}

/// The update queue: its sending side for the workers and its receiving side for the update
/// thread. The thread stops once every [`UpdateQueue`] is dropped and the queue is empty.
pub fn queue(depth: usize) -> (UpdateQueue, Receiver<Job>) {
    let (tx, rx) = crossbeam_channel::bounded(depth);
    (UpdateQueue { tx }, rx)
}

impl UpdateQueue {
    /// Queues `job` without waiting; gives it back when the queue is full (or the update
    /// thread is gone).
    pub fn offer(&self, job: Job) -> Result<(), Job> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }
}

/// A WARN at most every 10 s (`WARN_EVERY`), saying how many were held back in between.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// Logs `what` now, unless it was logged less than 10 s (`WARN_EVERY`) ago.
    pub fn warn(&mut self, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.held_back += 1;
            return;
        }
        let held_back = std::mem::take(&mut self.held_back);
        self.last = Some(now);
        tracing::warn!(held_back, "{what}");
    }
}

/// The largest UDP answer to `msg` when this server's UDP payload size is `payload`: 512
/// without EDNS, else the client's OPT size clamped to 512..=`payload` (as for queries,
/// `query::edns::size_limit`). The message is read with `domain`.
pub fn udp_limit(msg: &[u8], payload: u16) -> usize {
    let opt = Message::from_slice(msg).ok().and_then(|m| m.opt());
    match opt {
        Some(o) => usize::from(
            o.udp_payload_size()
                .clamp(CLASSIC_UDP_LIMIT, payload.max(CLASSIC_UDP_LIMIT)),
        ),
        None => usize::from(CLASSIC_UDP_LIMIT),
    }
}

/// Cuts an answer down to its header and zone section (the first section, as a query's
/// question), TC set, every other count zero (`wire::truncate`). An answer whose zone
/// section does not parse keeps only its header.
pub fn cut(answer: &mut Vec<u8>) {
    if answer.len() < HEADER_LEN {
        answer.clear();
        return;
    }
    let zone_end = Message::from_slice(answer.as_slice())
        .ok()
        .and_then(|m| {
            let mut q = m.question();
            for entry in &mut q {
                entry.ok()?;
            }
            Some(q.pos())
        })
        .filter(|&end| end <= answer.len());
    let end = match zone_end {
        Some(end) => end,
        None => {
            answer[QDCOUNT..QDCOUNT + 2].fill(0);
            HEADER_LEN
        }
    };
    let len = truncate(answer, end);
    answer.truncate(len);
}

/// Runs the update thread: handles every job from `jobs` with `handler` and sends its
/// answer, ticking about once a second, until every sender is dropped and the queue is
/// empty.
pub fn run(mut handler: Box<dyn UpdateHandler>, jobs: Receiver<Job>, stats: Arc<UpdateStats>) {
    let mut next_tick = Instant::now() + TICK;
    let mut warn = Throttle::default();
    loop {
        let now = Instant::now();
        if now >= next_tick {
            if catch_unwind(AssertUnwindSafe(|| handler.tick(now))).is_err() {
                tracing::error!("the update handler panicked in tick");
                bump(&stats.panics);
            }
            next_tick = now + TICK;
        }
        match jobs.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(job) => handle(handler.as_mut(), job, &stats, &mut warn),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Handles one job and sends its answer.
fn handle(handler: &mut dyn UpdateHandler, job: Job, stats: &UpdateStats, warn: &mut Throttle) {
    let transport = job.transport();
    let mut out = Vec::new();
    let handled = catch_unwind(AssertUnwindSafe(|| {
        handler.handle(&job.msg, job.client, transport, job.max_len, &mut out)
    }));
    if handled.is_err() {
        tracing::error!(client = %job.client, "the update handler panicked; answered SERVFAIL");
        bump(&stats.panics);
        out.clear();
        let mut buf = [0u8; HEADER_LEN];
        if let Some(r) = header_error(&job.msg, &mut buf, Rcode::SERVFAIL) {
            out.extend_from_slice(&buf[..r.len]);
        }
    }
    if out.is_empty() {
        bump(&stats.unanswered);
    } else if out.len() > job.max_len {
        cut(&mut out);
        bump(&stats.truncated);
    }
    match job.reply {
        ReplyTo::Udp(sock) => {
            if out.is_empty() {
                return;
            }
            match sock.send_to(&out, job.client) {
                Ok(_) => bump(&stats.answered_udp),
                Err(e) => {
                    bump(&stats.send_errors);
                    warn.warn(format_args!("update answer to {}: {e}", job.client));
                }
            }
        }
        ReplyTo::Tcp { token, back } => {
            if !out.is_empty() {
                bump(&stats.answered_tcp);
            }
            // The TCP loop is gone only when the server stops: the answer has nowhere to go.
            if back.tx.send(TcpAnswer { token, answer: out }).is_ok() {
                let _ = back.waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Mutex;

    /// An UPDATE header with `id`, a zone section for `repl.co` SOA, and `extra` bytes.
    fn update(id: u16, extra: &[u8]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(b"\x04repl\x02co\x00\x00\x06\x00\x01");
        m.extend_from_slice(extra);
        m
    }

    /// A message the handler saw, its transport and size limit.
    type Seen = (Vec<u8>, Transport, usize);

    /// Echoes the message with QR set, padded to `pad` bytes; records what it saw.
    struct Echo {
        pad: usize,
        seen: Arc<Mutex<Vec<Seen>>>,
        ticks: Arc<AtomicU64>,
    }

    impl UpdateHandler for Echo {
        fn handle(
            &mut self,
            msg: &[u8],
            _: SocketAddr,
            t: Transport,
            max: usize,
            out: &mut Vec<u8>,
        ) {
            self.seen.lock().unwrap().push((msg.to_vec(), t, max));
            if msg[2] & 0x78 == 0 {
                panic!("not an update");
            }
            out.extend_from_slice(msg);
            out[2] |= 0x80;
            out.resize(out.len().max(self.pad), 0);
        }
        fn tick(&mut self, _: Instant) {
            self.ticks.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn udp_limit_follows_edns() {
        assert_eq!(udp_limit(&update(1, &[]), 1232), 512);
        let mut m = update(1, &[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        m[11] = 1; // ARCOUNT
        assert_eq!(udp_limit(&m, 1232), 1232, "4096 asked, 1232 served");
        m[28..30].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(udp_limit(&m, 1232), 1000);
        m[28..30].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(udp_limit(&m, 1232), 512);
        assert_eq!(udp_limit(b"junk", 1232), 512);
    }

    #[test]
    fn cut_keeps_header_and_zone_with_tc() {
        let mut a = update(7, &[1, 2, 3, 4, 5]);
        a[7] = 1; // ANCOUNT, not true but zeroed
        cut(&mut a);
        assert_eq!(a, {
            let mut b = update(7, &[]);
            b[2] |= 0x02;
            b
        });
        let mut broken = update(7, &[]);
        broken.truncate(16);
        cut(&mut broken);
        assert_eq!(broken.len(), HEADER_LEN);
        assert_eq!(broken[4..6], [0, 0]);
        assert_eq!(broken[2] & 0x02, 0x02);
        let mut runt = vec![1, 2, 3];
        cut(&mut runt);
        assert!(runt.is_empty());
    }

    #[test]
    fn queue_is_bounded_and_answers_go_back_by_transport() {
        let (q, rx) = queue(2);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let caddr = client.local_addr().unwrap();
        let udp = |id, max_len| Job {
            msg: update(id, &[]),
            client: caddr,
            reply: ReplyTo::Udp(sock.clone()),
            max_len,
        };
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(9)).unwrap());
        let (atx, arx) = crossbeam_channel::unbounded();
        let back = TcpReturn { tx: atx, waker };
        assert!(q.offer(udp(1, 512)).is_ok());
        assert!(q
            .offer(Job {
                msg: update(2, &[]),
                client: caddr,
                // The TCP loop holds its waker: one that is dropped leaves the poll.
                reply: ReplyTo::Tcp {
                    token: 5,
                    back: back.clone(),
                },
                max_len: 65535,
            })
            .is_ok());
        let full = q.offer(udp(3, 512)).expect_err("the queue holds two");
        assert_eq!(full.msg, update(3, &[]));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ticks = Arc::new(AtomicU64::new(0));
        let handler = Box::new(Echo {
            pad: 600,
            seen: seen.clone(),
            ticks: ticks.clone(),
        });
        let stats = Arc::new(UpdateStats::default());
        let st = stats.clone();
        let q2 = q.clone();
        let t = std::thread::spawn(move || run(handler, rx, st));
        // A too-long UDP answer is cut to header and zone with TC; the TCP one is whole.
        let mut buf = [0u8; 2048];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, sock.local_addr().unwrap());
        let mut want = update(1, &[]);
        want[2] |= 0x80 | 0x02;
        assert_eq!(&buf[..n], want);
        let a = arx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(a.token, 5);
        assert_eq!(a.answer.len(), 600);
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(events.iter().next().map(|e| e.token()), Some(mio::Token(9)));
        // A panicking handler answers SERVFAIL and the thread goes on.
        let mut query = update(4, &[]);
        query[2] = 0;
        q2.offer(Job {
            msg: query,
            ..udp(4, 512)
        })
        .ok()
        .unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!((n, buf[3] & 0x0f), (HEADER_LEN, 2));
        std::thread::sleep(Duration::from_millis(1100));
        drop(q);
        drop(q2);
        t.join().unwrap();
        assert_eq!(stats.answered_udp.load(Relaxed), 2);
        assert_eq!(stats.answered_tcp.load(Relaxed), 1);
        assert_eq!(stats.truncated.load(Relaxed), 1);
        assert_eq!(stats.panics.load(Relaxed), 1);
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].1, Transport::Udp);
        assert_eq!((seen[1].1, seen[1].2), (Transport::Tcp, 65535));
        assert!(ticks.load(Relaxed) >= 1, "ticks about once a second");
    }

    #[test]
    fn the_queue_is_finished_before_the_thread_stops() {
        let (q, rx) = queue(8);
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for id in 0..5 {
            q.offer(Job {
                msg: update(id, &[]),
                client: client.local_addr().unwrap(),
                reply: ReplyTo::Udp(sock.clone()),
                max_len: 512,
            })
            .ok()
            .unwrap();
        }
        drop(q);
        let handler = Box::new(Echo {
            pad: 0,
            seen: Default::default(),
            ticks: Default::default(),
        });
        run(handler, rx, Arc::new(UpdateStats::default()));
        let mut buf = [0u8; 512];
        for id in 0..5u16 {
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(buf[..2], id.to_be_bytes());
            assert_eq!(n, update(id, &[]).len());
        }
    }
}
