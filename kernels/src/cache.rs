//! The L2 size of this CPU, read once, from which the GEMM blocking is derived.
//!
//! Linux reports each level in `/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}`
//! (on x86 the kernel fills it from CPUID leaf 4 / 0x8000_001D; on aarch64 from the
//! device tree or ACPI PPTT). Where it reports nothing — other systems, containers that
//! hide sysfs, some arm boards — the fallback is a common modern core's 512 KiB. The size
//! changes only the blocking, never a result (see the determinism contract in `f32gemm`),
//! so a wrong guess costs speed, not correctness.

use std::sync::OnceLock;

/// Per-core cache capacities in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    pub l2: usize,
    /// Whether the size was read from the system (else it is the fallback).
    pub detected: bool,
}

impl CacheSizes {
    pub const FALLBACK: CacheSizes = CacheSizes { l2: 512 << 10, detected: false };

    /// This CPU's sizes, read once.
    pub fn get() -> CacheSizes {
        static SIZES: OnceLock<CacheSizes> = OnceLock::new();
        *SIZES.get_or_init(|| read_sysfs().unwrap_or(CacheSizes::FALLBACK))
    }
}

/// The L2 size of cpu0 from sysfs; `None` unless it is there and plausible.
fn read_sysfs() -> Option<CacheSizes> {
    let mut l2 = None;
    for entry in std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?.flatten() {
        let read = |name: &str| std::fs::read_to_string(entry.path().join(name)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size")) else { continue };
        let Some(bytes) = parse_size(&size) else { continue };
        if let ("2", "Unified" | "Data") = (level.trim(), kind.trim()) {
            l2 = Some(bytes);
        }
    }
    // A size outside these bounds is a misreport (a hypervisor's placeholder): fall back.
    Some(CacheSizes { l2: l2.filter(|b| (64 << 10..=64 << 20).contains(b))?, detected: true })
}

/// `"32K"`, `"1024K"`, `"2M"` or a plain byte count.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_sysfs_notation() {
        assert_eq!(parse_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_size("1024K"), Some(1 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999999999999K"), None);
    }

    #[test]
    fn detected_sizes_are_plausible() {
        let c = CacheSizes::get();
        assert!(c.l2 >= 64 << 10, "{c:?}");
    }
}
