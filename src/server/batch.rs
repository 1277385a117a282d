//! The batched datagram path shared by the UDP workers and the floor responder
//! (`tools/floor.rs`): per-worker buffers and message headers, one `recvmmsg` for up to
//! `BATCH` datagrams and `sendmmsg` for the answers, so that both measure the same syscalls.

use std::io;
use std::mem::{size_of, zeroed};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;
/// The receive buffer per datagram: larger queries are cut (and flagged truncated).
pub const RX_SIZE: usize = 4096;
/// The transmit buffer per datagram: at least the largest UDP payload the config allows.
pub const TX_SIZE: usize = 4096;

/// A batch's datagrams: the receive and answer buffers and their message headers, allocated
/// once per worker (boxed, so the headers' pointers into it stay valid).
pub struct Datagrams {
    rx: Vec<[u8; RX_SIZE]>,
    /// Answer buffers: fill `tx[k]`, then `queue(k, i, len)` to answer datagram `i` with it.
    pub tx: Vec<[u8; TX_SIZE]>,
    addrs: [libc::sockaddr_storage; BATCH],
    rx_iov: [libc::iovec; BATCH],
    tx_iov: [libc::iovec; BATCH],
    rx_msgs: [libc::mmsghdr; BATCH],
    tx_msgs: [libc::mmsghdr; BATCH],
}

/// What `send` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub ok: usize,
    /// Answers the kernel refused (an unreachable address, say): skipped.
    pub refused: usize,
}

impl Datagrams {
    pub fn new() -> Box<Datagrams> {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are C structs of integers and raw
        // pointers, for which all-zero is a valid value; pointers are set before use.
        let (addrs, rx_iov, tx_iov, rx_msgs, tx_msgs) =
            unsafe { (zeroed(), zeroed(), zeroed(), zeroed(), zeroed()) };
        let mut b = Box::new(Datagrams {
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

    /// Waits for at least one datagram on `fd` and takes up to `BATCH`; returns how many:
    /// 0 when the socket's receive timeout passed or a signal came, an error otherwise.
    pub fn recv(&mut self, fd: libc::c_int) -> io::Result<usize> {
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
        // SAFETY: `rx_msgs` holds BATCH initialised headers whose name and iovec pointers
        // point into `self`, which outlives the call; the kernel writes at most BATCH entries.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.rx_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted
                | io::ErrorKind::TimedOut => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last `recv`, and whether it was cut to `RX_SIZE`.
    #[inline]
    pub fn datagram(&self, i: usize) -> (&[u8], bool) {
        let (len, truncated) = self.received(i);
        (&self.rx[i][..len], truncated)
    }

    /// Datagram `i` of the last `recv` (and whether it was cut), with answer buffer `k`.
    #[inline]
    pub fn datagram_and_tx(&mut self, i: usize, k: usize) -> (&[u8], bool, &mut [u8]) {
        let (len, truncated) = self.received(i);
        (&self.rx[i][..len], truncated, &mut self.tx[k][..])
    }

    /// The length kept of datagram `i` of the last `recv`, and whether it was cut.
    #[inline]
    fn received(&self, i: usize) -> (usize, bool) {
        let len = self.rx_msgs[i].msg_len as usize;
        let truncated = self.rx_msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (len.min(RX_SIZE), truncated)
    }

    /// The sender of datagram `i` of the last `recv`.
    pub fn source(&self, i: usize) -> Option<std::net::SocketAddr> {
        to_socket_addr(&self.addrs[i])
    }

    /// Makes `tx[k][..len]` the `k`-th answer to send, to the sender of datagram `i`.
    #[inline]
    pub fn queue(&mut self, k: usize, i: usize, len: usize) {
        self.tx_iov[k] = libc::iovec {
            iov_base: self.tx[k].as_mut_ptr().cast(),
            iov_len: len,
        };
        let h = &mut self.tx_msgs[k].msg_hdr;
        h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = self.rx_msgs[i].msg_hdr.msg_namelen;
        h.msg_iov = &mut self.tx_iov[k];
        h.msg_iovlen = 1;
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
    }

    /// Sends the first `count` queued answers, retrying after partial sends and waiting for
    /// room when the socket buffer is full; an answer the kernel refuses is skipped.
    pub fn send(&mut self, fd: libc::c_int, count: usize) -> Sent {
        let msgs = &mut self.tx_msgs[..count];
        let mut done = Sent::default();
        let mut at = 0;
        while at < msgs.len() {
            let rest = &mut msgs[at..];
            // SAFETY: `rest` holds headers set by `queue`, pointing into `self`'s buffers,
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
                done.refused += 1;
                at += 1;
            } else {
                done.ok += r as usize;
                at += r as usize;
            }
        }
        done
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::unix::io::AsRawFd;
    use std::time::Duration;

    #[test]
    fn receives_a_batch_and_answers_each_sender() {
        let addr = crate::server::free_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = crate::server::udp_socket(addr).unwrap();
        let addr = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for i in 0..3u8 {
            client.send_to(&[i; 5], addr).unwrap();
        }
        let big = vec![9u8; RX_SIZE + 10];
        client.send_to(&big, addr).unwrap();

        let mut b = Datagrams::new();
        let mut got = Vec::new();
        let mut last = 0;
        while got.len() < 4 {
            let n = b.recv(server.as_raw_fd()).unwrap();
            last = n;
            for i in 0..n {
                let (d, cut) = b.datagram(i);
                assert_eq!(b.source(i), Some(client.local_addr().unwrap()));
                got.push((d.to_vec(), cut));
            }
        }
        assert_eq!(got[0], (vec![0u8; 5], false));
        assert_eq!(got[2], (vec![2u8; 5], false));
        assert_eq!(got[3].0.len(), RX_SIZE);
        assert!(got[3].1, "an oversized datagram is flagged as cut");

        // Answer the datagrams of the last receive, in reverse order, with their first byte.
        assert!(last > 0);
        for (k, i) in (0..last).rev().enumerate() {
            let first = b.datagram(i).0[0];
            b.tx[k][..3].copy_from_slice(&[first, 0xaa, 0xbb]);
            b.queue(k, i, 3);
        }
        let sent = b.send(server.as_raw_fd(), last);
        assert_eq!(
            sent,
            Sent {
                ok: last,
                refused: 0
            }
        );
        let mut buf = [0u8; 16];
        for _ in 0..last {
            let (len, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            assert_eq!(&buf[1..len], &[0xaa, 0xbb]);
        }
    }
}
