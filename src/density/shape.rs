//! The densities of the model file: targets π and start densities ρ₀, as log-densities.
//!
//! * `mixture` (1-D): w·N(μ₁, σ²) + (1 − w)·N(μ₂, σ²), the seed's model;
//! * `bimodal` (1-D, 2-D): ½N(−s/2·e₁, σ²I) + ½N(s/2·e₁, σ²I), modes a separation s apart;
//! * `banana` (2-D): x ~ N(0, a²), y | x ~ N(b(x² − a²), 1);
//! * `gaussian`: N(m, diag(sd²));
//! * `potential` (1-D): π ∝ exp(−Σₖ cₖxᵏ) — normalizable iff the top degree is even and its
//!   coefficient positive; its normalizing constant is not known in closed form.
//!
//! Every shape but `potential` is normalized analytically, so the mass the grid captures can be
//! compared with 1 (see [`super::config`]).

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// A density on R or R².
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// w·N(μ₁, σ²) + (1 − w)·N(μ₂, σ²) on R.
    Mixture {
        sigma: f64,
        weight: f64,
        means: [f64; 2],
    },
    /// ½N(−s/2·e₁, σ²I) + ½N(s/2·e₁, σ²I) on R or R² (`dim`).
    Bimodal {
        separation: f64,
        sigma: f64,
        dim: usize,
    },
    /// x ~ N(0, a²), y | x ~ N(b(x² − a²), 1) on R².
    Banana { width: f64, curvature: f64 },
    /// N(m, diag(sd²)) on R or R².
    Gaussian { mean: Vec<f64>, sd: Vec<f64> },
    /// ∝ exp(−Σₖ cₖ xᵏ) on R (unnormalized).
    Potential { coefficients: Vec<f64> },
}

/// log N(x; m, s²).
fn log_normal(x: f64, m: f64, s: f64) -> f64 {
    let z = (x - m) / s;
    -0.5 * z * z - s.ln() - LN_SQRT_2PI
}

/// log(e^a + e^b) without overflow.
fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

impl Shape {
    /// log density at `x` (normalized unless [`Shape::normalized`] is false).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        match self {
            Shape::Mixture {
                sigma,
                weight,
                means,
            } => log_add(
                weight.ln() + log_normal(x[0], means[0], *sigma),
                (1.0 - weight).ln() + log_normal(x[0], means[1], *sigma),
            ),
            Shape::Bimodal {
                separation,
                sigma,
                dim,
            } => {
                let rest: f64 = x[1..*dim].iter().map(|&y| log_normal(y, 0.0, *sigma)).sum();
                let h = 0.5 * separation;
                rest + log_add(
                    0.5f64.ln() + log_normal(x[0], -h, *sigma),
                    0.5f64.ln() + log_normal(x[0], h, *sigma),
                )
            }
            Shape::Banana { width, curvature } => {
                log_normal(x[0], 0.0, *width)
                    + log_normal(x[1], curvature * (x[0] * x[0] - width * width), 1.0)
            }
            Shape::Gaussian { mean, sd } => mean
                .iter()
                .zip(sd)
                .zip(x)
                .map(|((m, s), xi)| log_normal(*xi, *m, *s))
                .sum(),
            Shape::Potential { coefficients } => {
                // Horner: V(x) = Σ cₖ xᵏ
                -coefficients.iter().rev().fold(0.0, |acc, c| acc * x[0] + c)
            }
        }
    }

    /// Whether [`Shape::log_density`] integrates to 1.
    pub fn normalized(&self) -> bool {
        !matches!(self, Shape::Potential { .. })
    }

    /// The dimension the shape lives in.
    pub fn dim(&self) -> usize {
        match self {
            Shape::Mixture { .. } | Shape::Potential { .. } => 1,
            Shape::Bimodal { dim, .. } => *dim,
            Shape::Banana { .. } => 2,
            Shape::Gaussian { mean, .. } => mean.len(),
        }
    }

    /// A short description for titles, e.g. "bimodal, s = 4, σ = 1".
    pub fn describe(&self) -> String {
        let n = |x: f64| format!("{x}").replace('-', "−");
        match self {
            Shape::Mixture {
                sigma,
                weight,
                means,
            } => format!(
                "mixture, σ = {}, w = {}, means ({}, {})",
                n(*sigma),
                n(*weight),
                n(means[0]),
                n(means[1])
            ),
            Shape::Bimodal {
                separation, sigma, ..
            } => format!("bimodal, s = {}, σ = {}", n(*separation), n(*sigma)),
            Shape::Banana { width, curvature } => {
                format!("banana, a = {}, b = {}", n(*width), n(*curvature))
            }
            Shape::Gaussian { mean, sd } => {
                let m: Vec<String> = mean.iter().map(|v| n(*v)).collect();
                let s: Vec<String> = sd.iter().map(|v| n(*v)).collect();
                format!("N(({}), sd ({}))", m.join(", "), s.join(", "))
            }
            Shape::Potential { coefficients } => {
                let c: Vec<String> = coefficients.iter().map(|v| n(*v)).collect();
                format!("exp(−V), V coefficients [{}]", c.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Midpoint-rule mass on a wide fine grid: 1 for every normalized shape.
    #[test]
    fn normalized_shapes_integrate_to_one() {
        let h = 0.02;
        let xs: Vec<f64> = (0..1500).map(|i| -15.0 + (i as f64 + 0.5) * h).collect();
        let one_d = [
            Shape::Mixture {
                sigma: 1.0,
                weight: 0.3,
                means: [-1.5, 2.0],
            },
            Shape::Bimodal {
                separation: 5.0,
                sigma: 0.8,
                dim: 1,
            },
            Shape::Gaussian {
                mean: vec![1.0],
                sd: vec![2.0],
            },
        ];
        for s in &one_d {
            let m: f64 = xs.iter().map(|&x| h * s.log_density(&[x]).exp()).sum();
            assert!((m - 1.0).abs() < 1e-10, "{s:?}: {m}");
        }
        let two_d = [
            Shape::Banana {
                width: 1.0,
                curvature: 0.5,
            },
            Shape::Bimodal {
                separation: 3.0,
                sigma: 1.0,
                dim: 2,
            },
        ];
        // y up to 45: the banana's y | x ~ N(b(x² − a²), 1) reaches 0.5·(x² − 1) ≈ 30 at |x| = 8
        let h2 = 0.05;
        let g: Vec<f64> = (0..600).map(|i| -15.0 + (i as f64 + 0.5) * h2).collect();
        let gy: Vec<f64> = (0..1200).map(|i| -15.0 + (i as f64 + 0.5) * h2).collect();
        for s in &two_d {
            let m: f64 = g
                .iter()
                .flat_map(|&x| gy.iter().map(move |&y| (x, y)))
                .map(|(x, y)| h2 * h2 * s.log_density(&[x, y]).exp())
                .sum();
            assert!((m - 1.0).abs() < 1e-8, "{s:?}: {m}");
        }
        let p = Shape::Potential {
            coefficients: vec![0.0, 0.0, 0.5],
        };
        let m: f64 = xs.iter().map(|&x| h * p.log_density(&[x]).exp()).sum();
        assert!((m - (2.0 * std::f64::consts::PI).sqrt()).abs() < 1e-10);
    }
}
