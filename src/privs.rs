//! Dropping root after the sockets are bound: switch to a configured user and its primary
//! group (supplementary groups cleared), keeping the right to run the fold thread at its
//! raised priority (RLIMIT_NICE).

use std::ffi::CString;
use std::io;

/// Switches the whole process (every thread) to `user`. A no-op check when already that user.
pub fn drop_to(user: &str) -> io::Result<()> {
    let name = CString::new(user).map_err(|_| io::Error::other("user name contains a NUL byte"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is read at once,
    // before any other call that could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(io::Error::other(format!("no such user {user:?}")));
    }
    // SAFETY: `pw` is non-null and points to a valid passwd record (see above).
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Err(e) = keep_nice(crate::feed::fold::FOLD_NICE) {
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

/// Lets the process go on raising a thread's priority to nice `nice` once it is no longer
/// root: Linux lets an unprivileged thread lower its nice value down to 20 - RLIMIT_NICE. Only
/// ever raises the limit.
pub fn keep_nice(nice: i32) -> io::Result<()> {
    let want = (20 - nice).clamp(0, 40) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(());
    }
    lim.rlim_cur = want;
    lim.rlim_max = lim.rlim_max.max(want);
    // SAFETY: `lim` is a valid rlimit; raising a limit needs privilege, else it fails.
    if unsafe { libc::setrlimit(libc::RLIMIT_NICE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nice_limit_is_raised_where_allowed_and_never_lowered() {
        let limit = || {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `lim` is a valid, writable rlimit.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) }, 0);
            lim.rlim_cur
        };
        let before = limit();
        match keep_nice(-5) {
            Ok(()) => assert!(limit() >= 25, "nice -5 needs a limit of 25"),
            Err(_) => assert_eq!(limit(), before),
        }
        // A weaker request leaves a higher limit alone.
        let now = limit();
        if now >= 10 {
            keep_nice(10).unwrap();
            assert_eq!(limit(), now);
        }
    }

    #[test]
    fn unknown_user_is_an_error() {
        let e = drop_to("no-such-user-clusterns").unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        assert!(drop_to("a\0b").is_err());
    }
}
