//! Dense matrix products for the hot paths (MLP forward/backward passes, K-FAC factors).
//!
//! C ← α·op(A)·op(B) + β·C through the `matrixmultiply` kernels with arbitrary strides, so a
//! transpose costs nothing (no copy), and the symmetric rank-k product C ← α·X·Xᵀ computes only
//! the lower triangle blockwise (≈ half the flops of a general product) before mirroring.
//! Operands are bounds-checked once per call; the unsafe kernel call then stays in bounds.

use nalgebra::DMatrix;

/// A read-only strided operand: element (i, j) is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Op<'a> {
    data: &'a [f64],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Op<'a> {
    /// The matrix as it is.
    pub fn n(m: &'a DMatrix<f64>) -> Op<'a> {
        Op::col_major(m.as_slice(), m.nrows(), m.ncols())
    }

    /// The transpose of `m` (no copy).
    pub fn t(m: &'a DMatrix<f64>) -> Op<'a> {
        Op::n(m).transpose()
    }

    /// A column-major `rows`×`cols` matrix stored in `data` (e.g. a slice of θ).
    pub fn col_major(data: &'a [f64], rows: usize, cols: usize) -> Op<'a> {
        Op {
            data,
            offset: 0,
            rows,
            cols,
            rs: 1,
            cs: rows.max(1),
        }
    }

    /// The transpose (swaps shape and strides).
    pub fn transpose(self) -> Op<'a> {
        Op {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `r0..r0+nr` and columns `c0..c0+nc`.
    pub fn block(self, r0: usize, c0: usize, nr: usize, nc: usize) -> Op<'a> {
        assert!(
            r0 + nr <= self.rows && c0 + nc <= self.cols,
            "gemm: block out of range"
        );
        Op {
            offset: self.offset + r0 * self.rs + c0 * self.cs,
            rows: nr,
            cols: nc,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "gemm: operand out of bounds");
        }
    }
}

/// C ← α·A·B + β·C for column-major `c` (A: m×k, B: k×n, C: m×n).
pub fn gemm(alpha: f64, a: Op<'_>, b: Op<'_>, beta: f64, c: &mut DMatrix<f64>) {
    let (m, n) = (c.nrows(), c.ncols());
    gemm_block(alpha, a, b, beta, c, 0, 0, m, n);
}

/// The block C[r0..r0+m, c0..c0+n] ← α·A·B + β·C[…].
#[allow(clippy::too_many_arguments)]
fn gemm_block(
    alpha: f64,
    a: Op<'_>,
    b: Op<'_>,
    beta: f64,
    c: &mut DMatrix<f64>,
    r0: usize,
    c0: usize,
    m: usize,
    n: usize,
) {
    assert!(
        a.rows == m && b.cols == n && a.cols == b.rows,
        "gemm: shape mismatch"
    );
    assert!(
        r0 + m <= c.nrows() && c0 + n <= c.ncols(),
        "gemm: output block out of range"
    );
    if m == 0 || n == 0 {
        return;
    }
    if a.cols == 0 {
        let mut blk = c.view_mut((r0, c0), (m, n));
        blk *= beta;
        return;
    }
    a.check();
    b.check();
    let ldc = c.nrows();
    let cptr = c.as_mut_slice()[r0 + c0 * ldc..].as_mut_ptr();
    // SAFETY: both operands were bounds-checked above (their last element lies inside their
    // slices) and the output block lies inside `c`, which is uniquely borrowed.
    unsafe {
        matrixmultiply::dgemm(
            m,
            a.cols,
            n,
            alpha,
            a.data.as_ptr().add(a.offset),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr().add(b.offset),
            b.rs as isize,
            b.cs as isize,
            beta,
            cptr,
            1,
            ldc as isize,
        );
    }
}

/// Below this size the symmetric product is done as one general product.
const SYRK_LEAF: usize = 192;

/// C ← α·X·Xᵀ (C: n×n, symmetric), computing only lower blocks recursively and mirroring.
pub fn syrk(alpha: f64, x: Op<'_>, c: &mut DMatrix<f64>) {
    let n = x.rows;
    assert!(c.nrows() == n && c.ncols() == n, "syrk: shape mismatch");
    syrk_rec(alpha, x, c, 0, n);
    for j in 0..n {
        for i in 0..j {
            c[(i, j)] = c[(j, i)];
        }
    }
}

fn syrk_rec(alpha: f64, x: Op<'_>, c: &mut DMatrix<f64>, r0: usize, n: usize) {
    if n <= SYRK_LEAF {
        let xb = x.block(r0, 0, n, x.cols);
        gemm_block(alpha, xb, xb.transpose(), 0.0, c, r0, r0, n, n);
        return;
    }
    let h = n / 2;
    syrk_rec(alpha, x, c, r0, h);
    syrk_rec(alpha, x, c, r0 + h, n - h);
    let lower = x.block(r0 + h, 0, n - h, x.cols);
    let upper = x.block(r0, 0, h, x.cols);
    gemm_block(
        alpha,
        lower,
        upper.transpose(),
        0.0,
        c,
        r0 + h,
        r0,
        n - h,
        h,
    );
}

/// C[r0.., r0..] ← C[r0.., r0..] + α·X·Xᵀ on the lower blocks only (X: m × k with
/// m = rows of C − r0); the strict upper triangle of off-diagonal blocks is left untouched.
pub fn syrk_lower_update(alpha: f64, x: Op<'_>, c: &mut DMatrix<f64>, r0: usize) {
    assert!(
        r0 + x.rows == c.nrows() && c.nrows() == c.ncols(),
        "syrk_lower_update: shape mismatch"
    );
    syrk_acc(alpha, x, c, r0, 0, x.rows);
}

fn syrk_acc(alpha: f64, x: Op<'_>, c: &mut DMatrix<f64>, base: usize, r0: usize, n: usize) {
    if n <= SYRK_LEAF {
        let xb = x.block(r0, 0, n, x.cols);
        gemm_block(
            alpha,
            xb,
            xb.transpose(),
            1.0,
            c,
            base + r0,
            base + r0,
            n,
            n,
        );
        return;
    }
    let h = n / 2;
    syrk_acc(alpha, x, c, base, r0, h);
    syrk_acc(alpha, x, c, base, r0 + h, n - h);
    let lower = x.block(r0 + h, 0, n - h, x.cols);
    let upper = x.block(r0, 0, h, x.cols);
    gemm_block(
        alpha,
        lower,
        upper.transpose(),
        1.0,
        c,
        base + r0 + h,
        base + r0,
        n - h,
        h,
    );
}

/// C[r0..r0+m, ..] ← C[r0..r0+m, ..] + α·A·B (A: m × k, B: k × cols of C).
pub fn gemm_rows_update(alpha: f64, a: Op<'_>, b: Op<'_>, c: &mut DMatrix<f64>, r0: usize) {
    let (m, n) = (a.rows, c.ncols());
    gemm_block(alpha, a, b, 1.0, c, r0, 0, m, n);
}

/// C[r0..r0+m, ..] ← A·B (A: m × k, B: k × cols of C), other rows untouched.
pub fn gemm_rows_set(a: Op<'_>, b: Op<'_>, c: &mut DMatrix<f64>, r0: usize) {
    let (m, n) = (a.rows, c.ncols());
    gemm_block(1.0, a, b, 0.0, c, r0, 0, m, n);
}

/// Floating-point operations of a general m×k by k×n product (2mkn).
pub fn gemm_flops(m: usize, k: usize, n: usize) -> f64 {
    2.0 * m as f64 * k as f64 * n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_mat(r: usize, c: usize, seed: u64) -> DMatrix<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        DMatrix::from_fn(r, c, |_, _| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
    }

    #[test]
    fn gemm_matches_nalgebra_with_transposes() {
        let a = rand_mat(7, 5, 1);
        let b = rand_mat(5, 4, 2);
        let bt = b.transpose();
        let at = a.transpose();
        let mut c = rand_mat(7, 4, 3);
        let reference = &a * &b * 2.0 + &c * 0.5;
        gemm(2.0, Op::t(&at), Op::t(&bt), 0.5, &mut c);
        assert!((c - reference).norm() < 1e-13);
    }

    #[test]
    fn syrk_matches_general_product() {
        for &(n, k) in &[(3usize, 4usize), (200, 9), (450, 30)] {
            let x = rand_mat(n, k, n as u64);
            let mut c = DMatrix::zeros(n, n);
            syrk(0.25, Op::n(&x), &mut c);
            let reference = &x * x.transpose() * 0.25;
            assert!((c - reference).norm() < 1e-11, "n = {n}");
        }
    }

    #[test]
    fn blocks_of_column_major_slices() {
        let data: Vec<f64> = (0..12).map(|v| v as f64).collect();
        let op = Op::col_major(&data, 3, 4).block(1, 1, 2, 2);
        let id = DMatrix::<f64>::identity(2, 2);
        let mut c = DMatrix::zeros(2, 2);
        gemm(1.0, op, Op::n(&id), 0.0, &mut c);
        assert_eq!(c, DMatrix::from_row_slice(2, 2, &[4.0, 7.0, 5.0, 8.0]));
    }
}
