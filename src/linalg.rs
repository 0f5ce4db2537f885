//! The factorization seam: symmetric eigendecomposition and Cholesky.
//!
//! Pure nalgebra by default; with the cargo feature `lapack`, LAPACK (`dsyevd`/`dpotrf` through
//! nalgebra-lapack on system OpenBLAS). Every factorization in the crate goes through here.

use nalgebra::{DMatrix, DVector};

/// A symmetric eigendecomposition A = Q diag(λ) Qᵀ with eigenvalues in ascending order.
#[derive(Clone, Debug)]
pub struct SymEigen {
    /// Eigenvalues, ascending.
    pub values: DVector<f64>,
    /// Orthonormal eigenvectors as columns, in the order of `values`.
    pub vectors: DMatrix<f64>,
}

/// Which backend performs factorizations in this build.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "lapack") {
        "lapack (nalgebra-lapack, OpenBLAS)"
    } else {
        "nalgebra"
    }
}

/// Symmetric eigendecomposition of `a` (only the lower triangle is trusted).
pub fn sym_eigen(a: &DMatrix<f64>) -> SymEigen {
    let n = a.nrows();
    let (values, vectors) = if n == 2 { eigen2(a) } else { backend_eigen(a) };
    sort_ascending(values, vectors, n)
}

fn sort_ascending(values: DVector<f64>, vectors: DMatrix<f64>, n: usize) -> SymEigen {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let vals = DVector::from_iterator(n, idx.iter().map(|&i| values[i]));
    let mut vecs = DMatrix::zeros(n, n);
    for (k, &i) in idx.iter().enumerate() {
        vecs.set_column(k, &vectors.column(i));
    }
    SymEigen {
        values: vals,
        vectors: vecs,
    }
}

/// Closed-form 2×2 symmetric eigendecomposition (Jacobi rotation; accurate for tiny
/// eigenvalues relative to the entries' precision).
fn eigen2(a: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let (p, q, r) = (a[(0, 0)], a[(1, 0)], a[(1, 1)]);
    if q == 0.0 {
        return (DVector::from_vec(vec![p, r]), DMatrix::identity(2, 2));
    }
    // Rotation angle from tan(2φ) = 2q/(p−r), computed stably.
    let tau = (r - p) / (2.0 * q);
    let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
    let t = if tau == 0.0 { 1.0 } else { t };
    let c = 1.0 / (1.0 + t * t).sqrt();
    let s = t * c;
    let l1 = p - t * q;
    let l2 = r + t * q;
    let v = DMatrix::from_row_slice(2, 2, &[c, s, -s, c]);
    (DVector::from_vec(vec![l1, l2]), v)
}

#[cfg(not(feature = "lapack"))]
fn backend_eigen(a: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let e = nalgebra::SymmetricEigen::new(a.clone());
    (e.eigenvalues, e.eigenvectors)
}

#[cfg(feature = "lapack")]
fn backend_eigen(a: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    match nalgebra_lapack::SymmetricEigen::try_new(a.clone()) {
        Some(e) => (e.eigenvalues, e.eigenvectors),
        None => {
            let e = nalgebra::SymmetricEigen::new(a.clone());
            (e.eigenvalues, e.eigenvectors)
        }
    }
}

/// Cholesky factor L (lower) of a symmetric positive definite matrix, or `None`.
pub fn cholesky(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    backend_cholesky(a)
}

#[cfg(not(feature = "lapack"))]
fn backend_cholesky(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    nalgebra::Cholesky::new(a.clone()).map(|c| c.unpack())
}

#[cfg(feature = "lapack")]
fn backend_cholesky(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    nalgebra_lapack::Cholesky::new(a.clone()).map(|c| c.unpack())
}

/// The inverse of a symmetric positive definite matrix through its Cholesky factorization
/// (`dpotrf` + `dpotri` with `lapack`), or `None` when it is not positive definite.
pub fn spd_inverse(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    backend_spd_inverse(a)
}

#[cfg(not(feature = "lapack"))]
fn backend_spd_inverse(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    nalgebra::Cholesky::new(a.clone()).map(|c| c.inverse())
}

