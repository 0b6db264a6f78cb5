//! Process memory as the kernel reports it (Linux `/proc/self/status`, `smaps_rollup`).

/// Current resident set size in bytes, where the OS reports it.
pub fn resident_bytes() -> Option<usize> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size in bytes, where the OS reports it.
pub fn peak_resident_bytes() -> Option<usize> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current anonymous resident memory (heap, packed weights, activations) in bytes: the
/// part the kernel cannot drop without swap. The rest of the RSS is file-backed pages of
/// the memory-mapped weights, which it may reclaim at any time.
pub fn anonymous_resident_bytes() -> Option<usize> {
    status_kib("RssAnon:").map(|k| k * 1024)
}

/// Current file-backed resident memory (pages of the memory-mapped weights) in bytes.
pub fn file_resident_bytes() -> Option<usize> {
    status_kib("RssFile:").map(|k| k * 1024)
}

/// Current anonymous memory on transparent huge pages in bytes: where the kernel granted
/// them, the packed weights (see `kernels/src/pages.rs`).
pub fn huge_page_bytes() -> Option<usize> {
    proc_kib("/proc/self/smaps_rollup", "AnonHugePages:").map(|k| k * 1024)
}

fn status_kib(key: &str) -> Option<usize> {
    proc_kib("/proc/self/status", key)
}

fn proc_kib(file: &str, key: &str) -> Option<usize> {
    let s = std::fs::read_to_string(file).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}
