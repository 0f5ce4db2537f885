//! Third-order geometry of the normal family N(μ, σ²): closed forms and Gauss–Hermite.
//!
//! In the chart (μ, σ), with z = (x − μ)/σ, the scores are ∂_μℓ = z/σ, ∂_σℓ = (z² − 1)/σ and
//! the moments E[z²] = 1, E[z⁴] = 3, E[z⁶] = 15 give
//!
//! * g = diag(1, 2)/σ²;
//! * T_μμσ = E[z²(z² − 1)]/σ³ = 2/σ³ (and its permutations), T_σσσ = E[(z² − 1)³]/σ³ = 8/σ³,
//!   every other entry 0 (the odd moments vanish): the family's "skewness" tensor;
//! * Γ^(1)_{μσ,μ} = Γ^(1)_{σμ,μ} = E[(−2z/σ²)(z/σ)] = −2/σ³, Γ^(1)_{σσ,σ} =
//!   E[(1 − 3z²)(z² − 1)]/σ³ = −6/σ³, every other entry 0.
//!
//! As an exponential family with natural parameter η = (μ/σ², −1/(2σ²)) and log-partition
//! ψ(η) = −η₁²/(4η₂) − ½log(−2η₂), T_ijk = ∂ᵢ∂ⱼ∂ₖψ (the third cumulants of (x, x²)), the
//! e-connection vanishes in η (e-flat) and the m-connection in the expectation chart
//! (μ, μ² + σ²) (m-flat).

use super::{ThirdOrder, idx};
use crate::model::normal::{NormalChart, log_density};
use gauss_quad::hermite::GaussHermite;
use nalgebra::{DMatrix, SVector};
use num_dual::DualNum;
use std::f64::consts::PI;
use std::num::NonZeroUsize;

/// The closed forms of g, T and Γ^(1) in the chart (μ, σ).
pub fn closed_form_mu_sigma(sigma: f64) -> ThirdOrder {
    let n = 2;
    let mut out = ThirdOrder::zeros(n);
    let s2 = sigma * sigma;
    let s3 = s2 * sigma;
    out.g[(0, 0)] = 1.0 / s2;
    out.g[(1, 1)] = 2.0 / s2;
    for (i, j, k) in [(0, 0, 1), (0, 1, 0), (1, 0, 0)] {
        out.t[idx(n, i, j, k)] = 2.0 / s3;
    }
    out.t[idx(n, 1, 1, 1)] = 8.0 / s3;
    out.e[idx(n, 0, 1, 0)] = -2.0 / s3;
    out.e[idx(n, 1, 0, 0)] = -2.0 / s3;
    out.e[idx(n, 1, 1, 1)] = -6.0 / s3;
    out
}

/// T_ijk = ∂ᵢ∂ⱼ∂ₖψ(η) of the log-partition in the natural chart (third-order dual numbers).
pub fn natural_skewness(eta: [f64; 2]) -> Vec<f64> {
    let n = 2;
    let mut out = vec![0.0; 8];
    for i in 0..2 {
        for j in 0..2 {
            for k in 0..2 {
                let (.., d) = num_dual::third_partial_derivative_vec(
                    |v| {
                        let (e1, e2) = (v[0], v[1]);
                        -(e1 * e1) / (e2 * 4.0) - (e2 * (-2.0)).ln() * 0.5
                    },
                    &eta,
                    i,
                    j,
                    k,
                );
                out[idx(n, i, j, k)] = d;
            }
        }
    }
    out
}

/// Gauss–Hermite nodes/weights for ∫e^{−z²}: 12 nodes (exact to degree 23; the integrands
/// here are polynomials in x of degree ≤ 6).
fn gh12() -> &'static [(f64, f64)] {
    static NODES: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    NODES.get_or_init(|| {
        let n = NonZeroUsize::new(12).unwrap_or(NonZeroUsize::MIN);
        GaussHermite::new(n).as_node_weight_pairs().to_vec()
    })
}

/// g, T, Γ^(1) in `chart` at θ, by Gauss–Hermite with dual-number scores and Hessians.
pub fn third_order(chart: NormalChart, theta: &[f64]) -> ThirdOrder {
    let (mu, v) = chart.mean_var(theta[0], theta[1]);
    let sc = (2.0 * v).sqrt();
    let at = SVector::<f64, 2>::new(theta[0], theta[1]);
    let mut out = ThirdOrder::zeros(2);
    let mut h = DMatrix::zeros(2, 2);
    for &(z, wz) in gh12() {
        let x = mu + sc * z;
        let (_, s, hs) = num_dual::hessian(|p| log_density(chart, x, p[0], p[1]), &at);
        for i in 0..2 {
            for j in 0..2 {
                h[(i, j)] = hs[(i, j)];
            }
        }
        out.add_node(wz / PI.sqrt(), &[s[0], s[1]], &h);
    }
    out
}

/// The Jacobian ∂(μ, σ)/∂θ of a chart at θ (dual numbers).
pub fn jacobian_to_mu_sigma(chart: NormalChart, theta: &[f64]) -> DMatrix<f64> {
    let at = SVector::<f64, 2>::new(theta[0], theta[1]);
    let (_, j) = num_dual::jacobian(
        |p| {
            let (m, v) = chart.mean_var(p[0], p[1]);
            SVector::from([m, v.sqrt()])
        },
        &at,
    );
    DMatrix::from_fn(2, 2, |i, k| j[(i, k)])
}

/// T in `chart` at θ from the (μ, σ) closed form: T'_abc = J_ia J_jb J_kc T_ijk, J = ∂(μ,σ)/∂θ.
pub fn skewness_closed_form(chart: NormalChart, theta: &[f64]) -> Vec<f64> {
    let (_, v) = chart.mean_var(theta[0], theta[1]);
    let base = closed_form_mu_sigma(v.sqrt());
    super::mixture::pull_back(&base, &jacobian_to_mu_sigma(chart, theta)).t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::rel_diff;

    #[test]
    fn quadrature_matches_the_closed_forms_in_mu_sigma() {
        for (mu, s) in [(0.3, 0.7), (-2.0, 1.9)] {
            let q = third_order(NormalChart::MuSigma, &[mu, s]);
            let c = closed_form_mu_sigma(s);
            assert!(rel_diff(&q.t, &c.t) < 1e-13);
            assert!(rel_diff(&q.e, &c.e) < 1e-13);
            assert!(crate::checks::rel_diff(&q.g, &c.g) < 1e-13);
        }
    }

    #[test]
    fn natural_chart_is_e_flat_and_its_skewness_is_the_third_derivative_of_psi() {
        let th = NormalChart::Natural.from_mean_var(0.4, 1.3);
        let q = third_order(NormalChart::Natural, &th);
        let scale = q.t.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(q.e.iter().all(|e| e.abs() < 1e-12 * scale));
        assert!(rel_diff(&q.t, &natural_skewness(th)) < 1e-12);
    }
}
