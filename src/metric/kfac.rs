//! `kfac`: Kronecker-factored approximate curvature (Martens & Grosse 2015).
//!
//! Per dense layer ℓ the Fisher block is approximated by Aℓ ⊗ Gℓ, Aℓ = E[ã ãᵀ] (inputs with
//! a bias 1 appended), Gℓ = E[g gᵀ] (pre-activation gradients of log p at targets drawn from
//! the model, or the data's, or the exact expectation); blocks of different layers are
//! dropped. With the parameters of a layer being vec(V) of the d_out × (d_in+1) matrix
//! V = [W | b] (column-major), (A ⊗ G) vec(V) = vec(G V A) and
//! (A ⊗ G)⁻¹ vec(V) = vec(G⁻¹ V A⁻¹): the n×n matrix is never formed, the state is
//! O(d_in² + d_out²) per layer.
//!
//! Damping λ:
//! * `factored` (default): (A + π√λ I) ⊗ (G + √λ/π I) with π² = (tr A/dim A)/(tr G/dim G);
//! * `exact`: A ⊗ G + λI through A = U_A Λ_A U_Aᵀ, G = U_G Λ_G U_Gᵀ:
//!   (A ⊗ G + λI)⁻¹ vec(V) = vec(U_G [(U_Gᵀ V U_A) ⊘ (λ_G λ_Aᵀ + λ)] U_Aᵀ).
//!
//! Every factorization goes through [`crate::linalg`] (nalgebra or LAPACK).

use super::RANK_TOL;
use super::provider::{DENSE_LIMIT, Factorized, KfacDamping, MetricProvider};
use crate::error::{Error, Result};
use crate::gemm::{Op, gemm};
use crate::linalg::{SpdFactor, SymEigen, sym_eigen};
use crate::model::{DenseLayers, KfacTargets, LayerShape, StatModel};
use nalgebra::{DMatrix, DVector};

/// The K-FAC provider.
pub struct KfacProvider {
    /// Which targets define G.
    pub targets: KfacTargets,
    /// How damping enters.
    pub damping_mode: KfacDamping,
    /// Target draws per example for sampled targets.
    pub samples: usize,
    /// Seed of the draws.
    pub seed: u64,
}

fn no_layers(model: &dyn StatModel) -> Error {
    Error::invalid(
        "flow.metric",
        "kfac",
        format!(
            "K-FAC needs a model with dense layers; the {} model has none (use exact, diagonal, …)",
            model.family()
        ),
    )
}

impl MetricProvider for KfacProvider {
    fn name(&self) -> &'static str {
        "kfac"
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        match model.dense_layers() {
            Some(l) if !l.layers().is_empty() => Ok(()),
            _ => Err(no_layers(model)),
        }
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let layers = model.dense_layers().ok_or_else(|| no_layers(model))?;
        let f = layers.kfac_factors(theta, self.targets, self.samples, self.seed, false)?;
        Ok(Box::new(KfacMetric::new(
            layers.layers(),
            f.a,
            f.g,
            damping,
            self.damping_mode,
        )))
    }
    fn gradient_and_natural(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Option<Result<(DVector<f64>, DVector<f64>)>> {
        let layers = model.dense_layers()?;
        Some(natural_gradient(layers, theta, self, damping).map(|(_, g, nat)| (g, nat)))
    }
}

/// (M + γI)⁻¹ of one factor: a Cholesky factorization, or a pseudo-inverse when M + γI is
/// not numerically positive definite.
pub enum ShiftedInverse {
    /// Cholesky factor (solves through the backend).
    Chol(SpdFactor),
    /// Explicit pseudo-inverse.
    Pinv(DMatrix<f64>),
}

