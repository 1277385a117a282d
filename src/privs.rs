//! Dropping root after the sockets are bound: switch to a configured user and its primary
//! group (supplementary groups cleared), keeping the right to run the fold thread at its
//! raised priority (RLIMIT_NICE, see `os::keep_nice`).

use std::ffi::CString;
use std::io;

/// The uid and primary gid of `user`.
pub fn lookup(user: &str) -> io::Result<(libc::uid_t, libc::gid_t)> {
    let name = CString::new(user).map_err(|_| io::Error::other("user name contains a NUL byte"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is read at once,
    // before any other call that could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(io::Error::other(format!("no such user {user:?}")));
    }
    // SAFETY: `pw` is non-null and points to a valid passwd record (see above).
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Switches the whole process (every thread) to `user`. A no-op check when already that user.
pub fn drop_to(user: &str) -> io::Result<()> {
    let (uid, gid) = lookup(user)?;
    if let Err(e) = crate::os::keep_nice(crate::os::FOLD_NICE) {
        tracing::warn!("cannot keep the fold thread's priority after dropping root: {e}");
    }
    // SAFETY: plain system calls on integers; glibc applies them to every thread.
    unsafe {
        if libc::getuid() == uid && libc::geteuid() == uid {
            return Ok(());
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setgid(gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(uid) != 0 {
            return Err(io::Error::last_os_error());
        }
        // Make sure there is no way back.
        if libc::setuid(0) == 0 && uid != 0 {
            return Err(io::Error::other("could regain root after dropping it"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_an_error() {
        let e = drop_to("no-such-user-clusterns").unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        assert!(drop_to("a\0b").is_err());
    }
}
