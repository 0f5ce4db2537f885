//! Monotone-loss certificates (schema `fisher-flow/certificate/v3`): build them from computed
//! trajectories ([`Monotone::build`]) and check them independently ([`verify`]).
//!
//! Along the flow dθ/dt = −(I+λ1)⁺∇L the loss obeys dL/dt = −∇Lᵀ(I+λ1)⁺∇L ≤ 0. A certificate
//! records, for every accepted step, what is needed to re-check that claim from the model alone:
//! t, θ, L, ‖∇L‖, dL/dt, the smallest eigenvalue of I(θ) (or a Cholesky success flag when
//! n > [`EIGEN_LIMIT`]), the loss at k ≥ 2 interior points of the step (solver dense output),
//! and the allowed increase of L over the step.
//!
//! # Tolerance (stated in the file as `tolerance.formula`)
//!
//! tolₖ = 2·ε_q·max(|Lₖ₋₁|, |Lₖ|) + max(‖∇Lₖ₋₁‖, ‖∇Lₖ‖)·√n·(rtol·‖θₖ‖∞ + atol)
//!
//! The first term bounds the quadrature error of two loss evaluations (ε_q is the scheme's
//! measured relative error, [`crate::quadrature::Scheme::relative_error`]); the second bounds the
//! change of L caused by the solver's local error, which the step controller keeps below
//! rtol·|θᵢ| + atol per component in RMS norm (so below √n times that in each component).
//! The loss may not rise by more than tolₖ between any two consecutive samples of step k
//! (θₖ₋₁, the interior points, θₖ), and dL/dt ≤ 0 at every step.
//!
//! # Schema v3 (JSON keys)
//!
//! | key | meaning |
//! |---|---|
//! | `schema` | `"fisher-flow/certificate/v3"` |
//! | `model_file`, `model_sha256` | the model file and the SHA-256 of its bytes |
//! | `model_family`, `param_names` | e.g. `"gaussian-mixture"`, `["mu1", "mu2"]` |
//! | `model_resolved` | the model file with defaults filled in and command-line overrides applied |
//! | `metric`, `damping` | `"exact"` or `"euclidean"`, and λ |
//! | `solver`, `rtol`, `atol`, `interior_points` | the ODE method and its tolerances; k |
//! | `quadrature`, `quadrature_scheme` | description and settings of the rule for E_x[·] |
//! | `tolerance` | `formula`, `quadrature_relative_error` ε_q, `rtol`, `atol`, `continuity_formula` |
//! | `trajectories[]` | `start`, `stop`, `complete`, `steps[]`, `max_increase`, `max_rate`, `first_violation`, `monotone` |
//! | `steps[]` | `index`, `t`, `h` (= tₖ − tₖ₋₁), `theta`, `loss`, `grad_norm`, `rate` (dL/dt), `min_eig` (of I, or null), `cholesky_ok` (null when `min_eig` is given), `tolerance` (tolₖ; 0 for row 0), `interior` ([t, L] pairs at tₖ₋₁ + j·h/(k+1), j = 1..k) |
//! | `complete` | true iff every trajectory ended as asked (t_end or the gradient test) |
//! | `monotone` | true iff every trajectory is complete and monotone |
//!
//! A trajectory that stopped early (solver failure, non-finite values, step cap) is kept with
//! `complete: false`; its steps are still checked, but the certificate's `monotone` is false:
//! nothing is certified for a run that did not finish.

pub mod density;
pub mod density_ref;
pub mod mlp_ref;
pub mod reference;
pub mod verify;
pub mod vi_ref;

pub use verify::{Finding, VerifyReport, verify};

use crate::config::Experiment;
use crate::model::StatModel;
use crate::quadrature::Scheme;
use crate::trajectory::Trajectory;
use serde::{Deserialize, Serialize};

/// A certificate of either kind: parametric trajectories or the density family's flows
/// (`model_family = "density"`, [`density`]).
#[derive(Clone, Debug)]
pub enum Certificate {
    /// [`Monotone`]: the parametric families.
    Monotone(Box<Monotone>),
    /// [`density::DensityCertificate`].
    Density(Box<density::DensityCertificate>),
}

