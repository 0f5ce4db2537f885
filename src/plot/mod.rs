//! Figures: the (μ₁, μ₂) parameter plane with flow trajectories, and loss-versus-time curves.
//!
//! Every figure is written atomically (temporary sibling + rename), in SVG or PNG chosen from
//! the file extension, with the bundled DejaVu Sans font (no system fonts), and the output is
//! byte-identical for identical inputs.

pub mod animation;
pub mod font;
pub mod grid;
pub mod loss;
pub mod manifold;
pub mod plane;
pub mod raster;
pub mod vi;

pub use loss::{LossFigure, SeriesStyle, draw_loss_on, loss};

pub use plane::{PlaneFigure, draw_plane_on, plane};

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// Default size in pixels of the parameter-plane figure (both formats).
pub const PLANE_SIZE: (u32, u32) = (1000, 800);
/// Default size in pixels of the loss figure (both formats).
pub const LOSS_SIZE: (u32, u32) = (1000, 600);

/// Output format chosen from the file extension (case-insensitive "svg" or "png"); anything else is Error::Plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics (text stays text).
    Svg,
    /// 8-bit RGB PNG.
    Png,
}

impl Format {
    /// The format named by the extension of `path`.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        match ext.to_ascii_lowercase().as_str() {
            "svg" => Ok(Format::Svg),
            "png" => Ok(Format::Png),
            "" => Err(Error::Plot {
                path: path.to_path_buf(),
                message: "no file extension: use .svg or .png".into(),
            }),
            _ => Err(Error::Plot {
                path: path.to_path_buf(),
                message: format!("unsupported extension '{ext}': use .svg or .png"),
            }),
        }
    }
}

/// One polyline with a legend label.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text; an empty label gives no legend entry.
    pub label: String,
    /// The points in data coordinates; non-finite points are skipped when drawing.
    pub points: Vec<(f64, f64)>,
}

/// Colour of the singular line μ₁ = μ₂ in every figure.
pub const SINGULAR_GREY: RGBColor = RGBColor(0x40, 0x40, 0x40);

/// Distinct colours: matplotlib's tab10 for `i < 10`, then tab20's light partners, then hues
/// spaced by the golden angle (no colour repeats).
pub fn palette(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (0x1f, 0x77, 0xb4),
        (0xff, 0x7f, 0x0e),
        (0x2c, 0xa0, 0x2c),
        (0xd6, 0x27, 0x28),
        (0x94, 0x67, 0xbd),
        (0x8c, 0x56, 0x4b),
        (0xe3, 0x77, 0xc2),
        (0x7f, 0x7f, 0x7f),
        (0xbc, 0xbd, 0x22),
        (0x17, 0xbe, 0xcf),
    ];
    const TAB20_LIGHT: [(u8, u8, u8); 10] = [
        (0xae, 0xc7, 0xe8),
        (0xff, 0xbb, 0x78),
        (0x98, 0xdf, 0x8a),
        (0xff, 0x98, 0x96),
        (0xc5, 0xb0, 0xd5),
        (0xc4, 0x9c, 0x94),
        (0xf7, 0xb6, 0xd2),
        (0xc7, 0xc7, 0xc7),
        (0xdb, 0xdb, 0x8d),
        (0x9e, 0xda, 0xe5),
    ];
    let (r, g, b) = match i {
        0..10 => TAB10[i],
        10..20 => TAB20_LIGHT[i - 10],
        _ => {
            // HSV with the golden-angle hue, alternating value/saturation.
            let h = ((i - 20) as f64 * 137.507_764).rem_euclid(360.0) / 60.0;
            let (s, v) = if i.is_multiple_of(2) {
                (0.75, 0.70)
            } else {
                (0.55, 0.90)
            };
            let c = v * s;
            let x = c * (1.0 - (h.rem_euclid(2.0) - 1.0).abs());
            let (r, g, b) = match h as u32 {
                0 => (c, x, 0.0),
                1 => (x, c, 0.0),
                2 => (0.0, c, x),
                3 => (0.0, x, c),
                4 => (x, 0.0, c),
                _ => (c, 0.0, x),
            };
            let m = v - c;
            let q = |u: f64| ((u + m) * 255.0).round().clamp(0.0, 255.0) as u8;
            (q(r), q(g), q(b))
        }
    };
    RGBColor(r, g, b)
}

