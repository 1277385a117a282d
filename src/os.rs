//! The operating-system calls outside the socket path, each behind a small safe wrapper:
//! thread priority (`setpriority`) and the limit that keeps it after dropping root
//! (`RLIMIT_NICE`), the allocator's tuning (`mallopt`, `malloc_trim`), the journal writers'
//! lock (`flock`) and the query threads' timer slack (`prctl`). Where a call does not exist
//! (not Linux, not glibc) the wrapper does nothing and says so.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The nice value of the fold thread, when the process may set it. Measured on 2 CPUs with a
/// query thread on each: at nice -5 a fold at 1M apps took a third to a half of its time at
/// nice 0 and cost the query threads about a third less in all (perf/RESULTS.md); a higher
/// priority would starve the query thread that shares its CPU for longer slices.
pub const FOLD_NICE: i32 = -5;

/// Sets the calling thread's nice value to `nice`, if the process may (root, CAP_SYS_NICE,
/// or an RLIMIT_NICE that allows it, see [`keep_nice`]); otherwise the thread keeps its
/// priority. Returns whether it was set.
pub fn set_thread_nice(nice: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority only reads its arguments and
        // applies to this thread alone (Linux nice values are per thread).
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        false
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn thread_nice() -> i32 {
    // SAFETY: gettid has no preconditions; getpriority only reads its arguments.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

/// Lets the process go on raising a thread's priority to nice `nice` once it is no longer
/// root: Linux lets an unprivileged thread lower its nice value down to 20 - RLIMIT_NICE. Only
/// ever raises the limit.
pub fn keep_nice(nice: i32) -> io::Result<()> {
    let want = (20 - nice).clamp(0, 40) as libc::rlim_t;
    let mut lim = nice_limit()?;
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

/// The process's RLIMIT_NICE.
pub fn nice_limit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Sets the allocator's threshold for serving large allocations with fresh pages (glibc
/// otherwise raises it as large blocks are freed). Call before any thread starts.
pub fn set_mmap_threshold(bytes: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; the caller runs it before any
    // thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

/// Hands the allocator's free memory back to the kernel (glibc keeps what a replay or a
/// fold freed, hundreds of megabytes at 1M apps, otherwise).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Restores the default action of SIGPIPE (end the process quietly), as command-line tools
/// have it. The Rust runtime ignores SIGPIPE, so printing to a closed pipe (`clusterns
/// check-config ... | head`) would otherwise panic. Not for the server: its TCP writes must
/// see EPIPE as an error on one connection. Call before any thread starts.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no handler and touches no memory of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Takes an exclusive `flock` on `file`, waiting for it; released when the file is closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor `file` owns and keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the calling thread's timer slack (how late the kernel may wake its timed sleeps) to
/// `ns` nanoseconds. Best effort: where it cannot be set the default (50 us) stays.
pub fn set_timer_slack(ns: u64) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes an integer and only affects the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ns;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_priority_is_refused_or_applied_to_this_thread_alone() {
        let before = thread_nice();
        let want = before - 1;
        let (set, now) = std::thread::spawn(move || (set_thread_nice(want), thread_nice()))
            .join()
            .unwrap();
        assert_eq!(now, if set { want } else { before });
        assert_eq!(thread_nice(), before, "the caller's thread is unchanged");
    }

    #[test]
    fn the_nice_limit_is_raised_where_allowed_and_never_lowered() {
        let limit = || nice_limit().unwrap().rlim_cur;
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
    fn an_exclusive_lock_is_taken_and_released_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked");
        let file = File::create(&path).unwrap();
        lock_exclusive(&file).unwrap();
        drop(file);
        lock_exclusive(&File::open(&path).unwrap()).unwrap();
    }
}
