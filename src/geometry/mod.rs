//! Third-order information geometry: the Amari–Chentsov tensor and the α-connections.
//!
//! With ℓ = log p(x|θ) and expectations under p(·|θ):
//!
//! * metric g_ij = E[∂ᵢℓ ∂ⱼℓ];
//! * Amari–Chentsov tensor T_ijk = E[∂ᵢℓ ∂ⱼℓ ∂ₖℓ] (totally symmetric);
//! * exponential connection Γ^(1)_{ij,k} = E[∂ᵢ∂ⱼℓ ∂ₖℓ];
//! * α-connections Γ^(α)_{ij,k} = Γ^(1)_{ij,k} + ((1 − α)/2)·T_ijk (α = 1: e, α = −1: m,
//!   α = 0: the Levi-Civita connection of g).
//!
//! Differentiating g under the integral, ∂ₖg_ij = Γ^(1)_{ki,j} + Γ^(1)_{kj,i} + T_ijk, so
//! Γ^(α)_{ki,j} + Γ^(−α)_{kj,i} = ∂ₖg_ij (duality) and Γ^(0) equals the Christoffel symbols of
//! the first kind ½(∂ᵢg_jk + ∂ⱼg_ik − ∂ₖg_ij). The property suite checks both against an
//! independent ∂g (the flow kernel's dual-number derivative through the quadrature, and
//! central differences).
//!
//! Tensors of order three are stored flat, `v[(i·n + j)·n + k]`.
//!
//! * [`mixture`] — the two-component mixture by quadrature with dual-number derivatives, in θ
//!   or in the chart (M, δ) that stays accurate near μ₁ = μ₂;
//! * [`normal`] — the normal family: closed forms and Gauss–Hermite in its five charts;
//! * [`correction`] — the geodesic-acceleration correction of the natural flow;
//! * [`mlp`] — the MLP's connection covector Γ⁽ᵅ⁾(v, v) by second-order forward mode, and its
//!   correction;
//! * [`plateau`] — the teacher–student plateau of a tanh MLP and its escape measurement.

pub mod correction;
pub mod escape;
pub mod mixture;
pub mod mlp;
pub mod normal;
pub mod plateau;

use nalgebra::{DMatrix, DVector};

/// Flat index of (i, j, k) in an n×n×n tensor.
#[inline]
pub fn idx(n: usize, i: usize, j: usize, k: usize) -> usize {
    (i * n + j) * n + k
}

/// Metric, Amari–Chentsov tensor and e-connection at one point of one chart.
#[derive(Clone, Debug, PartialEq)]
pub struct ThirdOrder {
    /// g_ij.
    pub g: DMatrix<f64>,
    /// T_ijk = E[∂ᵢℓ ∂ⱼℓ ∂ₖℓ].
    pub t: Vec<f64>,
    /// Γ^(1)_{ij,k} = E[∂ᵢ∂ⱼℓ ∂ₖℓ].
    pub e: Vec<f64>,
}

impl ThirdOrder {
    /// All zero, dimension n.
    pub fn zeros(n: usize) -> Self {
        ThirdOrder {
            g: DMatrix::zeros(n, n),
            t: vec![0.0; n * n * n],
            e: vec![0.0; n * n * n],
        }
    }

    /// Dimension n.
    pub fn dim(&self) -> usize {
        self.g.nrows()
    }

    /// Add one quadrature node: weight `wt`, scores s = ∇ℓ, second derivatives h = ∇²ℓ.
    pub fn add_node(&mut self, wt: f64, s: &[f64], h: &DMatrix<f64>) {
        let n = self.dim();
        for i in 0..n {
            for j in 0..n {
                self.g[(i, j)] += wt * s[i] * s[j];
                for k in 0..n {
                    self.t[idx(n, i, j, k)] += wt * s[i] * s[j] * s[k];
                    self.e[idx(n, i, j, k)] += wt * h[(i, j)] * s[k];
                }
            }
        }
    }

    /// Γ^(α)_{ij,k} = Γ^(1)_{ij,k} + ((1 − α)/2)·T_ijk, flat.
    pub fn connection(&self, alpha: f64) -> Vec<f64> {
        let c = 0.5 * (1.0 - alpha);
        self.e.iter().zip(&self.t).map(|(e, t)| e + c * t).collect()
    }

