//! The flow kernel of the two-component mixture: ∇L and I(θ) fused, and their exact
//! θ-derivatives by dual numbers.
//!
//! **Derivatives through the quadrature.** Every expectation is a weighted sum over rule nodes.
//! * The loss gradient g(θ) = −E_{θ*}[s(x; θ)] integrates against the *target*: its density
//!   does not depend on θ, so the rule (built at the current θ, which only places the panels)
//!   is held fixed and the integrand s(x; θ) is differentiated with dual numbers.
//! * The Fisher matrix G(θ) = E_θ[s sᵀ] integrates against p(·|θ) itself:
//!   - Gauss–Hermite (`--nodes K`): the nodes are xₖⱼ = μₖ + √2σzⱼ with θ-free weights, so
//!     the nodes are carried as dual numbers: this is the exact derivative of the discrete sum
//!     the right-hand side evaluates.
//!   - composite Gauss–Legendre: the panel edges move with θ in a piecewise way (their count
//!     is an integer), so instead the rule is frozen at the current θ₀ and the density moves
//!     through the weight ratio, E_θ(h) = E_{θ₀}(h(x) p(x|θ)/p(x|θ₀)). Differentiating that
//!     at θ = θ₀ gives the exact derivative of the integral, which the composite rule resolves
//!     to ≈1e-13; the evaluated f differs from the integral by that much, so exact and
//!     finite-difference Jacobians agree to the finite-difference error.
//!
//! **Fast path.** For the population loss under Gauss–Hermite quadrature the responsibilities
//! need only e^{b−a} with b − a = Δ(2x − μ₁ − μ₂)/(2σ²) + ln((1−w)/w), Δ = μ₂ − μ₁, which is
//! *linear* in x. On every node set x = m + √2σzⱼ (m ∈ {μ₁, μ₂, μ₁*, μ₂*}) it factors as
//! e^{αₘ}·Eⱼ with the shared Eⱼ = e^{√2Δzⱼ/σ}, and the symmetric nodes give E₋ⱼ = 1/Eⱼ. So one
//! right-hand side (Fisher on two node sets + gradient on two node sets, 4·K node evaluations)
//! costs K/2 exponentials instead of 4K and one division per two nodes, with no allocation.
//! Used when every exponent stays below 350 in magnitude (no overflow, also for products of
//! two); otherwise the log-sum-exp path is taken. The node sums and the exponentials run in
//! AVX2/FMA lanes when the CPU has them (runtime detection; scalar code otherwise).
//!
//! **Composite fast path.** [`MixtureKernel::composite_grad_fisher`] evaluates the Fisher and
//! the gradient sums on one node set, the union of the panels [`Rule::build`] gives each (same
//! grading, same largest panel), sharing the model's terms: four exponentials per node in one
//! SIMD pass without allocation ([`super::mixture_composite`]).

use super::mixture::{GaussianMixture, LossKind};
use crate::flow::FlowKernel;
use crate::quadrature::{Mixture2, Rule, Scheme};
use num_dual::{Dual64, DualNum};
use std::f64::consts::PI;

/// Largest K for the allocation-free fast path (stack buffers).
const FAST_MAX_NODES: usize = 256;

/// log p(x|θ) and the scores for any dual-number type (log-sum-exp, as
/// [`super::mixture::log_density_scores`]).
#[inline]
pub fn log_density_scores_t<T: DualNum<Primitive = f64> + Copy>(
    x: T,
    mu: [T; 2],
    sigma: f64,
    w: f64,
) -> (T, [T; 2]) {
    let inv_s2 = 1.0 / (sigma * sigma);
    let d1 = x - mu[0];
    let d2 = x - mu[1];
    let a = d1 * d1 * (-0.5 * inv_s2) + w.ln();
    let b = d2 * d2 * (-0.5 * inv_s2) + (1.0 - w).ln();
    // both responsibilities directly (never as 1 − r), as in the f64 version
    let (lse, r1, r2) = if a.re() >= b.re() {
        let e = (b - a).exp();
        let inv = (e + 1.0).recip();
        (a + e.ln_1p(), inv, e * inv)
    } else {
        let e = (a - b).exp();
        let inv = (e + 1.0).recip();
        (b + e.ln_1p(), e * inv, inv)
    };
    let logp = lse - (sigma * (2.0 * PI).sqrt()).ln();
    (logp, [r1 * d1 * inv_s2, r2 * d2 * inv_s2])
}

