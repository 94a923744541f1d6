//! SVG charts (plotters), one file per operation and kind, each a grid of
//! small multiples: one panel per layout × dtype × thread count present in
//! the data, so no facet is hidden.
//!
//! - `time_per_element_OP.svg`: time per element vs bytes of x, one point
//!   per shape (shapes of equal size are separate points, never averaged;
//!   shape names label the x axis when they fit), with the memcpy of x and
//!   the bytes-moved floor (`memcpy × passes / 2`);
//! - `gbps_OP.svg`: GB/s (10^9 bytes/s of minimum traffic) with the copy's;
//! - `time_per_element_OP_batch_sweep.svg` / `_feature_sweep`: a sweep
//!   family (fixed C and S, or fixed N and S) against N or C itself;
//! - `thread_scaling_OP.svg`: speed-up over the fewest threads per layout ×
//!   dtype, with the ideal (linear) line and the copy's own scaling.
//!
//! Overlapping series stay visible (a marker shape per implementation) and
//! the legend sits in a strip above the panels, outside the data.

use super::plot::{draw_legend, draw_series, grid, legend_rows, plot_err, Style};
use super::ranking::copy_floor;
use super::sanitize::{plausible, MAX_VALUE, MIN_VALUE};
use super::tables::{geomean, impl_order, op_order};
use crate::bench::{Op, Record};
use crate::error::Result;
use crate::output::write_atomic;
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Pixel size of one panel.
const PANEL: (u32, u32) = (560, 400);
/// Most shapes whose names label an x axis; beyond, byte ticks.
const MAX_SHAPE_LABELS: usize = 10;

/// One line on a panel.
struct Series {
    name: String,
    style: Style,
    points: Vec<(f64, f64)>,
}

/// The x axis of a figure: bytes of x, or a count (N, C, threads).
#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    Bytes,
    Count,
    Threads,
}

/// One panel: its caption, lines and x-axis labels (`(x, label)`).
struct Panel {
    caption: String,
    series: Vec<Series>,
    labels: Vec<(f64, String)>,
}

/// A chart of panels sharing axes descriptions and a legend.
struct Figure {
    title: String,
    x_desc: String,
    y_desc: String,
    x: XAxis,
    panels: Vec<Panel>,
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

/// A point that can be drawn on log axes (see [`super::sanitize::plausible`]).
fn drawable(&(x, y): &(f64, f64)) -> bool {
    plausible(x) && plausible(y)
}

/// Data bounds `((x0, x1), (y0, y1))` of the drawable points.
type Bounds = ((f64, f64), (f64, f64));

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

/// The warning for a chart with nothing to draw, naming each line's first
/// point (implementation, x, value).
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

/// The legend of a figure: every series name once, in first-seen order.
fn legend_of(fig: &Figure) -> Vec<(String, Style)> {
    let mut out: Vec<(String, Style)> = Vec::new();
    for s in fig.panels.iter().flat_map(|p| &p.series) {
        if !out.iter().any(|(n, _)| *n == s.name) {
            out.push((s.name.clone(), s.style));
        }
    }
    out
}

/// Draw a figure into an SVG string; `None` (with a warning on stderr naming
/// the points) when no panel has a drawable point.
fn draw(fig: &Figure) -> Result<Option<String>> {
    let all: Vec<&Series> = fig.panels.iter().flat_map(|p| &p.series).collect();
    let any = all.iter().any(|s| s.points.iter().any(drawable));
    if !any {
        let owned: Vec<Series> = all
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                style: s.style,
                points: s.points.clone(),
            })
            .collect();
        eprintln!("bnh report: warning: {}", no_data(&fig.title, &owned));
        return Ok(None);
    }
    let (rows, cols) = grid(fig.panels.len());
    let width = PANEL.0 * cols as u32;
    let legend = legend_of(fig);
    let legend_h = 12 + 22 * legend_rows(&legend, width);
    let height = 50 + legend_h + PANEL.1 * rows as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root
            .titled(&fig.title, ("sans-serif", 20))
            .map_err(plot_err)?;
        let (top, panels) = root.split_vertically(legend_h);
        draw_legend(&top, &legend)?;
        let cells = panels.split_evenly((rows, cols));
        for (panel, area) in fig.panels.iter().zip(&cells) {
            draw_panel(area, fig, panel)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Some(svg))
}

/// The label of x value `v` from a panel's labels (the nearest one).
fn label_at(labels: &[(f64, String)], v: f64) -> String {
    labels
        .iter()
        .min_by(|a, b| (a.0 / v).ln().abs().total_cmp(&(b.0 / v).ln().abs()))
        .map(|(_, l)| l.clone())
        .unwrap_or_default()
}

