//! `verify`: re-check a certificate from the model alone.
//!
//! Only t and θ (and the claimed values being checked) are read from the steps; every loss,
//! gradient, rate and eigenvalue is recomputed by an independent implementation of the model
//! ([`super::reference`] for the mixture: its own log-density and an adaptive Gauss–Kronrod
//! rule; [`super::mlp_ref`] for the MLP: plain loops, not the run's gemm), and each step is
//! re-integrated by verify's own adaptive Dormand–Prince 5(4). Nothing depends on the
//! certificate's `solver` label. Checked:
//!
//! 1. header: every setting equals `model_resolved`'s (metric, solver, rtol, atol, damping,
//!    interior points, quadrature, ε_q, the formulas), the number of trajectories equals the
//!    number of starts and each start is the resolved one, `complete` and `monotone` agree
//!    with the trajectories; with `--model FILE`, the file's SHA-256 and its resolved model
//!    (with the certificate's command-line settings) equal the certificate's in every field;
//! 2. per trajectory: `stop` is consistent with `complete` and with the last step (t = t_end,
//!    the gradient test, the step cap); `max_rate`, `max_increase`, `first_violation` and
//!    `monotone` are reproduced from the claimed values exactly as `build` computes them;
//! 3. structure: indices 0, 1, …; row 0 is the start; tₖ > tₖ₋₁, h = tₖ − tₖ₋₁, interior
//!    times at tₖ₋₁ + j·h/(k+1) (a deleted step breaks this);
//! 4. per step, each claimed value against the re-evaluation within its error bound: L
//!    ((ε_q + ε_ref)·scale), ‖∇L‖ (δg), dL/dt ≤ 0 and its value (perturbation bound of the
//!    solve, see `run_errors`), λ_min(I) (Weyl) or the Cholesky flag; tolₖ reproduced from the
//!    claimed values by [`super::TOLERANCE_FORMULA`];
//! 5. continuity ([`super::CONTINUITY_FORMULA`]): DP5 from θₖ₋₁ over [tₖ₋₁, tₖ] lands on θₖ
//!    within [`LOCAL_ERROR_FACTOR`]·√n·(rtol·|θᵢ| + atol) + DP error estimate + h·|δf|;
//! 6. interior claims (dense output) against the re-evaluation at the re-integrated points.

use super::mlp_ref::RefMlp;
use super::reference::RefMixture;
use super::{CONTINUITY_FORMULA, CertStep, Monotone, SCHEMA, TOLERANCE_FORMULA, step_tolerance};
use crate::config::{Experiment, ModelFile, Overrides};
use crate::error::{Error, Result};
use crate::model::StatModel;
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// The first failed check.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Finding {
    /// Trajectory index (None for a header claim).
    pub trajectory: Option<usize>,
    /// Step index (None for a header or trajectory-level claim).
    pub step: Option<usize>,
    /// What failed, with the numbers.
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.trajectory, self.step) {
            (Some(t), Some(s)) => write!(f, "trajectory {t}, step {s}: ")?,
            (Some(t), None) => write!(f, "trajectory {t}: ")?,
            _ => write!(f, "header: ")?,
        }
        write!(f, "{}", self.reasons.join("; "))
    }
}

/// What `verify` found. `failure` is None iff every claim holds.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub trajectories: usize,
    /// Steps fully checked.
    pub steps_checked: usize,
    /// Largest |claimed − re-evaluated| / allowed, over losses (steps and interior points).
    pub worst_loss_ratio: f64,
    /// Largest |claimed − re-evaluated| / allowed, over rates.
    pub worst_rate_ratio: f64,
    /// Largest |θₖ − RK4| / allowed, over components.
    pub worst_continuity_ratio: f64,
    /// Largest re-evaluated increase of L between consecutive samples / tolₖ.
    pub worst_increase_ratio: f64,
    /// Largest |θₖ,ᵢ − DP5ᵢ| / (√n·(rtol·|θₖ,ᵢ| + atol)): the measured local error in units
    /// of the controller's bound.
    pub worst_local_error: f64,
    pub failure: Option<Finding>,
}

impl VerifyReport {
    /// A report on `trajectories` trajectories with nothing checked yet.
    pub fn new(trajectories: usize) -> Self {
        VerifyReport {
            trajectories,
            steps_checked: 0,
            worst_loss_ratio: 0.0,
            worst_rate_ratio: 0.0,
            worst_continuity_ratio: 0.0,
            worst_increase_ratio: 0.0,
            worst_local_error: 0.0,
            failure: None,
        }
    }