/// Precomputed symmetric Gauss–Hermite nodes for the fast path, laid out for 4-lane loops:
/// `z = [z⁺₀ … z⁺ₕ₋₁, −z⁺₀ … −z⁺ₕ₋₁, (0 if K odd), zero-weight padding]`.
#[derive(Clone, Debug)]
struct FastGh {
    /// Number of positive nodes h = ⌊K/2⌋.
    half: usize,
    /// Nodes zⱼ (padded length, a multiple of 8).
    z: Vec<f64>,
    /// Weights ωⱼ/√π (0 on padding).
    w: Vec<f64>,
    zmax: f64,
}

impl FastGh {
    fn new(k: usize) -> Option<FastGh> {
        if k == 0 || k > FAST_MAX_NODES {
            return None;
        }
        // Standard nodes: the rule of N(0, ½) is x = z, weight ½·ω/√π per component.
        let unit = Mixture2 {
            mu: [0.0, 0.0],
            sigma: std::f64::consts::FRAC_1_SQRT_2,
            w: 0.5,
        };
        let rule = Rule::build(&Scheme::GaussHermite { nodes: k }, &unit, &unit);
        let mut pairs: Vec<(f64, f64)> = rule.x[..k]
            .iter()
            .zip(&rule.w[..k])
            .map(|(&z, &w)| (z, 2.0 * w))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = k / 2;
        let padded = k.div_ceil(8) * 8;
        let mut z = vec![0.0; padded];
        let mut w = vec![0.0; padded];
        for j in 0..half {
            // symmetrize: average the mirrored pair
            let (zl, wl) = pairs[j];
            let (zu, wu) = pairs[k - 1 - j];
            z[j] = 0.5 * (zu - zl);
            z[half + j] = -z[j];
            w[j] = 0.5 * (wu + wl);
            w[half + j] = w[j];
        }
        if k % 2 == 1 {
            w[2 * half] = pairs[half].1;
        }
        let zmax = z.iter().fold(0.0, |m: f64, &v| m.max(v.abs()));
        Some(FastGh { half, z, w, zmax })
    }
}

/// uₗ = a·eₗ and r₁ = 1/(1 + uₗ) for four nodes with two divisions: the reciprocals of a pair
/// come from the reciprocal of their product, 1/d₀ = d₁/(d₀d₁) (safe because every
/// |log uₗ| < 350 on the fast path, so d₀d₁ stays finite).
#[inline(always)]
fn responsibilities(a: f64, e: &[f64]) -> ([f64; 4], [f64; 4]) {
    let u = [a * e[0], a * e[1], a * e[2], a * e[3]];
    let d = [1.0 + u[0], 1.0 + u[1], 1.0 + u[2], 1.0 + u[3]];
    let p = [1.0 / (d[0] * d[1]), 1.0 / (d[2] * d[3])];
    (u, [d[1] * p[0], d[0] * p[0], d[3] * p[1], d[2] * p[1]])
}

/// e[j] = e^{βzⱼ}, e[h+j] = 1/e[j] (vectorized exponential where the CPU has AVX2 + FMA).
fn fill_exponentials(beta: f64, z: &[f64], half: usize, e: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        unsafe { fill_exponentials_avx2(beta, z, half, e) };
        return;
    }
    for j in 0..half {
        let v = (beta * z[j]).exp();
        e[j] = v;
        e[half + j] = 1.0 / v;
    }
}

/// e^x for four lanes, |x| < 700: the composite rule's vector exponential
/// ([`super::mixture_composite::exp_avx2`]: Cody–Waite range reduction, degree-12 Taylor
/// polynomial, 2^k in the exponent bits; within 2 ulp of libm, tested there).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp4(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    super::mixture_composite::exp_avx2(x)
}

/// Fill e[j] = e^{βzⱼ} and e[h+j] = 1/e[j] for the h positive nodes (AVX2 + FMA).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fill_exponentials_avx2(beta: f64, z: &[f64], half: usize, e: &mut [f64]) {
    use std::arch::x86_64::*;
    let vb = _mm256_set1_pd(beta);
    let one = _mm256_set1_pd(1.0);
    let full = half / 4 * 4;
    for j in (0..full).step_by(4) {
        // SAFETY: j + 4 ≤ half ≤ z.len(), and e has room for 2·half values.
        unsafe {
            let v = exp4(_mm256_mul_pd(vb, _mm256_loadu_pd(z.as_ptr().add(j))));
            _mm256_storeu_pd(e.as_mut_ptr().add(j), v);
            _mm256_storeu_pd(e.as_mut_ptr().add(half + j), _mm256_div_pd(one, v));
        }
    }
    for j in full..half {
        let v = (beta * z[j]).exp();
        e[j] = v;
        e[half + j] = 1.0 / v;
    }
}

/// The four node sets of one evaluation: scale factors e^{αₘ} and offsets (m − μ₁, m − μ₂) for
/// m = μ₁, μ₂ (Fisher) and μ₁*, μ₂* (gradient).
struct Sets {
    a: [f64; 4],
    o: [[f64; 2]; 4],
    s: f64,
}

