//! Packed weights on 2 MiB pages.
//!
//! At batch 1 a forward reads every weight once, streamed from L3 or DRAM: 85 MB for
//! e5-small in f32, 21k pages of 4 KiB, far past the second-level TLB's reach (2048
//! entries, 8 MiB), so each new 4 KiB of a panel stream costs a page walk (a nested one in
//! a VM), and so does a software prefetch that runs ahead into a new page. On 2 MiB pages
//! the whole model is within the TLB's reach.
//!
//! [`PanelBuf::into_huge_pages`] copies a buffer into a shared chunk: an anonymous mapping
//! whose 2 MiB-aligned span is advised `MADV_HUGEPAGE` (Linux; transparent huge pages in
//! `madvise` mode, the common default, grant them only so). Buffers are carved from the
//! current chunk, so a model's many small matrices (e5-small's int8 ones are 0.15–0.59 MB,
//! under one page) share pages instead of each rounding up to its own. A chunk is unmapped
//! when its last buffer drops; the arena keeps only a weak reference to the chunk it carves
//! from. Two models loaded one after the other may share a chunk: the older one's part of
//! it stays mapped until the newer one drops too (at most one chunk, 32 MiB, per pair).
//!
//! Where the kernel grants no huge pages (THP off, not Linux) the chunk is plain memory and
//! only the speed differs; where a mapping fails the buffer stays on the heap. Contents,
//! and so results, never depend on where a buffer lives. `E5_HUGE_PAGES=0`
//! ([`HUGE_PAGES_ENV`]) keeps every buffer on the heap: for an A/B, or where memory is
//! tighter than speed matters (a chunk's last huge page may be mostly unused).

use memmap2::MmapMut;
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

/// Set to `0` to keep packed weights on the heap (4 KiB pages).
pub const HUGE_PAGES_ENV: &str = "E5_HUGE_PAGES";

/// The huge page size advised for (x86-64 and aarch64 Linux with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;
/// Usable bytes of a chunk: 16 huge pages. A larger buffer gets a chunk of its own size.
const CHUNK: usize = 32 << 20;
/// Alignment of every buffer carved from a chunk: a cache line.
const CARVE_ALIGN: usize = 64;

/// A 2 MiB-aligned span of an anonymous mapping, written once per carved region.
pub(crate) struct Chunk {
    /// Start of the aligned span inside `_map`.
    base: *mut u8,
    len: usize,
    _map: MmapMut,
}

// SAFETY: each carved region is written once, by the thread that carved it, before the
// `PanelBuf` that reads it exists; afterwards the chunk is only read.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

impl Chunk {
    /// A chunk of at least `len` bytes (a multiple of [`HUGE_PAGE`]), advised as huge pages.
    fn map(len: usize) -> std::io::Result<Chunk> {
        let mut map = MmapMut::map_anon(len + HUGE_PAGE)?;
        let skip = (HUGE_PAGE - map.as_ptr() as usize % HUGE_PAGE) % HUGE_PAGE;
        #[cfg(target_os = "linux")]
        // A hint: without transparent huge pages the chunk is plain memory.
        let _ = map.advise_range(memmap2::Advice::HugePage, skip, len);
        // SAFETY: `skip < HUGE_PAGE`, so `[skip, skip + len)` lies inside the mapping.
        let base = unsafe { map.as_mut_ptr().add(skip) };
        Ok(Chunk { base, len, _map: map })
    }
}

/// Where buffers are carved: the chunk being carved from, and the bytes of it handed out.
/// Only a weak reference, so that a chunk is unmapped with its last buffer.
struct Arena(Mutex<Option<(Weak<Chunk>, usize)>>);

/// The arena of every packed weight.
static ARENA: Arena = Arena(Mutex::new(None));

impl Arena {
    /// `bytes` of a chunk, `CARVE_ALIGN`-aligned: the chunk and the region's offset in it.
    fn carve(&self, bytes: usize) -> std::io::Result<(Arc<Chunk>, usize)> {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((chunk, used)) = current.as_mut().and_then(|(w, used)| Some((w.upgrade()?, used))) {
            let at = used.next_multiple_of(CARVE_ALIGN);
            if at + bytes <= chunk.len {
                *used = at + bytes;
                return Ok((chunk, at));
            }
        }
        let chunk = Arc::new(Chunk::map(bytes.next_multiple_of(HUGE_PAGE).max(CHUNK))?);
        *current = Some((Arc::downgrade(&chunk), bytes));
        Ok((chunk, 0))
    }
}

/// Read-only packed panels: on the heap, or in a chunk of huge pages.
#[derive(Clone)]
pub(crate) enum PanelBuf<T> {
    Heap(Vec<T>),
    Huge { chunk: Arc<Chunk>, offset: usize, len: usize },
}