    /// True iff every check passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Values of the model at one θ from an independent reference, with the scales (sums of
/// absolute values of the summed terms) that their errors are relative to.
#[derive(Clone, Debug)]
pub struct Point {
    pub loss: f64,
    pub grad: Vec<f64>,
    pub fisher: DMatrix<f64>,
    /// Scale of the loss error (∫p*|log p_θ| or the mean |ℓᵢ|).
    pub loss_scale: f64,
    /// 2-norm of the per-component gradient scales.
    pub grad_scale: f64,
    /// Frobenius norm of the Fisher scale.
    pub fisher_scale: f64,
}

/// An independent evaluator of a model (not the run's code).
pub trait Reference: Sync {
    fn dim(&self) -> usize;
    fn point(&self, th: &[f64]) -> Point;
    /// L and ∇L at θ (the Fisher fields may be left empty): what an interior point needs.
    fn loss_point(&self, th: &[f64]) -> Point {
        self.point(th)
    }
    /// Relative error of one evaluation (to the `*_scale` fields).
    fn rel_error(&self) -> f64;
    /// The empirical Fisher at θ and a bound on its error (Frobenius norm), if the model
    /// has one.
    fn empirical_fisher(&self, _th: &[f64]) -> Option<(DMatrix<f64>, f64)> {
        None
    }
}

/// A re-evaluated point with the metric solved there.
#[derive(Clone, Debug)]
struct Eval {
    p: Point,
    /// x = M⁺∇L (the velocity is −x).
    x: DVector<f64>,
    /// ‖M⁺‖₂ (1/the smallest eigenvalue kept).
    minv: f64,
    /// λ_min(I).
    lmin: f64,
    /// Bound on the Frobenius norm of the run's metric error (None: that of the exact Fisher).
    metric_err: Option<f64>,
}

impl Eval {
    fn velocity(&self) -> Vec<f64> {
        self.x.iter().map(|v| -v).collect()
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// d ≤ tol, false when either is NaN (a non-finite re-evaluation never passes).
fn within(d: f64, tol: f64) -> bool {
    d <= tol
}

fn fail(traj: Option<usize>, step: Option<usize>, reasons: Vec<String>) -> Option<Finding> {
    Some(Finding {
        trajectory: traj,
        step,
        reasons,
    })
}

/// Factor on the controller's per-step bound in the continuity check (see
/// [`super::CONTINUITY_FORMULA`]). Error model: an accepted step has an *estimated* local
/// error ≤ 1 in the weighted RMS norm, i.e. |eᵢ| ≤ √n·(rtol·|θᵢ| + atol) per component, with
/// an internal tolerance never looser than the stated one; the true local error is the
/// estimate times an estimator-reliability factor (one-step methods: asymptotically 1, more
/// for large steps of a strongly curved flow; BDF: also the past points' errors). That factor
/// is measured, like the quadrature's ε_q: |θₖ − DP5| in units of the bound, with DP5
/// sub-steps halved until its estimate is below 1% of the bound, over the composite-rule
/// cases of `tests/certificate_prop.rs` (Gauss–Hermite cases carry the quadrature's velocity
/// error, which `h·|δf|` covers) after the solvers' tolerances were calibrated: 306 cases
/// (seeds 20261201 × 200 and 7 × 400) reach 12.14 (bdf), 11.40 (auto), 4.72 (esdirk34),
/// 1.30 (tsit45), 0.60 (tr-bdf2); before the calibration 18.6 over 178 cases (factor 40).
/// The factor is twice the largest, rounded up. It is the same for every solver: verify does
/// not read the `solver` label.
pub const LOCAL_ERROR_FACTOR: f64 = 25.0;

/// Why `verify` cannot re-check a run of `exp` (None when it can): Monte Carlo metrics
/// (sampled, or a sampled base of diagonal/block-diagonal) and K-FAC have no independent
/// re-evaluation, nor an empirical metric or base without an empirical loss or on the MLP, nor
/// the variational family's Monte Carlo expectations (their error is statistical), nor a
/// third-order corrected flow ([`crate::geometry::correction`]).
/// `run` writes no certificate for such runs: a certificate must be checkable.
pub fn cannot_recheck(exp: &Experiment) -> Option<&'static str> {
    use crate::metric::{MetricKind, provider::BaseMetric};
    let fl = &exp.flow;
    if !fl.correction.is_none() {
        // verify re-integrates f = −(G+λ)⁺∇L and checks dL/dt against that f; the corrected
        // flow's velocity (and its rate, bounded by −(1 − r)‖v‖²_G) has no independent
        // re-evaluation there
        return Some(
            "a third-order (geodesic-acceleration) flow: verify re-integrates and re-checks the natural-gradient flow only",
        );
    }
    if fl.metric_options.refresh > 0 && fl.metric != MetricKind::Euclidean {
        return Some("a metric held between refreshes ([metric] refresh)");
    }
    let base_empirical = match fl.metric {
        MetricKind::Adaptive => {
            return Some("the adaptive metric (held between refreshes, switched along the flow)");
        }
        MetricKind::Exact | MetricKind::Euclidean => false,
        MetricKind::Empirical => true,
        MetricKind::Diagonal | MetricKind::BlockDiagonal => match fl.metric_options.base {
            BaseMetric::Exact => false,
            BaseMetric::Empirical => true,
            BaseMetric::Sampled => return Some("a Monte Carlo (sampled) base"),
        },
        MetricKind::Sampled => return Some("a Monte Carlo (sampled) metric"),
        MetricKind::Kfac => return Some("K-FAC"),
    };
    if let Some(v) = exp.model.as_variational()
        && v.rule
            .as_ref()
            .is_some_and(|r| r.describe.starts_with("Monte Carlo"))
    {
        return Some("Monte Carlo expectations of the variational family (d > 3 or vi.samples)");
    }
    if base_empirical {
        if let Some(m) = exp.model.as_mixture() {
            if !matches!(m.loss_kind, crate::model::LossKind::Empirical { .. }) {
                return Some("an empirical Fisher without an empirical loss");
            }
        } else {
            return Some("an empirical Fisher of the MLP");
        }
    }
    None
}

/// Read a certificate: missing file, invalid JSON, wrong schema → an input error (exit 2).
pub fn load(path: &Path) -> Result<Monotone> {
    from_value(path, load_value(path)?)
}

/// The JSON of a certificate file whose `schema` is [`SCHEMA`].
pub fn load_value(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let perr = |message: String| Error::Parse {
        path: path.to_path_buf(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| perr(format!("not valid JSON: {e}")))?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => Ok(value),
        Some(other) => Err(perr(format!(
            "unsupported schema '{other}' (expected '{SCHEMA}')"
        ))),
        None => Err(perr(format!("no \"schema\" key (expected '{SCHEMA}')"))),
    }
}

/// A parametric certificate from its JSON.
pub fn from_value(path: &Path, value: serde_json::Value) -> Result<Monotone> {
    serde_json::from_value(value).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: format!("does not match schema {SCHEMA}: {e}"),
    })
}

/// Why the model file `p` (SHA-256 `file_hash`, resolved with the certificate's settings to
/// `resolved`) is not the one the certificate was made from; empty when it is. The resolved
/// settings are compared through JSON text, as the certificate's copy went (serde_json may
/// parse a float to a neighbouring value; both sides then went through the same parse).
pub(crate) fn model_file_mismatch(
    p: &Path,
    file_hash: &str,
    resolved: &impl serde::Serialize,
    (cert_hash, cert_resolved): (&str, &serde_json::Value),
) -> Vec<String> {
    let mut why = Vec::new();
    if file_hash != cert_hash {
        why.push(format!(
            "model_sha256: model file {} has SHA-256 {file_hash} but the certificate was made from {cert_hash}",
            p.display()
        ));
    }
    let mine: serde_json::Value = serde_json::to_string(resolved)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    if &mine != cert_resolved {
        why.push(format!(
            "model_resolved differs from {} resolved with the certificate's settings{}",
            p.display(),
            first_difference(&mine, cert_resolved, "model_resolved")
                .map(|d| format!(" (first difference: {d})"))
                .unwrap_or_default()
        ));
    }
    why
}

/// The resolved settings of `exp` as command-line overrides (to re-load a model file the way
/// the run did).
fn overrides_of(exp: &Experiment) -> Overrides {
    let f = &exp.resolved.flow;
    let q = &exp.resolved.quadrature;
    Overrides {
        metric: f.metric.clone(),
        solver: f.solver.clone(),
        rtol: f.rtol,
        atol: f.atol,
        t_end: f.t_end,
        damping: f.damping,
        nodes: if q.scheme.as_deref() == Some("gauss-hermite") {
            q.nodes
        } else {
            None
        },
        starts: f.starts.clone(),
        save_every: f.save_every,
        save_at: f.save_at.clone(),
        correction: f.correction.clone(),
        correction_alpha: f.correction_alpha,
        correction_tau: f.correction_tau,
    }
}

