//! Approximation quality of a metric against the exact Fisher, where the exact one is
//! affordable: the angle between the approximate and the exact natural gradients
//! ∠((G̃ + λ)⁺∇L, (G + λI)⁺∇L) and the relative Frobenius error ‖G̃ − G‖_F / ‖G‖_F of the
//! undamped matrices.

use super::angle_deg;
use super::dense::DenseProvider;
use super::provider::{DENSE_LIMIT, MetricProvider};
use crate::error::{Error, Result};
use crate::model::StatModel;
use serde::{Deserialize, Serialize};

/// Largest n for which quality is computed (the exact Fisher is formed and factorized).
pub const QUALITY_LIMIT: usize = 2000;

/// Quality at one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Time t of the step.
    pub t: f64,
    /// Angle between the approximate and exact natural gradients, degrees.
    pub angle_deg: f64,
    /// ‖G̃ − G‖_F / ‖G‖_F (undamped).
    pub rel_frobenius: f64,
}

/// Quality of `provider` at θ (damping λ for both solves).
pub fn quality_at(
    model: &dyn StatModel,
    provider: &dyn MetricProvider,
    theta: &[f64],
    damping: f64,
    t: f64,
) -> Result<Quality> {
    let n = model.dim();
    if n > QUALITY_LIMIT.min(DENSE_LIMIT) {
        return Err(Error::invalid(
            "--quality",
            format!("n = {n}"),
            format!("needs the exact Fisher, affordable only for n ≤ {QUALITY_LIMIT}"),
        ));
    }
    let g = model.gradient(theta);
    let exact = DenseProvider::exact().factorize(model, theta, damping)?;
    let approx = provider.factorize(model, theta, damping)?;
    let angle = angle_deg(&exact.solve(&g), &approx.solve(&g));
    let rel = match (exact.matrix(), approx.matrix()) {
        (Some(e), Some(a)) => {
            let den = e.norm();
            if den > 0.0 {
                (a - &e).norm() / den
            } else {
                f64::NAN
            }
        }
        _ => f64::NAN,
    };
    Ok(Quality {
        t,
        angle_deg: angle,
        rel_frobenius: rel,
    })
}
