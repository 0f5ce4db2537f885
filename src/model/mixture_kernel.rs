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
//!     through the weight ratio, E_θ[h] = E_{θ₀}[h(x) p(x|θ)/p(x|θ₀)]. Differentiating that
//!     at θ = θ₀ gives the exact derivative of the integral, which the composite rule resolves
//!     to ≈1e-13; the evaluated f differs from the integral by that much, so exact and
//!     finite-difference Jacobians agree to the finite-difference error.
//!
//! **Fast path.** For the population loss under Gauss–Hermite quadrature the responsibilities
//! need only e^{b−a} with b − a = Δ(2x − μ₁ − μ₂)/(2σ²) + ln((1−w)/w), Δ = μ₂ − μ₁, which is
//! *linear* in x. On every node set x = m + √2σzⱼ (m ∈ {μ₁, μ₂, μ₁*, μ₂*}) it factors as
//! e^{αₘ}·Eⱼ with the shared Eⱼ = e^{√2Δzⱼ/σ}, and the symmetric nodes give E₋ⱼ = 1/Eⱼ. So one
//! right-hand side (Fisher on two node sets + gradient on two node sets, 4·K node evaluations)
//! costs K/2 exponentials instead of 4K, with no allocation. Used when every exponent stays
//! below 700 in magnitude (no overflow); otherwise the log-sum-exp path is taken.

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
    let (lse, r1) = if a.re() >= b.re() {
        let e = (b - a).exp();
        (a + e.ln_1p(), (e + 1.0).recip())
    } else {
        let e = (a - b).exp();
        (b + e.ln_1p(), e / (e + 1.0))
    };
    let r2 = -r1 + 1.0;
    let logp = lse - (sigma * (2.0 * PI).sqrt()).ln();
    (logp, [r1 * d1 * inv_s2, r2 * d2 * inv_s2])
}

/// Precomputed symmetric Gauss–Hermite nodes for the fast path.
#[derive(Clone, Debug)]
struct FastGh {
    /// zⱼ ≥ 0 of the upper half (ascending), for e^{βz}.
    zpos: Vec<f64>,
    /// ωⱼ/√π of the upper half (same order as `zpos`).
    wpos: Vec<f64>,
    /// Weight ω/√π of a node at z = 0 (odd K), else 0.
    w0: f64,
    has_zero: bool,
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
        let mut zpos = Vec::with_capacity(half);
        let mut wpos = Vec::with_capacity(half);
        for j in 0..half {
            // symmetrize: average the mirrored pair
            let (zl, wl) = pairs[j];
            let (zu, wu) = pairs[k - 1 - j];
            zpos.push(0.5 * (zu - zl));
            wpos.push(0.5 * (wu + wl));
        }
        let (has_zero, w0) = if k % 2 == 1 { (true, pairs[half].1) } else { (false, 0.0) };
        Some(FastGh {
            zpos,
            wpos,
            w0,
            has_zero,
        })
    }

    fn zmax(&self) -> f64 {
        self.zpos.iter().fold(0.0, |m: f64, &z| m.max(z))
    }
}

/// The mixture's [`FlowKernel`].
#[derive(Clone, Debug)]
pub struct MixtureKernel {
    model: GaussianMixture,
    fast: Option<FastGh>,
}

