//! The Fisher-manifold figure of the seed page: Fisher ellipses on a grid of the (μ₁, μ₂) window,
//! a heat map of log₁₀ κ(I) or of the gradient angle, the singular line μ₁ = μ₂, the target and
//! its label swap, Euclidean (red) and natural (cyan) descent arrows at probe points, and
//! particles on the natural-gradient flow coloured by the optimum they end at.
//!
//! The data come from [`crate::manifold::build`]; this module only draws. The same drawing
//! function serves SVG, PNG and the frames of the GIF animation ([`super::animation`]).
//!
//! # Finding the elements in the SVG
//! Every kind of element has its own exact colour (plotters writes `stroke="#RRGGBB"` on
//! `<polyline>` and `fill="#RRGGBB"` on `<polygon>`), so a test can count them:
//!
//! | element | SVG |
//! |---|---|
//! | Fisher ellipse | `<polyline stroke="#202020">` with [`ELLIPSE_POINTS`] points |
//! | clipped ellipse | `<polyline stroke="#006D2C">` with [`ELLIPSE_POINTS`] points, plus two 2-point caps across the clipped axis |
//! | Euclidean arrow −∇L | `<polyline stroke="#E41A1C">` (shaft) + `<polygon fill="#E41A1C">` (head) |
//! | natural arrow −I⁻¹∇L | `<polyline stroke="#00CFEF">` (shaft) + `<polygon fill="#00CFEF">` (head) |
//! | angle at a probe | `<text>Δθ = 41.9°</text>` |
//!
//! The legend draws one sample of each kind in the same colour, so each count is one more than
//! the number of plotted elements (the clipped-ellipse sample, with its caps, only appears when
//! some ellipse is clipped; the arrow samples only when there are probes).

use super::SINGULAR_GREY;
use super::font::FAMILY;
use super::plane::colormap;
use super::{font, font_error};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Size in pixels of the manifold figure and of the animation frames.
pub const MANIFOLD_SIZE: (u32, u32) = (1240, 900);
/// Points of each ellipse polyline (closed: the first point is repeated at the end).
pub const ELLIPSE_POINTS: usize = 49;
/// Stroke colour of the Fisher ellipses.
pub const ELLIPSE: RGBColor = RGBColor(0x20, 0x20, 0x20);
/// Stroke colour of clipped ellipses and their end caps.
pub const CLIPPED: RGBColor = RGBColor(0x00, 0x6D, 0x2C);
/// Colour of the Euclidean descent arrow −∇L.
pub const EUCLID_RED: RGBColor = RGBColor(0xE4, 0x1A, 0x1C);
/// Colour of the natural descent arrow −I⁻¹∇L.
pub const NATURAL_CYAN: RGBColor = RGBColor(0x00, 0xCF, 0xEF);

/// Left edge of the plotting area (pixels).
const PLOT_X0: i32 = 96;
/// Top edge of the plotting area.
const PLOT_Y0: i32 = 82;
/// Side of the square plotting area.
const SIDE: i32 = 736;
const Y_LABEL_AREA: i32 = 72;
const X_LABEL_AREA: i32 = 56;
const PAD: i32 = 16;
/// The plotting square in pixels: left, top, side (every ellipse, path and arrow stays inside).
pub const PLOT_BOX: (i32, i32, i32) = (PLOT_X0, PLOT_Y0, SIDE);
/// Particle colours by destination: θ*, its label swap, neither (not at an optimum at t_end).
pub const TO_TARGET: RGBColor = RGBColor(0x1F, 0x4E, 0xA0);
/// See [`TO_TARGET`].
pub const TO_SWAP: RGBColor = RGBColor(0xD9, 0x5F, 0x02);
/// See [`TO_TARGET`].
pub const TO_NEITHER: RGBColor = RGBColor(0x60, 0x60, 0x60);
/// A probe whose gradient norm is below this is drawn as stationary (no arrows): above the
/// quadrature's gradient noise (≈ 2e-9), so a 1e-16 gradient is not drawn as a full arrow.
pub const STATIONARY_GRAD: f64 = 1e-8;
/// Left edge of the legend and colour bars.
const PANEL_X0: i32 = PLOT_X0 + SIDE + 36;
/// Colour bands of the heat map.
const BANDS: usize = 64;
/// Display length of the probe arrows in pixels.
const ARROW_PX: f64 = 66.0;
/// Spacing of the direction marks along the particle paths, pixels.
const CHEVRON_SPACING: f64 = 64.0;

/// One Fisher ellipse: centre and the two semi-axis vectors (data coordinates), each flagged
/// when it was cut to the cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Ellipse {
    /// Centre θ₀.
    pub center: (f64, f64),
    /// Semi-axis vectors (eigenvector × length).
    pub axes: [(f64, f64); 2],
    /// Whether each semi-axis was clipped to the cell.
    pub clipped: [bool; 2],
}

impl Ellipse {
    /// Whether any semi-axis was clipped.
    pub fn is_clipped(&self) -> bool {
        self.clipped[0] || self.clipped[1]
    }

    /// The closed outline, [`ELLIPSE_POINTS`] points.
    pub fn outline(&self) -> Vec<(f64, f64)> {
        let (c, [u, v]) = (self.center, self.axes);
        (0..ELLIPSE_POINTS)
            .map(|k| {
                let t = 2.0 * std::f64::consts::PI * (k % (ELLIPSE_POINTS - 1)) as f64
                    / (ELLIPSE_POINTS - 1) as f64;
                let (s, co) = t.sin_cos();
                (c.0 + co * u.0 + s * v.0, c.1 + co * u.1 + s * v.1)
            })
            .collect()
    }
}

/// What the heat map shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeatKind {
    /// log₁₀ κ(I).
    Kappa,
    /// ∠(∇L, I⁻¹∇L) in degrees.
    Angle,
}

