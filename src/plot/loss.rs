//! Curves against time: the loss gap L − L* (log axis, with the evaluation's noise floor as a
//! band), and the other per-step quantities of `compare` and `run --quality` (step size, κ,
//! angles on a linear axis).
//!
//! Nothing is clamped: a gap at or below the noise floor is not a measurement, so a curve stops
//! where it enters the band (at the interpolated crossing); on a log axis without a band a curve
//! stops before its first value ≤ 0. Every axis range is finite and at most [`MAX_DECADES`]
//! decades, so plotters' key-point search always terminates.

use super::font::FAMILY;
use super::{
    Dash, LOSS_SIZE, LegendEntry, LegendGlyph, Series, draw_legend, font, font_error,
    legend_corner, legend_size, palette, sane_range, stroke_polyline,
};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Widest vertical range of a log axis, in decades (plotters' key points need hi/lo finite).
pub const MAX_DECADES: f64 = 300.0;
/// Largest and smallest values a log axis reaches (10^±300).
const MAX_EXPONENT: f64 = 300.0;

/// Colour of the noise-floor band.
pub const BAND_GREY: RGBColor = RGBColor(0xB0, 0xB0, 0xB0);

/// Colour and line pattern of one series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesStyle {
    /// Index into [`palette`].
    pub colour: usize,
    /// Line pattern.
    pub dash: Dash,
}

/// Everything drawn in a curve figure.
#[derive(Clone, Debug, Default)]
pub struct LossFigure {
    /// Figure title.
    pub title: String,
    /// Horizontal axis label, e.g. "t".
    pub x_label: String,
    /// Vertical axis label, e.g. "L − L*".
    pub y_label: String,
    /// (t, y) curves. Points with a non-finite t or y are skipped; on a log axis see
    /// [`LossFigure::noise_floor`] for values near zero.
    pub series: Vec<Series>,
    /// Style of series k; series without one get colour `palette(k)`, solid.
    pub styles: Vec<SeriesStyle>,
    /// Legend entries; when empty, one entry per series with a non-empty label.
    pub legend: Vec<LegendEntry>,
    /// Log axis only: values ≤ this level are round-off, not signal. Drawn as a grey band from
    /// the bottom of the axis up to the level; each curve ends where it first enters the band.
    pub noise_floor: Option<f64>,
    /// Legend text of the band (default "noise floor").
    pub noise_label: String,
    /// A linear vertical axis instead of the logarithmic one.
    pub linear_y: bool,
    /// Linear axis only: fixed vertical range (e.g. 0–90 degrees); data outside is clipped.
    pub y_range: Option<(f64, f64)>,
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

/// The part of a series a log axis can show: points with finite t and finite y > `floor`
/// (floor 0 without a band), up to the first point at or below it; the curve then ends at
/// the crossing (log-linear interpolation, linear when the value is ≤ 0) if there is a band.
/// +∞ values are skipped.
pub fn visible_log(points: &[(f64, f64)], floor: Option<f64>) -> Vec<(f64, f64)> {
    let level = floor.filter(|f| f.is_finite() && *f > 0.0);
    let lim = level.unwrap_or(0.0);
    let mut out: Vec<(f64, f64)> = Vec::new();
    for &(t, y) in points {
        if !t.is_finite() || y.is_nan() || y == f64::INFINITY {
            continue;
        }
        if y > lim {
            out.push((t, y));
            continue;
        }
        if let (Some(level), Some(&(t0, y0))) = (level, out.last()) {
            let f = if y > 0.0 {
                (y0 / level).ln() / (y0 / y).ln()
            } else {
                (y0 - level) / (y0 - y)
            };
            if f.is_finite() {
                out.push((t0 + f.clamp(0.0, 1.0) * (t - t0), level));
            }
        }
        break;
    }
    out
}

/// Whole decades [lo, hi] (exponents) covering `min..max` (both > 0), at least one decade,
/// within ±[`MAX_EXPONENT`] and at most [`MAX_DECADES`] wide (the top is kept).
pub fn log_decades(min: f64, max: f64) -> (f64, f64) {
    if !(min.is_finite() && max.is_finite() && min > 0.0 && max >= min) {
        return (-3.0, 0.0);
    }
    let hi = (max.log10() + 0.02)
        .ceil()
        .clamp(-MAX_EXPONENT + 1.0, MAX_EXPONENT);
    let lo = (min.log10() - 0.02)
        .floor()
        .clamp(-MAX_EXPONENT, MAX_EXPONENT - 1.0);
    let lo = lo.min(hi - 1.0).max(hi - MAX_DECADES);
    (lo, hi)
}

/// Tick label for a logarithmic axis: "10⁻⁸" at powers of ten, "2·10⁻⁸" otherwise.
pub fn log_label(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let mut e = v.log10().floor();
    let mut m = v / 10f64.powf(e);
    if m >= 9.9995 {
        m /= 10.0;
        e += 1.0;
    }
    let sup = superscript(e as i64);
    if (m - 1.0).abs() < 1e-3 {
        format!("10{sup}")
    } else {
        let mant = format!("{m:.1}");
        let mant = mant.strip_suffix(".0").unwrap_or(&mant);
        format!("{mant}·10{sup}")
    }
}

/// An integer in superscript digits.
pub(crate) fn superscript(e: i64) -> String {
    format!("{e}")
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
        .collect()
}

/// The style of series `k`.
fn style_of(fig: &LossFigure, k: usize) -> SeriesStyle {
    fig.styles.get(k).copied().unwrap_or(SeriesStyle {
        colour: k,
        dash: Dash::Solid,
    })
}

/// The legend entries: the given ones, or one per labelled series; plus the band.
fn legend_entries(fig: &LossFigure, band: bool) -> Vec<LegendEntry> {
    let mut entries: Vec<LegendEntry> = if fig.legend.is_empty() {
        fig.series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.label.is_empty())
            .map(|(k, s)| {
                let st = style_of(fig, k);
                LegendEntry {
                    label: s.label.clone(),
                    glyph: LegendGlyph::Line(Some(st.colour), st.dash),
                }
            })
            .collect()
    } else {
        fig.legend.clone()
    };
    if band {
        entries.push(LegendEntry {
            label: if fig.noise_label.is_empty() {
                "noise floor".into()
            } else {
                fig.noise_label.clone()
            },
            glyph: LegendGlyph::Band(BAND_GREY),
        });
    }
    entries
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
    let floor = if fig.linear_y {
        None
    } else {
        fig.noise_floor.filter(|f| f.is_finite() && *f > 0.0)
    };