/// Read a certificate of either kind (the density kind by its `model_family`); unusable input
/// is an input error (exit 2).
pub fn load_any(path: &std::path::Path) -> crate::error::Result<Certificate> {
    let value = verify::load_value(path)?;
    if value.get("model_family").and_then(|v| v.as_str()) == Some("density") {
        serde_json::from_value(value)
            .map(|c| Certificate::Density(Box::new(c)))
            .map_err(|e| crate::error::Error::Parse {
                path: path.to_path_buf(),
                message: format!("does not match schema {SCHEMA} (density): {e}"),
            })
    } else {
        verify::from_value(path, value).map(|c| Certificate::Monotone(Box::new(c)))
    }
}

/// Verify a certificate of either kind ([`verify()`] or [`density_ref::verify_density`]).
pub fn verify_any(
    cert: &Certificate,
    model_file: Option<&std::path::Path>,
) -> crate::error::Result<VerifyReport> {
    match cert {
        Certificate::Monotone(c) => verify(c, model_file),
        Certificate::Density(c) => density_ref::verify_density(c, model_file),
    }
}

/// Schema identifier written into every certificate.
pub const SCHEMA: &str = "fisher-flow/certificate/v3";

/// Above this dimension the certificate records a Cholesky success flag instead of λ_min(I).
pub const EIGEN_LIMIT: usize = 256;

/// The stated monotonicity tolerance, as written into certificates.
pub const TOLERANCE_FORMULA: &str = "tol_k = 2*eps_q*max(|L_k-1|,|L_k|) + max(|grad L_k-1|,|grad L_k|)*sqrt(n)*(rtol*max_i|theta_k,i| + atol)";

/// How `verify` bounds the distance between θₖ and its own re-integration of step k.
pub const CONTINUITY_FORMULA: &str = "|theta_k,i - R(theta_k-1; t_k-1 -> t_k)_i| <= 25*sqrt(n)*(rtol*max(|theta_k,i|,|R_i|) + atol) + est_i + h*|df|, R = verify's re-integration: one Bogacki-Shampine 3(2) step if its error estimate est_i (that of the 2nd-order solution) is below a quarter of the first term, else Dormand-Prince 5(4) with sub-steps halved until est_i is (at most 64), |df| <= |M^+|/(1-|M^+|dI)*(dg + dI*|x|) the velocity error from the run's evaluation error; 25 = twice the measured reliability factor of the solvers' error estimates; the same for every solver";

/// One certified step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertStep {
    /// Position in the trajectory (0 = start).
    pub index: usize,
    pub t: f64,
    /// Length of the step that ends here, tₖ − tₖ₋₁ (0 for row 0).
    pub h: f64,
    pub theta: Vec<f64>,
    pub loss: f64,
    /// ‖∇L(θ)‖.
    pub grad_norm: f64,
    /// dL/dt = −∇Lᵀ(I+λ1)⁺∇L.
    pub rate: f64,
    /// Smallest eigenvalue of the Fisher matrix I(θ) (null when n > [`EIGEN_LIMIT`]).
    pub min_eig: Option<f64>,
    /// Whether I(θ)+λ1 has a Cholesky factor (only when `min_eig` is null).
    pub cholesky_ok: Option<bool>,
    /// Allowed increase of L over the step that ends here (0 for row 0).
    pub tolerance: f64,
    /// (t, L) at interior points of the step from the solver's dense output.
    pub interior: Vec<(f64, f64)>,
}

/// The verdict for one trajectory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertTrajectory {
    pub start: Vec<f64>,
    /// Why integration stopped.
    pub stop: String,
    /// Whether it ended as asked (t_end or the gradient test); false for a solver failure,
    /// non-finite values or the step cap, with `stop` saying why.
    pub complete: bool,
    pub steps: Vec<CertStep>,
    /// Largest increase of L between consecutive samples (steps and interior points).
    pub max_increase: f64,
    /// Largest dL/dt (must be ≤ 0).
    pub max_rate: f64,
    /// Index of the first step whose increase exceeds its tolerance, if any.
    pub first_violation: Option<usize>,
    pub monotone: bool,
}

