//! `verify` for density certificates ([`super::density`]): an independent re-check.
//!
//! Only the model's parameters (grid box, cell counts, the shapes' numbers) are taken from the
//! resolved model file; everything else is computed here by plain loops that share no code with
//! `crate::density`: the cell centres, the target's and start's log-densities, their
//! normalization (log-sum-exp), KL, ‖∇_θ KL‖, the round-off scale, the mass, and the
//! Fisher–Rao closed form log ρₜ = e^{−t} log ρ₀ + (1 − e^{−t}) log π. Checked:
//!
//! 1. header: schema, family, the grid, rtol/atol/t_end, both formulas and F equal the resolved
//!    model's and verify's; the flows are fisher-rao, wasserstein, wfr in that order with the
//!    resolved solver; `complete`/`monotone` agree with the flows; with `--model FILE` its
//!    SHA-256 and its resolution (with the certificate's settings) equal the certificate's;
//! 2. per flow: `stop` consistent with `complete` and the last t; indices, t increasing, h;
//!    every tolₖ reproduced from the claimed values; `max_increase`, `first_violation`,
//!    `monotone` and `mass_drift` reproduced;
//! 3. stored states: at the stride (and the last step), each with the step's SHA-256; state 0
//!    equals verify's own ρ₀; at every state mass, KL, ‖g‖, s and ‖θ‖∞ are recomputed and must
//!    match the claims within their round-off bounds;
//! 4. Fisher–Rao: every state within B_k of the closed form in oscillation, every KL within the
//!    bound of [`super::density::DENSITY_CLOSED_FORM_FORMULA`].
//!
//! Wasserstein and WFR steps are not re-integrated (the flows are stiff): their claims are
//! re-checked at the stored states, and the states are bound to the steps by their hashes.

use super::density::{
    DENSITY_CLOSED_FORM_FORMULA, DENSITY_TOLERANCE_FORMULA, DensityCertificate, DensityFlowCert,
    step_tolerance, summarize,
};
use super::verify::{Finding, LOCAL_ERROR_FACTOR, VerifyReport};
use crate::config::{ModelFile, Overrides};
use crate::density::{DensityExperiment, FlowKind, Shape};
use crate::error::{Error, Result};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

/// d ≤ tol, false when either is NaN (a non-finite recomputation never passes).
fn within(d: f64, tol: f64) -> bool {
    d <= tol
}

/// ln √(2π), written out again (not shared with `crate::density::shape`).
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

fn ln_gauss(x: f64, mean: f64, sd: f64) -> f64 {
    let z = (x - mean) / sd;
    -(z * z) / 2.0 - sd.ln() - HALF_LN_2PI
}

fn ln_sum2(a: f64, b: f64) -> f64 {
    if a >= b {
        if a == f64::NEG_INFINITY {
            return a;
        }
        a + (b - a).exp().ln_1p()
    } else {
        b + (a - b).exp().ln_1p()
    }
}

/// Verify's own log-density of a shape at a point.
fn ln_shape(s: &Shape, x: &[f64]) -> f64 {
    match s {
        Shape::Mixture {
            sigma,
            weight,
            means,
        } => ln_sum2(
            weight.ln() + ln_gauss(x[0], means[0], *sigma),
            (1.0 - weight).ln() + ln_gauss(x[0], means[1], *sigma),
        ),
        Shape::Bimodal {
            separation, sigma, ..
        } => {
            let mut other = 0.0;
            for &y in &x[1..] {
                other += ln_gauss(y, 0.0, *sigma);
            }
            let half = separation / 2.0;
            let ln_half = -std::f64::consts::LN_2;
            other
                + ln_sum2(
                    ln_half + ln_gauss(x[0], -half, *sigma),
                    ln_half + ln_gauss(x[0], half, *sigma),
                )
        }
        Shape::Banana { width, curvature } => {
            let centre = curvature * (x[0] * x[0] - width * width);
            ln_gauss(x[0], 0.0, *width) + ln_gauss(x[1], centre, 1.0)
        }
        Shape::Gaussian { mean, sd } => {
            let mut acc = 0.0;
            for k in 0..mean.len() {
                acc += ln_gauss(x[k], mean[k], sd[k]);
            }
            acc
        }
        Shape::Potential { coefficients } => {
            let mut v = 0.0;
            let mut p = 1.0;
            for c in coefficients {
                v += c * p;
                p *= x[0];
            }
            -v
        }
    }
}

