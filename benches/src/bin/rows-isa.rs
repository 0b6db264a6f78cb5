//! Every vector-op family of the encoder (everything but the layer GEMMs) on every vector
//! ISA this CPU has, at e5-small's widths, alternated call by call in one process (as
//! `gemm-isa` does for the f32 GEMM): per case, each ISA's median time per call over the
//! rounds, then the dispatched ISA against the fastest other one (median ratio of speeds,
//! and the rounds it won). The check behind "dispatch never picks a slower path" for the
//! row kernels, attention, pooling, activation quantization and half-width widening.
//!
//! One thread: the model runs these per thread (on lanes, or one task per row block or
//! attention head), so one thread's rate is the rate that matters. Ops that work in place
//! and would drift on repeated calls (GELU shrinks negative inputs towards subnormals)
//! first copy their input back; the copy is the same for every ISA.
//!
//! `cargo run --release -p e5-benches --bin rows-isa -- [seconds] [rounds]`

use e5_benches::*;
use e5_kernels::{AttentionShape, GeluKind, Isa, Kernels, Pooling, Storage};

/// e5-small: hidden width, attention heads, FFN width.
const HIDDEN: usize = 384;
const HEADS: usize = 12;
const FFN: usize = 1536;
/// Tokens per call: a batch-1 query (17), a mean workload passage (186), a full window (512).
const TOKENS: [usize; 3] = [17, 186, 512];

/// One timed call, owning its buffers.
type Call = Box<dyn FnMut() + Send>;

/// One case: its name, its shape, and its call on a given table.
struct Case {
    name: &'static str,
    shape: String,
    call: Box<dyn Fn(&Kernels) -> Call>,
}

fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    for t in TOKENS {
        let (x, r) = (rand_vec(1, t * HIDDEN), rand_vec(2, t * HIDDEN));
        let (gamma, beta) = (rand_vec(3, HIDDEN), rand_vec(4, HIDDEN));
        v.push(Case {
            name: "layernorm + residual",
            shape: format!("{t} × {HIDDEN}"),
            // In place and stable: each call normalizes the previous output plus `r`.
            call: Box::new(move |k| {
                let (k, mut y, r, g, b) = (k.clone(), x.clone(), r.clone(), gamma.clone(), beta.clone());
                Box::new(move || k.layernorm_rows(&mut y, Some(&r), &g, &b, 1e-12))
            }),
        });
        let up = rand_vec(5, t * FFN).iter().map(|x| 4.0 * x).collect::<Vec<_>>();
        for (name, kind) in [("GELU erf (copy + op)", GeluKind::Erf), ("GELU tanh (copy + op)", GeluKind::Tanh)] {
            let up = up.clone();
            v.push(Case {
                name,
                shape: format!("{t} × {FFN}"),
                call: Box::new(move |k| {
                    let (k, src, mut y) = (k.clone(), up.clone(), up.clone());
                    Box::new(move || {
                        y.copy_from_slice(&src);
                        k.gelu(kind, &mut y)
                    })
                }),
            });
        }
        let qkv = rand_vec(6, t * 3 * HIDDEN);
        v.push(Case {
            name: "attention, one sequence",
            shape: format!("{t} tokens, {HEADS} heads"),
            call: Box::new(move |k| {
                let (k, qkv, mut out) = (k.clone(), qkv.clone(), vec![0.0; t * HIDDEN]);
                let shape = AttentionShape { hidden: HIDDEN, heads: HEADS };
                Box::new(move || k.attention(&qkv, &[0, t], shape, &mut out))
            }),
        });
        // Rows 64 bytes apart, as attention lays its scores out; all at once, as attention
        // runs them (`softmax_rows`), and one by one.
        let ld = t.next_multiple_of(16);
        let scores = rand_vec(7, t * ld).iter().map(|x| 8.0 * x).collect::<Vec<_>>();
        for (name, at_once) in [("softmax rows (copy + op)", true), ("softmax row by row (copy + op)", false)] {
            let scores = scores.clone();
            v.push(Case {
                name,
                shape: format!("{t} × {t}, stride {ld}"),
                call: Box::new(move |k| {
                    let (k, src, mut s) = (k.clone(), scores.clone(), scores.clone());
                    Box::new(move || {
                        s.copy_from_slice(&src);
                        match at_once {
                            true => k.softmax_rows(&mut s, t, t, ld),
                            false => s.chunks_exact_mut(ld).for_each(|row| k.softmax(&mut row[..t])),
                        }
                    })
                }),
            });
        }
        for width in [HIDDEN, FFN] {
            let a = rand_vec(8, t * width);
            v.push(Case {
                name: "int8 row quantization",
                shape: format!("{t} × {width}"),
                call: Box::new(move |k| {
                    let (k, a, mut q) = (k.clone(), a.clone(), vec![0i8; width]);
                    Box::new(move || {
                        a.chunks_exact(width).for_each(|row| {
                            std::hint::black_box(k.quantize_row(row, &mut q));
                        })
                    })
                }),
            });
        }
        // The rows' offset in a cache line decides whether AVX-512 loads span two lines.
        for offset in [0, 32] {
            let hidden = rand_vec(9, t * HIDDEN);
            v.push(Case {
                name: "mean pool + normalize",
                shape: format!("{t} × {HIDDEN}, {offset} bytes past a line"),
                call: Box::new(move |k| {
                    let (k, (buf, at), mut out) = (k.clone(), placed(&hidden, offset), vec![0.0; HIDDEN]);
                    Box::new(move || k.pool(&buf[at..at + t * HIDDEN], HIDDEN, &[0, t], Pooling::Mean, true, &mut out))
                }),
            });
        }
    }
    // Half-width weights, one 384 × 384 matrix (what the GEMM widens per panel slice).
    let halves: Vec<u16> = rand_vec(10, HIDDEN * HIDDEN).iter().map(|&x| (x.to_bits() >> 16) as u16).collect();
    for (name, storage) in [("widen f16", Storage::F16), ("widen bf16", Storage::Bf16)] {
        let src = halves.clone();
        v.push(Case {
            name,
            shape: format!("{HIDDEN} × {HIDDEN}"),
            call: Box::new(move |k| {
                let (k, src, mut dst) = (k.clone(), src.clone(), vec![0.0; HIDDEN * HIDDEN]);
                Box::new(move || k.widen(storage, &src, &mut dst))
            }),
        });
    }
    v
}