/// Verify `cert`. With `model_file`, the model is read from that file (whose SHA-256 must equal
/// the certificate's, and which with the certificate's command-line settings must resolve to
/// `model_resolved` exactly); otherwise from the certificate's `model_resolved` copy.
/// Unusable input is an `Err`; failed claims are reported in [`VerifyReport::failure`].
pub fn verify(cert: &Monotone, model_file: Option<&Path>) -> Result<VerifyReport> {
    let mut report = VerifyReport::new(cert.trajectories.len());
    let cert_path = Path::new(&cert.model_file);
    let bad = |m: String| Error::Parse {
        path: cert_path.to_path_buf(),
        message: m,
    };
    let file: ModelFile = serde_json::from_value(cert.model_resolved.clone()).map_err(|e| {
        bad(format!(
            "certificate's model_resolved is not a model file: {e}"
        ))
    })?;
    // Relative data paths (mlp.data) are relative to the model file.
    let exp_cert = Experiment::from_file(
        cert_path,
        cert.model_sha256.clone(),
        file,
        &Overrides::default(),
    )
    .map_err(|e| bad(format!("certificate's model_resolved: {e}")))?;

    if let Some(p) = model_file {
        let e = Experiment::load(p, &overrides_of(&exp_cert))?;
        let why = model_file_mismatch(
            p,
            &e.file_hash,
            &e.resolved,
            (&cert.model_sha256, &cert.model_resolved),
        );
        if !why.is_empty() {
            report.failure = fail(None, None, why);
            return Ok(report);
        }
    }

    // Header claims against the resolved settings.
    let fl = &exp_cert.flow;
    let model = &exp_cert.model;
    let mut hdr = Vec::new();
    if cert.model_family != model.family() {
        hdr.push(format!(
            "model_family '{}' but model_resolved is '{}'",
            cert.model_family,
            model.family()
        ));
    }
    if cert.param_names != model.param_names() {
        hdr.push("param_names differ from the model's parameters".into());
    }
    if cert.metric != fl.metric.name() {
        hdr.push(format!(
            "metric '{}' but the resolved model file says '{}'",
            cert.metric,
            fl.metric.name()
        ));
    }
    if cert.solver != fl.solver.name() {
        hdr.push(format!(
            "solver '{}' but the resolved model file says '{}'",
            cert.solver,
            fl.solver.name()
        ));
    }
    for (name, a, b) in [
        ("damping", cert.damping, fl.damping),
        ("rtol", cert.rtol, fl.rtol),
        ("atol", cert.atol, fl.atol),
        ("tolerance.rtol", cert.tolerance.rtol, fl.rtol),
        ("tolerance.atol", cert.tolerance.atol, fl.atol),
    ] {
        if a != b {
            hdr.push(format!(
                "{name} = {a:e} but the resolved model file says {b:e}"
            ));
        }
    }
    if cert.interior_points != fl.interior_points {
        hdr.push(format!(
            "interior_points = {} but the resolved model file says {}",
            cert.interior_points, fl.interior_points
        ));
    }
    if cert.quadrature != model.describe() {
        hdr.push(format!(
            "quadrature '{}' but the resolved model is '{}'",
            cert.quadrature,
            model.describe()
        ));
    }
    if cert.quadrature_scheme != model.as_mixture().map(|m| m.scheme) {
        hdr.push("quadrature_scheme differs from the resolved model file's".into());
    }
    if cert.tolerance.formula != TOLERANCE_FORMULA {
        hdr.push("tolerance.formula is not the formula verify derives tolerances with".into());
    }
    if cert.tolerance.continuity_formula != CONTINUITY_FORMULA {
        hdr.push("tolerance.continuity_formula is not verify's continuity bound".into());
    }
    // ε_q of the loss and gradient (what the model states: the quadrature's error for the
    // population loss, rounding of the sample mean for the empirical one) and of the Fisher
    // matrix (always the quadrature's for the mixture).
    let eq = model.evaluation_error();
    let eq_fisher = model.as_mixture().map_or(eq, |m| m.scheme.relative_error());
    if cert.tolerance.quadrature_relative_error != eq {
        hdr.push(format!(
            "tolerance.quadrature_relative_error = {:e} but the model's stated error is {eq:e}",
            cert.tolerance.quadrature_relative_error
        ));
    }
    let all_complete = cert.trajectories.iter().all(|t| t.complete);
    if cert.complete != all_complete {
        hdr.push(format!(
            "complete = {} but the trajectories say {all_complete}",
            cert.complete
        ));
    }
    let all_monotone = cert.trajectories.iter().all(|t| t.monotone && t.complete);
    if cert.monotone != all_monotone {
        hdr.push(format!(
            "monotone = {} but the trajectories say {all_monotone} (monotone and complete)",
            cert.monotone
        ));
    }
    if cert.trajectories.len() != exp_cert.starts.len() {
        hdr.push(format!(
            "{} trajectories but model_resolved has {} starts (a trajectory was removed or added)",
            cert.trajectories.len(),
            exp_cert.starts.len()
        ));
    } else {
        let pairs = model.exchange_pairs();
        for (i, (tr, s)) in cert.trajectories.iter().zip(&exp_cert.starts).enumerate() {
            // --perturb moves a start lying exactly on a singular line θᵢ = θⱼ off it.
            let on_line = pairs.iter().any(|&(a, b)| s.get(a) == s.get(b));
            // MLP starts are computed from seeds; JSON may move them by an ulp.
            let same = tr.start.len() == s.len()
                && tr
                    .start
                    .iter()
                    .zip(s)
                    .all(|(a, b)| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs());
            if !(same || on_line && tr.start.len() == s.len()) {
                hdr.push(format!(
                    "trajectories[{i}].start = {:?} but model_resolved's start {i} is {s:?}",
                    tr.start
                ));
            }
        }
    }
    if cert.trajectories.is_empty() {
        hdr.push("no trajectories".into());
    }
    if !hdr.is_empty() {
        report.failure = fail(None, None, hdr);
        return Ok(report);
    }

    // The metric the run solved with, rebuilt from verify's reference Fisher: the full matrix
    // (exact, empirical), or its diagonal or blocks (diagonal, block-diagonal of an exact or
    // empirical base). Monte Carlo (sampled) metrics and K-FAC are not re-checked.
    let opts = &fl.metric_options;
    let unsupported = |why: &str| {
        Err(Error::invalid(
            "metric",
            format!("'{}'", cert.metric),
            format!(
                "verify re-checks exact, euclidean, empirical, and diagonal/block-diagonal of an exact or empirical base; {why}"
            ),
        ))
    };
    use crate::metric::{MetricKind, provider::BaseMetric};
    if opts.refresh > 0 && fl.metric != MetricKind::Euclidean {
        return unsupported("a metric held between refreshes is not");
    }
    let (form, base_empirical) = match fl.metric {
        MetricKind::Exact | MetricKind::Euclidean => (Form::Full, false),
        MetricKind::Empirical => (Form::Full, true),
        MetricKind::Diagonal | MetricKind::BlockDiagonal => {
            let base_empirical = match opts.base {
                BaseMetric::Exact => false,
                BaseMetric::Empirical => true,
                BaseMetric::Sampled => {
                    return unsupported("a Monte Carlo (sampled) base is not");
                }
            };
            let blocks = if fl.metric == MetricKind::Diagonal {
                (0..model.dim()).map(|i| vec![i]).collect()
            } else {
                crate::metric::block::resolve_blocks(model, &opts.blocks)?
            };
            (Form::Blocks(blocks), base_empirical)
        }
        MetricKind::Sampled => return unsupported("a Monte Carlo (sampled) metric is not"),
        MetricKind::Kfac => return unsupported("K-FAC is not"),
        MetricKind::Adaptive => return unsupported("the adaptive metric is not"),
    };
    let reference: Box<dyn Reference> = if let Some(m) = model.as_mixture() {
        if base_empirical && !matches!(m.loss_kind, crate::model::LossKind::Empirical { .. }) {
            return unsupported("the empirical Fisher needs an empirical loss");
        }
        Box::new(RefMixture::new(m, &cert.metric, cert.damping)?)
    } else if let Some(m) = model.as_mlp() {
        if base_empirical {
            return unsupported("for the MLP an empirical base is not");
        }
        Box::new(RefMlp::new(m))
    } else if let Some(m) = model.as_variational() {
        if base_empirical {
            return unsupported("for the variational family an empirical base is not");
        }
        if let Some(why) = cannot_recheck(&exp_cert) {
            return unsupported(why);
        }
        Box::new(super::vi_ref::RefVi::new(m))
    } else {
        return Err(bad(format!(
            "verify supports gaussian-mixture, mlp and variational-gaussian models, not '{}'",
            cert.model_family
        )));
    };
    let ctx = Ctx {
        refm: reference.as_ref(),
        euclidean: cert.metric == "euclidean",
        form,
        base_empirical,
        damping: cert.damping,
        eq,
        eq_fisher,
        rtol: cert.rtol,
        atol: cert.atol,
        k: cert.interior_points,
        n: reference.dim(),
        t_end: fl.t_end,
        grad_tol: fl.grad_tol,
        max_steps: fl.max_steps,
    };
    for (ti, tr) in cert.trajectories.iter().enumerate() {
        if let Some(f) = ctx.trajectory(ti, tr, &mut report) {
            report.failure = Some(f);
            return Ok(report);
        }
    }
    if !cert.monotone {
        let why: Vec<String> = cert
            .trajectories
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.complete)
            .map(|(i, t)| format!("trajectory {i} is incomplete ({})", t.stop))
            .collect();
        report.failure = fail(
            None,
            None,
            vec![if why.is_empty() {
                "the claims hold, but the certificate states monotone = false: nothing is certified"
                    .into()
            } else {
                format!(
                    "the claims hold, but the certificate states monotone = false: nothing is certified ({})",
                    why.join("; ")
                )
            }],
        );
    }
    Ok(report)
}

