//! Monotone-KL certificates for the density family (`model.family = "density"`), in the
//! `fisher-flow/certificate/v3` schema: one entry per flow (Fisher–Rao, Wasserstein, WFR)
//! instead of one per start, KL(ρ̂‖π) in place of the loss, and the integrated states θ = log ρ
//! themselves, so that [`super::density_ref`] can recompute every claim from the grid.
//!
//! # Tolerance (`tolerance.formula`)
//!
//! With ρ̂ = ρ/Σ Vρ, uᵢ = log(ρ̂ᵢ/πᵢ), gᵢ = Vρ̂ᵢ(uᵢ − KL) (the gradient of KL in θ) and the
//! round-off scale sₖ = Σ Vρ̂ᵢ(|log ρ̂ᵢ| + |log πᵢ| + 1):
//!
//! tolₖ = 2·εₖ + max(‖gₖ₋₁‖, ‖gₖ‖)·√n·(rtol·‖θₖ‖∞ + atol),  εₖ = (4n + 64)·ε·max(sₖ₋₁, sₖ)
//!
//! — the round-off of two KL evaluations (a sum of n terms, each a few operations) plus the
//! change of KL the solver's local error (below rtol·|θᵢ| + atol per component in RMS norm) can
//! cause. KL may not rise by more than tolₖ over step k. Every flow of KL(ρ‖π) on the grid
//! decreases the discrete KL exactly (Fisher–Rao: dKL/dt = −Var_ρ̂(u); Wasserstein: a reversible
//! Markov generator with stationary π; WFR: their sum).
//!
//! # Stored states
//!
//! Each step carries the SHA-256 of its state θ (the solver's unnormalized log ρ, little-endian
//! f64 bytes); `states[]` holds θ itself at every `state_stride`-th step and the last, with the
//! stride doubled while the stored values exceed [`crate::density::flow::STATE_VALUES_MAX`]
//! (the shipped models store every step). `verify` recomputes mass, KL, ‖g‖, s and ‖θ‖∞ at
//! every stored state by its own code, and for Fisher–Rao compares every state (and every KL)
//! with the closed form (`tolerance.closed_form_formula`).
//!
//! # Keys
//!
//! | key | meaning |
//! |---|---|
//! | `schema`, `model_file`, `model_sha256`, `model_family` (`"density"`), `model_resolved` | as for the parametric certificate |
//! | `grid` | `lo`, `hi`, `points` |
//! | `rtol`, `atol`, `t_end` | the flows' settings |
//! | `tolerance` | `formula`, `closed_form_formula`, `local_error_factor`, `rtol`, `atol` |
//! | `flows[]` | `flow`, `solver`, `stop`, `complete`, `steps[]`, `state_stride`, `states[]`, `max_increase`, `first_violation`, `monotone`, `mass_drift` |
//! | `steps[]` | `index`, `t`, `h`, `kl`, `grad_norm`, `kl_scale` (sₖ), `theta_max` (‖θₖ‖∞), `mass` (Σ Vρ), `tolerance` (tolₖ, 0 for row 0), `state_sha256` |
//! | `states[]` | `index` (into `steps`), `log_rho` (θ, unnormalized as integrated) |
//! | `complete`, `monotone` | every flow reached t_end; and every flow is monotone |

use super::SCHEMA;
use crate::density::flow::DensityStop;
use crate::density::{DensityExperiment, DensityPath};
use serde::{Deserialize, Serialize};

/// The monotonicity tolerance of a density certificate, as written into it.
pub const DENSITY_TOLERANCE_FORMULA: &str = "tol_k = 2*eps_k + max(|g_k-1|,|g_k|)*sqrt(n)*(rtol*max_i|theta_k,i| + atol), eps_k = (4n+64)*eps*max(s_k-1, s_k), g_i = V*rho_i*(log(rho_i/pi_i) - KL), s = sum_i V*rho_i*(|log rho_i| + |log pi_i| + 1), rho normalized";