/// A copy of `x` inside a buffer, and the index where it starts `offset` bytes (a multiple
/// of 4) past a 64-byte boundary.
fn placed(x: &[f32], offset: usize) -> (Vec<f32>, usize) {
    let mut buf = vec![0.0; x.len() + 32];
    let at = (0..32).find(|i| (buf.as_ptr() as usize + 4 * i) % 64 == offset).expect("4-byte aligned floats");
    buf[at..at + x.len()].copy_from_slice(x);
    (buf, at)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map_or(0.2, |s| s.parse().expect("seconds"));
    let rounds: usize = args.next().map_or(5, |s| s.parse().expect("rounds"));
    let default = Kernels::detect().unwrap();
    // Vector ISAs only: the scalar twin is a reference, never a dispatch candidate.
    let tables: Vec<&Kernels> =
        Isa::available().into_iter().filter(|&i| i != Isa::Scalar).map(|i| Kernels::get(i).unwrap()).collect();
    let d = tables.iter().position(|k| k.isa == default.isa).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    println!("default {} | 1 thread | rounds {rounds}\n", default.dispatch_reason());
    let names: Vec<String> = tables.iter().map(|k| format!("{} µs", k.isa)).collect();
    println!("| op | shape | {} | default ÷ best other (speed) | rounds won |", names.join(" | "));
    println!("| --- | --- |{}", " ---: |".repeat(2 + tables.len()));
    let mut losses = 0;
    for case in cases() {
        let mut calls: Vec<Call> = tables.iter().map(|k| (case.call)(k)).collect();
        // times[isa][round], seconds per call
        let mut times = vec![Vec::with_capacity(rounds); tables.len()];
        for _ in 0..rounds {
            let mut fs: Vec<&mut (dyn FnMut() + Send)> = calls.iter_mut().map(|f| &mut **f as _).collect();
            let round = pool.install(|| interleaved_median_secs(secs, &mut fs));
            times.iter_mut().zip(round).for_each(|(t, s)| t.push(s));
        }
        let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
        let other = (0..tables.len()).filter(|&i| i != d).min_by(|&x, &y| medians[x].total_cmp(&medians[y]));
        let (ratio, won) = match other {
            Some(o) => {
                let speedups: Vec<f64> = (0..rounds).map(|r| times[o][r] / times[d][r]).collect();
                let won = speedups.iter().filter(|&&s| s > 1.0).count();
                if medians[d] > medians[o] {
                    losses += 1;
                }
                (format!("{:.2}×", median(&speedups)), format!("{won}/{rounds}"))
            }
            None => ("–".into(), "–".into()),
        };
        let cells: Vec<String> = medians.iter().map(|s| format!("{:.2}", s * 1e6)).collect();
        println!("| {} | {} | {} | {ratio} | {won} |", case.name, case.shape, cells.join(" | "));
    }
    println!("\ncases where the default's median is slower than another ISA's: {losses}");
}