/// Path and values of the first difference between two JSON values.
pub(crate) fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: &str,
) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{at}.{k} is missing")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}.{k} is extra"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{at}: file {a} vs certificate {b}")),
    }
}

/// Which part of the base matrix the run's metric keeps.
enum Form {
    /// All of it.
    Full,
    /// The diagonal blocks on these index sets (zero elsewhere).
    Blocks(Vec<Vec<usize>>),
}

struct Ctx<'a> {
    refm: &'a dyn Reference,
    euclidean: bool,
    form: Form,
    /// The metric's base is the empirical Fisher (not the exact one).
    base_empirical: bool,
    damping: f64,
    eq: f64,
    eq_fisher: f64,
    rtol: f64,
    atol: f64,
    k: usize,
    n: usize,
    t_end: f64,
    grad_tol: f64,
    max_steps: usize,
}

/// Dormand–Prince 5(4) tableau.
const DP_A: [[f64; 6]; 6] = [
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
        0.0,
    ],
    [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// b₅ − b₄ (the error weights; the 7th stage is f at the 5th-order solution).
const DP_E: [f64; 7] = [
    35.0 / 384.0 - 5179.0 / 57600.0,
    0.0,
    500.0 / 1113.0 - 7571.0 / 16695.0,
    125.0 / 192.0 - 393.0 / 640.0,
    -2187.0 / 6784.0 + 92097.0 / 339200.0,
    11.0 / 84.0 - 187.0 / 2100.0,
    -1.0 / 40.0,
];

/// Dense-output weights of DOPRI5 (Hairer & Wanner's `contd5`), for k1, k3, k4, k5, k6, k7.
const DP_D: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// One Dormand–Prince 5(4) step of size `h` from y with velocity k1 = f(y): the 5th-order
/// solution, the seven stages (k7 = f(y₅)) and the per-component error estimate |y₅ − y₄|.
pub fn dp5_step(
    f: &dyn Fn(&[f64]) -> Vec<f64>,
    y: &[f64],
    k1: Vec<f64>,
    h: f64,
) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
    let n = y.len();
    let mut ks: Vec<Vec<f64>> = vec![k1];
    let stage = |ks: &[Vec<f64>], coef: &[f64]| {
        let mut z = y.to_vec();
        for (j, c) in coef.iter().enumerate().take(ks.len()) {
            if *c != 0.0 {
                for i in 0..n {
                    z[i] += h * c * ks[j][i];
                }
            }
        }
        z
    };
    for row in DP_A.iter().take(5) {
        let z = stage(&ks, row);
        ks.push(f(&z));
    }
    let y5 = stage(&ks, &DP_A[5]);
    ks.push(f(&y5));
    let est = (0..n)
        .map(|i| (h * DP_E.iter().zip(&ks).map(|(c, k)| c * k[i]).sum::<f64>()).abs())
        .collect();
    (y5, ks, est)
}

/// DOPRI5's continuous extension (4th order) at fraction s ∈ [0, 1] of a step y₀ → y₁.
pub fn dp5_dense(y0: &[f64], y1: &[f64], ks: &[Vec<f64>], h: f64, s: f64) -> Vec<f64> {
    let s1 = 1.0 - s;
    (0..y0.len())
        .map(|i| {
            let ydiff = y1[i] - y0[i];
            let bspl = h * ks[0][i] - ydiff;
            let r3 = ydiff - h * ks[6][i] - bspl;
            let r4 = h * DP_D.iter().zip(ks).map(|(d, k)| d * k[i]).sum::<f64>();
            y0[i] + s * (ydiff + s1 * (bspl + s * (r3 + s1 * r4)))
        })
        .collect()
}

/// One Bogacki–Shampine 3(2) step of size `h` from y with k1 = f(y): the 3rd-order solution,
/// the stages (k1, k4 = f(y₃)) for its cubic Hermite dense output, and the per-component
/// estimate |y₃ − y₂| (the error of the 2nd-order solution: conservative for y₃).
pub fn bs3_step(
    f: &dyn Fn(&[f64]) -> Vec<f64>,
    y: &[f64],
    k1: Vec<f64>,
    h: f64,
) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
    let n = y.len();
    let k2 = f(&(0..n).map(|i| y[i] + 0.5 * h * k1[i]).collect::<Vec<f64>>());
    let k3 = f(&(0..n)
        .map(|i| y[i] + 0.75 * h * k2[i])
        .collect::<Vec<f64>>());
    let y3: Vec<f64> = (0..n)
        .map(|i| y[i] + h * (2.0 / 9.0 * k1[i] + 1.0 / 3.0 * k2[i] + 4.0 / 9.0 * k3[i]))
        .collect();
    let k4 = f(&y3);
    let est = (0..n)
        .map(|i| {
            (h * (-5.0 / 72.0 * k1[i] + 1.0 / 12.0 * k2[i] + 1.0 / 9.0 * k3[i] - 0.125 * k4[i]))
                .abs()
        })
        .collect();
    (y3, vec![k1, k4], est)
}

/// A step re-integrated by `m` DP5 sub-steps: their start points and stages, the end point
/// and the summed error estimate (first-order propagation).
struct Reint {
    /// Bogacki–Shampine (stages k1, k4; cubic Hermite dense output) instead of DP5.
    bs3: bool,
    hs: f64,
    starts: Vec<Vec<f64>>,
    stages: Vec<Vec<Vec<f64>>>,
    y: Vec<f64>,
    est: Vec<f64>,
}

impl Reint {
    /// θ at time τ ∈ [0, h] after the step's start, by the dense output of its sub-step.
    fn at(&self, tau: f64) -> Vec<f64> {
        let m = self.starts.len();
        let idx = ((tau / self.hs).floor() as usize).min(m - 1);
        let end = if idx + 1 < m {
            &self.starts[idx + 1]
        } else {
            &self.y
        };
        let s = ((tau - idx as f64 * self.hs) / self.hs).clamp(0.0, 1.0);
        if self.bs3 {
            let k = &self.stages[idx];
            return hermite(&self.starts[idx], end, &k[0], &k[1], self.hs, s * self.hs);
        }
        dp5_dense(&self.starts[idx], end, &self.stages[idx], self.hs, s)
    }
}

