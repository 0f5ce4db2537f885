//! Monotone-loss certificates: along every accepted step (and at dense-output points inside
//! it) the loss must not rise by more than a tolerance derived from the evaluation error.
//!
//! Tolerance for the step from θₖ to θₖ₊₁ (stated in the file as `tolerance.formula`):
//!
//! tolₖ = 2·ε_q·max(|Lₖ|, |Lₖ₊₁|) + max(‖∇Lₖ‖, ‖∇Lₖ₊₁‖)·√n·(rtol·‖θₖ₊₁‖∞ + atol)
//!
//! The first term bounds the quadrature error of two loss evaluations (ε_q is the scheme's
//! measured relative error); the second bounds the change of L caused by the solver's local
//! error, which the step controller keeps below rtol·|θᵢ| + atol per component in RMS norm.
//! dL/dt = −∇Lᵀ(G+λI)⁺∇L must be ≤ 0 at every step.

use crate::config::Experiment;
use crate::model::StatModel;
use crate::trajectory::Trajectory;
use serde::{Deserialize, Serialize};

/// Schema identifier written into every certificate.
pub const SCHEMA: &str = "fisher-flow/certificate/v1";

/// One certified step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertStep {
    pub t: f64,
    pub theta: Vec<f64>,
    pub loss: f64,
    /// dL/dt = −∇Lᵀ(G+λI)⁺∇L.
    pub rate: f64,
    /// Smallest eigenvalue of the metric at θ.
    pub min_eig: f64,
    /// Allowed increase of L over the step that ends here (0 for the first row).
    pub tolerance: f64,
    /// (t, L) at interior points of the step from the solver's dense output.
    pub interior: Vec<(f64, f64)>,
}

/// The verdict for one trajectory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertTrajectory {
    pub start: Vec<f64>,
    pub steps: Vec<CertStep>,
    /// Largest increase of L between consecutive samples (steps and interior points).
    pub max_increase: f64,
    /// Largest dL/dt (must be ≤ 0).
    pub max_rate: f64,
    /// Index of the first step whose increase exceeds its tolerance, if any.
    pub first_violation: Option<usize>,
    pub monotone: bool,
}

/// How the tolerance was derived.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToleranceBasis {
    pub formula: String,
    /// ε_q: relative error of one loss evaluation (quadrature).
    pub quadrature_relative_error: f64,
    pub rtol: f64,
    pub atol: f64,
}

/// A monotone-loss certificate for all trajectories of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Monotone {
    pub schema: String,
    pub model_file: String,
    pub model_sha256: String,
    pub model_resolved: serde_json::Value,
    pub metric: String,
    pub damping: f64,
    pub solver: String,
    pub quadrature: String,
    pub tolerance: ToleranceBasis,
    pub trajectories: Vec<CertTrajectory>,
    pub monotone: bool,
}

impl Monotone {
    /// Build the certificate of `trajectories` computed for `exp`.
    pub fn build(exp: &Experiment, model: &dyn StatModel, trajectories: &[Trajectory]) -> Monotone {
        let eq = model.evaluation_error();
        let (rtol, atol) = (exp.flow.rtol, exp.flow.atol);
        let n = model.dim() as f64;
        let trs = trajectories
            .iter()
            .map(|tr| certify(tr, eq, rtol, atol, n))
            .collect::<Vec<_>>();
        let monotone = trs.iter().all(|t| t.monotone);
        Monotone {
            schema: SCHEMA.into(),
            model_file: exp.path.display().to_string(),
            model_sha256: exp.file_hash.clone(),
            model_resolved: serde_json::to_value(&exp.resolved).unwrap_or(serde_json::Value::Null),
            metric: exp.flow.metric.name().into(),
            damping: exp.flow.damping,
            solver: exp.flow.solver.name().into(),
            quadrature: exp.model.describe(),
            tolerance: ToleranceBasis {
                formula: "tol_k = 2*eps_q*max(|L_k|,|L_k+1|) + max(|grad L_k|,|grad L_k+1|)*sqrt(n)*(rtol*max_i|theta_k+1,i| + atol)".into(),
                quadrature_relative_error: eq,
                rtol,
                atol,
            },
            trajectories: trs,
            monotone,
        }
    }
}

/// The derived tolerance for one step.
pub fn step_tolerance(eq: f64, rtol: f64, atol: f64, n: f64, l: [f64; 2], g: [f64; 2], theta: &[f64]) -> f64 {
    let tmax = theta.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    2.0 * eq * l[0].abs().max(l[1].abs()) + g[0].max(g[1]) * n.sqrt() * (rtol * tmax + atol)
}

fn certify(tr: &Trajectory, eq: f64, rtol: f64, atol: f64, n: f64) -> CertTrajectory {
    let mut steps = Vec::with_capacity(tr.steps.len());
    let mut max_increase = f64::NEG_INFINITY;
    let mut max_rate = f64::NEG_INFINITY;
    let mut first_violation = None;
    for (k, s) in tr.steps.iter().enumerate() {
        let mut tol = 0.0;
        if k > 0 {
            let p = &tr.steps[k - 1];
            tol = step_tolerance(eq, rtol, atol, n, [p.loss, s.loss], [p.grad_norm, s.grad_norm], &s.theta);
            let mut prev = p.loss;
            let mut worst = f64::NEG_INFINITY;
            for &(_, l) in s.interior.iter().chain(std::iter::once(&(s.t, s.loss))) {
                worst = worst.max(l - prev);
                prev = l;
            }
            max_increase = max_increase.max(worst);
            if (worst > tol || !worst.is_finite()) && first_violation.is_none() {
                first_violation = Some(k);
            }
        }
        max_rate = max_rate.max(s.rate);
        if (s.rate > 0.0 || !s.rate.is_finite()) && first_violation.is_none() {
            first_violation = Some(k);
        }
        steps.push(CertStep {
            t: s.t,
            theta: s.theta.clone(),
            loss: s.loss,
            rate: s.rate,
            min_eig: s.min_eig,
            tolerance: tol,
            interior: s.interior.clone(),
        });
    }
    CertTrajectory {
        start: tr.start.clone(),
        steps,
        max_increase: if max_increase.is_finite() { max_increase } else { 0.0 },
        max_rate,
        first_violation,
        monotone: first_violation.is_none(),
    }
}
