//! The accuracy chart: error vs conditioning, one line per implementation,
//! one row of panels per dtype (SVG via plotters).
//!
//! Columns of panels, each varying one axis of the sweep with the others at
//! their benign value, so each panel shows one cause of error:
//! 1. offset/spread ratio (magnitude 1, worst over sizes): cancellation;
//! 2. values per channel (ratio 1, magnitude 1): accumulation error;
//! 3. magnitude (ratio 1, worst over sizes): underflow/overflow.
//!
//! The y value is the worst `max_rel_err` over ops, leaving out `grad_input`
//! at N·S = 2: there the exact gradient is only ≈ eps/σ² of the terms it is
//! computed from, so its relative error measures that output's conditioning
//! (the same for every implementation), not the algorithm; the CSV keeps
//! those rows. Nothing is clamped silently: errors ≥ 1 (no correct digit)
//! are drawn in a shaded band labelled so, up to [`BAND_TOP`] (larger ones on
//! its top edge, which is labelled so); NaN/inf results (where the oracle is finite) get
//! their own strip above it, as ✕; errors below [`FLOOR`] (exact results)
//! sit on a labelled floor. Each implementation has its own marker shape and
//! a small x offset, so identical series stay distinguishable, and the
//! legend is a strip above the panels. The CSV keeps the exact values.
//! Files are written by [`crate::report::write_accuracy_chart`].

use super::export::AccuracyRow;
use crate::error::{Error, Result};
use crate::report::plot::{draw_legend, draw_markers, Style};
use crate::report::sanitize::{plausible, MAX_VALUE, MIN_VALUE};
use plotters::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Errors below this (including exact results) are drawn on it.
pub const FLOOR: f64 = 1e-17;
/// From here up: no correct digit (the shaded band).
pub const NO_DIGITS: f64 = 1.0;
/// Top of the band: larger finite errors are drawn on it (the edge is labelled).
pub const BAND_TOP: f64 = 1e4;
/// Where NaN/inf results are drawn (their own strip above the band).
pub const NON_FINITE_Y: f64 = 1e6;
/// Top of the y axis.
const Y_TOP: f64 = 1e7;
const WIDTH: u32 = 1500;
const HEIGHT: u32 = 960;
/// Height of the legend strip.
const LEGEND_H: u32 = 40;

/// One panel's x axis: which sweep axis, its label, and which rows it shows.
struct Panel {
    title: &'static str,
    x_label: &'static str,
    x: fn(&AccuracyRow) -> f64,
    keep: fn(&AccuracyRow) -> bool,
}

const PANELS: [Panel; 3] = [
    Panel {
        title: "vs offset ratio (scale 1, worst over n)",
        x_label: "offset ratio |mean| / std (log)",
        x: |r| r.offset_ratio,
        keep: |r| r.scale == 1.0,
    },
    Panel {
        title: "vs values per channel (ratio 1, scale 1)",
        x_label: "values per channel N·S (log)",
        x: |r| r.n_per_channel as f64,
        keep: |r| r.scale == 1.0 && r.offset_ratio == 1.0,
    },
    Panel {
        title: "vs magnitude (ratio 1, worst over n)",
        x_label: "spread of the data (log)",
        x: |r| r.scale,
        keep: |r| r.offset_ratio == 1.0,
    },
];

/// The error as the chart orders it: NaN counts as infinite (no digit and
/// not even a number), so a maximum keeps it.
fn as_error(e: f64) -> f64 {
    if e.is_nan() {
        f64::INFINITY
    } else {
        e
    }
}

/// Where an error is drawn, and whether it sits at an edge (`Floor`,
/// `Top`: beyond the band) or in the NaN/inf strip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placed {
    /// Drawn at its value.
    At(f64),
    /// Below [`FLOOR`] (exact or nearly): drawn on the floor.
    Floor,
    /// A finite error above [`BAND_TOP`]: drawn on the band's top edge.
    Top,
    /// NaN or infinity: drawn in the NaN/inf strip.
    NonFinite,
}

/// Where an error goes on the chart (see [`Placed`]).
pub fn place(e: f64) -> Placed {
    let e = as_error(e);
    if !e.is_finite() {
        Placed::NonFinite
    } else if e < FLOOR {
        Placed::Floor
    } else if e > BAND_TOP {
        Placed::Top
    } else {
        Placed::At(e)
    }
}

/// The y coordinate of a placement.
fn y_of(p: Placed) -> f64 {
    match p {
        Placed::At(e) => e,
        Placed::Floor => FLOOR,
        Placed::Top => BAND_TOP,
        Placed::NonFinite => NON_FINITE_Y,
    }
}

