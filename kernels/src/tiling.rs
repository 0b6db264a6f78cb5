//! Work splitting shared by the GEMM drivers, and the micro-kernel row dispatch.

use crate::f32gemm::{Post, TilePost};
use std::ops::Range;

/// Enough tasks that the last to finish is short (batch 1: 8 measured 2–3% faster than 4;
/// 16 no better; 2 slower), few enough that scheduling stays cheap.
const TASKS_PER_THREAD: usize = 8;

/// Runs `f(rows, panels)` over `m` rows × `panels` column panels cut into blocks of at most
/// `mc` rows and groups of panels — about [`TASKS_PER_THREAD`] tasks per thread, in
/// parallel when `threads > 1`. Results never depend on the split: tasks write disjoint tiles.
///
/// Blocks are runs of whole `mr`-row strips that differ by at most one strip (512 rows at
/// `mc` 192, `mr` 12: 168 + 168 + 176, not 192 + 192 + 128), and groups differ by at most
/// one panel (32 panels in 6 groups: 5 or 6 each, not 6 × 5 + 2), so no task is left
/// running alone at the end for being larger than the rest. On Zen 4, two threads,
/// `M` = 512: AVX-512's `K` ≥ 768 shapes went from 67–81% to 74–87% of the FMA peak (two
/// runs minutes apart, not an in-process A/B; `docs/cpu-analysis.md` §14).
pub(crate) fn for_each_task(
    m: usize,
    mr: usize,
    mc: usize,
    panels: usize,
    threads: usize,
    f: impl Fn(Range<usize>, Range<usize>) + Sync,
) {
    let (strips, m_blocks) = (m.div_ceil(mr), m.div_ceil(mc));
    let per_group = panels.div_ceil((TASKS_PER_THREAD * threads).div_ceil(m_blocks).clamp(1, panels));
    let groups = panels.div_ceil(per_group);
    let task = |t: usize| {
        let (mb, g) = (t / groups, t % groups);
        let rows = mb * strips / m_blocks * mr..((mb + 1) * strips / m_blocks * mr).min(m);
        f(rows, g * panels / groups..(g + 1) * panels / groups)
    };
    if threads == 1 {
        (0..m_blocks * groups).for_each(task);
    } else {
        crate::hot::for_each_index(m_blocks * groups, task);
    }
}

/// Runs `f(s)` for each of the `strips` strips of `A` that a GEMM prepares before its tiles
/// (f32 packing, bf16 rounding, int8 and int4 quantization): a strip per task on the hot workers
/// when `parallel` and there are two strips or more, else in order on the calling thread.
/// Tasks must write disjoint strips; a strip's rows share cache lines, so a finer split
/// would write the same lines from two cores. Preparing on the calling thread while the
/// others waited (below `MC` or 64 rows, as the drivers did before) cost the `gemm-report`
/// shapes that pack 1–6% and e5-small's 48 int8 GEMMs 2–3% at 17–24 rows, 7% at 40 (Intel
/// Xeon, two threads, alternated in one process; `docs/cpu-analysis.md` §19).
pub(crate) fn for_each_strip(strips: usize, parallel: bool, f: impl Fn(usize) + Sync) {
    if parallel && strips > 1 {
        crate::hot::for_each_index(strips, f);
    } else {
        (0..strips).for_each(f);
    }
}

/// What every GEMM driver settles before its tiles: the shapes of `A[m, k]` (row stride
/// `lda`) and `C[m, n]` (row stride `ldc`) checked against their slices, the epilogue in
/// raw form, and the thread count (the pool's, when `parallel` and the product has at
/// least `min_macs` multiply-adds; else 1). `None` when `m` or `n` is 0: nothing to do.
///
/// # Panics
/// If a slice is too short for its shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_setup(
    a_len: usize,
    lda: usize,
    m: usize,
    k: usize,
    c_len: usize,
    ldc: usize,
    n: usize,
    post: Post<'_>,
    parallel: bool,
    min_macs: usize,
) -> Option<(TilePost, usize)> {
    if m == 0 || n == 0 {
        return None;
    }
    assert!(lda >= k && a_len >= (m - 1) * lda + k, "A too short for [{m}, {k}]");
    assert!(ldc >= n && c_len >= (m - 1) * ldc + n, "C too short for [{m}, {n}]");
    let threads = if parallel && m * n * k >= min_macs { rayon::current_num_threads() } else { 1 };
    Some((TilePost::new(post, m, n, ldc), threads))
}

