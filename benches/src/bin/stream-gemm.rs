//! The 48 GEMMs of e5-small's 12 layers (QKV, attention output, FFN up, FFN down; distinct
//! weights per layer, so they stream from L3 or DRAM as in the model) at `M` rows, inside
//! the model's hot workers, once per software-prefetch choice of the dispatched ISA,
//! alternated call by call (a call: all 48 GEMMs). Per choice: the median time of a call
//! over the rounds, the range of the rounds' medians, and its median ratio to the derived
//! choice's. The weights are on 2 MiB pages, as the model's are (`into_huge_pages`). With
//! `pages` last, the variants are instead the derived choice on those weights and on a copy
//! left on the heap (4 KiB pages), each set streamed every other call (with more variants on
//! one set, that set would stay in L3 and the other not). The check behind the prefetch
//! rules and the huge pages at batch 1:
//! - `f32` (default): each [`Prefetch`] of `Kernels::f32_blocking`;
//! - `f16`: the same, on the weights stored as f16 (widened in registers by the f32 tile);
//! - `int8`: the int8 tile's prefetch distance (`Kernels::i8_prefetch`): 0 to 8192 bytes
//!   (only the AVX-512 VNNI tile takes one; elsewhere the rows read alike);
//! - `int4`: the int4-g32 tile's prefetch distance (`Kernels::i4_prefetch`), as for int8;
//! - `bf16`: each [`Prefetch`] of the bf16-dot kernel's blocking (`Bf16Kernel::blocking`),
//!   on a CPU that has the kernel.
//!
//! `cargo run --release -p e5-benches --bin stream-gemm -- [M] [threads] [rounds] [seconds] [f32|f16|int8|int4|bf16] [pages]`

use e5_benches::*;
use e5_kernels::{Blocking, Kernels, PackedBf16, PackedF32, PackedI4, PackedI8, Post, Prefetch, Storage};

/// (K, N) of each layer's GEMMs.
const SHAPES: [(usize, usize); 4] = [(384, 1152), (384, 384), (384, 1536), (1536, 384)];
/// The int8 and int4 prefetch distances compared, in bytes.
const DISTANCES: [usize; 6] = [0, 512, 1024, 2048, 4096, 8192];

/// The derived prefetch distance, then each other one of [`DISTANCES`], as variants of the
/// table `with` makes for a distance.
fn distance_variants(derived: usize, with: impl Fn(usize) -> Kernels) -> Vec<(String, Variant)> {
    let others = DISTANCES.into_iter().filter(|&b| b != derived).map(|b| (format!("{b} B"), b));
    let all = std::iter::once((format!("{derived} B (derived)"), derived)).chain(others);
    all.map(|(name, bytes)| (name, Variant::kernels(with(bytes)))).collect()
}

/// `derived` first, then `derived` with each other [`Prefetch`], as the variants `with`
/// makes of a blocking.
fn prefetch_variants(derived: Blocking, with: impl Fn(Blocking) -> Variant) -> Vec<(String, Variant)> {
    let others = Prefetch::ALL.into_iter().filter(|&p| p != derived.prefetch);
    let all = std::iter::once((format!("{:?} (derived)", derived.prefetch), derived))
        .chain(others.map(|p| (format!("{p:?}"), Blocking { prefetch: p, ..derived })));
    all.map(|(name, b)| (name, with(b))).collect()
}

/// The 48 weight matrices, in one format.
#[derive(Clone)]
enum Layers {
    F32(Vec<PackedF32>),
    Int8(Vec<PackedI8>),
    Int4(Vec<PackedI4>),
    Bf16(Vec<PackedBf16>),
}

/// One timed variant: the kernel table it runs with, and the bf16-dot blocking.
#[derive(Clone)]
struct Variant {
    kern: Kernels,
    bf16: Option<Blocking>,
}

impl Variant {
    fn kernels(kern: Kernels) -> Self {
        Variant { kern, bf16: None }
    }
}

impl Layers {
    /// The same weights on 2 MiB pages.
    fn into_huge_pages(self) -> Self {
        match self {
            Layers::F32(ws) => Layers::F32(ws.into_iter().map(PackedF32::into_huge_pages).collect()),
            Layers::Int8(ws) => Layers::Int8(ws.into_iter().map(PackedI8::into_huge_pages).collect()),
            Layers::Int4(ws) => Layers::Int4(ws.into_iter().map(PackedI4::into_huge_pages).collect()),
            Layers::Bf16(ws) => Layers::Bf16(ws.into_iter().map(PackedBf16::into_huge_pages).collect()),
        }
    }

