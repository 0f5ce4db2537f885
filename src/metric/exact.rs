//! `exact`: the Fisher information as the model provides it (quadrature or closed form),
//! factorized densely (eigendecomposition, rank-revealing solve).

use super::Metric;
use super::provider::{Factorized, MetricProvider, fisher_estimate};
use crate::error::Result;
use crate::model::{FisherSource, StatModel};

/// The exact Fisher.
pub struct ExactProvider;

impl MetricProvider for ExactProvider {
    fn name(&self) -> &'static str {
        "exact"
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        super::provider::dense_affordable(model.dim(), "exact")
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let g = fisher_estimate(model, theta, &FisherSource::Exact)?;
        Ok(Box::new(Metric::new(g, damping)))
    }
}
