//! Measurements on the density flows shared by `check`, the tests and the README: the decay
//! rates of KL on a bimodal target as the modes separate, and the bridge to the parametric
//! mixture flow.

use super::flow::{DensitySettings, FlowKind, integrate};
use super::grid::{Grid, normalized};
use super::shape::Shape;
use crate::error::Result;
use crate::flow::{FlowSettings, Simulator};
use crate::model::{GaussianMixture, LossKind, StatModel};
use crate::quadrature::Scheme;
use serde::Serialize;

/// KL decay rates of the three flows for one separation.
#[derive(Clone, Debug, Serialize)]
pub struct RateRow {
    /// Separation s of the modes (σ = 1).
    pub separation: f64,
    /// −Δlog KL/Δt of the Fisher–Rao flow over the window.
    pub fisher_rao: f64,
    /// The same for the Wasserstein flow.
    pub wasserstein: f64,
    /// The same for the Wasserstein–Fisher–Rao flow.
    pub wfr: f64,
    /// KL at the window's start for each flow (FR, W, WFR).
    pub kl_at_start: [f64; 3],
}

/// The rate window [t₁, t₂] of [`bimodal_rates`]: late enough that the Fisher–Rao flow is in its
/// linear regime (e^{−8}·|log(ρ₀/π)| ≲ 0.01 for s ≤ 7), early enough that its KL (≈ e^{−2t}) is
/// far above round-off.
pub const RATE_WINDOW: (f64, f64) = (8.0, 12.0);

/// On the bimodal target ½N(−s/2, 1) + ½N(s/2, 1) from ρ₀ = N(−s/2, 1) (all mass in one mode),
/// the mean KL decay rate of each flow over [`RATE_WINDOW`], for every separation. The grid is
/// [−s/2 − 8, s/2 + 8] with cells of width `h`.
pub fn bimodal_rates(separations: &[f64], h: f64, rtol: f64) -> Result<Vec<RateRow>> {
    let (t1, t2) = RATE_WINDOW;
    separations
        .iter()
        .map(|&s| {
            let half = 0.5 * s + 8.0;
            let n = ((2.0 * half) / h).ceil() as usize;
            let grid = Grid::line(-half, half, n);
            let target = Shape::Bimodal {
                separation: s,
                sigma: 1.0,
                dim: 1,
            };
            let start = Shape::Gaussian {
                mean: vec![-0.5 * s],
                sd: vec![1.0],
            };
            let lp = normalized(&grid.eval(|x| target.log_density(x)), grid.volume());
            let l0 = normalized(&grid.eval(|x| start.log_density(x)), grid.volume());
            let settings = DensitySettings {
                t_end: t2,
                rtol,
                atol: rtol * 1e-2,
                save_at: Vec::new(),
                ..DensitySettings::default()
            };
            let mut rates = [0.0; 3];
            let mut kl0 = [0.0; 3];
            for (k, flow) in FlowKind::ALL.into_iter().enumerate() {
                let p = integrate(flow, &grid, &lp, &l0, &settings)?;
                rates[k] = p.rate(t1, t2).unwrap_or(f64::NAN);
                let i = p.times.iter().position(|&t| t >= t1).unwrap_or(0);
                kl0[k] = p.kl[i];
            }
            Ok(RateRow {
                separation: s,
                fisher_rao: rates[0],
                wasserstein: rates[1],
                wfr: rates[2],
                kl_at_start: kl0,
            })
        })
        .collect()
}

/// KL(t) of the parametric and the non-parametric Fisher flow of the same energy from the same
/// start.
#[derive(Clone, Debug, Serialize)]
pub struct Bridge {
    /// (t, L(θ(t)) − L*) along the mixture's natural-gradient flow (exact Fisher):
    /// L − L* = KL(π‖p_θ).
    pub parametric: Vec<(f64, f64)>,
    /// (t, KL(π‖ρₜ)) along the Fisher–Rao flow of the same energy on the grid,
    /// ρₜ = e^{−t}ρ₀ + (1 − e^{−t})π (its closed form).
    pub nonparametric: Vec<(f64, f64)>,
    /// The mixture start (μ₁, μ₂).
    pub start: [f64; 2],
}

/// The bridge when target and start are mixtures of the same σ and w: the mixture's natural
/// flow minimizes the cross-entropy E_π[−log p_θ] = KL(π‖p_θ) + H(π); the Fisher–Rao flow of
/// that energy on all densities is ∂ₜρ = π − ρ, and the natural gradient is its projection on
/// the family's tangent space.
pub fn bridge(
    grid: &Grid,
    target: &Shape,
    start: &Shape,
    t_end: f64,
    rtol: f64,
    atol: f64,
) -> Result<Option<Bridge>> {
    let (
        Shape::Mixture {
            sigma,
            weight,
            means,
        },
        Shape::Mixture {
            sigma: s0,
            weight: w0,
            means: m0,
        },
    ) = (target, start)
    else {
        return Ok(None);
    };
    if sigma != s0 || weight != w0 || grid.dim() != 1 {
        return Ok(None);
    }
    let model = GaussianMixture {
        sigma: *sigma,
        w: *weight,
        target: *means,
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    };
    let settings = FlowSettings {
        t_end,
        rtol,
        atol,
        grad_tol: 0.0,
        ..FlowSettings::default()
    };
    let l_star = model.optimal_loss().unwrap_or(f64::NAN);
    let tr = Simulator::new(&model, settings)?.run(m0)?;
    let parametric = tr.steps.iter().map(|s| (s.t, s.loss - l_star)).collect();
    let v = grid.volume();
    let lp = normalized(&grid.eval(|x| target.log_density(x)), v);
    let l0 = normalized(&grid.eval(|x| start.log_density(x)), v);
    let nonparametric = (0..=400)
        .map(|k| {
            let t = t_end * k as f64 / 400.0;
            let a = (-t).exp();
            let kl: f64 = lp
                .iter()
                .zip(&l0)
                .map(|(p, r)| {
                    // log ρₜ = log(a·ρ₀ + (1 − a)·π), evaluated stably
                    let (x, y) = (a.ln() + r, (-a).ln_1p() + p);
                    let m = x.max(y);
                    let lr = m + ((x - m).exp() + (y - m).exp()).ln();
                    v * p.exp() * (p - lr)
                })
                .sum();
            (t, kl)
        })
        .collect();
    Ok(Some(Bridge {
        parametric,
        nonparametric,
        start: *m0,
    }))
}