impl ShiftedInverse {
    /// Factorize M + γI.
    pub fn new(m: &DMatrix<f64>, gamma: f64) -> Self {
        if gamma > 0.0
            && let Some(f) = SpdFactor::new_shifted(m, gamma)
        {
            return ShiftedInverse::Chol(f);
        }
        let mut s = m.clone();
        for i in 0..s.nrows() {
            s[(i, i)] += gamma;
        }
        ShiftedInverse::Pinv(pseudo_inverse(&s))
    }

    /// The column-major rows × n block `x` ← x (M + γI)⁻¹.
    pub fn apply_right_slice(&self, x: &mut [f64], rows: usize) {
        match self {
            ShiftedInverse::Chol(f) => f.solve_right_slice(x, rows),
            ShiftedInverse::Pinv(p) => {
                let mut y = DMatrix::zeros(rows, p.nrows());
                gemm(
                    1.0,
                    Op::col_major(x, rows, p.nrows()),
                    Op::n(p),
                    0.0,
                    &mut y,
                );
                x.copy_from_slice(y.as_slice());
            }
        }
    }

    /// The column-major n × cols block `x` ← (M + γI)⁻¹ x.
    pub fn apply_slice(&self, x: &mut [f64], cols: usize) {
        match self {
            ShiftedInverse::Chol(f) => f.solve_slice(x, cols),
            ShiftedInverse::Pinv(p) => {
                let mut y = DMatrix::zeros(p.nrows(), cols);
                gemm(
                    1.0,
                    Op::n(p),
                    Op::col_major(x, p.nrows(), cols),
                    0.0,
                    &mut y,
                );
                x.copy_from_slice(y.as_slice());
            }
        }
    }
}

/// The inverse side of one layer.
enum LayerInverse {
    /// (A + γ_A I)⁻¹ and (G + γ_G I)⁻¹ with γ_A = π√λ, γ_G = √λ/π.
    Factored {
        a_inv: ShiftedInverse,
        g_inv: ShiftedInverse,
        gamma_a: f64,
        gamma_g: f64,
    },
    /// Eigendecompositions of A and G (exact damping).
    Eigen { ea: SymEigen, eg: SymEigen },
}

/// One layer's factors and their inverses.
struct KfacLayer {
    shape: LayerShape,
    a: DMatrix<f64>,
    g: DMatrix<f64>,
    inv: LayerInverse,
}

/// The factorized K-FAC metric.
pub struct KfacMetric {
    n: usize,
    damping: f64,
    layers: Vec<KfacLayer>,
}

/// The shifts (γ_A, γ_G) = (π√λ, √λ/π) of factored damping.
fn factored_shifts(a: &DMatrix<f64>, g: &DMatrix<f64>, damping: f64) -> (f64, f64) {
    let (pi, r) = (pi_correction(a, g), damping.sqrt());
    (pi * r, r / pi)
}

/// `x` cut into consecutive blocks of the given lengths (one per layer).
fn layer_blocks(x: &mut [f64], lens: impl Iterator<Item = usize>) -> Vec<&mut [f64]> {
    let mut rest = x;
    let mut blocks = Vec::new();
    for len in lens {
        let (head, tail) = rest.split_at_mut(len);
        blocks.push(head);
        rest = tail;
    }
    blocks
}

/// The π of factored damping: π² = (tr A/dim A)/(tr G/dim G) (1 when either trace is 0).
pub fn pi_correction(a: &DMatrix<f64>, g: &DMatrix<f64>) -> f64 {
    let ta = a.trace() / a.nrows() as f64;
    let tg = g.trace() / g.nrows() as f64;
    if ta > 0.0 && tg > 0.0 && (ta / tg).is_finite() {
        (ta / tg).sqrt()
    } else {
        1.0
    }
}

/// The pseudo-inverse of a symmetric positive semidefinite matrix (eigendecomposition,
/// directions below [`RANK_TOL`] dropped).
pub fn pseudo_inverse(s: &DMatrix<f64>) -> DMatrix<f64> {
    let e = sym_eigen(s);
    let top = e.values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let cut = RANK_TOL * top.max(f64::MIN_POSITIVE);
    let scaled = DMatrix::from_fn(s.nrows(), s.ncols(), |i, j| {
        let l = e.values[j];
        if l > cut { e.vectors[(i, j)] / l } else { 0.0 }
    });
    &scaled * e.vectors.transpose()
}

