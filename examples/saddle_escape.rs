//! Escape from the single-component saddle on μ₁ = μ₂: natural, Euclidean and third-order
//! (geodesic-acceleration) flows from δ₀ = 1e-2, 1e-4, 1e-6 off the line, several σ and w.
//!
//! `cargo run --release --example saddle_escape [-- OUT_DIR]` prints a markdown table and writes
//! `saddle_escape.json` and the figure `saddle_escape.png`/`.svg` (escape time, the first
//! recorded t with |μ₂ − μ₁| ≥ σ, against
//! log₁₀(1/δ₀), one colour per flow, one line pattern per (σ, w)) into OUT_DIR (default
//! `output/`). Wall times are printed only (they vary from run to run).

use fisher_flow::geometry::escape::{Escape, Variant, measure};
use fisher_flow::plot::loss::{LossFigure, SeriesStyle, loss};
use fisher_flow::plot::{Dash, LegendEntry, LegendGlyph, Series};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "output".into()));
    std::fs::create_dir_all(&out)?;
    let configs = [(1.0, 0.5), (0.7, 0.5), (1.5, 0.5), (1.0, 0.3)];
    let deltas = [1e-2, 1e-4, 1e-6];
    let variants = [
        Variant::Euclidean,
        Variant::Natural,
        Variant::Geodesic {
            alpha: 0.0,
            tau: 1.0,
        },
        Variant::Geodesic {
            alpha: 1.0,
            tau: 1.0,
        },
        Variant::Geodesic {
            alpha: -1.0,
            tau: 1.0,
        },
    ];
    let mut rows: Vec<Escape> = Vec::new();
    println!(
        "| σ | w | δ₀ | flow | escape t (|δ| ≥ σ) | t to L−L* < 1e-6 | rhs evals | steps | wall ms | stop |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &(sigma, w) in &configs {
        for &d in &deltas {
            for v in variants {
                let clock = Instant::now();
                let r = measure(sigma, w, d, v, 400.0)?;
                let ms = clock.elapsed().as_secs_f64() * 1e3;
                let f = |x: Option<f64>| x.map_or("—".to_string(), |t| format!("{t:.3}"));
                println!(
                    "| {sigma} | {w} | {d:e} | {} | {} | {} | {} | {} | {ms:.0} | {} |",
                    r.variant,
                    f(r.t_escape),
                    f(r.t_reach),
                    r.rhs_evals,
                    r.steps,
                    r.stop
                );
                rows.push(r);
            }
        }
    }
    fisher_flow::export::write_json(&out.join("saddle_escape.json"), &rows)?;
    let mut fig = LossFigure {
        title: "Escape from the saddle on μ₁ = μ₂: first time with |μ₂ − μ₁| ≥ σ".into(),
        x_label: "log₁₀(1/δ₀)".into(),
        y_label: "escape time".into(),
        ..LossFigure::default()
    };
    for (vi, v) in variants.iter().enumerate() {
        fig.legend.push(LegendEntry {
            label: v.label(),
            glyph: LegendGlyph::Line(Some(vi), Dash::Solid),
        });
        for (ci, &(sigma, w)) in configs.iter().enumerate() {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.variant == v.label() && r.sigma == sigma && r.w == w)
                .filter_map(|r| r.t_escape.map(|t| ((1.0 / r.delta).log10(), t)))
                .collect();
            fig.series.push(Series {
                label: String::new(),
                points: pts,
            });
            fig.styles.push(SeriesStyle {
                colour: vi,
                dash: Dash::nth(ci),
            });
        }
    }
    for (ci, &(sigma, w)) in configs.iter().enumerate() {
        fig.legend.push(LegendEntry {
            label: format!("σ = {sigma}, w = {w}"),
            glyph: LegendGlyph::Rgb(plotters::style::BLACK, Dash::nth(ci)),
        });
    }
    for ext in ["png", "svg"] {
        loss(&out.join(format!("saddle_escape.{ext}")), &fig)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}