/// How the tolerances were derived.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToleranceBasis {
    pub formula: String,
    /// ε_q: relative error of one loss evaluation (quadrature).
    pub quadrature_relative_error: f64,
    pub rtol: f64,
    pub atol: f64,
    /// How `verify` compares θₖ with its own integration of the step.
    pub continuity_formula: String,
}

/// A monotone-loss certificate for all trajectories of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Monotone {
    pub schema: String,
    pub model_file: String,
    pub model_sha256: String,
    pub model_family: String,
    pub param_names: Vec<String>,
    pub model_resolved: serde_json::Value,
    pub metric: String,
    pub damping: f64,
    pub solver: String,
    pub rtol: f64,
    pub atol: f64,
    pub interior_points: usize,
    pub quadrature: String,
    #[serde(default)]
    pub quadrature_scheme: Option<Scheme>,
    pub tolerance: ToleranceBasis,
    pub trajectories: Vec<CertTrajectory>,
    /// True iff every trajectory is complete.
    pub complete: bool,
    /// True iff every trajectory is complete and monotone.
    pub monotone: bool,
}

impl Monotone {
    /// Build the certificate of `trajectories` computed for `exp` (whose model is `model`).
    pub fn build(exp: &Experiment, model: &dyn StatModel, trajectories: &[Trajectory]) -> Monotone {
        let trs = trajectories
            .iter()
            .map(|tr| Monotone::certify(exp, model, tr))
            .collect::<Vec<_>>();
        Monotone::assemble(exp, model, trs)
    }

    /// The certificate entry of one trajectory computed for `exp` (whose model is `model`):
    /// what [`Monotone::build`] does per trajectory (the study layer calls it as each
    /// trajectory finishes).
    pub fn certify(exp: &Experiment, model: &dyn StatModel, tr: &Trajectory) -> CertTrajectory {
        let eq = model.evaluation_error();
        certify(
            tr,
            model,
            exp.flow.damping,
            eq,
            exp.flow.rtol,
            exp.flow.atol,
        )
    }

    /// The certificate of per-trajectory entries from [`Monotone::certify`], in order.
    pub fn assemble(exp: &Experiment, model: &dyn StatModel, trs: Vec<CertTrajectory>) -> Monotone {
        let eq = model.evaluation_error();
        let (rtol, atol) = (exp.flow.rtol, exp.flow.atol);
        let complete = trs.iter().all(|t| t.complete);
        let monotone = trs.iter().all(|t| t.monotone && t.complete);
        Monotone {
            schema: SCHEMA.into(),
            model_file: exp.path.display().to_string(),
            model_sha256: exp.file_hash.clone(),
            model_family: exp.resolved.model.family.clone(),
            param_names: model.param_names(),
            model_resolved: serde_json::to_value(&exp.resolved).unwrap_or(serde_json::Value::Null),
            metric: exp.flow.metric.name().into(),
            damping: exp.flow.damping,
            solver: exp.flow.solver.name().into(),
            rtol,
            atol,
            interior_points: exp.flow.interior_points,
            quadrature: exp.model.describe(),
            quadrature_scheme: exp.model.as_mixture().map(|m| m.scheme),
            tolerance: ToleranceBasis {
                formula: TOLERANCE_FORMULA.into(),
                quadrature_relative_error: eq,
                rtol,
                atol,
                continuity_formula: CONTINUITY_FORMULA.into(),
            },
            trajectories: trs,
            complete,
            monotone,
        }
    }
}

/// The derived tolerance for one step: `l` and `g` are the losses and gradient norms at both
/// ends, `theta` the end point, `n` the dimension.
pub fn step_tolerance(
    eq: f64,
    rtol: f64,
    atol: f64,
    n: f64,
    l: [f64; 2],
    g: [f64; 2],
    theta: &[f64],
) -> f64 {
    let tmax = theta.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    2.0 * eq * l[0].abs().max(l[1].abs()) + g[0].max(g[1]) * n.sqrt() * (rtol * tmax + atol)
}