/// One panel: log x (linear for threads), log y (linear for speed-ups).
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    fig: &Figure,
    panel: &Panel,
) -> Result<()> {
    let Some(((x0, x1), (y0, y1))) = bounds(&panel.series) else {
        return Ok(());
    };
    let mut b = ChartBuilder::on(area);
    b.caption(&panel.caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(if panel.labels.is_empty() { 40 } else { 150 })
        .y_label_area_size(70);
    if fig.x == XAxis::Threads {
        let mut chart = b
            .build_cartesian_2d(x0 - 0.3..x1 + 0.3, 0.0..(y1.max(x1 / x0) * 1.15))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(&fig.x_desc)
            .y_desc(&fig.y_desc)
            .x_labels(((x1 - x0) as usize + 1).min(16))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(plot_err)?;
        for s in &panel.series {
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(drawable).collect();
            draw_series(&mut chart, &pts, s.style)?;
        }
        return Ok(());
    }
    let (xl, xh) = (x0 / 1.4, x1 * 1.4);
    let (yl, yh) = (y0 / 1.5, y1 * 1.5);
    let x_keys = if !panel.labels.is_empty() {
        panel.labels.iter().map(|(x, _)| *x).collect()
    } else if fig.x == XAxis::Bytes {
        byte_ticks(xl, xh)
    } else {
        decade_ticks(xl, xh)
    };
    let mut chart = b
        .build_cartesian_2d(
            (xl..xh).log_scale().with_key_points(x_keys),
            (yl..yh).log_scale().with_key_points(decade_ticks(yl, yh)),
        )
        .map_err(plot_err)?;
    let labels = &panel.labels;
    let x_fmt = |v: &f64| {
        if !labels.is_empty() {
            label_at(labels, *v)
        } else if fig.x == XAxis::Bytes {
            human_bytes(*v)
        } else {
            compact(*v)
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&fig.x_desc)
        .y_desc(&fig.y_desc)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|v| compact(*v))
        .label_style(("sans-serif", 12));
    if !labels.is_empty() {
        mesh.x_label_style(
            ("sans-serif", 10)
                .into_font()
                .transform(FontTransform::Rotate90),
        );
    }
    mesh.draw().map_err(plot_err)?;
    for s in &panel.series {
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(drawable).collect();
        draw_series(&mut chart, &pts, s.style)?;
    }
    Ok(())
}

fn save(out: &Path, name: &str, svg: &str, written: &mut Vec<PathBuf>) -> Result<()> {
    let path = out.join(name);
    write_atomic(&path, svg.as_bytes())?;
    written.push(path);
    Ok(())
}

/// Whether a row is PyTorch's: its copies are timed through Python
/// (`dst.copy_(x)`, microseconds of dispatch per call), so the copy lines
/// use bnh's own copies when present.
fn is_external(r: &Record) -> bool {
    super::ranking::is_torch(r)
}

/// One facet of the data: layout, dtype and thread count.
type Facet = (&'static str, &'static str, usize);

fn facet_of(r: &Record) -> Facet {
    (r.dtype.name(), r.layout.name(), r.threads)
}

/// `f32 · contiguous · 1 thread(s)`.
fn facet_caption((dtype, layout, threads): Facet) -> String {
    format!("{dtype} · {layout} · {threads} thread(s)")
}

/// The records of `op` by facet, in order (dtype, layout, threads).
fn by_facet(records: &[Record], op: Op) -> BTreeMap<Facet, Vec<&Record>> {
    let mut out: BTreeMap<Facet, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.op == op) {
        out.entry(facet_of(r)).or_default().push(r);
    }
    out
}

