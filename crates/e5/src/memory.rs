//! Process memory as the kernel reports it (Linux `/proc/self/status`).

/// Current resident set size in bytes, where the OS reports it.
pub fn resident_bytes() -> Option<usize> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size in bytes, where the OS reports it.
pub fn peak_resident_bytes() -> Option<usize> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

fn status_kib(key: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}
