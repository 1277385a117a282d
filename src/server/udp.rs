//! A UDP worker: one SO_REUSEPORT socket, one thread, batches of datagrams received with
//! `recvmmsg` and answered with `sendmmsg`. The snapshot is loaded once per batch; nothing is
//! allocated and no lock is taken per packet. An UPDATE message (when the server takes
//! them) is copied and queued for the update thread, which answers from this same socket.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::RrlConfig;
use crate::prefetch::BatchLookups;
use domain::base::iana::Rcode;

use crate::query::{header_error, respond_with, Policy, Response, ResponseClass, Transport};
use crate::server::batch::{Datagrams, BATCH};
use crate::server::coalesce::Coalescer;
use crate::server::rrl::{Rrl, Verdict};
use crate::server::stats::{bump, WorkerStats};
use crate::server::update::{udp_limit, Job, ReplyTo, Throttle, UpdateQueue};
use crate::snapshot::SharedSnapshot;
use crate::wire::{name_text, question_name, truncate};

/// Per-worker options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub rrl: RrlConfig,
    /// Log one query in this many (0: none).
    pub query_log_sample: u64,
    /// Receive coalescing wait in microseconds (0: off); see `coalesce`.
    pub coalesce_us: u32,
}

/// Logs one query (the sampled query log) as dig names things: `client=192.0.2.1:5353
/// qname=game.mark.repl.co. qtype=A rcode=NOERROR` (`-` for what is not known).
fn log_query(client: Option<std::net::SocketAddr>, pkt: &[u8], resp: &Response) {
    if let (Some(qtype), Some(qname)) = (resp.qtype, question_name(pkt)) {
        let client = client.map_or_else(|| "-".to_string(), |c| c.to_string());
        let rcode = resp
            .rcode
            .map_or_else(|| "-".to_string(), |r| r.to_string());
        tracing::info!(
            target: "clusterns::query",
            client = %client,
            qname = %name_text(qname),
            qtype = %qtype,
            rcode = %rcode,
            "query"
        );
    }
}

/// A worker's way to the update thread.
pub struct Updates {
    queue: UpdateQueue,
    /// The worker's own socket, for the update thread to answer from.
    sock: Arc<UdpSocket>,
    full: Throttle,
}

/// Hands the UPDATE message `pkt` from `client` to the update thread, or, when its queue is
/// full, writes a SERVFAIL into `tx`; one cut by the receive buffer (`cut`, longer than
/// [`crate::server::batch::RX_SIZE`]) is not handed on but answered FORMERR. Returns what was
/// written (nothing when handed on).
#[cold]
#[inline(never)]
fn hand_on(
    up: &mut Updates,
    pkt: &[u8],
    cut: bool,
    client: Option<SocketAddr>,
    payload: u16,
    tx: &mut [u8],
    stats: &WorkerStats,
) -> Response {
    let Some(client) = client else {
        return Response::DROPPED;
    };
    bump(&stats.updates);
    if cut {
        return header_error(pkt, tx, Rcode::FORMERR).unwrap_or(Response::DROPPED);
    }
    let job = Job {
        msg: pkt.to_vec(),
        client,
        reply: ReplyTo::Udp(up.sock.clone()),
        max_len: udp_limit(pkt, payload),
    };
    match up.queue.offer(job) {
        Ok(()) => {
            bump(&stats.received);
            Response::UPDATE
        }
        Err(_) => {
            bump(&stats.update_queue_full);
            up.full.warn(format_args!(
                "update queue full: UPDATE from {client} answered SERVFAIL"
            ));
            header_error(pkt, tx, Rcode::SERVFAIL).unwrap_or(Response::DROPPED)
        }
    }
}

/// Runs a worker until `stop` is set. The socket must have a receive timeout so that the
/// worker notices `stop`. With `updates`, UPDATE messages go to the update thread; without,
/// they get NOTIMP.
pub fn run(
    sock: UdpSocket,
    shared: SharedSnapshot,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    opts: Options,
    updates: Option<UpdateQueue>,
) {
    let sock = Arc::new(sock);
    let fd = sock.as_raw_fd();
    let policy = Policy {
        updates: updates.is_some(),
    };
    let mut updates = updates.map(|queue| Updates {
        queue,
        sock: sock.clone(),
        full: Throttle::default(),
    });
    let mut b = Datagrams::new();
    let mut limiter = Rrl::new(opts.rrl);
    let mut until_log = opts.query_log_sample;
    let epoch = std::time::Instant::now();
    let mut coalescer = Coalescer::new(opts.coalesce_us);
    while !stop.load(Ordering::Relaxed) {
        let n = match b.recv(fd) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("recvmmsg: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let started = std::time::Instant::now();
        let snap = shared.load();
        // Every lookup's slot is fetched, then every record: the batch's memory latencies
        // overlap before the answers need them.
        let fetch = BatchLookups::start(&snap, (0..n).map(|i| b.datagram(i).0));
        for i in 0..n {
            fetch.record(&snap, i);
        }
        let mut out = 0;
        for i in 0..n {
            let (pkt, truncated_rx, tx) = b.datagram_and_tx(i, out);
            let mut handled = respond_with(&snap, pkt, tx, Transport::Udp, policy);
            if handled.class == ResponseClass::Update {
                if let Some(up) = &mut updates {
                    let source = b.source(i);
                    let payload = snap.served.udp_payload;
                    let (pkt, cut, tx) = b.datagram_and_tx(i, out);
                    handled = hand_on(up, pkt, cut, source, payload, tx, &stats);
                }
                if handled.class == ResponseClass::Update {
                    continue;
                }
            }
            stats.record(&handled, truncated_rx);
            if until_log > 0 {
                until_log -= 1;
                if until_log == 0 {
                    until_log = opts.query_log_sample;
                    log_query(b.source(i), b.datagram(i).0, &handled);
                }
            }
            if handled.len == 0 {
                continue;
            }
            let mut len = handled.len;
            if let Some(limiter) = &mut limiter {
                if let Some(client) = b.source(i) {
                    let now = epoch.elapsed().as_secs() as u32;
                    match limiter.check(client, handled.class, now) {
                        Verdict::Send => {}
                        Verdict::Slip => {
                            bump(&stats.rate_limited);
                            // A slipped reply goes out with TC set: count it as truncated
                            // (unless the encoder had truncated it already and counted it).
                            if !handled.truncated {
                                bump(&stats.truncated);
                            }
                            len = truncate(&mut b.tx[out], usize::from(handled.question_end));
                        }
                        Verdict::Drop => {
                            bump(&stats.rate_limited);
                            continue;
                        }
                    }
                }
            }
            b.queue(out, i, len);
            out += 1;
        }
        drop(snap);
        let sent = b.send(fd, out);
        for _ in 0..sent.refused {
            stats.send_error();
        }
        stats.record_latency(started.elapsed().as_nanos() as u64, n as u64);
        coalescer.after_batch(n, BATCH);
    }
}
