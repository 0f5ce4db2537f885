//! Small multiples of heat maps over a plane of starts: one panel per setting, one shared
//! colour scale (log₁₀ of the value by default), cells of a start grid as rectangles (other
//! start sets as dots), and missing values (e.g. never reached ε) in grey.

use super::font::FAMILY;
use super::plane::colormap;
use super::{sane_range, title_area};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Grey of a cell without a value.
pub const MISSING_GREY: RGBColor = RGBColor(0xC8, 0xC8, 0xC8);
/// Pixels of one panel (width, height).
pub const PANEL_SIZE: (u32, u32) = (270, 250);
/// Most panels per row.
pub const COLUMNS_MAX: usize = 6;
/// Width of the colour bar column, pixels.
const BAR_W: u32 = 170;
/// Colour steps of the bar.
const BAR_STEPS: usize = 96;

/// One panel: (x, y, value) cells.
#[derive(Clone, Debug, Default)]
pub struct GridPanel {
    pub title: String,
    pub cells: Vec<(f64, f64, Option<f64>)>,
}

/// A figure of heat-map panels.
#[derive(Clone, Debug, Default)]
pub struct GridFigure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Label of the colour bar (e.g. "t to ε").
    pub value_label: String,
    /// Legend text of a grey cell.
    pub missing_label: String,
    pub panels: Vec<GridPanel>,
    /// Cell size (dx, dy) for a regular grid; None draws dots.
    pub cell: Option<(f64, f64)>,
    /// Colour by log₁₀ of the value (values ≤ 0 count as missing).
    pub log: bool,
}

impl GridFigure {
    /// Columns and rows of the panel layout.
    pub fn layout(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let cols = n.min(COLUMNS_MAX);
        (cols, n.div_ceil(cols))
    }

    /// Figure size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (cols, rows) = self.layout();
        (
            PANEL_SIZE.0 * cols as u32 + BAR_W + 20,
            PANEL_SIZE.1 * rows as u32 + 60,
        )
    }

    /// The value used for colour, if any.
    fn scaled(&self, v: Option<f64>) -> Option<f64> {
        let v = v.filter(|x| x.is_finite())?;
        if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    /// The colour range of the scaled values.
    fn value_range(&self) -> (f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for p in &self.panels {
            for c in &p.cells {
                if let Some(v) = self.scaled(c.2) {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        sane_range((lo, hi), (0.0, 1.0))
    }

    /// The data window of every panel (cells included).
    fn window(&self) -> ((f64, f64), (f64, f64)) {
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for p in &self.panels {
            for c in &p.cells {
                if c.0.is_finite() && c.1.is_finite() {
                    x0 = x0.min(c.0);
                    x1 = x1.max(c.0);
                    y0 = y0.min(c.1);
                    y1 = y1.max(c.1);
                }
            }
        }
        let (px, py) = match self.cell {
            Some((dx, dy)) => (0.5 * dx, 0.5 * dy),
            None => (0.05 * (x1 - x0).max(1e-9), 0.05 * (y1 - y0).max(1e-9)),
        };
        (
            sane_range((x0 - px, x1 + px), (-1.0, 1.0)),
            sane_range((y0 - py, y1 + py), (-1.0, 1.0)),
        )
    }
}

/// Draw `fig` into `path` (`.svg` or `.png`), atomically.
pub fn heat_maps(path: &Path, fig: &GridFigure) -> Result<()> {
    super::render(
        path,
        fig.size(),
        |root| draw_on(root, fig).map_err(|e| e.to_string()),
        |root| draw_on(root, fig).map_err(|e| e.to_string()),
    )
}

/// Draw `fig` on `root`.
pub fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &GridFigure,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if !super::font::register() {
        return Err(super::font_error());
    }
    root.fill(&WHITE)?;
    let body = title_area(root, &fig.title)?;
    let (w, _) = body.dim_in_pixel();
    let (panels_area, bar_area) = body.split_horizontally(w.saturating_sub(BAR_W));
    let (cols, rows) = fig.layout();
    let areas = panels_area.split_evenly((rows, cols));
    let (xr, yr) = fig.window();
    let (lo, hi) = fig.value_range();
    let colour = |v: Option<f64>| match fig.scaled(v) {
        Some(s) => colormap((s - lo) / (hi - lo)),
        None => MISSING_GREY,
    };
    for (i, (panel, area)) in fig.panels.iter().zip(areas.iter()).enumerate() {
        let (row, col) = (i / cols, i % cols);
        let bottom = row == rows - 1 || i + cols >= fig.panels.len();
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title.as_str(), (FAMILY, 13))
            .margin(6)
            .margin_right(10)
            .x_label_area_size(if bottom { 34 } else { 18 })
            .y_label_area_size(if col == 0 { 46 } else { 30 })
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
        match fig.cell {
            Some((dx, dy)) => {
                chart.draw_series(panel.cells.iter().map(|&(x, y, v)| {
                    Rectangle::new(
                        [(x - 0.5 * dx, y - 0.5 * dy), (x + 0.5 * dx, y + 0.5 * dy)],
                        colour(v).filled(),
                    )
                }))?;
            }
            None => {
                chart.draw_series(
                    panel
                        .cells
                        .iter()
                        .map(|&(x, y, v)| Circle::new((x, y), 4, colour(v).filled())),
                )?;
            }
        }
        // The singular line μ₁ = μ₂.
        let (a, b) = (xr.0.max(yr.0), xr.1.min(yr.1));
        if a < b {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(a, a), (b, b)],
                super::SINGULAR_GREY.mix(0.6).stroke_width(1),
            )))?;
        }
        let fx = |v: &f64| super::tick_label(*v, xr.1 - xr.0);
        let fy = |v: &f64| super::tick_label(*v, yr.1 - yr.0);
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh()
            .label_style((FAMILY, 11))
            .axis_desc_style((FAMILY, 12))
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&fx)
            .y_label_formatter(&fy);
        if bottom {
            mesh.x_desc(fig.x_label.as_str());
        }
        if col == 0 {
            mesh.y_desc(fig.y_label.as_str());
        }
        mesh.draw()?;
    }
    draw_bar(&bar_area, fig, (lo, hi))
}