/// Heat-map values on an m×m node grid of the window: `z[j*m + i]` at
/// (a + i(b−a)/(m−1), a + j(b−a)/(m−1)). Values are clamped to [lo, hi] for colouring (so κ = ∞
/// on the singular line shows as the top colour); NaN is left blank.
#[derive(Clone, Debug)]
pub struct HeatMap {
    pub kind: HeatKind,
    pub nodes: usize,
    pub z: Vec<f64>,
    pub lo: f64,
    pub hi: f64,
}

/// A probe: the point and the two gradients (not normalized), and their angle in degrees.
#[derive(Clone, Debug)]
pub struct Probe {
    pub at: (f64, f64),
    /// ∇L (the red arrow points along −∇L).
    pub gradient: (f64, f64),
    /// (I + λ1)⁺∇L (the cyan arrow points along its negative).
    pub natural: (f64, f64),
    pub angle_deg: f64,
}

impl Probe {
    /// ‖∇L‖ < [`STATIONARY_GRAD`]: the directions are noise, no arrows are drawn.
    pub fn is_stationary(&self) -> bool {
        let (g0, g1) = self.gradient;
        (g0 * g0 + g1 * g1).sqrt() < STATIONARY_GRAD
    }
}

/// One particle path: positions and their times (increasing).
#[derive(Clone, Debug)]
pub struct Particle {
    pub points: Vec<(f64, f64)>,
    pub times: Vec<f64>,
}

/// Everything drawn in the manifold figure.
#[derive(Clone, Debug)]
pub struct ManifoldFigure {
    pub title: String,
    /// Window [a, b] of both axes.
    pub range: (f64, f64),
    /// Cell side h.
    pub cell: f64,
    pub ellipses: Vec<Ellipse>,
    pub heat: Option<HeatMap>,
    /// θ* first, then its label swap.
    pub targets: Vec<(f64, f64)>,
    pub probes: Vec<Probe>,
    pub particles: Vec<Particle>,
    /// The time by which the particles have settled (the default duration of the animation).
    pub t_colour: f64,
}

/// Draw `fig` into `path` (`.svg` or `.png`, [`MANIFOLD_SIZE`] pixels), atomically.
pub fn manifold(path: &Path, fig: &ManifoldFigure) -> Result<()> {
    super::render(
        path,
        MANIFOLD_SIZE,
        |root| draw_manifold_on(root, fig, None).map_err(|e| e.to_string()),
        |root| draw_manifold_on(root, fig, None).map_err(|e| e.to_string()),
    )
}

/// The particle colour at relative time u ∈ [0, 1]: deep blue → purple → orange.
pub fn time_colour(u: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [
        (27.0, 42.0, 128.0),
        (123.0, 63.0, 160.0),
        (240.0, 138.0, 14.0),
    ];
    let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
    let s = u * 2.0;
    let k = (s.floor() as usize).min(1);
    let f = s - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let ch = |x: f64, y: f64| (x + f * (y - x)).round().clamp(0.0, 255.0) as u8;
    RGBColor(ch(a.0, b.0), ch(a.1, b.1), ch(a.2, b.2))
}

/// Nice tick values covering [lo, hi] (about five), always including `hi` when it is not
/// within 40 % of a step of the last tick.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + 1e-9 * span {
        v.push(k * step);
        k += 1.0;
    }
    if v.last().is_none_or(|l| hi - l > 0.4 * step) {
        v.push(hi);
    }
    v
}

/// A tick label: at most three decimals, trailing zeros dropped, typographic minus.
pub fn tick_label(v: f64) -> String {
    let s = format!("{:.3}", if v.abs() < 1e-9 { 0.0 } else { v });
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    s.replace('-', "−")
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Pixel geometry of the square plot.
#[derive(Clone, Copy)]
struct Frame {
    a: f64,
    b: f64,
}

impl Frame {
    fn px(&self, p: (f64, f64)) -> (f64, f64) {
        let s = f64::from(SIDE) / (self.b - self.a);
        (
            f64::from(PLOT_X0) + (p.0 - self.a) * s,
            f64::from(PLOT_Y0 + SIDE) - (p.1 - self.a) * s,
        )
    }
    fn ipx(&self, p: (f64, f64)) -> (i32, i32) {
        let q = self.px(p);
        (q.0.round() as i32, q.1.round() as i32)
    }
    fn inside(&self, p: (f64, f64)) -> bool {
        p.0 >= self.a && p.0 <= self.b && p.1 >= self.a && p.1 <= self.b
    }
    fn inside_px(&self, q: (f64, f64)) -> bool {
        q.0 >= f64::from(PLOT_X0)
            && q.0 <= f64::from(PLOT_X0 + SIDE)
            && q.1 >= f64::from(PLOT_Y0)
            && q.1 <= f64::from(PLOT_Y0 + SIDE)
    }
}

fn ipt(q: (f64, f64)) -> (i32, i32) {
    (q.0.round() as i32, q.1.round() as i32)
}

/// The part of segment p→q inside the square [a, b]² (Liang–Barsky, shared with the plane
/// figure).
fn clip_segment(p: (f64, f64), q: (f64, f64), a: f64, b: f64) -> Option<((f64, f64), (f64, f64))> {
    let (t0, t1) = super::plane::clip_segment(p, q, (a, b), (a, b))?;
    let at = |t: f64| (p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1));
    Some((at(t0), at(t1)))
}

/// The particle path up to time `t` (all of it when `None`), as (point, time) pairs; the last
/// point is interpolated linearly at `t`.
fn path_until(p: &Particle, t: Option<f64>) -> Vec<((f64, f64), f64)> {
    let pts: Vec<((f64, f64), f64)> = p
        .points
        .iter()
        .zip(&p.times)
        .filter(|(q, s)| q.0.is_finite() && q.1.is_finite() && s.is_finite())
        .map(|(q, s)| (*q, *s))
        .collect();
    let Some(t) = t else { return pts };
    let mut out = Vec::new();
    for (k, &(q, s)) in pts.iter().enumerate() {
        if s <= t {
            out.push((q, s));
        } else {
            // the point at time t inside segment k−1..k (none when t is the last kept time)
            if k > 0 && t > pts[k - 1].1 {
                let (q0, s0) = pts[k - 1];
                let f = if s > s0 { (t - s0) / (s - s0) } else { 1.0 };
                out.push(((q0.0 + f * (q.0 - q0.0), q0.1 + f * (q.1 - q0.1)), t));
            }
            break;
        }
    }
    out
}