impl MixtureKernel {
    /// The kernel of `model` (the fast path is prepared when it applies).
    pub fn new(model: &GaussianMixture) -> Self {
        let fast = match (&model.loss_kind, model.scheme) {
            (LossKind::Population, Scheme::GaussHermite { nodes }) => FastGh::new(nodes),
            _ => None,
        };
        MixtureKernel {
            model: model.clone(),
            fast,
        }
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
        let bz = beta.abs() * gh.zmax();
        if centers.iter().any(|&c| alpha(c).abs() + bz > 700.0) || !bz.is_finite() {
            return None;
        }
        let half = gh.zpos.len();
        let mut ep = [0.0f64; FAST_MAX_NODES / 2];
        let mut en = [0.0f64; FAST_MAX_NODES / 2];
        for j in 0..half {
            let e = (beta * gh.zpos[j]).exp();
            ep[j] = e;
            en[j] = 1.0 / e;
        }
        let s = std::f64::consts::SQRT_2 * sigma;
        // Sums over one node set centred at c: returns Σω r₁d₁, Σω r₂d₂, Σω r₁²d₁², Σω r₁r₂d₁d₂,
        // Σω r₂²d₂².
        let set = |c: f64| -> [f64; 5] {
            let a = alpha(c).exp();
            let (o1, o2) = (c - mu1, c - mu2);
            let mut acc = [0.0f64; 5];
            let node = |z: f64, e: f64, wt: f64, acc: &mut [f64; 5]| {
                let u = a * e;
                let r1 = 1.0 / (1.0 + u);
                let r2 = u * r1;
                let q1 = r1 * (o1 + s * z);
                let q2 = r2 * (o2 + s * z);
                acc[0] += wt * q1;
                acc[1] += wt * q2;
                acc[2] += wt * q1 * q1;
                acc[3] += wt * q1 * q2;
                acc[4] += wt * q2 * q2;
            };
            for j in 0..half {
                let (z, wt) = (gh.zpos[j], gh.wpos[j]);
                node(z, ep[j], wt, &mut acc);
                node(-z, en[j], wt, &mut acc);
            }
            if gh.has_zero {
                node(0.0, 1.0, gh.w0, &mut acc);
            }
            acc
        };
        let (w1, w2) = (m.w, 1.0 - m.w);
        let f1 = set(mu1);
        let f2 = set(mu2);
        let t1 = set(m.target[0]);
        let t2 = set(m.target[1]);
        let i4 = inv_s2 * inv_s2;
        let fisher = [
            (w1 * f1[2] + w2 * f2[2]) * i4,
            (w1 * f1[3] + w2 * f2[3]) * i4,
            (w1 * f1[4] + w2 * f2[4]) * i4,
        ];
        let grad = [
            -(w1 * t1[0] + w2 * t2[0]) * inv_s2,
            -(w1 * t1[1] + w2 * t2[1]) * inv_s2,
        ];
        Some((grad, fisher))
    }

    /// g and (G₁₁, G₁₂, G₂₂) for any dual-number type, differentiating through the quadrature
    /// as the module docs describe. `re` is θ's real part (where the rules are built).
    pub fn grad_fisher_t<T: DualNum<Primitive = f64> + Copy>(&self, theta: [T; 2]) -> ([T; 2], [T; 3]) {
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

    fn grad_fisher(&self, theta: &[f64], grad: &mut [f64], fisher: &mut [f64]) {
        let (g, f) = match self.fast_grad_fisher(theta) {
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
            for th in [[0.1, 0.15], [-3.0, -2.5], [3.5, -3.0], [-4.0, 4.0], [1.0, 1.0]] {
                let (g, f) = k.fast_grad_fisher(&th).expect("fast path applies");
                let mut g_ref = [0.0; 2];
                m.loss_grad(&th, &mut g_ref);
                let f_ref = m.fisher(&th);
                let scale_g = g_ref[0].abs().max(g_ref[1].abs()).max(1e-3);
                for i in 0..2 {
                    assert!((g[i] - g_ref[i]).abs() < 1e-13 * scale_g, "{th:?} g {g:?} {g_ref:?}");
                }
                let scale_f = f_ref.amax();
                for (v, r) in [(f[0], f_ref[(0, 0)]), (f[1], f_ref[(0, 1)]), (f[2], f_ref[(1, 1)])] {
                    assert!((v - r).abs() < 1e-13 * scale_f, "{th:?} {v} {r}");
                }
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
                        assert!((h[2 * i + j] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "{scheme:?} H");
                    }
                    for e in 0..4 {
                        let fd = (fp[e] - fm[e]) / (2.0 * eps);
                        assert!((df[4 * j + e] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "{scheme:?} dG");
                    }
                }
            }
        }
    }
}
