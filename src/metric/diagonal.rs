//! `diagonal`: diag(G) of a base estimate (exact, sampled or empirical), M = diag(G) + λI.
//! From a score factor R (G = RᵀR) the diagonal is the column sums of squares of R, so the
//! n×n matrix is never formed.

use super::provider::{DENSE_LIMIT, Factorized, MetricProvider, check_source};
use crate::error::{Error, Result};
use crate::model::{FisherSource, StatModel};
use nalgebra::{DMatrix, DVector};

/// Largest n served by the score-factor path (R has one column per parameter).
pub const DIAGONAL_LIMIT: usize = 100_000;

/// The diagonal of a base Fisher estimate.
pub struct DiagonalProvider {
    /// Base estimate.
    pub base: FisherSource,
}

/// diag(d) + λI with a pseudo-inverse solve (entries with dᵢ + λ ≤ 1e-12·max are null).
pub struct DiagonalMetric {
    diag: DVector<f64>,
    damping: f64,
}

impl DiagonalMetric {
    /// From the diagonal entries d (undamped) and λ.
    pub fn new(diag: DVector<f64>, damping: f64) -> Self {
        DiagonalMetric { diag, damping }
    }
}

/// diag of the base estimate.
pub fn fisher_diagonal(
    model: &dyn StatModel,
    theta: &[f64],
    source: &FisherSource,
) -> Result<DVector<f64>> {
    let n = model.dim();
    match model.fisher_factor(theta, source) {
        Ok(r) => Ok(DVector::from_iterator(
            n,
            r.column_iter().map(|c| c.norm_squared()),
        )),
        Err(e) => match source {
            FisherSource::Exact if n <= DENSE_LIMIT => Ok(model.fisher(theta).diagonal()),
            _ => Err(e),
        },
    }
}

impl Factorized for DiagonalMetric {
    fn dim(&self) -> usize {
        self.diag.len()
    }
    fn damping(&self) -> f64 {
        self.damping
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        let top = self
            .diag
            .iter()
            .fold(0.0f64, |m, &d| m.max((d + self.damping).abs()));
        let cut = super::RANK_TOL * top.max(f64::MIN_POSITIVE);
        DVector::from_iterator(
            g.len(),
            g.iter().zip(self.diag.iter()).map(|(gi, di)| {
                let d = di + self.damping;
                if d > cut { gi / d } else { 0.0 }
            }),
        )
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        v.iter()
            .zip(self.diag.iter())
            .map(|(vi, di)| (di + self.damping) * vi * vi)
            .sum()
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        (self.diag.len() <= DENSE_LIMIT).then(|| DMatrix::from_diagonal(&self.diag))
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        let mut v: Vec<f64> = self.diag.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        Some(DVector::from_vec(v))
    }
    fn memory_bytes(&self) -> usize {
        8 * self.diag.len()
    }
}

impl MetricProvider for DiagonalProvider {
    fn name(&self) -> &'static str {
        "diagonal"
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        if model.dim() > DIAGONAL_LIMIT {
            return Err(Error::invalid(
                "metric",
                "diagonal",
                format!("n = {} exceeds {DIAGONAL_LIMIT}", model.dim()),
            ));
        }
        check_source(model, &self.base)
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        Ok(Box::new(DiagonalMetric::new(
            fisher_diagonal(model, theta, &self.base)?,
            damping,
        )))
    }
}
