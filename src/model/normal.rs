//! The normal family N(μ, σ²) in five charts, with the cross-entropy to a target N(m, s²).
//!
//! Charts θ ([`NormalChart`]) and how they give (μ, v = σ²):
//!
//! | chart | θ | μ, v |
//! |---|---|---|
//! | `MuSigma` | (μ, σ) | μ, σ² |
//! | `MuVar` | (μ, σ²) | μ, v |
//! | `MuLogSigma` | (μ, log σ) | μ, e^{2θ₂} |
//! | `Natural` | η = (μ/σ², −1/(2σ²)) | v = −1/(2η₂), μ = η₁v |
//! | `Expectation` | (μ, μ² + σ²) | μ, θ₂ − θ₁² |
//!
//! Loss: L(θ) = −E_{N(m,s²)}[log p(x|θ)] = ½ log(2πv) + (s² + (m − μ)²)/(2v), minimal at
//! (μ, v) = (m, s²). Its gradient comes from forward-mode dual numbers through the chart.
//!
//! Fisher information: computed, not looked up — the score-square form E[∇log p ∇log pᵀ] with
//! scores by dual numbers and the expectation by 10-node Gauss–Hermite (exact: the scores are
//! polynomials of degree ≤ 2 in x, so the integrand has degree ≤ 4).
//! [`NormalChart::fisher_closed_form`] has the textbook matrices the property suite compares
//! against: diag(1/σ², 2/σ²); diag(1/σ², 1/(2σ⁴)); diag(1/σ², 2); Cov(x, x²); Cov(x, x²)⁻¹.

use super::StatModel;
use gauss_quad::hermite::GaussHermite;
use nalgebra::{DMatrix, SVector};
use num_dual::DualNum;
use std::f64::consts::PI;
use std::num::NonZeroUsize;

/// A chart of the normal family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormalChart {
    MuSigma,
    MuVar,
    MuLogSigma,
    Natural,
    Expectation,
}

impl NormalChart {
    /// All five charts.
    pub const ALL: [NormalChart; 5] = [
        NormalChart::MuSigma,
        NormalChart::MuVar,
        NormalChart::MuLogSigma,
        NormalChart::Natural,
        NormalChart::Expectation,
    ];

    /// Short name, e.g. "(mu, sigma)".
    pub fn name(&self) -> &'static str {
        match self {
            NormalChart::MuSigma => "(mu, sigma)",
            NormalChart::MuVar => "(mu, sigma^2)",
            NormalChart::MuLogSigma => "(mu, log sigma)",
            NormalChart::Natural => "natural eta",
            NormalChart::Expectation => "expectation (mu, mu^2+sigma^2)",
        }
    }

    /// Parameter names.
    pub fn param_names(&self) -> [&'static str; 2] {
        match self {
            NormalChart::MuSigma => ["mu", "sigma"],
            NormalChart::MuVar => ["mu", "var"],
            NormalChart::MuLogSigma => ["mu", "log_sigma"],
            NormalChart::Natural => ["eta1", "eta2"],
            NormalChart::Expectation => ["tau1", "tau2"],
        }
    }

    /// (μ, v) of the chart point θ, for any dual-number type.
    pub fn mean_var<T: DualNum<Primitive = f64>>(&self, t1: T, t2: T) -> (T, T) {
        match self {
            NormalChart::MuSigma => (t1, t2.clone() * t2),
            NormalChart::MuVar => (t1, t2),
            NormalChart::MuLogSigma => (t1, (t2 * 2.0).exp()),
            NormalChart::Natural => {
                let v = (t2 * (-2.0)).recip();
                (t1 * v.clone(), v)
            }
            NormalChart::Expectation => (t1.clone(), t2 - t1.clone() * t1),
        }
    }

    /// The chart point of (μ, v).
    pub fn from_mean_var(&self, mu: f64, v: f64) -> [f64; 2] {
        match self {
            NormalChart::MuSigma => [mu, v.sqrt()],
            NormalChart::MuVar => [mu, v],
            NormalChart::MuLogSigma => [mu, 0.5 * v.ln()],
            NormalChart::Natural => [mu / v, -0.5 / v],
            NormalChart::Expectation => [mu, mu * mu + v],
        }
    }

    /// The textbook Fisher matrix at θ in this chart.
    pub fn fisher_closed_form(&self, theta: &[f64]) -> DMatrix<f64> {
        let (mu, v) = self.mean_var(theta[0], theta[1]);
        let cov = DMatrix::from_row_slice(
            2,
            2,
            &[
                v,
                2.0 * mu * v,
                2.0 * mu * v,
                4.0 * mu * mu * v + 2.0 * v * v,
            ],
        );
        match self {
            NormalChart::MuSigma => DMatrix::from_row_slice(2, 2, &[1.0 / v, 0.0, 0.0, 2.0 / v]),
            NormalChart::MuVar => {
                DMatrix::from_row_slice(2, 2, &[1.0 / v, 0.0, 0.0, 0.5 / (v * v)])
            }
            NormalChart::MuLogSigma => DMatrix::from_row_slice(2, 2, &[1.0 / v, 0.0, 0.0, 2.0]),
            NormalChart::Natural => cov,
            NormalChart::Expectation => cov
                .try_inverse()
                .unwrap_or_else(|| DMatrix::from_element(2, 2, f64::NAN)),
        }
    }

    /// Whether θ is inside the chart's domain (v > 0, σ > 0).
    pub fn contains(&self, theta: &[f64]) -> bool {
        let (mu, v) = self.mean_var(theta[0], theta[1]);
        let ok = mu.is_finite() && v.is_finite() && v > 0.0;
        match self {
            NormalChart::MuSigma => ok && theta[1] > 0.0,
            _ => ok,
        }
    }
}