/// Rows the chart draws (see the module docs for the one exclusion).
fn charted(r: &AccuracyRow) -> bool {
    !(r.op == "grad_input" && r.n_per_channel == 2)
}

/// Rows the chart can place: x values on a log axis must be finite and
/// plausible ([`plausible`]; `bnh report` also names the rows it leaves out).
fn drawable(r: &AccuracyRow) -> bool {
    plausible(r.offset_ratio) && plausible(r.scale) && plausible(r.n_per_channel as f64)
}

/// Every panel's series: `(dtype, panel) → impl → x → worst error`, in one
/// pass over the rows (each x keyed by its bits, so lookups are O(log n)).
type Worst<'a> = HashMap<(&'a str, usize), HashMap<&'a str, BTreeMap<u64, f64>>>;

fn worst(rows: &[AccuracyRow]) -> Worst<'_> {
    let mut out: Worst = HashMap::new();
    for r in rows.iter().filter(|r| charted(r) && drawable(r)) {
        for (p, panel) in PANELS.iter().enumerate().filter(|(_, p)| (p.keep)(r)) {
            let e = as_error(r.max_rel_err);
            let slot = out
                .entry((r.dtype.as_str(), p))
                .or_default()
                .entry(r.imp.as_str())
                .or_default()
                .entry((panel.x)(r).to_bits())
                .or_insert(e);
            *slot = slot.max(e);
        }
    }
    out
}

/// (x, worst error) points of one implementation in one panel, sorted by x
/// (positive x: bit order is numeric order).
fn series(worst: &Worst, imp: &str, dtype: &str, p: usize) -> Vec<(f64, f64)> {
    worst
        .get(&(dtype, p))
        .and_then(|m| m.get(imp))
        .map(|pts| pts.iter().map(|(&x, &e)| (f64::from_bits(x), e)).collect())
        .unwrap_or_default()
}

/// Distinct values of `f` in order of first appearance.
fn unique(rows: &[AccuracyRow], f: impl Fn(&AccuracyRow) -> &str) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        if seen.insert(f(r)) {
            out.push(f(r).to_string());
        }
    }
    out
}

/// The panel's x range with a margin, clamped to plausible values.
fn x_range(rows: &[AccuracyRow], panel: &Panel) -> (f64, f64) {
    let xs = rows
        .iter()
        .filter(|r| (panel.keep)(r) && drawable(r))
        .map(|r| (panel.x)(r));
    let (lo, hi) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo / 2.0, hi * 2.0)
    } else if lo.is_finite() {
        (lo / 10.0, lo * 10.0)
    } else {
        (0.1, 10.0)
    };
    (lo.max(MIN_VALUE / 10.0), hi.min(MAX_VALUE * 10.0))
}

/// Render the chart as SVG text.
pub fn render_svg(rows: &[AccuracyRow]) -> Result<String> {
    if rows.is_empty() {
        return Err(Error::Usage("no accuracy rows to chart".into()));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, rows).map_err(|e| Error::Usage(format!("drawing the chart failed: {e}")))?;
        root.present()
            .map_err(|e| Error::Usage(format!("drawing the chart failed: {e}")))?;
    }
    Ok(svg)
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[AccuracyRow],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(
        "bnh accuracy: max relative error vs the double-double oracle (worst over y, batch mean/var, grad_input, grad_weight; grad_input at N·S = 2 left out)",
        ("sans-serif", 20),
    )?;
    let impls = unique(rows, |r| &r.imp);
    let dtypes = unique(rows, |r| &r.dtype);
    let worst = worst(rows);
    let (top, panels) = root.split_vertically(LEGEND_H);
    let mut legend: Vec<(String, Style)> = impls
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), Style::of_index(i)))
        .collect();
    legend.push((
        "✕ = NaN/inf (top strip); shaded band: error ≥ 1, no correct digits; on its top edge: error > 1e4 (exact values in the CSV)".into(),
        Style::reference(WHITE, false),
    ));
    draw_legend(&top, &legend).map_err(|e| e.to_string())?;
    let cells = panels.split_evenly((dtypes.len(), PANELS.len()));
    for (d, dtype) in dtypes.iter().enumerate() {
        for (p, panel) in PANELS.iter().enumerate() {
            let area = &cells[d * PANELS.len() + p];
            let (lo, hi) = x_range(rows, panel);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{dtype}: {}", panel.title), ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((lo..hi).log_scale(), (FLOOR / 10.0..Y_TOP).log_scale())?;
            chart
                .configure_mesh()
                .x_desc(panel.x_label)
                .y_desc("max relative error")
                .x_label_formatter(&|v| format!("{v:.0e}"))
                .y_label_formatter(&|v| {
                    if *v >= NON_FINITE_Y {
                        "NaN/inf".into()
                    } else {
                        format!("{v:.0e}")
                    }
                })
                .label_style(("sans-serif", 12))
                .draw()?;
            draw_bands(&mut chart, lo, hi)?;
            let n = impls.len() as f64;
            for (i, imp) in impls.iter().enumerate() {
                // A small multiplicative x offset per implementation (±0.05
                // decade at most), so equal series are drawn side by side.
                let shift = 10f64.powf(0.1 * ((i as f64 + 0.5) / n - 0.5));
                let pts = series(&worst, imp, dtype, p);
                draw_impl(&mut chart, &pts, shift, Style::of_index(i))?;
            }
        }
    }
    Ok(())
}

