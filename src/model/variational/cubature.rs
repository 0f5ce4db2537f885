//! Expectations under the standard normal N(0, I_d): E[f(ε)] ≈ Σₖ wₖ f(εₖ).
//!
//! * Gauss–Hermite tensor rule (d ≤ [`GH_DIM_MAX`]): the 1-D rule for ∫e^{−x²}g with nodes
//!   xᵢ, weights ωᵢ becomes εᵢ = √2 xᵢ, wᵢ = ωᵢ/√π; the tensor product of n nodes per axis is
//!   exact for polynomials of degree ≤ 2n − 1 in each coordinate. For analytic integrands the
//!   error decays geometrically in n; the model measures it (n against n + 8 nodes).
//! * Monte Carlo (any d ≤ [`MC_DIM_MAX`]): N seeded standard-normal draws (ChaCha8), wₖ = 1/N.
//!   The draws are fixed, so the estimate is a smooth deterministic function of (m, L)
//!   (reparametrization z = m + Lε) whose gradient is exact; its error against the true
//!   expectation is O(1/√N).

use gauss_quad::hermite::GaussHermite;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::num::NonZeroUsize;

/// Largest dimension for the tensor rule (n^d nodes).
pub const GH_DIM_MAX: usize = 3;
/// Largest dimension of the variational family.
pub const MC_DIM_MAX: usize = 20;
/// Largest number of nodes of a rule (tensor or Monte Carlo).
pub const NODES_MAX: usize = 1_000_000;

/// A rule for E_{N(0,I)}[f]: nodes (d each, flat) and weights summing to 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub d: usize,
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
    /// For reports, e.g. "Gauss-Hermite 12^3 tensor rule".
    pub describe: String,
}

impl Rule {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the rule has no nodes.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Node k.
    pub fn node(&self, k: usize) -> &[f64] {
        &self.nodes[k * self.d..(k + 1) * self.d]
    }

    /// The n-point-per-axis Gauss–Hermite tensor rule in d dimensions (`None` if n^d exceeds
    /// [`NODES_MAX`] or n = 0).
    pub fn gauss_hermite(d: usize, n: usize) -> Option<Rule> {
        let total = u32::try_from(d)
            .ok()
            .and_then(|e| n.checked_pow(e))
            .filter(|&t| t <= NODES_MAX)?;
        let one = GaussHermite::new(NonZeroUsize::new(n)?);
        let pts: Vec<(f64, f64)> = one
            .as_node_weight_pairs()
            .iter()
            .map(|&(x, w)| {
                (
                    std::f64::consts::SQRT_2 * x,
                    w / std::f64::consts::PI.sqrt(),
                )
            })
            .collect();
        let mut nodes = Vec::with_capacity(total * d);
        let mut weights = Vec::with_capacity(total);
        for k in 0..total {
            let mut r = k;
            let mut w = 1.0;
            for _ in 0..d {
                let (x, wi) = pts[r % n];
                nodes.push(x);
                w *= wi;
                r /= n;
            }
            weights.push(w);
        }
        Some(Rule {
            d,
            nodes,
            weights,
            describe: format!("Gauss-Hermite {n}^{d} tensor rule"),
        })
    }

    /// N seeded standard-normal draws (`None` if N = 0 or N > [`NODES_MAX`]).
    pub fn monte_carlo(d: usize, samples: usize, seed: u64) -> Option<Rule> {
        if samples == 0 || samples > NODES_MAX {
            return None;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let nodes: Vec<f64> = (0..samples.checked_mul(d)?)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        Some(Rule {
            d,
            nodes,
            weights: vec![1.0 / samples as f64; samples],
            describe: format!("Monte Carlo, {samples} reparametrized draws, seed {seed}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_rule_integrates_normal_moments() {
        let r = Rule::gauss_hermite(3, 6).expect("small");
        assert_eq!(r.len(), 216);
        let e = |f: &dyn Fn(&[f64]) -> f64| {
            (0..r.len())
                .map(|k| r.weights[k] * f(r.node(k)))
                .sum::<f64>()
        };
        assert!((e(&|_| 1.0) - 1.0).abs() < 1e-14);
        // E[x²y²z⁴] = 1·1·3, E[x⁴] = 3, E[xy] = 0.
        assert!((e(&|z| z[0] * z[0] * z[1] * z[1] * z[2].powi(4)) - 3.0).abs() < 1e-12);
        assert!(e(&|z| z[0] * z[1]).abs() < 1e-14);
        assert!(Rule::gauss_hermite(20, 10).is_none());
    }
}
