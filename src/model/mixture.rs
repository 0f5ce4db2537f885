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
    let inv_s2 = 1.0 / (sigma * sigma);
    let d1 = x - mu[0];
    let d2 = x - mu[1];
    let a = -0.5 * d1 * d1 * inv_s2 + w.ln();
    let b = -0.5 * d2 * d2 * inv_s2 + (1.0 - w).ln();
    // r1 = 1/(1+e^{b−a}), r2 = 1/(1+e^{a−b}), each computed directly (never as 1 − r, which
    // would lose all relative accuracy of the small one) and without overflow.
    let (lse, r1, r2) = if a >= b {
        let e = (b - a).exp();
        (a + e.ln_1p(), 1.0 / (1.0 + e), e / (1.0 + e))
    } else {
        let e = (a - b).exp();
        (b + e.ln_1p(), e / (1.0 + e), 1.0 / (1.0 + e))
    };
    let logp = lse - (sigma * (2.0 * PI).sqrt()).ln();
    (logp, [r1 * d1 * inv_s2, r2 * d2 * inv_s2])
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
        let mut acc = [0.0; 3];
        let mut add = |wt: f64, x: f64| {
            let (lp, s) = log_density_scores(x, mu, self.sigma, self.w);
            acc[0] -= wt * lp;
            acc[1] -= wt * s[0];
            acc[2] -= wt * s[1];
        };
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
        grad[0] = acc[1];
        grad[1] = acc[2];
        acc[0]
    }

    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        let p = self.density(theta);
        let rule = Rule::build(&self.scheme, &p, &p);
        let mu = [theta[0], theta[1]];
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for (&x, &wt) in rule.x.iter().zip(&rule.w) {
            let (_, s) = log_density_scores(x, mu, self.sigma, self.w);
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
    fn log_density_is_finite_far_away_and_for_tiny_sigma() {
        let (lp, s) = log_density_scores(1e6, [-1e3, 1e3], 1e-6, 0.5);
        assert!(lp.is_finite() && s[0].is_finite() && s[1].is_finite());
        let lp2: f64 = log_density(-1e5, 0.0, 1e5, 1e-4, 0.5);
        assert!(lp2.is_finite());
    }
}
