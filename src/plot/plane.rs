//! The (μ₁, μ₂) parameter plane: loss heat map with contours, the singular line μ₁ = μ₂,
//! the target and its label swap, and flow trajectories.

use super::SINGULAR_GREY;
use super::font::FAMILY;
use super::{
    Dash, LegendEntry, LegendGlyph, Marker, PLANE_SIZE, Series, SeriesStyle, draw_legend, font,
    font_error, legend_corner, legend_size, palette, sane_range, stroke_polyline,
};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Everything drawn in a parameter-plane figure.
#[derive(Clone, Debug, Default)]
pub struct PlaneFigure {
    /// Figure title, e.g. "Natural-gradient flow, σ = 1, w = 0.5, target (−1.5, 2)".
    pub title: String,
    /// Horizontal axis label, e.g. "μ₁".
    pub x_label: String,
    /// Vertical axis label, e.g. "μ₂".
    pub y_label: String,
    /// Horizontal extent (a reversed range is swapped, a zero-width one widened).
    pub x_range: (f64, f64),
    /// Vertical extent (a reversed range is swapped, a zero-width one widened).
    pub y_range: (f64, f64),
    /// Loss values on a regular grid for filled contours/heat map: `grid[j][i]` at
    /// `x = x_range.0 + i*(x_range.1-x_range.0)/(nx-1)`, y likewise with j. May be empty (no background).
    /// Ragged rows are truncated to the shortest row; non-finite values are left blank.
    /// The heat map shows log10(L − L_min + 1e-12), with a colour bar and contour lines.
    pub loss_grid: Vec<Vec<f64>>,
    /// θ* and its label swap: the first is drawn as a black star (legend "target θ*"), the
    /// others as white diamonds (legend "swap").
    pub targets: Vec<(f64, f64)>,
    /// Draw the line μ₁ = μ₂ dashed in dark grey with legend "singular line μ₁ = μ₂".
    pub singular_line: bool,
    /// Each start → end: a polyline in colour [`palette`]`(k)`, a hollow circle at the start and a
    /// filled dot at the end. Non-finite points are skipped; the parts outside the ranges are
    /// clipped away, so a trajectory that leaves the plot is drawn as several polylines.
    pub trajectories: Vec<Series>,
    /// Style of trajectory k; trajectories without one get colour `palette(k)`, solid.
    pub styles: Vec<SeriesStyle>,
    /// Legend entries of the trajectories; when empty, one per labelled trajectory (at most
    /// ten, then "… and N more"). The marker entries follow. A legend of more than ten rows is
    /// placed right of the plot, out of the data.
    pub legend: Vec<LegendEntry>,
    /// Trajectories k with `unmarked[k]` = true are drawn without start/end markers (closed
    /// curves such as covariance ellipses); missing entries mean marked.
    pub unmarked: Vec<bool>,
    /// Label of the colour bar (default "log₁₀(L − min L)").
    pub colour_label: Option<String>,
    /// Label of the colour bar; empty: "log₁₀(L − min L)".
    pub z_label: String,
}

/// Draw `fig` into `path` (`.svg` or `.png`, [`PLANE_SIZE`] pixels), atomically.
pub fn plane(path: &Path, fig: &PlaneFigure) -> Result<()> {
    super::render(
        path,
        PLANE_SIZE,
        |root| draw_plane_on(root, fig).map_err(|e| e.to_string()),
        |root| draw_plane_on(root, fig).map_err(|e| e.to_string()),
    )
}

/// Number of colour bands of the heat map.
const BANDS: usize = 48;
/// A contour line is drawn at every `BANDS / CONTOURS`-th band boundary.
const CONTOURS: usize = 8;
/// Most trajectories listed in the legend.
const MAX_LEGEND_TRAJECTORIES: usize = 10;

const MARGIN: u32 = 14;
const X_LABEL_AREA: u32 = 52;
const Y_LABEL_AREA: u32 = 68;
const COLOUR_BAR_WIDTH: u32 = 118;