impl<T: Copy> PanelBuf<T> {
    /// The same values in a chunk of huge pages; unchanged if none can be mapped, when
    /// already there, or when [`HUGE_PAGES_ENV`] is `0`.
    pub(crate) fn into_huge_pages(self) -> Self {
        match std::env::var(HUGE_PAGES_ENV) {
            Ok(v) if v.trim() == "0" => self,
            _ => self.into_arena(&ARENA),
        }
    }

    fn into_arena(self, arena: &Arena) -> Self {
        let PanelBuf::Heap(v) = self else { return self };
        // Regions start at multiples of `CARVE_ALIGN` into a 2 MiB-aligned span.
        assert!(std::mem::align_of::<T>() <= CARVE_ALIGN, "a panel type aligned past a cache line");
        if v.is_empty() {
            return PanelBuf::Heap(v);
        }
        match arena.carve(std::mem::size_of_val(v.as_slice())) {
            Ok((chunk, offset)) => {
                // SAFETY: `carve` handed out `[offset, offset + bytes)` of the chunk to this
                // call alone, aligned for `T` (checked above).
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), chunk.base.add(offset).cast::<T>(), v.len()) };
                PanelBuf::Huge { chunk, offset, len: v.len() }
            }
            Err(_) => PanelBuf::Heap(v),
        }
    }
}

impl<T> From<Vec<T>> for PanelBuf<T> {
    fn from(v: Vec<T>) -> Self {
        PanelBuf::Heap(v)
    }
}

impl<T> Deref for PanelBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            PanelBuf::Heap(v) => v,
            // SAFETY: the region holds `len` values of `T`, written by `into_huge_pages`
            // before this buffer existed, aligned, and kept mapped by `chunk`.
            PanelBuf::Huge { chunk, offset, len } => unsafe {
                std::slice::from_raw_parts(chunk.base.add(*offset).cast::<T>(), *len)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<T>(b: &PanelBuf<T>) -> (Weak<Chunk>, usize) {
        match b {
            PanelBuf::Huge { chunk, offset, .. } => (Arc::downgrade(chunk), *offset),
            PanelBuf::Heap(_) => panic!("still on the heap"),
        }
    }

    /// Values survive the move; buffers share a chunk at aligned offsets; one over a
    /// chunk's size gets its own; clones share the region; an empty buffer stays put.
    #[test]
    fn buffers_keep_their_values_and_share_chunks() {
        let arena = Arena(Mutex::new(None));
        let a: Vec<f32> = (0..100_003).map(|i| i as f32 * 0.5).collect();
        let b: Vec<i8> = (0..70_001).map(|i| (i % 255) as i8).collect();
        let big: Vec<u16> = (0..(CHUNK / 2 + 5)).map(|i| i as u16).collect();
        let ha = PanelBuf::from(a.clone()).into_arena(&arena);
        let hb = PanelBuf::from(b.clone()).into_arena(&arena);
        let hbig = PanelBuf::from(big.clone()).into_arena(&arena);
        assert_eq!((&ha[..], &hb[..], &hbig[..]), (&a[..], &b[..], &big[..]));
        let ((ca, oa), (cb, ob), (cbig, obig)) = (place(&ha), place(&hb), place(&hbig));
        assert!(ca.ptr_eq(&cb) && (oa, ob) == (0, (4 * a.len()).next_multiple_of(CARVE_ALIGN)), "{oa} {ob}");
        assert!(!cbig.ptr_eq(&ca) && obig == 0);
        let copy = ha.clone();
        assert!(place(&copy).0.ptr_eq(&ca) && copy[..] == a[..]);
        assert!(matches!(PanelBuf::from(Vec::<f32>::new()).into_arena(&arena), PanelBuf::Heap(v) if v.is_empty()));
    }

    /// A chunk is unmapped with its last buffer; the next buffer maps a fresh one.
    #[test]
    fn a_chunk_lives_while_any_buffer_in_it_does() {
        let arena = Arena(Mutex::new(None));
        let (first, second) = (PanelBuf::from(vec![7u32; 1000]), PanelBuf::from(vec![8u32; 1000]));
        let (first, second) = (first.into_arena(&arena), second.into_arena(&arena));
        let (chunk, _) = place(&first);
        drop(first);
        assert_eq!(chunk.strong_count(), 1, "the second buffer holds the chunk");
        drop(second);
        assert_eq!(chunk.strong_count(), 0, "the arena kept the chunk alive");
        let next = PanelBuf::from(vec![9u32; 1000]).into_arena(&arena);
        assert_eq!(place(&next).1, 0, "carved from a fresh chunk");
        assert!(next.iter().all(|&v| v == 9));
    }
}
