//! Escape from the MLP plateau: a 2-2-1 tanh student of a two-unit teacher, started δ₀ = 1e-2,
//! 1e-4, 1e-6 off the permutation-symmetric subspace at its saddle (three seeded directions),
//! under the Euclidean, natural and third-order (geodesic-acceleration α = 0, τ = 1 and τ = 0.1)
//! flows ([`fisher_flow::geometry::plateau`]), the natural ones with the exact metric undamped
//! (λ = 0: they stop at the solve's rank cut, the Fisher's smallest eigenvalue is ~δ⁴ there)
//! and damped by λ = 1e-8 and 1e-4.
//!
//! `cargo run --release --example plateau_escape [-- OUT_DIR]` prints a markdown table and writes
//! `plateau_escape.json` and the figure `plateau_escape.png`/`.svg` (escape time, the first
//! recorded t with L ≤ L_s − ½(L_s − L*), against log₁₀(1/δ₀), one colour per flow, one line
//! pattern per seed) into OUT_DIR (default `output/`).

use fisher_flow::geometry::escape::Variant;
use fisher_flow::geometry::plateau::{PlateauEscape, measure, symmetric_saddle};
use fisher_flow::plot::loss::{LossFigure, SeriesStyle, loss};
use fisher_flow::plot::{Dash, LegendEntry, LegendGlyph, Series};
use std::path::PathBuf;

/// Direction seeds.
const SEEDS: [u64; 3] = [1, 2, 3];
/// Integration horizon.
const T_END: f64 = 2000.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "output".into()));
    std::fs::create_dir_all(&out)?;
    let deltas = [1e-2, 1e-4, 1e-6];
    // (flow, damping λ of its metric); λ = 0 is the exact undamped metric
    let flows = [
        (Variant::Euclidean, 0.0),
        (Variant::Natural, 0.0),
        (Variant::Natural, 1e-8),
        (
            Variant::Geodesic {
                alpha: 0.0,
                tau: 1.0,
            },
            1e-8,
        ),
        (
            Variant::Geodesic {
                alpha: 0.0,
                tau: 0.1,
            },
            1e-8,
        ),
        (Variant::Natural, 1e-4),
        (
            Variant::Geodesic {
                alpha: 0.0,
                tau: 1.0,
            },
            1e-4,
        ),
    ];
    let label = |v: &Variant, lam: f64| {
        if *v == Variant::Euclidean {
            v.label()
        } else {
            format!("{} λ={lam:e}", v.label())
        }
    };
    let saddle = symmetric_saddle()?;
    eprintln!("saddle θ_s = {saddle:?}");
    let mut rows: Vec<PlateauEscape> = Vec::new();
    println!(
        "| δ₀ | seed | flow | escape t | evals to escape | t to L−L* < 1e-6 | rhs evals | steps | wall ms | final gap | stop |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &d in &deltas {
        for &seed in &SEEDS {
            for (v, lam) in flows {
                let r = measure(&saddle, d, seed, v, lam, T_END)?;
                let f = |x: Option<f64>| x.map_or("—".to_string(), |t| format!("{t:.3}"));
                println!(
                    "| {d:e} | {seed} | {} | {} | {} | {} | {} | {} | {:.0} | {:.1e} | {} |",
                    label(&v, lam),
                    f(r.t_escape),
                    r.evals_escape,
                    f(r.t_reach),
                    r.rhs_evals,
                    r.steps,
                    r.wall_ms,
                    r.final_gap,
                    r.stop
                );
                rows.push(r);
            }
        }
    }
    eprintln!("plateau loss L_s = {}", rows[0].plateau_loss);
    fisher_flow::export::write_json(&out.join("plateau_escape.json"), &rows)?;
    let mut fig = LossFigure {
        title: "Escape from the MLP plateau: first t with L ≤ (L_s + L*)/2".into(),
        x_label: "log₁₀(1/δ₀)".into(),
        y_label: "escape time".into(),
        ..LossFigure::default()
    };
    for (vi, (v, lam)) in flows.iter().enumerate() {
        let mine = |r: &&PlateauEscape| r.variant == v.label() && r.damping == *lam;
        if !rows.iter().filter(mine).any(|r| r.t_escape.is_some()) {
            continue; // never escaped (the undamped exact flows stop at the rank cut)
        }
        fig.legend.push(LegendEntry {
            label: label(v, *lam),
            glyph: LegendGlyph::Line(Some(vi), Dash::Solid),
        });
        for (si, &seed) in SEEDS.iter().enumerate() {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(mine)
                .filter(|r| r.seed == seed)
                .filter_map(|r| r.t_escape.map(|t| ((1.0f64 / r.delta).log10(), t)))
                .collect();
            fig.series.push(Series {
                label: String::new(),
                points: pts,
            });
            fig.styles.push(SeriesStyle {
                colour: vi,
                dash: Dash::nth(si),
            });
        }
    }
    for (si, &seed) in SEEDS.iter().enumerate() {
        fig.legend.push(LegendEntry {
            label: format!("direction seed {seed}"),
            glyph: LegendGlyph::Rgb(plotters::style::BLACK, Dash::nth(si)),
        });
    }
    for ext in ["png", "svg"] {
        loss(&out.join(format!("plateau_escape.{ext}")), &fig)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}