#[cfg(feature = "lapack")]
fn backend_spd_inverse(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let mut inv = nalgebra_lapack::Cholesky::new(a.clone())?.inverse()?;
    // dpotri fills one triangle; `inverse` mirrors it, but be explicit about symmetry.
    let n = inv.nrows();
    for j in 0..n {
        for i in 0..j {
            let v = 0.5 * (inv[(i, j)] + inv[(j, i)]);
            inv[(i, j)] = v;
            inv[(j, i)] = v;
        }
    }
    Some(inv)
}

/// The pure-nalgebra symmetric eigendecomposition (ascending), whatever the backend: the
/// reference the `lapack` path is tested against.
pub fn sym_eigen_nalgebra(a: &DMatrix<f64>) -> SymEigen {
    let e = nalgebra::SymmetricEigen::new(a.clone());
    sort_ascending(e.eigenvalues, e.eigenvectors, a.nrows())
}

/// The pure-nalgebra SPD inverse, whatever the backend (reference for tests).
pub fn spd_inverse_nalgebra(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    nalgebra::Cholesky::new(a.clone()).map(|c| c.inverse())
}

/// A Cholesky factorization A = L Lᵀ of a symmetric positive definite matrix, for solves
/// with many right-hand sides. Default backend: a blocked right-looking factorization and
/// blocked triangular solves in which every block operation is a matrix product in
/// [`crate::gemm`] (the small diagonal blocks of L are inverted once, at factorization);
/// O(n³/3) + O(2n²m) flops. With `lapack`: `dpotrf`/`dpotrs`.
pub struct SpdFactor {
    #[cfg(not(feature = "lapack"))]
    l: DMatrix<f64>,
    /// Inverses of the diagonal blocks of L.
    #[cfg(not(feature = "lapack"))]
    dinv: Vec<DMatrix<f64>>,
    #[cfg(feature = "lapack")]
    chol: nalgebra_lapack::Cholesky<f64, nalgebra::Dyn>,
}

/// Block size of the blocked factorization and solves.
#[cfg(not(feature = "lapack"))]
const BLOCK: usize = 256;

impl SpdFactor {
    /// Factorize `a` (symmetric; the lower triangle is used), or `None` when it is not
    /// numerically positive definite.
    pub fn new(a: &DMatrix<f64>) -> Option<SpdFactor> {
        #[cfg(feature = "lapack")]
        {
            nalgebra_lapack::Cholesky::new(a.clone()).map(|chol| SpdFactor { chol })
        }
        #[cfg(not(feature = "lapack"))]
        {
            blocked_cholesky(a).map(|(l, dinv)| SpdFactor { l, dinv })
        }
    }

    /// Overwrite `b` (n × m) with A⁻¹ b.
    pub fn solve_mut(&self, b: &mut DMatrix<f64>) {
        #[cfg(feature = "lapack")]
        {
            let ok = self.chol.solve_mut(b);
            debug_assert!(ok, "dpotrs failed on a factorized matrix");
        }
        #[cfg(not(feature = "lapack"))]
        {
            self.lower_solve(b);
            self.lower_transpose_solve(b);
        }
    }

    /// L X = B in place (blocked forward substitution).
    #[cfg(not(feature = "lapack"))]
    fn lower_solve(&self, b: &mut DMatrix<f64>) {
        use crate::gemm::{Op, gemm, gemm_rows_update};
        let (l, n) = (&self.l, self.l.nrows());
        for (blk, dinv) in self.dinv.iter().enumerate() {
            let k = blk * BLOCK;
            let bs = dinv.nrows();
            let rhs = b.rows(k, bs).clone_owned();
            let mut xk = DMatrix::zeros(bs, b.ncols());
            gemm(1.0, Op::n(dinv), Op::n(&rhs), 0.0, &mut xk);
            b.rows_mut(k, bs).copy_from(&xk);
            let rest = n - k - bs;
            if rest > 0 {
                // B[k+bs..] −= L[k+bs.., k..k+bs] X_k
                gemm_rows_update(
                    -1.0,
                    Op::n(l).block(k + bs, k, rest, bs),
                    Op::n(&xk),
                    b,
                    k + bs,
                );
            }
        }
    }

