//! quant-eval's charts, drawn with `plotters`: a line chart (one series per precision or per
//! script, over depth) and a labelled scatter (speed vs accuracy). Each chart is written twice,
//! `STEM.png` and `STEM.svg`. The legend sits in its own panel right of the plot, so it never
//! hides a line. Text is set in the Go font compiled into the binary (BSD licence,
//! `crates/e5-cli/assets/Go-Regular.LICENSE`), so a PNG looks the same on every machine,
//! whatever fonts it has.

use anyhow::{anyhow, Result};
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT: &str = "e5-go";
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Width of the legend panel, in pixels.
const LEGEND_W: u32 = 230;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plots: {e}")
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let ttf: &'static [u8] = include_bytes!("../../assets/Go-Regular.ttf");
    let registered = REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, ttf)
            .map_err(|_| "the bundled Go font is invalid".into())
    });
    registered.clone().map_err(err)
}

/// A chart drawable on any plotters backend.
trait Chart {
    const SIZE: (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Writes `chart` as `STEM.png` and `STEM.svg`.
fn save<C: Chart>(chart: &C, stem: &Path) -> Result<()> {
    register_font()?;
    let png = stem.with_extension("png");
    let root = BitMapBackend::new(&png, C::SIZE).into_drawing_area();
    chart.draw(&root)?;
    root.present().map_err(|e| anyhow!("{}: {e}", png.display()))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, C::SIZE).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(err)?;
    }
    let path = stem.with_extension("svg");
    std::fs::write(&path, svg).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Splits `root` (filled white) into the plot and the legend panel right of it.
fn panels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>) -> Result<[DrawingArea<DB, Shift>; 2]> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w - LEGEND_W);
    Ok([plot, legend])
}

/// One coloured swatch and name per series, top to bottom, in `PALETTE` order.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, names: impl Iterator<Item = String>) -> Result<()> {
    for (k, name) in names.enumerate() {
        let y = 44 + 18 * k as i32;
        let color = PALETTE[k % PALETTE.len()];
        area.draw(&Rectangle::new([(6, y), (22, y + 10)], color.filled())).map_err(err)?;
        area.draw(&Text::new(name, (28, y - 2), (FONT, 13).into_font())).map_err(err)?;
    }
    Ok(())
}

/// `[lo, hi]` of the finite values, padded by 5%; `[0, 1]` when there are none.
fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        v.filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// The maximal runs of finite points of `ys` (x = index): a line breaks at a missing value.
fn finite_runs(ys: &[f64]) -> Vec<Vec<(i32, f64)>> {
    let mut runs = vec![vec![]];
    for (i, &y) in ys.iter().enumerate() {
        if y.is_finite() {
            runs.last_mut().expect("never empty").push((i as i32, y));
        } else if !runs.last().expect("never empty").is_empty() {
            runs.push(vec![]);
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// The mesh every chart draws: axis descriptions in the bundled font, after `custom` (a
/// chart's own settings).
fn mesh<'a, 'b, DB, X, Y>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    xlabel: &str,
    ylabel: &str,
    custom: impl FnOnce(&mut MeshStyle<'a, 'b, X, Y, DB>),
) -> Result<()>
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut m = chart.configure_mesh();
    custom(&mut m);
    m.x_desc(xlabel).y_desc(ylabel).label_style((FONT, 13)).axis_desc_style((FONT, 14)).draw().map_err(err)
}

struct Lines<'a> {
    title: &'a str,
    xlabel: &'a str,
    ylabel: &'a str,
    /// Labels of some x positions (x = index into each series).
    xticks: &'a [(f64, String)],
    series: &'a [(String, Vec<f64>)],
}

impl Chart for Lines<'_> {
    const SIZE: (u32, u32) = (1100, 560);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let [plot, key] = panels(root)?;
        let n = self.series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2) as i32;
        let (y0, y1) = range(self.series.iter().flat_map(|s| s.1.iter().copied()));
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(-1..n, y0..y1)
            .map_err(err)?;
        let label = |x: &i32| {
            self.xticks.iter().find(|(t, _)| (t - *x as f64).abs() < 0.5).map(|t| t.1.clone()).unwrap_or_default()
        };
        mesh(&mut chart, self.xlabel, self.ylabel, |m| {
            m.disable_x_mesh().x_labels(n as usize + 2).x_label_formatter(&label);
        })?;
        for (k, (_, ys)) in self.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            for run in finite_runs(ys) {
                chart.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2))).map_err(err)?;
                chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
            }
        }
        legend(&key, self.series.iter().map(|s| s.0.clone()))
    }
}

/// One line per series over x = 0..n, written as `STEM.png` and `STEM.svg`; `xticks` label
/// some x positions. Non-finite points are skipped (the line is broken there).
pub fn line_chart(
    stem: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    xticks: &[(f64, String)],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    save(&Lines { title, xlabel, ylabel, xticks, series }, stem)
}

/// Labelled points; the indices in `front` are joined by a line and starred in the legend.
pub struct Scatter<'a> {
    pub title: &'a str,
    pub xlabel: &'a str,
    pub ylabel: &'a str,
    pub points: &'a [(String, f64, f64)],
    pub front: &'a [usize],
}

impl Chart for Scatter<'_> {
    const SIZE: (u32, u32) = (1000, 600);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let [plot, key] = panels(root)?;
        let (x0, x1) = range(self.points.iter().map(|p| p.1));
        let (y0, y1) = range(self.points.iter().map(|p| p.2));
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        mesh(&mut chart, self.xlabel, self.ylabel, |_| {})?;
        let mut front: Vec<(f64, f64)> = self.front.iter().map(|&k| (self.points[k].1, self.points[k].2)).collect();
        front.retain(|p| p.0.is_finite() && p.1.is_finite());
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(front, RGBColor(200, 60, 60).stroke_width(1))).map_err(err)?;
        for (k, (_, x, y)) in self.points.iter().enumerate() {
            if x.is_finite() && y.is_finite() {
                chart.draw_series([Circle::new((*x, *y), 4, PALETTE[k % PALETTE.len()].filled())]).map_err(err)?;
            }
        }
        let names = self.points.iter().enumerate().map(|(k, p)| {
            let mark = if self.front.contains(&k) { "* " } else { "  " };
            format!("{mark}{}", p.0)
        });
        legend(&key, names)
    }
}

/// Two scatters side by side.
struct Side<'a>(Scatter<'a>, Scatter<'a>);

impl Chart for Side<'_> {
    const SIZE: (u32, u32) = (2000, 600);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (left, right) = root.split_horizontally(Scatter::SIZE.0);
        self.0.draw(&left)?;
        self.1.draw(&right)
    }
}

/// Two scatters side by side, written as `STEM.png` and `STEM.svg`.
pub fn scatter_pair(stem: &Path, left: Scatter, right: Scatter) -> Result<()> {
    save(&Side(left, right), stem)
}

/// Labelled points, written as `STEM.png` and `STEM.svg`; the indices in `front` are joined
/// by a line (e.g. a Pareto front) and starred in the legend.
pub fn scatter(
    stem: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    points: &[(String, f64, f64)],
    front: &[usize],
) -> Result<()> {
    save(&Scatter { title, xlabel, ylabel, points, front }, stem)
}