type SetSums = ([f64; 3], [f64; 3], [f64; 2], [f64; 2]);

impl Sets {
    #[inline(always)]
    fn eval_inline(&self, z: &[f64], e: &[f64], w: &[f64]) -> SetSums {
        let (a, o, s) = (&self.a, &self.o, self.s);
        (
            fisher_set(a[0], o[0][0], o[0][1], s, z, e, w),
            fisher_set(a[1], o[1][0], o[1][1], s, z, e, w),
            grad_set(a[2], o[2][0], o[2][1], s, z, e, w),
            grad_set(a[3], o[3][0], o[3][1], s, z, e, w),
        )
    }

    /// The same sums with AVX2 + FMA intrinsics (4 lanes), chosen at run time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn eval_avx2(&self, z: &[f64], e: &[f64], w: &[f64]) -> SetSums {
        use std::arch::x86_64::*;
        let (a, o, s) = (&self.a, &self.o, self.s);
        let one = _mm256_set1_pd(1.0);
        let vs = _mm256_set1_pd(s);
        let hsum = |v: __m256d| -> f64 {
            let mut t = [0.0f64; 4];
            // SAFETY: `t` holds four f64.
            unsafe { _mm256_storeu_pd(t.as_mut_ptr(), v) };
            (t[0] + t[1]) + (t[2] + t[3])
        };
        let mut fisher = [[0.0f64; 3]; 2];
        let mut grad = [[0.0f64; 2]; 2];
        for k in 0..4 {
            let va = _mm256_set1_pd(a[k]);
            let vo1 = _mm256_set1_pd(o[k][0]);
            let vo2 = _mm256_set1_pd(o[k][1]);
            let mut acc = [_mm256_setzero_pd(); 3];
            let mut add = |vz: __m256d, vw: __m256d, u: __m256d, r1: __m256d| {
                let r2 = _mm256_mul_pd(u, r1);
                let sz = _mm256_mul_pd(vs, vz);
                let q1 = _mm256_mul_pd(r1, _mm256_add_pd(vo1, sz));
                let q2 = _mm256_mul_pd(r2, _mm256_add_pd(vo2, sz));
                if k < 2 {
                    let wq2 = _mm256_mul_pd(vw, q2);
                    acc[0] = _mm256_fmadd_pd(_mm256_mul_pd(vw, q1), q1, acc[0]);
                    acc[1] = _mm256_fmadd_pd(q1, wq2, acc[1]);
                    acc[2] = _mm256_fmadd_pd(q2, wq2, acc[2]);
                } else {
                    acc[0] = _mm256_fmadd_pd(vw, q1, acc[0]);
                    acc[1] = _mm256_fmadd_pd(vw, q2, acc[1]);
                }
            };
            // eight nodes per iteration, one division: 1/d₀ = d₁/(d₀d₁), 1/d₁ = d₀/(d₀d₁)
            // (finite because |log u| < 350 on the fast path)
            for ((zc, ec), wc) in z
                .chunks_exact(8)
                .zip(e.chunks_exact(8))
                .zip(w.chunks_exact(8))
            {
                // SAFETY: each chunk holds exactly eight f64.
                let (z0, z1, e0, e1, w0, w1) = unsafe {
                    (
                        _mm256_loadu_pd(zc.as_ptr()),
                        _mm256_loadu_pd(zc.as_ptr().add(4)),
                        _mm256_loadu_pd(ec.as_ptr()),
                        _mm256_loadu_pd(ec.as_ptr().add(4)),
                        _mm256_loadu_pd(wc.as_ptr()),
                        _mm256_loadu_pd(wc.as_ptr().add(4)),
                    )
                };
                let u0 = _mm256_mul_pd(va, e0);
                let u1 = _mm256_mul_pd(va, e1);
                let d0 = _mm256_add_pd(one, u0);
                let d1 = _mm256_add_pd(one, u1);
                let inv = _mm256_div_pd(one, _mm256_mul_pd(d0, d1));
                add(z0, w0, u0, _mm256_mul_pd(d1, inv));
                add(z1, w1, u1, _mm256_mul_pd(d0, inv));
            }
            if k < 2 {
                fisher[k] = [hsum(acc[0]), hsum(acc[1]), hsum(acc[2])];
            } else {
                grad[k - 2] = [hsum(acc[0]), hsum(acc[1])];
            }
        }
        (fisher[0], fisher[1], grad[0], grad[1])
    }

    fn eval(&self, z: &[f64], e: &[f64], w: &[f64]) -> SetSums {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features `eval_avx2` is compiled for (checked above).
            return unsafe { self.eval_avx2(z, e, w) };
        }
        self.eval_inline(z, e, w)
    }
}