    /// One call: every GEMM on `a` (`[m, 1536]`, the first `K` columns read), into `c`.
    fn run(&self, v: &Variant, a: &[f32], m: usize, c: &mut [f32]) {
        let k = &v.kern;
        match self {
            Layers::F32(ws) => ws.iter().for_each(|w| k.gemm(&a[..m * w.k()], m, w, Post::None, &mut c[..m * w.n()])),
            Layers::Int8(ws) => {
                ws.iter().for_each(|w| k.gemm_i8(&a[..m * w.k()], m, w, Post::None, &mut c[..m * w.n()]))
            }
            Layers::Int4(ws) => {
                ws.iter().for_each(|w| k.gemm_i4(&a[..m * w.k()], m, w, Post::None, &mut c[..m * w.n()]))
            }
            Layers::Bf16(ws) => ws.iter().for_each(|w| {
                let blocking = v.bf16.unwrap_or_else(|| w.kernel().blocking());
                w.gemm_blocked(blocking, &a[..m * w.k()], m, Post::None, &mut c[..m * w.n()])
            }),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: f64| args.next().map_or(default, |s| s.parse().expect("numeric argument"));
    let (m, threads, rounds, secs) = (next(17.0) as usize, next(2.0) as usize, next(7.0) as usize, next(0.3));
    let format = std::env::args().nth(5).unwrap_or_else(|| "f32".into());
    let kern = Kernels::detect().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let weights = |l: u64, (k, n): (usize, usize)| (rand_vec(l, n * k), n, k);
    let (heap, variants) = match format.as_str() {
        "f32" | "f16" => {
            let variants = prefetch_variants(kern.f32_blocking(), |b| Variant::kernels(kern.with_f32_blocking(b)));
            let storage = if format == "f16" { Storage::F16 } else { Storage::F32 };
            let ws = (0..12u64).flat_map(|l| SHAPES.map(|s| weights(l, s)));
            let pack =
                |(w, n, k): (Vec<f32>, usize, usize)| PackedF32::from_rows(kern, &w, n, k, k, None).stored_as(storage);
            (Layers::F32(ws.map(pack).collect()), variants)
        }
        "int8" => {
            let variants = distance_variants(kern.i8_prefetch(), |b| kern.with_i8_prefetch(b));
            let ws = (0..12u64).flat_map(|l| SHAPES.map(|s| weights(l, s)));
            (Layers::Int8(ws.map(|(w, n, k)| PackedI8::quantize(kern, &w, n, k, None)).collect()), variants)
        }
        "int4" => {
            let variants = distance_variants(kern.i4_prefetch(), |b| kern.with_i4_prefetch(b));
            let ws = (0..12u64).flat_map(|l| SHAPES.map(|s| weights(l, s)));
            (Layers::Int4(ws.map(|(w, n, k)| PackedI4::quantize(kern, &w, n, k, 32, None)).collect()), variants)
        }
        "bf16" => {
            let dot = kern.bf16_dot().ok().flatten().expect("bf16: no bf16-dot path here (E5_BF16=dot forces one)");
            let variants = prefetch_variants(dot.blocking(), |b| Variant { kern: kern.clone(), bf16: Some(b) });
            let ws = (0..12u64).flat_map(|l| SHAPES.map(|s| weights(l, s)));
            (Layers::Bf16(ws.map(|(w, n, k)| PackedBf16::from_rows(dot, &w, n, k, k, None)).collect()), variants)
        }
        other => panic!("format {other:?}: f32, f16, int8, int4 or bf16"),
    };
    let huge = heap.clone().into_huge_pages();
    let variants: Vec<_> = match std::env::args().nth(6).as_deref() {
        Some("pages") => {
            let (name, k) = variants.into_iter().next().unwrap();
            vec![(format!("{name}, 2 MiB pages"), k.clone(), &huge), (format!("{name}, 4 KiB pages"), k, &heap)]
        }
        _ => variants.into_iter().map(|(name, k)| (name, k, &huge)).collect(),
    };
    let a = rand_vec(99, m * 1536);
    let mut outs = vec![vec![0.0f32; m * 1536]; variants.len()];
    let mut times = vec![Vec::new(); variants.len()];
    let a = &a;
    pool.install(|| {
        e5_kernels::with_hot_workers(|| {
            for _ in 0..rounds {
                let mut calls: Vec<_> =
                    variants.iter().zip(&mut outs).map(|((_, k, layers), c)| move || layers.run(k, a, m, c)).collect();
                let mut fs: Vec<&mut (dyn FnMut() + Send)> = calls.iter_mut().map(|f| f as _).collect();
                times.iter_mut().zip(interleaved_median_secs(secs, &mut fs)).for_each(|(v, t)| v.push(t));
            }
        })
    });
    let ops = 12.0 * SHAPES.iter().map(|&(k, n)| 2.0 * (m * n * k) as f64).sum::<f64>();
    println!("{} | {format} | M {m} | threads {threads} | rounds {rounds}\n", kern.dispatch_reason());
    // The rounds' range shows this machine's slow phases: they come and go within one
    // process, and fall on every variant alike (calls alternate).
    println!(
        "| variant | ms per call (median) | rounds' medians (range) | G op/s | time ÷ derived (median) |\n\
         | --- | ---: | ---: | ---: | ---: |"
    );
    for (i, (name, _, _)) in variants.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds).map(|r| times[i][r] / times[0][r]).collect();
        let mut sorted = times[i].clone();
        sorted.sort_by(f64::total_cmp);
        let t = median(&sorted);
        let (t_ms, lo_ms, hi_ms) = (t * 1e3, sorted[0] * 1e3, sorted[rounds - 1] * 1e3);
        println!("| {name} | {t_ms:.3} | {lo_ms:.3}–{hi_ms:.3} | {:.0} | {:.3} |", ops / t / 1e9, median(&ratios));
    }
}
