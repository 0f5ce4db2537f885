//! The seed's model: a two-component 1-D Gaussian mixture with unknown means.
//!
//! p(x | μ₁, μ₂) = w·N(x | μ₁, σ²) + (1−w)·N(x | μ₂, σ²), σ and w fixed, θ = (μ₁, μ₂).
//!
//! Loss: the population cross-entropy to a target θ* with the same σ and w,
//! L(θ) = −E_{x∼p(·|θ*)}[log p(x|θ)] (minimum at θ* and at its label swap, L* = entropy of the
//! target), or the empirical mean negative log-likelihood of n samples drawn from the target.
//!
//! Scores: s_k(x) = ∂ log p/∂μ_k = r_k(x)(x − μ_k)/σ², with responsibilities
//! r_k = w_k N_k / p computed by log-sum-exp, so no evaluation overflows or divides 0/0.
//! The same log-density is written once generically ([`log_density`], over
//! `num_dual::DualNum` — the `num_traits::Float`-like bound that dual numbers satisfy) and
//! differentiated by forward-mode dual numbers; the closed-form scores used in the hot path are
//! tested against both the dual numbers and central finite differences.

use super::StatModel;
use crate::quadrature::{Mixture2, Rule, Scheme};
use nalgebra::{DMatrix, SVector};
use num_dual::DualNum;
use rand::{RngExt, SeedableRng};
use std::f64::consts::PI;

/// Which loss the mixture minimizes.
#[derive(Clone, Debug, PartialEq)]
pub enum LossKind {
    /// Population cross-entropy to the target, by quadrature.
    Population,
    /// Mean negative log-likelihood of samples drawn from the target.
    Empirical {
        /// The samples.
        samples: Vec<f64>,
        /// The seed they were drawn with.
        seed: u64,
    },
}

/// The two-component mixture model of the seed page.
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    /// Shared standard deviation σ > 0.
    pub sigma: f64,
    /// Weight w ∈ (0, 1) of the first component.
    pub w: f64,
    /// Target parameters θ*.
    pub target: [f64; 2],
    /// Population or empirical loss.
    pub loss_kind: LossKind,
    /// Quadrature for expectations over x.
    pub scheme: Scheme,
}

/// log p(x | μ₁, μ₂) for any dual-number type, evaluated by log-sum-exp.
pub fn log_density<T: DualNum<Primitive = f64>>(x: f64, mu1: T, mu2: T, sigma: f64, w: f64) -> T {
    let inv2s2 = 0.5 / (sigma * sigma);
    let d1 = mu1 - x;
    let d2 = mu2 - x;
    let a = (d1.clone() * d1) * (-inv2s2) + w.ln();
    let b = (d2.clone() * d2) * (-inv2s2) + (1.0 - w).ln();
    let (hi, lo) = if a.re() >= b.re() { (a, b) } else { (b, a) };
    let lse = hi.clone() + (lo - hi).exp().ln_1p();
    lse - (sigma * (2.0 * PI).sqrt()).ln()
}

/// log p(x|θ) and the scores (∂/∂μ₁, ∂/∂μ₂) in closed form.
#[inline]
pub fn log_density_scores(x: f64, mu: [f64; 2], sigma: f64, w: f64) -> (f64, [f64; 2]) {
    NodeConsts::new(sigma, w).log_density_scores(x, mu)
}

/// The per-node constants of the closed forms, computed once per sum instead of per node
/// (ln w, ln(1−w), ln(σ√2π), 1/σ²; the values are the same expressions, so results are
/// bit-identical to evaluating them per node).
#[derive(Clone, Copy, Debug)]
struct NodeConsts {
    inv_s2: f64,
    lw1: f64,
    lw2: f64,
    log_norm: f64,
    w: f64,
}

impl NodeConsts {
    #[inline]
    fn new(sigma: f64, w: f64) -> Self {
        NodeConsts {
            inv_s2: 1.0 / (sigma * sigma),
            lw1: w.ln(),
            lw2: (1.0 - w).ln(),
            log_norm: (sigma * (2.0 * PI).sqrt()).ln(),
            w,
        }
    }

