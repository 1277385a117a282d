//! The control socket and its thread: binds the socket (replacing a stale one, refusing a live
//! one), answers one connection at a time with bounded reads and writes, and removes the socket
//! when stopped. A bad client gets an `error` status line; nothing it sends can panic the thread
//! or hold it longer than the timeouts.

use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::commands::{execute, Context};
use super::protocol::{
    error_line, frame, parse_request, Framing, Request, RequestError, MAX_REQUEST, OK_LINE,
};
use super::REQUEST_TIMEOUT;

/// How long one write of a reply may block (a client that stops reading a dump).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the thread looks whether it is asked to stop.
const STOP_POLL_MS: i32 = 200;

/// The socket's mode: the service user and its group.
pub const SOCKET_MODE: u32 = 0o660;

/// A bound control socket, not yet answering.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's (device, inode): removed at stop only if it is still ours.
    identity: (u64, u64),
}

impl ControlServer {
    /// Binds the socket at `path` with mode 0660, owned by `owner` (uid, gid) when given (the
    /// service user, when the server starts as root). A socket file nothing answers on (left
    /// by a server that died) is replaced; one that answers is another server's: an error.
    pub fn bind(path: &Path, owner: Option<(u32, u32)>) -> Result<ControlServer, String> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(format!(
                    "control socket {shown} exists and is not a socket; remove it or set another \
                     [control] socket"
                ));
            }
            Ok(_) => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(format!(
                        "another clusterns is running on {shown} (its control socket answers); \
                         stop it or set another [control] socket"
                    ))
                }
                Err(e) => {
                    tracing::warn!(
                        "control socket {shown}: nothing answers on it ({e}); a server that \
                         stopped left it: replacing it"
                    );
                    std::fs::remove_file(path)
                        .map_err(|e| format!("removing the stale control socket {shown}: {e}"))?;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("control socket {shown}: {e}")),
        }
        let listener =
            UnixListener::bind(path).map_err(|e| format!("control socket {shown}: {e}"))?;
        let fail = |e: io::Error, what: &str| {
            let _ = std::fs::remove_file(path);
            format!("control socket {shown}: {what}: {e}")
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(|e| fail(e, "chmod 0660"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| fail(e, "chown to the service user"))?;
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| fail(e, "stat"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(e, "non-blocking"))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// Answers on its own thread. Until `ctx` is set (while the table loads) every request is
    /// answered with an error saying so.
    pub fn start(self, ctx: Arc<OnceLock<Context>>) -> io::Result<ControlHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let started = Instant::now();
        let ControlServer {
            listener,
            path,
            identity,
        } = self;
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if !readable(&listener) {
                        continue;
                    }
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let served =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    answer(stream, ctx.get(), started)
                                }));
                            if served.is_err() {
                                tracing::error!(
                                    "control: a request panicked; the socket keeps answering"
                                );
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            tracing::warn!("control: accept: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })?;
        Ok(ControlHandle {
            stop,
            thread: Some(thread),
            path,
            identity,
        })
    }
}

/// Waits up to `STOP_POLL_MS` for a connection to accept.
fn readable(listener: &UnixListener) -> bool {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, owned by this frame, for the call's length; the descriptor is
    // the listener's, open while it lives.
    let n = unsafe { libc::poll(&mut fd, 1, STOP_POLL_MS) };
    n > 0
}

/// The running control thread: stops it and removes the socket when stopped or dropped.
pub struct ControlHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    identity: (u64, u64),
}

impl ControlHandle {
    /// Where it answers.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops answering (a request being answered finishes first) and removes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(t) = self.thread.take() else { return };
        let _ = t.join();
        // Only our socket: another server may have replaced it since.
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.identity => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!("control socket {}: removing it: {e}", self.path.display());
                }
            }
            _ => {}
        }
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads one request and answers it; the connection closes after the status line.
fn answer(stream: UnixStream, ctx: Option<&Context>, started: Instant) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let request = read_request(&stream, Instant::now() + REQUEST_TIMEOUT);
    let mut out = BufWriter::with_capacity(64 * 1024, &stream);
    let outcome = match (&request, ctx) {
        (Err(e), _) => {
            tracing::warn!("control: bad request: {e}");
            Ok(Err(e.to_string()))
        }
        (Ok(_), None) => Ok(Err(format!(
            "the server is loading its table (started {:.0} s ago); try again once it answers",
            started.elapsed().as_secs_f64()
        ))),
        (Ok(r), Some(ctx)) => {
            match r {
                Request::Reload | Request::Checkpoint => {
                    tracing::info!("control: {}", r.to_line().trim_end())
                }
                _ => tracing::debug!("control: {}", r.to_line().trim_end()),
            }
            execute(r, ctx, &mut out)
        }
    };
    let sent = match outcome {
        Ok(Ok(())) => out.write_all(OK_LINE.as_bytes()),
        Ok(Err(message)) => out.write_all(error_line(&message).as_bytes()),
        Err(e) => Err(e),
    }
    .and_then(|()| out.flush());
    if let Err(e) = sent {
        tracing::debug!("control: the client went away: {e}");
    }
    drop(out);
    if request.is_err() {
        drain(&stream);
    }
}