    /// The covector c_k = Γ^(α)_{ij,k} vⁱ vʲ.
    pub fn contract(&self, alpha: f64, v: &[f64]) -> DVector<f64> {
        let n = self.dim();
        let gam = self.connection(alpha);
        DVector::from_fn(n, |k, _| {
            let mut s = 0.0;
            for i in 0..n {
                for j in 0..n {
                    s += gam[idx(n, i, j, k)] * v[i] * v[j];
                }
            }
            s
        })
    }

    /// Largest |T_ijk − T_σ(ijk)| over all permutations σ, relative to max |T|.
    pub fn asymmetry(&self) -> f64 {
        let n = self.dim();
        let scale = self.t.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut worst = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                for k in 0..n {
                    let a = self.t[idx(n, i, j, k)];
                    for (p, q, r) in [(i, k, j), (j, i, k), (j, k, i), (k, i, j), (k, j, i)] {
                        worst = worst.max((a - self.t[idx(n, p, q, r)]).abs());
                    }
                }
            }
        }
        worst / scale.max(f64::MIN_POSITIVE)
    }
}

/// Christoffel symbols of the first kind Γ_{ij,k} = ½(∂ᵢg_jk + ∂ⱼg_ik − ∂ₖg_ij) from
/// `dg[(k·n + i)·n + j] = ∂ₖg_ij` (the layout of [`crate::flow::FlowKernel`]'s `dfisher`).
pub fn christoffel_first_kind(n: usize, dg: &[f64]) -> Vec<f64> {
    let d = |k: usize, i: usize, j: usize| dg[idx(n, k, i, j)];
    let mut out = vec![0.0; n * n * n];
    for i in 0..n {
        for j in 0..n {
            for k in 0..n {
                out[idx(n, i, j, k)] = 0.5 * (d(i, j, k) + d(j, i, k) - d(k, i, j));
            }
        }
    }
    out
}

/// Largest |a − b| / max|b| entry-wise over two flat tensors.
pub fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn christoffel_of_the_poincare_half_plane() {
        // g = diag(1, 1)/y² at (x, y): ∂_y g_xx = ∂_y g_yy = −2/y³, Γ_{xx,y} = 1/y³,
        // Γ_{xy,x} = Γ_{yx,x} = −1/y³, Γ_{yy,y} = −1/y³.
        let y: f64 = 0.7;
        let n = 2;
        let mut dg = vec![0.0; 8];
        dg[idx(n, 1, 0, 0)] = -2.0 / y.powi(3);
        dg[idx(n, 1, 1, 1)] = -2.0 / y.powi(3);
        let c = christoffel_first_kind(n, &dg);
        let y3 = y.powi(3);
        let want = [
            (0, 0, 1, 1.0 / y3),
            (0, 1, 0, -1.0 / y3),
            (1, 0, 0, -1.0 / y3),
            (1, 1, 1, -1.0 / y3),
            (0, 0, 0, 0.0),
            (1, 1, 0, 0.0),
        ];
        for (i, j, k, v) in want {
            assert!((c[idx(n, i, j, k)] - v).abs() < 1e-14, "{i}{j}{k}");
        }
    }

    #[test]
    fn connection_interpolates_and_contracts() {
        let mut t = ThirdOrder::zeros(2);
        let h = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, -1.0]);
        t.add_node(0.5, &[1.0, -2.0], &h);
        t.add_node(0.5, &[-1.0, 3.0], &h);
        // α = 1 gives e, α = −1 gives e + T
        assert_eq!(t.connection(1.0), t.e);
        let m = t.connection(-1.0);
        for (k, v) in m.iter().enumerate() {
            assert!((v - t.e[k] - t.t[k]).abs() < 1e-15);
        }
        assert!(t.asymmetry() < 1e-15);
        let c = t.contract(0.0, &[1.0, 1.0]);
        let gam = t.connection(0.0);
        let want0: f64 = (0..2)
            .flat_map(|i| (0..2).map(move |j| (i, j)))
            .map(|(i, j)| gam[idx(2, i, j, 0)])
            .sum();
        assert!((c[0] - want0).abs() < 1e-15);
    }
}
