//! Dense matrix products for the hot paths (MLP forward/backward passes, K-FAC factors).
//!
//! C ← α·op(A)·op(B) + β·C through faer's kernels (multithreaded on the rayon pool) with arbitrary strides, so a
//! transpose costs nothing (no copy), and the symmetric rank-k product C ← α·X·Xᵀ through
//! faer's triangular product, which computes only the lower triangle (≈ half the flops of a
//! general product) before mirroring.
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

    /// The operand as a faer view (bounds-checked first).
    fn faer(&self) -> faer::MatRef<'a, f64> {
        self.check();
        // SAFETY: `check` proved that every element (i, j), i < rows, j < cols, lies inside
        // `data`; the view reads only those elements and lives no longer than `data`.
        unsafe {
            faer::MatRef::from_raw_parts(
                self.data.as_ptr().add(self.offset),
                self.rows,
                self.cols,
                self.rs as isize,
                self.cs as isize,
            )
        }
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

/// The column-major m×n matrix stored in `c` (e.g. a slice of θ) ← A·B.
pub fn gemm_slice(a: Op<'_>, b: Op<'_>, c: &mut [f64]) {
    let (m, n) = (a.rows, b.cols);
    assert!(
        a.cols == b.rows && c.len() == m * n,
        "gemm_slice: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    if a.cols == 0 {
        c.fill(0.0);
        return;
    }
    let cm = faer::MatMut::from_column_major_slice_mut(c, m, n);
    matmul_into(cm, faer::Accum::Replace, a, b, 1.0);
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
    let ldc = c.nrows();
    let accum = if beta == 0.0 {
        faer::Accum::Replace
    } else {
        if beta != 1.0 {
            let mut blk = c.view_mut((r0, c0), (m, n));
            blk *= beta;
        }
        faer::Accum::Add
    };
    let cblk = &mut c.as_mut_slice()[r0 + c0 * ldc..];
    let cm = faer::MatMut::from_column_major_slice_with_stride_mut(cblk, m, n, ldc);
    matmul_into(cm, accum, a, b, alpha);
}

/// Whether the calling thread is one of the rayon pool's workers (then the work is already
/// one of several parallel tasks).
pub fn in_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// Run `f` on a pool thread, so the kernels it calls run as sequential tasks (see
/// [`par_for`]).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if in_pool() {
        return f();
    }
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    match out {
        Some(r) => r,
        None => unreachable!("rayon::scope runs its closure before returning"),
    }
}

/// Products of at least this many multiply-adds are split into two rayon tasks when run
/// inside the pool (≈ 0.13 GFLOP, a few ms on one core).
const SPLIT_MIN: usize = 1 << 26;

/// How a kernel of `mnk` multiply-adds runs. From outside the pool: faer's own
/// multithreading (sequential below 2¹⁸, where waking the pool costs more than it saves).
/// Inside the pool (the kernel is one of several independent tasks, see
/// [`crate::metric::kfac`]): sequential, the caller splitting big kernels into tasks —
/// two single-threaded kernels side by side reach ≈ 1.9× one, against ≈ 1.55× for one
/// kernel on two threads (faer, n = 1000, two cores).
pub fn par_for(mnk: usize) -> faer::Par {
    if mnk < 1 << 18 || in_pool() {
        faer::Par::Seq
    } else {
        faer::Par::rayon(0)
    }
}

/// Run one faer kernel of `mnk` multiply-adds with the parallelism of [`par_for`], then
/// clear the upper vector state (see [`clear_upper_simd_state`]) on every thread it ran
/// on: the calling thread, and the pool's threads when faer used them. Every faer call of
/// the crate goes through here.
pub fn run_kernel<R>(mnk: usize, kernel: impl FnOnce(faer::Par) -> R) -> R {
    let par = par_for(mnk);
    let out = kernel(par);
    if par == faer::Par::Seq {
        clear_upper_simd_state();
    } else {
        rayon::broadcast(|_| clear_upper_simd_state());
        clear_upper_simd_state();
    }
    out
}

/// dst ← α·A·B (+ dst when `accum` is Add), split into rayon tasks inside the pool.
fn matmul_into(dst: faer::MatMut<'_, f64>, accum: faer::Accum, a: Op<'_>, b: Op<'_>, alpha: f64) {
    let (m, n, k) = (dst.nrows(), dst.ncols(), a.cols);
    if in_pool() && m * n * k >= SPLIT_MIN {
        if n >= m {
            let h = n / 2;
            let (left, right) = dst.split_at_col_mut(h);
            rayon::join(
                || matmul_into(left, accum, a, b.block(0, 0, k, h), alpha),
                || matmul_into(right, accum, a, b.block(0, h, k, n - h), alpha),
            );
        } else {
            let h = m / 2;
            let (top, bottom) = dst.split_at_row_mut(h);
            rayon::join(
                || matmul_into(top, accum, a.block(0, 0, h, k), b, alpha),
                || matmul_into(bottom, accum, a.block(h, 0, m - h, k), b, alpha),
            );
        }
        return;
    }
    run_kernel(m * n * k, |par| {
        faer::linalg::matmul::matmul(dst, accum, a.faer(), b.faer(), alpha, par)
    });
}

