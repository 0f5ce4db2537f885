//! `verify`: re-check a certificate from the model alone.
//!
//! Only t and θ are read from the steps; every loss, gradient, rate and eigenvalue is
//! recomputed by [`super::reference`] (an independent implementation of the mixture with an
//! adaptive Gauss–Kronrod rule) and each step is re-integrated by RK4. Checked, step by step:
//!
//! 1. structure: indices 0, 1, …; t₀ = 0, θ₀ = start, tₖ > tₖ₋₁, h = tₖ − tₖ₋₁, interior times
//!    at tₖ₋₁ + j·h/(k+1) (a deleted step breaks this and the continuity check);
//! 2. claimed L(θₖ) equals the re-evaluation within (ε_q + ε_ref)·∫p*|log p_θ|;
//! 3. claimed dL/dt ≤ 0 and equals −∇Lᵀ(I+λ1)⁺∇L within the first-order perturbation bound
//!    2‖x‖δg + ‖x‖²δI, x = (I+λ1)⁺∇L, δg and δI the gradient and Fisher error bounds;
//! 4. claimed λ_min(I) within 2(ε_q + ε_ref)·‖∫p|ssᵀ|‖_F (Weyl), or the Cholesky flag;
//! 5. monotonicity: the re-evaluated losses at θₖ₋₁, the interior points (θ from RK4) and θₖ
//!    never rise by more than the stated tolₖ, and the stated tolₖ is not larger than the
//!    formula gives with the re-evaluated values; claimed interior losses (dense output) match
//!    the re-evaluation at the RK4 points within the loss error plus ‖∇L‖·(√n·local bound +
//!    |cubic Hermite − RK4|), the Hermite interpolant's error standing in for the (higher-order)
//!    dense output's interpolation error;
//! 6. continuity: RK4 from θₖ₋₁ over [tₖ₋₁, tₖ] lands on θₖ within
//!    c·√n·(rtol·|θₖ,ᵢ| + atol) + 2·(Richardson estimate) + h·|δf| per component, where
//!    |δf| ≤ ‖M⁺‖(δg + δI·|f|) bounds how far the velocity the solver integrated (with the
//!    certificate's quadrature) can be from the true one; c = 1 for one-step
//!    methods and 6 for BDF (its step also depends on up to 5 past points, see
//!    [`history_factor`]);
//! 7. the `monotone`/`first_violation` claims agree with 5.

use super::reference::{REF_RELATIVE_ERROR, RefMixture, RefPoint};
use super::{Monotone, SCHEMA, step_tolerance};
use crate::config::{Experiment, ModelFile, Overrides};
use crate::error::{Error, Result};
use nalgebra::DVector;
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
    pub failure: Option<Finding>,
}

impl VerifyReport {
    /// True iff every check passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Read a certificate: missing file, invalid JSON, wrong schema → an input error (exit 2).
pub fn load(path: &Path) -> Result<Monotone> {
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
        Some(SCHEMA) => {}
        Some(other) => {
            return Err(perr(format!(
                "unsupported schema '{other}' (expected '{SCHEMA}')"
            )));
        }
        None => return Err(perr(format!("no \"schema\" key (expected '{SCHEMA}')"))),
    }
    serde_json::from_value(value).map_err(|e| perr(format!("does not match schema {SCHEMA}: {e}")))
}

fn fail(traj: Option<usize>, step: Option<usize>, reasons: Vec<String>) -> Option<Finding> {
    Some(Finding {
        trajectory: traj,
        step,
        reasons,
    })
}