    /// log p(x|θ) and the scores ([`log_density_scores`]).
    #[inline]
    fn log_density_scores(&self, x: f64, mu: [f64; 2]) -> (f64, [f64; 2]) {
        let d1 = x - mu[0];
        let d2 = x - mu[1];
        let (logp, r1, r2) = self.responsibilities(d1, d2, true);
        (logp, [r1 * d1 * self.inv_s2, r2 * d2 * self.inv_s2])
    }

    /// log p(x|θ) (NaN unless `with_logp`: it costs a ln_1p) and the responsibilities
    /// (r₁, r₂) from dᵢ = x − μᵢ: log-sum-exp of the two component terms; r₁ = 1/(1+e^{b−a}),
    /// r₂ = 1/(1+e^{a−b}) each computed directly (never as 1 − r, which would lose all
    /// relative accuracy of the small one) and without overflow.
    #[inline]
    fn responsibilities(&self, d1: f64, d2: f64, with_logp: bool) -> (f64, f64, f64) {
        let a = -0.5 * d1 * d1 * self.inv_s2 + self.lw1;
        let b = -0.5 * d2 * d2 * self.inv_s2 + self.lw2;
        let (hi, e, r1, r2) = if a >= b {
            let e = (b - a).exp();
            (a, e, 1.0 / (1.0 + e), e / (1.0 + e))
        } else {
            let e = (a - b).exp();
            (b, e, e / (1.0 + e), 1.0 / (1.0 + e))
        };
        let logp = if with_logp {
            hi + e.ln_1p() - self.log_norm
        } else {
            f64::NAN
        };
        (logp, r1, r2)
    }
}

/// Per-node quantities in the chart (M, δ) = (wμ₁ + (1−w)μ₂, μ₂ − μ₁), θ = (M − (1−w)δ, M + wδ).
///
/// With y = x − M, u = δ(x − μ₁ + x − μ₂)/(2σ²) (so that r₂/r₁ = e^u (1−w)/w) and
/// Δr = r₂ − (1−w) = w(1−w)·expm1(u)/(w + (1−w)e^u):
///
/// * s_M = ∂ log p/∂M = s₁ + s₂;
/// * s_δ = ∂ log p/∂δ = −(1−w)s₁ + w s₂ = [y·Δr − δ((1−w)²r₁ + w²r₂)]/σ², which vanishes like δ
///   (Δr = O(δ)); `t` = s_δ/δ = [y·(Δr/δ) − ((1−w)²r₁ + w²r₂)]/σ² is computed with Δr/δ from
///   expm1(u)/u, so without cancellation and finite on the line (there t = w(1−w)(y² − σ²)/σ⁴).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartScores {
    /// log p(x|θ).
    pub logp: f64,
    /// The θ-scores (s₁, s₂).
    pub s: [f64; 2],
    /// s_M.
    pub s_m: f64,
    /// t = s_δ/δ (its limit on the line δ = 0).
    pub t: f64,
}

/// [`ChartScores`] at x (log-sum-exp responsibilities, expm1 for the responsibilities'
/// deviation from the weights).
#[inline]
pub fn chart_scores(x: f64, mu: [f64; 2], sigma: f64, w: f64) -> ChartScores {
    chart_scores_with(&NodeConsts::new(sigma, w), x, mu, true)
}

