//! SVG charts (plotters): per operation, time per element vs tensor size and
//! GB/s vs size with the memcpy roofline (log-log); thread scaling when the
//! data has more than one thread count.
//!
//! Each chart shows one slice of the data so its lines are comparable:
//! dtype f32 when present, contiguous layout, the smallest thread count
//! (thread-scaling charts: every thread count). Points of different shapes
//! with the same size are joined in size order.

use super::sanitize::{plausible, MAX_VALUE, MIN_VALUE};
use super::tables::{geomean, impl_order, op_order};
use crate::bench::{Op, Record};
use crate::error::{Error, Result};
use crate::output::write_atomic;
use bn_impls::{DType, Layout};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const SIZE: (u32, u32) = (960, 600);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line on a chart.
struct Series {
    name: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// `1536` → `1.5 KiB`: tick labels of byte axes.
pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Most ticks an axis gets: tick loops stop there whatever the range, so
/// no value in a CSV can make them run away (the ranges are also clamped to
/// plausible values, see [`super::sanitize`]).
const MAX_TICKS: usize = 64;

/// Byte-axis ticks: powers of 4 (1 KiB, 4 KiB, ...), or of 2 on a narrow range.
fn byte_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = if hi / lo > 64.0 { 4.0 } else { 2.0 };
    let mut v = Vec::new();
    let mut t = 1.0f64;
    while t <= hi && t.is_finite() && v.len() < MAX_TICKS {
        if t >= lo {
            v.push(t);
        }
        t *= step;
    }
    v
}

/// Ticks 1, 2, 5 × 10^k inside `[lo, hi]` (only powers of ten on a wide range;
/// every `⌈decades/MAX_TICKS⌉`-th power on a very wide one).
fn decade_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && lo.is_finite() && hi.is_finite() && hi >= lo) {
        return Vec::new();
    }
    let mults: &[f64] = if hi / lo > 1e4 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let stride = ((k1 - k0) as usize).div_ceil(MAX_TICKS).max(1);
    let mut v = Vec::new();
    for k in (k0..=k1).step_by(stride) {
        for m in mults {
            let t = m * 10f64.powi(k);
            if t >= lo && t <= hi {
                v.push(t);
            }
        }
    }
    v
}

/// A short label for a positive number: `0.05`, `2`, `150`, `2e+05`.
fn compact(v: f64) -> String {
    if !(1e-3..1e5).contains(&v.abs()) {
        format!("{v:.0e}")
    } else if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Usage(format!("cannot draw chart: {e:?}"))
}

fn color_of(impls: &[String], name: &str) -> RGBColor {
    let i = impls.iter().position(|n| n == name).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// A point that can be drawn on log axes (see [`super::sanitize::plausible`]).
fn drawable(&(x, y): &(f64, f64)) -> bool {
    plausible(x) && plausible(y)
}

fn bounds(series: &[Series]) -> Option<Bounds> {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if drawable(&(x, y)) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    (x0 <= x1).then_some(((x0, x1), (y0, y1)))
}

/// Draw a chart into an SVG string; `log_x` also picks byte labels on x.
/// `None` (with a warning on stderr naming the points) when no point can be
/// drawn: the rest of the report is still written.
fn draw(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
    legend: SeriesLabelPosition,
) -> Result<Option<String>> {
    let Some(bounds) = bounds(series) else {
        eprintln!("bnh report: warning: {}", no_data(title, series));
        return Ok(None);
    };
    let labels = Labels {
        title,
        x_desc,
        y_desc,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        if log_x {
            draw_log_log(&root, &labels, bounds, series, legend)?;
        } else {
            draw_linear(&root, &labels, bounds, series, legend)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Some(svg))
}

/// The warning for a chart with nothing to draw, naming each line's first
/// point (implementation, size or thread count, value).
fn no_data(title: &str, series: &[Series]) -> String {
    let points: Vec<String> = series
        .iter()
        .filter_map(|s| {
            s.points
                .first()
                .map(|p| format!("{} at x = {:e}: {:e}", s.name, p.0, p.1))
        })
        .take(4)
        .collect();
    format!(
        "no drawable data for chart '{title}' (values must be finite and in [{MIN_VALUE:e}, {MAX_VALUE:e}]): {}; \
         chart left out; fix those rows of the CSV",
        if points.is_empty() {
            "no points".to_string()
        } else {
            points.join("; ")
        }
    )
}

/// The words on a chart: its title and the two axis descriptions.
struct Labels<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
}

/// Data bounds `((x0, x1), (y0, y1))` of the positive, finite points.
type Bounds = ((f64, f64), (f64, f64));

/// Log-log axes with byte labels on x (the size charts).
fn draw_log_log(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: &Labels,
    ((x0, x1), (y0, y1)): Bounds,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<()> {
    // Headroom above the data keeps the legend (upper right) off the lines.
    let (y_lo, y_hi) = (y0 / 1.5, y1 * 5.0);
    let mut chart = builder(root, labels.title)
        .build_cartesian_2d(
            (x0 / 1.3..x1 * 1.3)
                .log_scale()
                .with_key_points(byte_ticks(x0 / 1.3, x1 * 1.3)),
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(decade_ticks(y_lo, y_hi)),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(labels.x_desc)
        .y_desc(labels.y_desc)
        .x_label_formatter(&|v| human_bytes(*v))
        .y_label_formatter(&|v| compact(*v))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    draw_lines(&mut chart, series, 3, legend)
}

/// Linear axes with integer labels on x (the thread-scaling chart).
fn draw_linear(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: &Labels,
    ((x0, x1), (_, y1)): Bounds,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<()> {
    let mut chart = builder(root, labels.title)
        .build_cartesian_2d(x0 - 0.2..x1 + 0.2, 0.0..(y1.max(x1) * 1.25))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(labels.x_desc)
        .y_desc(labels.y_desc)
        .x_labels(((x1 - x0) as usize + 1).min(16))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    draw_lines(&mut chart, series, 4, legend)
}

fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(85);
    b
}

/// Each series as a line with point markers, labelled for the legend, then the legend.
fn draw_lines<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    series: &[Series],
    marker: i32,
    legend: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    for s in series {
        let style = s.color.stroke_width(s.width);
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(drawable).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(plot_err)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, marker, s.color.filled())),
            )
            .map_err(plot_err)?;
    }
    legend_box(chart, legend)
}