/// Line pattern of a curve (dash and gap lengths in pixels at stroke width 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dash {
    /// Continuous.
    #[default]
    Solid,
    /// 9 on, 5 off.
    Dashed,
    /// 2 on, 4 off.
    Dotted,
    /// 18 on, 5 off, 3 on, 5 off.
    DashDot,
}

impl Dash {
    /// The k-th pattern (cycling through the four).
    pub fn nth(k: usize) -> Dash {
        [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::DashDot][k % 4]
    }

    /// On/off lengths in pixels; empty for solid.
    fn pattern(self) -> &'static [f64] {
        match self {
            Dash::Solid => &[],
            Dash::Dashed => &[9.0, 5.0],
            Dash::Dotted => &[2.0, 4.0],
            Dash::DashDot => &[18.0, 5.0, 3.0, 5.0],
        }
    }
}

/// The sample drawn in front of a legend label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegendGlyph {
    /// A line in colour `palette(k)` (black for `None`) with a pattern.
    Line(Option<usize>, Dash),
    /// A filled band of this colour.
    Band(RGBColor),
    /// A line of any colour with a pattern.
    Rgb(RGBColor, Dash),
    /// A marker of the parameter plane.
    Marker(Marker),
    /// No sample (e.g. "… and 5 more").
    Blank,
}

/// The markers of the parameter plane, for legends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// Hollow circle: a trajectory's start.
    Start,
    /// Filled dot: a trajectory's end.
    End,
    /// Black star: the target θ*.
    Target,
    /// White diamond: the label swap of θ*.
    Swap,
}

/// One legend row.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    /// Text.
    pub label: String,
    /// Sample.
    pub glyph: LegendGlyph,
}

const LEGEND_GLYPH_W: i32 = 34;
const LEGEND_PAD: i32 = 9;
const LEGEND_ROW: i32 = 22;

/// Width and height in pixels of the legend box for `entries`.
pub(crate) fn legend_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    style: &TextStyle<'_>,
) -> std::result::Result<(i32, i32), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut w = 0;
    for e in entries {
        w = w.max(area.estimate_text_size(&e.label, style)?.0 as i32);
    }
    let h = LEGEND_ROW * entries.len() as i32;
    Ok((w + LEGEND_GLYPH_W + 2 * LEGEND_PAD, h + 2 * LEGEND_PAD - 4))
}

/// Draw a legend box of size `dim` with its upper left corner at `at` (pixels of `area`).
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    entries: &[LegendEntry],
    style: &TextStyle<'_>,
    dim: (i32, i32),
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, y) = at;
    area.draw(&Rectangle::new(
        [(x, y), (x + dim.0, y + dim.1)],
        WHITE.mix(0.9).filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x, y), (x + dim.0, y + dim.1)],
        BLACK.mix(0.5).stroke_width(1),
    ))?;
    let text = style.pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let cy = y + LEGEND_PAD + LEGEND_ROW / 2 + LEGEND_ROW * i as i32 - 2;
        let gx = x + LEGEND_PAD;
        match e.glyph {
            LegendGlyph::Line(colour, dash) => {
                let c = colour.map(palette).unwrap_or(BLACK);
                stroke_polyline(area, &[(gx, cy), (gx + 26, cy)], c, dash)?;
            }
            LegendGlyph::Rgb(c, dash) => {
                stroke_polyline(area, &[(gx, cy), (gx + 26, cy)], c, dash)?;
            }
            LegendGlyph::Marker(m) => plane::draw_marker(area, m, (gx + 13, cy))?,
            LegendGlyph::Blank => {}
            LegendGlyph::Band(c) => {
                area.draw(&Rectangle::new(
                    [(gx, cy - 6), (gx + 26, cy + 6)],
                    c.mix(0.45).filled(),
                ))?;
                area.draw(&PathElement::new(
                    vec![(gx, cy - 6), (gx + 26, cy - 6)],
                    c.stroke_width(1),
                ))?;
            }
        }
        area.draw_text(&e.label, &text, (x + LEGEND_PAD + LEGEND_GLYPH_W, cy))?;
    }
    Ok(())
}