/// λ_min(I(θ)) when n ≤ [`EIGEN_LIMIT`], else whether I(θ)+λ1 is Cholesky-factorizable.
/// Neither above the dense limit (the n×n Fisher is not formed).
fn spectrum_at(model: &dyn StatModel, theta: &[f64], damping: f64) -> (Option<f64>, Option<bool>) {
    if model.dim() > crate::metric::provider::DENSE_LIMIT {
        return (None, None);
    }
    let fisher = model.fisher(theta);
    if model.dim() <= EIGEN_LIMIT {
        let e = crate::linalg::sym_eigen(&fisher);
        (Some(e.values[0]), None)
    } else {
        let n = model.dim();
        let m = fisher + nalgebra::DMatrix::identity(n, n) * damping;
        (None, Some(crate::linalg::cholesky(&m).is_some()))
    }
}

/// (max_increase, max_rate, first_violation) from the claimed values of `steps`: the largest
/// rise of L between consecutive samples (θₖ₋₁, interior points, θₖ), the largest dL/dt, and
/// the first step whose rise exceeds its tolerance, whose rate is positive, or that has a
/// non-finite value. [`verify`] reproduces these exactly.
pub fn summarize(steps: &[CertStep]) -> (f64, f64, Option<usize>) {
    let mut max_increase = f64::NEG_INFINITY;
    let mut max_rate = f64::NEG_INFINITY;
    let mut first_violation = None;
    for (k, s) in steps.iter().enumerate() {
        if k > 0 {
            let mut prev = steps[k - 1].loss;
            let mut worst = f64::NEG_INFINITY;
            for &(_, l) in s.interior.iter().chain(std::iter::once(&(s.t, s.loss))) {
                worst = worst.max(l - prev);
                prev = l;
            }
            if worst.is_finite() {
                max_increase = max_increase.max(worst);
            }
            if (worst > s.tolerance || !worst.is_finite()) && first_violation.is_none() {
                first_violation = Some(k);
            }
        }
        if s.rate.is_finite() {
            max_rate = max_rate.max(s.rate);
        }
        let finite =
            s.loss.is_finite() && s.grad_norm.is_finite() && s.theta.iter().all(|v| v.is_finite());
        if (s.rate > 0.0 || !s.rate.is_finite() || !finite) && first_violation.is_none() {
            first_violation = Some(k);
        }
    }
    (
        if max_increase.is_finite() {
            max_increase
        } else {
            0.0
        },
        if max_rate.is_finite() { max_rate } else { 0.0 },
        first_violation,
    )
}

fn certify(
    tr: &Trajectory,
    model: &dyn StatModel,
    damping: f64,
    eq: f64,
    rtol: f64,
    atol: f64,
) -> CertTrajectory {
    let n = model.dim() as f64;
    let mut steps = Vec::with_capacity(tr.steps.len());
    // A step of length 0 that repeats the previous θ (a method switch records the same
    // state again) carries no information: leave it out.
    let kept: Vec<&crate::trajectory::Step> = tr
        .steps
        .iter()
        .enumerate()
        .filter(|(k, s)| *k == 0 || !(s.t == tr.steps[k - 1].t && s.theta == tr.steps[k - 1].theta))
        .map(|(_, s)| s)
        .collect();
    for (k, s) in kept.iter().enumerate() {
        let mut tol = 0.0;
        let mut h = 0.0;
        if k > 0 {
            let p = kept[k - 1];
            h = s.t - p.t;
            tol = step_tolerance(
                eq,
                rtol,
                atol,
                n,
                [p.loss, s.loss],
                [p.grad_norm, s.grad_norm],
                &s.theta,
            );
        }
        let (min_eig, cholesky_ok) = spectrum_at(model, &s.theta, damping);
        steps.push(CertStep {
            index: k,
            t: s.t,
            h,
            theta: s.theta.clone(),
            loss: s.loss,
            grad_norm: s.grad_norm,
            rate: s.rate,
            min_eig,
            cholesky_ok,
            tolerance: tol,
            interior: s.interior.clone(),
        });
    }
    let (max_increase, max_rate, first_violation) = summarize(&steps);
    CertTrajectory {
        start: tr.start.clone(),
        stop: tr.stop.to_string(),
        complete: tr.succeeded(),
        steps,
        max_increase,
        max_rate,
        first_violation,
        monotone: first_violation.is_none(),
    }
}
