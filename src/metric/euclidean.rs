//! `euclidean`: G = I, the plain gradient flow (the baseline); M = (1 + λ) I.

use super::provider::{DENSE_LIMIT, Factorized, MetricProvider};
use crate::error::Result;
use crate::model::StatModel;
use nalgebra::{DMatrix, DVector};

/// The identity metric.
pub struct EuclideanProvider;

/// (1 + λ) I without storing a matrix.
pub struct Identity {
    n: usize,
    damping: f64,
}

impl Factorized for Identity {
    fn dim(&self) -> usize {
        self.n
    }
    fn damping(&self) -> f64 {
        self.damping
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        g / (1.0 + self.damping)
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        (1.0 + self.damping) * v.norm_squared()
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        (self.n <= DENSE_LIMIT).then(|| DMatrix::identity(self.n, self.n))
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        Some(DVector::from_element(self.n, 1.0))
    }
    fn memory_bytes(&self) -> usize {
        0
    }
}

impl MetricProvider for EuclideanProvider {
    fn name(&self) -> &'static str {
        "euclidean"
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        _theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        Ok(Box::new(Identity {
            n: model.dim(),
            damping,
        }))
    }
}