/// The light, perceptually ordered colour map used for the heat map: viridis mixed with 45 % white.
/// `t` is clamped to [0, 1]; NaN gives the low end.
pub fn colormap(t: f64) -> RGBColor {
    // matplotlib viridis at t = 0, 0.1, …, 1.
    const VIRIDIS: [(f64, f64, f64); 11] = [
        (68.0, 1.0, 84.0),
        (72.0, 36.0, 117.0),
        (65.0, 68.0, 135.0),
        (53.0, 95.0, 141.0),
        (42.0, 120.0, 142.0),
        (33.0, 145.0, 140.0),
        (34.0, 168.0, 132.0),
        (68.0, 191.0, 112.0),
        (122.0, 209.0, 81.0),
        (189.0, 223.0, 38.0),
        (253.0, 231.0, 37.0),
    ];
    const WHITE_MIX: f64 = 0.45;
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let s = t * 10.0;
    let k = (s.floor() as usize).min(9);
    let f = s - k as f64;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    let ch = |x: f64, y: f64| {
        let v = x + f * (y - x);
        (v * (1.0 - WHITE_MIX) + 255.0 * WHITE_MIX)
            .round()
            .clamp(0.0, 255.0) as u8
    };
    RGBColor(ch(a.0, b.0), ch(a.1, b.1), ch(a.2, b.2))
}

/// The heat-map field: z = log10(L − L_min + 1e-12) on the grid nodes, NaN where L is not finite.
struct Field {
    nx: usize,
    ny: usize,
    z: Vec<f64>,
    /// Colour-scale limits (2nd percentile and maximum of z), `lo < hi`.
    lo: f64,
    hi: f64,
}