/// Verify's grid: cell centres (x fastest) and the cell volume.
struct RefGrid {
    points: Vec<Vec<f64>>,
    volume: f64,
}

impl RefGrid {
    fn new(lo: &[f64], hi: &[f64], n: &[usize]) -> RefGrid {
        let h: Vec<f64> = (0..n.len())
            .map(|k| (hi[k] - lo[k]) / n[k] as f64)
            .collect();
        let mut volume = 1.0;
        for hk in &h {
            volume *= hk;
        }
        let mut points = Vec::new();
        let ny = if n.len() == 2 { n[1] } else { 1 };
        for j in 0..ny {
            for i in 0..n[0] {
                let x = lo[0] + (i as f64 + 0.5) * h[0];
                if n.len() == 2 {
                    points.push(vec![x, lo[1] + (j as f64 + 0.5) * h[1]]);
                } else {
                    points.push(vec![x]);
                }
            }
        }
        RefGrid { points, volume }
    }

    fn len(&self) -> usize {
        self.points.len()
    }

    /// log Σ V e^{θᵢ}.
    fn ln_mass(&self, th: &[f64]) -> f64 {
        let mut top = f64::NEG_INFINITY;
        for &v in th {
            if v > top {
                top = v;
            }
        }
        if !top.is_finite() {
            return top;
        }
        let mut s = 0.0;
        for &v in th {
            s += (v - top).exp();
        }
        top + (s * self.volume).ln()
    }

    fn normalize(&self, th: &[f64]) -> Vec<f64> {
        let z = self.ln_mass(th);
        th.iter().map(|v| v - z).collect()
    }

    fn ln_density(&self, s: &Shape) -> Vec<f64> {
        let raw: Vec<f64> = self.points.iter().map(|x| ln_shape(s, x)).collect();
        self.normalize(&raw)
    }
}

/// Values verify recomputes at a state.
struct Recomputed {
    mass: f64,
    kl: f64,
    grad_norm: f64,
    kl_scale: f64,
    theta_max: f64,
    /// E|u − KL| (for the closed-form KL bound).
    mean_abs_dev: f64,
}

fn recompute(g: &RefGrid, th: &[f64], ln_pi: &[f64]) -> Recomputed {
    let z = g.ln_mass(th);
    let mut kl = 0.0;
    let mut theta_max = 0.0f64;
    for (t, p) in th.iter().zip(ln_pi) {
        let l = t - z;
        kl += g.volume * l.exp() * (l - p);
        theta_max = theta_max.max(t.abs());
    }
    let (mut g2, mut scale, mut dev) = (0.0, 0.0, 0.0);
    for (t, p) in th.iter().zip(ln_pi) {
        let l = t - z;
        let m = g.volume * l.exp();
        let gi = m * (l - p - kl);
        g2 += gi * gi;
        scale += m * (l.abs() + p.abs() + 1.0);
        dev += m * (l - p - kl).abs();
    }
    Recomputed {
        mass: z.exp(),
        kl,
        grad_norm: g2.sqrt(),
        kl_scale: scale,
        theta_max,
        mean_abs_dev: dev,
    }
}

