//! The exact Fisher of the MLP without the n×n matrix: Fisher–vector products and the natural
//! gradient by conjugate gradients.
//!
//! With Jᵢ = ∂z_L/∂θ the output Jacobian of example i and Hᵢ the Fisher of the output
//! distribution in z (softmax: diag pᵢ − pᵢpᵢᵀ; Gaussian: I/σ²), the Fisher is
//! F = (1/N) Σᵢ Jᵢᵀ Hᵢ Jᵢ, so
//!
//! F v = (1/N) Σᵢ Jᵢᵀ (Hᵢ (Jᵢ v)):
//!
//! a forward-mode pass (the R-operator: ż = V̇ ã + W ȧ, ȧ = φ'(z) ⊙ ż, with V̇ the tangent
//! weights from v) gives every Jᵢv at once, Hᵢ is applied per column, and one backward pass
//! gives Σ Jᵢᵀuᵢ. Cost ≈ 6·N·n flops per product (2Nn tangent, 4Nn backward) on top of one
//! shared forward pass, memory O(N·Σdℓ) — never O(n²).
//!
//! The natural gradient x = (F + λI)⁻¹g (λ > 0) is then the CG iteration on the symmetric
//! positive definite F + λI, stopped at ‖r‖ ≤ tol·‖g‖ or after `max_iter` products.

use crate::gemm::{Op, gemm};
use crate::model::mlp::Forward;
use crate::model::{Activation, DenseLayers, LayerShape, Mlp, OutputKind, StatModel};
use nalgebra::{DMatrix, DVector};

/// Default relative residual of [`natural_gradient_cg`].
pub const CG_TOL: f64 = 1e-10;
/// Default cap on CG iterations (each one Fisher–vector product).
pub const CG_MAX_ITER: usize = 500;

/// F(θ) as an operator: the forward pass at θ, held for every product.
pub struct FisherOperator<'m> {
    mlp: &'m Mlp,
    theta: Vec<f64>,
    forward: Forward,
    layers: Vec<LayerShape>,
}

/// The result of a CG solve.
#[derive(Clone, Debug)]
pub struct CgSolve {
    /// x ≈ (F + λI)⁻¹g.
    pub x: DVector<f64>,
    /// Fisher–vector products spent.
    pub iterations: usize,
    /// ‖g − (F + λI)x‖/‖g‖ at the end (recomputed, not the recursive estimate).
    pub relative_residual: f64,
}

impl<'m> FisherOperator<'m> {
    /// F at θ (one forward pass).
    pub fn new(mlp: &'m Mlp, theta: &[f64]) -> Self {
        FisherOperator {
            mlp,
            theta: theta.to_vec(),
            forward: mlp.forward(theta),
            layers: mlp.layers(),
        }
    }

    /// Dimension n.
    pub fn dim(&self) -> usize {
        self.theta.len()
    }

    /// J v for every example: the output tangents ż_L (d_L × N), by forward mode.
    pub fn jvp(&self, v: &[f64]) -> DMatrix<f64> {
        let f = &self.forward;
        let n = f.z.ncols();
        let last = self.layers.len() - 1;
        // tangent of the (non-augmented) input of the current layer; None = 0 (the data)
        let mut adot: Option<DMatrix<f64>> = None;
        let mut out = DMatrix::zeros(0, 0);
        for (l, s) in self.layers.iter().enumerate() {
            let input = self.mlp.input(f, l);
            let vdot = Op::col_major(&v[s.offset..s.offset + s.len()], s.d_out, s.d_in + 1);
            let mut zdot = DMatrix::zeros(s.d_out, n);
            gemm(1.0, vdot, Op::n(input), 0.0, &mut zdot);
            if let Some(a) = &adot {
                let w = Op::col_major(
                    &self.theta[s.offset..s.offset + s.len()],
                    s.d_out,
                    s.d_in + 1,
                )
                .block(0, 0, s.d_out, s.d_in);
                gemm(1.0, w, Op::n(a), 1.0, &mut zdot);
            }
            if l == last {
                out = zdot;
            } else {
                let h = f.h[l].rows(0, s.d_out);
                match self.mlp.activation() {
                    Activation::Tanh => zdot.zip_apply(&h, |d, hv| *d *= 1.0 - hv * hv),
                    Activation::Relu => zdot.zip_apply(&h, |d, hv| {
                        if hv <= 0.0 {
                            *d = 0.0
                        }
                    }),
                }
                adot = Some(zdot);
            }
        }
        out
    }

