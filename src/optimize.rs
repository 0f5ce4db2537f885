//! Discrete baselines beside the flow: θₖ₊₁ = θₖ − η·Pₖ∇L(θₖ) for three preconditioners P.
//!
//! * `gd` — plain gradient descent, P = I.
//! * `fisher-diag` — the essay's `fisher_flow_step`: P = diag(1/(Gᵢᵢ + ε)), the gradient divided
//!   by the diagonal of the Fisher matrix plus ε, fixed learning rate.
//! * `ngd` — natural-gradient descent with any metric provider, P = (G + λI)⁺.
//!
//! With `lm` (natural gradient only), λ adapts by the Levenberg–Marquardt rule used in K-FAC:
//! the step p = −η(G + λI)⁺g is scored by ρ = (L(θ + p) − L(θ)) / M(p), the ratio of the actual
//! change to the change predicted by the quadratic model M(p) = gᵀp + ½pᵀ(G + λI)p; λ is
//! raised by [`LM_UP`] when ρ < ¼ and lowered by [`LM_DOWN`] when ρ > ¾ ([`lm_update`]). A step
//! that does not decrease the loss is rejected (θ kept, counted in `rejected`).
//!
//! The result is a [`Trajectory`] like a flow's, with the iteration index as t, so `run`'s
//! outputs and plots apply unchanged. Running all iterations ends with `StopReason::TEnd`
//! (retcode `Success`), ‖∇L‖ < grad_tol with `Converged`, and a non-finite or diverging loss
//! ([`diverged`]) with `Unstable`: the iteration stops there.

use crate::error::{Error, Result};
use crate::metric::MetricKind;
use crate::model::StatModel;
use crate::trajectory::{Event, Stats, Step, StopReason, Trajectory};
use nalgebra::DVector;
use std::time::Instant;

/// Factor by which λ grows after a poor step (ρ < ¼).
pub const LM_UP: f64 = 1.5;
/// Factor by which λ shrinks after a very good step (ρ > ¾).
pub const LM_DOWN: f64 = 2.0 / 3.0;

/// Which discrete method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Gradient descent.
    Gd,
    /// Gradient divided by the Fisher diagonal + ε.
    FisherDiag,
    /// Natural-gradient descent.
    Ngd,
}

impl Method {
    /// Names accepted on the command line.
    pub const NAMES: &'static [&'static str] = &["gd", "fisher-diag", "ngd"];

    /// Parse a method name.
    pub fn parse(field: &str, s: &str) -> Result<Method> {
        match s {
            "gd" => Ok(Method::Gd),
            "fisher-diag" => Ok(Method::FisherDiag),
            "ngd" => Ok(Method::Ngd),
            _ => Err(Error::invalid(
                field,
                format!("'{s}'"),
                "expected one of gd, fisher-diag, ngd",
            )),
        }
    }

    /// The method's name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Gd => "gd",
            Method::FisherDiag => "fisher-diag",
            Method::Ngd => "ngd",
        }
    }

    /// Default learning rate: 0.1 for `gd` and `fisher-diag`, 1 for `ngd`.
    pub fn default_lr(&self) -> f64 {
        match self {
            Method::Ngd => 1.0,
            _ => 0.1,
        }
    }
}

/// Settings of a discrete run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizeSettings {
    pub method: Method,
    /// Learning rate η > 0.
    pub lr: f64,
    /// Number of iterations.
    pub iters: usize,
    /// Metric of `ngd` and the recorded κ.
    pub metric: MetricKind,
    /// Damping λ ≥ 0 (initial λ with `lm`).
    pub damping: f64,
    /// Levenberg–Marquardt adaptive damping (`ngd` only).
    pub lm: bool,
    /// ε of `fisher-diag`.
    pub eps: f64,
    /// Stop when ‖∇L‖ < grad_tol (0: never).
    pub grad_tol: f64,
}

impl OptimizeSettings {
    /// Check every value; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "--lr",
                self.lr,
                "must be a finite number > 0",
            ));
        }
        if self.iters == 0 {
            return Err(Error::invalid("--iters", 0, "must be ≥ 1"));
        }
        if !(self.damping.is_finite() && self.damping >= 0.0) {
            return Err(Error::invalid(
                "--damping",
                self.damping,
                "must be a finite number ≥ 0",
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid(
                "--eps",
                self.eps,
                "must be a finite number > 0",
            ));
        }
        if self.lm && self.method != Method::Ngd {
            return Err(Error::invalid(
                "--lm",
                self.method.name(),
                "Levenberg–Marquardt damping applies to --method ngd only",
            ));
        }
        Ok(())
    }
}

/// The LM rule: λ·[`LM_UP`] if ρ < ¼, λ·[`LM_DOWN`] if ρ > ¾, else λ (a λ of 0 restarts at 1e-8).
pub fn lm_update(lambda: f64, rho: f64) -> f64 {
    if rho.is_nan() || rho < 0.25 {
        (lambda * LM_UP).max(1e-8)
    } else if rho > 0.75 {
        lambda * LM_DOWN
    } else {
        lambda
    }
}

/// Growth of the loss above its start value, relative to 1 + |L₀|, at which a run counts as
/// diverging ([`diverged`]).
pub const DIVERGENCE_FACTOR: f64 = 1e10;

