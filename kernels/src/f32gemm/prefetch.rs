//! Software prefetch of the weight panels: what a driver asks of its micro-kernel, and
//! where each tile of a task touches. Shared by the f32 and the bf16-dot drivers, whose
//! tiles read one panel row per step (`NR` f32 values, or `NR` lanes of two bf16: 128
//! bytes either way for the 32-column x86 tiles).

use crate::Isa;
use std::ops::Range;

/// The micro-kernel's software prefetch, as the driver asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    None,
    /// Every tile touches its own panel 32 rows ahead of its loads.
    Ahead,
    /// As `Ahead`, except where a task's few strips run panel-outer (batch 1): there each
    /// strip touches a share of the next panel in proportion to its rows (its time), so the
    /// panels stream in once, at an even rate over all the strips.
    NextPanelShares,
    /// Strips of 8 or more rows (`TALL_STRIP`) touch their own panel 64 rows ahead into L2
    /// (`prefetcht1`), in either loop order. Shorter strips (every strip at `M` < 8, the
    /// 5-row last strip of 17 rows) never prefetch: a short strip either streams its panel
    /// at a rate the hardware prefetcher keeps up with or rereads it from L2, so its
    /// prefetches only take load slots and fill buffers.
    TallStripsL2,
}

impl Prefetch {
    pub const ALL: [Prefetch; 4] = [Prefetch::None, Prefetch::Ahead, Prefetch::NextPanelShares, Prefetch::TallStripsL2];

    /// The software prefetch of the `isa` tiles on this CPU: the f32 tile's, each choice
    /// measured with its variants alternated in one process, two threads, and the bf16-dot
    /// tile's (AVX-512), which reads the same 128-byte panel rows at about the same rate:
    /// - AVX2: `NextPanelShares`, tuned on Zen 3 (fp32 batch-1 6–11% faster than
    ///   strip-outer). Re-measured there with shares in proportion to rows
    ///   (`stream-gemm M 2 9`): `Ahead` took 1.31× its time at 17 rows and 1.18× at 8, none
    ///   1.39× and 1.32×. On the Intel Xeon (Emerald Rapids), `Ahead` ran the 48 GEMMs of
    ///   e5-small at 17 rows 1.07× slower.
    /// - AVX-512 on Intel and others: `Ahead`, both lines of each 128-byte panel row.
    ///   Against none (`gemm-isa 2 0.1 all 5 blocking=1024x192x8x0`): 46 of 54 shapes
    ///   faster, `M` = 1 1.03–1.35×, `M` = 8 1.11–1.32×, `M` ≥ 128 1.03–1.17×. Against
    ///   `NextPanelShares` on the 48 GEMMs of e5-small (distinct weights, streamed;
    ///   `stream-gemm`): 1.25× faster at 17 rows, 1.05× at 32, when the strips took equal
    ///   shares; with shares in proportion to their rows the two are even (0.999–1.009× at
    ///   17 rows), so `Ahead`, the simpler, stays.
    /// - AVX-512 on AMD: `TallStripsL2`. On Zen 4, the 48 streamed GEMMs of e5-small on 2
    ///   MiB pages (`stream-gemm M 2 7`, choices alternated call by call), time ÷ that of
    ///   the choice before (`TallStripShares`: as `NextPanelShares`, but strips under 8
    ///   rows neither prefetched nor took a share; removed since): 0.75 at 8 rows, 0.84 at
    ///   12, 0.90 at 17, 0.94 at 20, 0.97–0.99 at 24–32, 0.99–1.01 at 1, 4, 128 and 536; the
    ///   bf16-dot tile 0.85 at 8, 0.91 at 17, 0.97–1.00 elsewhere (`docs/cpu-analysis.md`
    ///   §29). Into L1, a tall strip's stream stalled on its own arithmetic (12 rows: 22
    ///   GB/s, against 35 GB/s for one row); Zen 4 fills L2 on `prefetcht1`. Short strips
    ///   stay without: into L2, one row took 1.17× the time. `TallStripShares` had beaten
    ///   `Ahead` and `NextPanelShares` into L1 (§27–28), and none: 0.85–0.97 at 10–32 rows;
    ///   `tools/ab-bench.sh 5dc1510 fp32` re-measures the change end to end.
    pub fn for_isa(isa: Isa) -> Prefetch {
        match isa {
            Isa::Avx512 if crate::isa::amd_cpu() => Prefetch::TallStripsL2,
            Isa::Avx512 => Prefetch::Ahead,
            _ => Prefetch::NextPanelShares,
        }
    }

    /// Whether a strip of `height` rows prefetches at all under this choice.
    fn strip_prefetches(self, height: usize) -> bool {
        match self {
            Prefetch::None => false,
            Prefetch::TallStripsL2 => height >= TALL_STRIP,
            Prefetch::Ahead | Prefetch::NextPanelShares => true,
        }
    }

    /// What the choice does, for `e5 info` and `e5 bench`.
    pub(crate) fn describe(self) -> String {
        match self {
            Prefetch::Ahead => "prefetch ahead".to_string(),
            Prefetch::NextPanelShares => "prefetch ahead, next-panel shares at batch 1".to_string(),
            Prefetch::TallStripsL2 => {
                format!("strips of {TALL_STRIP}+ rows prefetch {L2_AHEAD_ROWS} rows ahead into L2")
            }
            Prefetch::None => "no prefetch".to_string(),
        }
    }
}

/// The fewest rows of a strip that prefetches under [`Prefetch::TallStripsL2`].
pub(crate) const TALL_STRIP: usize = 8;

