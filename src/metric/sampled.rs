//! `sampled`: the true Fisher estimated by Monte Carlo, Î = (1/S) Σₖ s(yₖ) s(yₖ)ᵀ with targets
//! yₖ drawn from the model itself (seeded); unbiased, error ~ 1/√S.

use super::Metric;
use super::provider::{Factorized, MetricProvider, check_source, fisher_estimate};
use crate::error::Result;
use crate::model::{FisherSource, StatModel};

/// The Monte Carlo Fisher with `samples` draws from `seed`.
pub struct SampledProvider {
    /// Draws (mixture: x draws; MLP: target draws per example).
    pub samples: usize,
    /// Seed of the draws (the same at every θ: common random numbers along a flow).
    pub seed: u64,
}

impl SampledProvider {
    fn source(&self) -> FisherSource {
        FisherSource::Sampled {
            samples: self.samples,
            seed: self.seed,
        }
    }
}

impl MetricProvider for SampledProvider {
    fn name(&self) -> &'static str {
        "sampled"
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        check_source(model, &self.source())
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let g = fisher_estimate(model, theta, &self.source())?;
        Ok(Box::new(Metric::new(g, damping)))
    }
}