impl Field {
    fn new(grid: &[Vec<f64>]) -> Option<Field> {
        let ny = grid.len();
        let nx = grid.iter().map(Vec::len).min().unwrap_or(0);
        if nx < 2 || ny < 2 {
            return None;
        }
        let l_min = grid
            .iter()
            .flat_map(|row| row[..nx].iter())
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::INFINITY, f64::min);
        if !l_min.is_finite() {
            return None;
        }
        let z: Vec<f64> = grid
            .iter()
            .flat_map(|row| row[..nx].iter())
            .map(|&l| {
                let z = (l - l_min + 1e-12).log10();
                if l.is_finite() && z.is_finite() {
                    z
                } else {
                    f64::NAN
                }
            })
            .collect();
        let mut finite: Vec<f64> = z.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        finite.sort_by(f64::total_cmp);
        let lo = finite[(finite.len() - 1) * 2 / 100];
        let hi = finite[finite.len() - 1];
        let (lo, hi) = if hi - lo > 1e-9 {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        };
        Some(Field { nx, ny, z, lo, hi })
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.z[j * self.nx + i]
    }

    /// Bilinear interpolation at fractional grid coordinates; corners that are NaN are left out.
    fn sample(&self, gi: f64, gj: f64) -> Option<f64> {
        let gi = gi.clamp(0.0, (self.nx - 1) as f64);
        let gj = gj.clamp(0.0, (self.ny - 1) as f64);
        let i = (gi.floor() as usize).min(self.nx - 2);
        let j = (gj.floor() as usize).min(self.ny - 2);
        let (fx, fy) = (gi - i as f64, gj - j as f64);
        let corners = [
            (self.at(i, j), (1.0 - fx) * (1.0 - fy)),
            (self.at(i + 1, j), fx * (1.0 - fy)),
            (self.at(i, j + 1), (1.0 - fx) * fy),
            (self.at(i + 1, j + 1), fx * fy),
        ];
        let (mut sum, mut weight) = (0.0, 0.0);
        for (v, w) in corners {
            if v.is_finite() {
                sum += v * w;
                weight += w;
            }
        }
        if weight > 1e-9 {
            Some(sum / weight)
        } else {
            // Only zero-weight corners are finite: use their plain mean.
            let finite: Vec<f64> = corners
                .iter()
                .map(|c| c.0)
                .filter(|v| v.is_finite())
                .collect();
            (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
        }
    }

    /// Colour band (0..BANDS) of a z value.
    fn band(&self, z: f64) -> usize {
        let t = (z - self.lo) / (self.hi - self.lo);
        ((t * BANDS as f64).floor().max(0.0) as usize).min(BANDS - 1)
    }

    /// The z value of the boundary below band `k`.
    fn band_edge(&self, k: usize) -> f64 {
        self.lo + (self.hi - self.lo) * k as f64 / BANDS as f64
    }

    /// Contour polylines of `level` in fractional grid coordinates (marching squares, saddles
    /// resolved by the cell mean, segments chained through shared edges).
    fn contour(&self, level: f64) -> Vec<Vec<(f64, f64)>> {
        let (nx, ny) = (self.nx, self.ny);
        // Edge ids: horizontal edge (i,j)–(i+1,j) is 2(j·nx+i), vertical (i,j)–(i,j+1) is 2(j·nx+i)+1.
        let h_edge = |i: usize, j: usize| 2 * (j * nx + i);
        let v_edge = |i: usize, j: usize| 2 * (j * nx + i) + 1;
        let cross = |a: f64, b: f64| (a >= level) != (b >= level);
        let frac = |a: f64, b: f64| ((level - a) / (b - a)).clamp(0.0, 1.0);
        // Crossing point on an edge, computed from its canonical endpoints so that the two cells
        // sharing the edge get bit-identical points.
        let h_point =
            |i: usize, j: usize| (i as f64 + frac(self.at(i, j), self.at(i + 1, j)), j as f64);
        let v_point =
            |i: usize, j: usize| (i as f64, j as f64 + frac(self.at(i, j), self.at(i, j + 1)));

        type End = (usize, (f64, f64));
        let mut segments: Vec<(End, End)> = Vec::new();
        for j in 0..ny - 1 {
            for i in 0..nx - 1 {
                let (a, b, c, d) = (
                    self.at(i, j),
                    self.at(i + 1, j),
                    self.at(i + 1, j + 1),
                    self.at(i, j + 1),
                );
                if !(a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite()) {
                    continue;
                }
                // Edges in cyclic order: bottom, right, top, left.
                let edges: [(bool, End); 4] = [
                    (cross(a, b), (h_edge(i, j), h_point(i, j))),
                    (cross(b, c), (v_edge(i + 1, j), v_point(i + 1, j))),
                    (cross(d, c), (h_edge(i, j + 1), h_point(i, j + 1))),
                    (cross(a, d), (v_edge(i, j), v_point(i, j))),
                ];
                let hits: Vec<End> = edges.iter().filter(|e| e.0).map(|e| e.1).collect();
                match hits.len() {
                    2 => segments.push((hits[0], hits[1])),
                    4 => {
                        let centre_high = (a + b + c + d) / 4.0 >= level;
                        let [bottom, right, top, left] = [hits[0], hits[1], hits[2], hits[3]];
                        if centre_high == (a >= level) {
                            // a and c are joined through the centre: cut off corners b and d.
                            segments.push((bottom, right));
                            segments.push((top, left));
                        } else {
                            // b and d are joined: cut off corners a and c.
                            segments.push((left, bottom));
                            segments.push((right, top));
                        }
                    }
                    _ => {}
                }
            }
        }

        // Chain segments that share an edge.
        const NONE: usize = usize::MAX;
        let mut at_edge = vec![[NONE; 2]; 2 * nx * ny];
        for (s, (p, q)) in segments.iter().enumerate() {
            for e in [p.0, q.0] {
                let slot = &mut at_edge[e];
                if slot[0] == NONE {
                    slot[0] = s;
                } else {
                    slot[1] = s;
                }
            }
        }
        let mut used = vec![false; segments.len()];
        let mut lines = Vec::new();
        for s in 0..segments.len() {
            if used[s] {
                continue;
            }
            used[s] = true;
            let (p, q) = segments[s];
            let mut forward = vec![p.1, q.1];
            let mut backward = Vec::new();
            for (start_edge, out) in [(q.0, &mut forward), (p.0, &mut backward)] {
                let mut edge = start_edge;
                loop {
                    let next = at_edge[edge]
                        .iter()
                        .copied()
                        .find(|&n| n != NONE && !used[n]);
                    let Some(n) = next else { break };
                    used[n] = true;
                    let (a, b) = segments[n];
                    let far = if a.0 == edge { b } else { a };
                    out.push(far.1);
                    edge = far.0;
                }
            }
            backward.reverse();
            backward.extend(forward);
            lines.push(backward);
        }
        lines
    }
}