/// The on-pieces of a polyline (pixels) under a dash pattern measured along its length.
pub(crate) fn dash_pieces(px: &[(i32, i32)], dash: Dash) -> Vec<Vec<(i32, i32)>> {
    let pattern = dash.pattern();
    if pattern.is_empty() || px.len() < 2 {
        return vec![px.to_vec()];
    }
    let mut pieces = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let (mut k, mut left) = (0usize, pattern[0]);
    let on = |k: usize| k.is_multiple_of(2);
    let to_i = |v: &[(f64, f64)]| -> Vec<(i32, i32)> {
        v.iter()
            .map(|p| (p.0.round() as i32, p.1.round() as i32))
            .collect()
    };
    current.push((f64::from(px[0].0), f64::from(px[0].1)));
    for w in px.windows(2) {
        let (a, b) = (
            (f64::from(w[0].0), f64::from(w[0].1)),
            (f64::from(w[1].0), f64::from(w[1].1)),
        );
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let mut pos = 0.0;
        while len - pos > left {
            pos += left;
            let p = (a.0 + (b.0 - a.0) * pos / len, a.1 + (b.1 - a.1) * pos / len);
            if on(k) {
                current.push(p);
                pieces.push(to_i(&current));
                current.clear();
            } else {
                current.push(p);
            }
            k = (k + 1) % pattern.len();
            left = pattern[k];
        }
        left -= len - pos;
        if on(k) {
            current.push(b);
        }
    }
    if on(k) && current.len() >= 2 {
        pieces.push(to_i(&current));
    }
    pieces
}

/// Stroke a polyline (pixels of `area`) 2 px wide in `colour` with pattern `dash`.
pub(crate) fn stroke_polyline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    px: &[(i32, i32)],
    colour: RGBColor,
    dash: Dash,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for piece in dash_pieces(px, dash) {
        if piece.len() >= 2 {
            area.draw(&PathElement::new(piece, colour.stroke_width(2)))?;
        }
    }
    Ok(())
}

/// A finite, increasing range of positive width: non-finite ends fall back to `fallback`,
/// reversed ends are swapped and a zero-width range is widened symmetrically.
pub(crate) fn sane_range((a, b): (f64, f64), fallback: (f64, f64)) -> (f64, f64) {
    let (mut lo, mut hi) = if a.is_finite() && b.is_finite() {
        (a.min(b), a.max(b))
    } else {
        fallback
    };
    let scale = lo.abs().max(hi.abs()).max(1e-300);
    if hi - lo <= 1e-12 * scale || !(hi - lo).is_finite() {
        let mid = 0.5 * (lo + hi);
        let half = if mid.is_finite() && mid != 0.0 {
            0.05 * mid.abs()
        } else {
            0.5
        };
        lo = mid - half;
        hi = mid + half;
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return fallback;
        }
    }
    (lo, hi)
}

/// Draw `title` centred at the top of `root` and return the area below it
/// (all of `root` when the title is empty).
pub(crate) fn title_area<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    if title.is_empty() {
        return Ok(root.clone());
    }
    let style = TextStyle::from((font::FAMILY, 24).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let (_, text_h) = root.estimate_text_size(title, &style)?;
    let (w, _) = root.dim_in_pixel();
    root.draw_text(title, &style, ((w / 2) as i32, 10))?;
    Ok(root.margin(text_h as i32 + 18, 0, 0, 0))
}

/// Axis tick label for a linear axis spanning `span`: enough decimals for about ten ticks,
/// a real minus sign, and no negative zero.
pub(crate) fn tick_label(v: f64, span: f64) -> String {
    let step = (span.abs() / 9.0).max(1e-300);
    let decimals = (-step.log10()).ceil().clamp(0.0, 12.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s.replace('-', "−")
    }
}

