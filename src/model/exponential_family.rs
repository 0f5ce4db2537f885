//! One-parameter exponential families — Poisson(λ), exponential(λ), binomial(n, p) — each with
//! the cross-entropy to a target of the same family as its loss.
//!
//! Fisher information is computed from the score-square form E[(∂ log p)²] (a truncated series
//! for the Poisson, an exact finite sum for the binomial, Gauss–Laguerre for the exponential),
//! so that comparing it with the closed forms 1/λ, 1/λ², n/(p(1−p)) is a real check.
//!
//! | family | log p | score | loss L(θ) to target θ* |
//! |---|---|---|---|
//! | Poisson | k ln λ − λ − ln k! | k/λ − 1 | λ − λ* ln λ + E*[ln k!] |
//! | exponential | ln λ − λx | 1/λ − x | −ln λ + λ/λ* |
//! | binomial | ln C(n,k) + k ln p + (n−k) ln(1−p) | k/p − (n−k)/(1−p) | −n p* ln p − n(1−p*) ln(1−p) − E*[ln C(n,k)] |

use super::StatModel;
use gauss_quad::FiniteAboveNegOneF64;
use gauss_quad::laguerre::GaussLaguerre;
use nalgebra::DMatrix;
use std::num::NonZeroUsize;

/// α = 0 for Gauss–Laguerre (weight e^{−y}); checked at compile time.
const ALPHA0: FiniteAboveNegOneF64 = match FiniteAboveNegOneF64::new(0.0) {
    Some(a) => a,
    None => panic!("0 > -1"),
};

/// ln k! by summation (k is small here).
fn ln_factorial(k: usize) -> f64 {
    (2..=k).map(|i| (i as f64).ln()).sum()
}

/// Poisson pmf terms e^{−λ}λᵏ/k! for k = 0..K with K covering λ + 40√λ + 40 (by the
/// recursion pₖ = pₖ₋₁·λ/k, started in log space).
fn poisson_pmf(lambda: f64) -> Vec<f64> {
    let kmax = (lambda + 40.0 * lambda.sqrt() + 40.0).ceil() as usize;
    let mut out = Vec::with_capacity(kmax + 1);
    let mut p = (-lambda).exp();
    for k in 0..=kmax {
        if k > 0 {
            p *= lambda / k as f64;
        }
        out.push(p);
    }
    out
}

/// Binomial pmf C(n,k)pᵏ(1−p)ⁿ⁻ᵏ, k = 0..n.
fn binomial_pmf(n: usize, p: f64) -> Vec<f64> {
    (0..=n)
        .map(|k| {
            let lc = ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k);
            (lc + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()).exp()
        })
        .collect()
}

/// The 6-node Gauss–Laguerre rule for ∫₀^∞ e^{−y}f(y)dy, built once.
fn laguerre6() -> &'static GaussLaguerre {
    static RULE: std::sync::OnceLock<GaussLaguerre> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        GaussLaguerre::new(NonZeroUsize::new(6).unwrap_or(NonZeroUsize::MIN), ALPHA0)
    })
}

/// Poisson(λ), θ = λ > 0.
#[derive(Clone, Debug)]
pub struct Poisson {
    /// Target rate λ*.
    pub target: f64,
}

impl StatModel for Poisson {
    fn dim(&self) -> usize {
        1
    }
    fn param_names(&self) -> Vec<String> {
        vec!["lambda".into()]
    }
    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let l = theta[0];
        let mut lnf = 0.0;
        let mut c = 0.0;
        for (k, p) in poisson_pmf(self.target).iter().enumerate() {
            if k > 1 {
                lnf += (k as f64).ln();
            }
            c += p * lnf;
        }
        grad[0] = 1.0 - self.target / l;
        l - self.target * l.ln() + c
    }
    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        let l = theta[0];
        out[(0, 0)] = poisson_pmf(l)
            .iter()
            .enumerate()
            .map(|(k, p)| p * (k as f64 / l - 1.0).powi(2))
            .sum();
    }
    fn optima(&self) -> Vec<Vec<f64>> {
        vec![vec![self.target]]
    }
}

/// Exponential(λ) with density λe^{−λx}, θ = λ > 0.
#[derive(Clone, Debug)]
pub struct Exponential {
    /// Target rate λ*.
    pub target: f64,
}

impl StatModel for Exponential {
    fn dim(&self) -> usize {
        1
    }
    fn param_names(&self) -> Vec<String> {
        vec!["lambda".into()]
    }
    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let l = theta[0];
        grad[0] = -1.0 / l + 1.0 / self.target;
        -l.ln() + l / self.target
    }
    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        // E[(1/λ − x)²] with x = y/λ, y ~ Exp(1): Gauss–Laguerre (exact for this quadratic).
        let l = theta[0];
        out[(0, 0)] = laguerre6().integrate(|y| (1.0 / l - y / l).powi(2));
    }
    fn optima(&self) -> Vec<Vec<f64>> {
        vec![vec![self.target]]
    }
}

/// Binomial(n, p), θ = p ∈ (0, 1).
#[derive(Clone, Debug)]
pub struct Binomial {
    /// Number of trials n.
    pub n: usize,
    /// Target success probability p*.
    pub target: f64,
}

impl StatModel for Binomial {
    fn dim(&self) -> usize {
        1
    }
    fn param_names(&self) -> Vec<String> {
        vec!["p".into()]
    }
    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let p = theta[0];
        let n = self.n as f64;
        let q = self.target;
        let c: f64 = binomial_pmf(self.n, q)
            .iter()
            .enumerate()
            .map(|(k, w)| w * (ln_factorial(self.n) - ln_factorial(k) - ln_factorial(self.n - k)))
            .sum();
        grad[0] = -n * q / p + n * (1.0 - q) / (1.0 - p);
        -n * q * p.ln() - n * (1.0 - q) * (1.0 - p).ln() - c
    }
    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        let p = theta[0];
        let n = self.n;
        out[(0, 0)] = binomial_pmf(n, p)
            .iter()
            .enumerate()
            .map(|(k, w)| w * (k as f64 / p - (n - k) as f64 / (1.0 - p)).powi(2))
            .sum();
    }
    fn optima(&self) -> Vec<Vec<f64>> {
        vec![vec![self.target]]
    }
}