/// An arrowhead polygon with its tip at `tip`, pointing along unit `d`.
fn head(tip: (f64, f64), d: (f64, f64), len: f64, half: f64) -> Vec<(i32, i32)> {
    let base = (tip.0 - len * d.0, tip.1 - len * d.1);
    let n = (-d.1, d.0);
    vec![
        ipt(tip),
        ipt((base.0 + half * n.0, base.1 + half * n.1)),
        ipt((base.0 - half * n.0, base.1 - half * n.1)),
    ]
}

/// Draw an arrow from `from` along unit `d` of length `len` pixels: black outline, then colour.
fn arrow<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    from: (f64, f64),
    d: (f64, f64),
    len: f64,
    colour: RGBColor,
) -> DrawResult<DB> {
    let tip = (from.0 + len * d.0, from.1 + len * d.1);
    let head_len = (0.32 * len).clamp(6.0, 16.0);
    let shaft_end = (tip.0 - 0.8 * head_len * d.0, tip.1 - 0.8 * head_len * d.1);
    let outline_tip = (tip.0 + 2.0 * d.0, tip.1 + 2.0 * d.1);
    root.draw(&PathElement::new(
        vec![ipt(from), ipt(shaft_end)],
        BLACK.stroke_width(7),
    ))?;
    root.draw(&Polygon::new(
        head(outline_tip, d, head_len + 4.0, 0.5 * head_len + 3.0),
        BLACK.filled(),
    ))?;
    root.draw(&PathElement::new(
        vec![ipt(from), ipt(shaft_end)],
        colour.stroke_width(4),
    ))?;
    root.draw(&Polygon::new(
        head(tip, d, head_len, 0.5 * head_len),
        colour.filled(),
    ))?;
    Ok(())
}

/// Pixel offsets of a five-pointed star of outer radius `r`.
fn star(c: (i32, i32), r: f64) -> Vec<(i32, i32)> {
    (0..10)
        .map(|k| {
            let rad = if k % 2 == 0 { r } else { 0.42 * r };
            let a = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
            (
                c.0 + (rad * a.cos()).round() as i32,
                c.1 + (rad * a.sin()).round() as i32,
            )
        })
        .collect()
}

fn diamond(c: (i32, i32), r: i32) -> Vec<(i32, i32)> {
    vec![
        (c.0, c.1 - r),
        (c.0 + r, c.1),
        (c.0, c.1 + r),
        (c.0 - r, c.1),
    ]
}

fn closed(mut v: Vec<(i32, i32)>) -> Vec<(i32, i32)> {
    if let Some(&f) = v.first() {
        v.push(f);
    }
    v
}

fn draw_target<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: (i32, i32),
    r: f64,
) -> DrawResult<DB> {
    root.draw(&Polygon::new(star(c, r), BLACK.filled()))?;
    root.draw(&PathElement::new(closed(star(c, r)), WHITE.stroke_width(1)))?;
    Ok(())
}

fn draw_swap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: (i32, i32),
    r: i32,
) -> DrawResult<DB> {
    root.draw(&Polygon::new(diamond(c, r), WHITE.filled()))?;
    root.draw(&PathElement::new(
        closed(diamond(c, r)),
        BLACK.stroke_width(2),
    ))?;
    Ok(())
}

/// An ellipse outline and its clip caps, in pixels.
type EllipsePixels = (Vec<(i32, i32)>, Vec<[(i32, i32); 2]>);

/// Shorten the segment p–q (symmetrically about its midpoint, which lies in the plot) so that
/// it stays inside the plot square: caps of corner cells never stick out of the frame.
fn inside_plot(p: (f64, f64), q: (f64, f64)) -> [(f64, f64); 2] {
    let (lo_x, hi_x) = (f64::from(PLOT_X0), f64::from(PLOT_X0 + SIDE));
    let (lo_y, hi_y) = (f64::from(PLOT_Y0), f64::from(PLOT_Y0 + SIDE));
    let m = ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0);
    let d = ((p.0 - q.0) / 2.0, (p.1 - q.1) / 2.0);
    // largest s ∈ [0, 1] with m ± s·d inside the square on both ends
    let mut s: f64 = 1.0;
    for (c, dc, lo, hi) in [(m.0, d.0, lo_x, hi_x), (m.1, d.1, lo_y, hi_y)] {
        if dc.abs() > 0.0 {
            s = s.min(((hi - c) / dc.abs()).min((c - lo) / dc.abs()).max(0.0));
        }
    }
    [
        (m.0 + s * d.0, m.1 + s * d.1),
        (m.0 - s * d.0, m.1 - s * d.1),
    ]
}

/// The pixel outline of an ellipse and, for clipped axes, the end caps (2-point segments
/// across the axis at both ends, kept inside the plot).
fn ellipse_pixels(f: &Frame, e: &Ellipse) -> EllipsePixels {
    let outline = e.outline().into_iter().map(|p| f.ipx(p)).collect();
    ellipse_caps(f, e, outline)
}

/// The pieces of a pixel polyline inside the plotting square (ellipses of edge cells are cut
/// by the frame instead of crossing it).
fn inside_frame(px: &[(i32, i32)]) -> Vec<Vec<(i32, i32)>> {
    let pts: Vec<(f64, f64)> = px
        .iter()
        .map(|p| (f64::from(p.0), f64::from(p.1)))
        .collect();
    let xr = (f64::from(PLOT_X0), f64::from(PLOT_X0 + SIDE));
    let yr = (f64::from(PLOT_Y0), f64::from(PLOT_Y0 + SIDE));
    if pts
        .iter()
        .all(|p| p.0 >= xr.0 && p.0 <= xr.1 && p.1 >= yr.0 && p.1 <= yr.1)
    {
        return vec![px.to_vec()];
    }
    super::plane::clip_polyline(&pts, xr, yr)
        .into_iter()
        .filter(|piece| piece.len() >= 2)
        .map(|piece| piece.into_iter().map(ipt).collect())
        .collect()
}