/// Σⱼ wⱼ·(q₁², q₁q₂, q₂²) over one node set, qₖ = rₖ(oₖ + s·zⱼ), r₁ = 1/(1 + a·eⱼ), r₂ = a·eⱼ·r₁
/// (4 independent lanes, so the loop vectorizes).
#[inline(always)]
fn fisher_set(a: f64, o1: f64, o2: f64, s: f64, z: &[f64], e: &[f64], w: &[f64]) -> [f64; 3] {
    let mut acc = [[0.0f64; 4]; 3];
    for ((zc, ec), wc) in z
        .chunks_exact(4)
        .zip(e.chunks_exact(4))
        .zip(w.chunks_exact(4))
    {
        let (u, r) = responsibilities(a, ec);
        for l in 0..4 {
            let r1 = r[l];
            let r2 = u[l] * r1;
            let sz = s * zc[l];
            let q1 = r1 * (o1 + sz);
            let q2 = r2 * (o2 + sz);
            let wq2 = wc[l] * q2;
            acc[0][l] += wc[l] * q1 * q1;
            acc[1][l] += q1 * wq2;
            acc[2][l] += q2 * wq2;
        }
    }
    acc.map(|v| (v[0] + v[1]) + (v[2] + v[3]))
}

/// Σⱼ wⱼ·(q₁, q₂) over one node set (see [`fisher_set`]).
#[inline(always)]
fn grad_set(a: f64, o1: f64, o2: f64, s: f64, z: &[f64], e: &[f64], w: &[f64]) -> [f64; 2] {
    let mut acc = [[0.0f64; 4]; 2];
    for ((zc, ec), wc) in z
        .chunks_exact(4)
        .zip(e.chunks_exact(4))
        .zip(w.chunks_exact(4))
    {
        let (u, r) = responsibilities(a, ec);
        for l in 0..4 {
            let r1 = r[l];
            let r2 = u[l] * r1;
            let sz = s * zc[l];
            acc[0][l] += wc[l] * r1 * (o1 + sz);
            acc[1][l] += wc[l] * r2 * (o2 + sz);
        }
    }
    acc.map(|v| (v[0] + v[1]) + (v[2] + v[3]))
}

/// The mixture's [`FlowKernel`].
#[derive(Clone, Debug)]
pub struct MixtureKernel {
    model: GaussianMixture,
    fast: Option<FastGh>,
    composite: Option<FastComposite>,
}

/// Gauss–Legendre nodes and the panel parameters of the composite scheme, for its fast path.
#[derive(Clone, Debug)]
struct FastComposite {
    gl: super::mixture_composite::GlTable,
    max_panel: f64,
    half_width: f64,
    /// σ, w, the target and the logarithms of the weights (θ is set per call).
    params: super::mixture_composite::Params,
}

impl MixtureKernel {
    /// The kernel of `model` (the fast path is prepared when it applies).
    pub fn new(model: &GaussianMixture) -> Self {
        let fast = match (&model.loss_kind, model.scheme) {
            (LossKind::Population, Scheme::GaussHermite { nodes }) => FastGh::new(nodes),
            _ => None,
        };
        let composite = match (&model.loss_kind, model.scheme) {
            (
                LossKind::Population,
                Scheme::Composite {
                    nodes_per_panel,
                    max_panel,
                    half_width,
                },
            ) => std::num::NonZeroUsize::new(nodes_per_panel).map(|n| FastComposite {
                gl: super::mixture_composite::GlTable::new(
                    gauss_quad::legendre::GaussLegendre::new(n).as_node_weight_pairs(),
                ),
                max_panel,
                half_width,
                params: super::mixture_composite::Params::new(
                    [0.0; 2],
                    model.target,
                    model.sigma,
                    model.w,
                ),
            }),
            _ => None,
        };
        MixtureKernel {
            model: model.clone(),
            fast,
            composite,
        }
    }

    /// g and (G₁₁, G₁₂, G₂₂) under the composite rule with shared work: on one node set (the
    /// union of the Fisher rule's and the gradient rule's panels of [`Rule::build`]) the model's
    /// two component terms give the Fisher weights and the responsibilities (two
    /// exponentials: e^{max} and e^{−|b−a|}), the target's density two more. As accurate as the
    /// two rules (tested against the refined reference); `None` unless the scheme is composite
    /// and the loss is the population one.
    pub fn composite_grad_fisher(&self, theta: &[f64]) -> Option<([f64; 2], [f64; 3])> {
        let c = self.composite.as_ref()?;
        let p = c.params.at([theta[0], theta[1]]);
        Some(super::mixture_composite::grad_fisher(
            &c.gl,
            c.max_panel,
            c.half_width,
            &p,
        ))
    }

