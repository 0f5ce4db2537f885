//! Properties of flows: rates, certificates, invariance, exact solutions, convergence, escape.

use super::{Outcome, Property, fit_slope};
use crate::certificate::{Monotone, verify};
use crate::config::{Experiment, ModelFile, Overrides, sha256_hex};
use crate::error::{Error, Result};
use crate::flow::{FlowRhs, FlowSettings, Simulator, SolverKind};
use crate::linalg::sym_eigen;
use crate::metric::MetricKind;
use crate::model::chart::{Chart, CubicSecond, MeanHalfDifference, Pullback};
use crate::model::normal::{Normal, NormalChart};
use crate::model::{GaussianMixture, LossKind, StatModel};
use crate::quadrature::Scheme;
use crate::trajectory::Trajectory;

/// The properties of this group.
pub fn properties() -> Vec<Property> {
    vec![
        Property {
            name: "rate-along-trajectory",
            statement: "dL/dt = −∇LᵀI⁻¹∇L along computed trajectories (finite difference of L(t))",
            run: rate_along_trajectory,
        },
        Property {
            name: "certificate-verifies",
            statement: "a certificate of a real run passes the independent verifier",
            run: certificate_verifies,
        },
        Property {
            name: "reparam-invariance-linear",
            statement: "the natural flow in (m, d) maps onto the flow in (μ₁, μ₂)",
            run: || invariance("reparam-invariance-linear", &MeanHalfDifference),
        },
        Property {
            name: "reparam-invariance-nonlinear",
            statement: "the natural flow in (μ₁, μ₂ + μ₂³/3) maps onto the flow in (μ₁, μ₂)",
            run: || invariance("reparam-invariance-nonlinear", &CubicSecond),
        },
        Property {
            name: "reparam-euclidean-control",
            statement: "the Euclidean flows in the same charts visibly differ (control)",
            run: euclidean_control,
        },
        Property {
            name: "normal-exact-flow",
            statement: "μ(t) = m + (μ₀−m)e^{−t}, σ²(t) = s² + (σ₀²−s²)e^{−t} + (μ₀−m)²(e^{−t}−e^{−2t}) in five charts",
            run: normal_exact_flow,
        },
        Property {
            name: "local-rate-natural",
            statement: "L − L* ∝ e^{−2t} near θ* along the natural flow",
            run: local_rate_natural,
        },
        Property {
            name: "local-rate-euclidean",
            statement: "L − L* ∝ e^{−2λ_min t} near θ* along the Euclidean flow",
            run: local_rate_euclidean,
        },
        Property {
            name: "escape-natural",
            statement: "the natural flow's time to L − L* < 1e-6 barely depends on the distance δ to the singular line",
            run: escape_natural,
        },
        Property {
            name: "escape-euclidean",
            statement: "the Euclidean flow's time to L − L* < 1e-6 grows like log(1/δ)",
            run: escape_euclidean,
        },
    ]
}

/// The seed model: σ = 1, w = ½, θ* = (−1.5, 2).
pub fn seed_mixture() -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

fn settings(metric: MetricKind, rtol: f64, atol: f64, t_end: f64) -> FlowSettings {
    FlowSettings {
        metric,
        rtol,
        atol,
        t_end,
        grad_tol: 0.0,
        ..FlowSettings::default()
    }
}

/// Global-error allowance of a trajectory: Σ over its accepted steps of the local bound
/// √n·(rtol·‖θ‖∞ + atol) (errors add without amplification along a contracting flow).
fn global_tol(tr: &Trajectory, rtol: f64, atol: f64) -> f64 {
    let n = tr.param_names.len() as f64;
    tr.steps
        .iter()
        .skip(1)
        .map(|s| n.sqrt() * (rtol * s.theta.iter().fold(0.0f64, |m, v| m.max(v.abs())) + atol))
        .sum()
}

