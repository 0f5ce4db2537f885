//! Properties of the density flows (`fisher_flow::density`): the Fisher–Rao flow's closed form,
//! conservation of mass and positivity, and the barrier contrast of Fisher–Rao and Wasserstein
//! on a bimodal target.

use super::{Outcome, Property};
use crate::density::grid::normalized;
use crate::density::study::bimodal_rates;
use crate::density::{DensitySettings, FlowKind, Grid, Shape, fisher_rao_exact, integrate};
use crate::error::Result;

pub fn properties() -> Vec<Property> {
    vec![
        Property {
            name: "density-fisher-rao-closed-form",
            statement: "the integrated Fisher–Rao flow of densities equals ρₜ ∝ ρ₀^{e^{−t}} π^{1−e^{−t}} to 1e-8 in log ρ (1-D mixture, 2-D banana)",
            run: closed_form,
        },
        Property {
            name: "density-mass-positivity",
            statement: "the Fisher–Rao, Wasserstein and WFR flows conserve mass (|M − 1| ≤ 1e-7 at rtol 1e-10) and keep ρ > 0, and KL(ρ‖π) never rises",
            run: mass_positivity,
        },
        Property {
            name: "density-fisher-rao-vs-wasserstein-bimodal",
            statement: "on ½N(−s/2, 1) + ½N(s/2, 1) the Fisher–Rao KL decay rate does not depend on s (spread ≤ 5 %, ≈ 2), the Wasserstein rate falls as s grows (< 0.1 × Fisher–Rao at s = 7)",
            run: bimodal_contrast,
        },
    ]
}

/// Grid log-densities of a target and a start, normalized.
fn pair(grid: &Grid, target: &Shape, start: &Shape) -> (Vec<f64>, Vec<f64>) {
    let v = grid.volume();
    (
        normalized(&grid.eval(|x| target.log_density(x)), v),
        normalized(&grid.eval(|x| start.log_density(x)), v),
    )
}

fn closed_form() -> Result<Outcome> {
    let cases = [
        (
            Grid::line(-9.0, 10.0, 190),
            Shape::Mixture {
                sigma: 1.0,
                weight: 0.5,
                means: [-1.5, 2.0],
            },
            Shape::Gaussian {
                mean: vec![0.5],
                sd: vec![2.0],
            },
        ),
        (
            Grid::plane((-5.0, 5.0), (-4.5, 9.5), 16, 16),
            Shape::Banana {
                width: 1.0,
                curvature: 0.6,
            },
            Shape::Gaussian {
                mean: vec![1.5, 3.0],
                sd: vec![1.0, 1.0],
            },
        ),
    ];
    let settings = DensitySettings {
        t_end: 6.0,
        rtol: 1e-12,
        atol: 1e-14,
        save_at: vec![0.0, 0.5, 1.0, 2.0, 4.0, 6.0],
        ..DensitySettings::default()
    };
    let mut worst: f64 = 0.0;
    let mut parts = Vec::new();
    for (grid, target, start) in &cases {
        let (lp, l0) = pair(grid, target, start);
        let p = integrate(FlowKind::FisherRao, grid, &lp, &l0, &settings)?;
        let mut err: f64 = if p.finished() { 0.0 } else { f64::NAN };
        for (t, lr) in &p.saved {
            let ex = fisher_rao_exact(&l0, &lp, grid.volume(), *t);
            for (a, b) in lr.iter().zip(&ex) {
                err = err.max((a - b).abs());
            }
        }
        if p.saved.len() != settings.save_at.len() {
            err = f64::NAN;
        }
        worst = worst.max(err);
        parts.push(format!(
            "{}-D {:?} cells: max |Δlog ρ| = {err:.2e} over {} times ({} steps)",
            grid.dim(),
            grid.n,
            p.saved.len(),
            p.steps
        ));
        if err.is_nan() {
            worst = f64::NAN;
        }
    }
    Ok(Outcome::at_most(
        "density-fisher-rao-closed-form",
        parts.join("; "),
        worst,
        1e-8,
    ))
}

fn mass_positivity() -> Result<Outcome> {
    let grid = Grid::line(-10.0, 10.0, 100);
    let target = Shape::Bimodal {
        separation: 4.0,
        sigma: 1.0,
        dim: 1,
    };
    let start = Shape::Gaussian {
        mean: vec![1.0],
        sd: vec![1.5],
    };
    let (lp, l0) = pair(&grid, &target, &start);
    let settings = DensitySettings {
        t_end: 5.0,
        rtol: 1e-10,
        atol: 1e-12,
        save_at: Vec::new(),
        ..DensitySettings::default()
    };
    let mut drift: f64 = 0.0;
    let mut ok = true;
    let mut parts = Vec::new();
    for flow in FlowKind::ALL {
        let p = integrate(flow, &grid, &lp, &l0, &settings)?;
        let min_rho = p.min_rho.iter().copied().fold(f64::INFINITY, f64::min);
        let (monotone, rise) = p.kl_monotone(1e-14);
        ok &= p.finished() && min_rho > 0.0 && min_rho.is_finite() && monotone;
        drift = drift.max(p.mass_drift());
        parts.push(format!(
            "{}: |M − 1| ≤ {:.1e}, min ρ {:.1e}, KL {:.3e} → {:.3e} (largest rise {rise:.1e})",
            flow.name(),
            p.mass_drift(),
            min_rho,
            p.kl.first().copied().unwrap_or(f64::NAN),
            p.kl.last().copied().unwrap_or(f64::NAN)
        ));
    }
    Ok(Outcome::new(
        "density-mass-positivity",
        parts.join("; "),
        drift,
        "mass drift <= 1.0e-7, min ρ > 0, KL non-increasing (1e-14)".into(),
        ok && drift <= 1e-7,
    ))
}

fn bimodal_contrast() -> Result<Outcome> {
    let rows = bimodal_rates(&[3.0, 5.0, 7.0], 0.125, 1e-9)?;
    let fr: Vec<f64> = rows.iter().map(|r| r.fisher_rao).collect();
    let w: Vec<f64> = rows.iter().map(|r| r.wasserstein).collect();
    let mean = fr.iter().sum::<f64>() / fr.len() as f64;
    let spread = fr.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b))
        - fr.iter().fold(f64::INFINITY, |a, &b| a.min(b));
    let rel = spread / mean;
    let falling = w.windows(2).all(|p| p[1] < p[0]);
    let last_ratio = w.last().copied().unwrap_or(f64::NAN) / fr.last().copied().unwrap_or(f64::NAN);
    let measured = rows
        .iter()
        .map(|r| {
            format!(
                "s = {}: FR {:.3}, W {:.3e}, WFR {:.3}",
                r.separation, r.fisher_rao, r.wasserstein, r.wfr
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Outcome::new(
        "density-fisher-rao-vs-wasserstein-bimodal",
        format!(
            "rates −Δlog KL/Δt on t ∈ [8, 12]: {measured}; FR spread {rel:.2e} of its mean, W(7)/FR(7) = {last_ratio:.2e}"
        ),
        rel,
        "FR spread <= 5e-2 of the mean, W falling in s, W(7) < 0.1 FR(7)".into(),
        rel <= 0.05 && falling && last_ratio < 0.1,
    ))
}