fn ellipse_caps(f: &Frame, e: &Ellipse, outline: Vec<(i32, i32)>) -> EllipsePixels {
    let mut caps = Vec::new();
    for k in 0..2 {
        if !e.clipped[k] {
            continue;
        }
        let (u, v) = (e.axes[k], e.axes[1 - k]);
        let c = f.px(e.center);
        let s = f64::from(SIDE) / (f.b - f.a);
        let ul = (u.0 * u.0 + u.1 * u.1).sqrt();
        if ul == 0.0 {
            continue;
        }
        // Cap half-length: at least 4 px, at most the other semi-axis + 3 px.
        let vl = (v.0 * v.0 + v.1 * v.1).sqrt() * s;
        let half = (vl + 3.0).max(4.0);
        let (ux, uy) = (u.0 * s, -u.1 * s);
        let n = (-uy / (ul * s), ux / (ul * s));
        for sign in [1.0, -1.0] {
            let end = (c.0 + sign * ux, c.1 + sign * uy);
            let [p, q] = inside_plot(
                (end.0 + half * n.0, end.1 + half * n.1),
                (end.0 - half * n.0, end.1 - half * n.1),
            );
            caps.push([ipt(p), ipt(q)]);
        }
    }
    (outline, caps)
}

/// Draw `fig`; with `at_time = Some(t)` the particles are drawn up to time t with a dot at their
/// position and a time stamp (an animation frame).
pub fn draw_manifold_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &ManifoldFigure,
    at_time: Option<f64>,
) -> DrawResult<DB> {
    if !font::register() {
        return Err(font_error());
    }
    root.fill(&WHITE)?;
    let (a, b) = if fig.range.0 < fig.range.1 {
        fig.range
    } else {
        (-1.0, 1.0)
    };
    let f = Frame { a, b };

    // Title.
    let title_style = TextStyle::from((FAMILY, 24).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(
        fig.title.clone(),
        ((MANIFOLD_SIZE.0 / 2) as i32, 14),
        title_style,
    ))?;
    let sub = match &fig.heat {
        Some(h) if h.kind == HeatKind::Kappa => "background: log₁₀ κ(I), κ = λ_max/λ_min",
        Some(_) => "background: angle between −∇L and −I⁻¹∇L",
        None => "",
    };
    let subtitle = format!(
        "ellipses δθᵀI(θ₀)δθ = ε on a {n}×{n} grid{}{sub}",
        if sub.is_empty() { "" } else { "; " },
        n = (fig.ellipses.len() as f64).sqrt().round() as usize
    );
    let sub_style = TextStyle::from((FAMILY, 16).into_font())
        .color(&RGBColor(0x40, 0x40, 0x40))
        .pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(
        subtitle,
        ((MANIFOLD_SIZE.0 / 2) as i32, 46),
        sub_style,
    ))?;

    // Heat map raster.
    if let Some(h) = &fig.heat {
        draw_heat(root, h)?;
    }

    // Axes: ticks and labels only (the ellipses already show the grid).
    let chart_area = root.clone().shrink(
        (PLOT_X0 - Y_LABEL_AREA, PLOT_Y0 - PAD),
        (
            (Y_LABEL_AREA + SIDE + PAD) as u32,
            (PAD + SIDE + X_LABEL_AREA) as u32,
        ),
    );
    let mut chart = ChartBuilder::on(&chart_area)
        .margin_top(PAD as u32)
        .margin_right(PAD as u32)
        .x_label_area_size(X_LABEL_AREA as u32)
        .y_label_area_size(Y_LABEL_AREA as u32)
        .build_cartesian_2d(a..b, a..b)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("μ₁")
        .y_desc("μ₂")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 19))
        .x_labels(9)
        .y_labels(9)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .draw()?;

    // Ellipses: the regular ones, then the clipped ones with caps.
    for e in fig.ellipses.iter().filter(|e| !e.is_clipped()) {
        for piece in inside_frame(&ellipse_pixels(&f, e).0) {
            root.draw(&PathElement::new(piece, ELLIPSE.stroke_width(1)))?;
        }
    }
    for e in fig.ellipses.iter().filter(|e| e.is_clipped()) {
        let (outline, caps) = ellipse_pixels(&f, e);
        for piece in inside_frame(&outline) {
            root.draw(&PathElement::new(piece, CLIPPED.stroke_width(2)))?;
        }
        for c in caps {
            root.draw(&PathElement::new(c.to_vec(), CLIPPED.stroke_width(2)))?;
        }
    }

    // Singular line μ₁ = μ₂, dashed.
    {
        let (p, q) = (f.px((a, a)), f.px((b, b)));
        let len = ((q.0 - p.0).powi(2) + (q.1 - p.1).powi(2)).sqrt();
        let d = ((q.0 - p.0) / len, (q.1 - p.1) / len);
        let mut s = 0.0;
        while s < len {
            let e = (s + 10.0).min(len);
            root.draw(&PathElement::new(
                vec![
                    ipt((p.0 + s * d.0, p.1 + s * d.1)),
                    ipt((p.0 + e * d.0, p.1 + e * d.1)),
                ],
                SINGULAR_GREY.stroke_width(2),
            ))?;
            s += 17.0;
        }
    }

    // Particles.
    for p in &fig.particles {
        let colour = destination_colour(p, &fig.targets, b - a);
        draw_particle(root, &f, p, at_time, colour)?;
    }

    // Targets.
    for (k, t) in fig.targets.iter().enumerate() {
        if !f.inside(*t) {
            continue;
        }
        if k == 0 {
            draw_target(root, f.ipx(*t), 13.0)?;
        } else {
            draw_swap(root, f.ipx(*t), 8)?;
        }
    }

    // Probes.
    draw_probes(root, &f, &fig.probes)?;

    // Frame.
    root.draw(&Rectangle::new(
        [(PLOT_X0, PLOT_Y0), (PLOT_X0 + SIDE, PLOT_Y0 + SIDE)],
        BLACK.stroke_width(1),
    ))?;

    // Time stamp of an animation frame.
    if let Some(t) = at_time {
        let text = format!("t = {t:.2}");
        let style = TextStyle::from((FAMILY, 22).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Top));
        let (w, h) = root.estimate_text_size(&text, &style)?;
        let (x, y) = (PLOT_X0 + 10, PLOT_Y0 + 10);
        root.draw(&Rectangle::new(
            [(x - 6, y - 5), (x + w as i32 + 6, y + h as i32 + 5)],
            WHITE.mix(0.9).filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(x - 6, y - 5), (x + w as i32 + 6, y + h as i32 + 5)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Text::new(text, (x, y), style))?;
    }

    let legend_bottom = draw_legend(root, fig)?;
    draw_colour_bars(root, fig, legend_bottom + 40)?;
    Ok(())
}