fn legend_box<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(plot_err)
}

/// The slice a size chart shows: f32 if present, contiguous, fewest threads.
fn size_slice(records: &[Record], op: Op) -> (Vec<&Record>, DType, usize) {
    let of_op: Vec<&Record> = records.iter().filter(|r| r.op == op).collect();
    let dtype = if of_op.iter().any(|r| r.dtype == DType::F32) {
        DType::F32
    } else {
        of_op.first().map_or(DType::F32, |r| r.dtype)
    };
    let threads = of_op.iter().map(|r| r.threads).min().unwrap_or(1);
    let slice = of_op
        .into_iter()
        .filter(|r| r.dtype == dtype && r.threads == threads && r.layout == Layout::Contiguous)
        .collect();
    (slice, dtype, threads)
}

/// Rows measured by another tool (the PyTorch script: `torch`, `torch-noalloc`).
/// Their memcpy is timed through Python (`dst.copy_(x)`, microseconds of
/// dispatch per call), so the roofline line uses bnh's own copies when present.
fn is_external(imp: &str) -> bool {
    imp.starts_with("torch")
}

/// The records whose memcpy draws the roofline line (see [`is_external`]).
fn roofline_records<'a>(slice: &[&'a Record]) -> Vec<&'a Record> {
    let own: Vec<&Record> = slice
        .iter()
        .copied()
        .filter(|r| !is_external(&r.imp))
        .collect();
    if own.is_empty() {
        slice.to_vec()
    } else {
        own
    }
}

/// Points per implementation, x = bytes of `x`, sorted; several records at
/// one size (different shapes) are averaged geometrically. One pass over
/// the slice (grouped by implementation, then size).
fn by_impl(
    slice: &[&Record],
    impls: &[String],
    y: &dyn Fn(&Record) -> f64,
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut at: HashMap<&str, BTreeMap<u64, Vec<f64>>> = HashMap::new();
    for r in slice {
        at.entry(r.imp.as_str())
            .or_default()
            .entry(r.bytes)
            .or_default()
            .push(y(r));
    }
    impls
        .iter()
        .filter_map(|imp| {
            let pts: Vec<(f64, f64)> = at
                .remove(imp.as_str())?
                .into_iter()
                .map(|(b, v)| (b as f64, geomean(&v)))
                .collect();
            Some((imp.clone(), pts))
        })
        .collect()
}

fn save(out: &Path, name: &str, svg: &str, written: &mut Vec<PathBuf>) -> Result<()> {
    let path = out.join(name);
    write_atomic(&path, svg.as_bytes())?;
    written.push(path);
    Ok(())
}