/// [`chart_scores`] with the constants hoisted; `logp` is NaN unless `with_logp`.
#[inline]
fn chart_scores_with(k: &NodeConsts, x: f64, mu: [f64; 2], with_logp: bool) -> ChartScores {
    let (w, inv_s2) = (k.w, k.inv_s2);
    let d1 = x - mu[0];
    let d2 = x - mu[1];
    let delta = mu[1] - mu[0];
    let (logp, r1, r2) = k.responsibilities(d1, d2, with_logp);
    let v = 1.0 - w;
    // u/δ = (d₁ + d₂)/(2σ²), exact in the differences (no squares subtracted)
    let kk = 0.5 * (d1 + d2) * inv_s2;
    let u = delta * kk;
    // Δr/δ without cancellation: expm1(u)/u·(u/δ) for u ≤ 1, a plain quotient beyond
    // (where Δr is not small); Δr = r₂ − (1−w).
    let dr_over_delta = if u <= 1.0 {
        let phi = if u == 0.0 { 1.0 } else { u.exp_m1() / u };
        w * v * phi * kk / (w + v * u.exp())
    } else {
        let dr = w * v * (-(-u).exp_m1()) / (w * (-u).exp() + v);
        dr / delta
    };
    let y = w * d1 + v * d2;
    let t = (y * dr_over_delta - (v * v * r1 + w * w * r2)) * inv_s2;
    let (s1, s2) = (r1 * d1 * inv_s2, r2 * d2 * inv_s2);
    ChartScores {
        logp,
        s: [s1, s2],
        s_m: s1 + s2,
        t,
    }
}

/// The mixture's loss gradient and Fisher matrix in the chart (M, δ), scaled so that nothing
/// vanishes on the line: g_M = ∂L/∂M, h = (∂L/∂δ)/δ, and the Fisher matrix
/// I_φ = [[A, δB], [δB, δ²C]] with A = E[s_M²], B = E[s_M t], C = E[t²] (see [`ChartScores`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartEval {
    /// Weight w of the first component.
    pub w: f64,
    /// δ = μ₂ − μ₁.
    pub delta: f64,
    /// ∇_θL (computed directly from the θ-scores).
    pub grad: [f64; 2],
    /// ∂L/∂M.
    pub g_m: f64,
    /// (∂L/∂δ)/δ.
    pub h: f64,
    /// E[s_M²].
    pub a: f64,
    /// E[s_M s_δ]/δ.
    pub b: f64,
    /// E[s_δ²]/δ².
    pub c: f64,
}

impl ChartEval {
    /// The θ-Fisher matrix (I₁₁, I₁₂, I₂₂) = J⁻ᵀ I_φ J⁻¹, J⁻¹ = [[w, 1−w], [−1, 1]].
    pub fn fisher_theta(&self) -> [f64; 3] {
        let (w, v, d) = (self.w, 1.0 - self.w, self.delta);
        let (a, b, c) = (self.a, d * self.b, d * d * self.c);
        [
            w * w * a - 2.0 * w * b + c,
            w * v * a + (w - v) * b - c,
            v * v * a + 2.0 * v * b + c,
        ]
    }

    /// Eigenvalues (ascending) of the undamped θ-Fisher matrix without cancellation:
    /// det I_θ = det I_φ = δ²·AC(1 − ρ²), ρ = B/√(AC), λ_max from the trace and the
    /// discriminant, λ_min = det/λ_max (so λ_min ∝ δ² near the line to full relative accuracy).
    pub fn eigenvalues(&self) -> [f64; 2] {
        let [f11, f12, f22] = self.fisher_theta();
        let tr = f11 + f22;
        let disc = (f11 - f22).hypot(2.0 * f12);
        let hi = 0.5 * (tr + disc);
        let rho = if self.a > 0.0 && self.c > 0.0 {
            (self.b / (self.a.sqrt() * self.c.sqrt())).clamp(-1.0, 1.0)
        } else {
            1.0
        };
        let det = (self.delta * self.delta) * self.a * self.c * ((1.0 - rho) * (1.0 + rho));
        let lo = if hi > 0.0 { det / hi } else { 0.0 };
        [lo, hi]
    }

