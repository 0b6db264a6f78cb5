//! Work splitting shared by the GEMM drivers, and the micro-kernel row dispatch.

use crate::f32gemm::{Post, TilePost};
use std::ops::Range;

/// Enough tasks that the last to finish is short (batch 1: 8 measured 2–3% faster than 4;
/// 16 no better; 2 slower), few enough that scheduling stays cheap.
const TASKS_PER_THREAD: usize = 8;

/// Runs `f(rows, panels)` over `m` rows × `panels` column panels cut into blocks of at most
/// `mc` rows and groups of panels — about [`TASKS_PER_THREAD`] tasks per thread, in
/// parallel when `threads > 1`. Results never depend on the split: tasks write disjoint tiles.
pub(crate) fn for_each_task(
    m: usize,
    mc: usize,
    panels: usize,
    threads: usize,
    f: impl Fn(Range<usize>, Range<usize>) + Sync,
) {
    let m_blocks = m.div_ceil(mc);
    let groups = (TASKS_PER_THREAD * threads).div_ceil(m_blocks).clamp(1, panels);
    let per_group = panels.div_ceil(groups);
    let groups = panels.div_ceil(per_group);
    let task = |t: usize| {
        let (mb, g) = (t / groups, t % groups);
        f(mb * mc..(mb * mc + mc).min(m), g * per_group..((g + 1) * per_group).min(panels))
    };
    if threads == 1 {
        (0..m_blocks * groups).for_each(task);
    } else {
        crate::hot::for_each_index(m_blocks * groups, task);
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
    // With one more const parameter and one more argument.
    (@rows $mr:expr; $t:expr, $f:ident, [$($r:literal),+], $c:expr, $arg:expr) => {
        match $mr {
            $($r => $f::<$r, $c>($t, $arg),)+
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
