//! A deterministic cost model (floating-point operations, leading terms) of the metric work
//! of one flow evaluation, for the MLP: what `compare` and the `adaptive` provider call "cost".
//! Wall times are measured too (criterion, `timings.json`) but are not byte-stable; the flop
//! model is.
//!
//! With N examples, n parameters, d_L outputs and r "roots" of the exact Fisher (r = d_L: one
//! backward pass per output unit):
//!
//! | operation | flops |
//! |---|---|
//! | forward pass | 2Nn |
//! | gradient (forward + backward) | 6Nn |
//! | score factor R (rN × n) | 2Nn + 3rNn |
//! | dense Fisher RᵀR (syrk) | rN·n² |
//! | symmetric eigendecomposition of order m | 9m³ |
//! | solve with an eigendecomposition of order m | 4m² |
//! | K-FAC factors A, G (per layer d_in+1, d_out) | 2Nn + 2rNn + Σ N(d_in+1)² + rN d_out² |
//! | K-FAC Cholesky / solve (per layer) | (a³ + g³)/3 / 2(g²a + g a²) |
//! | Fisher–vector product ([`super::cg`]) | 6Nn |

use super::MetricKind;
use crate::model::{LayerShape, StatModel};

/// Sizes the cost model needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Examples N.
    pub examples: f64,
    /// Parameters n.
    pub n: f64,
    /// Roots r of the exact Fisher (output units).
    pub roots: f64,
    /// Dense layers.
    pub layers: Vec<LayerShape>,
}

impl Shape {
    /// The shape of an MLP (`None` for models without dense layers).
    pub fn of(model: &dyn StatModel) -> Option<Shape> {
        let layers = model.dense_layers()?.layers();
        let last = layers.last()?;
        let examples = model_examples(model)?;
        Some(Shape {
            examples,
            n: model.dim() as f64,
            roots: last.d_out as f64,
            layers,
        })
    }

    /// One gradient.
    pub fn gradient(&self) -> f64 {
        6.0 * self.examples * self.n
    }

    /// The exact score factor R.
    fn factor(&self) -> f64 {
        (2.0 + 3.0 * self.roots) * self.examples * self.n
    }

    /// Building and factorizing the metric of `kind` at a point (not the gradient, not the
    /// solve); for `exact` on n > dense limit: nothing (CG, see [`Shape::solve`]).
    pub fn refresh(&self, kind: MetricKind, blocks: &[usize]) -> f64 {
        let (ex, n, r) = (self.examples, self.n, self.roots);
        match kind {
            MetricKind::Euclidean => 0.0,
            MetricKind::Diagonal => self.factor() + 2.0 * r * ex * n,
            MetricKind::BlockDiagonal => {
                self.factor()
                    + blocks
                        .iter()
                        .map(|&b| {
                            let b = b as f64;
                            r * ex * b * b + 9.0 * b * b * b
                        })
                        .sum::<f64>()
            }
            MetricKind::Kfac => {
                let mut f = (2.0 + 2.0 * r) * ex * n;
                for l in &self.layers {
                    let (a, g) = ((l.d_in + 1) as f64, l.d_out as f64);
                    f += ex * a * a + r * ex * g * g + (a * a * a + g * g * g) / 3.0;
                }
                f
            }
            _ if n as usize > super::provider::DENSE_LIMIT => 0.0,
            _ => self.factor() + r * ex * n * n + 9.0 * n * n * n,
        }
    }

    /// One solve with a held factorization of `kind` (exact above the dense limit: `cg_iters`
    /// Fisher–vector products).
    pub fn solve(&self, kind: MetricKind, blocks: &[usize], cg_iters: f64) -> f64 {
        let n = self.n;
        match kind {
            MetricKind::Euclidean | MetricKind::Diagonal => n,
            MetricKind::BlockDiagonal => blocks.iter().map(|&b| 4.0 * (b * b) as f64).sum(),
            MetricKind::Kfac => self
                .layers
                .iter()
                .map(|l| {
                    let (a, g) = ((l.d_in + 1) as f64, l.d_out as f64);
                    2.0 * (g * g * a + g * a * a)
                })
                .sum(),
            _ if n as usize > super::provider::DENSE_LIMIT => cg_iters * self.fvp(),
            _ => 4.0 * n * n,
        }
    }

    /// One Fisher–vector product.
    pub fn fvp(&self) -> f64 {
        6.0 * self.examples * self.n
    }

    /// One flow evaluation f(θ) of a fixed provider that re-evaluates its metric at every
    /// evaluation: gradient + refresh + solve.
    pub fn fresh_eval(&self, kind: MetricKind, blocks: &[usize]) -> f64 {
        self.gradient() + self.refresh(kind, blocks) + self.solve(kind, blocks, 0.0)
    }
}

/// Number of examples of a model with dense layers (the MLP's data set).
fn model_examples(model: &dyn StatModel) -> Option<f64> {
    model.mlp().map(|m| m.data().len() as f64)
}
