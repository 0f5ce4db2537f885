//! Reparametrizations: a model seen through a chart φ ↦ θ = h(φ).
//!
//! [`Pullback`] turns any [`StatModel`] in θ into one in φ: L(φ) = L(h(φ)),
//! ∇_φL = Jᵀ∇_θL and I_φ = Jᵀ I_θ J with J = ∂θ/∂φ. The natural-gradient flow is invariant
//! under this change (φ' = −I_φ⁻¹∇_φL = J⁻¹θ'), the Euclidean flow is not — which is what the
//! property suite checks.

use super::StatModel;
use nalgebra::{DMatrix, DVector};

/// A chart of an n-dimensional parameter space.
pub trait Chart: Send + Sync {
    /// Name for reports.
    fn name(&self) -> String;
    /// θ = h(φ).
    fn base_of(&self, phi: &[f64]) -> Vec<f64>;
    /// φ = h⁻¹(θ).
    fn chart_of(&self, theta: &[f64]) -> Vec<f64>;
    /// J = ∂θ/∂φ at φ.
    fn jacobian(&self, phi: &[f64]) -> DMatrix<f64>;
}

/// (m, d) = ((μ₁+μ₂)/2, (μ₂−μ₁)/2): θ = (m − d, m + d).
#[derive(Clone, Copy, Debug)]
pub struct MeanHalfDifference;

impl Chart for MeanHalfDifference {
    fn name(&self) -> String {
        "(m, d) = ((mu1+mu2)/2, (mu2-mu1)/2)".into()
    }
    fn base_of(&self, phi: &[f64]) -> Vec<f64> {
        vec![phi[0] - phi[1], phi[0] + phi[1]]
    }
    fn chart_of(&self, theta: &[f64]) -> Vec<f64> {
        vec![0.5 * (theta[0] + theta[1]), 0.5 * (theta[1] - theta[0])]
    }
    fn jacobian(&self, _phi: &[f64]) -> DMatrix<f64> {
        DMatrix::from_row_slice(2, 2, &[1.0, -1.0, 1.0, 1.0])
    }
}

/// The nonlinear chart φ = (μ₁, ν) with ν = μ₂ + μ₂³/3 (strictly increasing, so invertible).
#[derive(Clone, Copy, Debug)]
pub struct CubicSecond;

impl CubicSecond {
    /// μ₂ with μ₂ + μ₂³/3 = ν: Cardano's real root of μ³ + 3μ − 3ν = 0, polished by Newton.
    pub fn invert(nu: f64) -> f64 {
        let r = (2.25 * nu * nu + 1.0).sqrt();
        let mut m = (1.5 * nu + r).cbrt() + (1.5 * nu - r).cbrt();
        for _ in 0..3 {
            let f = m + m * m * m / 3.0 - nu;
            m -= f / (1.0 + m * m);
        }
        m
    }
}

impl Chart for CubicSecond {
    fn name(&self) -> String {
        "(mu1, mu2 + mu2^3/3)".into()
    }
    fn base_of(&self, phi: &[f64]) -> Vec<f64> {
        vec![phi[0], Self::invert(phi[1])]
    }
    fn chart_of(&self, theta: &[f64]) -> Vec<f64> {
        vec![theta[0], theta[1] + theta[1].powi(3) / 3.0]
    }
    fn jacobian(&self, phi: &[f64]) -> DMatrix<f64> {
        let m = Self::invert(phi[1]);
        DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 1.0 / (1.0 + m * m)])
    }
}

/// A model in chart coordinates φ.
pub struct Pullback<'a> {
    pub base: &'a dyn StatModel,
    pub chart: &'a dyn Chart,
}

impl StatModel for Pullback<'_> {
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn param_names(&self) -> Vec<String> {
        (1..=self.dim()).map(|i| format!("phi{i}")).collect()
    }
    fn loss_grad(&self, phi: &[f64], grad: &mut [f64]) -> f64 {
        let th = self.chart.base_of(phi);
        let mut g = vec![0.0; th.len()];
        let l = self.base.loss_grad(&th, &mut g);
        let gp = self.chart.jacobian(phi).transpose() * DVector::from_vec(g);
        grad.copy_from_slice(gp.as_slice());
        l
    }
    fn fisher_into(&self, phi: &[f64], out: &mut DMatrix<f64>) {
        let th = self.chart.base_of(phi);
        let j = self.chart.jacobian(phi);
        out.copy_from(&(j.transpose() * self.base.fisher(&th) * j));
    }
    fn optima(&self) -> Vec<Vec<f64>> {
        self.base
            .optima()
            .iter()
            .map(|t| self.chart.chart_of(t))
            .collect()
    }
    fn evaluation_error(&self) -> f64 {
        self.base.evaluation_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_invert_and_jacobians_match_finite_differences() {
        let charts: [&dyn Chart; 2] = [&MeanHalfDifference, &CubicSecond];
        for c in charts {
            for th in [[-1.5, 2.0], [0.3, -4.0], [0.0, 0.0]] {
                let phi = c.chart_of(&th);
                let back = c.base_of(&phi);
                assert!(
                    (back[0] - th[0]).abs() < 1e-13 && (back[1] - th[1]).abs() < 1e-13,
                    "{}",
                    c.name()
                );
                let j = c.jacobian(&phi);
                for k in 0..2 {
                    let h = 1e-6;
                    let mut p = phi.clone();
                    let mut q = phi.clone();
                    p[k] += h;
                    q[k] -= h;
                    let (a, b) = (c.base_of(&p), c.base_of(&q));
                    for i in 0..2 {
                        let fd = (a[i] - b[i]) / (2.0 * h);
                        assert!((fd - j[(i, k)]).abs() < 1e-8, "{} {i}{k}", c.name());
                    }
                }
            }
        }
    }
}