    /// Lᵀ X = B in place (blocked backward substitution).
    #[cfg(not(feature = "lapack"))]
    fn lower_transpose_solve(&self, b: &mut DMatrix<f64>) {
        use crate::gemm::{Op, gemm, gemm_rows_update};
        let l = &self.l;
        for (blk, dinv) in self.dinv.iter().enumerate().rev() {
            let k = blk * BLOCK;
            let bs = dinv.nrows();
            let rhs = b.rows(k, bs).clone_owned();
            let mut xk = DMatrix::zeros(bs, b.ncols());
            gemm(1.0, Op::t(dinv), Op::n(&rhs), 0.0, &mut xk);
            b.rows_mut(k, bs).copy_from(&xk);
            if k > 0 {
                // B[..k] −= L[k..k+bs, ..k]ᵀ X_k
                gemm_rows_update(
                    -1.0,
                    Op::n(l).block(k, 0, bs, k).transpose(),
                    Op::n(&xk),
                    b,
                    0,
                );
            }
        }
    }
}

/// Blocked right-looking Cholesky: factor a diagonal block (and invert it), form the panel
/// below it with one product, update the trailing matrix with one symmetric product.
#[cfg(not(feature = "lapack"))]
fn blocked_cholesky(a: &DMatrix<f64>) -> Option<(DMatrix<f64>, Vec<DMatrix<f64>>)> {
    use crate::gemm::{Op, gemm, syrk_lower_update};
    let n = a.nrows();
    let mut w = a.clone();
    let mut dinv = Vec::new();
    let mut k = 0;
    while k < n {
        let b = BLOCK.min(n - k);
        let mut d = w.view((k, k), (b, b)).clone_owned();
        for j in 0..b {
            for i in 0..j {
                d[(i, j)] = d[(j, i)];
            }
        }
        let l11 = chol_rec(&d)?;
        let inv = tri_inv_rec(&l11)?;
        w.view_mut((k, k), (b, b)).copy_from(&l11);
        let m = n - k - b;
        if m > 0 {
            // L21 = A21 L11⁻ᵀ.
            let a21 = w.view((k + b, k), (m, b)).clone_owned();
            let mut l21 = DMatrix::zeros(m, b);
            gemm(1.0, Op::n(&a21), Op::t(&inv), 0.0, &mut l21);
            w.view_mut((k + b, k), (m, b)).copy_from(&l21);
            // A22 ← A22 − L21 L21ᵀ (lower blocks).
            syrk_lower_update(-1.0, Op::n(&l21), &mut w, k + b);
        }
        dinv.push(inv);
        k += b;
    }
    for j in 0..n {
        for i in 0..j {
            w[(i, j)] = 0.0;
        }
    }
    if w.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some((w, dinv))
}

/// Leaf size of the recursive kernels below (nalgebra's unblocked code under it).
#[cfg(not(feature = "lapack"))]
const LEAF: usize = 48;

/// Recursive Cholesky of a symmetric block (lower triangle read): L₁₁ = chol(A₁₁),
/// L₂₁ = A₂₁ L₁₁⁻ᵀ, L₂₂ = chol(A₂₂ − L₂₁ L₂₁ᵀ), the products in [`crate::gemm`].
#[cfg(not(feature = "lapack"))]
fn chol_rec(a: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    use crate::gemm::{Op, gemm};
    let n = a.nrows();
    if n <= LEAF {
        let mut d = a.clone();
        for j in 0..n {
            for i in 0..j {
                d[(i, j)] = d[(j, i)];
            }
        }
        return nalgebra::Cholesky::new(d).map(|c| c.unpack());
    }
    let h = n / 2;
    let l11 = chol_rec(&a.view((0, 0), (h, h)).clone_owned())?;
    let inv11 = tri_inv_rec(&l11)?;
    let a21 = a.view((h, 0), (n - h, h)).clone_owned();
    let mut l21 = DMatrix::zeros(n - h, h);
    gemm(1.0, Op::n(&a21), Op::t(&inv11), 0.0, &mut l21);
    let mut s22 = a.view((h, h), (n - h, n - h)).clone_owned();
    gemm(-1.0, Op::n(&l21), Op::t(&l21), 1.0, &mut s22);
    let l22 = chol_rec(&s22)?;
    let mut l = DMatrix::zeros(n, n);
    l.view_mut((0, 0), (h, h)).copy_from(&l11);
    l.view_mut((h, 0), (n - h, h)).copy_from(&l21);
    l.view_mut((h, h), (n - h, n - h)).copy_from(&l22);
    Some(l)
}