impl KfacMetric {
    /// Factorize per-layer factors `a`, `g` (undamped) with damping λ.
    pub fn new(
        shapes: Vec<LayerShape>,
        a: Vec<DMatrix<f64>>,
        g: Vec<DMatrix<f64>>,
        damping: f64,
        mode: KfacDamping,
    ) -> Self {
        let n = shapes.iter().map(|s| s.len()).sum();
        let jobs: Vec<_> = shapes.into_iter().zip(a.into_iter().zip(g)).collect();
        // Every layer's two factorizations are independent: all of them side by side on the
        // pool (a Cholesky of order 1000 gains nothing from a second thread, two of them
        // side by side gain 2×).
        let layers = crate::gemm::on_pool(|| {
            use rayon::prelude::*;
            jobs.into_par_iter()
                .map(|(shape, (a, g))| factorize_layer(shape, a, g, damping, mode))
                .collect()
        });
        KfacMetric { n, damping, layers }
    }

    /// The undamped factors (A, G) of every layer.
    pub fn factors(&self) -> Vec<(&DMatrix<f64>, &DMatrix<f64>)> {
        self.layers.iter().map(|l| (&l.a, &l.g)).collect()
    }
}

/// Factorize one layer's damped factors.
fn factorize_layer(
    shape: LayerShape,
    a: DMatrix<f64>,
    g: DMatrix<f64>,
    damping: f64,
    mode: KfacDamping,
) -> KfacLayer {
    let inv = match mode {
        KfacDamping::Factored => {
            let (gamma_a, gamma_g) = factored_shifts(&a, &g, damping);
            let (a_inv, g_inv) = rayon::join(
                || ShiftedInverse::new(&a, gamma_a),
                || ShiftedInverse::new(&g, gamma_g),
            );
            LayerInverse::Factored {
                a_inv,
                g_inv,
                gamma_a,
                gamma_g,
            }
        }
        KfacDamping::Exact => {
            let (ea, eg) = rayon::join(|| sym_eigen(&a), || sym_eigen(&g));
            LayerInverse::Eigen { ea, eg }
        }
    };
    KfacLayer { shape, a, g, inv }
}

/// y ← (Aℓ ⊗ Gℓ + damping)⁻¹ y for one layer's block y = vec(V).
fn solve_layer(l: &KfacLayer, damping: f64, y: &mut [f64]) {
    let (dout, din) = (l.shape.d_out, l.shape.d_in + 1);
    match &l.inv {
        LayerInverse::Factored { a_inv, g_inv, .. } => {
            // Y = G⁻¹ V A⁻¹: a left solve with G, a right solve with A.
            g_inv.apply_slice(y, din);
            a_inv.apply_right_slice(y, dout);
        }
        LayerInverse::Eigen { ea, eg } => {
            let v = Op::col_major(y, dout, din);
            let mut t = DMatrix::zeros(dout, din);
            gemm(1.0, Op::t(&eg.vectors), v, 0.0, &mut t);
            let mut c = DMatrix::zeros(dout, din);
            gemm(1.0, Op::n(&t), Op::n(&ea.vectors), 0.0, &mut c);
            let top = eg.values.amax() * ea.values.amax() + damping;
            let cut = RANK_TOL * top.max(f64::MIN_POSITIVE);
            for j in 0..din {
                for i in 0..dout {
                    let d = eg.values[i] * ea.values[j] + damping;
                    c[(i, j)] = if d > cut { c[(i, j)] / d } else { 0.0 };
                }
            }
            gemm(1.0, Op::n(&eg.vectors), Op::n(&c), 0.0, &mut t);
            let mut out = DMatrix::zeros(dout, din);
            gemm(1.0, Op::n(&t), Op::t(&ea.vectors), 0.0, &mut out);
            y.copy_from_slice(out.as_slice());
        }
    }
}