/// How far ahead of its loads a tile touches its own panel into L1, in panel rows: 8
/// measured ~5% slower at batch 1, 64 no faster on Zen 4.
const AHEAD_ROWS: usize = 32;

/// How far ahead of its loads a tile touches its own panel into L2, in panel rows
/// ([`Prefetch::TallStripsL2`]). On Zen 4 (`stream-gemm` with a scratch distance, time ÷
/// that of the choice before, `TallStripShares`, at 8 / 12 / 17 rows): 32 rows 0.89 /
/// 0.86 / 0.87, 64 rows 0.79 / 0.81 / 0.83, 128 rows 0.80 / 0.82 / 0.87, 256 rows 0.83 /
/// 0.83 / 0.85.
const L2_AHEAD_ROWS: usize = 64;

/// Which cache a tile's software prefetch fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// `prefetcht0`: every level, L1 included.
    L1,
    /// `prefetcht1`: L2 and beyond, not L1, where the core honours the hint (Zen 4, Intel).
    L2,
}

/// A micro-kernel's software prefetch: at step `i` (a panel row), touch the cache lines of
/// the `step` bytes at `at + i·step`, filling `fill`; none for a step of 0. Any address:
/// prefetches never fault.
#[derive(Clone, Copy, Debug)]
pub struct TilePrefetch {
    pub at: *const u8,
    pub step: usize,
    pub fill: Fill,
}

impl TilePrefetch {
    pub const NONE: TilePrefetch = TilePrefetch { at: std::ptr::null(), step: 0, fill: Fill::L1 };
}

/// How the x86 tiles run a [`TilePrefetch`]: an instance of the tile per kind, chosen by a
/// const parameter (not a test in the loop: with the test, codegen stored an accumulator
/// to the stack every step), and the instruction for each fill.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{Fill, TilePrefetch};
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};

    pub(crate) const NO_PREFETCH: u8 = 0;
    pub(crate) const INTO_L1: u8 = 1;
    pub(crate) const INTO_L2: u8 = 2;

    impl TilePrefetch {
        /// The tile instance that runs this prefetch: [`NO_PREFETCH`], [`INTO_L1`] or
        /// [`INTO_L2`].
        pub(crate) fn instance(self) -> u8 {
            match (self.step, self.fill) {
                (0, _) => NO_PREFETCH,
                (_, Fill::L1) => INTO_L1,
                (_, Fill::L2) => INTO_L2,
            }
        }
    }

    /// Touches the line holding `p` into the level of `INTO` ([`INTO_L1`] or [`INTO_L2`]).
    #[inline(always)]
    pub(crate) fn touch<const INTO: u8>(p: *const u8) {
        // SAFETY: SSE is part of x86_64, and a prefetch never faults, whatever the address.
        unsafe {
            match INTO {
                INTO_L2 => _mm_prefetch::<_MM_HINT_T1>(p.cast()),
                _ => _mm_prefetch::<_MM_HINT_T0>(p.cast()),
            }
        }
    }
}

/// Where each tile of one task's `K` slice prefetches ([`TilePrefetch`]). Addresses may run
/// past the weights: prefetches never fault.
pub(crate) struct PrefetchPlan {
    prefetch: Prefetch,
    mr: usize,
    /// The task's rows; only its last strip can be short.
    rows: Range<usize>,
    /// Bytes of one panel row as stored.
    row_bytes: usize,
    /// Panel rows (steps) in the slice.
    depth: usize,
}

impl PrefetchPlan {
    pub(crate) fn new(prefetch: Prefetch, mr: usize, rows: Range<usize>, row_bytes: usize, depth: usize) -> Self {
        PrefetchPlan { prefetch, mr, rows, row_bytes, depth }
    }

    /// Whether the strip at row `i` prefetches at all.
    fn prefetches(&self, i: usize) -> bool {
        self.prefetch.strip_prefetches(self.mr.min(self.rows.end - i))
    }

    /// Strip-outer order: the strip at row `i` touches its own panel (`panel`: the slice's
    /// first row) ahead of its loads.
    pub(crate) fn ahead(&self, panel: *const u8, i: usize) -> TilePrefetch {
        let (rows, fill) = match self.prefetch {
            Prefetch::TallStripsL2 => (L2_AHEAD_ROWS, Fill::L2),
            _ => (AHEAD_ROWS, Fill::L1),
        };
        match self.prefetches(i) {
            false => TilePrefetch::NONE,
            true => TilePrefetch { at: panel.wrapping_add(rows * self.row_bytes), step: self.row_bytes, fill },
        }
    }

    /// Panel-outer order (a task's few strips run back to back on each panel): with the
    /// shares, the strip at row `i` touches its share of the next panel (`next`: the
    /// slice's first row of it), starting at rows-before / all-rows of it, so the
    /// panels stream in once at an even rate (equal shares had the 5-row strip of a 17-row
    /// query issue half the lines in under a third of the time). A lone strip keeps
    /// [`PrefetchPlan::ahead`]: a whole panel ahead is too far, `M` = 1 ran at 0.87× the
    /// gemm crate at `K` = 1536.
    pub(crate) fn share(&self, panel: *const u8, next: *const u8, i: usize) -> TilePrefetch {
        match self.prefetch {
            Prefetch::NextPanelShares if self.rows.len() > self.mr => {
                let (before, height, all) = (i - self.rows.start, self.mr.min(self.rows.end - i), self.rows.len());
                let start = self.row_bytes * self.depth * before / all;
                let step = (self.row_bytes * height).div_ceil(all);
                TilePrefetch { at: next.wrapping_add(start), step, fill: Fill::L1 }
            }
            _ => self.ahead(panel, i),
        }
    }
}
