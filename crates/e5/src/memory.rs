//! Process memory as the kernel reports it (Linux `/proc/self/status`).

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

fn status_kib(key: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}