/// y ← ((A + γ_A I) ⊗ (G + γ_G I))⁻¹ y for one layer with factored damping, factorizing A
/// and G in their own storage (side by side). `None` when a damped factor is not positive
/// definite (the caller then takes the path that keeps the factors for a pseudo-inverse).
fn solve_layer_consuming(
    a: DMatrix<f64>,
    g: DMatrix<f64>,
    damping: f64,
    shape: &LayerShape,
    y: &mut [f64],
) -> Option<()> {
    let (gamma_a, gamma_g) = factored_shifts(&a, &g, damping);
    let (fa, fg) = rayon::join(
        || SpdFactor::from_owned_shifted(a, gamma_a),
        || SpdFactor::from_owned_shifted(g, gamma_g),
    );
    let (fa, fg) = (fa?, fg?);
    fg.solve_slice(y, shape.d_in + 1);
    fa.solve_right_slice(y, shape.d_out);
    Some(())
}

/// ⟨X, Y⟩ = Σ xᵢⱼ yᵢⱼ.
fn frob_dot(x: &DMatrix<f64>, y: &DMatrix<f64>) -> f64 {
    x.iter().zip(y.iter()).map(|(a, b)| a * b).sum()
}

impl Factorized for KfacMetric {
    fn dim(&self) -> usize {
        self.n
    }
    fn damping(&self) -> f64 {
        self.damping
    }
    fn solve(&self, grad: &DVector<f64>) -> DVector<f64> {
        // Solved in place on a copy of the gradient, every layer's block as its own task.
        let mut x = grad.clone();
        let blocks = layer_blocks(x.as_mut_slice(), self.layers.iter().map(|l| l.shape.len()));
        crate::gemm::on_pool(|| {
            use rayon::prelude::*;
            self.layers
                .par_iter()
                .zip(blocks)
                .for_each(|(l, y)| solve_layer(l, self.damping, y))
        });
        x
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        let mut total = 0.0;
        for l in &self.layers {
            let s = &l.shape;
            let vb = DMatrix::from_column_slice(
                s.d_out,
                s.d_in + 1,
                &v.as_slice()[s.offset..s.offset + s.len()],
            );
            let (ga, gg, extra) = match &l.inv {
                LayerInverse::Factored {
                    gamma_a, gamma_g, ..
                } => (*gamma_a, *gamma_g, 0.0),
                LayerInverse::Eigen { .. } => (0.0, 0.0, self.damping),
            };
            // (G + γ_G I) V (A + γ_A I), the products through crate::gemm.
            let mut gv = &vb * gg;
            gemm(1.0, Op::n(&l.g), Op::n(&vb), 1.0, &mut gv);
            let mut gva = &gv * ga;
            gemm(1.0, Op::n(&gv), Op::n(&l.a), 1.0, &mut gva);
            total += frob_dot(&vb, &gva) + extra * vb.norm_squared();
        }
        total
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        if self.n > DENSE_LIMIT {
            return None;
        }
        let mut out = DMatrix::zeros(self.n, self.n);
        for l in &self.layers {
            let k = l.a.kronecker(&l.g);
            let o = l.shape.offset;
            out.view_mut((o, o), (k.nrows(), k.ncols())).copy_from(&k);
        }
        Some(out)
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        if self.n > 10_000_000 {
            return None;
        }
        let mut v = Vec::with_capacity(self.n);
        for l in &self.layers {
            let (ea, eg) = match &l.inv {
                LayerInverse::Eigen { ea, eg } => (ea.values.clone(), eg.values.clone()),
                LayerInverse::Factored { .. } => (sym_eigen(&l.a).values, sym_eigen(&l.g).values),
            };
            for a in ea.iter() {
                for g in eg.iter() {
                    v.push(a * g);
                }
            }
        }
        v.sort_by(f64::total_cmp);
        Some(DVector::from_vec(v))
    }
    /// κ of the matrix K-FAC solves with: per layer (A + γ_A)⊗(G + γ_G) under factored damping
    /// (eigenvalues (a + γ_A)(g + γ_G)), A⊗G + λI under exact damping.
    fn damped_condition_number(&self) -> Option<f64> {
        if self.n > 10_000_000 {
            return None;
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for l in &self.layers {
            let (ea, eg, ga, gg, extra) = match &l.inv {
                LayerInverse::Eigen { ea, eg } => {
                    (ea.values.clone(), eg.values.clone(), 0.0, 0.0, self.damping)
                }
                LayerInverse::Factored {
                    gamma_a, gamma_g, ..
                } => (
                    sym_eigen(&l.a).values,
                    sym_eigen(&l.g).values,
                    *gamma_a,
                    *gamma_g,
                    0.0,
                ),
            };
            for a in ea.iter() {
                for g in eg.iter() {
                    let e = (a + ga) * (g + gg) + extra;
                    lo = lo.min(e);
                    hi = hi.max(e);
                }
            }
        }
        if lo
            .partial_cmp(&hi)
            .is_none_or(|o| o == std::cmp::Ordering::Greater)
        {
            return None;
        }
        Some(if lo <= 0.0 { f64::INFINITY } else { hi / lo })
    }
    fn memory_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                let (da, dg) = (l.a.nrows(), l.g.nrows());
                // factors + their inverses (or eigenvectors and eigenvalues)
                8 * (2 * da * da + 2 * dg * dg + da + dg)
            })
            .sum()
    }
}