/// Map a drawing error to [`Error::Plot`] for `path`.
fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The temporary sibling used for a PNG: it must end in `.png` because the bitmap
/// encoder picks the format from the extension.
fn png_temp_path(path: &Path) -> PathBuf {
    let mut tmp = crate::export::temp_path(path).into_os_string();
    tmp.push(".png");
    PathBuf::from(tmp)
}

/// Draw a figure with `draw_svg`/`draw_png` (the same generic drawing function instantiated for
/// each backend) into `path`, atomically. PNGs are drawn at 2× and box-filtered down
/// ([`raster::Supersample`]): anti-aliased strokes and glyphs.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
    draw_png: impl FnOnce(
        &DrawingArea<raster::Supersample<'_>, Shift>,
    ) -> std::result::Result<(), String>,
) -> Result<()> {
    let format = Format::from_path(path)?;
    if !font::register() {
        return Err(plot_err(path, "the bundled font could not be loaded"));
    }
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw_svg(&root).map_err(|e| plot_err(path, e))?;
                root.present().map_err(|e| plot_err(path, e))?;
            }
            // plotters writes the non-standard `data:png` for embedded rasters.
            let svg = svg.replace("href=\"data:png;base64,", "href=\"data:image/png;base64,");
            crate::export::write_atomic(path, font::embed_in_svg(&svg).as_bytes())
        }
        Format::Png => {
            let image = rasterize(size, draw_png).map_err(|e| plot_err(path, e))?;
            write_png(path, size, &image)
        }
    }
}