/// How `verify` bounds a Fisher–Rao state's distance to the closed form.
pub const DENSITY_CLOSED_FORM_FORMULA: &str = "osc_i(log rho_k,i - log rho*_i(t_k)) <= B_k = sum_{j=1..k} 2*F*sqrt(n)*(rtol*max_i|theta_j,i| + atol) + 64*eps*(1 + max_i|theta_k,i|), log rho*(t) = e^-t log rho_0 + (1-e^-t) log pi normalized, osc = max - min (the flow contracts osc at rate 1, so local errors add up); |KL_k - KL*(t_k)| <= B_k*e^B_k*(E*|u* - KL*| + 2*B_k) + 2*eps_k at steps without a stored state";

/// One certified step of a density flow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DensityStep {
    pub index: usize,
    pub t: f64,
    /// tₖ − tₖ₋₁ (0 for row 0).
    pub h: f64,
    /// KL(ρ̂ₖ‖π).
    pub kl: f64,
    /// ‖∇_θ KL‖₂.
    pub grad_norm: f64,
    /// sₖ = Σ Vρ̂ᵢ(|log ρ̂ᵢ| + |log πᵢ| + 1).
    pub kl_scale: f64,
    /// ‖θₖ‖∞.
    pub theta_max: f64,
    /// Σ Vρ (1 at the start; conserved by every flow).
    pub mass: f64,
    /// tolₖ (0 for row 0).
    pub tolerance: f64,
    /// SHA-256 of θₖ's little-endian bytes.
    pub state_sha256: String,
}

/// A stored state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DensityState {
    /// Index into `steps`.
    pub index: usize,
    /// θ = log ρ as integrated (unnormalized).
    pub log_rho: Vec<f64>,
}

/// The verdict for one flow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DensityFlowCert {
    /// `fisher-rao`, `wasserstein` or `wfr`.
    pub flow: String,
    pub solver: String,
    /// `finished`, `step-cap`, `non-finite` or `solver-failure: …`.
    pub stop: String,
    /// Whether it reached t_end.
    pub complete: bool,
    pub steps: Vec<DensityStep>,
    pub state_stride: usize,
    pub states: Vec<DensityState>,
    /// Largest KL increase over a step.
    pub max_increase: f64,
    /// First step whose increase exceeds its tolerance (or has a non-finite value).
    pub first_violation: Option<usize>,
    pub monotone: bool,
    /// Largest |Σ Vρ − 1| over the steps.
    pub mass_drift: f64,
}

/// How the tolerances were derived.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DensityTolerance {
    pub formula: String,
    pub closed_form_formula: String,
    /// F of the closed-form bound: the solvers' measured estimator-reliability factor
    /// ([`super::verify::LOCAL_ERROR_FACTOR`]).
    pub local_error_factor: f64,
    pub rtol: f64,
    pub atol: f64,
}

/// The grid of the certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DensityGrid {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub points: Vec<usize>,
}

/// A monotone-KL certificate of a density run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DensityCertificate {
    pub schema: String,
    pub model_file: String,
    pub model_sha256: String,
    pub model_family: String,
    pub model_resolved: serde_json::Value,
    pub grid: DensityGrid,
    pub rtol: f64,
    pub atol: f64,
    pub t_end: f64,
    pub tolerance: DensityTolerance,
    pub flows: Vec<DensityFlowCert>,
    pub complete: bool,
    pub monotone: bool,
}

/// The `stop` string of a flow.
pub fn stop_name(s: &DensityStop) -> String {
    match s {
        DensityStop::Finished => "finished".into(),
        DensityStop::StepCap => "step-cap".into(),
        DensityStop::NonFinite => "non-finite".into(),
        DensityStop::SolverFailure(m) => format!("solver-failure: {m}"),
    }
}

/// tolₖ of [`DENSITY_TOLERANCE_FORMULA`] from the claimed values of two consecutive steps.
pub fn step_tolerance(n: usize, rtol: f64, atol: f64, a: &DensityStep, b: &DensityStep) -> f64 {
    let eps = (4.0 * n as f64 + 64.0) * f64::EPSILON * a.kl_scale.max(b.kl_scale);
    2.0 * eps + a.grad_norm.max(b.grad_norm) * (n as f64).sqrt() * (rtol * b.theta_max + atol)
}