    /// u = H ż per example column: softmax p ⊙ ż − p (pᵀż); Gaussian ż/σ².
    fn apply_output_fisher(&self, mut zdot: DMatrix<f64>) -> DMatrix<f64> {
        match self.mlp.output() {
            OutputKind::Softmax => {
                let p = &self.forward.p;
                for (mut col, pc) in zdot.column_iter_mut().zip(p.column_iter()) {
                    let dot = col.dot(&pc);
                    for (c, pv) in col.iter_mut().zip(pc.iter()) {
                        *c = pv * (*c - dot);
                    }
                }
                zdot
            }
            OutputKind::Gaussian { noise } => zdot / (noise * noise),
        }
    }

    /// F v into `out` (length n).
    pub fn apply(&self, v: &[f64], out: &mut [f64]) {
        let n = self.forward.z.ncols() as f64;
        let mut u = self.apply_output_fisher(self.jvp(v));
        u /= n;
        let deltas = self.mlp.backward(&self.theta, &self.forward, u);
        self.mlp.grad_from(&self.forward, &deltas, out);
    }

    /// F v, allocating.
    pub fn mul(&self, v: &DVector<f64>) -> DVector<f64> {
        let mut out = vec![0.0; self.dim()];
        self.apply(v.as_slice(), &mut out);
        DVector::from_vec(out)
    }

    /// (F + λI)⁻¹ g by conjugate gradients from x₀ = 0.
    pub fn solve(&self, g: &DVector<f64>, damping: f64, tol: f64, max_iter: usize) -> CgSolve {
        let op = |v: &DVector<f64>| self.mul(v) + v * damping;
        cg(op, g, tol, max_iter)
    }
}

/// Conjugate gradients for the symmetric positive definite operator `a`, from x₀ = 0; stops
/// at ‖r‖ ≤ tol·‖b‖ (recursive residual) or after `max_iter` products, then reports the
/// recomputed residual.
pub fn cg(
    a: impl Fn(&DVector<f64>) -> DVector<f64>,
    b: &DVector<f64>,
    tol: f64,
    max_iter: usize,
) -> CgSolve {
    let n = b.len();
    let bn = b.norm();
    let mut x = DVector::zeros(n);
    if bn == 0.0 || !bn.is_finite() {
        return CgSolve {
            x,
            iterations: 0,
            relative_residual: if bn == 0.0 { 0.0 } else { f64::NAN },
        };
    }
    let mut r = b.clone();
    let mut p = r.clone();
    let mut rr = r.norm_squared();
    let mut it = 0;
    while it < max_iter && rr.sqrt() > tol * bn {
        let ap = a(&p);
        it += 1;
        let pap = p.dot(&ap);
        if !(pap > 0.0 && pap.is_finite()) {
            break;
        }
        let alpha = rr / pap;
        x.axpy(alpha, &p, 1.0);
        r.axpy(-alpha, &ap, 1.0);
        let rr_new = r.norm_squared();
        p = &r + &p * (rr_new / rr);
        rr = rr_new;
    }
    let res = (b - a(&x)).norm() / bn;
    CgSolve {
        x,
        iterations: it + 1,
        relative_residual: res,
    }
}

/// ∇L(θ) and the exact natural gradient (F + λI)⁻¹∇L of the MLP by CG (λ > 0), matrix-free.
pub fn natural_gradient_cg(
    mlp: &Mlp,
    theta: &[f64],
    damping: f64,
    tol: f64,
    max_iter: usize,
) -> (DVector<f64>, CgSolve) {
    let g = mlp.gradient(theta);
    let op = FisherOperator::new(mlp, theta);
    let s = op.solve(&g, damping, tol, max_iter);
    (g, s)
}