/// Draw at 2× with `draw` and return the box-filtered RGB image of `size`.
pub(crate) fn rasterize(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<raster::Supersample<'_>, Shift>) -> std::result::Result<(), String>,
) -> std::result::Result<Vec<u8>, String> {
    let mut hires = raster::hires_buffer(size).ok_or("image size overflows")?;
    {
        let root = raster::Supersample::new(&mut hires, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(raster::downsample(&hires, size))
}

/// Write an RGB image as a PNG, atomically.
pub(crate) fn write_png(path: &Path, size: (u32, u32), image: &[u8]) -> Result<()> {
    let tmp = png_temp_path(path);
    // Surface an unwritable directory as an I/O error before encoding anything.
    std::fs::File::create(&tmp).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let result = {
        let mut backend = BitMapBackend::new(&tmp, size);
        backend
            .blit_bitmap((0, 0), size, image)
            .and_then(|()| backend.present())
            .map_err(|e| plot_err(path, e))
        // `backend` is dropped here, before the temporary file is removed or renamed.
    };
    match result {
        Ok(()) => crate::export::commit(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Where to put a legend box of size `dim` (pixels) inside a plotting area of size `area`:
/// the corner whose box covers the fewest of `points` (pixel coordinates relative to the
/// plotting area); ties go to upper right, upper left, lower right, lower left.
pub(crate) fn legend_corner(
    dim: (i32, i32),
    area: (u32, u32),
    points: &[(i32, i32)],
) -> (i32, i32) {
    legend_corner_count(dim, area, points).0
}

/// The points of a pixel polyline every ~4 px along its segments (so that a legend placed
/// by [`legend_corner`] avoids the lines between sparse points too).
pub(crate) fn densify(px: &[(i32, i32)]) -> Vec<(i32, i32)> {
    let mut out = Vec::with_capacity(px.len());
    if let [p] = px {
        out.push(*p);
    }
    for w in px.windows(2) {
        let (a, b) = (
            (f64::from(w[0].0), f64::from(w[0].1)),
            (f64::from(w[1].0), f64::from(w[1].1)),
        );
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let n = (len / 4.0).ceil().clamp(1.0, 4000.0) as usize;
        for k in 0..=n {
            let u = k as f64 / n as f64;
            out.push((
                (a.0 + u * (b.0 - a.0)).round() as i32,
                (a.1 + u * (b.1 - a.1)).round() as i32,
            ));
        }
    }
    out
}

/// [`legend_corner`] and how many of `points` its box covers.
pub(crate) fn legend_corner_count(
    dim: (i32, i32),
    area: (u32, u32),
    points: &[(i32, i32)],
) -> ((i32, i32), usize) {
    const PAD: i32 = 8;
    let (w, h) = dim;
    let (aw, ah) = (area.0 as i32, area.1 as i32);
    let right = (aw - w - PAD).max(0);
    let bottom = (ah - h - PAD).max(0);
    let corners = [(right, PAD), (PAD, PAD), (right, bottom), (PAD, bottom)];
    let mut best = corners[0];
    let mut best_count = usize::MAX;
    for c in corners {
        let (x0, y0, x1, y1) = (c.0 - 6, c.1 - 6, c.0 + w + 6, c.1 + h + 6);
        let count = points
            .iter()
            .filter(|p| p.0 >= x0 && p.0 <= x1 && p.1 >= y0 && p.1 <= y1)
            .count();
        if count < best_count {
            best = c;
            best_count = count;
        }
    }
    (best, best_count)
}

/// The error returned by the `draw_*_on` functions when the bundled font cannot be registered
/// (plotters has no public error variant for it; the file-level functions check the font first
/// and report it properly).
pub(crate) fn font_error<E: std::error::Error + Send + Sync>() -> DrawingAreaErrorKind<E> {
    DrawingAreaErrorKind::LayoutError
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.SVG")).unwrap(), Format::Svg);
        assert_eq!(
            Format::from_path(Path::new("a/b.png")).unwrap(),
            Format::Png
        );
        assert!(Format::from_path(Path::new("a.jpg")).is_err());
        assert!(Format::from_path(Path::new("a")).is_err());
    }

    #[test]
    fn ranges_are_sane() {
        assert_eq!(sane_range((0.0, 1.0), (-1.0, 1.0)), (0.0, 1.0));
        assert_eq!(sane_range((1.0, 0.0), (-1.0, 1.0)), (0.0, 1.0));
        assert_eq!(sane_range((f64::NAN, 0.0), (-1.0, 1.0)), (-1.0, 1.0));
        let (lo, hi) = sane_range((2.0, 2.0), (-1.0, 1.0));
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = sane_range((0.0, 0.0), (-1.0, 1.0));
        assert!(lo < 0.0 && hi > 0.0);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(-3.0, 8.0), "−3.0");
        assert_eq!(tick_label(-0.0, 8.0), "0.0");
        assert_eq!(tick_label(20.0, 100.0), "20");
        assert_eq!(tick_label(0.25, 0.5), "0.25");
    }

    #[test]
    fn dashes_follow_the_pattern_along_the_length() {
        // A 100 px line bent at 50 px: dashes of 9 on / 5 off continue across the bend.
        let line = [(0, 0), (50, 0), (50, 50)];
        let pieces = dash_pieces(&line, Dash::Dashed);
        let len = |p: &Vec<(i32, i32)>| {
            p.windows(2)
                .map(|w| f64::from((w[1].0 - w[0].0).abs() + (w[1].1 - w[0].1).abs()))
                .sum::<f64>()
        };
        // 100 / 14 = 7 full periods and 2 px of an eighth dash.
        assert_eq!(pieces.len(), 8, "{pieces:?}");
        for p in &pieces[..7] {
            assert!((len(p) - 9.0).abs() <= 1.0, "{p:?}");
        }
        // The dash across the bend keeps the corner.
        assert!(pieces.iter().any(|p| p.contains(&(50, 0)) && p.len() == 3));
        assert_eq!(dash_pieces(&line, Dash::Solid), vec![line.to_vec()]);
        let total: f64 = dash_pieces(&line, Dash::Dotted).iter().map(len).sum();
        assert!((total - 100.0 / 6.0 * 2.0).abs() < 3.0, "{total}");
    }

    #[test]
    fn palette_is_distinct() {
        for i in 0..10 {
            for j in 0..i {
                assert_ne!(palette(i), palette(j));
            }
        }
        let all: Vec<RGBColor> = (0..60).map(palette).collect();
        for i in 0..all.len() {
            for j in 0..i {
                assert_ne!(all[i], all[j], "palette({i}) = palette({j})");
            }
        }
    }
}