/// Bilinear sample of the node grid at fractional node coordinates (NaN corners left out).
fn sample(h: &HeatMap, gi: f64, gj: f64) -> Option<f64> {
    let m = h.nodes;
    let gi = gi.clamp(0.0, (m - 1) as f64);
    let gj = gj.clamp(0.0, (m - 1) as f64);
    let i = (gi.floor() as usize).min(m - 2);
    let j = (gj.floor() as usize).min(m - 2);
    let (fx, fy) = (gi - i as f64, gj - j as f64);
    let at = |i: usize, j: usize| {
        let v = h.z[j * m + i];
        if v.is_nan() {
            f64::NAN
        } else {
            v.clamp(h.lo, h.hi)
        }
    };
    let corners = [
        (at(i, j), (1.0 - fx) * (1.0 - fy)),
        (at(i + 1, j), fx * (1.0 - fy)),
        (at(i, j + 1), (1.0 - fx) * fy),
        (at(i + 1, j + 1), fx * fy),
    ];
    let (mut s, mut w) = (0.0, 0.0);
    for (v, wt) in corners {
        if v.is_finite() {
            s += v * wt;
            w += wt;
        }
    }
    (w > 1e-9).then(|| s / w)
}

fn band(h: &HeatMap, z: f64) -> usize {
    let t = (z - h.lo) / (h.hi - h.lo);
    ((t * BANDS as f64).floor().max(0.0) as usize).min(BANDS - 1)
}

fn band_colour(k: usize) -> RGBColor {
    colormap((k as f64 + 0.5) / BANDS as f64)
}

/// The heat map as one RGB raster of the plotting square, one sample per pixel, blitted as a
/// single image (an `<image>` with a PNG in SVGs, not thousands of rectangles).
fn draw_heat<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, h: &HeatMap) -> DrawResult<DB> {
    if h.nodes < 2
        || h.z.len() != h.nodes * h.nodes
        || h.hi.partial_cmp(&h.lo) != Some(std::cmp::Ordering::Greater)
    {
        return Ok(());
    }
    let side = SIDE as usize;
    let m1 = (h.nodes - 1) as f64;
    let mut buf = vec![255u8; side * side * 3];
    for r in 0..side {
        let v = 1.0 - (r as f64 + 0.5) / side as f64;
        for c in 0..side {
            let u = (c as f64 + 0.5) / side as f64;
            if let Some(z) = sample(h, u * m1, v * m1) {
                let col = band_colour(band(h, z));
                let o = (r * side + c) * 3;
                buf[o..o + 3].copy_from_slice(&[col.0, col.1, col.2]);
            }
        }
    }
    if let Some(image) =
        BitMapElement::with_owned_buffer((PLOT_X0, PLOT_Y0), (SIDE as u32, SIDE as u32), buf)
    {
        root.draw(&image)?;
    }
    Ok(())
}

/// Index of the optimum a particle ends at: its last point within 2 % of the window width of
/// `targets[k]` (`None`: at none of them).
pub fn destination(p: &Particle, targets: &[(f64, f64)], width: f64) -> Option<usize> {
    let end = p
        .points
        .iter()
        .rev()
        .find(|q| q.0.is_finite() && q.1.is_finite())?;
    targets
        .iter()
        .enumerate()
        .map(|(k, t)| (k, ((end.0 - t.0).powi(2) + (end.1 - t.1).powi(2)).sqrt()))
        .filter(|(_, d)| *d <= 0.02 * width)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

/// [`TO_TARGET`], [`TO_SWAP`] or [`TO_NEITHER`] by [`destination`].
fn destination_colour(p: &Particle, targets: &[(f64, f64)], width: f64) -> RGBColor {
    match destination(p, targets, width) {
        Some(0) => TO_TARGET,
        Some(_) => TO_SWAP,
        None => TO_NEITHER,
    }
}

fn draw_particle<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    p: &Particle,
    at_time: Option<f64>,
    colour: RGBColor,
) -> DrawResult<DB> {
    let path = path_until(p, at_time);
    // Clip segment by segment; contiguous visible segments form runs (for the halo).
    let mut runs: Vec<Vec<((f64, f64), f64)>> = Vec::new();
    let mut open = false;
    for w in path.windows(2) {
        let ((p0, t0), (p1, t1)) = (w[0], w[1]);
        match clip_segment(p0, p1, f.a, f.b) {
            Some((c0, c1)) => {
                let starts_inside = c0 == p0;
                if !(open && starts_inside) {
                    runs.push(vec![(f.px(c0), t0)]);
                }
                if let Some(run) = runs.last_mut() {
                    run.push((f.px(c1), t1));
                }
                open = c1 == p1;
            }
            None => open = false,
        }
    }
    for run in &runs {
        let pts: Vec<(i32, i32)> = run.iter().map(|q| ipt(q.0)).collect();
        root.draw(&PathElement::new(pts, WHITE.mix(0.75).stroke_width(5)))?;
    }
    for run in &runs {
        let pts: Vec<(i32, i32)> = run.iter().map(|q| ipt(q.0)).collect();
        root.draw(&PathElement::new(pts, colour.stroke_width(2)))?;
        // Direction marks every CHEVRON_SPACING pixels of path.
        let mut next = 0.5 * CHEVRON_SPACING;
        let mut s = 0.0;
        for w in run.windows(2) {
            let (q0, q1) = (w[0].0, w[1].0);
            let len = ((q1.0 - q0.0).powi(2) + (q1.1 - q0.1).powi(2)).sqrt();
            if len <= 0.0 {
                continue;
            }
            let d = ((q1.0 - q0.0) / len, (q1.1 - q0.1) / len);
            while next <= s + len {
                let along = next - s;
                let tip = (q0.0 + along * d.0, q0.1 + along * d.1);
                let arm = |sgn: f64| {
                    let (c, si) = (0.5f64.cos(), sgn * 0.5f64.sin());
                    let back = (-(d.0 * c - d.1 * si), -(d.0 * si + d.1 * c));
                    ipt((tip.0 + 8.0 * back.0, tip.1 + 8.0 * back.1))
                };
                let tip2 = (tip.0 + 2.0 * d.0, tip.1 + 2.0 * d.1);
                root.draw(&PathElement::new(
                    vec![arm(1.0), ipt(tip2), arm(-1.0)],
                    colour.stroke_width(2),
                ))?;
                next += CHEVRON_SPACING;
            }
            s += len;
        }
    }
    // Start: hollow circle; in an animation frame also the current position.
    if let Some(&(s0, _)) = path.first()
        && f.inside(s0)
    {
        let c = f.ipx(s0);
        root.draw(&Circle::new(c, 4, WHITE.filled()))?;
        root.draw(&Circle::new(c, 4, colour.stroke_width(2)))?;
    }
    if let (Some(_), Some(&(q, _))) = (at_time, path.last())
        && f.inside(q)
    {
        let c = f.ipx(q);
        root.draw(&Circle::new(c, 6, colour.filled()))?;
        root.draw(&Circle::new(c, 6, BLACK.stroke_width(1)))?;
    }
    Ok(())
}

