//! Memory helpers for the table's large arrays: allocations advised for transparent huge
//! pages before they are first written (2 MiB faults instead of 4 KiB ones, fewer TLB misses
//! on random lookups), and a CPU prefetch hint. Neither changes what the memory holds.

/// Asks the CPU to bring the cache line at `p` closer (a hint: no effect on correctness).
#[inline]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Advises transparent huge pages for the whole 2 MiB pages inside `len` bytes at `ptr`.
///
/// MADV_HUGEPAGE only, never MADV_COLLAPSE: collapsing synchronously drains every CPU's page
/// lists (work queued on each CPU and waited for), which stalled folds under query load for
/// seconds and took a second of a 10M-app start-up. Arrays are advised before they are
/// written instead (`with_capacity_huge`), and khugepaged collapses the rest in the background.
pub(crate) fn advise_huge(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end <= start {
        return;
    }
    // SAFETY: [start, end) lies inside one live allocation owned by the caller; the advice
    // changes how its pages are backed, never their contents.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
}

/// A copy of `src` with room for `extra` more elements, in memory advised for huge pages
/// before it is first written (a fold copies hundreds of megabytes: 2 MiB faults instead of
/// 4 KiB ones, and fewer TLB misses while patching).
pub(crate) fn copy_huge<T: Copy>(src: &[T], extra: usize) -> Vec<T> {
    let mut v = with_capacity_huge(src.len() + extra);
    v.extend_from_slice(src);
    v
}

/// An empty vector with room for `n` elements, in memory advised for huge pages before it is
/// first written (for arrays of hundreds of megabytes that are then filled: 2 MiB faults
/// instead of 4 KiB ones, and no collapsing afterwards).
pub(crate) fn with_capacity_huge<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr().cast(), v.capacity() * std::mem::size_of::<T>());
    v
}
