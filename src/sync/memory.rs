//! Giving memory back to the system after a large received batch (issue 18 #11). A batch of
//! 16 MB becomes tens of MB of small allocations (parsed versions, records, the receipt) made on
//! several threads; glibc's allocator keeps what they free in its per-thread arenas, so a node's
//! resident memory stayed at its peak after a burst of pushes. Two calls fix it: at start the
//! allocator is held to two arenas ([`limit_arenas`]: the threads that parse and verify a batch
//! no longer each leave an arena of freed pages behind), and after a burst `malloc_trim(0)`
//! returns the free pages of every arena ([`give_back_freed_memory`]). Elsewhere (musl, other
//! systems) both do nothing. [`allocator_bytes`] reads what the allocator holds (`bench soak`).

/// Holds the allocator to two arenas (glibc's default is eight per core). Called once when a
/// node starts; the node's threads mostly wait on the network and the database, so they do not
/// contend for the allocator.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes two plain integers and only changes a tuning parameter of the
    // allocator (under its lock); M_ARENA_MAX applies to arenas created from now on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

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

/// The allocator's bytes in use (every arena's chunks handed out plus mapped blocks: a leak
/// grows it) and held from the system (free chunks included: fragmentation grows the
/// difference), from glibc's `mallinfo2`; zeros elsewhere.
pub fn allocator_bytes() -> (u64, u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` takes nothing, walks the allocator's arenas under their own locks
        // (any thread, any time) and returns a plain struct of counters by value.
        let m = unsafe { libc::mallinfo2() };
        let mapped = m.hblkhd as u64;
        (m.uordblks as u64 + mapped, m.arena as u64 + mapped)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        (0, 0)
    }
}