/// Unit pixel direction of the data vector −g (y flipped), if g ≠ 0.
fn descent_px(g: (f64, f64)) -> Option<(f64, f64)> {
    let n = (g.0 * g.0 + g.1 * g.1).sqrt();
    (n > 0.0 && n.is_finite()).then(|| (-g.0 / n, g.1 / n))
}

fn draw_probes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    probes: &[Probe],
) -> DrawResult<DB> {
    // Arrow geometry first (every probe), so labels can avoid every arrow.
    struct Geo {
        c: (f64, f64),
        dirs: Vec<((f64, f64), RGBColor)>,
        len: f64,
    }
    let geos: Vec<Geo> = probes
        .iter()
        .map(|p| {
            let c = f.px(p.at);
            let dirs: Vec<((f64, f64), RGBColor)> = if p.is_stationary() {
                Vec::new()
            } else {
                [(p.gradient, EUCLID_RED), (p.natural, NATURAL_CYAN)]
                    .into_iter()
                    .filter_map(|(g, col)| descent_px(g).map(|d| (d, col)))
                    .collect()
            };
            // Same display length for both, shortened if one would leave the plot.
            let mut len = ARROW_PX;
            for (d, _) in &dirs {
                while len > 12.0 && !f.inside_px((c.0 + len * d.0, c.1 + len * d.1)) {
                    len -= 2.0;
                }
            }
            Geo { c, dirs, len }
        })
        .collect();
    for g in &geos {
        for (d, col) in &g.dirs {
            arrow(root, g.c, *d, g.len, *col)?;
        }
        root.draw(&Circle::new(ipt(g.c), 5, BLACK.filled()))?;
        root.draw(&Circle::new(ipt(g.c), 5, WHITE.stroke_width(1)))?;
        if g.dirs.is_empty() {
            root.draw(&Circle::new(ipt(g.c), 9, BLACK.stroke_width(1)))?;
        }
    }
    // Angle labels.
    let style = TextStyle::from((FAMILY, 17).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let segments: Vec<((f64, f64), (f64, f64))> = geos
        .iter()
        .flat_map(|g| {
            g.dirs
                .iter()
                .map(move |(d, _)| (g.c, (g.c.0 + g.len * d.0, g.c.1 + g.len * d.1)))
        })
        .collect();
    for (p, g) in probes.iter().zip(&geos) {
        let text = if p.is_stationary() {
            "∇L ≈ 0 (stationary)".to_string()
        } else {
            format!("Δθ = {:.1}°", p.angle_deg)
        };
        let (w, h) = root.estimate_text_size(&text, &style)?;
        let (hw, hh) = (f64::from(w) / 2.0 + 6.0, f64::from(h) / 2.0 + 4.0);
        let hits = |cx: f64, cy: f64| {
            segments.iter().any(|&(s, e)| {
                (0..=20).any(|k| {
                    let u = f64::from(k) / 20.0;
                    let (x, y) = (s.0 + u * (e.0 - s.0), s.1 + u * (e.1 - s.1));
                    (x - cx).abs() <= hw + 4.0 && (y - cy).abs() <= hh + 4.0
                })
            })
        };
        let mut best: Option<((f64, f64), f64)> = None;
        'radius: for r in [40.0, 56.0, 74.0, 96.0, 120.0] {
            for k in 0..12 {
                // Start straight up, then alternate around the circle.
                let ang = std::f64::consts::FRAC_PI_2 + f64::from(k) * std::f64::consts::PI / 6.0;
                let dir = (ang.cos(), -ang.sin());
                let centre = (
                    g.c.0 + (r + hw * dir.0.abs()) * dir.0,
                    g.c.1 + (r * 0.6 + hh) * dir.1,
                );
                let fits = f.inside_px((centre.0 - hw, centre.1 - hh))
                    && f.inside_px((centre.0 + hw, centre.1 + hh));
                if !fits || hits(centre.0, centre.1) {
                    continue;
                }
                let sep = g
                    .dirs
                    .iter()
                    .map(|(d, _)| (d.0 * dir.0 + d.1 * dir.1).clamp(-1.0, 1.0).acos())
                    .fold(std::f64::consts::PI, f64::min);
                if best.is_none_or(|b| sep > b.1 + 1e-9) {
                    best = Some((centre, sep));
                }
            }
            if best.is_some() {
                break 'radius;
            }
        }
        let centre = best.map(|b| b.0).unwrap_or((g.c.0, g.c.1 - 40.0));
        let (x0, y0) = ipt((centre.0 - hw, centre.1 - hh));
        let (x1, y1) = ipt((centre.0 + hw, centre.1 + hh));
        root.draw(&Rectangle::new(
            [(x0, y0), (x1, y1)],
            WHITE.mix(0.88).filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(x0, y0), (x1, y1)],
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        root.draw(&Text::new(text, ipt(centre), style.clone()))?;
    }
    Ok(())
}

/// The legend in the right panel; returns its bottom edge (pixels).
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &ManifoldFigure,
) -> std::result::Result<i32, DrawingAreaErrorKind<DB::ErrorType>> {
    #[derive(Clone, Copy)]
    enum Glyph {
        Ellipse,
        Clipped,
        Singular,
        Target,
        Swap,
        Red,
        Cyan,
        Angle,
        Stationary,
        Path(RGBColor),
        Start,
    }
    let mut entries: Vec<(Glyph, &str)> = vec![(Glyph::Ellipse, "Fisher ellipse δθᵀI(θ₀)δθ = ε")];
    if fig.ellipses.iter().any(Ellipse::is_clipped) {
        entries.push((Glyph::Clipped, "long axis clipped to its cell"));
    }
    entries.push((Glyph::Singular, "singular line μ₁ = μ₂"));
    if !fig.targets.is_empty() {
        entries.push((Glyph::Target, "target θ*"));
    }
    if fig.targets.len() > 1 {
        entries.push((Glyph::Swap, "label swap of θ*"));
    }
    if !fig.probes.is_empty() {
        entries.push((Glyph::Red, "−∇L (Euclidean)"));
        entries.push((Glyph::Cyan, "−I⁻¹∇L (natural)"));
        entries.push((Glyph::Angle, "angle between the arrows"));
    }
    if fig.probes.iter().any(Probe::is_stationary) {
        entries.push((Glyph::Stationary, "stationary probe: ∇L ≈ 0, no arrows"));
    }
    let width = fig.range.1 - fig.range.0;
    let ends: Vec<Option<usize>> = fig
        .particles
        .iter()
        .map(|p| destination(p, &fig.targets, width))
        .collect();
    if ends.contains(&Some(0)) {
        entries.push((Glyph::Path(TO_TARGET), "natural flow ending at θ*"));
    }
    if ends.iter().any(|e| e.is_some_and(|k| k > 0)) {
        entries.push((Glyph::Path(TO_SWAP), "natural flow ending at the swap"));
    }
    if ends.contains(&None) {
        entries.push((Glyph::Path(TO_NEITHER), "natural flow not at an optimum"));
    }
    if !fig.particles.is_empty() {
        entries.push((Glyph::Start, "particle start"));
    }
    let style = TextStyle::from((FAMILY, 15).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut text_w = 0;
    for (_, l) in &entries {
        text_w = text_w.max(root.estimate_text_size(l, &style)?.0 as i32);
    }
    const ROW: i32 = 25;
    const GLYPH: i32 = 40;
    let (x0, y0) = (PANEL_X0, PLOT_Y0);
    let width = 10 + GLYPH + 8 + text_w + 12;
    let height = 10 + ROW * entries.len() as i32 + 4;
    root.draw(&Rectangle::new(
        [(x0, y0), (x0 + width, y0 + height)],
        WHITE.filled(),
    ))?;
    root.draw(&Rectangle::new(
        [(x0, y0), (x0 + width, y0 + height)],
        BLACK.mix(0.5).stroke_width(1),
    ))?;
    for (k, (glyph, label)) in entries.iter().enumerate() {
        let y = y0 + 10 + ROW * k as i32 + ROW / 2;
        let gx = x0 + 10;
        let gc = (gx + GLYPH / 2, y);
        match glyph {
            Glyph::Ellipse | Glyph::Clipped => {
                let clipped = matches!(glyph, Glyph::Clipped);
                let (rx, ry) = if clipped { (16.0, 5.0) } else { (13.0, 8.0) };
                let e = Ellipse {
                    center: (0.0, 0.0),
                    axes: [(rx, 0.0), (0.0, ry)],
                    clipped: [clipped, false],
                };
                let outline: Vec<(i32, i32)> = e
                    .outline()
                    .into_iter()
                    .map(|p| ipt((f64::from(gc.0) + p.0, f64::from(gc.1) + p.1)))
                    .collect();
                if clipped {
                    root.draw(&PathElement::new(outline, CLIPPED.stroke_width(2)))?;
                    for sx in [-16, 16] {
                        root.draw(&PathElement::new(
                            vec![(gc.0 + sx, gc.1 - 8), (gc.0 + sx, gc.1 + 8)],
                            CLIPPED.stroke_width(2),
                        ))?;
                    }
                } else {
                    root.draw(&PathElement::new(outline, ELLIPSE.stroke_width(1)))?;
                }
            }
            Glyph::Singular => {
                for (s, e) in [(0, 10), (17, 27), (34, 38)] {
                    root.draw(&PathElement::new(
                        vec![(gx + s, y), (gx + e, y)],
                        SINGULAR_GREY.stroke_width(2),
                    ))?;
                }
            }
            Glyph::Target => draw_target(root, gc, 11.0)?,
            Glyph::Swap => draw_swap(root, gc, 7)?,
            Glyph::Red | Glyph::Cyan => {
                let col = if matches!(glyph, Glyph::Red) {
                    EUCLID_RED
                } else {
                    NATURAL_CYAN
                };
                arrow(
                    root,
                    (f64::from(gx + 2), f64::from(y)),
                    (1.0, 0.0),
                    34.0,
                    col,
                )?;
            }
            Glyph::Angle => {
                let s = TextStyle::from((FAMILY, 15).into_font())
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new("Δθ", gc, s))?;
            }
            Glyph::Path(colour) => {
                root.draw(&PathElement::new(
                    vec![(gx, y), (gx + GLYPH, y)],
                    colour.stroke_width(2),
                ))?;
                root.draw(&PathElement::new(
                    vec![(gc.0 - 5, y - 6), (gc.0 + 3, y), (gc.0 - 5, y + 6)],
                    colour.stroke_width(2),
                ))?;
            }
            Glyph::Start => {
                root.draw(&Circle::new(gc, 4, WHITE.filled()))?;
                root.draw(&Circle::new(gc, 4, BLACK.stroke_width(2)))?;
            }
            Glyph::Stationary => {
                root.draw(&Circle::new(gc, 5, BLACK.filled()))?;
                root.draw(&Circle::new(gc, 9, BLACK.stroke_width(1)))?;
            }
        }
        root.draw(&Text::new(
            label.to_string(),
            (gx + GLYPH + 8, y),
            style.clone(),
        ))?;
    }
    Ok(y0 + height)
}

