//! Geometric properties: steepest descent in a KL ball, gradient angles, Fisher–Rao distances.

use super::flow::seed_mixture;
use super::{Outcome, Property};
use crate::error::Result;
use crate::geodesic::shoot;
use crate::metric::{MetricKind, angle_deg};
use crate::model::StatModel;
use crate::model::exponential_family::{Binomial, Exponential, Poisson};
use crate::model::normal::{Normal, NormalChart};
use nalgebra::DVector;

/// The properties of this group.
pub fn properties() -> Vec<Property> {
    vec![
        Property {
            name: "kl-ball-steepest-descent",
            statement: "argmin ∇Lᵀdθ s.t. ½dθᵀIdθ = ε is parallel to −I⁻¹∇L",
            run: kl_ball,
        },
        Property {
            name: "angle-separated",
            statement: "∠(∇L, I⁻¹∇L) < 1° wherever |μ₁ − μ₂| ≥ 8σ",
            run: angle_separated,
        },
        Property {
            name: "angle-near-singular-line",
            statement: "∠(∇L, I⁻¹∇L) > 45° somewhere near μ₁ = μ₂",
            run: angle_singular,
        },
        Property {
            name: "fisher-rao-normal",
            statement: "geodesic length = √2·arccosh(1 + (Δμ² + 2Δσ²)/(4σ₁σ₂))",
            run: fr_normal,
        },
        Property {
            name: "fisher-rao-one-parameter",
            statement: "Poisson 2|√λ₁−√λ₂|, exponential |ln(λ₁/λ₂)|, binomial 2√n|asin√p₁ − asin√p₂|",
            run: fr_one_parameter,
        },
    ]
}

/// For unit directions u(φ) = (cos φ, sin φ), F(φ) = ∇Lᵀu/√(uᵀIu) is ∇Lᵀdθ on the KL ball
/// (up to the constant √(2ε)); its minimizer is found by a 3600-point scan and bisection on
/// F'(φ) = (gᵀu' (uᵀIu) − gᵀu (uᵀIu')) / (uᵀIu)^{3/2}.
fn kl_ball() -> Result<Outcome> {
    let m = seed_mixture();
    let mut worst = 0.0f64;
    for th in [
        [-3.0, -2.5],
        [0.5, 3.0],
        [2.5, 3.0],
        [-1.0, 1.0],
        [1.0, -2.0],
    ] {
        let g = m.gradient(&th);
        let i = m.fisher(&th);
        let u = |p: f64| DVector::from_vec(vec![p.cos(), p.sin()]);
        let du = |p: f64| DVector::from_vec(vec![-p.sin(), p.cos()]);
        let f = |p: f64| g.dot(&u(p)) / (&i * u(p)).dot(&u(p)).sqrt();
        let fp = |p: f64| {
            let q = (&i * u(p)).dot(&u(p));
            g.dot(&du(p)) * q - g.dot(&u(p)) * (&i * u(p)).dot(&du(p))
        };
        let n = 3600;
        let h = 2.0 * std::f64::consts::PI / n as f64;
        let best = (0..n)
            .map(|k| k as f64 * h)
            .fold((0.0, f64::INFINITY), |b, p| {
                let v = f(p);
                if v < b.1 { (p, v) } else { b }
            });
        let (mut a, mut b) = (best.0 - h, best.0 + h);
        for _ in 0..200 {
            let c = 0.5 * (a + b);
            if fp(a) * fp(c) <= 0.0 {
                b = c;
            } else {
                a = c;
            }
        }
        let dir = u(0.5 * (a + b));
        let nat = -MetricKind::Exact.at(&m, &th, 0.0).solve(&g);
        // atan2(|a×b|, a·b): accurate for tiny angles (acos of the cosine is not).
        let cross = dir[0] * nat[1] - dir[1] * nat[0];
        worst = worst.max(cross.abs().atan2(dir.dot(&nat)));
    }
    Ok(Outcome::at_most(
        "kl-ball-steepest-descent",
        format!(
            "max angle between the KL-ball minimizer and -I^-1 grad L at 5 points: {worst:.2e} rad"
        ),
        worst,
        1e-6,
    ))
}

/// Angle (degrees) between ∇L and I⁻¹∇L at θ for the seed mixture.
fn angle_at(m: &crate::model::GaussianMixture, th: &[f64]) -> f64 {
    let g = m.gradient(th);
    angle_deg(&g, &MetricKind::Exact.at(m, th, 0.0).solve(&g))
}