fn sha(th: &[f64]) -> String {
    let mut bytes = Vec::with_capacity(8 * th.len());
    for v in th {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::config::sha256_hex(&bytes)
}

fn fail(report: &mut VerifyReport, traj: Option<usize>, step: Option<usize>, why: Vec<String>) {
    report.failure = Some(Finding {
        trajectory: traj,
        step,
        reasons: why,
    });
}

/// The certificate's settings as command-line overrides (to re-load a model file the way the
/// run did).
fn overrides_of(exp: &DensityExperiment) -> Overrides {
    let f = &exp.resolved.flow;
    Overrides {
        metric: Some(exp.flow.name().into()),
        solver: f.solver.clone(),
        rtol: f.rtol,
        atol: f.atol,
        t_end: f.t_end,
        save_at: f.save_at.clone(),
        ..Overrides::default()
    }
}

/// Verify a density certificate (see the module documentation).
pub fn verify_density(
    cert: &DensityCertificate,
    model_file: Option<&Path>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::new(cert.flows.len());
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
    let exp = DensityExperiment::from_file(
        cert_path,
        cert.model_sha256.clone(),
        file,
        &Overrides::default(),
    )
    .map_err(|e| bad(format!("certificate's model_resolved: {e}")))?;
    if let Some(p) = model_file {
        let e = DensityExperiment::load(p, &overrides_of(&exp))?;
        let why = super::verify::model_file_mismatch(
            p,
            &e.file_hash,
            &e.resolved,
            (&cert.model_sha256, &cert.model_resolved),
        );
        if !why.is_empty() {
            fail(&mut report, None, None, why);
            return Ok(report);
        }
    }

    // 1. header
    let s = &exp.settings;
    let mut hdr = Vec::new();
    if cert.model_family != "density" {
        hdr.push(format!(
            "model_family '{}' but this is a density certificate",
            cert.model_family
        ));
    }
    if cert.grid.lo != exp.grid.lo || cert.grid.hi != exp.grid.hi || cert.grid.points != exp.grid.n
    {
        hdr.push(format!(
            "grid {:?}–{:?} {:?} but the resolved model file says {:?}–{:?} {:?}",
            cert.grid.lo, cert.grid.hi, cert.grid.points, exp.grid.lo, exp.grid.hi, exp.grid.n
        ));
    }
    for (name, a, b) in [
        ("rtol", cert.rtol, s.rtol),
        ("atol", cert.atol, s.atol),
        ("t_end", cert.t_end, s.t_end),
        ("tolerance.rtol", cert.tolerance.rtol, s.rtol),
        ("tolerance.atol", cert.tolerance.atol, s.atol),
        (
            "tolerance.local_error_factor",
            cert.tolerance.local_error_factor,
            LOCAL_ERROR_FACTOR,
        ),
    ] {
        if a != b {
            hdr.push(format!("{name} = {a:e} but verify's is {b:e}"));
        }
    }
    if cert.tolerance.formula != DENSITY_TOLERANCE_FORMULA {
        hdr.push("tolerance.formula is not the formula verify derives tolerances with".into());
    }
    if cert.tolerance.closed_form_formula != DENSITY_CLOSED_FORM_FORMULA {
        hdr.push("tolerance.closed_form_formula is not verify's closed-form bound".into());
    }
    let names: Vec<&str> = cert.flows.iter().map(|f| f.flow.as_str()).collect();
    let want: Vec<&str> = FlowKind::ALL.iter().map(|f| f.name()).collect();
    if names != want {
        hdr.push(format!(
            "flows {names:?} but a density run certifies {want:?} (a flow was removed, added or reordered)"
        ));
    } else {
        for (f, k) in cert.flows.iter().zip(FlowKind::ALL) {
            let solver = s.solver.unwrap_or(k.default_solver());
            if f.solver != solver.name() {
                hdr.push(format!(
                    "flows[{}].solver '{}' but the resolved model file says '{}'",
                    k.name(),
                    f.solver,
                    solver.name()
                ));
            }
        }
    }
    let all_complete = cert.flows.iter().all(|f| f.complete);
    if cert.complete != all_complete {
        hdr.push(format!(
            "complete = {} but the flows say {all_complete}",
            cert.complete
        ));
    }
    let all_monotone = all_complete && cert.flows.iter().all(|f| f.monotone);
    if cert.monotone != all_monotone {
        hdr.push(format!(
            "monotone = {} but the flows say {all_monotone} (monotone and complete)",
            cert.monotone
        ));
    }
    if !hdr.is_empty() {
        fail(&mut report, None, None, hdr);
        return Ok(report);
    }

    let grid = RefGrid::new(&exp.grid.lo, &exp.grid.hi, &exp.grid.n);
    let ln_pi = grid.ln_density(&exp.target);
    let ln_rho0 = grid.ln_density(&exp.start);
    for (fi, f) in cert.flows.iter().enumerate() {
        let fr = f.flow == FlowKind::FisherRao.name();
        if let Some((step, why)) = check_flow(
            f,
            fr,
            &grid,
            &ln_pi,
            &ln_rho0,
            cert.rtol,
            cert.atol,
            cert.t_end,
            &mut report,
        ) {
            fail(&mut report, Some(fi), step, why);
            return Ok(report);
        }
    }
    if !cert.monotone {
        let why: Vec<String> = cert
            .flows
            .iter()
            .filter(|f| !f.complete)
            .map(|f| format!("flow {} is incomplete ({})", f.flow, f.stop))
            .collect();
        fail(
            &mut report,
            None,
            None,
            vec![format!(
                "the claims hold, but the certificate states monotone = false: nothing is certified{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why.join("; "))
                }
            )],
        );
    }
    Ok(report)
}