/// Whether a loss `l` is diverging from the start loss `l0`: L − L₀ > [`DIVERGENCE_FACTOR`]·(1 + |L₀|).
/// A step size beyond the stability limit grows the loss geometrically, so it crosses this
/// bound within a few dozen iterations instead of running on to 1e308 (where the trajectory's
/// numbers are meaningless and a log-scale plot has nothing to show).
pub fn diverged(l0: f64, l: f64) -> bool {
    l - l0 > DIVERGENCE_FACTOR * (1.0 + l0.abs())
}

/// The outcome: a trajectory (t = iteration) and the damping used at each iteration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub trajectory: Trajectory,
    /// λ at each iteration (constant without `lm`).
    pub damping: Vec<f64>,
}

/// Run the discrete method from `start`.
pub fn optimize(model: &dyn StatModel, s: &OptimizeSettings, start: &[f64]) -> Result<Outcome> {
    s.validate()?;
    let n = model.dim();
    if start.len() != n || start.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "start",
            format!("{start:?}"),
            format!("expected {n} finite values"),
        ));
    }
    let clock = Instant::now();
    let mut theta = DVector::from_column_slice(start);
    let mut lambda = s.damping;
    let mut stats = Stats::default();
    let mut damping = Vec::new();
    let mut steps = Vec::new();
    let mut events = Vec::new();
    let mut grad = vec![0.0; n];
    let mut loss = model.loss_grad(theta.as_slice(), &mut grad);
    stats.rhs_evals += 1;
    if !loss.is_finite() || grad.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "start",
            format!("{start:?}"),
            "the loss or its gradient is not finite there",
        ));
    }
    let loss0 = loss;
    // Running all iterations is the discrete method's "t_end reached".
    let mut stop = StopReason::TEnd;
    for k in 0..=s.iters {
        let g = DVector::from_column_slice(&grad);
        let metric = s.metric.at(model, theta.as_slice(), lambda);
        // direction d with θ ← θ + η d
        let d = match s.method {
            Method::Gd => -&g,
            Method::FisherDiag => {
                let f = model.fisher(theta.as_slice());
                DVector::from_fn(n, |i, _| -g[i] / (f[(i, i)] + s.eps))
            }
            Method::Ngd => -metric.solve(&g),
        };
        steps.push(Step {
            t: k as f64,
            theta: theta.as_slice().to_vec(),
            loss,
            grad_norm: g.norm(),
            kappa: metric.condition_number(),
            min_eig: metric.eigenvalues()[0],
            rate: g.dot(&d),
            step_size: if k == 0 { 0.0 } else { s.lr },
            interior: Vec::new(),
            rhs_evals: k,
            flops: 0.0,
        });
        damping.push(lambda);
        if s.grad_tol > 0.0 && g.norm() < s.grad_tol {
            stop = StopReason::Converged;
            break;
        }
        if k == s.iters {
            break;
        }
        let p = &d * s.lr;
        let trial = &theta + &p;
        let mut gt = vec![0.0; n];
        let lt = model.loss_grad(trial.as_slice(), &mut gt);
        stats.rhs_evals += 1;
        if !lt.is_finite()
            || gt.iter().any(|v| !v.is_finite())
            || trial.iter().any(|v| !v.is_finite())
        {
            stop = StopReason::Unstable(format!("non-finite loss at iteration {}", k + 1));
            break;
        }
        if s.lm {
            let predicted = g.dot(&p) + 0.5 * metric.quad_form(&p);
            let rho = if predicted < 0.0 {
                (lt - loss) / predicted
            } else {
                f64::NEG_INFINITY
            };
            let new_lambda = lm_update(lambda, rho);
            if new_lambda != lambda {
                events.push(Event {
                    t: (k + 1) as f64,
                    kind: "lm-damping".into(),
                    detail: format!("rho = {rho:.3}: lambda {lambda:e} -> {new_lambda:e}"),
                });
            }
            lambda = new_lambda;
            if lt >= loss {
                stats.rejected += 1;
                continue;
            }
        }
        if diverged(loss0, lt) {
            stop = StopReason::Unstable(format!(
                "diverging: the loss grew from {loss0:.6e} to {lt:.6e} at iteration {}",
                k + 1
            ));
            break;
        }
        theta = trial;
        loss = lt;
        grad = gt;
        stats.accepted += 1;
    }
    stats.wall_time = clock.elapsed().as_secs_f64();
    Ok(Outcome {
        trajectory: Trajectory {
            param_names: model.param_names(),
            start: start.to_vec(),
            steps,
            stats,
            stop,
            events,
        },
        damping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lm_rule() {
        assert_eq!(lm_update(1.0, 0.1), 1.5);
        assert_eq!(lm_update(1.0, f64::NEG_INFINITY), 1.5);
        assert_eq!(lm_update(1.0, f64::NAN), 1.5);
        assert_eq!(lm_update(1.0, 0.5), 1.0);
        assert!((lm_update(1.0, 0.9) - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn divergence_threshold() {
        assert!(!diverged(1.0, 1.0 + 1.9e10));
        assert!(diverged(1.0, 1.0 + 2.1e10));
        assert!(!diverged(-5.0, 100.0));
        assert!(diverged(0.0, 3e307));
    }
}