    /// The natural gradient (I_θ + λI)⁻¹∇L in θ, solved in the chart with Jacobi scaling:
    /// M_φ = JᵀI_θJ + λJᵀJ = [[A + 2λ, δB + (2w−1)λ], [δB + (2w−1)λ, δ²C + qλ]],
    /// q = w² + (1−w)², right-hand side (g_M, δh); the scaled system has unit diagonal, so the
    /// δ² in I_φ never meets the O(1) entries, and v_δ = (δh)/(|δ|√C)… stays accurate as δ → 0.
    /// On the line (δ = 0, λ = 0) the exchange component's one-sided limits are ±∞ (odd in δ);
    /// the value there is the limit of the component along the line, v = (v_M, v_M),
    /// v_M = g_M/A — the natural gradient of the single-Gaussian sub-model, what the flow
    /// restricted to the line uses. `None` when the scaled system is singular.
    pub fn natural_gradient(&self, lambda: f64) -> Option<[f64; 2]> {
        let (w, v, d) = (self.w, 1.0 - self.w, self.delta);
        let q = w * w + v * v;
        let m11 = self.a + 2.0 * lambda;
        let m12 = d * self.b + (w - v) * lambda;
        let root22 = (d.abs() * self.c.sqrt()).hypot((q * lambda).sqrt());
        let g_delta = d * self.h;
        if m11.is_nan() || m11 <= 0.0 {
            return None;
        }
        let (vm, vd) = if root22 == 0.0 {
            (self.g_m / m11, 0.0)
        } else {
            let s1 = 1.0 / m11.sqrt();
            let s2 = 1.0 / root22;
            let rho = m12 * s1 * s2;
            let det = (1.0 - rho) * (1.0 + rho);
            if det.is_nan() || det <= 0.0 {
                return None;
            }
            let (b1, b2) = (self.g_m * s1, g_delta * s2);
            (s1 * (b1 - rho * b2) / det, s2 * (b2 - rho * b1) / det)
        };
        let out = [vm - v * vd, vm + w * vd];
        out.iter().all(|x| x.is_finite()).then_some(out)
    }
}

/// Draw `n` samples from the mixture with means `mu`, reproducibly from `seed` (ChaCha8).
pub fn draw_samples(n: usize, seed: u64, mu: [f64; 2], sigma: f64, w: f64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random();
            let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            let m = if u < w { mu[0] } else { mu[1] };
            m + sigma * z
        })
        .collect()
}

impl GaussianMixture {
    /// The mixture density at θ, as a quadrature target.
    pub fn density(&self, theta: &[f64]) -> Mixture2 {
        Mixture2 {
            mu: [theta[0], theta[1]],
            sigma: self.sigma,
            w: self.w,
        }
    }

    /// Call `add(weight, x)` for every node of the loss's expectation over x at θ: the
    /// quadrature rule for p(·|θ*) (population loss) or the samples with weight 1/N (empirical).
    fn for_each_loss_node(&self, theta: &[f64], mut add: impl FnMut(f64, f64)) {
        match &self.loss_kind {
            LossKind::Population => {
                let rule = Rule::build(
                    &self.scheme,
                    &self.density(&self.target),
                    &self.density(theta),
                );
                for (&x, &wt) in rule.x.iter().zip(&rule.w) {
                    add(wt, x);
                }
            }
            LossKind::Empirical { samples, .. } => {
                let wt = 1.0 / samples.len().max(1) as f64;
                for &x in samples {
                    add(wt, x);
                }
            }
        }
    }

    /// Same model with another quadrature scheme.
    pub fn with_scheme(&self, scheme: Scheme) -> Self {
        Self {
            scheme,
            ..self.clone()
        }
    }

    /// The Fisher matrix in negative-Hessian form, −E_θ[∂² log p], by dual numbers.
    pub fn fisher_hessian_form(&self, theta: &[f64]) -> DMatrix<f64> {
        let p = self.density(theta);
        let rule = Rule::build(&self.scheme, &p, &p);
        let mut out = DMatrix::zeros(2, 2);
        let at = SVector::<f64, 2>::new(theta[0], theta[1]);
        for (&x, &wt) in rule.x.iter().zip(&rule.w) {
            let (_, _, h) =
                num_dual::hessian(|v| log_density(x, v[0], v[1], self.sigma, self.w), &at);
            for i in 0..2 {
                for j in 0..2 {
                    out[(i, j)] -= wt * h[(i, j)];
                }
            }
        }
        out
    }

