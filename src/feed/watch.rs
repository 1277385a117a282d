//! Waiting for the journal to grow: an inotify watch on the journal file, so that an idle
//! builder sleeps until a writer appends (and answers a lone change at once) instead of
//! waking every poll interval to look. Best effort: where no watch can be set (no inotify, no
//! file yet) the builder polls as before, and a watch that misses an event (the file replaced
//! under it) only delays the next look by `wait`'s timeout.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// An inotify watch on one file.
pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    /// A watch for writes to `path`, or `None` where one cannot be set.
    pub fn new(path: &Path) -> Option<Watch> {
        let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor just opened here and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
        // SAFETY: `fd` is an inotify descriptor and `c_path` a NUL-terminated path that
        // outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c_path.as_ptr(), mask) };
        (wd >= 0).then_some(Watch { fd })
    }

    /// Discards the events that have arrived.
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer owned by this frame, at most its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
        }
    }

    /// Waits up to `timeout` for an event (one that arrived since the last `drain` counts);
    /// returns whether one came.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, owned by this frame.
        unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn wakes_on_appends_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        assert!(Watch::new(&path).is_none(), "no file, no watch");
        std::fs::write(&path, "1 delete a\n").unwrap();
        let w = Watch::new(&path).expect("inotify works here");
        assert!(!w.wait(Duration::from_millis(20)));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2 delete b\n").unwrap();
        assert!(w.wait(Duration::from_secs(5)));
        // Still pending until drained.
        assert!(w.wait(Duration::ZERO));
        w.drain();
        assert!(!w.wait(Duration::from_millis(20)));
    }
}
