//! Loss gap L − L* against time on a logarithmic axis.

use super::font::FAMILY;
use super::{LOSS_SIZE, Series, font, font_error, legend_corner, legend_dim, palette, sane_range};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Smallest value shown on the logarithmic axis; smaller values (including 0 and negatives,
/// which round-off produces near convergence) are drawn at this floor.
pub const FLOOR: f64 = 1e-16;

/// Everything drawn in a loss figure.
#[derive(Clone, Debug, Default)]
pub struct LossFigure {
    /// Figure title.
    pub title: String,
    /// Horizontal axis label, e.g. "t".
    pub x_label: String,
    /// Vertical axis label, e.g. "L − L*".
    pub y_label: String,
    /// (t, L − L*) curves in colours [`palette`]`(k)`. Values ≤ [`FLOOR`] (including ≤ 0 and −∞)
    /// are drawn at the floor; points with a NaN or +∞ value or a non-finite t are skipped.
    /// Series with an empty label get no legend entry.
    pub series: Vec<Series>,
}

/// Draw `fig` into `path` (`.svg` or `.png`, [`LOSS_SIZE`] pixels), atomically.
pub fn loss(path: &Path, fig: &LossFigure) -> Result<()> {
    super::render(
        path,
        LOSS_SIZE,
        |root| draw_loss_on(root, fig).map_err(|e| e.to_string()),
        |root| draw_loss_on(root, fig).map_err(|e| e.to_string()),
    )
}

/// The drawable points of a series: finite t, y clamped to [`FLOOR`], NaN and +∞ skipped.
fn clean(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|(t, y)| t.is_finite() && !y.is_nan() && *y != f64::INFINITY)
        .map(|&(t, y)| (t, y.max(FLOOR)))
        .collect()
}

/// Tick label for a logarithmic axis: "10⁻⁸" at powers of ten, "2·10⁻⁸" otherwise.
fn log_label(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let mut e = v.log10().floor();
    let mut m = v / 10f64.powf(e);
    if m >= 9.9995 {
        m /= 10.0;
        e += 1.0;
    }
    let sup: String = format!("{}", e as i64)
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect();
    if (m - 1.0).abs() < 1e-3 {
        format!("10{sup}")
    } else {
        let mant = format!("{m:.1}");
        let mant = mant.strip_suffix(".0").unwrap_or(&mant);
        format!("{mant}·10{sup}")
    }
}

/// Draw `fig` on any plotters drawing area (used for both file formats and in-memory buffers).
pub fn draw_loss_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &LossFigure,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if !font::register() {
        return Err(font_error());
    }
    root.fill(&WHITE)?;
    let body = super::title_area(root, &fig.title)?;

    let curves: Vec<Vec<(f64, f64)>> = fig.series.iter().map(|s| clean(&s.points)).collect();
    let all = || curves.iter().flatten();
    let (t_min, t_max) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    let xr = sane_range((t_min, t_max), (0.0, 1.0));
    let (y_min, y_max) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.1), b.max(p.1))
    });
    // Whole decades, at least one.
    let (y_lo, y_hi) = if y_min.is_finite() && y_max.is_finite() {
        // A little headroom so that curves at a decade (e.g. the floor) stay off the frame.
        let lo = (y_min.log10() - 0.02).floor();
        let hi = (y_max.log10() + 0.02).ceil().max(lo + 1.0).min(308.0);
        (10f64.powf(lo.min(hi - 1.0)), 10f64.powf(hi))
    } else {
        (1e-3, 1.0)
    };

    let mut chart = ChartBuilder::on(&body)
        .margin(14)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(84)
        .build_cartesian_2d(xr.0..xr.1, (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(fig.x_label.as_str())
        .y_desc(fig.y_label.as_str())
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 19))
        .bold_line_style(BLACK.mix(0.13))
        .light_line_style(BLACK.mix(0.03))
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| super::tick_label(*v, xr.1 - xr.0))
        .y_label_formatter(&|v| log_label(*v))
        .draw()?;

    let plot_px = chart.plotting_area().strip_coord_spec();
    let (pw, ph) = plot_px.dim_in_pixel();
    let base = plot_px.get_base_pixel();
    let mut pixel_points = Vec::new();
    for (k, pts) in curves.iter().enumerate() {
        let colour = palette(k);
        match pts.len() {
            0 => {}
            1 => {
                chart.draw_series(std::iter::once(Circle::new(pts[0], 4, colour.filled())))?;
            }
            _ => {
                chart.draw_series(std::iter::once(PathElement::new(
                    pts.clone(),
                    colour.stroke_width(2),
                )))?;
            }
        }
        for p in pts {
            let b = chart.backend_coord(p);
            pixel_points.push((b.0 - base.0, b.1 - base.1));
        }
    }
    plot_px.draw(&Rectangle::new(
        [(0, 0), (pw as i32 - 1, ph as i32 - 1)],
        BLACK.stroke_width(1),
    ))?;

    let labelled: Vec<(usize, &str)> = fig
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.label.is_empty())
        .map(|(k, s)| (k, s.label.as_str()))
        .collect();
    if !labelled.is_empty() {
        let legend_font: TextStyle = (FAMILY, 16).into_font().into();
        const GLYPH_W: i32 = 30;
        const LEGEND_MARGIN: i32 = 9;
        let labels: Vec<&str> = labelled.iter().map(|l| l.1).collect();
        let dim = legend_dim::<DB>(&labels, &legend_font, GLYPH_W, LEGEND_MARGIN)?;
        let (lx, ly) = legend_corner(dim, (pw, ph), &pixel_points);
        for (k, label) in labelled {
            let colour = palette(k);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 1), (x + 22, y + 2)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::Coordinate(lx, ly))
            .legend_area_size(GLYPH_W)
            .margin(LEGEND_MARGIN)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .label_font(legend_font)
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_labels() {
        assert_eq!(log_label(1e-8), "10⁻⁸");
        assert_eq!(log_label(1.0), "10⁰");
        assert_eq!(log_label(100.0), "10²");
        assert_eq!(log_label(2e-5), "2·10⁻⁵");
        assert_eq!(log_label(0.0), "");
    }

    #[test]
    fn cleaning_clamps_and_skips() {
        let c = clean(&[
            (0.0, 1.0),
            (1.0, 0.0),
            (2.0, -3.0),
            (3.0, f64::NAN),
            (4.0, f64::INFINITY),
            (f64::NAN, 1.0),
            (5.0, f64::NEG_INFINITY),
        ]);
        assert_eq!(
            c,
            vec![(0.0, 1.0), (1.0, FLOOR), (2.0, FLOOR), (5.0, FLOOR)]
        );
    }
}
