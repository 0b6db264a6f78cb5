//! Small hand-drawn PNG charts (line chart, scatter): an RGB canvas, Bresenham lines and the
//! public-domain 8×8 bitmap font of `font8x8`, encoded with `png`.

use anyhow::{Context, Result};
use font8x8::UnicodeFonts;

type Rgb = [u8; 3];
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];
const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas { w, h, px: vec![255; w * h * 3] }
    }
    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let o = (y as usize * self.w + x as usize) * 3;
            self.px[o..o + 3].copy_from_slice(&c);
        }
    }
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb, thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for a in 0..thick {
                for b in 0..thick {
                    self.set(x + a - thick / 2, y + b - thick / 2, c);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }
    fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let g = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            for (r, row) in g.iter().enumerate() {
                for b in 0..8 {
                    if row >> b & 1 == 1 {
                        self.set(x + k as i64 * 8 + b, y + r as i64, c);
                    }
                }
            }
        }
    }
    /// Text rotated 90° counter-clockwise, reading bottom to top from (x, y).
    fn vtext(&mut self, x: i64, y: i64, s: &str, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let g = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            for (r, row) in g.iter().enumerate() {
                for b in 0..8 {
                    if row >> b & 1 == 1 {
                        self.set(x + r as i64, y - k as i64 * 8 - b, c);
                    }
                }
            }
        }
    }
    fn save(&self, path: &std::path::Path) -> Result<()> {
        let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&self.px)?;
        Ok(())
    }
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}").trim_end_matches('0').to_string()
    }
}

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    left: i64,
    top: i64,
    pw: i64,
    ph: i64,
}

impl Frame {
    fn at(&self, x: f64, y: f64) -> (i64, i64) {
        let px = self.left + ((x - self.x0) / (self.x1 - self.x0) * self.pw as f64).round() as i64;
        let py = self.top + self.ph - ((y - self.y0) / (self.y1 - self.y0) * self.ph as f64).round() as i64;
        (px, py)
    }
}

fn axes(c: &mut Canvas, f: &Frame, title: &str, xlabel: &str, ylabel: &str, xticks: &[(f64, String)]) {
    c.text(f.left, 12, title, BLACK);
    for t in nice_ticks(f.y0, f.y1, 6) {
        let (_, y) = f.at(f.x0, t);
        c.line((f.left, y), (f.left + f.pw, y), GRID, 1);
        let s = fmt_tick(t);
        c.text(f.left - 6 - 8 * s.len() as i64, y - 4, &s, BLACK);
    }
    for (x, s) in xticks {
        let (px, _) = f.at(*x, f.y0);
        c.line((px, f.top), (px, f.top + f.ph), GRID, 1);
        c.text(px - 4 * s.len() as i64, f.top + f.ph + 8, s, BLACK);
    }
    c.line((f.left, f.top), (f.left, f.top + f.ph), BLACK, 1);
    c.line((f.left, f.top + f.ph), (f.left + f.pw, f.top + f.ph), BLACK, 1);
    c.text(f.left + f.pw / 2 - 4 * xlabel.len() as i64, f.top + f.ph + 26, xlabel, BLACK);
    c.vtext(10, f.top + f.ph / 2 + 4 * ylabel.len() as i64, ylabel, BLACK);
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        v.filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// One line per series over x = 0..n; `xticks` label some x positions. Non-finite points are
/// skipped (the line is broken there).
pub fn line_chart(
    path: &std::path::Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    xticks: &[(f64, String)],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let (w, h) = (1100usize, 560usize);
    let mut c = Canvas::new(w, h);
    let n = series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2);
    let (y0, y1) = range(series.iter().flat_map(|s| s.1.iter().copied()));
    let f = Frame {
        x0: -0.5,
        x1: n as f64 - 0.5,
        y0,
        y1,
        left: 80,
        top: 36,
        pw: w as i64 - 80 - 220,
        ph: h as i64 - 36 - 60,
    };
    axes(&mut c, &f, title, xlabel, ylabel, xticks);
    for (k, (name, ys)) in series.iter().enumerate() {
        let col = PALETTE[k % PALETTE.len()];
        let mut prev: Option<(i64, i64)> = None;
        for (i, y) in ys.iter().enumerate() {
            if !y.is_finite() {
                prev = None;
                continue;
            }
            let p = f.at(i as f64, *y);
            if let Some(q) = prev {
                c.line(q, p, col, 2);
            }
            c.rect(p.0 - 2, p.1 - 2, 5, 5, col);
            prev = Some(p);
        }
        let ly = f.top + 10 + 16 * k as i64;
        c.rect(f.left + f.pw + 16, ly, 14, 8, col);
        c.text(f.left + f.pw + 36, ly, name, BLACK);
    }
    c.save(path)
}

/// Labelled points; the indices in `front` are joined by a line (e.g. a Pareto front).
pub fn scatter(
    path: &std::path::Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    points: &[(String, f64, f64)],
    front: &[usize],
) -> Result<()> {
    let (w, h) = (1000usize, 600usize);
    let mut c = Canvas::new(w, h);
    let (x0, x1) = range(points.iter().map(|p| p.1));
    let (y0, y1) = range(points.iter().map(|p| p.2));
    let f = Frame { x0, x1, y0, y1, left: 90, top: 36, pw: w as i64 - 90 - 240, ph: h as i64 - 36 - 60 };
    let xt: Vec<(f64, String)> = nice_ticks(x0, x1, 6).into_iter().map(|t| (t, fmt_tick(t))).collect();
    axes(&mut c, &f, title, xlabel, ylabel, &xt);
    let mut fr: Vec<usize> = front.to_vec();
    fr.sort_by(|&a, &b| points[a].1.total_cmp(&points[b].1));
    for w2 in fr.windows(2) {
        let (a, b) = (&points[w2[0]], &points[w2[1]]);
        c.line(f.at(a.1, a.2), f.at(b.1, b.2), [200, 60, 60], 1);
    }
    for (k, (name, x, y)) in points.iter().enumerate() {
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        let col = PALETTE[k % PALETTE.len()];
        let p = f.at(*x, *y);
        c.rect(p.0 - 3, p.1 - 3, 7, 7, col);
        let ly = f.top + 10 + 14 * k as i64;
        c.rect(f.left + f.pw + 16, ly, 10, 8, col);
        let mark = if front.contains(&k) { "*" } else { " " };
        c.text(f.left + f.pw + 30, ly, &format!("{mark}{name}"), BLACK);
    }
    c.save(path)
}