fn rate_along_trajectory() -> Result<Outcome> {
    let m = seed_mixture();
    let sim = Simulator::new(&m, settings(MetricKind::Exact, 1e-8, 1e-10, 3.0))?;
    let tr = sim.run(&[-3.0, -2.5])?;
    let rhs = FlowRhs::new(&m, MetricKind::Exact, 0.0);
    // θ(t ± τ) by one RK4 step of size ±τ; central differences at τ and 2τ, Richardson-combined.
    let rk4 = |th: &[f64], h: f64| -> Vec<f64> {
        let f = |y: &[f64]| rhs.eval_vec(y);
        let add = |y: &[f64], k: &nalgebra::DVector<f64>, c: f64| -> Vec<f64> {
            y.iter().zip(k.iter()).map(|(a, b)| a + c * b).collect()
        };
        let k1 = f(th);
        let k2 = f(&add(th, &k1, 0.5 * h));
        let k3 = f(&add(th, &k2, 0.5 * h));
        let k4 = f(&add(th, &k3, h));
        let k = (k1 + k2 * 2.0 + k3 * 2.0 + k4) / 6.0;
        add(th, &k, h)
    };
    // τ = 1 % of the local time scale |rate| / |d rate/dt| (from neighbouring steps), so the
    // O((τ/T)⁴) truncation error stays ≈ 1e-8 whether the flow is fast or slow.
    let st = &tr.steps;
    let mut worst = 0.0f64;
    for (k, s) in st.iter().enumerate() {
        let (a, b) = (&st[k.saturating_sub(1)], &st[(k + 1).min(st.len() - 1)]);
        let drate = ((b.rate - a.rate) / (b.t - a.t)).abs();
        let tau = (0.01 * s.rate.abs() / drate.max(f64::MIN_POSITIVE)).min(1e-2);
        let d = |h: f64| (m.loss(&rk4(&s.theta, h)) - m.loss(&rk4(&s.theta, -h))) / (2.0 * h);
        let fd = (4.0 * d(tau) - d(2.0 * tau)) / 3.0;
        worst = worst.max((fd - s.rate).abs() / (s.rate.abs() + 1e-8));
    }
    Ok(Outcome::at_most(
        "rate-along-trajectory",
        format!(
            "{} steps from (-3, -2.5): max |FD dL/dt - rate| / (|rate| + 1e-8) = {worst:.2e} (Richardson central differences, tau = 1% of the local time scale)",
            tr.steps.len()
        ),
        worst,
        1e-6,
    ))
}

const CHECK_MODEL: &str = r#"
[model]
sigma = 1.0
weight = 0.5
target = [-1.5, 2.0]

[flow]
t_end = 2.0
starts = [[0.1, 0.15], [-0.5, 3.5]]
"#;

fn certificate_verifies() -> Result<Outcome> {
    let file: ModelFile = toml::from_str(CHECK_MODEL)
        .map_err(|e| Error::Numerical(format!("built-in model: {e}")))?;
    let path = std::path::Path::new("<fisher-flow check>");
    let exp = Experiment::from_file(
        path,
        sha256_hex(CHECK_MODEL.as_bytes()),
        file,
        &Overrides::default(),
    )?;
    let sim = Simulator::new(&exp.model, exp.flow.clone())?;
    let trs = exp
        .starts
        .iter()
        .map(|s| sim.run(s))
        .collect::<Result<Vec<_>>>()?;
    let cert = Monotone::build(&exp, &exp.model, &trs);
    let rep = verify(&cert, None)?;
    let worst = rep
        .worst_loss_ratio
        .max(rep.worst_rate_ratio)
        .max(rep.worst_continuity_ratio)
        .max(rep.worst_increase_ratio);
    Ok(Outcome::new(
        "certificate-verifies",
        format!(
            "{} steps verified; worst fraction of tolerance used: loss {:.3}, rate {:.3}, continuity {:.3}, increase {:.3}{}",
            rep.steps_checked,
            rep.worst_loss_ratio,
            rep.worst_rate_ratio,
            rep.worst_continuity_ratio,
            rep.worst_increase_ratio,
            rep.failure
                .as_ref()
                .map(|f| format!("; FAILED: {f}"))
                .unwrap_or_default()
        ),
        worst,
        "verify exits 0 (every ratio <= 1)".into(),
        rep.ok() && cert.monotone,
    ))
}

