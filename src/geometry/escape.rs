//! The saddle-escape measurement: how long flows take to leave the single-component saddle.
//!
//! On the line μ₁ = μ₂ the mixture is one Gaussian; the flow restricted to the line ends at the
//! single-Gaussian fit μ̄ = wμ₁* + (1−w)μ₂*, a saddle of the full loss. A start at
//! (M, δ) = (μ̄, δ₀), i.e. θ = (μ̄ − (1−w)δ₀, μ̄ + wδ₀), sits δ₀ off the line at the saddle.
//! Measured per flow: the escape time (first recorded step with |μ₂ − μ₁| ≥ σ), the time to
//! L − L* < 1e-6, the rhs evaluations spent until then (the cost; a corrected evaluation costs
//! more than a plain one — its wall time is in the example's output), and the stop reason.

use crate::error::Result;
use crate::flow::{FlowSettings, Simulator, SolverKind};
use crate::geometry::correction::Correction;
use crate::metric::MetricKind;
use crate::model::{GaussianMixture, LossKind, StatModel};
use crate::quadrature::Scheme;

/// Gap L − L* that counts as converged.
pub const REACH_GAP: f64 = 1e-6;

/// A flow compared at the saddle.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Variant {
    /// −∇L.
    Euclidean,
    /// −G⁻¹∇L.
    Natural,
    /// The natural flow with the capped geodesic acceleration of the α-connection, time scale τ.
    Geodesic { alpha: f64, tau: f64 },
}

impl Variant {
    /// A short label, e.g. "geodesic α=0".
    pub fn label(&self) -> String {
        match self {
            Variant::Euclidean => "euclidean".into(),
            Variant::Natural => "natural".into(),
            Variant::Geodesic { alpha, tau } if *tau == 1.0 => format!("geodesic α={alpha}"),
            Variant::Geodesic { alpha, tau } => format!("geodesic α={alpha} τ={tau}"),
        }
    }

    /// The flow settings of this variant (tsit45, rtol 1e-8, atol 1e-10, grad_tol 1e-9).
    pub fn settings(&self, t_end: f64) -> FlowSettings {
        let (metric, correction) = match *self {
            Variant::Euclidean => (MetricKind::Euclidean, Correction::None),
            Variant::Natural => (MetricKind::Exact, Correction::None),
            Variant::Geodesic { alpha, tau } => (
                MetricKind::Exact,
                Correction::GeodesicAcceleration { alpha, tau },
            ),
        };
        FlowSettings {
            metric,
            correction,
            solver: SolverKind::Tsit45,
            rtol: 1e-8,
            atol: 1e-10,
            t_end,
            grad_tol: 1e-9,
            ..FlowSettings::default()
        }
    }
}

/// One measured escape.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Escape {
    pub sigma: f64,
    pub w: f64,
    /// δ₀, the start's distance off the line (in μ₂ − μ₁).
    pub delta: f64,
    pub variant: String,
    /// First recorded time with |μ₂ − μ₁| ≥ σ (None: never).
    pub t_escape: Option<f64>,
    /// First time with L − L* < [`REACH_GAP`] (None: never by t_end).
    pub t_reach: Option<f64>,
    /// rhs evaluations until `t_reach` (all of them when it was not reached).
    pub rhs_evals: usize,
    /// Accepted steps of the whole run.
    pub steps: usize,
    /// How the run ended.
    pub stop: String,
    /// Largest recorded dL/dt = ∇L·f (≤ 0 for a descent flow).
    pub max_rate: f64,
}

/// The demo's mixture with σ and w (target (−1.5, 2), composite quadrature).
pub fn mixture(sigma: f64, w: f64) -> GaussianMixture {
    GaussianMixture {
        sigma,
        w,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

/// The saddle start δ₀ off the line: θ = (μ̄ − (1−w)δ₀, μ̄ + wδ₀).
pub fn saddle_start(m: &GaussianMixture, delta: f64) -> [f64; 2] {
    let w = m.w;
    let bar = w * m.target[0] + (1.0 - w) * m.target[1];
    [bar - (1.0 - w) * delta, bar + w * delta]
}

/// Integrate `variant` from δ₀ off the saddle until t_end and measure it.
pub fn measure(sigma: f64, w: f64, delta: f64, variant: Variant, t_end: f64) -> Result<Escape> {
    let m = mixture(sigma, w);
    let l_star = m.loss(&m.target);
    let start = saddle_start(&m, delta);
    let tr = Simulator::new(&m, variant.settings(t_end))?.run(&start)?;
    let t_escape = tr
        .steps
        .iter()
        .find(|s| (s.theta[1] - s.theta[0]).abs() >= sigma)
        .map(|s| s.t);
    let t_reach = tr.time_to_reach(l_star, REACH_GAP);
    let rhs_evals = tr
        .steps
        .iter()
        .find(|s| s.loss - l_star < REACH_GAP)
        .map(|s| s.rhs_evals)
        .unwrap_or(tr.stats.rhs_evals);
    Ok(Escape {
        sigma,
        w,
        delta,
        variant: variant.label(),
        t_escape,
        t_reach,
        rhs_evals,
        steps: tr.stats.accepted,
        stop: tr.retcode().name().to_string(),
        max_rate: tr
            .steps
            .iter()
            .map(|s| s.rate)
            .fold(f64::NEG_INFINITY, f64::max),
    })
}
