//! `exact`, `sampled` and `empirical`: a dense Fisher estimate from one [`FisherSource`],
//! factorized densely (eigendecomposition, rank-revealing solve).
//!
//! * exact: the Fisher information as the model provides it (quadrature or closed form);
//! * sampled: the true Fisher estimated by Monte Carlo, Î = (1/S) Σₖ s(yₖ) s(yₖ)ᵀ with
//!   targets yₖ drawn from the model itself (seeded, the same draws at every θ: common random
//!   numbers along a flow); unbiased, error ~ 1/√S;
//! * empirical: the "empirical Fisher" (1/N) Σᵢ ∇log p(yᵢ|xᵢ) ∇log p(yᵢ|xᵢ)ᵀ, outer products
//!   of per-example scores at the observed data (equals the Fisher only at a well-specified
//!   optimum, in the limit N → ∞).

use super::Metric;
use super::provider::{
    Factorized, MetricProvider, check_source, dense_affordable, fisher_estimate,
};
use crate::error::Result;
use crate::model::{FisherSource, StatModel};

/// The dense Fisher estimate of `source`.
pub struct DenseProvider {
    /// Where the estimate comes from (for `Sampled`: draws and seed).
    pub source: FisherSource,
}

impl DenseProvider {
    /// The exact Fisher.
    pub const EXACT: DenseProvider = DenseProvider {
        source: FisherSource::Exact,
    };
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
        let g = fisher_estimate(model, theta, &self.source)?;
        Ok(Box::new(Metric::new(g, damping)))
    }
}
