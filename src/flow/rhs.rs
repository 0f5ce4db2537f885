//! The flow's right-hand side f(θ) = −(G(θ) + λI)⁺∇L(θ) and its Jacobian–vector product.

use crate::error::Result;
use crate::metric::{Factorized, Metric, MetricKind, MetricOptions, MetricProvider, provider};
use crate::model::StatModel;
use nalgebra::DVector;
use std::cell::Cell;

/// Right-hand side of the flow, with evaluation counters.
pub struct FlowRhs<'m> {
    model: &'m dyn StatModel,
    metric: MetricKind,
    options: MetricOptions,
    provider: Box<dyn MetricProvider>,
    damping: f64,
    evals: Cell<usize>,
    jac_evals: Cell<usize>,
}

impl<'m> FlowRhs<'m> {
    /// The flow of `model` under `metric` with damping λ.
    pub fn new(model: &'m dyn StatModel, metric: MetricKind, damping: f64) -> Self {
        Self::with_options(model, metric, &MetricOptions::default(), damping)
    }

    /// The flow of `model` under `metric` with provider settings `options` and damping λ.
    pub fn with_options(model: &'m dyn StatModel, metric: MetricKind, options: &MetricOptions, damping: f64) -> Self {
        FlowRhs {
            model,
            metric,
            options: options.clone(),
            provider: provider(metric, options),
            damping,
            evals: Cell::new(0),
            jac_evals: Cell::new(0),
        }
    }

    /// The model.
    pub fn model(&self) -> &'m dyn StatModel {
        self.model
    }

    /// The metric at θ as a dense [`Metric`] (all NaN when not affordable or unavailable).
    pub fn metric_at(&self, theta: &[f64]) -> Metric {
        self.metric.at_with(self.model, theta, self.damping, &self.options)
    }

    /// The provider's factorized metric at θ.
    pub fn factorized_at(&self, theta: &[f64]) -> Result<Box<dyn Factorized>> {
        self.provider.factorize(self.model, theta, self.damping)
    }

    /// The provider.
    pub fn provider(&self) -> &dyn MetricProvider {
        self.provider.as_ref()
    }

    /// f(θ) written into `out`; counts one evaluation.
    pub fn eval(&self, theta: &[f64], out: &mut [f64]) {
        self.evals.set(self.evals.get() + 1);
        let g = self.model.gradient(theta);
        match self.factorized_at(theta) {
            Ok(m) => {
                let x = m.solve(&g);
                for (o, v) in out.iter_mut().zip(x.iter()) {
                    *o = if v.is_finite() { -v } else { 0.0 };
                }
            }
            // A failed factorization makes the state non-finite, which the runner reports.
            Err(_) => out.iter_mut().for_each(|o| *o = f64::NAN),
        }
    }

    /// J(θ)·v by a central finite difference of f:
    /// (f(θ + εv) − f(θ − εv)) / 2ε with ε = ∛(machine ε)·max(1, ‖θ‖)/‖v‖
    /// (two evaluations, error O(ε²)).
    pub fn jac_vec(&self, theta: &[f64], v: &[f64], out: &mut [f64]) {
        self.jac_evals.set(self.jac_evals.get() + 1);
        let vn = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if vn == 0.0 {
            out.iter_mut().for_each(|o| *o = 0.0);
            return;
        }
        let tn = theta.iter().map(|a| a * a).sum::<f64>().sqrt();
        let eps = f64::EPSILON.cbrt() * tn.max(1.0) / vn;
        let plus: Vec<f64> = theta.iter().zip(v).map(|(t, d)| t + eps * d).collect();
        let minus: Vec<f64> = theta.iter().zip(v).map(|(t, d)| t - eps * d).collect();
        let mut fp = vec![0.0; theta.len()];
        let mut fm = vec![0.0; theta.len()];
        self.eval(&plus, &mut fp);
        self.eval(&minus, &mut fm);
        for i in 0..out.len() {
            out[i] = (fp[i] - fm[i]) / (2.0 * eps);
        }
    }

    /// ‖∇L(θ)‖ (for the convergence root function; not counted as an rhs evaluation).
    pub fn grad_norm(&self, theta: &[f64]) -> f64 {
        self.model.gradient(theta).norm()
    }

    /// Number of f evaluations so far.
    pub fn evals(&self) -> usize {
        self.evals.get()
    }

    /// Number of Jacobian–vector products so far.
    pub fn jac_evals(&self) -> usize {
        self.jac_evals.get()
    }

    /// f(θ) allocating.
    pub fn eval_vec(&self, theta: &[f64]) -> DVector<f64> {
        let mut out = vec![0.0; theta.len()];
        self.eval(theta, &mut out);
        DVector::from_vec(out)
    }
}
