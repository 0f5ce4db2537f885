//! Properties of the Fisher matrix itself.

use super::{Outcome, Property, fit_slope, rel_diff};
use crate::error::Result;
use crate::linalg::sym_eigen;
use crate::model::exponential_family::{Binomial, Exponential, Poisson};
use crate::model::mixture::log_density_scores;
use crate::model::normal::{Normal, NormalChart};
use crate::model::{GaussianMixture, LossKind, StatModel};
use crate::quadrature::{Rule, Scheme};
use nalgebra::DMatrix;

/// The properties of this group.
pub fn properties() -> Vec<Property> {
    vec![
        Property {
            name: "fisher-forms-mixture",
            statement: "E[s sᵀ] = −E[∂² log p] for the mixture at several points",
            run: forms_mixture,
        },
        Property {
            name: "fisher-forms-normal",
            statement: "E[s sᵀ] = −E[∂² log p] for the normal family in five charts",
            run: forms_normal,
        },
        Property {
            name: "kl-quadratic",
            statement: "KL(p_θ‖p_{θ+εv}) / (½ε²vᵀIv) → 1 with error ∝ ε",
            run: kl_quadratic,
        },
        Property {
            name: "mixture-separated-limit",
            statement: "I → diag(w, 1−w)/σ² when the components are well separated",
            run: separated_limit,
        },
        Property {
            name: "mixture-rank-one",
            statement: "I = (1/σ²)(w, 1−w)(w, 1−w)ᵀ, rank one, at μ₁ = μ₂",
            run: rank_one,
        },
        Property {
            name: "mixture-kappa-exponent",
            statement: "κ(I) ∝ δ⁻² as δ = μ₂ − μ₁ → 0",
            run: kappa_exponent,
        },
        Property {
            name: "normal-fisher-charts",
            statement: "the normal family's Fisher matrix equals its closed form in five charts",
            run: normal_charts,
        },
        Property {
            name: "one-parameter-fisher",
            statement: "Poisson 1/λ, exponential 1/λ², binomial n/(p(1−p))",
            run: one_parameter,
        },
    ]
}