fn angle_separated() -> Result<Outcome> {
    let m = seed_mixture();
    let mut worst = (0.0f64, [0.0, 0.0]);
    let n = 25;
    for a in 0..n {
        for b in 0..n {
            let th = [
                -10.0 + 20.0 * a as f64 / (n - 1) as f64,
                -10.0 + 20.0 * b as f64 / (n - 1) as f64,
            ];
            if (th[0] - th[1]).abs() < 8.0 * m.sigma {
                continue;
            }
            let ang = angle_at(&m, &th);
            if ang > worst.0 {
                worst = (ang, th);
            }
        }
    }
    Ok(Outcome::new(
        "angle-separated",
        format!(
            "grid 25x25 on [-10, 10]^2 with |mu1 - mu2| >= 8 sigma: max angle {:.4} deg at ({:.2}, {:.2})",
            worst.0, worst.1[0], worst.1[1]
        ),
        worst.0,
        "< 1 deg".into(),
        worst.0 < 1.0,
    ))
}

fn angle_singular() -> Result<Outcome> {
    let m = seed_mixture();
    let mut best = (0.0f64, [0.0, 0.0]);
    for a in 0..41 {
        let c = -4.0 + 8.0 * a as f64 / 40.0;
        for d in [-0.5, -0.2, -0.05, -0.01, 0.01, 0.05, 0.2, 0.5] {
            let th = [c - 0.5 * d, c + 0.5 * d];
            let ang = angle_at(&m, &th);
            if ang > best.0 {
                best = (ang, th);
            }
        }
    }
    Ok(Outcome::new(
        "angle-near-singular-line",
        format!(
            "search over (c - d/2, c + d/2), c in [-4, 4], |d| in [0.01, 0.5]: max angle {:.3} deg at ({:.4}, {:.4})",
            best.0, best.1[0], best.1[1]
        ),
        best.0,
        "> 45 deg".into(),
        best.0 > 45.0,
    ))
}

fn fr_normal() -> Result<Outcome> {
    let model = Normal {
        chart: NormalChart::MuSigma,
        target_mean: 0.0,
        target_var: 1.0,
    };
    let closed = |a: [f64; 2], b: [f64; 2]| {
        let x = 1.0 + ((a[0] - b[0]).powi(2) + 2.0 * (a[1] - b[1]).powi(2)) / (4.0 * a[1] * b[1]);
        std::f64::consts::SQRT_2 * x.acosh()
    };
    let table = [
        ([0.0, 1.0], [1.0, 1.0], 0.980258143468547),
        ([0.0, 1.0], [1.0, 2.0], 1.189380931406412),
        ([-1.0, 0.5], [2.0, 3.0], 3.116155442929603),
    ];
    let mut worst = 0.0f64;
    let mut rows = Vec::new();
    for (a, b, tab) in table {
        let g = shoot(&model, &a, &b, 100)?;
        let c = closed(a, b);
        let e = ((g.length - c).abs() / c).max((tab - c).abs() / c);
        worst = worst.max(e);
        rows.push(format!("{a:?}-{b:?}: {:.12} (closed {c:.12})", g.length));
    }
    Ok(Outcome::at_most(
        "fisher-rao-normal",
        format!(
            "shooting (RK4, 100 and 200 steps, Richardson): {}; max relative error {worst:.2e}",
            rows.join("; ")
        ),
        worst,
        1e-10,
    ))
}

fn fr_one_parameter() -> Result<Outcome> {
    let mut worst = 0.0f64;
    let mut rows = Vec::new();
    let mut one = |name: &str, model: &dyn StatModel, a: f64, b: f64, want: f64| -> Result<()> {
        let g = shoot(model, &[a], &[b], 100)?;
        let e = (g.length - want).abs() / want;
        worst = worst.max(e);
        rows.push(format!("{name} {a}->{b}: {:.10} ({e:.1e})", g.length));
        Ok(())
    };
    one(
        "Poisson",
        &Poisson { target: 1.0 },
        0.5,
        4.0,
        2.0 * (4f64.sqrt() - 0.5f64.sqrt()),
    )?;
    one(
        "exponential",
        &Exponential { target: 1.0 },
        0.3,
        5.0,
        (5.0f64 / 0.3).ln(),
    )?;
    let n = 10;
    one(
        "binomial(10)",
        &Binomial { n, target: 0.5 },
        0.1,
        0.7,
        2.0 * (n as f64).sqrt() * (0.7f64.sqrt().asin() - 0.1f64.sqrt().asin()),
    )?;
    Ok(Outcome::at_most(
        "fisher-rao-one-parameter",
        format!("{}; max relative error {worst:.2e}", rows.join("; ")),
        worst,
        1e-10,
    ))
}