/// Render every chart into `out`; returns the files written.
pub fn render_all(records: &[Record], out: &Path) -> Result<Vec<PathBuf>> {
    let impls = impl_order(records);
    let mut written = Vec::new();
    for op in op_order(records) {
        let facets = by_facet(records, op);
        let every = "every layout × dtype × threads measured; one point per shape";
        for (kind, y_desc) in [
            ("time_per_element", "time per element (ns, log)"),
            ("gbps", "GB/s (10^9 B/s of minimum traffic, log)"),
        ] {
            let panels: Vec<Panel> = facets
                .iter()
                .map(|(f, rs)| size_panel(*f, rs, &impls, op, kind, &|r| r.bytes as f64, true))
                .collect();
            let what = if kind == "gbps" {
                "bandwidth"
            } else {
                "time per element"
            };
            let fig = Figure {
                title: format!("{op}: {what} vs size ({every})"),
                x_desc: "bytes of x (log)".into(),
                y_desc: y_desc.into(),
                x: XAxis::Bytes,
                panels,
            };
            if let Some(svg) = draw(&fig)? {
                save(out, &format!("{kind}_{op}.svg"), &svg, &mut written)?;
            }
        }
        for (suffix, what, var) in [
            ("batch_sweep", "batch sweep: N varies, C and S fixed", 'N'),
            (
                "feature_sweep",
                "feature sweep: C varies, N and S fixed",
                'C',
            ),
        ] {
            let panels: Vec<Panel> = facets
                .iter()
                .filter_map(|(f, rs)| {
                    let (fixed, fam) = if var == 'N' {
                        sweep_family(rs, |r| (r.c, r.spatial), |r| r.n)?
                    } else {
                        sweep_family(rs, |r| (r.n, r.spatial), |r| r.c)?
                    };
                    let x: &dyn Fn(&Record) -> f64 = if var == 'N' {
                        &|r| r.n as f64
                    } else {
                        &|r| r.c as f64
                    };
                    let mut p = size_panel(*f, &fam, &impls, op, "time_per_element", x, false);
                    p.caption = if var == 'N' {
                        format!("{}; C={} S={}", p.caption, fixed.0, fixed.1)
                    } else {
                        format!("{}; N={} S={}", p.caption, fixed.0, fixed.1)
                    };
                    Some(p)
                })
                .collect();
            if panels.is_empty() {
                continue;
            }
            let fig = Figure {
                title: format!("{op}: time per element, {what}"),
                x_desc: format!("{var} (log)"),
                y_desc: "time per element (ns, log)".into(),
                x: XAxis::Count,
                panels,
            };
            if let Some(svg) = draw(&fig)? {
                let name = format!("time_per_element_{op}_{suffix}.svg");
                save(out, &name, &svg, &mut written)?;
            }
        }
        if let Some(svg) = thread_chart(records, op, &impls)? {
            save(out, &format!("thread_scaling_{op}.svg"), &svg, &mut written)?;
        }
    }
    Ok(written)
}

/// The largest family of records that share `fixed` and vary `var` over at
/// least four values: a batch sweep (fixed C and S) or a feature sweep
/// (fixed N and S), charted against the swept quantity itself.
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

/// One panel of a size chart: a line per implementation (one point per
/// shape, in x then shape order), then the copy line(s); shape names label
/// the x axis when they fit (with their size when x is bytes).
fn size_panel(
    facet: Facet,
    rows: &[&Record],
    impls: &[String],
    op: Op,
    kind: &str,
    x: &dyn Fn(&Record) -> f64,
    bytes_axis: bool,
) -> Panel {
    let y = |r: &Record| {
        if kind == "gbps" {
            r.gb_per_s
        } else {
            r.median_ns / r.elements() as f64
        }
    };
    let mut by_imp: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in rows {
        by_imp.entry(r.imp.as_str()).or_default().push(r);
    }
    let mut series: Vec<Series> = Vec::new();
    for (i, imp) in impls.iter().enumerate() {
        let Some(mut mine) = by_imp.remove(imp.as_str()) else {
            continue;
        };
        mine.sort_by(|a, b| x(a).total_cmp(&x(b)).then(a.shape.cmp(&b.shape)));
        series.push(Series {
            name: imp.clone(),
            style: Style::of_index(i),
            points: mine.iter().map(|r| (x(r), y(r))).collect(),
        });
    }
    series.extend(copy_lines(rows, op, kind, x));
    let shapes: BTreeSet<(u64, &str)> = rows
        .iter()
        .map(|r| (x(r).to_bits(), r.shape.as_str()))
        .collect();
    let labels = if shapes.len() <= MAX_SHAPE_LABELS {
        let mut at: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for (xb, s) in shapes {
            at.entry(xb).or_default().push(s);
        }
        at.into_iter()
            .map(|(xb, names)| {
                let x = f64::from_bits(xb);
                let size = if bytes_axis {
                    format!(" ({})", human_bytes(x))
                } else {
                    String::new()
                };
                (x, format!("{}{size}", names.join(" | ")))
            })
            .collect()
    } else {
        Vec::new()
    };
    Panel {
        caption: facet_caption(facet),
        series,
        labels,
    }
}

