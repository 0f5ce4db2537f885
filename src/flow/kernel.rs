//! The model-side hot path of the flow: ∇L and the Fisher matrix in one fused call, and their
//! derivatives for the exact Jacobian of the right-hand side.
//!
//! A model that can do better than `loss_grad` + `fisher_into` (shared work, no allocation, dual
//! numbers) returns a [`FlowKernel`] from [`crate::model::StatModel::flow_kernel`]. The flow
//! uses it for the exact metric (and the Euclidean one); every other metric goes through
//! [`crate::metric::MetricKind::at`].
//!
//! With M = G + λI and f = −M⁺g, differentiating M f = −g gives the exact Jacobian
//!
//! ∂f/∂θⱼ = −M⁺ (∂g/∂θⱼ + (∂G/∂θⱼ) f),
//!
//! which is what [`crate::flow::FlowRhs`] assembles from [`FlowKernel::grad_fisher_derivs`].

/// Fused evaluation of g = ∇L(θ) and G = I(θ) (n×n row-major), and of their θ-derivatives.
pub trait FlowKernel: Send + Sync {
    /// Number of parameters n.
    fn dim(&self) -> usize;

    /// g = ∇L(θ) into `grad` (n) and G(θ) into `fisher` (n·n, row-major).
    fn grad_fisher(&self, theta: &[f64], grad: &mut [f64], fisher: &mut [f64]);

    /// As [`FlowKernel::grad_fisher`], plus `hess[i·n + j] = ∂gᵢ/∂θⱼ` (the Hessian of L) and
    /// `dfisher[j·n·n + i·n + k] = ∂G_ik/∂θⱼ`, exactly (dual numbers).
    fn grad_fisher_derivs(
        &self,
        theta: &[f64],
        grad: &mut [f64],
        fisher: &mut [f64],
        hess: &mut [f64],
        dfisher: &mut [f64],
    );

    /// L(θ) by the kernel's own quadrature where it has a fused path for it (the records of
    /// lean runs use it); None to let the model's [`crate::model::StatModel::loss`] decide.
    fn loss(&self, _theta: &[f64]) -> Option<f64> {
        None
    }
}
