//! Natural-gradient variational inference: the conjugate flow in natural parameters, chart
//! invariance of the flow, and the VI optimum against the exact logistic posterior.

use super::{Outcome, Property};
use crate::error::{Error, Result};
use crate::flow::{FlowSettings, Simulator};
use crate::metric::MetricKind;
use crate::model::StatModel;
use crate::model::variational::spec::{parse_two_classes, standardize};
use crate::model::variational::{
    Coords, Covariance, Rule, Target, VariationalChart, VariationalGaussian,
};
use nalgebra::{DMatrix, DVector};

/// The properties of this group.
pub fn properties() -> Vec<Property> {
    vec![
        Property {
            name: "vi-conjugate-natural-params",
            statement: "conjugate linear-Gaussian VI: the natural-parameter flow is η(t) = η* + (η₀ − η*)e^{−t}",
            run: conjugate_natural_params,
        },
        Property {
            name: "vi-chart-invariance",
            statement: "the natural-gradient VI flows in the (m, S), (m, L) and natural charts, mapped to (m, S), coincide",
            run: chart_invariance,
        },
        Property {
            name: "vi-logistic-vs-exact-posterior",
            statement: "Gaussian VI on iris logistic regression: 0 ≤ KL[q*‖p] small, q*'s mean at the exact posterior mean, its variances below the exact ones",
            run: logistic_vs_exact,
        },
    ]
}

/// The conjugate example of `models/vi-conjugate.toml`: prior N(0, I₂), noise 0.6, five
/// observations.
pub fn conjugate(chart: VariationalChart, cov: Covariance) -> VariationalGaussian {
    let a = DMatrix::from_row_slice(5, 2, &[1.0, 0.2, 0.8, -0.5, -0.3, 1.0, 1.2, 0.9, 0.1, -1.1]);
    let y = DVector::from_column_slice(&[1.1, 0.4, 0.7, 2.0, -0.9]);
    let target = Target::linear_gaussian(&DVector::zeros(2), &DMatrix::identity(2, 2), &a, &y, 0.6)
        .unwrap_or_else(|| unreachable!("the prior is the identity"));
    let mut m = VariationalGaussian::new(Coords { d: 2, chart, cov }, target, None);
    m.posterior = m.target.posterior(0);
    m
}

/// The first start of `models/vi-conjugate.toml`: N((−1.5, 1.5), [[2, 0.8], [0.8, 1]]).
pub fn conjugate_start() -> (DVector<f64>, DMatrix<f64>) {
    (
        DVector::from_column_slice(&[-1.5, 1.5]),
        DMatrix::from_row_slice(2, 2, &[2.0, 0.8, 0.8, 1.0]),
    )
}

/// Iris versicolor (−1) against virginica (+1) on `features` (standardized) plus an
/// intercept, prior N(0, 4I), Gauss–Hermite with `nodes` per axis; with `exact`, the exact
/// posterior by a 40ᵈ tensor rule.
pub fn iris_logistic(
    chart: VariationalChart,
    cov: Covariance,
    features: &[&str],
    nodes: usize,
    exact: bool,
) -> Result<VariationalGaussian> {
    let text = include_str!("../../models/data/iris.csv");
    let classes = ["Iris-versicolor".to_string(), "Iris-virginica".to_string()];
    let feats: Vec<String> = features.iter().map(|s| s.to_string()).collect();
    let (mut x, y) = parse_two_classes(
        text,
        std::path::Path::new("models/data/iris.csv"),
        "species",
        &classes,
        &feats,
    )?;
    standardize(&mut x);
    let x = x.insert_column(0, 1.0);
    let d = x.ncols();
    let rule = Rule::gauss_hermite(d, nodes)
        .ok_or_else(|| Error::invalid("nodes", nodes, "too many tensor nodes"))?;
    let target = Target::Logistic {
        x,
        y,
        prior_var: 4.0,
    };
    let mut m = VariationalGaussian::new(Coords { d, chart, cov }, target, Some(rule));
    if exact {
        m.ensure_posterior();
    }
    Ok(m)
}

fn settings(rtol: f64, atol: f64, t_end: f64) -> FlowSettings {
    FlowSettings {
        metric: MetricKind::Exact,
        rtol,
        atol,
        t_end,
        grad_tol: 0.0,
        ..FlowSettings::default()
    }
}

fn start_of(
    m: &VariationalGaussian,
    (mean, cov): &(DVector<f64>, DMatrix<f64>),
) -> Result<Vec<f64>> {
    m.coords
        .from_mean_cov(mean, cov)
        .ok_or_else(|| Error::Numerical("start covariance not positive definite".into()))
}

/// Largest |φᵢ(t) − (η*ᵢ + (η₀ᵢ − η*ᵢ)e^{−t})| / max(1, |η*ᵢ|) over every accepted step of the
/// natural-chart flow (tsit45, rtol 1e-11).
fn conjugate_natural_params() -> Result<Outcome> {
    let m = conjugate(VariationalChart::Natural, Covariance::Full);
    let post = m
        .posterior
        .clone()
        .ok_or_else(|| Error::Numerical("no posterior".into()))?;
    let eta_star = start_of(&m, &(post.mean, post.cov))?;
    let eta0 = start_of(&m, &conjugate_start())?;
    let tr = Simulator::new(&m, settings(1e-11, 1e-13, 10.0))?.run(&eta0)?;
    let mut worst = 0.0f64;
    for s in &tr.steps {
        let e = (-s.t).exp();
        for i in 0..eta0.len() {
            let exact = eta_star[i] + (eta0[i] - eta_star[i]) * e;
            worst = worst.max((s.theta[i] - exact).abs() / eta_star[i].abs().max(1.0));
        }
    }
    let last = tr.last().map(|s| s.theta.clone()).unwrap_or_default();
    let kl_end = m.kl(&last).unwrap_or(f64::NAN);
    Ok(Outcome::at_most(
        "vi-conjugate-natural-params",
        format!(
            "max rel. deviation from eta* + (eta0 - eta*)e^-t over {} steps to t = 10: {worst:.2e}; KL[q(10) || p] = {kl_end:.2e} (e^-20-scale)",
            tr.steps.len()
        ),
        worst,
        1e-8,
    ))
}

