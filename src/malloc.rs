//! glibc malloc settings that decide how much memory a burst of connections
//! leaves behind once everyone has left.
//!
//! Measured with `tools/c1000k` (1,000,000 SSE subscribers over 1,000
//! channels on this project's 2-core machine), server RSS after everyone
//! left, against its idle baseline:
//!
//! | glibc setting                                  | RSS after  |
//! |------------------------------------------------|------------|
//! | defaults                                       | more than twice idle |
//! | arenas capped, fixed mmap threshold ([`tune`]) | +62%..+80% |
//! | and worker lists without per-channel buffers   | +23%, +26% |
//! | and no per-thread cache ([`reexec_with_tcache_off`]) | +10%..+15% (six runs) |
//!
//! On other C libraries none of this applies and nothing is done.

/// Below this size glibc serves allocations from its heaps, above it with
/// their own mapping (see [`tune`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Sets the two glibc malloc parameters that can be set from inside the
/// process; an environment setting (`MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_`) wins over each.
///
/// Arenas are capped at the CPU count. By default glibc gives up to 8 per
/// CPU; with dozens of workers each holds its own partly used arena after a
/// burst, and RSS stays high after everyone has left (measured: +47% over
/// the idle baseline after 100,000 subscribers came and went, +22..28% with
/// one or two arenas). Workers allocate only while answering requests, never
/// per delivery, so they rarely contend for an arena.
///
/// The mmap threshold is fixed at 128 KiB (glibc's starting value). Left
/// alone, glibc raises it to the size of every mapped block that is freed,
/// so after the first storm the large arrays of the next one (connection
/// tables, timer buckets) come from the heaps and leave holes there when
/// they go. Measured with `tools/storm --cycles 12` (15,000 subscribers):
/// RSS after everyone left settled at 6.0..6.7 MiB against a 3.9 MiB idle
/// baseline, and at 4.6..5.2 MiB with the fixed threshold.
pub fn tune(cpus: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only adjusts allocator parameters.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, cpus.clamp(1, 8) as i32) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: mallopt only adjusts allocator parameters.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = cpus;
}

/// Returns free heap memory to the OS (glibc's `malloc_trim`; nothing
/// elsewhere). Called when everyone left after a burst, never on a hot path.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The glibc tunable that says how many freed blocks each thread's cache
/// keeps per size class (default 7).
const TCACHE_COUNT: &str = "glibc.malloc.tcache_count";

/// `GLIBC_TUNABLES` for comet given its current value: `None` when that
/// already sets the per-thread cache (comet's own re-execution, or the
/// operator's choice, which stands), else the current tunables followed by
/// the one that turns the cache off.
pub fn tunables_with_tcache_off(current: Option<&std::ffi::OsStr>) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = current.map_or(&b""[..], |c| c.as_bytes());
    let set = bytes
        .split(|&b| b == b':')
        .any(|item| item.split(|&b| b == b'=').next() == Some(TCACHE_COUNT.as_bytes()));
    if set {
        return None;
    }
    let mut value = std::ffi::OsString::new();
    if let Some(c) = current.filter(|c| !c.is_empty()) {
        value.push(c);
        value.push(":");
    }
    value.push(TCACHE_COUNT);
    value.push("=0");
    Some(value)
}

/// Runs this program again, in this process, with glibc's per-thread cache
/// off, unless `GLIBC_TUNABLES` already sets it. Returns only when it did not
/// re-execute: `Some(why)` if it tried and failed.
///
/// Why: each thread's cache keeps up to 7 freed blocks per size class and
/// counts them as in use, so `malloc_trim` cannot return the pages they sit
/// on. Dozens of long-lived threads (workers, admin) end a burst holding
/// blocks scattered over pages the burst grew: after one 1M run, 471 cached
/// blocks (82 KB) on 164 distinct pages. Runs back to back with the cache
/// kept ended at +26% and +25% of idle, without it at +12%, with connect
/// time and broadcast latency within their run-to-run spread. comet
/// allocates per request, never per delivery, so the shared arenas' locks
/// cost nothing measurable.
/// glibc reads the setting only from the environment at start, and there is
/// no call to change it later: hence the re-execution, done before any
/// thread or listener exists. Setuid runs (where glibc drops tunables) are
/// left alone, so the re-execution cannot repeat.
pub fn reexec_with_tcache_off() -> Option<std::io::Error> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: getauxval only reads the auxiliary vector.
        if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
            return None;
        }
        let value = tunables_with_tcache_off(std::env::var_os("GLIBC_TUNABLES").as_deref())?;
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_else(|| "comet".into());
        let err = std::process::Command::new("/proc/self/exe")
            .arg0(argv0)
            .args(args)
            .env("GLIBC_TUNABLES", value)
            .exec();
        Some(err)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(test)]
mod tests {
    use super::tunables_with_tcache_off as off;
    use std::ffi::OsStr;

    fn s(v: &str) -> Option<&OsStr> {
        Some(OsStr::new(v))
    }

    #[test]
    fn turns_the_cache_off_and_keeps_other_tunables() {
        assert_eq!(off(None).as_deref(), s("glibc.malloc.tcache_count=0"));
        assert_eq!(off(s("")).as_deref(), s("glibc.malloc.tcache_count=0"));
        assert_eq!(
            off(s("glibc.malloc.arena_max=3")).as_deref(),
            s("glibc.malloc.arena_max=3:glibc.malloc.tcache_count=0")
        );
        // A tunable whose name only starts the same is another tunable.
        assert_eq!(
            off(s("glibc.malloc.tcache_count_x=1")).as_deref(),
            s("glibc.malloc.tcache_count_x=1:glibc.malloc.tcache_count=0")
        );
    }

    #[test]
    fn a_cache_setting_already_there_stands() {
        assert_eq!(off(s("glibc.malloc.tcache_count=0")), None);
        assert_eq!(off(s("glibc.malloc.tcache_count=7")), None);
        assert_eq!(off(s("glibc.malloc.arena_max=1:glibc.malloc.tcache_count=3")), None);
    }
}