/// Verify `cert`. With `model_file`, the model is read from that file (whose SHA-256 must equal
/// the certificate's); otherwise from the certificate's `model_resolved` copy.
/// Unusable input is an `Err`; failed claims are reported in [`VerifyReport::failure`].
pub fn verify(cert: &Monotone, model_file: Option<&Path>) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        trajectories: cert.trajectories.len(),
        steps_checked: 0,
        worst_loss_ratio: 0.0,
        worst_rate_ratio: 0.0,
        worst_continuity_ratio: 0.0,
        worst_increase_ratio: 0.0,
        failure: None,
    };
    let cert_path = Path::new(&cert.model_file);
    let bad = |m: String| Error::Parse {
        path: cert_path.to_path_buf(),
        message: m,
    };
    if cert.model_family != "gaussian-mixture" {
        return Err(bad(format!(
            "verify supports model_family \"gaussian-mixture\", not '{}'",
            cert.model_family
        )));
    }
    let file: ModelFile = serde_json::from_value(cert.model_resolved.clone()).map_err(|e| {
        bad(format!(
            "certificate's model_resolved is not a model file: {e}"
        ))
    })?;
    let exp_cert = Experiment::from_file(
        cert_path,
        cert.model_sha256.clone(),
        file,
        &Overrides::default(),
    )
    .map_err(|e| bad(format!("certificate's model_resolved: {e}")))?;
    let mix_cert = exp_cert
        .model
        .as_mixture()
        .ok_or_else(|| bad("certificate's model_resolved is not a gaussian-mixture".into()))?;
    let exp_model = match model_file {
        Some(p) => {
            let e = Experiment::load(p, &Overrides::default())?;
            if e.file_hash != cert.model_sha256 {
                report.failure = fail(
                    None,
                    None,
                    vec![format!(
                        "model file {} has SHA-256 {} but the certificate was made from {}",
                        p.display(),
                        e.file_hash,
                        cert.model_sha256
                    )],
                );
                return Ok(report);
            }
            e
        }
        None => exp_cert.clone(),
    };

    // Header claims against the resolved settings.
    let fl = &exp_cert.flow;
    let mut hdr = Vec::new();
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
    if cert.quadrature_scheme != Some(mix_cert.scheme) {
        hdr.push("quadrature_scheme differs from the resolved model file's".into());
    }
    // ε_q of the loss and gradient (what the model states: the quadrature's error for the
    // population loss, rounding of the sample mean for the empirical one) and of the Fisher
    // matrix (always the quadrature's).
    let eq_fisher = mix_cert.scheme.relative_error();
    let eq = match mix_cert.loss_kind {
        crate::model::LossKind::Population => eq_fisher,
        crate::model::LossKind::Empirical { .. } => f64::EPSILON * 64.0,
    };
    if cert.tolerance.quadrature_relative_error != eq {
        hdr.push(format!(
            "tolerance.quadrature_relative_error = {:e} but the scheme's stated error is {eq:e}",
            cert.tolerance.quadrature_relative_error
        ));
    }
    let all_monotone = cert.trajectories.iter().all(|t| t.monotone);
    if cert.monotone != all_monotone {
        hdr.push(format!(
            "monotone = {} but the trajectories say {all_monotone}",
            cert.monotone
        ));
    }
    if cert.trajectories.is_empty() {
        hdr.push("no trajectories".into());
    }
    if !hdr.is_empty() {
        report.failure = fail(None, None, hdr);
        return Ok(report);
    }

    let mix_model = exp_model
        .model
        .as_mixture()
        .ok_or_else(|| bad("verify supports gaussian-mixture model files only".into()))?;
    let refm = RefMixture::new(mix_model, &cert.metric, cert.damping)?;
    let ctx = Ctx {
        refm: &refm,
        eq,
        eq_fisher,
        rtol: cert.rtol,
        atol: cert.atol,
        k: cert.interior_points,
        history: history_factor(&cert.solver),
    };
    for (ti, tr) in cert.trajectories.iter().enumerate() {
        if let Some(f) = ctx.trajectory(ti, tr, &mut report) {
            report.failure = Some(f);
            return Ok(report);
        }
    }
    if !cert.monotone {
        report.failure = fail(
            None,
            None,
            vec!["the claims hold, but the certificate states monotone = false: nothing is certified".into()],
        );
    }
    Ok(report)
}

struct Ctx<'a> {
    refm: &'a RefMixture,
    eq: f64,
    eq_fisher: f64,
    rtol: f64,
    atol: f64,
    k: usize,
    history: f64,
}

/// Factor on the local-error bound of the step re-integration: 1 for one-step methods
/// (tsit45: the step from θₖ₋₁ depends on θₖ₋₁ alone); q_max + 1 = 6 for BDF, whose step also
/// uses up to 5 past points, each off the flow through θₖ₋₁ by at most one local tolerance.
pub fn history_factor(solver: &str) -> f64 {
    match solver {
        "bdf" => 6.0,
        _ => 1.0,
    }
}

const N: f64 = 2.0;