    let curves: Vec<Vec<(f64, f64)>> = fig
        .series
        .iter()
        .map(|s| {
            if fig.linear_y {
                s.points
                    .iter()
                    .copied()
                    .filter(|(t, y)| t.is_finite() && y.is_finite())
                    .collect()
            } else {
                visible_log(&s.points, floor)
            }
        })
        .collect();
    let all = || curves.iter().flatten();
    let (t_min, t_max) = fig
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.0.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let xr = sane_range((t_min, t_max), (0.0, 1.0));
    let (y_min, y_max) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.1), b.max(p.1))
    });

    let (lo, hi) = match floor {
        Some(f) => log_decades(y_min.min(f / 10.0), y_max.max(f * 10.0)),
        None => log_decades(y_min, y_max),
    };
    // A band below the axis (cut off by the decade limit) is neither drawn nor listed.
    let floor = floor.filter(|f| f.log10() > lo);
    let entries = legend_entries(fig, floor.is_some());
    let legend_font: TextStyle = (FAMILY, 15).into_font().into();
    let dim = legend_size(root, &entries, &legend_font)?;
    let yr = fig
        .y_range
        .map(|r| sane_range(r, (0.0, 1.0)))
        .unwrap_or_else(|| {
            let (lo, hi) = sane_range((y_min, y_max), (0.0, 1.0));
            let pad = 0.04 * (hi - lo);
            (lo - pad, hi + pad)
        });
    // The legend goes to a column right of the plot when it has more than six entries or when
    // every corner of the plot would cover a curve: never over the data.
    let (body_w, body_h) = body.dim_in_pixel();
    let fits_beside = (dim.0 as u32) < body_w / 2;
    let outside = fits_beside && !entries.is_empty() && {
        // The plotting area of the inside layout (margins and label areas as below).
        let (pw0, ph0) = (
            body_w.saturating_sub(14 + 28 + 84),
            body_h.saturating_sub(2 * 14 + 52),
        );
        let frac_y = |y: f64| {
            if fig.linear_y {
                (y - yr.0) / (yr.1 - yr.0)
            } else {
                (y.log10() - lo) / (hi - lo)
            }
        };
        let to_px = |p: &(f64, f64)| {
            (
                (p.0 - xr.0) / (xr.1 - xr.0) * f64::from(pw0),
                (1.0 - frac_y(p.1)) * f64::from(ph0),
            )
        };
        let mut pts: Vec<(i32, i32)> = Vec::new();
        for c in &curves {
            let px: Vec<(i32, i32)> = c
                .iter()
                .map(to_px)
                .filter(|q| q.0.is_finite() && q.1.is_finite())
                .map(|q| (q.0.round() as i32, q.1.round() as i32))
                .collect();
            pts.extend(super::densify(&px));
        }
        entries.len() > 6 || super::legend_corner_count(dim, (pw0, ph0), &pts).1 > 0
    };
    let (main, side) = if outside {
        let (m, s) = body.split_horizontally(body_w - dim.0 as u32 - 16);
        (m, Some(s))
    } else {
        (body.clone(), None)
    };

    let mut builder = ChartBuilder::on(&main);
    builder
        .margin(14)
        .margin_right(if outside { 8 } else { 28 })
        .x_label_area_size(52)
        .y_label_area_size(84);
    let mut pixel_points = Vec::new();
    let plot_px;
    if fig.linear_y {
        let mut chart = builder.build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
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
            .y_label_formatter(&|v| super::tick_label(*v, yr.1 - yr.0))
            .draw()?;
        plot_px = chart.plotting_area().strip_coord_spec();
        let base = plot_px.get_base_pixel();
        for (k, pts) in curves.iter().enumerate() {
            let st = style_of(fig, k);
            for piece in super::plane::clip_polyline(pts, xr, yr) {
                let px: Vec<(i32, i32)> = piece
                    .iter()
                    .map(|p| {
                        let b = chart.backend_coord(p);
                        (b.0 - base.0, b.1 - base.1)
                    })
                    .collect();
                stroke_polyline(&plot_px, &px, palette(st.colour), st.dash)?;
                pixel_points.extend(super::densify(&px));
            }
        }
    } else {
        let (y_lo, y_hi) = (10f64.powf(lo), 10f64.powf(hi));
        let mut chart = builder.build_cartesian_2d(xr.0..xr.1, (y_lo..y_hi).log_scale())?;
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
        plot_px = chart.plotting_area().strip_coord_spec();
        let base = plot_px.get_base_pixel();
        if let Some(f) = floor {
            let top = chart.backend_coord(&(xr.0, f)).1 - base.1;
            let (pw, ph) = plot_px.dim_in_pixel();
            plot_px.draw(&Rectangle::new(
                [(0, top), (pw as i32, ph as i32)],
                BAND_GREY.mix(0.45).filled(),
            ))?;
            plot_px.draw(&PathElement::new(
                vec![(0, top), (pw as i32, top)],
                BAND_GREY.stroke_width(1),
            ))?;
        }
        for (k, pts) in curves.iter().enumerate() {
            let st = style_of(fig, k);
            // Clip in (t, log10 y), where the axis is linear.
            let logs: Vec<(f64, f64)> = pts.iter().map(|&(t, y)| (t, y.log10())).collect();
            for piece in super::plane::clip_polyline(&logs, xr, (lo, hi)) {
                let px: Vec<(i32, i32)> = piece
                    .iter()
                    .map(|&(t, l)| {
                        let b = chart.backend_coord(&(t, 10f64.powf(l)));
                        (b.0 - base.0, b.1 - base.1)
                    })
                    .collect();
                if px.len() == 1 {
                    plot_px.draw(&Circle::new(px[0], 4, palette(st.colour).filled()))?;
                } else {
                    stroke_polyline(&plot_px, &px, palette(st.colour), st.dash)?;
                }
                pixel_points.extend(super::densify(&px));
            }
        }
    }
    let (pw, ph) = plot_px.dim_in_pixel();
    plot_px.draw(&Rectangle::new(
        [(0, 0), (pw as i32 - 1, ph as i32 - 1)],
        BLACK.stroke_width(1),
    ))?;

    if !entries.is_empty() {
        match side {
            Some(side) => {
                let top = 14;
                draw_legend(&side, (4, top), &entries, &legend_font, dim)?;
            }
            None => {
                let corner = legend_corner(dim, (pw, ph), &pixel_points);
                draw_legend(&plot_px, corner, &entries, &legend_font, dim)?;
            }
        }
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
    fn curves_stop_at_the_floor_without_clamping() {
        // Without a band: stop before the first value ≤ 0, skip NaN and +∞.
        let c = visible_log(
            &[
                (0.0, 1.0),
                (0.5, f64::NAN),
                (0.7, f64::INFINITY),
                (1.0, 1e-3),
                (2.0, -3.0),
                (3.0, 1.0),
            ],
            None,
        );
        assert_eq!(c, vec![(0.0, 1.0), (1.0, 1e-3)]);
        // With a band at 1e-4: 1e-2 → 1e-6 crosses 1e-4 halfway in log space.
        let c = visible_log(&[(0.0, 1e-2), (1.0, 1e-6), (2.0, 1e-2)], Some(1e-4));
        assert_eq!(c.len(), 2);
        assert!((c[1].0 - 0.5).abs() < 1e-12 && c[1].1 == 1e-4, "{c:?}");
        // A negative value after the last point above: linear interpolation.
        let c = visible_log(&[(0.0, 3e-4), (1.0, -1e-4)], Some(1e-4));
        assert!((c[1].0 - 0.5).abs() < 1e-12, "{c:?}");
        // Starting inside the band: nothing to draw.
        assert!(visible_log(&[(0.0, 1e-5), (1.0, 1.0)], Some(1e-4)).is_empty());
    }

    #[test]
    fn decades_are_bounded() {
        assert_eq!(log_decades(2e-3, 0.5), (-3.0, 0.0));
        // A little headroom keeps a value at a decade off the frame.
        assert_eq!(log_decades(1e-3, 1.0), (-4.0, 1.0));
        assert_eq!(log_decades(0.5, 0.5), (-1.0, 0.0));
        let (lo, hi) = log_decades(1e-16, 3e307);
        assert_eq!(hi, MAX_EXPONENT);
        assert!(hi - lo <= MAX_DECADES && lo >= -MAX_EXPONENT);
        // 10^lo and 10^hi and their ratio are finite: plotters' key points terminate.
        assert!((10f64.powf(hi) / 10f64.powf(lo)).is_finite());
        let (lo, hi) = log_decades(f64::MIN_POSITIVE, 1e-310);
        assert!(lo.is_finite() && hi.is_finite() && hi > lo);
    }
}