    /// True if the shared-exponential path is available for this model.
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// g and (G₁₁, G₁₂, G₂₂) by the shared-exponential path, or `None` when an exponent could
    /// overflow (then the caller uses the log-sum-exp path).
    #[inline]
    pub fn fast_grad_fisher(&self, theta: &[f64]) -> Option<([f64; 2], [f64; 3])> {
        let gh = self.fast.as_ref()?;
        let m = &self.model;
        let (mu1, mu2) = (theta[0], theta[1]);
        let sigma = m.sigma;
        let inv_s2 = 1.0 / (sigma * sigma);
        let delta = mu2 - mu1;
        let beta = std::f64::consts::SQRT_2 * delta / sigma;
        let c0 = ((1.0 - m.w) / m.w).ln();
        let alpha = |c: f64| delta * (2.0 * c - mu1 - mu2) * 0.5 * inv_s2 + c0;
        let centers = [mu1, mu2, m.target[0], m.target[1]];
        let bz = beta.abs() * gh.zmax;
        if centers.iter().any(|&c| alpha(c).abs() + bz > 350.0) || !bz.is_finite() {
            return None;
        }
        let len = gh.z.len();
        let mut e = [1.0f64; FAST_MAX_NODES + 8];
        let e = &mut e[..len];
        fill_exponentials(beta, &gh.z, gh.half, e);
        let s = std::f64::consts::SQRT_2 * sigma;
        let (z, w) = (&gh.z[..], &gh.w[..]);
        let (w1, w2) = (m.w, 1.0 - m.w);
        let (c1, c2) = (m.target[0], m.target[1]);
        let sets = Sets {
            a: [
                alpha(mu1).exp(),
                alpha(mu2).exp(),
                alpha(c1).exp(),
                alpha(c2).exp(),
            ],
            o: [
                [0.0, mu1 - mu2],
                [mu2 - mu1, 0.0],
                [c1 - mu1, c1 - mu2],
                [c2 - mu1, c2 - mu2],
            ],
            s,
        };
        let (f1, f2, t1, t2) = sets.eval(z, e, w);
        let i4 = inv_s2 * inv_s2;
        let fisher = [
            (w1 * f1[0] + w2 * f2[0]) * i4,
            (w1 * f1[1] + w2 * f2[1]) * i4,
            (w1 * f1[2] + w2 * f2[2]) * i4,
        ];
        let grad = [
            -(w1 * t1[0] + w2 * t2[0]) * inv_s2,
            -(w1 * t1[1] + w2 * t2[1]) * inv_s2,
        ];
        Some((grad, fisher))
    }

    /// g and (G₁₁, G₁₂, G₂₂) for any dual-number type, differentiating through the quadrature
    /// as the module docs describe. `re` is θ's real part (where the rules are built).
    pub fn grad_fisher_t<T: DualNum<Primitive = f64> + Copy>(
        &self,
        theta: [T; 2],
    ) -> ([T; 2], [T; 3]) {
        let m = &self.model;
        let re = [theta[0].re(), theta[1].re()];
        let zero = T::from(0.0);
        // Gradient: −E_target[s(x; θ)] (or the sample mean).
        let mut g = [zero, zero];
        let mut add_grad = |wt: f64, x: f64| {
            let (_, s) = log_density_scores_t(T::from(x), theta, m.sigma, m.w);
            g[0] -= s[0] * wt;
            g[1] -= s[1] * wt;
        };
        match &m.loss_kind {
            LossKind::Population => {
                let rule = Rule::build(&m.scheme, &m.density(&m.target), &m.density(&re));
                for (&x, &wt) in rule.x.iter().zip(&rule.w) {
                    add_grad(wt, x);
                }
            }
            LossKind::Empirical { samples, .. } => {
                let wt = 1.0 / samples.len().max(1) as f64;
                for &x in samples {
                    add_grad(wt, x);
                }
            }
        }
        // Fisher: E_θ[s sᵀ].
        let p = m.density(&re);
        let rule = Rule::build(&m.scheme, &p, &p);
        let mut f = [zero, zero, zero];
        let gh = matches!(m.scheme, Scheme::GaussHermite { .. });
        let k = rule.len() / 2;
        for (i, (&x, &wt)) in rule.x.iter().zip(&rule.w).enumerate() {
            let (xt, wtt) = if gh {
                // node xₖⱼ = μₖ + √2σzⱼ moves with μₖ
                let c = if i < k { 0 } else { 1 };
                (theta[c] + (x - re[c]), T::from(wt))
            } else {
                // frozen rule, density ratio p(x|θ)/p(x|θ₀)
                let (lp, _) = log_density_scores_t(T::from(x), theta, m.sigma, m.w);
                let (lp0, _) = super::mixture::log_density_scores(x, re, m.sigma, m.w);
                (T::from(x), (lp - lp0).exp() * wt)
            };
            let (_, s) = log_density_scores_t(xt, theta, m.sigma, m.w);
            f[0] += wtt * s[0] * s[0];
            f[1] += wtt * s[0] * s[1];
            f[2] += wtt * s[1] * s[1];
        }
        (g, f)
    }
}

