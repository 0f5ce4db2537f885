//! Third-order geometry of the two-component mixture, by quadrature with exact derivatives.
//!
//! g, T and Γ^(1) are expectations under p(·|θ) of products of the scores ∂ℓ and the second
//! derivatives ∂²ℓ; both come from forward-mode dual numbers (`num_dual::hessian`) through the
//! generic log-sum-exp log-density [`crate::model::mixture::log_density`], and the expectation
//! from the model's own quadrature rule for p(·|θ) ([`Rule::build`], composite Gauss–Legendre
//! graded around the responsibility crossover, or Gauss–Hermite).
//!
//! Two linear charts: θ = (μ₁, μ₂) and φ = (M, δ) = (wμ₁ + (1−w)μ₂, μ₂ − μ₁), θ = (M − (1−w)δ,
//! M + wδ). Near μ₁ = μ₂ the θ-metric has κ ~ δ⁻² and a solve in θ loses ε·κ; in φ the metric
//! is [[A, δB], [δB, δ²C]] and a Jacobi-scaled solve loses nothing to it (the δ-score is
//! O(δ) with an absolute error ≈ ε, so relative ε/δ: 1e-10 at δ = 1e-6). Since the charts are
//! linearly related, every tensor here transforms by the constant Jacobian J = ∂θ/∂φ, with no
//! inhomogeneous term in the connection.

use super::ThirdOrder;
use crate::model::GaussianMixture;
use crate::model::mixture::log_density;
use crate::quadrature::Rule;
use nalgebra::{DMatrix, SVector};

/// A linear chart of the mixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixtureChart {
    /// θ = (μ₁, μ₂).
    Theta,
    /// φ = (M, δ), M = wμ₁ + (1−w)μ₂, δ = μ₂ − μ₁.
    MeanDifference,
}

/// φ = (M, δ) of θ.
pub fn to_phi(w: f64, theta: &[f64]) -> [f64; 2] {
    [w * theta[0] + (1.0 - w) * theta[1], theta[1] - theta[0]]
}

/// A θ-vector of a φ-vector: J·u, J = ∂θ/∂φ = [[1, −(1−w)], [1, w]].
pub fn phi_vector_to_theta(w: f64, u: &[f64]) -> [f64; 2] {
    [u[0] - (1.0 - w) * u[1], u[0] + w * u[1]]
}

/// A φ-vector of a θ-vector: J⁻¹·v = (w v₁ + (1−w) v₂, v₂ − v₁).
pub fn theta_vector_to_phi(w: f64, v: &[f64]) -> [f64; 2] {
    to_phi(w, v)
}

/// g, T, Γ^(1) of `model` at θ in `chart`, by the model's quadrature rule for p(·|θ).
pub fn third_order(model: &GaussianMixture, theta: &[f64], chart: MixtureChart) -> ThirdOrder {
    let (sigma, w) = (model.sigma, model.w);
    let p = model.density(theta);
    let rule = Rule::build(&model.scheme, &p, &p);
    let at = match chart {
        MixtureChart::Theta => SVector::<f64, 2>::new(theta[0], theta[1]),
        MixtureChart::MeanDifference => {
            let f = to_phi(w, theta);
            SVector::<f64, 2>::new(f[0], f[1])
        }
    };
    let mut out = ThirdOrder::zeros(2);
    let mut h = DMatrix::zeros(2, 2);
    for (&x, &wt) in rule.x.iter().zip(&rule.w) {
        let (_, s, hs) = match chart {
            MixtureChart::Theta => num_dual::hessian(|v| log_density(x, v[0], v[1], sigma, w), &at),
            MixtureChart::MeanDifference => num_dual::hessian(
                |v| {
                    let (m, d) = (v[0], v[1]);
                    log_density(x, m - d * (1.0 - w), m + d * w, sigma, w)
                },
                &at,
            ),
        };
        for i in 0..2 {
            for j in 0..2 {
                h[(i, j)] = hs[(i, j)];
            }
        }
        out.add_node(wt, &[s[0], s[1]], &h);
    }
    out
}

