//! One micro-kernel call at a time, operands in L1: the f32 tile (f32 and, where the kernel
//! widens in registers, f16 panels) and the int8 tile of the detected ISA (`E5_ISA` forces
//! one), on one thread, against the FMA probe. What the kernels can do before memory,
//! packing and threading take their share; `gemm-report` measures whole GEMMs.
//!
//! `cargo run --release -p e5-benches --bin tile-probe -- [K] [rounds]`

use e5_kernels::f32gemm::{Fill, PanelPtr, Tile, TileOut, TilePost, TilePrefetch};
use e5_kernels::i8gemm::I8Tile;
use e5_kernels::Kernels;
use std::time::Instant;

/// Giga multiply-adds per second of `calls` runs of `f`, each `macs` multiply-adds.
fn rate(macs: usize, mut f: impl FnMut()) -> f64 {
    let calls = 20_000;
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    (calls * macs) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().expect("numeric argument"));
    let k = args.next().unwrap_or(384).next_multiple_of(4);
    let rounds = args.next().unwrap_or(7);
    let kern = Kernels::detect().unwrap();
    let (fk, ik) = kern.micro_kernels();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let peak_macs = pool.install(|| kern.fma_peak_gflops(1, 0.3)) / 2.0;

    // f32: a packed A strip (`k_stride = MR`), one panel, C; all fit L1 at K ≤ 384.
    let (a, w) = (e5_benches::rand_vec(1, k * fk.mr), e5_benches::rand_vec(2, k * fk.nr));
    let w16: Vec<u16> = w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    let (bias, mut c) = (vec![0.0f32; fk.nr], vec![0.0f32; fk.mr * fk.nr]);
    let f32_tile = |b: PanelPtr, c: &mut [f32]| Tile {
        k,
        a: a.as_ptr(),
        row_stride: 1,
        k_stride: fk.mr,
        b,
        out: TileOut {
            bias: bias.as_ptr(),
            c: c.as_mut_ptr(),
            ldc: fk.nr,
            mr: fk.mr,
            nr: fk.nr,
            accumulate: false,
            post: TilePost::None,
        },
        // The operands are in L1: prefetch an address already cached (a no-op).
        prefetch: TilePrefetch { at: w.as_ptr().cast(), step: 0, fill: Fill::L1 },
    };
    // int8: strip and panel in the kernel's layout (values do not change the timing).
    let groups = k / 4;
    let a8: Vec<i8> = (0..groups * ik.mr * ik.layout.a_group_bytes()).map(|i| (i % 7) as i8).collect();
    let w8: Vec<i8> = (0..groups * ik.nr * 4).map(|i| (i % 5) as i8 - 2).collect();
    let (scales, colsum) = (vec![1.0f32; ik.mr.max(ik.nr)], vec![0i32; ik.nr]);
    let mut c8 = vec![0.0f32; ik.mr * ik.nr];
    let i8_tile = |c: &mut [f32]| I8Tile {
        groups,
        a: a8.as_ptr(),
        b: w8.as_ptr(),
        c: c.as_mut_ptr(),
        ldc: ik.nr,
        mr: ik.mr,
        nr: ik.nr,
        row_scales: scales.as_ptr(),
        col_scales: scales.as_ptr(),
        bias: scales.as_ptr(),
        colsum: colsum.as_ptr(),
        post: TilePost::None,
        prefetch: 0,
    };

    let (f32_macs, i8_macs) = (fk.mr * fk.nr * k, ik.mr * ik.nr * k);
    let mut runs: [Vec<f64>; 3] = Default::default();
    pool.install(|| {
        for _ in 0..rounds {
            // SAFETY: the table belongs to a supported ISA; every tile is in bounds.
            runs[0].push(rate(f32_macs, || unsafe { (fk.run)(&f32_tile(PanelPtr::F32(w.as_ptr()), &mut c)) }));
            if fk.half_panels {
                runs[1].push(rate(f32_macs, || unsafe { (fk.run)(&f32_tile(PanelPtr::F16(w16.as_ptr()), &mut c)) }));
            }
            runs[2].push(rate(i8_macs, || unsafe { (ik.run)(&i8_tile(&mut c8)) }));
        }
    });
    println!("isa {} | K {k} | 1 thread | FMA peak {peak_macs:.1} G multiply-adds/s | {rounds} rounds\n", kern.isa);
    println!("| tile | shape | best G MAC/s | median | % of FMA peak (median) |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let names = ["f32", "f32, f16 panel", &format!("int8 ({})", ik.name)];
    let shapes = [(fk.mr, fk.nr), (fk.mr, fk.nr), (ik.mr, ik.nr)];
    for ((name, (mr, nr)), mut v) in names.iter().zip(shapes).zip(runs) {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let (best, median) = (v[v.len() - 1], v[v.len() / 2]);
        println!("| {name} | {mr} × {nr} | {best:.1} | {median:.1} | {:.0}% |", 100.0 * median / peak_macs);
    }
}
