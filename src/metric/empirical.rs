//! `empirical`: the "empirical Fisher" (1/N) Σᵢ ∇log p(yᵢ|xᵢ) ∇log p(yᵢ|xᵢ)ᵀ, outer products of
//! per-example scores at the observed data (equals the Fisher only at a well-specified optimum,
//! in the limit N → ∞).

use super::Metric;
use super::provider::{Factorized, MetricProvider, check_source, fisher_estimate};
use crate::error::Result;
use crate::model::{FisherSource, StatModel};

/// The empirical Fisher of the model's data set.
pub struct EmpiricalProvider;

impl MetricProvider for EmpiricalProvider {
    fn name(&self) -> &'static str {
        "empirical"
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        check_source(model, &FisherSource::Empirical)
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let g = fisher_estimate(model, theta, &FisherSource::Empirical)?;
        Ok(Box::new(Metric::new(g, damping)))
    }
}
