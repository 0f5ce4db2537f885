//! Figures: the (μ₁, μ₂) parameter plane with flow trajectories, and loss-versus-time curves.
//!
//! Every figure is written atomically (temporary sibling + rename), in SVG or PNG chosen from
//! the file extension, with the bundled DejaVu Sans font (no system fonts), and the output is
//! byte-identical for identical inputs.

pub mod animation;
pub mod font;
pub mod loss;
pub mod manifold;
pub mod plane;

pub use loss::{LossFigure, draw_loss_on, loss};
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

/// Ten distinct colours (matplotlib's tab10), repeating for `i ≥ 10`.
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
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b)
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
/// each backend) into `path`, atomically.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
    draw_png: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
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
            crate::export::write_atomic(path, svg.as_bytes())
        }
        Format::Png => {
            let tmp = png_temp_path(path);
            // Surface an unwritable directory as an I/O error before drawing anything.
            std::fs::File::create(&tmp).map_err(|source| Error::Write {
                path: path.to_path_buf(),
                source,
            })?;
            let result = {
                let root = BitMapBackend::new(&tmp, size).into_drawing_area();
                draw_png(&root)
                    .and_then(|()| root.present().map_err(|e| e.to_string()))
                    .map_err(|e| plot_err(path, e))
                // `root` is dropped here, before the temporary file is removed or renamed.
            };
            match result {
                Ok(()) => crate::export::commit(&tmp, path),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            }
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
    best
}

/// Size in pixels of a legend with these labels, as plotters lays it out
/// (glyph area `glyph_w`, margin `margin`).
pub(crate) fn legend_dim<DB: DrawingBackend>(
    labels: &[&str],
    style: &TextStyle<'_>,
    glyph_w: i32,
    margin: i32,
) -> std::result::Result<(i32, i32), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut text = MultiLineText::<(i32, i32), &str>::new((0, 0), style.clone());
    for l in labels {
        text.push_line(*l);
    }
    let (w, h) = text
        .estimate_dimension()
        .map_err(|_| DrawingAreaErrorKind::LayoutError)?;
    Ok((w + glyph_w + 2 * margin, h + 2 * margin))
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
    fn palette_is_distinct() {
        for i in 0..10 {
            for j in 0..i {
                assert_ne!(palette(i), palette(j));
            }
        }
        assert_eq!(palette(3), palette(13));
    }
}