type Failure = Option<(Option<usize>, Vec<String>)>;

/// Check one flow; the first failure as (step, reasons).
#[allow(clippy::too_many_arguments)]
fn check_flow(
    f: &DensityFlowCert,
    fr: bool,
    grid: &RefGrid,
    ln_pi: &[f64],
    ln_rho0: &[f64],
    rtol: f64,
    atol: f64,
    t_end: f64,
    report: &mut VerifyReport,
) -> Failure {
    let n = grid.len();
    let steps = &f.steps;
    let Some(last) = steps.last() else {
        return Some((None, vec!["no steps".into()]));
    };
    // 2. the flow's summary and bookkeeping
    let reached = last.t >= t_end * (1.0 - 1e-12);
    let mut why = Vec::new();
    if f.complete != (f.stop == "finished") {
        why.push(format!("complete = {} but stop = '{}'", f.complete, f.stop));
    }
    if f.complete != reached {
        why.push(format!(
            "complete = {} but the last step is at t = {} (t_end = {t_end})",
            f.complete, last.t
        ));
    }
    let (max_increase, first_violation, mass_drift) = summarize(steps);
    if f.max_increase != max_increase {
        why.push(format!(
            "max_increase = {:e} but the steps give {max_increase:e}",
            f.max_increase
        ));
    }
    if f.first_violation != first_violation {
        why.push(format!(
            "first_violation = {:?} but the steps give {first_violation:?}",
            f.first_violation
        ));
    }
    if f.monotone != first_violation.is_none() {
        why.push(format!(
            "monotone = {} but first_violation = {first_violation:?}",
            f.monotone
        ));
    }
    if f.mass_drift != mass_drift {
        why.push(format!(
            "mass_drift = {:e} but the steps give {mass_drift:e}",
            f.mass_drift
        ));
    }
    if !why.is_empty() {
        return Some((None, why));
    }
    for (k, st) in steps.iter().enumerate() {
        let mut why = Vec::new();
        if st.index != k {
            why.push(format!("index {} at position {k}", st.index));
        }
        if k == 0 {
            if st.t != 0.0 || st.h != 0.0 || st.tolerance != 0.0 {
                why.push("row 0 must have t = 0, h = 0, tolerance = 0".into());
            }
        } else {
            let p = &steps[k - 1];
            if !within(p.t, st.t) || st.t == p.t || st.h != st.t - p.t {
                why.push(format!(
                    "t = {} after t = {} with h = {}: times must increase and h = t_k − t_k−1",
                    st.t, p.t, st.h
                ));
            }
            let tol = step_tolerance(n, rtol, atol, p, st);
            if st.tolerance != tol {
                why.push(format!(
                    "tolerance: claimed {:e} but the formula gives {tol:e}",
                    st.tolerance
                ));
            }
            if tol > 0.0 {
                report.worst_increase_ratio = report.worst_increase_ratio.max((st.kl - p.kl) / tol);
            }
        }
        if !why.is_empty() {
            return Some((Some(k), why));
        }
    }
    // 3. stored states
    let stride = f.state_stride.max(1);
    if f.state_stride == 0 {
        return Some((None, vec!["state_stride = 0".into()]));
    }
    let cap = crate::density::flow::STATE_VALUES_MAX;
    if f.states.len().saturating_sub(1) * n > cap.max(2 * n) {
        return Some((
            None,
            vec![format!(
                "{} states of {n} values exceed the cap {cap}",
                f.states.len()
            )],
        ));
    }
    let idx: Vec<usize> = f.states.iter().map(|s| s.index).collect();
    let last_k = steps.len() - 1;
    let expected: Vec<usize> = (0..steps.len())
        .filter(|k| k.is_multiple_of(stride) || *k == last_k)
        .collect();
    if idx != expected {
        return Some((
            None,
            vec![format!(
                "states at steps {:?}… but stride {stride} over {} steps gives {:?}… (a state was removed, added or moved)",
                &idx[..idx.len().min(6)],
                steps.len(),
                &expected[..expected.len().min(6)]
            )],
        ));
    }
    // Fisher–Rao: the accumulated closed-form bound B_k
    let sqrt_n = (n as f64).sqrt();
    let mut acc = 0.0;
    let mut bound = Vec::with_capacity(steps.len());
    for (k, st) in steps.iter().enumerate() {
        if k > 0 {
            acc += 2.0 * LOCAL_ERROR_FACTOR * sqrt_n * (rtol * st.theta_max + atol);
        }
        bound.push(acc + 64.0 * EPS * (1.0 + st.theta_max));
    }
    let mut states = f.states.iter().peekable();
    for (k, st) in steps.iter().enumerate() {
        let eps_k = (4.0 * n as f64 + 64.0) * EPS * st.kl_scale;
        let exact = fr.then(|| {
            let a = (-st.t).exp();
            let th: Vec<f64> = ln_rho0
                .iter()
                .zip(ln_pi)
                .map(|(r, p)| a * r + (1.0 - a) * p)
                .collect();
            grid.normalize(&th)
        });
        let state = states.next_if(|s| s.index == k);
        let mut why = Vec::new();
        match state {
            Some(s) => {
                let th = &s.log_rho;
                if th.len() != n {
                    return Some((
                        Some(k),
                        vec![format!("state has {} values, the grid {n} cells", th.len())],
                    ));
                }
                if sha(th) != st.state_sha256 {
                    why.push(
                        "state_sha256: the stored state's SHA-256 differs from the step's (the state or the hash was edited)".into(),
                    );
                }
                if k == 0 {
                    let own = grid.normalize(th);
                    let worst = own
                        .iter()
                        .zip(ln_rho0)
                        .map(|(a, b)| (a - b).abs() / (64.0 * EPS * (1.0 + b.abs())))
                        .fold(0.0, f64::max);
                    if !within(worst, 1.0) {
                        why.push(format!(
                            "state 0 is not the start density: |Δlog ρ| = {worst:.3e} × 64ε(1 + |log ρ₀|)"
                        ));
                    }
                }
                let r = recompute(grid, th, ln_pi);
                let checks = [
                    ("kl", st.kl, r.kl, 2.0 * eps_k),
                    ("grad_norm", st.grad_norm, r.grad_norm, 2.0 * eps_k),
                    ("kl_scale", st.kl_scale, r.kl_scale, 1e-10 * r.kl_scale),
                    ("theta_max", st.theta_max, r.theta_max, 0.0),
                    (
                        "mass",
                        st.mass,
                        r.mass,
                        2.0 * (n as f64 + 8.0) * EPS * r.mass,
                    ),
                ];
                for (name, claim, mine, tol) in checks {
                    let d = (claim - mine).abs();
                    if !within(d, tol) {
                        why.push(format!(
                            "{name}: claimed {claim:e} differs from the recomputed {mine:e} by {d:.3e} > {tol:.3e}"
                        ));
                    }
                    if name == "kl" && tol > 0.0 {
                        report.worst_loss_ratio = report.worst_loss_ratio.max(d / tol);
                    }
                }
                if let Some(ex) = &exact {
                    let own = grid.normalize(th);
                    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                    for (a, b) in own.iter().zip(ex) {
                        let d = a - b;
                        lo = lo.min(d);
                        hi = hi.max(d);
                    }
                    let osc = hi - lo;
                    report.worst_continuity_ratio =
                        report.worst_continuity_ratio.max(osc / bound[k]);
                    if !within(osc, bound[k]) {
                        why.push(format!(
                            "closed form: the state is {osc:.3e} (oscillation of log ρ − log ρ*) from ρ*(t = {}) > B_k = {:.3e}",
                            st.t, bound[k]
                        ));
                    }
                }
            }
            None => {
                if let Some(ex) = &exact {
                    let r = recompute(grid, ex, ln_pi);
                    let b = bound[k];
                    let tol = b * b.exp() * (r.mean_abs_dev + 2.0 * b) + 2.0 * eps_k;
                    let d = (st.kl - r.kl).abs();
                    report.worst_loss_ratio = report.worst_loss_ratio.max(d / tol);
                    if !within(d, tol) {
                        why.push(format!(
                            "kl: claimed {:e} differs from the closed form's {:e} by {d:.3e} > {tol:.3e}",
                            st.kl, r.kl
                        ));
                    }
                }
            }
        }
        if !why.is_empty() {
            return Some((Some(k), why));
        }
        report.steps_checked += 1;
    }
    None
}