/// log N(x | μ(θ), v(θ)) for any dual-number type.
pub fn log_density<T: DualNum<Primitive = f64>>(chart: NormalChart, x: f64, t1: T, t2: T) -> T {
    let (mu, v) = chart.mean_var(t1, t2);
    let d = mu * (-1.0) + x;
    (v.clone() * (2.0 * PI)).ln() * (-0.5) - d.clone() * d / (v * 2.0)
}

/// The normal family in one chart, minimizing the cross-entropy to N(m, s²).
#[derive(Clone, Debug)]
pub struct Normal {
    pub chart: NormalChart,
    /// Target mean m.
    pub target_mean: f64,
    /// Target variance s² > 0.
    pub target_var: f64,
}

/// Gauss–Hermite nodes/weights for ∫e^{−z²}: 10 nodes (exact to degree 19).
fn gh10() -> &'static [(f64, f64)] {
    static NODES: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    NODES.get_or_init(|| {
        let n = NonZeroUsize::new(10).unwrap_or(NonZeroUsize::MIN);
        GaussHermite::new(n).as_node_weight_pairs().to_vec()
    })
}

impl Normal {
    /// Loss in the chart, generic (for dual numbers).
    fn loss_generic<T: DualNum<Primitive = f64>>(&self, t1: T, t2: T) -> T {
        let (mu, v) = self.chart.mean_var(t1, t2);
        let d = mu * (-1.0) + self.target_mean;
        (v.clone() * (2.0 * PI)).ln() * 0.5 + (d.clone() * d + self.target_var) / (v * 2.0)
    }

    /// E_θ[f(x)] by Gauss–Hermite.
    fn expect(&self, theta: &[f64], mut f: impl FnMut(f64) -> DMatrix<f64>) -> DMatrix<f64> {
        let (mu, v) = self.chart.mean_var(theta[0], theta[1]);
        let sc = (2.0 * v).sqrt();
        let mut out = DMatrix::zeros(2, 2);
        for &(z, w) in gh10() {
            out += f(mu + sc * z) * (w / PI.sqrt());
        }
        out
    }

    /// The Fisher matrix in negative-Hessian form −E[∂² log p], dual numbers + Gauss–Hermite.
    pub fn fisher_hessian_form(&self, theta: &[f64]) -> DMatrix<f64> {
        let at = SVector::<f64, 2>::new(theta[0], theta[1]);
        let chart = self.chart;
        self.expect(theta, |x| {
            let (_, _, h) = num_dual::hessian(|v| log_density(chart, x, v[0], v[1]), &at);
            DMatrix::from_row_slice(2, 2, &[-h[(0, 0)], -h[(0, 1)], -h[(1, 0)], -h[(1, 1)]])
        })
    }

    /// (μ, v) of θ.
    pub fn mean_var(&self, theta: &[f64]) -> (f64, f64) {
        self.chart.mean_var(theta[0], theta[1])
    }
}

impl StatModel for Normal {
    fn dim(&self) -> usize {
        2
    }

    fn param_names(&self) -> Vec<String> {
        self.chart
            .param_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let at = SVector::<f64, 2>::new(theta[0], theta[1]);
        let (l, g) = num_dual::gradient(|v| self.loss_generic(v[0], v[1]), &at);
        grad[0] = g[0];
        grad[1] = g[1];
        l
    }

    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        let at = SVector::<f64, 2>::new(theta[0], theta[1]);
        let chart = self.chart;
        let f = self.expect(theta, |x| {
            let (_, s) = num_dual::gradient(|v| log_density(chart, x, v[0], v[1]), &at);
            DMatrix::from_row_slice(2, 2, &[s[0] * s[0], s[0] * s[1], s[1] * s[0], s[1] * s[1]])
        });
        out.copy_from(&f);
    }

    fn optima(&self) -> Vec<Vec<f64>> {
        vec![
            self.chart
                .from_mean_var(self.target_mean, self.target_var)
                .to_vec(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_round_trip_and_gradient_matches_finite_differences() {
        for chart in NormalChart::ALL {
            let th = chart.from_mean_var(-0.7, 1.9);
            let (mu, v) = chart.mean_var(th[0], th[1]);
            assert!(
                (mu + 0.7).abs() < 1e-14 && (v - 1.9).abs() < 1e-14,
                "{chart:?}"
            );
            let m = Normal {
                chart,
                target_mean: 0.4,
                target_var: 0.6,
            };
            let g = m.gradient(&th);
            for k in 0..2 {
                let h = 1e-6 * th[k].abs().max(1.0);
                let mut p = th;
                let mut q = th;
                p[k] += h;
                q[k] -= h;
                let fd = (m.loss(&p) - m.loss(&q)) / (2.0 * h);
                assert!(
                    (fd - g[k]).abs() < 1e-7 * (1.0 + g[k].abs()),
                    "{chart:?} {k}: {fd} vs {}",
                    g[k]
                );
            }
        }
    }
}