/// (max_increase, first_violation, mass_drift) from the claimed values; `verify` reproduces
/// them exactly.
pub fn summarize(steps: &[DensityStep]) -> (f64, Option<usize>, f64) {
    let mut max_increase = 0.0f64;
    let mut first = None;
    let mut drift = 0.0f64;
    for (k, s) in steps.iter().enumerate() {
        let finite = s.kl.is_finite()
            && s.grad_norm.is_finite()
            && s.kl_scale.is_finite()
            && s.theta_max.is_finite()
            && s.mass.is_finite();
        if k > 0 {
            let rise = s.kl - steps[k - 1].kl;
            if rise.is_finite() {
                max_increase = max_increase.max(rise);
            }
            if (rise > s.tolerance || rise.is_nan()) && first.is_none() {
                first = Some(k);
            }
        }
        if !finite && first.is_none() {
            first = Some(k);
        }
        if s.mass.is_finite() {
            drift = drift.max((s.mass - 1.0).abs());
        }
    }
    (max_increase, first, drift)
}

fn certify(path: &DensityPath, n: usize, rtol: f64, atol: f64) -> DensityFlowCert {
    let mut steps: Vec<DensityStep> = Vec::with_capacity(path.times.len());
    for k in 0..path.times.len() {
        let mut s = DensityStep {
            index: k,
            t: path.times[k],
            h: if k > 0 {
                path.times[k] - path.times[k - 1]
            } else {
                0.0
            },
            kl: path.kl[k],
            grad_norm: path.grad_norm[k],
            kl_scale: path.kl_scale[k],
            theta_max: path.theta_max[k],
            mass: path.mass[k],
            tolerance: 0.0,
            state_sha256: path.state_sha256[k].clone(),
        };
        if k > 0 {
            s.tolerance = step_tolerance(n, rtol, atol, &steps[k - 1], &s);
        }
        steps.push(s);
    }
    let (max_increase, first_violation, mass_drift) = summarize(&steps);
    DensityFlowCert {
        flow: path.flow.name().into(),
        solver: path.solver.clone(),
        stop: stop_name(&path.stop),
        complete: path.finished(),
        steps,
        state_stride: path.state_stride,
        states: path
            .states
            .iter()
            .map(|(i, th)| DensityState {
                index: *i,
                log_rho: th.clone(),
            })
            .collect(),
        max_increase,
        first_violation,
        monotone: first_violation.is_none(),
        mass_drift,
    }
}

impl DensityCertificate {
    /// The certificate of the three flows `paths` of `exp`.
    pub fn build(exp: &DensityExperiment, paths: &[DensityPath]) -> DensityCertificate {
        let (rtol, atol) = (exp.settings.rtol, exp.settings.atol);
        let n = exp.grid.len();
        let flows: Vec<DensityFlowCert> = paths.iter().map(|p| certify(p, n, rtol, atol)).collect();
        let complete = flows.iter().all(|f| f.complete);
        let monotone = complete && flows.iter().all(|f| f.monotone);
        DensityCertificate {
            schema: SCHEMA.into(),
            model_file: exp.path.display().to_string(),
            model_sha256: exp.file_hash.clone(),
            model_family: "density".into(),
            model_resolved: serde_json::to_value(&exp.resolved).unwrap_or(serde_json::Value::Null),
            grid: DensityGrid {
                lo: exp.grid.lo.clone(),
                hi: exp.grid.hi.clone(),
                points: exp.grid.n.clone(),
            },
            rtol,
            atol,
            t_end: exp.settings.t_end,
            tolerance: DensityTolerance {
                formula: DENSITY_TOLERANCE_FORMULA.into(),
                closed_form_formula: DENSITY_CLOSED_FORM_FORMULA.into(),
                local_error_factor: super::verify::LOCAL_ERROR_FACTOR,
                rtol,
                atol,
            },
            flows,
            complete,
            monotone,
        }
    }
}