/// (m, vech S) of φ, as one vector.
fn mean_vech(m: &VariationalGaussian, phi: &[f64]) -> Option<Vec<f64>> {
    let (mu, s) = m.mean_cov(phi)?;
    let mut v: Vec<f64> = mu.iter().copied().collect();
    v.extend(
        crate::model::variational::coords::full_pairs(m.d())
            .iter()
            .map(|&p| s[p]),
    );
    Some(v)
}

/// The flow from one q₀ in each chart (iris, d = 2, full and mean-field), recorded at
/// t ∈ {0.25, 0.5, 1, 2, 4} and mapped to (m, vech S): largest difference to the natural
/// chart's, relative to max(1, |value|).
fn chart_invariance() -> Result<Outcome> {
    let times = vec![0.25, 0.5, 1.0, 2.0, 4.0];
    let q0 = (
        DVector::from_column_slice(&[0.5, -0.5]),
        DMatrix::from_row_slice(2, 2, &[2.0, 0.3, 0.3, 1.0]),
    );
    let mut worst = 0.0f64;
    let mut compared = 0;
    for cov in [Covariance::Full, Covariance::MeanField] {
        let mut curves: Vec<Vec<Vec<f64>>> = Vec::new();
        for chart in [
            VariationalChart::Natural,
            VariationalChart::MeanCov,
            VariationalChart::MeanCholesky,
        ] {
            let m = iris_logistic(chart, cov, &["petal_width"], 12, false)?;
            let s = FlowSettings {
                save_at: times.clone(),
                ..settings(1e-10, 1e-12, 4.0)
            };
            let tr = Simulator::new(&m, s)?.run(&start_of(&m, &q0)?)?;
            let mut curve = Vec::new();
            for t in &times {
                let st = tr
                    .steps
                    .iter()
                    .find(|s| (s.t - t).abs() <= 1e-12 * t)
                    .ok_or_else(|| Error::Numerical(format!("no saved point at t = {t}")))?;
                curve.push(
                    mean_vech(&m, &st.theta)
                        .ok_or_else(|| Error::Numerical("left the domain".into()))?,
                );
            }
            curves.push(curve);
        }
        for c in &curves[1..] {
            for (a, b) in c.iter().zip(&curves[0]) {
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((x - y).abs() / y.abs().max(1.0));
                    compared += 1;
                }
            }
        }
    }
    Ok(Outcome::at_most(
        "vi-chart-invariance",
        format!(
            "max rel. difference of (m, S) between charts (mean-cov, mean-cholesky vs natural; full and mean-field; {compared} values at t = 0.25..4): {worst:.2e}"
        ),
        worst,
        1e-6,
    ))
}

/// Natural flow to t = 20 on iris (d = 3, 10³ nodes; 10 debug-build seconds): KL gap KL[q*‖p] = L(q*) + log Z and
/// the largest |m*ᵢ − E_p[zᵢ]| / sd_p(zᵢ).
fn logistic_vs_exact() -> Result<Outcome> {
    let m = iris_logistic(
        VariationalChart::Natural,
        Covariance::Full,
        &["petal_length", "petal_width"],
        10,
        true,
    )?;
    let post = m
        .posterior
        .clone()
        .ok_or_else(|| Error::Numerical("no exact posterior".into()))?;
    let q0 = (DVector::zeros(3), DMatrix::identity(3, 3) * 4.0);
    let tr = Simulator::new(&m, settings(1e-8, 1e-10, 20.0))?.run(&start_of(&m, &q0)?)?;
    let phi = tr
        .last()
        .map(|s| s.theta.clone())
        .ok_or_else(|| Error::Numerical("empty trajectory".into()))?;
    let (mean, s) = m
        .mean_cov(&phi)
        .ok_or_else(|| Error::Numerical("left the domain".into()))?;
    let gap = m.kl(&phi).unwrap_or(f64::NAN);
    let mean_err = (0..3)
        .map(|i| (mean[i] - post.mean[i]).abs() / post.cov[(i, i)].sqrt())
        .fold(0.0, f64::max);
    let ratios: Vec<f64> = (0..3).map(|i| s[(i, i)] / post.cov[(i, i)]).collect();
    let var_ratio: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    let grad = m.gradient(&phi).amax();
    // KL[q‖p]-optimal Gaussians under-estimate marginal variances (zero-forcing): ratios in
    // (0.5, 1]; the measured gap 0.038 and mean error 0.002 sd are far inside the bounds.
    let pass = gap >= -post.log_z_error
        && gap <= 0.1
        && mean_err <= 0.1
        && ratios.iter().all(|r| *r > 0.5 && *r <= 1.0 + 1e-6);
    Ok(Outcome::new(
        "vi-logistic-vs-exact-posterior",
        format!(
            "KL gap KL[q*||p] = {gap:.4e} (log Z = {:.6}, error {:.1e}); max |m* - E_p z|/sd_p = {mean_err:.3}; var ratios q*/p = [{}]; |grad| at t = 20: {grad:.1e}; cubature {}",
            post.log_z,
            post.log_z_error,
            var_ratio.join(", "),
            m.describe()
        ),
        gap,
        "0 <= KL gap <= 0.1, mean error <= 0.1 sd, variance ratios in (0.5, 1]".into(),
        pass,
    ))
}