/// Transform a tensor set from φ to θ (or any linear change): with J = ∂φ/∂θ constant,
/// g' = Jᵀ g J, T'_abc = J_ia J_jb J_kc T_ijk, Γ'_{ab,c} likewise.
pub fn pull_back(src: &ThirdOrder, jac: &DMatrix<f64>) -> ThirdOrder {
    let n = src.dim();
    let mut out = ThirdOrder::zeros(n);
    out.g = jac.transpose() * &src.g * jac;
    for a in 0..n {
        for b in 0..n {
            for c in 0..n {
                let (mut t, mut e) = (0.0, 0.0);
                for i in 0..n {
                    for j in 0..n {
                        for k in 0..n {
                            let f = jac[(i, a)] * jac[(j, b)] * jac[(k, c)];
                            t += f * src.t[super::idx(n, i, j, k)];
                            e += f * src.e[super::idx(n, i, j, k)];
                        }
                    }
                }
                out.t[super::idx(n, a, b, c)] = t;
                out.e[super::idx(n, a, b, c)] = e;
            }
        }
    }
    out
}

/// ∂φ/∂θ = [[w, 1−w], [−1, 1]] (so that a φ-tensor pulls back to θ).
pub fn dphi_dtheta(w: f64) -> DMatrix<f64> {
    DMatrix::from_row_slice(2, 2, &[w, 1.0 - w, -1.0, 1.0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::rel_diff;
    use crate::model::{LossKind, StatModel};
    use crate::quadrature::Scheme;

    fn model(w: f64) -> GaussianMixture {
        GaussianMixture {
            sigma: 0.8,
            w,
            target: [-1.5, 2.0],
            loss_kind: LossKind::Population,
            scheme: Scheme::default(),
        }
    }

    #[test]
    fn metric_is_the_fisher_matrix_and_charts_agree() {
        for w in [0.5, 0.3] {
            let m = model(w);
            let th = [-0.4, 1.1];
            let a = third_order(&m, &th, MixtureChart::Theta);
            let f = m.fisher(&th);
            assert!(crate::checks::rel_diff(&a.g, &f) < 1e-12);
            let b = pull_back(
                &third_order(&m, &th, MixtureChart::MeanDifference),
                &dphi_dtheta(w),
            );
            assert!(crate::checks::rel_diff(&b.g, &a.g) < 1e-12);
            assert!(rel_diff(&b.t, &a.t) < 1e-12);
            assert!(rel_diff(&b.e, &a.e) < 1e-12);
        }
    }

    #[test]
    fn e_connection_matches_finite_differences_of_the_hessian_form() {
        // Γ^(1)_{ij,k} + Γ^(1)_{ik,j}… checked through g: ∂ₖg_ij = Γ^(1)_{ki,j} + Γ^(1)_{kj,i} + T_ijk
        let m = model(0.3);
        let th = [0.2, 1.4];
        let a = third_order(&m, &th, MixtureChart::Theta);
        let hstep = 1e-5;
        for k in 0..2 {
            let (mut p, mut q) = (th, th);
            p[k] += hstep;
            q[k] -= hstep;
            let dg = (m.fisher(&p) - m.fisher(&q)) / (2.0 * hstep);
            for i in 0..2 {
                for j in 0..2 {
                    let n = 2;
                    let want = a.e[crate::geometry::idx(n, k, i, j)]
                        + a.e[crate::geometry::idx(n, k, j, i)]
                        + a.t[crate::geometry::idx(n, i, j, k)];
                    assert!(
                        (dg[(i, j)] - want).abs() < 1e-7 * (1.0 + want.abs()),
                        "{k}{i}{j}: {} vs {want}",
                        dg[(i, j)]
                    );
                }
            }
        }
    }
}