/// The colour bar (log₁₀ values labelled as powers of ten when `fig.log`) and the grey swatch.
fn draw_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &GridFigure,
    (lo, hi): (f64, f64),
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (_, h) = area.dim_in_pixel();
    let mut bar = ChartBuilder::on(area)
        .margin_top(30)
        .margin_bottom((h / 3).max(60))
        .margin_left(8)
        .margin_right(16)
        .right_y_label_area_size(BAR_W - 60)
        .caption(fig.value_label.as_str(), (FAMILY, 13))
        .build_cartesian_2d(0f64..1f64, lo..hi)?;
    bar.draw_series((0..BAR_STEPS).map(|k| {
        let a = lo + (hi - lo) * k as f64 / BAR_STEPS as f64;
        let b = lo + (hi - lo) * (k + 1) as f64 / BAR_STEPS as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            colormap((k as f64 + 0.5) / BAR_STEPS as f64).filled(),
        )
    }))?;
    let log = fig.log;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| {
            if log {
                super::loss::log_label(10f64.powf(*v))
            } else {
                super::tick_label(*v, hi - lo)
            }
        })
        .label_style((FAMILY, 12))
        .draw()?;
    let px = bar.plotting_area().strip_coord_spec();
    let (bw, bh) = px.dim_in_pixel();
    px.draw(&Rectangle::new(
        [(0, 0), (bw as i32 - 1, bh as i32 - 1)],
        BLACK.stroke_width(1),
    ))?;
    // The grey swatch below the bar.
    let y = (h - (h / 3).max(60)) as i32 + 24;
    area.draw(&Rectangle::new(
        [(8, y), (30, y + 16)],
        MISSING_GREY.filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(8, y), (30, y + 16)],
        BLACK.stroke_width(1),
    ))?;
    let style = TextStyle::from((FAMILY, 12).into_font()).color(&BLACK);
    let mut ty = y;
    for word_line in wrap(&fig.missing_label, 16) {
        area.draw_text(&word_line, &style, (36, ty + 1))?;
        ty += 15;
    }
    Ok(())
}

/// Split `s` into lines of at most about `width` characters at spaces.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for w in s.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + w.chars().count() <= width => {
                l.push(' ');
                l.push_str(w);
            }
            _ => lines.push(w.to_string()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_range() {
        let fig = GridFigure {
            panels: vec![
                GridPanel {
                    title: "a".into(),
                    cells: vec![(0.0, 0.0, Some(10.0)), (1.0, 0.0, None)],
                },
                GridPanel {
                    title: "b".into(),
                    cells: vec![(0.0, 1.0, Some(1000.0)), (1.0, 1.0, Some(-1.0))],
                },
            ],
            cell: Some((1.0, 1.0)),
            log: true,
            ..GridFigure::default()
        };
        assert_eq!(fig.layout(), (2, 1));
        // log10 of 10 and 1000; -1 and None are missing.
        assert_eq!(fig.value_range(), (1.0, 3.0));
        assert_eq!(fig.window(), ((-0.5, 1.5), (-0.5, 1.5)));
        let seven = GridFigure {
            panels: vec![GridPanel::default(); 7],
            ..GridFigure::default()
        };
        assert_eq!(seven.layout(), (6, 2));
        assert_eq!(
            wrap("never within t_end", 10),
            vec!["never", "within", "t_end"]
        );
    }
}
