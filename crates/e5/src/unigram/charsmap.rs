//! SentencePiece's precompiled charsmap, checked before `spm_precompiled` reads it: that
//! crate sizes its trie from the blob's 4-byte header (a hostile header asks for 16 GB) and
//! indexes the double array and the normalized strings unchecked at encode time (a panic).

/// Decodes `b64` and checks that the header fits the blob and that every trie position a
/// lookup can reach, and every string offset a leaf holds, lies inside the blob.
pub(super) fn parse(b64: &str) -> Result<spm_precompiled::Precompiled, String> {
    let bytes = base64::decode(b64).map_err(|e| format!("precompiled_charsmap: {e}"))?;
    let units = trie_units(&bytes)?;
    let normalized = std::str::from_utf8(&bytes[4 + 4 * units.len()..])
        .map_err(|_| "precompiled_charsmap: normalized strings are not UTF-8".to_string())?;
    check_reachable(&units, normalized)?;
    spm_precompiled::Precompiled::from(&bytes).map_err(|e| format!("precompiled_charsmap: {e}"))
}

/// The double array: a little-endian `u32` byte count, then that many bytes of `u32` units.
fn trie_units(bytes: &[u8]) -> Result<Vec<usize>, String> {
    let size = bytes.get(..4).map(|h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
    let size = size.ok_or("precompiled_charsmap: shorter than its 4-byte header")?;
    if size > bytes.len() - 4 || size % 4 != 0 || size == 0 {
        return Err(format!(
            "precompiled_charsmap: header claims a {size}-byte trie in a {}-byte blob (must be a positive multiple of 4 that fits)",
            bytes.len()
        ));
    }
    Ok(bytes[4..4 + size].chunks_exact(4).map(|u| u32::from_le_bytes([u[0], u[1], u[2], u[3]]) as usize).collect())
}

// Unit fields, as `spm_precompiled` (darts-clone) reads them.
fn has_leaf(u: usize) -> bool {
    (u >> 8) & 1 == 1
}
fn value(u: usize) -> usize {
    u & ((1 << 31) - 1)
}
fn label(u: usize) -> usize {
    u & ((1 << 31) | 0xFF)
}
fn offset(u: usize) -> usize {
    (u >> 10) << ((u & (1 << 9)) >> 6)
}

/// A lookup at base `p` reads `p ^ c` for any byte `c`, so the base's whole 256-unit block
/// must be inside the array; a matched child leads to the next base, and a leaf's value is
/// a byte offset into `normalized`.
fn check_reachable(units: &[usize], normalized: &str) -> Result<(), String> {
    let err = |what: String| Err(format!("precompiled_charsmap: {what}"));
    let mut seen = vec![false; units.len()];
    let mut todo = vec![offset(units[0])];
    while let Some(p) = todo.pop() {
        if (p | 0xFF) >= units.len() {
            return err(format!("trie position {p} is outside its {} units", units.len()));
        }
        if std::mem::replace(&mut seen[p], true) {
            continue;
        }
        for c in 1..=255 {
            let q = p ^ c;
            if label(units[q]) != c {
                continue;
            }
            let next = q ^ offset(units[q]);
            if has_leaf(units[q]) {
                let v = units.get(next).map(|&u| value(u));
                if !v.is_some_and(|v| normalized.is_char_boundary(v)) {
                    return err(format!("trie leaf at {q} points outside the normalized strings"));
                }
            }
            todo.push(next);
        }
    }
    Ok(())
}