/// `vzeroupper`. faer's AVX-512 product kernels leave the upper halves of the vector
/// registers dirty on the threads that ran them, and every SSE-encoded instruction after
/// that (this crate's own code, libm's `tanh`) pays a state transition: measured 5× slower
/// `tanh` and slower elementwise loops. [`run_kernel`] calls it after each faer kernel.
#[inline]
pub fn clear_upper_simd_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is available (checked above); vzeroupper only clears upper register
        // halves, which hold no live value of this (SSE-compiled) code.
        unsafe { std::arch::x86_64::_mm256_zeroupper() }
    }
}

/// C ← α·X·Xᵀ (C: n×n, symmetric): faer's triangular product computes the lower triangle
/// only (half the flops of a general product, ≈ 120 GFLOP/s for n = k = 1000 on two cores
/// against ≈ 65 for a recursive split into general products), then the upper triangle is
/// mirrored tile by tile. Inside the pool the triangle is split recursively into tasks:
/// C₁₁ and C₂₂ (triangles) beside C₂₁ = X₂X₁ᵀ (a rectangle).
pub fn syrk(alpha: f64, x: Op<'_>, c: &mut DMatrix<f64>) {
    let (n, k) = (x.rows, x.cols);
    assert!(c.nrows() == n && c.ncols() == n, "syrk: shape mismatch");
    if n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let cm = faer::MatMut::from_column_major_slice_mut(c.as_mut_slice(), n, n);
    syrk_into(cm, x, alpha);
    mirror_lower(c);
}

fn syrk_into(dst: faer::MatMut<'_, f64>, x: Op<'_>, alpha: f64) {
    use faer::linalg::matmul::triangular::{BlockStructure, matmul};
    let (n, k) = (x.rows, x.cols);
    if in_pool() && n * n * k / 2 >= SPLIT_MIN {
        let h = n / 2;
        let (c11, _c12, c21, c22) = dst.split_at_mut(h, h);
        let (x1, x2) = (x.block(0, 0, h, k), x.block(h, 0, n - h, k));
        rayon::join(
            || matmul_into(c21, faer::Accum::Replace, x2, x1.transpose(), alpha),
            || rayon::join(|| syrk_into(c11, x1, alpha), || syrk_into(c22, x2, alpha)),
        );
        return;
    }
    let xr = x.faer();
    run_kernel(n * n * k / 2, |par| {
        matmul(
            dst,
            BlockStructure::TriangularLower,
            faer::Accum::Replace,
            xr,
            BlockStructure::Rectangular,
            xr.transpose(),
            BlockStructure::Rectangular,
            alpha,
            par,
        )
    });
}

/// Copy the lower triangle of a square matrix onto its upper triangle, in 64×64 tiles (a
/// plain column loop would write one cache line per element).
pub fn mirror_lower(c: &mut DMatrix<f64>) {
    const TILE: usize = 64;
    let n = c.nrows();
    let d = c.as_mut_slice();
    for jb in (0..n).step_by(TILE) {
        for ib in (jb..n).step_by(TILE) {
            for j in jb..(jb + TILE).min(n) {
                for i in ib.max(j + 1)..(ib + TILE).min(n) {
                    d[j + i * n] = d[i + j * n];
                }
            }
        }
    }
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

    #[test]
    fn pool_tasks_split_products_and_match_nalgebra() {
        // Big enough that inside the pool both products split into several tasks.
        let x = rand_mat(600, 400, 11);
        let a = rand_mat(500, 300, 12);
        let b = rand_mat(300, 520, 13);
        let (c, s) = on_pool(|| {
            assert!(in_pool());
            let mut c = rand_mat(500, 520, 14);
            gemm(1.5, Op::n(&a), Op::n(&b), 0.0, &mut c);
            let mut s = DMatrix::zeros(600, 600);
            syrk(0.5, Op::n(&x), &mut s);
            (c, s)
        });
        assert!(!in_pool());
        let rc = &a * &b * 1.5;
        assert!((c - &rc).amax() < 1e-12 * rc.amax());
        let rs = &x * x.transpose() * 0.5;
        assert!((&s - &rs).amax() < 1e-12 * rs.amax());
        assert_eq!(s, s.transpose(), "mirrored exactly");
    }
}
