//! `exact`, `sampled` and `empirical`: a dense Fisher estimate from one [`FisherSource`],
//! factorized densely (eigendecomposition, rank-revealing solve).
//!
//! * exact: the Fisher information as the model provides it (quadrature or closed form);
//! * sampled: the true Fisher estimated by Monte Carlo, Î = (1/S) Σₖ s(yₖ) s(yₖ)ᵀ with
//!   targets yₖ drawn from the model itself (seeded: the same random numbers at every θ);
//!   unbiased, error ~ 1/√S. Along a flow the targets are drawn at each step's start θ₀
//!   ([`MetricProvider::set_anchor`]) and held for every stage of the step, so within a step
//!   Î(θ) is smooth (a class drawn by inverse CDF from p(·|θ) would jump wherever p crosses the
//!   random number, and the error control would reject step after step);
//! * empirical: the "empirical Fisher" (1/N) Σᵢ ∇log p(yᵢ|xᵢ) ∇log p(yᵢ|xᵢ)ᵀ, outer products
//!   of per-example scores at the observed data (equals the Fisher only at a well-specified
//!   optimum, in the limit N → ∞).

use super::provider::{
    Factorized, MetricProvider, check_source, dense_affordable, fisher_estimate,
    fisher_estimate_anchored,
};
use super::{Geometry, Metric};
use crate::error::Result;
use crate::model::{FisherSource, StatModel};
use nalgebra::{DMatrix, DVector};
use std::sync::Mutex;

/// The dense Fisher estimate of `source`.
pub struct DenseProvider {
    /// Where the estimate comes from (for `Sampled`: draws and seed).
    pub source: FisherSource,
    /// θ at which sampled targets are drawn (the current step's start; see
    /// [`MetricProvider::set_anchor`]), `None`: at each evaluation's θ.
    anchor: Mutex<Option<Vec<f64>>>,
}

impl DenseProvider {
    /// The estimate of `source`, its draws made at each evaluation's θ until an anchor is set.
    pub fn new(source: FisherSource) -> Self {
        DenseProvider {
            source,
            anchor: Mutex::new(None),
        }
    }

    /// The exact Fisher.
    pub fn exact() -> Self {
        Self::new(FisherSource::Exact)
    }
}

impl MetricProvider for DenseProvider {
    fn name(&self) -> &'static str {
        self.source.name()
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        dense_affordable(model.dim(), self.source.name())?;
        check_source(model, &self.source)
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        if self.source == FisherSource::Exact
            && let Some(geometry) = model.exact_geometry(theta, damping)
        {
            // the model's own cancellation-free geometry (and its matrix: one evaluation)
            let metric = Metric::new(geometry.matrix.clone(), damping);
            return Ok(Box::new(ExactGeometryMetric { metric, geometry }));
        }
        let g = match &self.source {
            FisherSource::Sampled { .. } => {
                let anchor = match self.anchor.lock() {
                    Ok(a) => a.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                fisher_estimate_anchored(model, theta, &self.source, anchor.as_deref())?
            }
            _ => fisher_estimate(model, theta, &self.source)?,
        };
        Ok(Box::new(Metric::new(g, damping)))
    }
    fn set_anchor(&self, anchor: Option<&[f64]>) -> bool {
        if !matches!(self.source, FisherSource::Sampled { .. }) {
            return false;
        }
        let mut a = match self.anchor.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        match (a.as_mut(), anchor) {
            (Some(v), Some(t)) => {
                v.clear();
                v.extend_from_slice(t);
            }
            (_, t) => *a = t.map(|t| t.to_vec()),
        }
        true
    }
    fn gradient_and_natural(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Option<Result<(DVector<f64>, DVector<f64>)>> {
        if self.source != FisherSource::Exact {
            return None;
        }
        model
            .exact_geometry(theta, damping)
            .map(|g| Ok((g.gradient, g.natural)))
    }
}

/// The exact metric of a model with a cancellation-free [`Geometry`] (the mixture): the
/// eigenvalues (and so κ) are the geometry's, and solving with the model's own gradient
/// returns its natural gradient; any other right-hand side goes through the dense
/// factorization.
struct ExactGeometryMetric {
    metric: Metric,
    geometry: Geometry,
}

impl Factorized for ExactGeometryMetric {
    fn dim(&self) -> usize {
        self.metric.matrix().nrows()
    }
    fn damping(&self) -> f64 {
        self.metric.damping()
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        if *g == self.geometry.gradient {
            self.geometry.natural.clone()
        } else {
            self.metric.solve(g)
        }
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        self.metric.quad_form(v)
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        Some(self.metric.matrix().clone())
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        Some(self.geometry.eigenvalues.clone())
    }
    fn memory_bytes(&self) -> usize {
        Factorized::memory_bytes(&self.metric)
    }
}