/// The heat map's vertical colour bar below the legend (particles are coloured by where they
/// end, see the legend; an animation frame stamps its time).
fn draw_colour_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &ManifoldFigure,
    top: i32,
) -> DrawResult<DB> {
    let bottom = PLOT_Y0 + SIDE;
    if bottom - top < 120 {
        return Ok(());
    }
    let title_style = TextStyle::from((FAMILY, 16).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    let label_style = TextStyle::from((FAMILY, 14).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let bar_top = top + 8;
    let bar = |x: i32,
               title: &str,
               lo: f64,
               hi: f64,
               top_prefix: &str,
               colour: &dyn Fn(f64) -> RGBColor|
     -> DrawResult<DB> {
        root.draw(&Text::new(
            title.to_string(),
            (x, top - 4),
            title_style.clone(),
        ))?;
        let h = bottom - bar_top;
        const STEPS: i32 = 64;
        for k in 0..STEPS {
            let (y0, y1) = (bottom - k * h / STEPS, bottom - (k + 1) * h / STEPS);
            root.draw(&Rectangle::new(
                [(x, y1), (x + 22, y0)],
                colour((f64::from(k) + 0.5) / f64::from(STEPS)).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(x, bar_top), (x + 22, bottom)],
            BLACK.stroke_width(1),
        ))?;
        for v in ticks(lo, hi) {
            let y = bottom - ((v - lo) / (hi - lo) * f64::from(h)).round() as i32;
            root.draw(&PathElement::new(
                vec![(x + 22, y), (x + 27, y)],
                BLACK.stroke_width(1),
            ))?;
            let prefix = if (v - hi).abs() < 1e-12 * hi.abs().max(1.0) {
                top_prefix
            } else {
                ""
            };
            root.draw(&Text::new(
                format!("{prefix}{}", tick_label(v)),
                (x + 30, y),
                label_style.clone(),
            ))?;
        }
        Ok(())
    };
    let x = PANEL_X0 + 4;
    if let Some(h) = &fig.heat {
        let (title, prefix) = match h.kind {
            HeatKind::Kappa => ("log₁₀ κ(I)", "≥ "),
            HeatKind::Angle => ("angle (deg)", ""),
        };
        bar(x, title, h.lo, h.hi, prefix, &|u| {
            band_colour(((u * BANDS as f64) as usize).min(BANDS - 1))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range() {
        assert_eq!(ticks(0.0, 3.5), vec![0.0, 1.0, 2.0, 3.0, 3.5]);
        assert_eq!(ticks(0.0, 90.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 90.0]);
        let t = ticks(0.0, 4.0);
        assert_eq!(t.first(), Some(&0.0));
        assert_eq!(t.last(), Some(&4.0));
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(-4.0), "−4");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(-1e-12), "0");
    }

    #[test]
    fn outline_is_closed_and_on_the_ellipse() {
        let e = Ellipse {
            center: (1.0, 2.0),
            axes: [(0.6, 0.8), (-0.4, 0.3)],
            clipped: [false, false],
        };
        let o = e.outline();
        assert_eq!(o.len(), ELLIPSE_POINTS);
        assert_eq!(o.first(), o.last());
        // In the axis frame every point satisfies (s/|u|)² + (t/|v|)² = 1.
        for p in o {
            let d = (p.0 - 1.0, p.1 - 2.0);
            let s = (d.0 * 0.6 + d.1 * 0.8) / 1.0;
            let t = (d.0 * -0.4 + d.1 * 0.3) / 0.5;
            assert!((s * s + t * t / 0.25 - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn path_until_interpolates() {
        let p = Particle {
            points: vec![(0.0, 0.0), (2.0, 0.0), (2.0, 2.0)],
            times: vec![0.0, 1.0, 2.0],
        };
        let q = path_until(&p, Some(1.5));
        assert_eq!(q.len(), 3);
        assert_eq!(q[2], ((2.0, 1.0), 1.5));
        assert_eq!(path_until(&p, None).len(), 3);
        assert_eq!(path_until(&p, Some(0.0)).len(), 1);
    }

    #[test]
    fn time_colours_are_the_stops() {
        assert_eq!(time_colour(0.0), RGBColor(27, 42, 128));
        assert_eq!(time_colour(1.0), RGBColor(240, 138, 14));
        assert_eq!(time_colour(f64::NAN), time_colour(0.0));
    }

    #[test]
    fn segment_clipping() {
        assert_eq!(
            clip_segment((0.0, 0.0), (2.0, 0.0), -1.0, 1.0),
            Some(((0.0, 0.0), (1.0, 0.0)))
        );
        assert_eq!(clip_segment((2.0, 2.0), (3.0, 3.0), -1.0, 1.0), None);
    }
}