impl Ctx<'_> {
    /// Allowed |Δθᵢ| from the solver's local error control: √n·(rtol·|θᵢ| + atol), times
    /// [`history_factor`] for multistep methods.
    fn solver_tol(&self, a: f64, b: f64) -> f64 {
        self.history * N.sqrt() * (self.rtol * a.abs().max(b.abs()) + self.atol)
    }

    /// Allowed |claimed L − re-evaluated L|.
    fn loss_tol(&self, p: &RefPoint) -> f64 {
        (self.eq + REF_RELATIVE_ERROR) * p.loss_scale + 4.0 * f64::EPSILON * p.loss.abs()
    }

    /// Error bounds (δg, δI) of the gradient (2-norm) and of the metric (Frobenius norm).
    fn perturbations(&self, p: &RefPoint) -> (f64, f64) {
        let dg = (self.eq + REF_RELATIVE_ERROR)
            * (p.grad_scale[0].powi(2) + p.grad_scale[1].powi(2)).sqrt();
        let di = match self.refm.metric {
            super::reference::RefMetric::Fisher => {
                let [a, b, c] = p.fisher_scale;
                (self.eq_fisher + REF_RELATIVE_ERROR) * (a * a + 2.0 * b * b + c * c).sqrt()
            }
            super::reference::RefMetric::Euclidean => 0.0,
        };
        (dg, di)
    }

    /// Bound on the error of the velocity f = −M⁺∇L the solver used, from the evaluation
    /// errors: |δf| ≤ ‖M⁺‖(δg + δI·|f|), ‖M⁺‖ = 1/(λ_min(M) above the null cutoff).
    fn velocity_error(&self, p: &RefPoint) -> f64 {
        let g = DVector::from_row_slice(&p.grad);
        let f = self.refm.solve(p, &g).norm();
        let (dg, di) = self.perturbations(p);
        let inv = match self.refm.metric {
            super::reference::RefMetric::Euclidean => 1.0 / (1.0 + self.refm.damping),
            super::reference::RefMetric::Fisher => {
                let e = nalgebra::SymmetricEigen::new(p.fisher_matrix());
                let lo = e.eigenvalues.min() + self.refm.damping;
                let hi = e.eigenvalues.max() + self.refm.damping;
                1.0 / lo.max(crate::metric::RANK_TOL * hi.max(f64::MIN_POSITIVE))
            }
        };
        inv * (dg + di * f)
    }

    /// Re-evaluated rate and its allowed error.
    fn rate(&self, p: &RefPoint) -> (f64, f64) {
        let g = DVector::from_row_slice(&p.grad);
        let x = self.refm.solve(p, &g);
        let rate = -g.dot(&x);
        let (dg, di) = self.perturbations(p);
        let xn = x.norm();
        (
            rate,
            2.0 * xn * dg + xn * xn * di + 16.0 * f64::EPSILON * rate.abs(),
        )
    }

    fn trajectory(
        &self,
        ti: usize,
        tr: &super::CertTrajectory,
        rep: &mut VerifyReport,
    ) -> Option<Finding> {
        let steps = &tr.steps;
        let Some(first) = steps.first() else {
            return fail(Some(ti), None, vec!["no steps".into()]);
        };
        if first.index != 0 || first.t != 0.0 || first.theta != tr.start || first.h != 0.0 {
            return fail(
                Some(ti),
                Some(0),
                vec!["row 0 must be the start (index 0, t = 0, h = 0, θ = start)".into()],
            );
        }
        let mut violation: Option<usize> = None;
        let mut prev: Option<(RefPoint, [f64; 2], f64)> = None;
        for (k, s) in steps.iter().enumerate() {
            let mut why = Vec::new();
            if s.theta.len() != 2 || s.theta.iter().any(|v| !v.is_finite()) || !s.t.is_finite() {
                return fail(
                    Some(ti),
                    Some(k),
                    vec![format!("θ must be two finite numbers, got {:?}", s.theta)],
                );
            }
            if s.index != k {
                why.push(format!("index {} at position {k}", s.index));
            }
            let th = [s.theta[0], s.theta[1]];
            let p = self.refm.at(&th);
            // 2. loss
            let ltol = self.loss_tol(&p);
            let lerr = (s.loss - p.loss).abs();
            rep.worst_loss_ratio = rep.worst_loss_ratio.max(lerr / ltol);
            if !within(lerr, ltol) || !s.loss.is_finite() {
                why.push(format!(
                    "claimed loss {:.16e} differs from the re-evaluated {:.16e} by {lerr:.3e} > {ltol:.3e}",
                    s.loss, p.loss
                ));
            }
            // 3. rate
            let (rate, rtol_) = self.rate(&p);
            let rerr = (s.rate - rate).abs();
            rep.worst_rate_ratio = rep
                .worst_rate_ratio
                .max(rerr / rtol_.max(f64::MIN_POSITIVE));
            if s.rate > 0.0 || !s.rate.is_finite() {
                why.push(format!("claimed dL/dt = {:e} > 0", s.rate));
            }
            if !within(rerr, rtol_) {
                why.push(format!(
                    "claimed dL/dt {:.16e} differs from the re-evaluated {rate:.16e} by {rerr:.3e} > {rtol_:.3e}",
                    s.rate
                ));
            }
            // 4. spectrum
            let fm = p.fisher_matrix();
            let e = nalgebra::SymmetricEigen::new(fm.clone());
            let lmin = e.eigenvalues.min();
            let [a, b, c] = p.fisher_scale;
            let etol =
                2.0 * (self.eq_fisher + REF_RELATIVE_ERROR) * (a * a + 2.0 * b * b + c * c).sqrt();
            match (s.min_eig, s.cholesky_ok) {
                (Some(m), _) => {
                    if !within((m - lmin).abs(), etol) || !m.is_finite() {
                        why.push(format!("claimed λ_min(I) {m:e} differs from the re-evaluated {lmin:e} by more than {etol:.3e}"));
                    }
                }
                (None, Some(ok)) => {
                    let pd = lmin + self.refm.damping > etol;
                    let npd = lmin + self.refm.damping < -etol;
                    if (ok && npd) || (!ok && pd) {
                        why.push(format!(
                            "claimed cholesky_ok = {ok} but λ_min(I)+λ = {:e}",
                            lmin + self.refm.damping
                        ));
                    }
                }
                (None, None) => why.push("neither min_eig nor cholesky_ok is given".into()),
            }
            if let Some((pp, pth, pt)) = &prev {
                let h = s.t - pt;
                // 1. structure
                if h <= 0.0 {
                    why.push(format!("time does not increase: t = {} after {pt}", s.t));
                    return fail(Some(ti), Some(k), why);
                }
                if (s.h - h).abs() > 1e-12 * s.t.abs().max(h) {
                    why.push(format!(
                        "h = {:e} but tₖ − tₖ₋₁ = {h:e} (a step was removed or altered)",
                        s.h
                    ));
                }
                let kk = self.k;
                let mut times = vec![*pt];
                if s.interior.len() != kk {
                    why.push(format!(
                        "{} interior points, expected {kk}",
                        s.interior.len()
                    ));
                } else {
                    for (j, &(ti_, _)) in s.interior.iter().enumerate() {
                        let want = pt + h * (j + 1) as f64 / (kk + 1) as f64;
                        if (ti_ - want).abs() > 1e-12 * s.t.abs().max(h) {
                            why.push(format!(
                                "interior time {ti_:e} is not at tₖ₋₁ + {}h = {want:e} (a step was removed or altered)",
                                (j + 1) as f64 / (kk + 1) as f64
                            ));
                            break;
                        }
                        times.push(want);
                    }
                }
                times.push(s.t);
                if times.len() != kk + 2 {
                    return fail(Some(ti), Some(k), why);
                }
                // 6. continuity, by RK4 with step doubling
                let base = [self.solver_tol(th[0], th[0]), self.solver_tol(th[1], th[1])];
                let mut m = 1;
                let mut coarse = self.refm.chain(*pth, &times, m);
                let (fine, est) = loop {
                    let fine = self.refm.chain(*pth, &times, 2 * m);
                    let last = times.len() - 1;
                    let est = [
                        (fine[last][0] - coarse[last][0]).abs() / 15.0,
                        (fine[last][1] - coarse[last][1]).abs() / 15.0,
                    ];
                    m *= 2;
                    if (est[0] <= 0.05 * base[0] && est[1] <= 0.05 * base[1]) || m >= 128 {
                        break (fine, est);
                    }
                    coarse = fine;
                };
                let end = fine[fine.len() - 1];
                let drift = h * self.velocity_error(pp).max(self.velocity_error(&p));
                let mut cont = Vec::new();
                for i in 0..2 {
                    let allowed = self.solver_tol(th[i], end[i]) + 2.0 * est[i] + drift;
                    let d = (th[i] - end[i]).abs();
                    rep.worst_continuity_ratio = rep.worst_continuity_ratio.max(d / allowed);
                    if !within(d, allowed) {
                        cont.push(format!(
                            "θ{} = {:.16e} but re-integrating the step from θₖ₋₁ gives {:.16e} (|Δ| = {d:.3e} > {allowed:.3e})",
                            i + 1,
                            th[i],
                            end[i]
                        ));
                    }
                }
                // 5. monotonicity on re-evaluated losses
                let derived = step_tolerance(
                    self.eq,
                    self.rtol,
                    self.atol,
                    N,
                    [pp.loss, p.loss],
                    [norm(&pp.grad), norm(&p.grad)],
                    &s.theta,
                );
                if s.tolerance > derived * (1.0 + 1e-6) + f64::MIN_POSITIVE {
                    why.push(format!(
                        "stated tolerance {:e} is larger than the derived {derived:e}",
                        s.tolerance
                    ));
                }
                let tol = s.tolerance.min(derived * (1.0 + 1e-6));
                let mut seq = vec![pp.loss];
                if s.interior.len() == kk {
                    let v0 = self.refm.velocity(pth);
                    let v1 = self.refm.velocity(&th);
                    for (j, &(_, lc)) in s.interior.iter().enumerate() {
                        let q = self.refm.at(&fine[j + 1]);
                        let y = fine[j + 1];
                        let herm = hermite(*pth, th, v0, v1, h, times[j + 1] - pt);
                        let interp = ((herm[0] - y[0]).powi(2) + (herm[1] - y[1]).powi(2)).sqrt();
                        let allowed = self.loss_tol(&q)
                            + norm(&q.grad)
                                * (N.sqrt() * self.solver_tol(y[0].abs().max(y[1].abs()), 0.0)
                                    + interp);
                        let d = (lc - q.loss).abs();
                        rep.worst_loss_ratio = rep.worst_loss_ratio.max(d / allowed);
                        if !within(d, allowed) || !lc.is_finite() {
                            why.push(format!(
                                "claimed interior loss {lc:.16e} at t = {:e} differs from the re-evaluated {:.16e} by {d:.3e} > {allowed:.3e}",
                                times[j + 1],
                                q.loss
                            ));
                        }
                        seq.push(q.loss);
                    }
                }
                seq.push(p.loss);
                let rise = seq
                    .windows(2)
                    .map(|w| w[1] - w[0])
                    .fold(f64::NEG_INFINITY, f64::max);
                rep.worst_increase_ratio = rep
                    .worst_increase_ratio
                    .max(rise / tol.max(f64::MIN_POSITIVE));
                if !within(rise, tol) {
                    if violation.is_none() {
                        violation = Some(k);
                    }
                    why.push(format!(
                        "the re-evaluated loss rises by {rise:.3e} > tolerance {tol:.3e} within the step{}",
                        if tr.monotone { " although the certificate claims monotone = true" } else { "" }
                    ));
                }
                why.extend(cont);
            }
            if !why.is_empty() {
                return fail(Some(ti), Some(k), why);
            }
            rep.steps_checked += 1;
            prev = Some((p, th, s.t));
        }
        // 7. the trajectory's own verdict
        if tr.first_violation != violation || tr.monotone != violation.is_none() {
            return fail(
                Some(ti),
                None,
                vec![format!(
                    "claims monotone = {} (first_violation {:?}) but re-evaluation finds first_violation {violation:?}",
                    tr.monotone, tr.first_violation
                )],
            );
        }
        None
    }
}

fn norm(g: &[f64; 2]) -> f64 {
    (g[0] * g[0] + g[1] * g[1]).sqrt()
}

/// Cubic Hermite interpolant at time τ ∈ [0, h] of a step from y₀ (velocity v₀) to y₁ (v₁).
fn hermite(y0: [f64; 2], y1: [f64; 2], v0: [f64; 2], v1: [f64; 2], h: f64, tau: f64) -> [f64; 2] {
    let s = tau / h;
    let h00 = (1.0 + 2.0 * s) * (1.0 - s) * (1.0 - s);
    let h10 = s * (1.0 - s) * (1.0 - s);
    let h01 = s * s * (3.0 - 2.0 * s);
    let h11 = s * s * (s - 1.0);
    let mut out = [0.0; 2];
    for i in 0..2 {
        out[i] = h00 * y0[i] + h10 * h * v0[i] + h01 * y1[i] + h11 * h * v1[i];
    }
    out
}

/// d ≤ tol, false when either is NaN (a non-finite re-evaluation never passes).
fn within(d: f64, tol: f64) -> bool {
    d <= tol
}
