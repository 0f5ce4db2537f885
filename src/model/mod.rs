//! Statistical models: θ ↦ log p(x|θ), the loss L(θ), its gradient and the exact Fisher matrix.

pub mod chart;
pub mod exponential_family;
pub mod mixture;
mod mixture_composite;
pub mod mixture_kernel;
pub mod normal;
pub mod variational;

pub mod any;
pub mod data;
pub mod layers;
pub mod mlp;
pub mod mlp_spec;

pub use any::AnyModel;
pub use layers::{DenseLayers, FisherSource, KfacFactors, KfacTargets, LayerShape};
pub use mixture::{GaussianMixture, LossKind};
pub use mlp::{Activation, Mlp, OutputKind};
pub use variational::VariationalGaussian;

use nalgebra::{DMatrix, DVector};

/// Largest n for which implicit solvers form a dense Jacobian, by cost: the matrix takes 8n²
/// bytes (2 MiB at 512), its LU n³/3 flops (45 MFLOP, ≈10 ms), and without a model kernel the
/// finite-difference Jacobian 2n right-hand sides — for the shipped MLPs (n = 65, 67) one
/// Jacobian costs ≈ 134 rhs evaluations, about what tsit45 spends on 20 steps.
pub const DENSE_JACOBIAN_MAX_DIM: usize = 512;

/// A differentiable statistical model with a loss to minimize.
///
/// Required methods are in-place; allocating variants are provided.
pub trait StatModel: Send + Sync {
    /// Number of parameters n.
    fn dim(&self) -> usize;

    /// Names of the parameters (CSV column headers), e.g. `["mu1", "mu2"]`.
    fn param_names(&self) -> Vec<String>;

    /// L(θ), writing ∇L(θ) into `grad`.
    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64;

    /// L(θ) alone.
    fn loss(&self, theta: &[f64]) -> f64 {
        let mut g = vec![0.0; self.dim()];
        self.loss_grad(theta, &mut g)
    }

    /// ∇L(θ), allocating.
    fn gradient(&self, theta: &[f64]) -> DVector<f64> {
        let mut g = vec![0.0; self.dim()];
        self.loss_grad(theta, &mut g);
        DVector::from_vec(g)
    }

    /// The exact Fisher information I(θ) (quadrature or closed form), written into `out` (n×n).
    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>);

    /// The exact Fisher information, allocating.
    fn fisher(&self, theta: &[f64]) -> DMatrix<f64> {
        let n = self.dim();
        let mut m = DMatrix::zeros(n, n);
        self.fisher_into(theta, &mut m);
        m
    }

    /// Known minimizers of the loss (e.g. θ* and its label swap), if any.
    fn optima(&self) -> Vec<Vec<f64>> {
        Vec::new()
    }

    /// The minimum loss L*, if known.
    fn optimal_loss(&self) -> Option<f64> {
        self.optima().first().map(|t| self.loss(t))
    }

    /// A fused ∇L + Fisher evaluator with exact derivatives for the flow's hot path and its
    /// exact Jacobian, if the model has one (default: none; the flow then uses `loss_grad`,
    /// the metric provider and finite-difference Jacobians).
    fn flow_kernel(&self) -> Option<Box<dyn crate::flow::FlowKernel + '_>> {
        None
    }

    /// Whether implicit solvers may form a dense n×n Jacobian of the flow (default:
    /// n ≤ [`DENSE_JACOBIAN_MAX_DIM`], chosen by cost).
    fn dense_jacobian(&self) -> bool {
        self.dim() <= DENSE_JACOBIAN_MAX_DIM
    }

    /// ∇L, the exact natural gradient (I + λI)⁻¹∇L and I's eigenvalues by a model-specific
    /// cancellation-free method, where the model has one (the mixture: in the chart (M, δ),
    /// accurate near its singular line); `None` otherwise (then the dense factorization is used).
    fn exact_geometry(&self, _theta: &[f64], _damping: f64) -> Option<crate::metric::Geometry> {
        None
    }

    /// Pairs (i, j) of parameters whose equality θᵢ = θⱼ is a singular set of the metric (label
    /// exchange in mixtures); the flow's step control never lets a step cross one (default: none).
    fn exchange_pairs(&self) -> Vec<(usize, usize)> {
        Vec::new()
    }

    /// Relative error bound of the loss/gradient evaluation (quadrature), for certificates.
    fn evaluation_error(&self) -> f64 {
        f64::EPSILON * 16.0
    }

    /// Short name of the model family (for messages), e.g. `"gaussian-mixture"`, `"mlp"`.
    fn family(&self) -> &str {
        "model"
    }

    /// A square-root factor R (rows × n) of a Fisher estimate, I ≈ RᵀR: rows are scores
    /// ∇log p scaled by √(weight). `Exact` is the closed-form/quadrature expectation,
    /// `Sampled` a Monte Carlo estimate with targets drawn from the model, `Empirical` the
    /// per-example scores at the data. The default provides none (the exact Fisher then comes
    /// from [`StatModel::fisher_into`]).
    fn fisher_factor(&self, _theta: &[f64], source: &FisherSource) -> crate::Result<DMatrix<f64>> {
        Err(crate::Error::invalid(
            "metric",
            source.name(),
            format!(
                "the {} model provides no {} Fisher scores",
                self.family(),
                source.name()
            ),
        ))
    }

    /// As [`StatModel::fisher_factor`], but a `Sampled` estimate draws its targets from the
    /// model at `anchor` (the step's start) while the scores are evaluated at θ: within a step
    /// the draws are then fixed (common random numbers) and the estimate is a smooth function
    /// of θ, also for discrete targets whose inverse-CDF draw would jump as θ moves. Default:
    /// the anchor is ignored.
    fn fisher_factor_anchored(
        &self,
        theta: &[f64],
        source: &FisherSource,
        _anchor: &[f64],
    ) -> crate::Result<DMatrix<f64>> {
        self.fisher_factor(theta, source)
    }

    /// Named parameter groups (index ranges) for block-diagonal metrics; default: one group
    /// per parameter.
    fn param_groups(&self) -> Vec<(String, std::ops::Range<usize>)> {
        self.param_names()
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, i..i + 1))
            .collect()
    }

    /// The model's dense layers, for K-FAC; `None` when it has none.
    fn dense_layers(&self) -> Option<&dyn DenseLayers> {
        None
    }

    /// The third-order correction `c` of this model's flow
    /// ([`crate::geometry::correction`]); `None` when the model has no third-order geometry
    /// (default) or `c` is the plain flow.
    fn flow_correction(
        &self,
        _c: &crate::geometry::correction::Correction,
    ) -> Option<Box<dyn crate::geometry::correction::FlowCorrection + '_>> {
        None
    }

    /// The model as an MLP, for matrix-free Fisher–vector products
    /// ([`crate::metric::cg`]); `None` for other families.
    fn mlp(&self) -> Option<&Mlp> {
        None
    }
}