impl Ctx<'_> {
    fn eval(&self, th: &[f64]) -> Eval {
        let p = self.refm.point(th);
        let g = DVector::from_column_slice(&p.grad);
        let lmin = nalgebra::SymmetricEigen::new(p.fisher.clone())
            .eigenvalues
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        if self.euclidean {
            let s = 1.0 + self.damping;
            return Eval {
                x: g / s,
                minv: 1.0 / s,
                lmin,
                p,
                metric_err: Some(0.0),
            };
        }
        // The run's metric: the base (exact Fisher, or the empirical one) restricted to its
        // blocks. Restriction does not increase the Frobenius norm of an error.
        let (base, metric_err) = if self.base_empirical {
            match self.refm.empirical_fisher(th) {
                Some((m, err)) => (m, Some(err)),
                None => (
                    DMatrix::from_element(self.n, self.n, f64::NAN),
                    Some(f64::NAN),
                ),
            }
        } else {
            (p.fisher.clone(), None)
        };
        let metric = match &self.form {
            Form::Full => base,
            Form::Blocks(blocks) => {
                let mut m = DMatrix::zeros(self.n, self.n);
                for b in blocks {
                    for &i in b {
                        for &j in b {
                            m[(i, j)] = base[(i, j)];
                        }
                    }
                }
                m
            }
        };
        let e = nalgebra::SymmetricEigen::new(metric);
        let top = e
            .eigenvalues
            .iter()
            .fold(0.0f64, |a, &b| a.max(b + self.damping));
        let cut = crate::metric::RANK_TOL * top.max(f64::MIN_POSITIVE);
        let mut x = DVector::zeros(g.len());
        let mut lo = f64::INFINITY;
        for i in 0..g.len() {
            let d = e.eigenvalues[i] + self.damping;
            if d > cut {
                let q = e.eigenvectors.column(i);
                x.axpy(q.dot(&g) / d, &q, 1.0);
                lo = lo.min(d);
            }
        }
        Eval {
            p,
            x,
            minv: if lo.is_finite() { 1.0 / lo } else { 0.0 },
            lmin,
            metric_err,
        }
    }

    /// Error bounds (δg, δI) of the run's gradient (2-norm) and metric (Frobenius norm):
    /// the run's stated relative error plus the reference's, times the scales.
    fn perturbations(&self, p: &Point) -> (f64, f64) {
        let r = self.refm.rel_error();
        let dg = (self.eq + r) * p.grad_scale + 4.0 * f64::EPSILON * norm(&p.grad);
        let di = if self.euclidean {
            0.0
        } else {
            (self.eq_fisher + r) * p.fisher_scale
        };
        (dg, di)
    }

    /// Allowed |claimed L − re-evaluated L|.
    fn loss_tol(&self, p: &Point) -> f64 {
        (self.eq + self.refm.rel_error()) * p.loss_scale + 4.0 * f64::EPSILON * p.loss.abs()
    }

    /// Bounds on the run's velocity error |f̃ − f| and rate error |r̃ − r| when its gradient
    /// and metric are off by δg, δI (M̃ = M + E, g̃ = g + e): with κ = ‖M⁺‖δI < 1,
    /// ‖M̃⁻¹‖ ≤ ‖M⁺‖/(1−κ), |f̃ − f| ≤ ‖M̃⁻¹‖(δg + δI‖x‖) and
    /// |r̃ − r| ≤ δg‖x̃‖ + ‖x‖(1 + ‖M̃⁻¹‖δI)(δg + δI‖x‖), ‖x̃‖ ≤ ‖x‖ + |f̃ − f|.
    /// For κ ≥ 1 the run's metric may be singular where the true one is not: no bound (∞).
    fn run_errors(&self, e: &Eval) -> (f64, f64) {
        let (dg, di) = self.perturbations(&e.p);
        let di = e.metric_err.unwrap_or(di);
        let kappa = e.minv * di;
        if kappa >= 1.0 || !kappa.is_finite() {
            return (f64::INFINITY, f64::INFINITY);
        }
        let mt = e.minv / (1.0 - kappa);
        let xn = e.x.norm();
        let df = mt * (dg + di * xn);
        let rate = e.x.dot(&DVector::from_column_slice(&e.p.grad));
        let dr = dg * (xn + df)
            + xn * (1.0 + mt * di) * (dg + di * xn)
            + 16.0 * f64::EPSILON * rate.abs();
        (df, dr)
    }

    /// Re-integrate a step of length h from y (evaluated as `e0`) with `m` DP5 sub-steps.
    fn reintegrate(&self, y: &[f64], e0: &Eval, h: f64, m: usize) -> Reint {
        let hs = h / m as f64;
        let f = |z: &[f64]| self.eval(z).velocity();
        let mut cur = y.to_vec();
        let mut k1 = e0.velocity();
        let mut est = vec![0.0; y.len()];
        let mut starts = Vec::with_capacity(m);
        let mut stages = Vec::with_capacity(m);
        for _ in 0..m {
            let (y5, ks, e) = dp5_step(&f, &cur, k1, hs);
            for (a, b) in est.iter_mut().zip(&e) {
                *a += b;
            }
            k1 = ks[6].clone();
            starts.push(std::mem::replace(&mut cur, y5));
            stages.push(ks);
        }
        Reint {
            bs3: false,
            hs,
            starts,
            stages,
            y: cur,
            est,
        }
    }

    /// Re-integrate a step of length h from y (evaluated as `e0`) with one Bogacki–Shampine
    /// 3(2) step (three evaluations instead of DP5's six).
    fn reintegrate_bs3(&self, y: &[f64], e0: &Eval, h: f64) -> Reint {
        let f = |z: &[f64]| self.eval(z).velocity();
        let (y3, ks, est) = bs3_step(&f, y, e0.velocity(), h);
        Reint {
            bs3: true,
            hs: h,
            starts: vec![y.to_vec()],
            stages: vec![ks],
            y: y3,
            est,
        }
    }

    /// The controller's per-component bound √n·(rtol·|θᵢ| + atol) (the run's solvers use an
    /// internal tolerance never looser than the stated one).
    fn local(&self, a: f64) -> f64 {
        (self.n as f64).sqrt() * (self.rtol * a.abs() + self.atol)
    }

    /// Checks of step k ≥ 1 (θₖ₋₁ evaluated as `ep`, θₖ as `e`); returns the reasons it fails
    /// and its (loss, continuity, increase) ratios.
    fn step(&self, prev: &CertStep, s: &CertStep, ep: &Eval, e: &Eval) -> (Vec<String>, [f64; 4]) {
        // A step that fails with the cheap re-integration is judged again with DP5 alone: an
        // embedded estimate can miss the error where the field is only piecewise smooth (ReLU
        // kinks of the MLP), and a failure must be the certificate's, not verify's.
        let (why, ratios, cheap) = self.step_with(prev, s, ep, e, false);
        if why.is_empty() || !cheap {
            return (why, ratios);
        }
        let (why, ratios, _) = self.step_with(prev, s, ep, e, true);
        (why, ratios)
    }

    /// [`Self::step`] with the Bogacki–Shampine attempt (`dp5_only` false) or without; also
    /// says whether the cheap re-integration was used.
    fn step_with(
        &self,
        prev: &CertStep,
        s: &CertStep,
        ep: &Eval,
        e: &Eval,
        dp5_only: bool,
    ) -> (Vec<String>, [f64; 4], bool) {
        let mut why = Vec::new();
        let mut ratios = [0.0f64; 4];
        let h = s.t - prev.t;
        let kk = self.k;
        let mut times = vec![prev.t];
        for j in 1..=kk {
            times.push(prev.t + h * j as f64 / (kk + 1) as f64);
        }
        times.push(s.t);
        // Stated tolerance: reproduced from the claimed values (checked against the
        // re-evaluation below), so the comparison is exact up to rounding.
        let derived = step_tolerance(
            self.eq,
            self.rtol,
            self.atol,
            self.n as f64,
            [prev.loss, s.loss],
            [prev.grad_norm, s.grad_norm],
            &s.theta,
        );
        if !within((s.tolerance - derived).abs(), 1e-12 * derived.abs()) {
            why.push(format!(
                "tolerance: stated {:e} but the formula gives {derived:e} from the claimed values",
                s.tolerance
            ));
        }
        // Continuity: DP5(4) from θₖ₋₁ over the step, sub-steps halved until the estimate
        // is below a quarter of the allowance's first term (at most 64).
        let n = self.n;
        let th = &s.theta;
        let small =
            |r: &Reint| (0..n).all(|i| r.est[i] <= 0.25 * LOCAL_ERROR_FACTOR * self.local(th[i]));
        // First one Bogacki–Shampine 3(2) step: enough for the short steps of a tight run
        // (its estimate is that of the 2nd-order solution), else DP5.
        let cheap = if dp5_only {
            None
        } else {
            Some(self.reintegrate_bs3(&prev.theta, ep, h)).filter(|c| small(c))
        };
        let used_cheap = cheap.is_some();
        let re = if let Some(c) = cheap {
            c
        } else {
            let mut m = 1;
            loop {
                let r = self.reintegrate(&prev.theta, ep, h, m);
                if small(&r) || m >= 64 || r.y.iter().any(|v| !v.is_finite()) {
                    break r;
                }
                m *= 2;
            }
        };
        let end = &re;
        let (df0, _) = self.run_errors(ep);
        let (df1, _) = self.run_errors(e);
        let drift = h * df0.max(df1);
        let mut cont = Vec::new();
        let mut worst = (0.0f64, 0usize, 0.0f64, 0.0f64);
        #[allow(clippy::needless_range_loop)]
        for i in 0..n {
            ratios[3] = ratios[3].max((th[i] - end.y[i]).abs() / self.local(th[i]));
            let allowed = LOCAL_ERROR_FACTOR * self.local(th[i].abs().max(end.y[i].abs()))
                + end.est[i]
                + drift;
            let d = (th[i] - end.y[i]).abs();
            let r = d / allowed;
            if r > worst.0 || r.is_nan() {
                worst = (r, i, d, allowed);
            }
        }
        ratios[1] = worst.0;
        if !within(worst.2, worst.3) {
            let i = worst.1;
            cont.push(format!(
                "theta[{i}] = {:.16e} but re-integrating the step from θₖ₋₁ gives {:.16e} (|Δ| = {:.3e} > {:.3e})",
                th[i], end.y[i], worst.2, worst.3
            ));
        }
        // Interior claims: the loss at the solver's dense output vs the re-evaluation at the
        // re-integrated point. Position error: controller bound + estimate + the endpoint
        // mismatch (the dense output interpolates the solver's own θₖ) + |cubic Hermite − DP5|
        // standing in for the dense output's interpolation error, plus the velocity drift.
        if s.interior.len() == kk {
            let v0 = ep.velocity();
            let v1 = e.velocity();
            let gap = norm(&(0..n).map(|i| th[i] - end.y[i]).collect::<Vec<f64>>());
            let pts: Vec<(Vec<f64>, Point)> = (1..=kk)
                .map(|j| {
                    let y = re.at(times[j] - prev.t);
                    let q = self.refm.loss_point(&y);
                    (y, q)
                })
                .collect();
            let mut gmax = norm(&ep.p.grad).max(norm(&e.p.grad));
            for (_, q) in &pts {
                gmax = gmax.max(norm(&q.grad));
            }
            for (j, (&(_, lc), (y, q))) in s.interior.iter().zip(&pts).enumerate() {
                let herm = hermite(&prev.theta, th, &v0, &v1, h, times[j + 1] - prev.t);
                let interp = norm(&(0..n).map(|i| herm[i] - y[i]).collect::<Vec<f64>>());
                let loc = norm(
                    &(0..n)
                        .map(|i| LOCAL_ERROR_FACTOR * self.local(y[i]) + re.est[i])
                        .collect::<Vec<f64>>(),
                );
                let allowed = self.loss_tol(q) + gmax * (loc + gap + interp + drift);
                let d = (lc - q.loss).abs();
                ratios[0] = ratios[0].max(d / allowed);
                if !within(d, allowed) || !lc.is_finite() {
                    why.push(format!(
                        "interior[{j}]: claimed loss {lc:.16e} at t = {:e} differs from the re-evaluated {:.16e} by {d:.3e} > {allowed:.3e}",
                        times[j + 1],
                        q.loss
                    ));
                }
            }
            // Re-evaluated rise (reported; the claims are what is judged).
            let mut seq = vec![ep.p.loss];
            seq.extend(pts.iter().map(|(_, q)| q.loss));
            seq.push(e.p.loss);
            let rise = seq
                .windows(2)
                .map(|w| w[1] - w[0])
                .fold(f64::NEG_INFINITY, f64::max);
            ratios[2] = rise / s.tolerance.max(f64::MIN_POSITIVE);
        }
        why.extend(cont);
        (why, ratios, used_cheap)
    }

    /// Checks of the values claimed at one step against the re-evaluation.
    fn point_claims(&self, s: &CertStep, e: &Eval, why: &mut Vec<String>) -> [f64; 2] {
        let p = &e.p;
        let ltol = self.loss_tol(p);
        let lerr = (s.loss - p.loss).abs();
        if !within(lerr, ltol) || !s.loss.is_finite() {
            why.push(format!(
                "loss: claimed {:.16e} differs from the re-evaluated {:.16e} by {lerr:.3e} > {ltol:.3e}",
                s.loss, p.loss
            ));
        }
        let (dg, di) = self.perturbations(p);
        let gn = norm(&p.grad);
        let gerr = (s.grad_norm - gn).abs();
        if !within(gerr, dg + 4.0 * f64::EPSILON * gn) || !s.grad_norm.is_finite() {
            why.push(format!(
                "grad_norm: claimed {:.16e} differs from the re-evaluated {gn:.16e} by {gerr:.3e} > {:.3e}",
                s.grad_norm,
                dg + 4.0 * f64::EPSILON * gn
            ));
        }
        let rate = -e.x.dot(&DVector::from_column_slice(&p.grad));
        let (_, rtol_) = self.run_errors(e);
        let rerr = (s.rate - rate).abs();
        if s.rate > 0.0 || !s.rate.is_finite() {
            why.push(format!("rate: claimed dL/dt = {:e} > 0", s.rate));
        }
        if !within(rerr, rtol_) {
            why.push(format!(
                "rate: claimed dL/dt {:.16e} differs from the re-evaluated {rate:.16e} by {rerr:.3e} > {rtol_:.3e}",
                s.rate
            ));
        }
        // Weyl: |λ̃ − λ| ≤ ‖E‖₂ ≤ ‖E‖_F.
        let ei = if self.euclidean {
            (self.eq_fisher + self.refm.rel_error()) * p.fisher_scale
        } else {
            di
        } + 16.0 * f64::EPSILON * e.lmin.abs();
        match (s.min_eig, s.cholesky_ok) {
            (Some(m), _) => {
                if !within((m - e.lmin).abs(), ei) || !m.is_finite() {
                    why.push(format!(
                        "min_eig: claimed λ_min(I) {m:e} differs from the re-evaluated {:e} by more than {ei:.3e}",
                        e.lmin
                    ));
                }
            }
            (None, Some(ok)) => {
                let l = e.lmin + self.damping;
                if (ok && l < -ei) || (!ok && l > ei) {
                    why.push(format!("cholesky_ok: claimed {ok} but λ_min(I)+λ = {l:e}"));
                }
            }
            (None, None) => why.push("min_eig: neither min_eig nor cholesky_ok is given".into()),
        }
        [lerr / ltol, rerr / rtol_.max(f64::MIN_POSITIVE)]
    }

    fn trajectory(
        &self,
        ti: usize,
        tr: &super::CertTrajectory,
        rep: &mut VerifyReport,
    ) -> Option<Finding> {
        let steps = &tr.steps;
        let Some(first) = steps.first() else {
            return fail(Some(ti), None, vec!["steps: no steps".into()]);
        };
        if first.index != 0 || first.t != 0.0 || first.theta != tr.start || first.h != 0.0 {
            return fail(
                Some(ti),
                Some(0),
                vec!["steps[0] must be the start (index 0, t = 0, h = 0, θ = start)".into()],
            );
        }
        // Structure, step by step (cheap): a deleted or altered step breaks h or the times.
        let kk = self.k;
        for (k, s) in steps.iter().enumerate() {
            let mut why = Vec::new();
            if s.theta.len() != self.n || s.theta.iter().any(|v| !v.is_finite()) || !s.t.is_finite()
            {
                return fail(
                    Some(ti),
                    Some(k),
                    vec![format!(
                        "theta must be {} finite numbers and t finite",
                        self.n
                    )],
                );
            }
            if s.index != k {
                why.push(format!("index {} at position {k}", s.index));
            }
            if k > 0 {
                let pt = steps[k - 1].t;
                let h = s.t - pt;
                if h.is_nan() || h <= 0.0 {
                    why.push(format!("t does not increase: t = {} after {pt}", s.t));
                } else {
                    if (s.h - h).abs() > 1e-12 * s.t.abs().max(h) {
                        why.push(format!(
                            "h = {:e} but tₖ − tₖ₋₁ = {h:e} (a step was removed or altered)",
                            s.h
                        ));
                    }
                    if s.interior.len() != kk {
                        why.push(format!(
                            "interior: {} points, expected {kk}",
                            s.interior.len()
                        ));
                    } else {
                        for (j, &(tj, _)) in s.interior.iter().enumerate() {
                            let want = pt + h * (j + 1) as f64 / (kk + 1) as f64;
                            if (tj - want).abs() > 1e-12 * s.t.abs().max(h) {
                                why.push(format!(
                                    "interior[{j}]: time {tj:e} is not at tₖ₋₁ + {}h = {want:e} (a step was removed or altered)",
                                    (j + 1) as f64 / (kk + 1) as f64
                                ));
                                break;
                            }
                        }
                    }
                }
            }
            if !why.is_empty() {
                return fail(Some(ti), Some(k), why);
            }
        }
        // The claimed summaries, reproduced from the claimed values exactly as `build` does.
        let last = &steps[steps.len() - 1];
        let mut why = Vec::new();
        let (max_increase, max_rate, violation) = super::summarize(steps);
        // The JSON round trip may move a value by an ulp: compare within a few ulps of the
        // values involved.
        let lmax = steps.iter().map(|s| s.loss.abs()).fold(0.0f64, f64::max);
        let ulps = |a: f64, b: f64, scale: f64| (a - b).abs() <= 8.0 * f64::EPSILON * scale;
        if !ulps(tr.max_rate, max_rate, max_rate.abs()) {
            why.push(format!(
                "max_rate = {:e} but the steps' largest rate is {max_rate:e}",
                tr.max_rate
            ));
        }
        if !ulps(tr.max_increase, max_increase, lmax) {
            why.push(format!(
                "max_increase = {:e} but the steps' largest increase is {max_increase:e}",
                tr.max_increase
            ));
        }
        if tr.first_violation != violation || tr.monotone != violation.is_none() {
            why.push(format!(
                "monotone = {} / first_violation = {:?} but the claimed losses and tolerances give first_violation {violation:?}",
                tr.monotone, tr.first_violation
            ));
        }
        // stop: consistent with `complete` and with the last step.
        let (complete, stop_ok) = match tr.stop.as_str() {
            "t_end reached" => (
                true,
                if (last.t - self.t_end).abs() <= 4.0 * f64::EPSILON * self.t_end.abs() {
                    None
                } else {
                    Some(format!(
                        "stop says t_end reached but the last step is at t = {:e}, t_end = {:e}",
                        last.t, self.t_end
                    ))
                },
            ),
            "converged (gradient below tolerance)" => (
                true,
                if self.grad_tol > 0.0 && last.t < self.t_end {
                    None
                } else {
                    Some(format!(
                        "stop says converged but grad_tol = {:e} and the last t = {:e}",
                        self.grad_tol, last.t
                    ))
                },
            ),
            "step cap reached" => (
                false,
                if steps.len() - 1 == self.max_steps {
                    None
                } else {
                    Some(format!(
                        "stop says step cap reached but there are {} steps, max_steps = {}",
                        steps.len() - 1,
                        self.max_steps
                    ))
                },
            ),
            s if s.starts_with("solver failure: ") || s.starts_with("unstable: ") => (false, None),
            s => (false, Some(format!("stop: unknown reason '{s}'"))),
        };
        why.extend(stop_ok);
        if tr.complete != complete {
            why.push(format!(
                "complete = {} but stop is '{}'",
                tr.complete, tr.stop
            ));
        }
        if !why.is_empty() {
            return fail(Some(ti), None, why);
        }

        // Re-evaluation, in chunks of steps, each chunk in parallel.
        const CHUNK: usize = 512;
        let mut prev_eval: Option<Eval> = None;
        let mut start = 0;
        let mut chunk = 8;
        while start < steps.len() {
            // The first chunks are small, so that a certificate that fails early fails fast.
            let stop = (start + chunk).min(steps.len());
            chunk = (chunk * 4).min(CHUNK);
            let evals: Vec<Eval> = steps[start..stop]
                .par_iter()
                .map(|s| self.eval(&s.theta))
                .collect();
            let results: Vec<(Vec<String>, [f64; 5])> = (start..stop)
                .into_par_iter()
                .map(|k| {
                    let e = &evals[k - start];
                    let mut why = Vec::new();
                    let [lr, rr] = self.point_claims(&steps[k], e, &mut why);
                    let mut ratios = [lr, rr, 0.0, 0.0, 0.0];
                    // A step whose own claims already fail is not re-integrated (an absurd
                    // θ or σ must end quickly, not after the DP5 sub-steps).
                    if k > 0 && why.is_empty() {
                        let ep = if k > start {
                            &evals[k - 1 - start]
                        } else {
                            prev_eval.as_ref().unwrap_or(e)
                        };
                        let (w, r) = self.step(&steps[k - 1], &steps[k], ep, e);
                        why.extend(w);
                        ratios[0] = ratios[0].max(r[0]);
                        ratios[2] = r[1];
                        ratios[3] = r[2];
                        ratios[4] = r[3];
                    }
                    (why, ratios)
                })
                .collect();
            for (off, (why, r)) in results.into_iter().enumerate() {
                if !why.is_empty() {
                    return fail(Some(ti), Some(start + off), why);
                }
                rep.worst_loss_ratio = rep.worst_loss_ratio.max(r[0]);
                rep.worst_rate_ratio = rep.worst_rate_ratio.max(r[1]);
                rep.worst_continuity_ratio = rep.worst_continuity_ratio.max(r[2]);
                rep.worst_increase_ratio = rep.worst_increase_ratio.max(r[3]);
                rep.worst_local_error = rep.worst_local_error.max(r[4]);
                rep.steps_checked += 1;
            }
            prev_eval = evals.into_iter().last();
            start = stop;
        }
        // A converged stop: the gradient test holds at the last step, up to the gradient's
        // error and how far the located root can be off (the last step's change of ‖∇L‖ times
        // the relative position error of the dense output, bounded by the controller's).
        if let (true, Some(e)) = (tr.stop.starts_with("converged"), prev_eval.as_ref()) {
            {
                let (dg, _) = self.perturbations(&e.p);
                let gn = norm(&e.p.grad);
                let slack = if steps.len() >= 2 {
                    let p = &steps[steps.len() - 2];
                    let dist = norm(
                        &p.theta
                            .iter()
                            .zip(&last.theta)
                            .map(|(a, b)| a - b)
                            .collect::<Vec<f64>>(),
                    );
                    let pos = norm(
                        &last
                            .theta
                            .iter()
                            .map(|v| LOCAL_ERROR_FACTOR * self.local(*v))
                            .collect::<Vec<f64>>(),
                    );
                    (p.grad_norm - last.grad_norm).abs()
                        * (pos / dist.max(f64::MIN_POSITIVE)).min(1.0)
                } else {
                    0.0
                };
                // The run's test is ‖∇L‖ ≤ max(grad_tol, STEADY_FACTOR·floor(θⱼ)) with the
                // noise floor ‖I(θⱼ)‖_F·‖τ‖₂ + 64ε·√tr I(θⱼ) (crate::flow's `noise_floor`),
                // τᵢ = atol + rtol·|θⱼ,ᵢ| at the method's internal tolerances (never looser
                // than the stated ones, which are used here), θⱼ the start or one of the last
                // four steps (the threshold is refreshed every 4th step). Bounded above by the
                // largest such floor, with the reference Fisher and its error δI.
                let mut floor = 0.0f64;
                let cand = steps.iter().rev().take(5).chain(std::iter::once(&steps[0]));
                for st in cand {
                    let p = if std::ptr::eq(st, last) {
                        e.p.clone()
                    } else {
                        self.refm.point(&st.theta)
                    };
                    let (_, di) = self.perturbations(&p);
                    let tau = norm(
                        &st.theta
                            .iter()
                            .map(|t| self.atol + self.rtol * t.abs())
                            .collect::<Vec<f64>>(),
                    );
                    let f = (p.fisher.norm() + di) * tau
                        + 64.0 * f64::EPSILON * (p.fisher.trace() + di).max(0.0).sqrt();
                    floor = floor.max(crate::flow::STEADY_FACTOR * f);
                }
                let thr = self.grad_tol.max(floor * (1.0 + 1e-12));
                if !within(gn, thr + dg + slack) {
                    return fail(
                        Some(ti),
                        Some(steps.len() - 1),
                        vec![format!(
                            "stop says converged but the re-evaluated ‖∇L‖ = {gn:e} > max(grad_tol {:e}, steady-state threshold {floor:.3e}) + {:.3e}",
                            self.grad_tol,
                            dg + slack
                        )],
                    );
                }
            }
        }
        None
    }
}