/// Reads and drops a little of what a bad client is still sending, so that it can read the
/// error (a socket closed with unread data resets the connection): at most `DRAIN_BYTES`,
/// for at most `DRAIN_TIME`.
fn drain(mut stream: &UnixStream) {
    const DRAIN_BYTES: usize = 64 * 1024;
    const DRAIN_TIME: Duration = Duration::from_millis(200);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + DRAIN_TIME;
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < DRAIN_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Reads until the request's newline, at most `MAX_REQUEST` bytes, by `deadline`.
fn read_request(mut stream: &UnixStream, deadline: Instant) -> Result<Request, RequestError> {
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        match frame(&buf[..len]) {
            Framing::Line(n) => return parse_request(&buf[..n]),
            Framing::TooLong => return Err(RequestError::TooLong),
            Framing::Incomplete => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RequestError::Timeout);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(RequestError::Incomplete);
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(RequestError::Incomplete),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(RequestError::Timeout)
            }
            Err(_) => return Err(RequestError::Incomplete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn temp_socket() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctl.sock");
        (dir, p)
    }

    fn ask(path: &Path, bytes: &[u8]) -> Vec<String> {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        io::BufReader::new(s).lines().map(|l| l.unwrap()).collect()
    }

    #[test]
    fn a_live_socket_is_refused_a_stale_one_replaced_and_ours_removed() {
        let (_dir, path) = temp_socket();
        let first = ControlServer::bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let e = ControlServer::bind(&path, None).err().unwrap();
        assert!(e.contains("another clusterns is running on"), "{e}");
        // Stale: the listener is gone, the file stays.
        drop(first);
        assert!(path.exists());
        let handle = ControlServer::bind(&path, None)
            .unwrap()
            .start(Arc::new(OnceLock::new()))
            .unwrap();
        // Not loaded yet: an error that says so.
        let reply = ask(&path, b"clusterns-ctl/1 status\n");
        assert_eq!(reply.len(), 1);
        assert!(
            reply[0].starts_with("error the server is loading"),
            "{reply:?}"
        );
        handle.stop();
        assert!(!path.exists(), "removed at stop");
        std::fs::write(&path, "not a socket").unwrap();
        let e = ControlServer::bind(&path, None).err().unwrap();
        assert!(e.contains("is not a socket"), "{e}");
    }

    #[test]
    fn bad_requests_get_an_error_status_and_the_socket_keeps_answering() {
        let (_dir, path) = temp_socket();
        let handle = ControlServer::bind(&path, None)
            .unwrap()
            .start(Arc::new(OnceLock::new()))
            .unwrap();
        let long = vec![b'x'; MAX_REQUEST * 4];
        for (bytes, says) in [
            (&long[..], "longer than"),
            (b"GET / HTTP/1.0\r\n", "not a control request"),
            (b"clusterns-ctl/1 \xff\n", "not printable"),
            (b"clusterns-ctl/9 status\n", "unsupported protocol"),
        ] {
            let reply = ask(&path, bytes);
            assert_eq!(reply.len(), 1, "{reply:?}");
            assert!(
                reply[0].starts_with("error ") && reply[0].contains(says),
                "{reply:?}"
            );
        }
        // A client that sends half a request and waits is answered at the timeout.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"clusterns-ctl/1 sta").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let started = Instant::now();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("error no complete request"), "{text}");
        assert!(started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(3));
        // One that closes its side early.
        let s = UnixStream::connect(&path).unwrap();
        (&s).write_all(b"clusterns-ctl/1 status").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut text = String::new();
        (&s).read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with("error request not ended by a newline"),
            "{text}"
        );
        handle.stop();
    }
}