/// Liang–Barsky: the parameter interval of segment p→q inside the box, if any.
pub(crate) fn clip_segment(
    p: (f64, f64),
    q: (f64, f64),
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Option<(f64, f64)> {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (den, num) in [
        (-dx, p.0 - x0),
        (dx, x1 - p.0),
        (-dy, p.1 - y0),
        (dy, y1 - p.1),
    ] {
        if den == 0.0 {
            if num < 0.0 {
                return None;
            }
        } else {
            let t = num / den;
            if den < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then_some((t0, t1))
}

/// The pieces of a polyline inside the box (non-finite points already removed).
pub(crate) fn clip_polyline(
    points: &[(f64, f64)],
    xr: (f64, f64),
    yr: (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    let inside = |p: &(f64, f64)| p.0 >= xr.0 && p.0 <= xr.1 && p.1 >= yr.0 && p.1 <= yr.1;
    let mut pieces = Vec::new();
    if points.len() == 1 {
        if inside(&points[0]) {
            pieces.push(vec![points[0]]);
        }
        return pieces;
    }
    let mut run: Vec<(f64, f64)> = Vec::new();
    for w in points.windows(2) {
        let (p, q) = (w[0], w[1]);
        let Some((t0, t1)) = clip_segment(p, q, xr, yr) else {
            if !run.is_empty() {
                pieces.push(std::mem::take(&mut run));
            }
            continue;
        };
        let at = |t: f64| (p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1));
        if t0 > 0.0 || run.is_empty() {
            if !run.is_empty() {
                pieces.push(std::mem::take(&mut run));
            }
            run.push(if t0 > 0.0 { at(t0) } else { p });
        }
        run.push(if t1 < 1.0 { at(t1) } else { q });
        if t1 < 1.0 {
            pieces.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        pieces.push(run);
    }
    pieces
}

/// Pixel offsets of a five-pointed star of outer radius `r`, first point up.
fn star(r: f64) -> Vec<(i32, i32)> {
    (0..10)
        .map(|k| {
            let rad = if k % 2 == 0 { r } else { 0.42 * r };
            let a = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
            (
                (rad * a.cos()).round() as i32,
                (rad * a.sin()).round() as i32,
            )
        })
        .collect()
}

/// Pixel offsets of a diamond of half-diagonal `r`.
fn diamond(r: i32) -> Vec<(i32, i32)> {
    vec![(0, -r), (r, 0), (0, r), (-r, 0)]
}

fn closed(mut v: Vec<(i32, i32)>) -> Vec<(i32, i32)> {
    if let Some(&first) = v.first() {
        v.push(first);
    }
    v
}

/// The θ* marker at pixel `c`: a black star of radius `r` with a white rim.
macro_rules! target_marker {
    ($c:expr, $r:expr) => {
        EmptyElement::at($c)
            + Polygon::new(star($r), BLACK.filled())
            + PathElement::new(closed(star($r)), WHITE.stroke_width(1))
    };
}

/// The swap marker at pixel `c`: a white diamond of half-diagonal `r` with a black rim.
macro_rules! swap_marker {
    ($c:expr, $r:expr) => {
        EmptyElement::at($c)
            + Polygon::new(diamond($r), WHITE.filled())
            + PathElement::new(closed(diamond($r)), BLACK.stroke_width(2))
    };
}

/// Draw a legend sample of `m` centred at `c` (pixels of `area`).
pub(crate) fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: Marker,
    c: (i32, i32),
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    match m {
        Marker::Start => {
            area.draw(&Circle::new(c, 6, WHITE.filled()))?;
            area.draw(&Circle::new(c, 6, BLACK.stroke_width(2)))
        }
        Marker::End => area.draw(&Circle::new(c, 5, BLACK.filled())),
        Marker::Target => area.draw(&target_marker!(c, 10.0)),
        Marker::Swap => area.draw(&swap_marker!(c, 7)),
    }
}

/// Draw `fig` on any plotters drawing area (used for both file formats and in-memory buffers).
pub fn draw_plane_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &PlaneFigure,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if !font::register() {
        return Err(font_error());
    }
    root.fill(&WHITE)?;
    let body = super::title_area(root, &fig.title)?;
    let (xr, yr) = (
        sane_range(fig.x_range, (-1.0, 1.0)),
        sane_range(fig.y_range, (-1.0, 1.0)),
    );
    let field = Field::new(&fig.loss_grid);
    let targets: Vec<(f64, f64)> = fig
        .targets
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    let (s0, s1) = (xr.0.max(yr.0), xr.1.min(yr.1));
    let show_singular = fig.singular_line && s0 < s1;
    let style_of = |k: usize| {
        fig.styles.get(k).copied().unwrap_or(SeriesStyle {
            colour: k,
            dash: Dash::Solid,
        })
    };

    // Legend: the trajectories (given, or one per labelled trajectory), then the markers.
    let mut entries: Vec<LegendEntry> = if fig.legend.is_empty() {
        let labelled: Vec<(usize, &Series)> = fig
            .trajectories
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.label.is_empty())
            .collect();
        let mut e: Vec<LegendEntry> = labelled
            .iter()
            .take(MAX_LEGEND_TRAJECTORIES)
            .map(|(k, s)| {
                let st = style_of(*k);
                LegendEntry {
                    label: s.label.clone(),
                    glyph: LegendGlyph::Line(Some(st.colour), st.dash),
                }
            })
            .collect();
        if labelled.len() > MAX_LEGEND_TRAJECTORIES {
            e.push(LegendEntry {
                label: format!("… and {} more", labelled.len() - MAX_LEGEND_TRAJECTORIES),
                glyph: LegendGlyph::Blank,
            });
        }
        e
    } else {
        fig.legend.clone()
    };
    let marker = |label: &str, m: Marker| LegendEntry {
        label: label.into(),
        glyph: LegendGlyph::Marker(m),
    };
    if !fig.trajectories.is_empty() {
        entries.push(marker("start", Marker::Start));
        entries.push(marker("end", Marker::End));
    }
    if !targets.is_empty() {
        entries.push(marker("target θ*", Marker::Target));
    }
    if targets.len() > 1 {
        entries.push(marker("swap", Marker::Swap));
    }
    if show_singular {
        entries.push(LegendEntry {
            label: "singular line μ₁ = μ₂".into(),
            glyph: LegendGlyph::Rgb(SINGULAR_GREY, Dash::Dashed),
        });
    }
    let legend_font: TextStyle = (FAMILY, 15).into_font().into();
    let dim = legend_size(root, &entries, &legend_font)?;

    let (body_w, _) = body.dim_in_pixel();
    let (main, bar) = if field.is_some() && body_w > 3 * COLOUR_BAR_WIDTH {
        let (m, b) = body.split_horizontally(body_w - COLOUR_BAR_WIDTH);
        (m, Some(b))
    } else {
        (body.clone(), None)
    };
    // More than ten rows: a column right of the plot (and left of the colour bar).
    let (main_w, _) = main.dim_in_pixel();
    let outside = entries.len() > 10 && (dim.0 as u32) < main_w / 2;
    let (main, side) = if outside {
        let (m, s) = main.split_horizontally(main_w - dim.0 as u32 - 12);
        (m, Some(s))
    } else {
        (main, None)
    };

    let mut chart = ChartBuilder::on(&main)
        .margin(MARGIN)
        .margin_right(if bar.is_some() { MARGIN } else { 2 * MARGIN })
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
    let plot_px = chart.plotting_area().strip_coord_spec();
    let (pw, ph) = plot_px.dim_in_pixel();

    // Heat map: one RGB raster of the plotting area (one bilinear sample per pixel, quantised
    // into BANDS colour bands), blitted as a single image (one PNG `<image>` in SVGs).
    if let Some(f) = &field {
        let (w, h) = (pw as usize, ph as usize);
        let mut buf = vec![255u8; w * h * 3];
        for r in 0..h {
            let gj = (1.0 - (r as f64 + 0.5) / h as f64) * (f.ny - 1) as f64;
            for c in 0..w {
                let gi = (c as f64 + 0.5) / w as f64 * (f.nx - 1) as f64;
                if let Some(z) = f.sample(gi, gj) {
                    let col = colormap((f.band(z) as f64 + 0.5) / BANDS as f64);
                    let o = (r * w + c) * 3;
                    buf[o..o + 3].copy_from_slice(&[col.0, col.1, col.2]);
                }
            }
        }
        if let Some(image) = BitMapElement::with_owned_buffer((0, 0), (pw, ph), buf) {
            plot_px.draw(&image)?;
        }
    }

    chart
        .configure_mesh()
        .x_desc(fig.x_label.as_str())
        .y_desc(fig.y_label.as_str())
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 19))
        .bold_line_style(BLACK.mix(0.13))
        .light_line_style(TRANSPARENT)
        .x_labels(9)
        .y_labels(9)
        .x_label_formatter(&|v| super::tick_label(*v, xr.1 - xr.0))
        .y_label_formatter(&|v| super::tick_label(*v, yr.1 - yr.0))
        .draw()?;

    // Contours at every (BANDS / CONTOURS)-th band boundary.
    let to_data = |f: &Field, (gi, gj): (f64, f64)| {
        (
            xr.0 + gi / (f.nx - 1) as f64 * (xr.1 - xr.0),
            yr.0 + gj / (f.ny - 1) as f64 * (yr.1 - yr.0),
        )
    };
    if let Some(f) = &field {
        for k in 1..CONTOURS {
            let level = f.band_edge(k * BANDS / CONTOURS);
            let lines = f.contour(level);
            chart.draw_series(lines.into_iter().filter(|l| l.len() >= 2).map(|l| {
                PathElement::new(
                    l.into_iter().map(|p| to_data(f, p)).collect::<Vec<_>>(),
                    BLACK.mix(0.28).stroke_width(1),
                )
            }))?;
        }
    }

    // Singular line μ₁ = μ₂, clipped to the plot.
    if show_singular {
        chart.draw_series(DashedLineSeries::new(
            vec![(s0, s0), (s1, s1)],
            10,
            7,
            SINGULAR_GREY.stroke_width(2),
        ))?;
    }

    // Trajectories: coloured line, hollow circle at the start, filled dot at the end.
    let mut pixel_points: Vec<(i32, i32)> = Vec::new();
    let base = plot_px.get_base_pixel();
    let inside = |p: &(f64, f64)| p.0 >= xr.0 && p.0 <= xr.1 && p.1 >= yr.0 && p.1 <= yr.1;
    for (k, traj) in fig.trajectories.iter().enumerate() {
        let st = style_of(k);
        let colour = palette(st.colour);
        let pts: Vec<(f64, f64)> = traj
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let pieces = clip_polyline(&pts, xr, yr);
        for piece in pieces.iter().filter(|p| p.len() >= 2) {
            let px: Vec<(i32, i32)> = piece
                .iter()
                .map(|p| {
                    let b = chart.backend_coord(p);
                    (b.0 - base.0, b.1 - base.1)
                })
                .collect();
            stroke_polyline(&plot_px, &px, colour, st.dash)?;
        }
        for p in pieces.iter().flatten() {
            let b = chart.backend_coord(p);
            pixel_points.push((b.0 - base.0, b.1 - base.1));
        }
        if fig.unmarked.get(k).copied().unwrap_or(false) {
            continue;
        }
        if let Some(start) = pts.first().filter(|p| inside(p)) {
            chart.draw_series([
                Circle::new(*start, 6, WHITE.filled()),
                Circle::new(*start, 6, colour.stroke_width(2)),
            ])?;
        }
        if let Some(end) = pts.last().filter(|p| inside(p)) {
            chart.draw_series([
                Circle::new(*end, 5, colour.filled()),
                Circle::new(*end, 5, BLACK.stroke_width(1)),
            ])?;
        }
    }

    // Targets on top of everything.
    for (k, t) in targets.iter().enumerate() {
        if !inside(t) {
            continue;
        }
        let b = chart.backend_coord(t);
        pixel_points.push((b.0 - base.0, b.1 - base.1));
        if k == 0 {
            root.draw(&target_marker!(b, 12.0))?;
        } else {
            root.draw(&swap_marker!(b, 8))?;
        }
    }

    // Frame around the plotting area.
    plot_px.draw(&Rectangle::new(
        [(0, 0), (pw as i32 - 1, ph as i32 - 1)],
        BLACK.stroke_width(1),
    ))?;

    // Legend: right of the plot, or in the emptiest corner.
    if !entries.is_empty() {
        match &side {
            Some(side) => draw_legend(side, (2, MARGIN as i32), &entries, &legend_font, dim)?,
            None => {
                let corner = legend_corner(dim, (pw, ph), &pixel_points);
                draw_legend(&plot_px, corner, &entries, &legend_font, dim)?;
            }
        }
    }

    if let (Some(f), Some(bar)) = (&field, &bar) {
        draw_colour_bar(bar, f, fig.colour_label.as_deref().unwrap_or(&fig.z_label))?;
    }
    Ok(())
}

