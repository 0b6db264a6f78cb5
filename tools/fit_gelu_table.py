#!/usr/bin/env python3
"""Fits `consts::GELU_Q` (kernels/src/vector/mod.rs): Q(a) = Φ(-a) = erfc(a/√2)/2 on
[0, 8) as 16 polynomials of degree 7 in u = a - i/2 ∈ [0, 1/2), interval i = ⌊2a⌋.

Per interval: least squares on 48 Chebyshev nodes, weighted by 1/Q (relative error, so the
tail keeps its digits), the constant term rounded to f32 first and the others refitted
against it. Prints the Rust table (row j = coefficient of u^j, column i = interval) and the
error of GELU built on it, emulated in f32 with fused multiply-adds, against mpmath:
x ≥ 0 within ~1.1 ulp, x < 0 within ~2e-8 absolute (about 2 ulp, more in the far tail).

    pip install numpy mpmath; python3 tools/fit_gelu_table.py
"""
import mpmath as mp
import numpy as np

DEGREE, INTERVALS, WIDTH = 7, 16, 0.5
END = INTERVALS * WIDTH
f32 = np.float32
mp.mp.dps = 40


def q_exact(a):
    return float(mp.ncdf(-mp.mpf(a)))


def fit():
    nodes = 6 * (DEGREE + 1)
    k = np.arange(nodes)
    u = WIDTH / 2 * (1 - np.cos(np.pi * (k + 0.5) / nodes))
    v = np.vander(u, DEGREE + 1, increasing=True)
    table = []
    for i in range(INTERVALS):
        y = np.array([q_exact(i * WIDTH + t) for t in u])
        w = 1 / y
        c, *_ = np.linalg.lstsq(v * w[:, None], y * w, rcond=None)
        c0 = f32(c[0])
        rest, *_ = np.linalg.lstsq(v[:, 1:] * w[:, None], (y - float(c0)) * w, rcond=None)
        table.append([c0] + [f32(r) for r in rest])
    return table


def fma(a, b, c):
    return f32(np.float64(a) * np.float64(b) + np.float64(c))


def gelu(table, x):
    """The kernels' arithmetic, step by step (scalar twin: `gelu_erf_tabled_1`)."""
    x = f32(x)
    a = f32(abs(x))
    am = min(a, f32(END))
    i = min(int(am * f32(2.0)), INTERVALS - 1)
    u = f32(np.float64(am) - WIDTH * i)
    q = table[i][DEGREE]
    for j in range(DEGREE - 1, -1, -1):
        q = fma(q, u, table[i][j])
    t = f32(x * q) if a < END else f32(0)
    return t if x < 0 else f32(x - t)


def literal(v):
    """The shortest text that reads back as the f32 `v`."""
    if v == 0 or abs(v) >= 1e-3:
        return np.format_float_positional(v, unique=True, trim="0")
    return np.format_float_scientific(v, unique=True, trim="0")


def main():
    table = fit()
    print(f"pub const GELU_Q: [[f32; {INTERVALS}]; {DEGREE + 1}] = [")
    for j in range(DEGREE + 1):
        row = ", ".join(literal(table[i][j]) for i in range(INTERVALS))
        print(f"    [{row}],")
    print("];")
    worst = {"x >= 0 (ulp)": 0.0, "x < 0 (abs)": 0.0}
    for x in np.linspace(-9, 9, 90001).astype(np.float32):
        got = float(gelu(table, x))
        want = float(x) * float(mp.ncdf(mp.mpf(float(x))))
        if x >= 0:
            ulp = float(np.spacing(f32(abs(want)))) if want else 1.0
            worst["x >= 0 (ulp)"] = max(worst["x >= 0 (ulp)"], abs(got - want) / ulp)
        else:
            worst["x < 0 (abs)"] = max(worst["x < 0 (abs)"], abs(got - want))
    print("// worst error:", {k: f"{v:.3g}" for k, v in worst.items()})


if __name__ == "__main__":
    main()
