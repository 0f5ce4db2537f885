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
    let ([l1, l2], c, s) = jacobi2(a[(0, 0)], a[(1, 0)], a[(1, 1)]);
    let v = DMatrix::from_row_slice(2, 2, &[c, s, -s, c]);
    (DVector::from_vec(vec![l1, l2]), v)
}

/// The symmetric 2×2 [[p, q], [q, r]] by one Jacobi rotation: eigenvalues [l₁, l₂] (unsorted)
/// with eigenvectors (c, −s) and (s, c), the angle from tan 2φ = 2q/(p − r) computed stably.
pub fn jacobi2(p: f64, q: f64, r: f64) -> ([f64; 2], f64, f64) {
    if q == 0.0 {
        return ([p, r], 1.0, 0.0);
    }
    let tau = (r - p) / (2.0 * q);
    let t = if tau == 0.0 {
        1.0
    } else {
        tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt())
    };
    let c = 1.0 / (1.0 + t * t).sqrt();
    let s = t * c;
    ([p - t * q, r + t * q], c, s)
}

#[cfg(not(feature = "lapack"))]
fn backend_eigen(a: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let e = nalgebra::SymmetricEigen::new(a.clone());
    (e.eigenvalues, e.eigenvectors)
}

#[cfg(feature = "lapack")]
fn backend_eigen(a: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    openblas_single_threaded();
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
    openblas_single_threaded();
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
    openblas_single_threaded();
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

/// OpenBLAS's own threads would compete with the rayon tasks this crate runs its dense work
/// in (see [`crate::gemm::par_for`]): LAPACK calls run single-threaded, side by side.
#[cfg(feature = "lapack")]
fn openblas_single_threaded() {
    unsafe extern "C" {
        fn openblas_set_num_threads(num_threads: std::ffi::c_int);
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: a plain setter of OpenBLAS's global thread count, called once, before any
    // LAPACK call of this crate.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}

/// A Cholesky factorization A = L Lᵀ of a symmetric positive definite matrix, for solves
/// with many right-hand sides (the K-FAC factors). The factorization goes through the
/// backend: faer's blocked recursive Cholesky by default (pure Rust, already in the tree
/// through diffsol; nalgebra's unblocked one runs at ≈ 5 GFLOP/s at n = 1000, faer's at
/// ≈ 60), `dpotrf` with `lapack`. The triangular solves are faer's in both builds
/// (≈ 110 GFLOP/s for 1000 right-hand sides on two cores). n³/3 flops to factor, 2n²m to
/// solve for m right-hand sides.
pub struct SpdFactor {
    /// L in the lower triangle; the strict upper triangle still holds A (never read).
    l: DMatrix<f64>,
}

impl SpdFactor {
    /// Factorize `a` (symmetric; the lower triangle is used), or `None` when it is not
    /// numerically positive definite (or not finite).
    pub fn new(a: &DMatrix<f64>) -> Option<SpdFactor> {
        SpdFactor::new_shifted(a, 0.0)
    }

    /// Factorize A + γI (one copy of `a`, the shift added to it).
    pub fn new_shifted(a: &DMatrix<f64>, gamma: f64) -> Option<SpdFactor> {
        SpdFactor::from_owned_shifted(a.clone(), gamma)
    }

    /// Factorize A + γI in A's own storage (no copy; A is consumed, also on failure).
    pub fn from_owned_shifted(a: DMatrix<f64>, gamma: f64) -> Option<SpdFactor> {
        let mut s = a;
        for i in 0..s.nrows() {
            s[(i, i)] += gamma;
        }
        let n = s.nrows();
        #[cfg(feature = "lapack")]
        let (ok, s) = {
            openblas_single_threaded();
            match nalgebra_lapack::Cholesky::new(s) {
                Some(c) => (true, c.unpack_dirty()),
                None => return None,
            }
        };
        #[cfg(not(feature = "lapack"))]
        let ok = {
            use faer::dyn_stack::{MemBuffer, MemStack};
            use faer::linalg::cholesky::llt::factor;
            let view = faer::MatMut::from_column_major_slice_mut(s.as_mut_slice(), n, n);
            crate::gemm::run_kernel(n * n * n / 6, |par| {
                let params = Default::default();
                let scratch = factor::cholesky_in_place_scratch::<f64>(n, par, params);
                let mut buf = MemBuffer::new(scratch);
                let stack = MemStack::new(&mut buf);
                factor::cholesky_in_place(view, Default::default(), par, stack, params).is_ok()
            })
        };
        // A NaN or ∞ anywhere in the lower triangle reaches the diagonal of L (L_ii² =
        // a_ii − Σ_k L_ik²), so a finite positive diagonal certifies the whole factor.
        let diag_ok = (0..n).all(|i| s[(i, i)].is_finite() && s[(i, i)] > 0.0);
        (ok && diag_ok).then_some(SpdFactor { l: s })
    }

    /// Size n of A.
    pub fn dim(&self) -> usize {
        self.l.nrows()
    }

    /// Overwrite `b` (n × m) with A⁻¹ b.
    pub fn solve_mut(&self, b: &mut DMatrix<f64>) {
        let m = b.ncols();
        self.solve_slice(b.as_mut_slice(), m);
    }

    /// Overwrite the column-major n × `cols` matrix stored in `b` with A⁻¹ b.
    pub fn solve_slice(&self, b: &mut [f64], cols: usize) {
        let n = self.dim();
        assert_eq!(
            b.len(),
            n * cols,
            "SpdFactor: right-hand side has the wrong size"
        );
        self.faer_solve(faer::MatMut::from_column_major_slice_mut(b, n, cols));
    }

    /// Overwrite the column-major `rows` × n matrix stored in `b` with b A⁻¹
    /// (= (A⁻¹ bᵀ)ᵀ, A symmetric).
    pub fn solve_right_slice(&self, b: &mut [f64], rows: usize) {
        let n = self.dim();
        assert_eq!(
            b.len(),
            n * rows,
            "SpdFactor: left-hand side has the wrong size"
        );
        let view = faer::MatMut::from_column_major_slice_mut(b, rows, n);
        self.faer_solve(view.transpose_mut());
    }

    /// Inside the pool, many right-hand sides are split into two tasks (see
    /// [`crate::gemm::par_for`]); otherwise one faer solve.
    fn faer_solve(&self, rhs: faer::MatMut<'_, f64>) {
        let n = self.l.nrows();
        let m = rhs.ncols();
        if crate::gemm::in_pool() && m >= 64 && n * n * m >= 1 << 26 {
            let (left, right) = rhs.split_at_col_mut(m / 2);
            rayon::join(|| self.faer_solve(left), || self.faer_solve(right));
            return;
        }
        let l = faer::MatRef::from_column_major_slice(self.l.as_slice(), n, n);
        crate::gemm::run_kernel(n * n * m, |par| {
            let stack = faer::dyn_stack::MemStack::new(&mut []);
            faer::linalg::cholesky::llt::solve::solve_in_place(l, rhs, par, stack)
        });
    }
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