/// Cubic Hermite interpolant at time τ ∈ [0, h] of a step from y₀ (velocity v₀) to y₁ (v₁).
fn hermite(y0: &[f64], y1: &[f64], v0: &[f64], v1: &[f64], h: f64, tau: f64) -> Vec<f64> {
    let s = tau / h;
    let h00 = (1.0 + 2.0 * s) * (1.0 - s) * (1.0 - s);
    let h10 = s * (1.0 - s) * (1.0 - s);
    let h01 = s * s * (3.0 - 2.0 * s);
    let h11 = s * s * (s - 1.0);
    (0..y0.len())
        .map(|i| h00 * y0[i] + h10 * h * v0[i] + h01 * y1[i] + h11 * h * v1[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DP5 on y' = −y and the rotation y' = (y₂, −y₁): the step matches the exact flow to
    /// O(h⁶), the dense output to O(h⁵), and the error estimate is of the size of the
    /// 4th-order error (not zero, not far above it).
    #[test]
    fn dormand_prince_step_and_dense_output_match_exact_flows() {
        let f = |y: &[f64]| vec![y[1], -y[0]];
        let y0 = [1.0, 0.0];
        for h in [0.4, 0.2, 0.1] {
            let (y5, ks, est) = dp5_step(&f, &y0, f(&y0), h);
            let err = ((y5[0] - h.cos()).powi(2) + (y5[1] + h.sin()).powi(2)).sqrt();
            assert!(err < 3e-4 * h.powi(6), "h {h}: step error {err}");
            assert!(
                est[0] + est[1] > err,
                "estimate {est:?} below the true error {err}"
            );
            assert!(est[0] + est[1] < 1e-2 * h.powi(5), "estimate {est:?}");
            for s in [0.25, 1.0 / 3.0, 0.5, 2.0 / 3.0, 0.9] {
                let y = dp5_dense(&y0, &y5, &ks, h, s);
                let t = s * h;
                let e = ((y[0] - t.cos()).powi(2) + (y[1] + t.sin()).powi(2)).sqrt();
                assert!(e < 2e-3 * h.powi(5), "h {h}, s {s}: dense error {e}");
            }
        }
        let g = |y: &[f64]| vec![-y[0]];
        let (y5, ks, _) = dp5_step(&g, &[2.0], vec![-2.0], 0.3);
        // Stability polynomial Σ_{k≤5} z^k/k! + z⁶/600: error 2·((1/600 − 1/720)·z⁶ − z⁷/5040
        // + …) at z = −0.3, i.e. 4.05e-7 + 0.87e-7 − (higher terms) ≈ 4.89e-7.
        let err = y5[0] - 2.0 * (-0.3f64).exp();
        let want = 2.0 * ((1.0 / 600.0 - 1.0 / 720.0) * 0.3f64.powi(6) + 0.3f64.powi(7) / 5040.0);
        assert!((err - want).abs() < 1e-8, "{err} vs {want}");
        let mid = dp5_dense(&[2.0], &y5, &ks, 0.3, 0.5);
        assert!((mid[0] - 2.0 * (-0.15f64).exp()).abs() < 2e-6, "{mid:?}");
    }

    #[test]
    fn first_difference_names_the_path() {
        let a = serde_json::json!({"model": {"sigma": 1.0, "target": [1.0, 2.0]}});
        let b = serde_json::json!({"model": {"sigma": 1.0001, "target": [1.0, 2.0]}});
        let d = first_difference(&a, &b, "m").expect("differs");
        assert!(d.starts_with("m.model.sigma"), "{d}");
        assert!(first_difference(&a, &a, "m").is_none());
    }
}