/// One K-FAC natural-gradient evaluation: one forward pass for L, ∇L and the factors,
/// the factor inverses, and the preconditioned gradient (A ⊗ G + damping)⁻¹∇L.
/// Returns (L, ∇L, natural gradient).
pub fn natural_gradient(
    model: &dyn DenseLayers,
    theta: &[f64],
    provider: &KfacProvider,
    damping: f64,
) -> Result<(f64, DVector<f64>, DVector<f64>)> {
    let f = model.kfac_factors(
        theta,
        provider.targets,
        provider.samples,
        provider.seed,
        true,
    )?;
    let (loss, grad) = f
        .loss_grad
        .ok_or_else(|| Error::Numerical("K-FAC factors returned no gradient".into()))?;
    let grad = DVector::from_vec(grad);
    let shapes = model.layers();
    if provider.damping_mode == KfacDamping::Factored && damping > 0.0 {
        // The metric is not kept: factorize the factors in place, each layer as its own
        // task (its two factorizations side by side, then its solves).
        let mut nat = grad.clone();
        let blocks = layer_blocks(nat.as_mut_slice(), shapes.iter().map(|s| s.len()));
        let ok = crate::gemm::on_pool(|| {
            use rayon::prelude::*;
            (shapes.par_iter(), f.a, f.g, blocks)
                .into_par_iter()
                .map(|(shape, a, g, y)| solve_layer_consuming(a, g, damping, shape, y).is_some())
                .reduce(|| true, |x, y| x && y)
        });
        if ok {
            return Ok((loss, grad, nat));
        }
        // A damped factor was not positive definite (the factors are gone): again, keeping
        // them for the pseudo-inverse.
        let f = model.kfac_factors(
            theta,
            provider.targets,
            provider.samples,
            provider.seed,
            false,
        )?;
        let nat = KfacMetric::new(shapes, f.a, f.g, damping, provider.damping_mode).solve(&grad);
        return Ok((loss, grad, nat));
    }
    let nat = KfacMetric::new(shapes, f.a, f.g, damping, provider.damping_mode).solve(&grad);
    Ok((loss, grad, nat))
}