/// Largest |θ_chart(T) − θ_base(T)| over the comparison times, and the allowance.
fn chart_difference(
    metric: MetricKind,
    chart: &dyn Chart,
    rtol: f64,
    atol: f64,
) -> Result<(f64, f64)> {
    let m = seed_mixture();
    let pb = Pullback { base: &m, chart };
    let start = [-0.5, 3.5];
    let phi0 = chart.chart_of(&start);
    let mut worst = (0.0f64, f64::INFINITY);
    let mut ratio = 0.0f64;
    for t in [0.5, 2.0, 6.0] {
        let a = Simulator::new(&m, settings(metric, rtol, atol, t))?.run(&start)?;
        let b = Simulator::new(&pb, settings(metric, rtol, atol, t))?.run(&phi0)?;
        let (Some(ea), Some(eb)) = (a.last(), b.last()) else {
            return Err(Error::Numerical("empty trajectory".into()));
        };
        let mapped = chart.base_of(&eb.theta);
        let d = ea
            .theta
            .iter()
            .zip(&mapped)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let jn = chart.jacobian(&eb.theta).amax() * 2.0;
        let tol = global_tol(&a, rtol, atol) + jn * global_tol(&b, rtol, atol);
        if d / tol >= ratio {
            ratio = d / tol;
            worst = (d, tol);
        }
    }
    Ok(worst)
}

fn invariance(name: &'static str, chart: &dyn Chart) -> Result<Outcome> {
    let (d, tol) = chart_difference(MetricKind::Exact, chart, 1e-10, 1e-12)?;
    Ok(Outcome::new(
        name,
        format!(
            "natural flow from (-0.5, 3.5), chart {}: max |theta - h(phi)| at t = 0.5, 2, 6 is {d:.2e} (allowance {tol:.2e}, summed local tolerances)",
            chart.name()
        ),
        d,
        format!("<= {tol:.2e}"),
        d <= tol,
    ))
}

fn euclidean_control() -> Result<Outcome> {
    let (d1, tol1) = chart_difference(MetricKind::Euclidean, &MeanHalfDifference, 1e-10, 1e-12)?;
    let (d2, tol2) = chart_difference(MetricKind::Euclidean, &CubicSecond, 1e-10, 1e-12)?;
    let d = d1.min(d2);
    let tol = 100.0 * tol1.max(tol2);
    Ok(Outcome::new(
        "reparam-euclidean-control",
        format!(
            "Euclidean flow from (-0.5, 3.5): max |theta - h(phi)| = {d1:.3} in (m, d), {d2:.3} in (mu1, mu2 + mu2^3/3)"
        ),
        d,
        format!(">= 100 x the solver allowance = {tol:.1e}"),
        d >= tol,
    ))
}

fn normal_exact_flow() -> Result<Outcome> {
    let (m, s2) = (0.5, 0.64);
    let (mu0, v0) = (-1.0, 4.0);
    let (rtol, atol) = (1e-10, 1e-12);
    let mut worst = 0.0f64;
    let mut err_at = String::new();
    let mut max_err = 0.0f64;
    for chart in NormalChart::ALL {
        let model = Normal {
            chart,
            target_mean: m,
            target_var: s2,
        };
        let start = chart.from_mean_var(mu0, v0);
        let tr =
            Simulator::new(&model, settings(MetricKind::Exact, rtol, atol, 5.0))?.run(&start)?;
        let tol = global_tol(&tr, rtol, atol);
        for s in &tr.steps {
            let e = (-s.t).exp();
            let mu = m + (mu0 - m) * e;
            let v = s2 + (v0 - s2) * e + (mu0 - m).powi(2) * (e - e * e);
            let want = chart.from_mean_var(mu, v);
            let d = s
                .theta
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            max_err = max_err.max(d);
            if d / tol > worst {
                worst = d / tol;
                err_at = format!("{} at t = {:.3}: {d:.2e} of {tol:.2e}", chart.name(), s.t);
            }
        }
    }
    Ok(Outcome::new(
        "normal-exact-flow",
        format!(
            "max |theta - theta_exact(t)| over all steps, 5 charts: {max_err:.2e}; worst fraction of the allowance {worst:.3} ({err_at})"
        ),
        worst,
        "<= 1 (error <= summed local tolerances)".into(),
        worst <= 1.0,
    ))
}

/// Fitted decay rate −d ln(L − L*)/dt over the samples with L − L* in [lo, hi].
fn fitted_rate(tr: &Trajectory, l_star: f64, lo: f64, hi: f64) -> (f64, usize) {
    let mut ts = Vec::new();
    let mut ys = Vec::new();
    for s in &tr.steps {
        for &(t, l) in s.interior.iter().chain(std::iter::once(&(s.t, s.loss))) {
            let gap = l - l_star;
            if gap >= lo && gap <= hi {
                ts.push(t);
                ys.push(gap.ln());
            }
        }
    }
    (-fit_slope(&ts, &ys), ts.len())
}