    /// Scores at x by forward-mode dual numbers (reference for the closed form).
    pub fn scores_dual(&self, x: f64, theta: &[f64]) -> [f64; 2] {
        let at = SVector::<f64, 2>::new(theta[0], theta[1]);
        let (_, g) = num_dual::gradient(|v| log_density(x, v[0], v[1], self.sigma, self.w), &at);
        [g[0], g[1]]
    }

    /// The data set of the empirical loss (empty for the population loss).
    pub fn samples(&self) -> &[f64] {
        match &self.loss_kind {
            LossKind::Population => &[],
            LossKind::Empirical { samples, .. } => samples,
        }
    }

    /// ∇L and the Fisher matrix in the chart (M, δ), cancellation-free ([`ChartEval`]).
    pub fn chart_eval(&self, theta: &[f64]) -> ChartEval {
        let mu = [theta[0], theta[1]];
        let (w, sigma) = (self.w, self.sigma);
        let k = NodeConsts::new(sigma, w);
        let mut g = [0.0f64; 4]; // −Σ (s₁, s₂, s_M, t)
        let add = |wt: f64, x: f64| {
            let c = chart_scores_with(&k, x, mu, false);
            g[0] -= wt * c.s[0];
            g[1] -= wt * c.s[1];
            g[2] -= wt * c.s_m;
            g[3] -= wt * c.t;
        };
        self.for_each_loss_node(theta, add);
        let p = self.density(theta);
        let rule = Rule::build(&self.scheme, &p, &p);
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for (&x, &wt) in rule.x.iter().zip(&rule.w) {
            let cs = chart_scores_with(&k, x, mu, false);
            a += wt * cs.s_m * cs.s_m;
            b += wt * cs.s_m * cs.t;
            c += wt * cs.t * cs.t;
        }
        ChartEval {
            w,
            delta: mu[1] - mu[0],
            grad: [g[0], g[1]],
            g_m: g[2],
            h: g[3],
            a,
            b,
            c,
        }
    }

    /// Minimizer of the empirical loss near θ* (Fisher-scoring iterations), or θ*.
    fn empirical_optimum(&self) -> [f64; 2] {
        let mut th = self.target;
        let mut g = [0.0; 2];
        for _ in 0..200 {
            self.loss_grad(&th, &mut g);
            let f = self.fisher(&th);
            let Some(chol) = f.cholesky() else { break };
            let step = chol.solve(&nalgebra::DVector::from_row_slice(&g));
            th[0] -= step[0];
            th[1] -= step[1];
            if step.norm() < 1e-14 * (1.0 + th[0].abs() + th[1].abs()) {
                break;
            }
        }
        th
    }
}

impl StatModel for GaussianMixture {
    fn dim(&self) -> usize {
        2
    }