/// The colour bar to the right of the plot, aligned with the plotting area.
fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &Field,
    label: &str,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let label = if label.is_empty() {
        "log₁₀(L − min L)"
    } else {
        label
    };
    let mut bar = ChartBuilder::on(area)
        .margin_top(MARGIN)
        .margin_bottom(MARGIN + X_LABEL_AREA)
        .margin_left(6)
        .margin_right(6)
        .right_y_label_area_size(COLOUR_BAR_WIDTH - 12 - 24)
        .build_cartesian_2d(0f64..1f64, f.lo..f.hi)?;
    bar.draw_series((0..BANDS).map(|k| {
        Rectangle::new(
            [(0.0, f.band_edge(k)), (1.0, f.band_edge(k + 1))],
            colormap((k as f64 + 0.5) / BANDS as f64).filled(),
        )
    }))?;
    bar.draw_series((1..CONTOURS).map(|k| {
        let z = f.band_edge(k * BANDS / CONTOURS);
        PathElement::new(vec![(0.0, z), (1.0, z)], BLACK.mix(0.28).stroke_width(1))
    }))?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .set_tick_mark_size(LabelAreaPosition::Right, 5)
        .y_labels(8)
        .y_label_formatter(&|v| super::tick_label(*v, f.hi - f.lo))
        .y_desc(label)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    let px = bar.plotting_area().strip_coord_spec();
    let (w, h) = px.dim_in_pixel();
    px.draw(&Rectangle::new(
        [(0, 0), (w as i32 - 1, h as i32 - 1)],
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(z: Vec<Vec<f64>>) -> Field {
        let ny = z.len();
        let nx = z[0].len();
        Field {
            nx,
            ny,
            z: z.into_iter().flatten().collect(),
            lo: 0.0,
            hi: 1.0,
        }
    }

    #[test]
    fn contour_of_a_cone_is_one_closed_loop() {
        let n = 21;
        let z: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                (0..n)
                    .map(|i| {
                        let (x, y) = (i as f64 - 10.0, j as f64 - 10.0);
                        (x * x + y * y).sqrt()
                    })
                    .collect()
            })
            .collect();
        let lines = field(z).contour(5.0);
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert!(l.len() > 20);
        assert_eq!(l.first(), l.last(), "closed loop");
        for &(x, y) in l {
            let r = ((x - 10.0).powi(2) + (y - 10.0).powi(2)).sqrt();
            assert!((r - 5.0).abs() < 0.1, "r = {r}");
        }
    }

    #[test]
    fn contour_of_a_plane_is_one_open_line() {
        let z: Vec<Vec<f64>> = (0..5).map(|_| (0..7).map(|i| i as f64).collect()).collect();
        let lines = field(z).contour(2.5);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), 5);
        assert!(lines[0].iter().all(|p| (p.0 - 2.5).abs() < 1e-12));
    }

    #[test]
    fn clipping_splits_at_the_border() {
        let pts = [(0.0, 0.0), (2.0, 0.0), (2.0, 0.5), (0.5, 0.5)];
        let pieces = clip_polyline(&pts, (-1.0, 1.0), (-1.0, 1.0));
        assert_eq!(
            pieces,
            vec![vec![(0.0, 0.0), (1.0, 0.0)], vec![(1.0, 0.5), (0.5, 0.5)]]
        );
        assert!(clip_polyline(&[(5.0, 5.0), (6.0, 6.0)], (-1.0, 1.0), (-1.0, 1.0)).is_empty());
        assert_eq!(
            clip_polyline(&[(0.0, 0.0)], (-1.0, 1.0), (-1.0, 1.0)).len(),
            1
        );
    }

    #[test]
    fn field_ignores_nan_and_ragged_rows() {
        let f = Field::new(&[vec![1.0, f64::NAN, 3.0], vec![2.0, 4.0]]).unwrap();
        assert_eq!((f.nx, f.ny), (2, 2));
        assert!(f.at(1, 0).is_nan());
        assert!(f.lo < f.hi);
        assert!(Field::new(&vec![vec![f64::NAN; 3]; 3]).is_none());
        assert!(Field::new(&[]).is_none());
        assert!(Field::new(&[vec![1.0]]).is_none());
    }
}