/// `match t.mr { 1 => f::<1>(t), …, N => f::<N>(t) }`: a micro-kernel instantiated per row
/// count, so a tail tile runs the same code with fewer rows. `by_rows!(@rows t.out.mr; t, …)`
/// takes the row count from another place (the f32-output tiles keep it in [`TileOut`]).
///
/// [`TileOut`]: crate::f32gemm::TileOut
macro_rules! by_rows {
    (@rows $mr:expr; $t:expr, $f:ident, [$($r:literal),+]) => {
        match $mr {
            $($r => $f::<$r>($t),)+
            _ => unreachable!("tile rows {}", $mr),
        }
    };
    // With one more const parameter.
    (@rows $mr:expr; $t:expr, $f:ident, [$($r:literal),+], $c:expr) => {
        match $mr {
            $($r => $f::<$r, $c>($t),)+
            _ => unreachable!("tile rows {}", $mr),
        }
    };
    // With one more const parameter and one more argument.
    (@rows $mr:expr; $t:expr, $f:ident, [$($r:literal),+], $c:expr, $arg:expr) => {
        match $mr {
            $($r => $f::<$r, $c>($t, $arg),)+
            _ => unreachable!("tile rows {}", $mr),
        }
    };
    // With two more const parameters and one more argument.
    (@rows $mr:expr; $t:expr, $f:ident, [$($r:literal),+], $c:expr, $d:expr, $arg:expr) => {
        match $mr {
            $($r => $f::<$r, $c, $d>($t, $arg),)+
            _ => unreachable!("tile rows {}", $mr),
        }
    };
    ($t:expr, $f:ident, $rows:tt $(, $c:expr, $arg:expr)?) => {
        by_rows!(@rows $t.mr; $t, $f, $rows $(, $c, $arg)?)
    };
}
pub(crate) use by_rows;

/// `for r in 0..R { body }` (R ≤ 12) written out as straight-line code: one `if r < R` block per
/// possible row, each with a literal `r`, folded away per instance. Micro-kernels index
/// their accumulator arrays with it so that every index is a constant and the array
/// lives in registers. A real loop over rows is only unrolled (and the array promoted to
/// registers) below LLVM's unroll threshold: the 11- and 12-row AVX-512 instances kept
/// theirs on the stack, one store per FMA (`tools/check-spills.py` fails on that).
#[cfg(target_arch = "x86_64")]
macro_rules! unrolled {
    ($R:ident, |$r:ident| $body:block) => {
        unrolled!(@ $R, $r, $body, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    };
    (@ $R:ident, $r:ident, $body:block, [$($i:literal),+]) => {
        $(if $i < $R {
            let $r: usize = $i;
            $body
        })+
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use unrolled;

#[cfg(test)]
mod tests {
    use super::for_each_task;
    use std::sync::Mutex;

    /// Every (row, panel) lands in exactly one task; blocks are whole strips of at most `mc`
    /// rows, differing by at most one strip; panel groups differ by at most one panel.
    #[test]
    fn tasks_cover_every_tile_once_in_balanced_pieces() {
        for (m, mr, mc, panels, threads) in
            [(512, 12, 192, 32, 2), (17, 12, 192, 36, 2), (128, 6, 96, 256, 2), (1, 12, 192, 1, 1), (1000, 4, 96, 7, 3)]
        {
            let seen = Mutex::new((vec![0u8; m * panels], Vec::new(), Vec::new()));
            for_each_task(m, mr, mc, panels, threads, |rows, group| {
                assert!(rows.start % mr == 0 && rows.len() <= mc && !group.is_empty(), "{rows:?} {group:?}");
                let mut s = seen.lock().unwrap();
                for i in rows.clone() {
                    for p in group.clone() {
                        s.0[i * panels + p] += 1;
                    }
                }
                s.1.push(rows.len());
                s.2.push(group.len());
            });
            let (cover, blocks, groups) = seen.into_inner().unwrap();
            assert!(cover.iter().all(|&c| c == 1), "m {m} panels {panels}: a tile run {:?} times", cover.iter().max());
            let spread = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap();
            assert!(spread(&blocks) <= mr && spread(&groups) <= 1, "m {m}: blocks {blocks:?}, groups {groups:?}");
        }
    }
}