/// Model flops of one Fisher–vector product (tangent pass 2·N·n, backward 4·N·n, output
/// Fisher 4·N·d_L).
pub fn fvp_flops(mlp: &Mlp) -> f64 {
    let n = mlp.dim() as f64;
    let ex = mlp.data().len() as f64;
    let dl = *mlp.sizes().last().unwrap_or(&1) as f64;
    6.0 * ex * n + 4.0 * ex * dl
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::data::synthetic_regression;

    fn iris_like(output: OutputKind, act: Activation) -> (Mlp, Vec<f64>) {
        let data = match output {
            OutputKind::Softmax => crate::model::data::synthetic_classification(60, 4, 3, 3),
            OutputKind::Gaussian { .. } => synthetic_regression(50, 3, 0.1, 5),
        };
        let d0 = data.x.nrows();
        let dl = match output {
            OutputKind::Softmax => 3,
            OutputKind::Gaussian { .. } => 1,
        };
        let m = Mlp::new(vec![d0, 7, 5, dl], act, output, data).unwrap();
        let mut theta = m.init(11);
        // non-zero biases, so every path of the tangent pass is exercised
        for (i, t) in theta.iter_mut().enumerate() {
            *t += 0.05 * ((i as f64) * 0.7).sin();
        }
        (m, theta)
    }

    fn cases() -> Vec<(Mlp, Vec<f64>)> {
        vec![
            iris_like(OutputKind::Softmax, Activation::Tanh),
            iris_like(OutputKind::Softmax, Activation::Relu),
            iris_like(OutputKind::Gaussian { noise: 0.3 }, Activation::Tanh),
        ]
    }

    /// F v from the matrix-free product equals the dense exact Fisher (score factor RᵀR)
    /// times v, to 1e-12 relative, for softmax/Gaussian outputs and tanh/ReLU units.
    #[test]
    fn fisher_vector_product_matches_the_dense_fisher() {
        for (m, theta) in cases() {
            let dense = m.fisher(&theta);
            let op = FisherOperator::new(&m, &theta);
            for k in 0..3 {
                let v = DVector::from_fn(m.dim(), |i, _| ((i * 7 + k * 13) as f64 * 0.37).cos());
                let fv = op.mul(&v);
                let want = &dense * &v;
                let err = (&fv - &want).norm() / want.norm();
                assert!(err <= 1e-12, "F v: relative error {err:e}");
            }
        }
    }

    /// The CG natural gradient equals the dense solve (F + λI)⁻¹g to ≤ 1e-10 relative.
    #[test]
    fn cg_natural_gradient_matches_the_dense_solve() {
        for (m, theta) in cases() {
            let lambda = 1e-2;
            let (g, s) = natural_gradient_cg(&m, &theta, lambda, 1e-14, 20 * m.dim());
            let dense = crate::metric::Metric::new(m.fisher(&theta), lambda);
            let want = dense.solve(&g);
            let err = (&s.x - &want).norm() / want.norm();
            assert!(err <= 1e-10, "CG vs dense: relative error {err:e}");
            assert!(s.relative_residual <= 1e-12, "{}", s.relative_residual);
            assert!(s.iterations <= 20 * m.dim());
        }
    }

    /// CG on a diagonal system converges in as many iterations as there are distinct
    /// eigenvalues (exact arithmetic bound), here 3.
    #[test]
    fn cg_needs_one_iteration_per_distinct_eigenvalue() {
        let d = DVector::from_vec(vec![1.0, 2.0, 2.0, 5.0, 1.0, 5.0]);
        let b = DVector::from_fn(6, |i, _| 1.0 + i as f64);
        let s = cg(|v| v.component_mul(&d), &b, 1e-14, 100);
        let want = b.component_div(&d);
        assert!((&s.x - &want).norm() <= 1e-12 * want.norm());
        assert!(s.iterations <= 4, "{} iterations", s.iterations);
    }
}