impl FlowKernel for MixtureKernel {
    fn dim(&self) -> usize {
        2
    }

    /// The population loss on the composite fast path's node set (None otherwise).
    fn loss(&self, theta: &[f64]) -> Option<f64> {
        let c = self.composite.as_ref()?;
        let [t0, t1] = theta else { return None };
        let p = c.params.at([*t0, *t1]);
        Some(super::mixture_composite::cross_entropy(
            &c.gl,
            c.max_panel,
            c.half_width,
            &p,
        ))
    }

    fn grad_fisher(&self, theta: &[f64], grad: &mut [f64], fisher: &mut [f64]) {
        let (g, f) = match self
            .fast_grad_fisher(theta)
            .or_else(|| self.composite_grad_fisher(theta))
        {
            Some(v) => v,
            None => self.grad_fisher_t([theta[0], theta[1]]),
        };
        grad[..2].copy_from_slice(&g);
        fisher[0] = f[0];
        fisher[1] = f[1];
        fisher[2] = f[1];
        fisher[3] = f[2];
    }

    fn grad_fisher_derivs(
        &self,
        theta: &[f64],
        grad: &mut [f64],
        fisher: &mut [f64],
        hess: &mut [f64],
        dfisher: &mut [f64],
    ) {
        for j in 0..2 {
            let mut t = [Dual64::from_re(theta[0]), Dual64::from_re(theta[1])];
            t[j] = t[j].derivative();
            let (g, f) = self.grad_fisher_t(t);
            if j == 0 {
                grad[0] = g[0].re;
                grad[1] = g[1].re;
                fisher[0] = f[0].re;
                fisher[1] = f[1].re;
                fisher[2] = f[1].re;
                fisher[3] = f[2].re;
            }
            hess[j] = g[0].eps;
            hess[2 + j] = g[1].eps;
            let d = &mut dfisher[4 * j..4 * j + 4];
            d[0] = f[0].eps;
            d[1] = f[1].eps;
            d[2] = f[1].eps;
            d[3] = f[2].eps;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StatModel;

    fn model(scheme: Scheme, w: f64) -> GaussianMixture {
        GaussianMixture {
            sigma: 1.0,
            w,
            target: [-1.5, 2.0],
            loss_kind: LossKind::Population,
            scheme,
        }
    }

    #[test]
    fn fast_path_matches_the_log_sum_exp_path() {
        for w in [0.5, 0.3] {
            let m = model(Scheme::GaussHermite { nodes: 64 }, w);
            let k = MixtureKernel::new(&m);
            assert!(k.has_fast_path());
            for th in [
                [0.1, 0.15],
                [-3.0, -2.5],
                [3.5, -3.0],
                [-4.0, 4.0],
                [1.0, 1.0],
            ] {
                let (g, f) = k.fast_grad_fisher(&th).expect("fast path applies");
                let mut g_ref = [0.0; 2];
                m.loss_grad(&th, &mut g_ref);
                let f_ref = m.fisher(&th);
                let scale_g = g_ref[0].abs().max(g_ref[1].abs()).max(1e-3);
                for i in 0..2 {
                    assert!(
                        (g[i] - g_ref[i]).abs() < 1e-13 * scale_g,
                        "{th:?} g {g:?} {g_ref:?}"
                    );
                }
                let scale_f = f_ref.amax();
                for (v, r) in [
                    (f[0], f_ref[(0, 0)]),
                    (f[1], f_ref[(0, 1)]),
                    (f[2], f_ref[(1, 1)]),
                ] {
                    assert!((v - r).abs() < 1e-13 * scale_f, "{th:?} {v} {r}");
                }
            }
        }
    }

    /// The fused composite kernel (one node set for the Fisher and the gradient sums) is as
    /// accurate as the two rules it replaces (the generic path's, `m` below): against the
    /// refined reference (`Scheme::refined`: twice the nodes on half the panel width, wider
    /// windows), over starts near and far from the target, separated components (Δ = 45σ),
    /// near-coincident means and both weightings, its worst Fisher error (relative to the
    /// matrix's largest entry) and worst gradient error are within 1.5× the two rules' worst
    /// and below 5e-15 and 5e-14 (measured: 2.0e-15 and 2.9e-14 against the rules' 2.1e-15 and
    /// 3.9e-14; |∇L| reaches 30 here); its loss (the records') within 1e-14 relative and 2× the
    /// generic rule's error (measured: 1.8–2.1e-15 on the three lane widths, the rule 1.9e-15).
    #[test]
    fn composite_kernel_matches_the_refined_reference() {
        let (mut worst, mut rules) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
        let (mut worst_l, mut rules_l) = (0.0f64, 0.0f64);
        for w in [0.5, 0.3] {
            for target in [[-1.5, 2.0], [0.4, 0.6], [-12.0, 15.0]] {
                let m = GaussianMixture {
                    target,
                    ..model(Scheme::default(), w)
                };
                let r = GaussianMixture {
                    scheme: Scheme::default().refined(),
                    ..m.clone()
                };
                let k = MixtureKernel::new(&m);
                for th in [
                    [0.1, 0.15],
                    [-3.0, -2.5],
                    [3.5, -3.0],
                    [-4.0, 4.0],
                    [target[0], target[1]],
                    [target[1] + 0.3, target[0] - 0.2],
                    [-20.0, 25.0],
                    [0.3, 0.3 + 1e-6],
                    [7.0, 9.0],
                ] {
                    let (g, f) = k.composite_grad_fisher(&th).expect("composite path");
                    let mut g_ref = [0.0; 2];
                    r.loss_grad(&th, &mut g_ref);
                    let f_ref = r.fisher(&th);
                    let mut g_sep = [0.0; 2];
                    m.loss_grad(&th, &mut g_sep);
                    let f_sep = m.fisher(&th);
                    let scale_f = f_ref.amax();
                    let (mut ef, mut eg, mut sf, mut sg) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                    for (v, sep, want) in [
                        (f[0], f_sep[(0, 0)], f_ref[(0, 0)]),
                        (f[1], f_sep[(0, 1)], f_ref[(0, 1)]),
                        (f[2], f_sep[(1, 1)], f_ref[(1, 1)]),
                    ] {
                        ef = ef.max((v - want).abs() / scale_f);
                        sf = sf.max((sep - want).abs() / scale_f);
                    }
                    for i in 0..2 {
                        eg = eg.max((g[i] - g_ref[i]).abs());
                        sg = sg.max((g_sep[i] - g_ref[i]).abs());
                    }
                    worst = (worst.0.max(ef), worst.1.max(eg));
                    rules = (rules.0.max(sf), rules.1.max(sg));
                    let l_ref = r.loss(&th);
                    let rel = |l: f64| (l - l_ref).abs() / l_ref.abs().max(1.0);
                    worst_l = worst_l.max(rel(k.loss(&th).expect("composite path")));
                    rules_l = rules_l.max(rel(m.loss(&th)));
                }
            }
        }
        assert!(
            worst.0 <= 5e-15 && worst.0 <= 1.5 * rules.0,
            "Fisher: kernel {:e}, rules {:e} of the largest entry",
            worst.0,
            rules.0
        );
        assert!(
            worst.1 <= 5e-14 && worst.1 <= 1.5 * rules.1,
            "gradient: kernel {:e}, rules {:e}",
            worst.1,
            rules.1
        );
        assert!(
            worst_l <= 1e-14 && worst_l <= 2.0 * rules_l.max(1e-16),
            "loss: kernel {worst_l:e}, rules {rules_l:e}"
        );
    }

    proptest::proptest! {
        /// The fused kernel over wide random inputs (σ over three decades, means and target
        /// up to 60σ apart, any weight): finite, and equal to the generic path's two rules to
        /// 1e-12 of the Fisher matrix's largest entry and of the gradient's scale E|score|
        /// (‖∇L‖ + 1/σ), the loss to 1e-12 relative.
        #[test]
        fn composite_kernel_matches_the_generic_rules_anywhere(
            sigma_exp in -1.5f64..1.5, w in 0.02f64..0.98,
            m0 in -30.0f64..30.0, m1 in -30.0f64..30.0,
            t0 in -30.0f64..30.0, t1 in -30.0f64..30.0,
        ) {
            let sigma = 10f64.powf(sigma_exp);
            let m = GaussianMixture {
                sigma,
                w,
                target: [t0 * sigma, t1 * sigma],
                loss_kind: LossKind::Population,
                scheme: Scheme::default(),
            };
            let th = [m0 * sigma, m1 * sigma];
            let k = MixtureKernel::new(&m);
            let (g, f) = k.composite_grad_fisher(&th).expect("composite path");
            let l = k.loss(&th).expect("composite path");
            proptest::prop_assert!(g.iter().chain(&f).all(|v| v.is_finite()) && l.is_finite());
            let mut g_ref = [0.0; 2];
            let l_ref = m.loss_grad(&th, &mut g_ref);
            let f_ref = m.fisher(&th);
            let scale_f = f_ref.amax();
            for (v, want) in [(f[0], f_ref[(0, 0)]), (f[1], f_ref[(0, 1)]), (f[2], f_ref[(1, 1)])] {
                proptest::prop_assert!((v - want).abs() <= 1e-12 * scale_f, "F {f:?} {f_ref}");
            }
            let scale_g = g_ref[0].hypot(g_ref[1]) + 1.0 / sigma;
            for i in 0..2 {
                proptest::prop_assert!((g[i] - g_ref[i]).abs() <= 1e-12 * scale_g, "g {g:?} {g_ref:?}");
            }
            proptest::prop_assert!((l - l_ref).abs() <= 1e-12 * l_ref.abs().max(1.0), "L {l} {l_ref}");
        }
    }

    #[test]
    fn composite_fast_path_matches_the_log_sum_exp_path() {
        for w in [0.5, 0.3] {
            for target in [[-1.5, 2.0], [0.4, 0.4], [-30.0, 25.0]] {
                let m = GaussianMixture {
                    target,
                    ..model(Scheme::default(), w)
                };
                let k = MixtureKernel::new(&m);
                for th in [
                    [0.1, 0.15],
                    [-3.0, -2.5],
                    [3.5, -3.0],
                    [1.0, 1.0],
                    [-40.0, 45.0],
                    [0.3, 0.3 + 1e-6],
                ] {
                    let (g, f) = k
                        .composite_grad_fisher(&th)
                        .expect("composite path applies");
                    let mut g_ref = [0.0; 2];
                    m.loss_grad(&th, &mut g_ref);
                    let f_ref = m.fisher(&th);
                    let scale_g = g_ref[0].abs().max(g_ref[1].abs()).max(1e-300);
                    for i in 0..2 {
                        // the reference forms b − a from two squares (cancellation ~1e-13 at
                        // |x| ≈ 30); the fast path uses the linear form
                        assert!(
                            (g[i] - g_ref[i]).abs() <= 1e-12 * scale_g,
                            "{w} {target:?} {th:?} g {g:?} {g_ref:?}"
                        );
                    }
                    let scale_f = f_ref.amax();
                    for (v, r) in [
                        (f[0], f_ref[(0, 0)]),
                        (f[1], f_ref[(0, 1)]),
                        (f[2], f_ref[(1, 1)]),
                    ] {
                        assert!(
                            (v - r).abs() <= 1e-13 * scale_f,
                            "{w} {target:?} {th:?} {v} {r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn vector_exponential_matches_libm() {
        let z: Vec<f64> = (0..203).map(|i| -1.0 + 2.0 * i as f64 / 202.0).collect();
        for beta in [0.0, 1e-3, 0.7, 13.0, -77.0, 340.0] {
            let mut e = vec![0.0; 2 * z.len()];
            fill_exponentials(beta, &z, z.len(), &mut e);
            for (j, &zj) in z.iter().enumerate() {
                let r = (beta * zj).exp();
                assert!(
                    (e[j] - r).abs() <= 4.5e-16 * r,
                    "beta {beta} z {zj}: {} vs {r}",
                    e[j]
                );
                assert!((e[z.len() + j] - 1.0 / r).abs() <= 6.7e-16 / r);
            }
        }
    }

    #[test]
    fn dual_derivatives_match_central_differences() {
        for scheme in [Scheme::GaussHermite { nodes: 40 }, Scheme::default()] {
            let m = model(scheme, 0.4);
            let k = MixtureKernel::new(&m);
            for th in [[0.3, 0.9], [-2.0, 1.5], [2.5, -1.0]] {
                let (mut g, mut f, mut h, mut df) = ([0.0; 2], [0.0; 4], [0.0; 4], [0.0; 8]);
                k.grad_fisher_derivs(&th, &mut g, &mut f, &mut h, &mut df);
                let eps = 1e-5;
                for j in 0..2 {
                    let mut tp = th;
                    let mut tm = th;
                    tp[j] += eps;
                    tm[j] -= eps;
                    let (mut gp, mut fp, mut gm, mut fm) = ([0.0; 2], [0.0; 4], [0.0; 2], [0.0; 4]);
                    k.grad_fisher(&tp, &mut gp, &mut fp);
                    k.grad_fisher(&tm, &mut gm, &mut fm);
                    for i in 0..2 {
                        let fd = (gp[i] - gm[i]) / (2.0 * eps);
                        assert!(
                            (h[2 * i + j] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                            "{scheme:?} H"
                        );
                    }
                    for e in 0..4 {
                        let fd = (fp[e] - fm[e]) / (2.0 * eps);
                        assert!(
                            (df[4 * j + e] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                            "{scheme:?} dG"
                        );
                    }
                }
            }
        }
    }
}