/// Render every chart into `out`; returns the files written.
pub fn render_all(records: &[Record], out: &Path) -> Result<Vec<PathBuf>> {
    let impls = impl_order(records);
    let mut written = Vec::new();
    for op in op_order(records) {
        let (slice, dtype, threads) = size_slice(records, op);
        if slice.is_empty() {
            continue;
        }
        let where_ = format!("{dtype}, contiguous, {threads} thread(s)");
        let all = format!("all shapes, {where_}");
        size_charts(&slice, &impls, op, &all, "", out, &mut written)?;
        let families = [
            (
                "batch_sweep",
                "batch sweep",
                sweep_family(&slice, |r| (r.c, r.spatial), |r| r.n),
            ),
            (
                "feature_sweep",
                "feature sweep",
                sweep_family(&slice, |r| (r.n, r.spatial), |r| r.c),
            ),
        ];
        for (suffix, what, family) in families {
            if let Some((fixed, rows)) = family {
                let desc = match suffix {
                    "batch_sweep" => format!("{what}, C={} S={}, {where_}", fixed.0, fixed.1),
                    _ => format!("{what}, N={} S={}, {where_}", fixed.0, fixed.1),
                };
                size_charts(
                    &rows,
                    &impls,
                    op,
                    &desc,
                    &format!("_{suffix}"),
                    out,
                    &mut written,
                )?;
            }
        }
        if let Some(svg) = thread_chart(records, op, dtype, &impls)? {
            save(out, &format!("thread_scaling_{op}.svg"), &svg, &mut written)?;
        }
    }
    Ok(written)
}

/// The largest family of records that share `fixed` and vary `var` over at
/// least four values: a batch sweep (fixed C and S) or a feature sweep
/// (fixed N and S), charted on its own so its line is one clean sweep.
fn sweep_family<'a>(
    slice: &[&'a Record],
    fixed: impl Fn(&Record) -> (usize, usize),
    var: impl Fn(&Record) -> usize,
) -> Option<((usize, usize), Vec<&'a Record>)> {
    let mut groups: BTreeMap<(usize, usize), Vec<&'a Record>> = BTreeMap::new();
    for r in slice {
        groups.entry(fixed(r)).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(k, rows)| {
            let mut vals: Vec<usize> = rows.iter().map(|r| var(r)).collect();
            vals.sort_unstable();
            vals.dedup();
            (vals.len(), k, rows)
        })
        .filter(|(distinct, _, _)| *distinct >= 4)
        .max_by_key(|(distinct, _, _)| *distinct)
        .map(|(_, k, rows)| (k, rows))
}

/// Time per element and GB/s (with the memcpy line) vs size for one slice.
fn size_charts(
    slice: &[&Record],
    impls: &[String],
    op: Op,
    desc: &str,
    suffix: &str,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let series = impl_lines(slice, impls, &|r| r.median_ns / r.elements() as f64);
    if let Some(svg) = draw(
        &format!("{op}: time per element vs size ({desc})"),
        "tensor size (bytes of x, log scale)",
        "time per element (ns, log scale)",
        &series,
        true,
        SeriesLabelPosition::UpperRight,
    )? {
        let name = format!("time_per_element_{op}{suffix}.svg");
        save(out, &name, &svg, written)?;
    }

    let mut series = impl_lines(slice, impls, &|r| r.gb_per_s);
    series.push(memcpy_bandwidth_line(slice));
    if let Some(svg) = draw(
        &format!("{op}: bandwidth vs size ({desc})"),
        "tensor size (bytes of x, log scale)",
        "GB/s (minimum bytes moved / median time, log scale)",
        &series,
        true,
        SeriesLabelPosition::UpperRight,
    )? {
        save(out, &format!("gbps_{op}{suffix}.svg"), &svg, written)?;
    }
    Ok(())
}

/// One coloured line per implementation of `y` against bytes of `x`.
fn impl_lines(slice: &[&Record], impls: &[String], y: &dyn Fn(&Record) -> f64) -> Vec<Series> {
    by_impl(slice, impls, y)
        .into_iter()
        .map(|(name, points)| Series {
            color: color_of(impls, &name),
            name,
            width: 2,
            points,
        })
        .collect()
}

/// The memcpy roofline: bandwidth of the interleaved copies vs size.
fn memcpy_bandwidth_line(slice: &[&Record]) -> Series {
    let mut copy: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for r in roofline_records(slice) {
        copy.entry(r.bytes).or_default().push(r.memcpy_gb_per_s());
    }
    Series {
        name: "memcpy (read + write of x)".into(),
        color: BLACK,
        width: 3,
        points: copy
            .into_iter()
            .map(|(b, v)| (b as f64, geomean(&v)))
            .collect(),
    }
}

