//! Giving memory back to the system after a large received batch (issue 18 #11). A batch of
//! 16 MB becomes tens of MB of small allocations (parsed versions, records, the receipt) made on
//! several threads; glibc's allocator keeps what they free in its per-thread arenas, so a node's
//! resident memory stayed at its peak after a burst of pushes. `malloc_trim(0)` returns the free
//! pages of every arena. Elsewhere (musl, other systems) this does nothing.

/// Returns the allocator's free pages to the system. Costs a few milliseconds on a large heap;
/// called when the last batch being received is done, not per request.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain integer, touches only the allocator's own free lists
    // (under the allocator's locks, so any thread may call it at any time) and has no
    // precondition; its return value only says whether memory was released.
    unsafe {
        libc::malloc_trim(0);
    }
}
