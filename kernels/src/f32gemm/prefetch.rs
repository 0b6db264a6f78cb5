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
    /// As `NextPanelShares`, except that strips under 8 rows (`TALL_STRIP`) never prefetch
    /// (every strip at `M` < 8, the 5-row last strip of 17 rows): the next-panel shares go
    /// to the tall strips alone, and a lone tall strip prefetches `Ahead`. A short strip
    /// either streams its panel at a rate the hardware prefetcher keeps up with or rereads
    /// it from L2, so its prefetches only take load slots and fill buffers.
    TallStripShares,
}

impl Prefetch {
    pub const ALL: [Prefetch; 4] =
        [Prefetch::None, Prefetch::Ahead, Prefetch::NextPanelShares, Prefetch::TallStripShares];

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
    /// - AVX-512 on AMD: `TallStripShares`. On Zen 4, the 48 streamed GEMMs of e5-small on
    ///   2 MiB pages (`stream-gemm M 2 9`), time ÷ none's: 0.97–1.05 at 1–8 rows, 0.85–0.97
    ///   at 10–32, 0.98–0.99 at 128 and 536. `Ahead` and `NextPanelShares` took 1.05–1.16×
    ///   none's time at 1–4 rows; `NextPanelShares` 1.03–1.12× `TallStripShares`' at 14 and
    ///   17 rows, where the short last strip takes a share, and `Ahead` 1.05–1.10× at 20–32
    ///   rows, where both strips are tall (`docs/cpu-analysis.md` §27). Before the weights
    ///   moved to 2 MiB pages, touching both lines had measured no faster than none (§14).
    ///   The bf16-dot tile, 48 streamed bf16 GEMMs (`stream-gemm M 2 9 0.3 bf16`), time ÷
    ///   none's: 0.83–0.95 at 8–32 rows, 1.00 at 1 and 4, 0.98–0.99 at 128 and 536; `Ahead`
    ///   1.03 at 1 row and 0.94–0.95 at 24–32 (§28).
    pub fn for_isa(isa: Isa) -> Prefetch {
        match isa {
            Isa::Avx512 if crate::isa::amd_cpu() => Prefetch::TallStripShares,
            Isa::Avx512 => Prefetch::Ahead,
            _ => Prefetch::NextPanelShares,
        }
    }

    /// Whether a strip of `height` rows prefetches at all under this choice.
    fn strip_prefetches(self, height: usize) -> bool {
        match self {
            Prefetch::None => false,
            Prefetch::TallStripShares => height >= TALL_STRIP,
            Prefetch::Ahead | Prefetch::NextPanelShares => true,
        }
    }

    /// What the choice does, for `e5 info` and `e5 bench`.
    pub(crate) fn describe(self) -> String {
        match self {
            Prefetch::Ahead => "prefetch ahead".to_string(),
            Prefetch::NextPanelShares => "prefetch ahead, next-panel shares at batch 1".to_string(),
            Prefetch::TallStripShares => {
                format!("strips of {TALL_STRIP}+ rows prefetch ahead, next-panel shares at batch 1")
            }
            Prefetch::None => "no prefetch".to_string(),
        }
    }
}

/// The fewest rows of a strip that prefetches under [`Prefetch::TallStripShares`].
pub(crate) const TALL_STRIP: usize = 8;

/// How far ahead of its loads a tile touches its own panel, in panel rows: 8 measured ~5%
/// slower at batch 1, 64 no faster on Zen 4.
const AHEAD_ROWS: usize = 32;

/// Where each tile of one task's `K` slice prefetches, as `(address, bytes per step)` for
/// the micro-kernel (`(null, 0)`: none). Addresses may run past the weights: prefetches
/// never fault.
pub(crate) struct PrefetchPlan {
    prefetch: Prefetch,
    mr: usize,
    /// The task's rows; only its last strip can be short.
    rows: Range<usize>,
    /// Bytes of one panel row as stored.
    row_bytes: usize,
    /// Panel rows (steps) in the slice.
    depth: usize,
    /// Rows of the strips that take next-panel shares: all of them, or all but a short last
    /// strip that does not prefetch.
    sharing_rows: usize,
}

impl PrefetchPlan {
    pub(crate) fn new(prefetch: Prefetch, mr: usize, rows: Range<usize>, row_bytes: usize, depth: usize) -> Self {
        let short = rows.len() % mr;
        let sharing_rows = rows.len() - if short > 0 && !prefetch.strip_prefetches(short) { short } else { 0 };
        PrefetchPlan { prefetch, mr, rows, row_bytes, depth, sharing_rows }
    }

    /// Whether the strip at row `i` prefetches at all.
    fn prefetches(&self, i: usize) -> bool {
        self.prefetch.strip_prefetches(self.mr.min(self.rows.end - i))
    }

    /// Strip-outer order: the strip at row `i` touches its own panel (`panel`: the slice's
    /// first row) ahead of its loads.
    pub(crate) fn ahead(&self, panel: *const u8, i: usize) -> (*const u8, usize) {
        match self.prefetches(i) {
            false => (std::ptr::null(), 0),
            true => (panel.wrapping_add(AHEAD_ROWS * self.row_bytes), self.row_bytes),
        }
    }

    /// Panel-outer order (a task's few strips run back to back on each panel): with the
    /// shares, the strip at row `i` touches its share of the next panel (`next`: the
    /// slice's first row of it), starting at rows-before / sharing-rows of it, so the
    /// panels stream in once at an even rate (equal shares had the 5-row strip of a 17-row
    /// query issue half the lines in under a third of the time). A lone strip keeps
    /// [`PrefetchPlan::ahead`]: a whole panel ahead is too far, `M` = 1 ran at 0.87× the
    /// gemm crate at `K` = 1536.
    pub(crate) fn share(&self, panel: *const u8, next: *const u8, i: usize) -> (*const u8, usize) {
        match self.prefetch {
            Prefetch::NextPanelShares | Prefetch::TallStripShares
                if self.sharing_rows > self.mr && self.prefetches(i) =>
            {
                let (before, height, all) = (i - self.rows.start, self.mr.min(self.rows.end - i), self.sharing_rows);
                let start = self.row_bytes * self.depth * before / all;
                (next.wrapping_add(start), (self.row_bytes * height).div_ceil(all))
            }
            _ => self.ahead(panel, i),
        }
    }
}
