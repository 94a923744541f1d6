//! Drawing pieces shared by the bench and accuracy charts: a colour and a
//! marker shape per series (so overlapping lines stay distinguishable), a
//! legend strip drawn outside the panels (never over data), and the grid
//! of small multiples.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Colours of the series, by implementation index (tab10).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Marker shapes, cycled by series index: a series drawn exactly under
/// another still shows its own shape around the other's. (✕ is not one of
/// them: the accuracy chart keeps it for NaN/inf.)
pub const MARKERS: usize = 6;

/// A chart error as the crate's error.
pub fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Usage(format!("cannot draw chart: {e:?}"))
}

/// How a series is drawn: colour, marker shape, line width and dashing.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: RGBColor,
    /// Index into the marker shapes (`None`: a line without markers).
    pub marker: Option<usize>,
    pub width: u32,
    pub dashed: bool,
}

impl Style {
    /// The style of series `i` (colour and marker by index).
    pub fn of_index(i: usize) -> Style {
        Style {
            color: PALETTE[i % PALETTE.len()],
            marker: Some(i % MARKERS),
            width: 2,
            dashed: false,
        }
    }

    /// A reference line (memcpy, floor, ideal): no markers.
    pub fn reference(color: RGBColor, dashed: bool) -> Style {
        Style {
            color,
            marker: None,
            width: 2,
            dashed,
        }
    }
}

/// Draw `pts` as a line (dashed or solid) and, if the style has one, markers.
pub fn draw_series<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pts: &[(f64, f64)],
    style: Style,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    let line = style.color.stroke_width(style.width);
    if style.dashed {
        chart
            .draw_series(DashedLineSeries::new(pts.iter().copied(), 6, 4, line))
            .map_err(plot_err)?;
    } else {
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), line))
            .map_err(plot_err)?;
    }
    if let Some(kind) = style.marker.filter(|_| pts.len() <= MAX_MARKED) {
        draw_markers(chart, pts, kind, style.color)?;
    }
    Ok(())
}

/// Most points of a series that get markers: beyond, markers would merge
/// into a band and only slow the SVG down (the line and legend remain).
pub const MAX_MARKED: usize = 300;

/// Markers of shape `kind` at `pts`.
pub fn draw_markers<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pts: &[(f64, f64)],
    kind: usize,
    color: RGBColor,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    let p = pts.iter().copied();
    let r = match kind % MARKERS {
        0 => chart.draw_series(p.map(|p| Circle::new(p, 4, color.filled()))),
        1 => chart.draw_series(p.map(|p| TriangleMarker::new(p, 5, color.filled()))),
        2 => chart.draw_series(
            p.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], color.filled())),
        ),
        3 => chart.draw_series(p.map(|p| Circle::new(p, 6, color.stroke_width(2)))),
        4 => chart.draw_series(p.map(|p| TriangleMarker::new(p, 7, color.stroke_width(2)))),
        _ => chart.draw_series(p.map(|p| {
            EmptyElement::at(p) + Rectangle::new([(-6, -6), (6, 6)], color.stroke_width(2))
        })),
    };
    r.map(|_| ()).map_err(plot_err)
}

/// One marker of shape `kind` at pixel `p` of `area` (the legend's).
fn area_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: (i32, i32),
    kind: usize,
    color: RGBColor,
) -> Result<()> {
    let r = match kind % MARKERS {
        0 => area.draw(&Circle::new(p, 4, color.filled())),
        1 => area.draw(&TriangleMarker::new(p, 5, color.filled())),
        2 => area.draw(&Rectangle::new(
            [(p.0 - 4, p.1 - 4), (p.0 + 4, p.1 + 4)],
            color.filled(),
        )),
        3 => area.draw(&Circle::new(p, 6, color.stroke_width(2))),
        4 => area.draw(&TriangleMarker::new(p, 7, color.stroke_width(2))),
        _ => area.draw(&Rectangle::new(
            [(p.0 - 6, p.1 - 6), (p.0 + 6, p.1 + 6)],
            color.stroke_width(2),
        )),
    };
    r.map_err(plot_err)
}

/// The legend as rows of entries across `area` (a strip above the panels,
/// outside every plot), wrapping when a row is full.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Style)],
) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (mut x, mut y) = (10i32, 14i32);
    for (name, style) in entries {
        let width = 50 + 8 * name.chars().count() as i32;
        if x + width > w as i32 && x > 10 {
            x = 10;
            y += 22;
        }
        let line = style.color.stroke_width(style.width);
        if style.dashed {
            for k in 0..3 {
                area.draw(&PathElement::new(
                    vec![(x + 10 * k, y), (x + 10 * k + 6, y)],
                    line,
                ))
                .map_err(plot_err)?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], line))
                .map_err(plot_err)?;
        }
        if let Some(kind) = style.marker {
            area_marker(area, (x + 14, y), kind, style.color)?;
        }
        area.draw(&Text::new(
            name.clone(),
            (x + 36, y - 8),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(plot_err)?;
        x += width;
    }
    Ok(())
}

/// Rows the legend needs at `width` pixels (for sizing its strip).
pub fn legend_rows(entries: &[(String, Style)], width: u32) -> u32 {
    let mut rows = 1;
    let mut x = 10i32;
    for (name, _) in entries {
        let w = 50 + 8 * name.chars().count() as i32;
        if x + w > width as i32 && x > 10 {
            rows += 1;
            x = 10;
        }
        x += w;
    }
    rows
}

/// Rows and columns of a grid of `n` panels: at most 3 columns.
pub fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.div_ceil(cols).max(1), cols)
}