fn local_rate(metric: MetricKind, t_end: f64) -> Result<(f64, usize, f64)> {
    let m = seed_mixture();
    let l_star = m.loss(&m.target);
    let start = [m.target[0] + 0.006, m.target[1] + 0.008];
    let tr = Simulator::new(&m, settings(metric, 1e-11, 1e-13, t_end))?.run(&start)?;
    let lmin = sym_eigen(&m.fisher(&m.target)).values[0];
    let (rate, n) = fitted_rate(&tr, l_star, 1e-11, 1e-7);
    Ok((rate, n, lmin))
}

fn local_rate_natural() -> Result<Outcome> {
    let (rate, n, _) = local_rate(MetricKind::Exact, 12.0)?;
    let rel = (rate / 2.0 - 1.0).abs();
    Ok(Outcome::new(
        "local-rate-natural",
        format!(
            "start theta* + (0.006, 0.008): fitted rate {rate:.5} from {n} samples with L - L* in [1e-11, 1e-7] (expected 2)"
        ),
        rate,
        "2 +/- 2 %".into(),
        rel <= 0.02 && n >= 4,
    ))
}

fn local_rate_euclidean() -> Result<Outcome> {
    let (rate, n, lmin) = local_rate(MetricKind::Euclidean, 60.0)?;
    let want = 2.0 * lmin;
    let rel = (rate / want - 1.0).abs();
    Ok(Outcome::new(
        "local-rate-euclidean",
        format!(
            "start theta* + (0.006, 0.008): fitted rate {rate:.5} from {n} samples; 2 lambda_min(I(theta*)) = {want:.5}"
        ),
        rate,
        "2 lambda_min +/- 2 %".into(),
        rel <= 0.02 && n >= 4,
    ))
}

/// Time to L − L* < 1e-6 from (c − δ/2, c + δ/2), c = 0.25, for δ = 5e-2, 1e-3, 1e-4.
pub fn escape_times(metric: MetricKind) -> Result<Vec<(f64, f64)>> {
    let m = seed_mixture();
    let l_star = m.loss(&m.target);
    let mut out = Vec::new();
    for d in [5e-2, 1e-3, 1e-4] {
        let s = FlowSettings {
            solver: SolverKind::Tsit45,
            ..settings(metric, 1e-8, 1e-10, 200.0)
        };
        let tr = Simulator::new(
            &m,
            FlowSettings {
                grad_tol: 1e-9,
                ..s
            },
        )?
        .run(&[0.25 - 0.5 * d, 0.25 + 0.5 * d])?;
        let t = tr.time_to_reach(l_star, 1e-6).ok_or_else(|| {
            Error::Numerical(format!("no convergence from delta = {d} by t = 200"))
        })?;
        out.push((d, t));
    }
    Ok(out)
}

fn escape_natural() -> Result<Outcome> {
    let ts = escape_times(MetricKind::Exact)?;
    let t0 = ts[0].1;
    let change = ts
        .iter()
        .map(|(_, t)| (t / t0 - 1.0).abs())
        .fold(0.0, f64::max);
    Ok(Outcome::at_most(
        "escape-natural",
        format!(
            "times to L - L* < 1e-6: {} ; max relative change {change:.4}",
            ts.iter()
                .map(|(d, t)| format!("delta {d:e}: {t:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        change,
        0.05,
    ))
}

fn escape_euclidean() -> Result<Outcome> {
    let ts = escape_times(MetricKind::Euclidean)?;
    let x: Vec<f64> = ts.iter().map(|(d, _)| (1.0 / d).ln()).collect();
    let y: Vec<f64> = ts.iter().map(|(_, t)| *t).collect();
    let slope = fit_slope(&x, &y);
    // Linear in log(1/δ): the two increments per unit of log(1/δ) agree within a factor 1.5.
    let s1 = (y[1] - y[0]) / (x[1] - x[0]);
    let s2 = (y[2] - y[1]) / (x[2] - x[1]);
    let ok = s1 > 0.0 && s2 > 0.0 && (s1 / s2).max(s2 / s1) <= 1.5;
    Ok(Outcome::new(
        "escape-euclidean",
        format!(
            "times to L - L* < 1e-6: {} ; dt/dlog(1/delta) = {s1:.3}, {s2:.3} (fit {slope:.3})",
            ts.iter()
                .map(|(d, t)| format!("delta {d:e}: {t:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        slope,
        "increasing, increments per unit log(1/delta) agree within x1.5".into(),
        ok,
    ))
}