/// Recursive inverse of a lower-triangular matrix:
/// [[L₁₁, 0], [L₂₁, L₂₂]]⁻¹ = [[L₁₁⁻¹, 0], [−L₂₂⁻¹ L₂₁ L₁₁⁻¹, L₂₂⁻¹]].
#[cfg(not(feature = "lapack"))]
fn tri_inv_rec(l: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    use crate::gemm::{Op, gemm};
    let n = l.nrows();
    if n <= LEAF {
        let mut inv = DMatrix::identity(n, n);
        return l.solve_lower_triangular_mut(&mut inv).then_some(inv);
    }
    let h = n / 2;
    let i11 = tri_inv_rec(&l.view((0, 0), (h, h)).clone_owned())?;
    let i22 = tri_inv_rec(&l.view((h, h), (n - h, n - h)).clone_owned())?;
    let l21 = l.view((h, 0), (n - h, h)).clone_owned();
    let mut t = DMatrix::zeros(n - h, h);
    gemm(1.0, Op::n(&l21), Op::n(&i11), 0.0, &mut t);
    let mut i21 = DMatrix::zeros(n - h, h);
    gemm(-1.0, Op::n(&i22), Op::n(&t), 0.0, &mut i21);
    let mut inv = DMatrix::zeros(n, n);
    inv.view_mut((0, 0), (h, h)).copy_from(&i11);
    inv.view_mut((h, 0), (n - h, h)).copy_from(&i21);
    inv.view_mut((h, h), (n - h, n - h)).copy_from(&i22);
    Some(inv)
}

/// A⁻¹B through nalgebra's own Cholesky, whatever the backend (the reference in tests).
pub fn spd_solve_nalgebra(a: &DMatrix<f64>, b: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    nalgebra::Cholesky::new(a.clone()).map(|c| c.solve(b))
}

/// Solve L Lᵀ x = b given the lower Cholesky factor.
pub fn cholesky_solve(l: &DMatrix<f64>, b: &DVector<f64>) -> DVector<f64> {
    let y = l.solve_lower_triangular(b).unwrap_or_else(|| b.clone());
    l.transpose().solve_upper_triangular(&y).unwrap_or(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen2_reconstructs_and_is_ascending() {
        for m in [
            [2.0, 0.3, 1.0],
            [1.0, 1.0, 1.0],
            [1e-8, 1e-9, 3.0],
            [0.25, 0.25, 0.25],
        ] {
            let a = DMatrix::from_row_slice(2, 2, &[m[0], m[1], m[1], m[2]]);
            let e = sym_eigen(&a);
            assert!(e.values[0] <= e.values[1]);
            let rec = &e.vectors * DMatrix::from_diagonal(&e.values) * e.vectors.transpose();
            assert!((rec - &a).norm() < 1e-14 * (1.0 + a.norm()));
            let reference = nalgebra::SymmetricEigen::new(a.clone());
            let mut gv: Vec<f64> = reference.eigenvalues.iter().copied().collect();
            gv.sort_by(f64::total_cmp);
            assert!((gv[0] - e.values[0]).abs() < 1e-14 && (gv[1] - e.values[1]).abs() < 1e-14);
        }
    }

    #[test]
    fn cholesky_solves() {
        let a = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0]);
        let b = DVector::from_vec(vec![1.0, -2.0, 0.5]);
        let l = cholesky(&a).expect("spd");
        let x = cholesky_solve(&l, &b);
        assert!((&a * x - b).norm() < 1e-13);
    }
}
