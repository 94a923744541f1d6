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
//! those rows. Errors are clamped to
//! [1e-17, 1]: a point drawn at 1 is a result with no correct digits or a
//! NaN/inf where the oracle is finite (the CSV keeps the exact values).
//! Files are written by [`crate::report::write_accuracy_chart`].

use super::export::AccuracyRow;
use crate::error::{Error, Result};
use crate::report::sanitize::{plausible, MAX_VALUE, MIN_VALUE};
use plotters::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

const FLOOR: f64 = 1e-17;
const CEIL: f64 = 1.0;
const WIDTH: u32 = 1500;
const HEIGHT: u32 = 900;

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

fn clamp(e: f64) -> f64 {
    if e.is_nan() {
        CEIL
    } else {
        e.clamp(FLOOR, CEIL)
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
            let e = clamp(r.max_rel_err);
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
    let cells = root.split_evenly((dtypes.len(), PANELS.len()));
    for (d, dtype) in dtypes.iter().enumerate() {
        for (p, panel) in PANELS.iter().enumerate() {
            let area = &cells[d * PANELS.len() + p];
            let (lo, hi) = x_range(rows, panel);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{dtype}: {}", panel.title), ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((lo..hi).log_scale(), (FLOOR / 10.0..CEIL * 3.0).log_scale())?;
            chart
                .configure_mesh()
                .x_desc(panel.x_label)
                .y_desc("max relative error")
                .x_label_formatter(&|v| format!("{v:.0e}"))
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .label_style(("sans-serif", 12))
                .draw()?;
            for (i, imp) in impls.iter().enumerate() {
                let pts = series(&worst, imp, dtype, p);
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                    .label(imp.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()?;
        }
    }
    Ok(())
}