/// The shaded "no correct digits" band, the NaN/inf strip and the floor,
/// each labelled, so no placed value is mistaken for a measured one.
fn draw_bands<DB: DrawingBackend, CT>(
    chart: &mut ChartContext<'_, DB, CT>,
    lo: f64,
    hi: f64,
) -> DrawResult
where
    DB::ErrorType: 'static,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    let band = RGBColor(214, 39, 40).mix(0.10);
    let strip = RGBColor(60, 60, 60).mix(0.12);
    chart.draw_series(std::iter::once(Rectangle::new(
        [(lo, NO_DIGITS), (hi, BAND_TOP)],
        band.filled(),
    )))?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(lo, BAND_TOP * 10.0), (hi, Y_TOP)],
        strip.filled(),
    )))?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(lo, FLOOR / 10.0), (hi, FLOOR)],
        strip.filled(),
    )))?;
    let font = ("sans-serif", 11).into_font();
    for (y, text) in [
        (NO_DIGITS * 1.5, "≥ 1: no correct digits"),
        (BAND_TOP / 4.0, "> 1e4 drawn on this edge"),
        (NON_FINITE_Y * 2.0, "NaN/inf (oracle finite)"),
        (FLOOR / 1.6, "≤ 1e-17 (exact)"),
    ] {
        chart.draw_series(std::iter::once(Text::new(
            text,
            (lo * 1.2, y),
            font.clone(),
        )))?;
    }
    Ok(())
}

/// One implementation's points: a line through the finite ones (broken
/// at NaN/inf), its marker at each (errors beyond the band on its top
/// edge) and ✕ in the NaN/inf strip.
fn draw_impl<'a, DB: DrawingBackend + 'a, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pts: &[(f64, f64)],
    shift: f64,
    style: Style,
) -> DrawResult
where
    DB::ErrorType: 'static,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    let placed: Vec<(f64, Placed)> = pts.iter().map(|&(x, e)| (x * shift, place(e))).collect();
    let line = style.color.stroke_width(style.width);
    let mut run: Vec<(f64, f64)> = Vec::new();
    for (x, p) in placed
        .iter()
        .copied()
        .chain(std::iter::once((0.0, Placed::NonFinite)))
    {
        if p == Placed::NonFinite {
            if run.len() > 1 {
                chart.draw_series(LineSeries::new(run.clone(), line))?;
            }
            run.clear();
        } else {
            run.push((x, y_of(p)));
        }
    }
    let at = |want: fn(Placed) -> bool| -> Vec<(f64, f64)> {
        placed
            .iter()
            .filter(|(_, p)| want(*p))
            .map(|&(x, p)| (x, y_of(p)))
            .collect()
    };
    let finite = at(|p| p != Placed::NonFinite);
    draw_markers(chart, &finite, style.marker.unwrap_or(0), style.color)
        .map_err(|e| e.to_string())?;
    chart.draw_series(
        at(|p| p == Placed::NonFinite)
            .into_iter()
            .map(|p| Cross::new(p, 7, style.color.stroke_width(3))),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_placed_not_clamped() {
        assert_eq!(place(f64::NAN), Placed::NonFinite);
        assert_eq!(place(f64::INFINITY), Placed::NonFinite);
        assert_eq!(place(7e13), Placed::Top);
        assert_eq!(place(3.0), Placed::At(3.0));
        assert_eq!(place(1e-9), Placed::At(1e-9));
        assert_eq!(place(0.0), Placed::Floor);
    }
}