    fn param_names(&self) -> Vec<String> {
        vec!["mu1".into(), "mu2".into()]
    }

    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let mu = [theta[0], theta[1]];
        let k = NodeConsts::new(self.sigma, self.w);
        let mut acc = [0.0; 3];
        let add = |wt: f64, x: f64| {
            let (lp, s) = k.log_density_scores(x, mu);
            acc[0] -= wt * lp;
            acc[1] -= wt * s[0];
            acc[2] -= wt * s[1];
        };
        self.for_each_loss_node(theta, add);
        grad[0] = acc[1];
        grad[1] = acc[2];
        acc[0]
    }

    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        let p = self.density(theta);
        let rule = Rule::build(&self.scheme, &p, &p);
        let mu = [theta[0], theta[1]];
        let k = NodeConsts::new(self.sigma, self.w);
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for (&x, &wt) in rule.x.iter().zip(&rule.w) {
            let (d1, d2) = (x - mu[0], x - mu[1]);
            let (_, r1, r2) = k.responsibilities(d1, d2, false);
            let s = [r1 * d1 * k.inv_s2, r2 * d2 * k.inv_s2];
            a += wt * s[0] * s[0];
            b += wt * s[0] * s[1];
            c += wt * s[1] * s[1];
        }
        out[(0, 0)] = a;
        out[(0, 1)] = b;
        out[(1, 0)] = b;
        out[(1, 1)] = c;
    }

    fn optima(&self) -> Vec<Vec<f64>> {
        let t = match self.loss_kind {
            LossKind::Population => self.target,
            LossKind::Empirical { .. } => self.empirical_optimum(),
        };
        // The label swap is an optimum only when both weights are equal.
        if (self.w - 0.5).abs() < 1e-15 {
            vec![t.to_vec(), vec![t[1], t[0]]]
        } else {
            vec![t.to_vec()]
        }
    }

    fn flow_kernel(&self) -> Option<Box<dyn crate::flow::FlowKernel + '_>> {
        Some(Box::new(super::mixture_kernel::MixtureKernel::new(self)))
    }

    fn exchange_pairs(&self) -> Vec<(usize, usize)> {
        vec![(0, 1)]
    }

    fn flow_correction(
        &self,
        c: &crate::geometry::correction::Correction,
    ) -> Option<Box<dyn crate::geometry::correction::FlowCorrection + '_>> {
        use crate::geometry::correction::{Correction, GeodesicAcceleration};
        match *c {
            Correction::None => None,
            Correction::GeodesicAcceleration { alpha, tau } => {
                Some(Box::new(GeodesicAcceleration::new(self, alpha, tau)))
            }
        }
    }

    /// In the chart (M, δ) with cancellation-free scores ([`ChartEval`]).
    fn exact_geometry(&self, theta: &[f64], damping: f64) -> Option<crate::metric::Geometry> {
        let c = self.chart_eval(theta);
        let nat = c.natural_gradient(damping)?;
        let eig = c.eigenvalues();
        let [f11, f12, f22] = c.fisher_theta();
        let ok = c.grad.iter().chain(&eig).all(|v| v.is_finite());
        ok.then(|| crate::metric::Geometry {
            gradient: nalgebra::DVector::from_row_slice(&c.grad),
            natural: nalgebra::DVector::from_row_slice(&nat),
            eigenvalues: nalgebra::DVector::from_row_slice(&eig),
            matrix: DMatrix::from_row_slice(2, 2, &[f11, f12, f12, f22]),
            damping,
        })
    }

    fn evaluation_error(&self) -> f64 {
        match self.loss_kind {
            LossKind::Population => self.scheme.relative_error(),
            LossKind::Empirical { .. } => f64::EPSILON * 64.0,
        }
    }

    fn family(&self) -> &str {
        "gaussian-mixture"
    }

    /// Sampled: scores at `samples` draws x ~ p(·|θ); empirical: scores at the empirical
    /// loss's data (rows scaled by 1/√count). The exact Fisher comes from quadrature
    /// ([`StatModel::fisher_into`]), so `Exact` has no factor here.
    fn fisher_factor(
        &self,
        theta: &[f64],
        source: &crate::model::FisherSource,
    ) -> crate::Result<DMatrix<f64>> {
        use crate::model::FisherSource;
        let mu = [theta[0], theta[1]];
        let xs: Vec<f64> = match source {
            FisherSource::Sampled { samples, seed } => {
                draw_samples(*samples, *seed, mu, self.sigma, self.w)
            }
            FisherSource::Empirical => match &self.loss_kind {
                LossKind::Empirical { samples, .. } => samples.clone(),
                LossKind::Population => {
                    return Err(crate::Error::invalid(
                        "flow.metric",
                        "empirical",
                        "the empirical Fisher needs a data set: set loss.kind = \"empirical\"",
                    ));
                }
            },
            FisherSource::Exact => {
                return Err(crate::Error::invalid(
                    "metric",
                    "exact",
                    "the mixture's exact Fisher is by quadrature",
                ));
            }
        };
        let scale = 1.0 / (xs.len().max(1) as f64).sqrt();
        let mut r = DMatrix::zeros(xs.len(), 2);
        for (i, &x) in xs.iter().enumerate() {
            let (_, s) = log_density_scores(x, mu, self.sigma, self.w);
            r[(i, 0)] = s[0] * scale;
            r[(i, 1)] = s[1] * scale;
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(w: f64) -> GaussianMixture {
        GaussianMixture {
            sigma: 0.8,
            w,
            target: [-1.5, 2.0],
            loss_kind: LossKind::Population,
            scheme: Scheme::default(),
        }
    }

    #[test]
    fn closed_form_scores_match_dual_numbers_and_finite_differences() {
        let m = model(0.3);
        for &x in &[-40.0, -3.0, -0.2, 0.0, 1.7, 5.0, 60.0] {
            for th in [[-1.0, 1.0], [0.1, 0.15], [-10.0, 10.0], [2.0, 2.0]] {
                let (lp, s) = log_density_scores(x, th, m.sigma, m.w);
                let sd = m.scores_dual(x, &th);
                let lpg: f64 = log_density(x, th[0], th[1], m.sigma, m.w);
                assert!((lp - lpg).abs() < 1e-12 * (1.0 + lp.abs()));
                for k in 0..2 {
                    assert!(
                        (s[k] - sd[k]).abs() < 1e-10 * (1.0 + s[k].abs()),
                        "x={x} {th:?}"
                    );
                    let h = 1e-5;
                    let mut tp = th;
                    let mut tm = th;
                    tp[k] += h;
                    tm[k] -= h;
                    let fd = (log_density_scores(x, tp, m.sigma, m.w).0
                        - log_density_scores(x, tm, m.sigma, m.w).0)
                        / (2.0 * h);
                    assert!(
                        (s[k] - fd).abs() < 1e-6 * (1.0 + s[k].abs()),
                        "fd x={x} {th:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn chart_scores_match_the_theta_scores_and_their_limit_on_the_line() {
        for &(w, sigma) in &[(0.3, 0.8), (0.5, 1.0), (0.95, 2.0)] {
            for &x in &[-7.0, -1.0, 0.2, 3.0, 12.0] {
                // off the line: s_M = s₁ + s₂, δ·t = −(1−w)s₁ + w s₂ (no cancellation at δ ~ 1)
                for mu in [[-1.0, 1.5], [2.0, -0.5]] {
                    let c = chart_scores(x, mu, sigma, w);
                    let (_, s) = log_density_scores(x, mu, sigma, w);
                    let sd = -(1.0 - w) * s[0] + w * s[1];
                    assert!((c.s_m - (s[0] + s[1])).abs() < 1e-13 * (1.0 + c.s_m.abs()));
                    let d = mu[1] - mu[0];
                    assert!(
                        (c.t * d - sd).abs() < 1e-12 * (1.0 + sd.abs()),
                        "{x} {mu:?}"
                    );
                }
                // on the line: t = w(1−w)(y² − σ²)/σ⁴, and continuous into it
                let m = 0.4;
                let y = x - m;
                let s2 = sigma * sigma;
                let lim = w * (1.0 - w) * (y * y - s2) / (s2 * s2);
                let on = chart_scores(x, [m, m], sigma, w);
                assert!(
                    (on.t - lim).abs() < 1e-14 * (1.0 + lim.abs()),
                    "{x}: {} {lim}",
                    on.t
                );
                let near = chart_scores(x, [m - (1.0 - w) * 1e-9, m + w * 1e-9], sigma, w);
                assert!((near.t - lim).abs() < 1e-7 * (1.0 + lim.abs()));
            }
        }
    }

    #[test]
    fn log_density_is_finite_far_away_and_for_tiny_sigma() {
        let (lp, s) = log_density_scores(1e6, [-1e3, 1e3], 1e-6, 0.5);
        assert!(lp.is_finite() && s[0].is_finite() && s[1].is_finite());
        let lp2: f64 = log_density(-1e5, 0.0, 1e5, 1e-4, 0.5);
        assert!(lp2.is_finite());
    }
}