/// The copy of x (time per element or bandwidth) per shape, from bnh's own
/// copies when present, and on time charts the bytes-moved floor
/// (`copy × passes / 2`).
fn copy_lines(rows: &[&Record], op: Op, kind: &str, x: &dyn Fn(&Record) -> f64) -> Vec<Series> {
    let own = rows.iter().any(|r| !is_external(r));
    let mut at: BTreeMap<(u64, &str), Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !own || !is_external(r)) {
        let v = if kind == "gbps" {
            r.memcpy_gb_per_s()
        } else {
            r.memcpy_ns / r.elements() as f64
        };
        at.entry((x(r).to_bits(), r.shape.as_str()))
            .or_default()
            .push(v);
    }
    let mut pts: Vec<(f64, f64)> = at
        .into_iter()
        .map(|((xb, _), v)| (f64::from_bits(xb), geomean(&v)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![Series {
        name: "memcpy of x (read + write)".into(),
        style: Style::reference(BLACK, false),
        points: pts.clone(),
    }];
    if kind != "gbps" {
        let floor = copy_floor(op);
        out.push(Series {
            name: format!("floor: memcpy × {floor:.2} (bytes moved)"),
            style: Style::reference(RGBColor(120, 120, 120), true),
            points: pts.into_iter().map(|(x, y)| (x, y * floor)).collect(),
        });
    }
    out
}

/// Speed-up over the fewest threads, one panel per layout × dtype, with the
/// ideal (linear) line and the copy's own speed-up; None with a single
/// thread count. Each point is the geometric mean over the shapes measured
/// at both thread counts (named in the caption), never a mix of others.
fn thread_chart(records: &[Record], op: Op, impls: &[String]) -> Result<Option<String>> {
    let mut by_ld: BTreeMap<(&str, &str), Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.op == op) {
        by_ld
            .entry((r.dtype.name(), r.layout.name()))
            .or_default()
            .push(r);
    }
    let mut panels = Vec::new();
    for ((dtype, layout), rows) in by_ld {
        let counts: BTreeSet<usize> = rows.iter().map(|r| r.threads).collect();
        if counts.len() < 2 {
            continue;
        }
        let base = *counts.iter().next().expect("two counts");
        let top = *counts.iter().last().expect("two counts");
        let mut by_imp: HashMap<&str, Vec<&Record>> = HashMap::new();
        for r in &rows {
            by_imp.entry(r.imp.as_str()).or_default().push(r);
        }
        let mut series: Vec<Series> = Vec::new();
        for (i, imp) in impls.iter().enumerate() {
            let Some(mine) = by_imp.get(imp.as_str()) else {
                continue;
            };
            let pts = per_thread_count(&base_pairs(mine, base), |b, r| b.median_ns / r.median_ns);
            if !pts.is_empty() {
                series.push(Series {
                    name: imp.clone(),
                    style: Style::of_index(i),
                    points: pts,
                });
            }
        }
        let own = rows.iter().any(|r| !is_external(r));
        let pairs: Vec<(&Record, &Record)> = by_imp
            .values()
            .filter(|v| v.iter().all(|r| !own || !is_external(r)))
            .flat_map(|v| base_pairs(v, base))
            .collect();
        series.push(Series {
            name: "memcpy of x".into(),
            style: Style::reference(BLACK, false),
            points: per_thread_count(&pairs, |b, r| b.memcpy_ns / r.memcpy_ns),
        });
        series.push(Series {
            name: "ideal (linear scaling)".into(),
            style: Style::reference(RGBColor(120, 120, 120), true),
            points: counts
                .iter()
                .map(|&t| (t as f64, t as f64 / base as f64))
                .collect(),
        });
        let shapes: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.threads == top)
            .map(|r| r.shape.as_str())
            .collect();
        panels.push(Panel {
            caption: format!("{dtype} · {layout}; geomean over {} shape(s)", shapes.len()),
            series,
            labels: Vec::new(),
        });
    }
    if panels.is_empty() {
        return Ok(None);
    }
    draw(&Figure {
        title: format!(
            "{op}: thread scaling per layout × dtype (speed-up over the fewest threads)"
        ),
        x_desc: "threads (rayon pool; torch: set_num_threads)".into(),
        y_desc: "speed-up".into(),
        x: XAxis::Threads,
        panels,
    })
}

/// `(at base threads, at t threads)` pairs of one implementation's records
/// of the same shape, `base` being the fewest threads.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(f64, f64)>) -> Vec<Series> {
        vec![Series {
            name: "fused".into(),
            style: Style::of_index(0),
            points,
        }]
    }

    fn figure(series: Vec<Series>) -> Figure {
        Figure {
            title: "t".into(),
            x_desc: "x".into(),
            y_desc: "y".into(),
            x: XAxis::Bytes,
            panels: vec![Panel {
                caption: "p".into(),
                series,
                labels: Vec::new(),
            }],
        }
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
        let drawn = draw(&figure(bad)).unwrap();
        assert!(drawn.is_none());
        let mixed = series(vec![(128.0, 1e308), (256.0, 2.0), (512.0, 3.0)]);
        let drawn = draw(&figure(mixed)).unwrap();
        assert!(drawn.is_some());
    }
}