/// Speed-up over the fewest threads, geometric mean over the contiguous
/// shapes measured at every thread count; None with a single thread count.
fn thread_chart(
    records: &[Record],
    op: Op,
    dtype: DType,
    impls: &[String],
) -> Result<Option<String>> {
    let slice: Vec<&Record> = records
        .iter()
        .filter(|r| r.op == op && r.dtype == dtype && r.layout == Layout::Contiguous)
        .collect();
    let mut counts: Vec<usize> = slice.iter().map(|r| r.threads).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() < 2 {
        return Ok(None);
    }
    let mut by_imp: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in &slice {
        by_imp.entry(r.imp.as_str()).or_default().push(r);
    }
    let mine = |imp: &str| by_imp.get(imp).map_or(&[][..], |v| v.as_slice());
    let mut series: Vec<Series> = impls
        .iter()
        .filter_map(|imp| thread_line(mine(imp), imp, impls, counts[0]))
        .collect();
    series.push(memcpy_thread_line(impls, &mine, counts[0]));
    draw(
        &format!("{op}: thread scaling ({dtype}, contiguous; geomean over shapes)"),
        "threads (rayon pool size; torch: set_num_threads)",
        &format!("speed-up over {} thread(s)", counts[0]),
        &series,
        false,
        SeriesLabelPosition::UpperLeft,
    )
}

/// `(at base threads, at t threads)` pairs of one implementation's records
/// of the same shape, `base` being the fewest threads: one pass with a map
/// from shape to the base record (the first one of that shape).
fn base_pairs<'a>(mine: &[&'a Record], base: usize) -> Vec<(&'a Record, &'a Record)> {
    let mut at_base: HashMap<&str, &Record> = HashMap::new();
    for r in mine.iter().filter(|r| r.threads == base) {
        at_base.entry(r.shape.as_str()).or_insert(r);
    }
    mine.iter()
        .filter_map(|r| Some((*at_base.get(r.shape.as_str())?, *r)))
        .collect()
}

/// Geometric mean of `f(base record, record)` per thread count, in order.
fn per_thread_count(
    pairs: &[(&Record, &Record)],
    f: impl Fn(&Record, &Record) -> f64,
) -> Vec<(f64, f64)> {
    let mut at: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (b, r) in pairs {
        at.entry(r.threads).or_default().push(f(b, r));
    }
    at.into_iter()
        .map(|(t, v)| (t as f64, geomean(&v)))
        .collect()
}

/// One implementation's speed-up per thread count (None if it has no pairs).
fn thread_line(mine: &[&Record], imp: &str, impls: &[String], base: usize) -> Option<Series> {
    let pts = per_thread_count(&base_pairs(mine, base), |b, r| b.median_ns / r.median_ns);
    (!pts.is_empty()).then(|| Series {
        name: imp.to_string(),
        color: color_of(impls, imp),
        width: 2,
        points: pts,
    })
}

/// The copies' own speed-up per thread count, from bnh's copies when
/// present (see [`is_external`]).
fn memcpy_thread_line<'a>(
    impls: &[String],
    mine: &dyn Fn(&str) -> &'a [&'a Record],
    base: usize,
) -> Series {
    let all_external = impls.iter().all(|i| is_external(i));
    let pairs: Vec<(&Record, &Record)> = impls
        .iter()
        .filter(|imp| !is_external(imp) || all_external)
        .flat_map(|imp| base_pairs(mine(imp), base))
        .collect();
    Series {
        name: "memcpy".into(),
        color: BLACK,
        width: 3,
        points: per_thread_count(&pairs, |b, r| b.memcpy_ns / r.memcpy_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(f64, f64)>) -> Vec<Series> {
        vec![Series {
            name: "fused".into(),
            color: BLACK,
            width: 2,
            points,
        }]
    }

    /// Ticks stay few and finite whatever the range (the issue: a range up
    /// to 1e308·5 = inf looped until memory ran out).
    #[test]
    fn ticks_are_bounded_for_any_range() {
        for (lo, hi) in [
            (1e-40, 1e30),
            (1.0, f64::INFINITY),
            (1e-300, 1e300),
            (0.0, 1.0),
        ] {
            assert!(decade_ticks(lo, hi).len() <= 3 * MAX_TICKS, "{lo} {hi}");
            assert!(
                byte_ticks(lo.max(1e-300), hi).len() <= MAX_TICKS,
                "{lo} {hi}"
            );
        }
        assert_eq!(
            decade_ticks(1.0, 100.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
    }

    /// A chart with no drawable point is left out (None), not an error;
    /// implausible points beside good ones are simply not drawn.
    #[test]
    fn undrawable_points_leave_the_chart_out() {
        let bad = series(vec![(128.0, 1e308), (256.0, f64::NAN), (512.0, 0.0)]);
        let msg = no_data("t", &bad);
        assert!(msg.contains("fused at x = 1.28e2: 1e308"), "{msg}");
        let drawn = draw("t", "x", "y", &bad, true, SeriesLabelPosition::UpperRight).unwrap();
        assert!(drawn.is_none());
        let mixed = series(vec![(128.0, 1e308), (256.0, 2.0), (512.0, 3.0)]);
        let drawn = draw("t", "x", "y", &mixed, true, SeriesLabelPosition::UpperRight).unwrap();
        assert!(drawn.is_some());
    }
}