/// The mixture used by the Fisher checks: σ = 0.8, w = 0.3 (asymmetric on purpose).
fn mixture(w: f64, sigma: f64) -> GaussianMixture {
    GaussianMixture {
        sigma,
        w,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

fn forms_mixture() -> Result<Outcome> {
    let m = mixture(0.3, 0.8);
    let pts = [
        [-1.0, 1.5],
        [0.1, 0.15],
        [2.0, 2.0],
        [-3.0, 0.5],
        [0.4, 5.0],
    ];
    let worst = pts
        .iter()
        .map(|p| rel_diff(&m.fisher(p), &m.fisher_hessian_form(p)))
        .fold(0.0, f64::max);
    Ok(Outcome::at_most(
        "fisher-forms-mixture",
        format!(
            "max relative entry difference over {} points: {worst:.2e}",
            pts.len()
        ),
        worst,
        1e-10,
    ))
}

fn forms_normal() -> Result<Outcome> {
    let mut worst = 0.0f64;
    for chart in NormalChart::ALL {
        let m = Normal {
            chart,
            target_mean: 0.0,
            target_var: 1.0,
        };
        for (mu, v) in [(0.7, 1.69), (-2.0, 0.16)] {
            let th = chart.from_mean_var(mu, v);
            worst = worst.max(rel_diff(&m.fisher(&th), &m.fisher_hessian_form(&th)));
        }
    }
    Ok(Outcome::at_most(
        "fisher-forms-normal",
        format!("max relative entry difference, 5 charts x 2 points: {worst:.2e}"),
        worst,
        1e-10,
    ))
}

/// KL(p_a ‖ p_b) for the mixture, by the refined composite rule.
pub fn mixture_kl(m: &GaussianMixture, a: [f64; 2], b: [f64; 2]) -> f64 {
    let rule = Rule::build(&m.scheme.refined(), &m.density(&a), &m.density(&b));
    rule.expect(|x| {
        log_density_scores(x, a, m.sigma, m.w).0 - log_density_scores(x, b, m.sigma, m.w).0
    })
}

fn kl_quadratic() -> Result<Outcome> {
    let m = mixture(0.3, 0.8);
    let th = [-1.0, 1.5];
    let v = nalgebra::DVector::from_vec(vec![0.6, 0.8]);
    let q = (m.fisher(&th) * &v).dot(&v);
    let eps = [0.08, 0.04, 0.02, 0.01];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut last = f64::NAN;
    for &e in &eps {
        let kl = mixture_kl(&m, th, [th[0] + e * v[0], th[1] + e * v[1]]);
        let r = kl / (0.5 * e * e * q);
        last = r;
        xs.push(e.ln());
        ys.push((r - 1.0).abs().ln());
    }
    let slope = fit_slope(&xs, &ys);
    Ok(Outcome::new(
        "kl-quadratic",
        format!(
            "ratio at eps = 0.01: {last:.6}; fitted slope of log|ratio-1| vs log eps over eps = 0.08..0.01: {slope:.4}"
        ),
        slope,
        "|slope - 1| <= 0.1 and |ratio - 1| <= 0.05 at the smallest eps".into(),
        (slope - 1.0).abs() <= 0.1 && (last - 1.0).abs() <= 0.05,
    ))
}

fn separated_limit() -> Result<Outcome> {
    let (w, s) = (0.3, 0.8);
    let m = mixture(w, s);
    let th = [-8.0, 8.0]; // |μ₁ − μ₂| = 20σ
    let want = DMatrix::from_row_slice(2, 2, &[w / (s * s), 0.0, 0.0, (1.0 - w) / (s * s)]);
    let d = rel_diff(&m.fisher(&th), &want);
    Ok(Outcome::at_most(
        "mixture-separated-limit",
        format!(
            "|mu1 - mu2| = 20 sigma, w = {w}: max relative difference from diag(w, 1-w)/sigma^2 = {d:.2e}"
        ),
        d,
        1e-10,
    ))
}

fn rank_one() -> Result<Outcome> {
    let (w, s) = (0.3, 0.8);
    let m = mixture(w, s);
    let f = m.fisher(&[0.7, 0.7]);
    let a = nalgebra::DVector::from_vec(vec![w, 1.0 - w]);
    let want = &a * a.transpose() / (s * s);
    let d = rel_diff(&f, &want);
    let e = sym_eigen(&f);
    let ratio = e.values[0].abs() / e.values[1];
    let v = d.max(ratio);
    Ok(Outcome::at_most(
        "mixture-rank-one",
        format!(
            "mu1 = mu2 = 0.7: lambda_min/lambda_max = {ratio:.2e}, relative difference from (w,1-w)(w,1-w)^T/sigma^2 = {d:.2e}"
        ),
        v,
        1e-12,
    ))
}

fn kappa_exponent() -> Result<Outcome> {
    let m = mixture(0.5, 1.0);
    let c = 0.25;
    let deltas = [0.08, 0.04, 0.02, 0.01, 0.005];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &d in &deltas {
        let e = sym_eigen(&m.fisher(&[c - 0.5 * d, c + 0.5 * d]));
        xs.push(d.ln());
        ys.push((e.values[1] / e.values[0]).ln());
    }
    let slope = fit_slope(&xs, &ys);
    Ok(Outcome::new(
        "mixture-kappa-exponent",
        format!("fitted exponent of kappa(I) vs delta over delta = 0.08..0.005: {slope:.4}"),
        slope,
        "-2 +/- 0.05".into(),
        (slope + 2.0).abs() <= 0.05,
    ))
}

fn normal_charts() -> Result<Outcome> {
    let mut worst = 0.0f64;
    let mut at = String::new();
    for chart in NormalChart::ALL {
        let m = Normal {
            chart,
            target_mean: 0.0,
            target_var: 1.0,
        };
        for (mu, v) in [(0.7, 1.69), (-2.0, 0.16), (3.0, 4.0)] {
            let th = chart.from_mean_var(mu, v);
            let d = rel_diff(&m.fisher(&th), &chart.fisher_closed_form(&th));
            if d > worst {
                worst = d;
                at = format!("{} at (mu, var) = ({mu}, {v})", chart.name());
            }
        }
    }
    Ok(Outcome::at_most(
        "normal-fisher-charts",
        format!(
            "max relative entry difference from the closed forms, 5 charts x 3 points: {worst:.2e} ({at})"
        ),
        worst,
        1e-10,
    ))
}

fn one_parameter() -> Result<Outcome> {
    let mut worst = 0.0f64;
    let mut rows = Vec::new();
    let mut check = |name: String, got: f64, want: f64| {
        let d = (got - want).abs() / want;
        worst = worst.max(d);
        rows.push(format!("{name} {d:.1e}"));
    };
    for l in [0.5, 3.0, 20.0] {
        check(
            format!("Poisson({l})"),
            Poisson { target: 1.0 }.fisher(&[l])[(0, 0)],
            1.0 / l,
        );
    }
    for l in [0.3, 2.0] {
        check(
            format!("Exp({l})"),
            Exponential { target: 1.0 }.fisher(&[l])[(0, 0)],
            1.0 / (l * l),
        );
    }
    for p in [0.1, 0.5, 0.83] {
        let b = Binomial { n: 12, target: 0.5 };
        check(
            format!("Bin(12,{p})"),
            b.fisher(&[p])[(0, 0)],
            12.0 / (p * (1.0 - p)),
        );
    }
    Ok(Outcome::at_most(
        "one-parameter-fisher",
        format!("relative errors: {}", rows.join(", ")),
        worst,
        1e-10,
    ))
}
