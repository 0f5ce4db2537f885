//! Properties of third-order geometry: the Amari–Chentsov tensor, α-connections, duality,
//! the normal family's closed forms, and the third-order flow at the mixture's saddle and the MLP
//! plateau.
//!
//! The independent reference for ∂g is the mixture flow kernel's dual-number derivative of the
//! Fisher matrix through the quadrature ([`crate::flow::FlowKernel::grad_fisher_derivs`]: the
//! composite rule frozen at θ₀ with the density moving through p(x|θ)/p(x|θ₀)), a code path
//! separate from the score/Hessian expectations of [`crate::geometry::mixture`]; for the
//! normal family central differences of the Gauss–Hermite Fisher matrix.

use super::{Outcome, Property};
use crate::error::Result;
use crate::flow::FlowKernel;
use crate::geometry::correction::CAP;
use crate::geometry::escape::{Variant, measure};
use crate::geometry::mixture::{MixtureChart, third_order};
use crate::geometry::{ThirdOrder, christoffel_first_kind, idx, normal, rel_diff};
use crate::model::mixture_kernel::MixtureKernel;
use crate::model::normal::{Normal, NormalChart};
use crate::model::{GaussianMixture, LossKind, StatModel};
use crate::quadrature::Scheme;

/// The properties of this group.
pub fn properties() -> Vec<Property> {
    vec![
        Property {
            name: "amari-chentsov-symmetric",
            statement: "T_ijk = ∂ₖg_ij − Γ⁽¹⁾_{ki,j} − Γ⁽¹⁾_{kj,i} is totally symmetric and equals E[∂ᵢℓ∂ⱼℓ∂ₖℓ]",
            run: amari_chentsov_symmetric,
        },
        Property {
            name: "dual-connections-identity",
            statement: "∂ₖg_ij = Γ⁽ᵅ⁾_{ki,j} + Γ⁽⁻ᵅ⁾_{kj,i} for α ∈ {0, ½, 1, 2}",
            run: dual_connections_identity,
        },
        Property {
            name: "normal-skewness-closed-form",
            statement: "normal family: T in five charts = the (μ,σ) closed form 2/σ³, 8/σ³ pushed forward; T = ∇³ψ in η; Γ⁽¹⁾ = 0 in η, Γ⁽⁻¹⁾ = 0 in (μ, μ²+σ²)",
            run: normal_skewness_closed_form,
        },
        Property {
            name: "levi-civita-is-alpha-zero",
            statement: "Γ⁽⁰⁾ = ½(∂ᵢg_jk + ∂ⱼg_ik − ∂ₖg_ij), the Levi-Civita connection of the Fisher metric",
            run: levi_civita_is_alpha_zero,
        },
        Property {
            name: "saddle-escape-third-order",
            statement: "escape from the saddle on μ₁ = μ₂ (δ₀ = 1e-2, 1e-4, 1e-6): third-order (geodesic acceleration, α = 0) vs natural vs Euclidean flow, all converge, the corrected flow descends",
            run: saddle_escape_third_order,
        },
        Property {
            name: "plateau-escape-third-order",
            statement: "escape from the MLP plateau (2-2-1 tanh student of a two-unit teacher, δ₀ = 1e-2, 1e-4, 1e-6 off the symmetric subspace): third-order (α = 0, τ = 1) vs natural (both G + 1e-8 I) vs Euclidean; all escape, the natural ones converge, the natural escapes do not depend on δ₀, the Euclidean ones grow",
            run: plateau_escape_third_order,
        },
    ]
}

/// The mixtures and points the geometric properties are checked at: σ = 0.8, w ∈ {½, 0.3},
/// target (−1.5, 2), points near and far from the line (δ from 0.05 to 3).
fn mixture_points() -> Vec<(GaussianMixture, [f64; 2])> {
    let mut v = Vec::new();
    for w in [0.5, 0.3] {
        let m = GaussianMixture {
            sigma: 0.8,
            w,
            target: [-1.5, 2.0],
            loss_kind: LossKind::Population,
            scheme: Scheme::default(),
        };
        for th in [
            [-1.0, 1.5],
            [0.2, 0.25],
            [1.0, -0.4],
            [-2.0, 1.0],
            [0.5, 1.1],
        ] {
            v.push((m.clone(), th));
        }
    }
    v
}

/// ∂ₖg_ij of the mixture by the flow kernel's dual numbers, flat [(k·n + i)·n + j].
fn mixture_dg(m: &GaussianMixture, theta: &[f64]) -> Vec<f64> {
    let k = MixtureKernel::new(m);
    let (mut g, mut f, mut h, mut df) = ([0.0; 2], [0.0; 4], [0.0; 4], vec![0.0; 8]);
    k.grad_fisher_derivs(theta, &mut g, &mut f, &mut h, &mut df);
    df
}

/// ∂ₖg_ij of the normal family in `chart` by central differences of its Fisher matrix.
fn normal_dg(chart: NormalChart, theta: &[f64]) -> Vec<f64> {
    let model = Normal {
        chart,
        target_mean: 0.0,
        target_var: 1.0,
    };
    let mut out = vec![0.0; 8];
    for k in 0..2 {
        let h = 1e-5 * theta[k].abs().max(0.1);
        let (mut p, mut q) = (theta.to_vec(), theta.to_vec());
        p[k] += h;
        q[k] -= h;
        let d = (model.fisher(&p) - model.fisher(&q)) / (2.0 * h);
        for i in 0..2 {
            for j in 0..2 {
                out[idx(2, k, i, j)] = d[(i, j)];
            }
        }
    }
    out
}

/// Normal-family test points: (μ, v) = (0.4, 1.3) and (−1, 0.5) in every chart.
fn normal_points() -> Vec<(NormalChart, [f64; 2])> {
    let mut v = Vec::new();
    for chart in NormalChart::ALL {
        for (mu, var) in [(0.4, 1.3), (-1.0, 0.5)] {
            v.push((chart, chart.from_mean_var(mu, var)));
        }
    }
    v
}

/// T from ∂g and Γ⁽¹⁾: T_ijk = ∂ₖg_ij − Γ⁽¹⁾_{ki,j} − Γ⁽¹⁾_{kj,i}.
fn skewness_from_dg(geo: &ThirdOrder, dg: &[f64]) -> ThirdOrder {
    let n = geo.dim();
    let mut out = geo.clone();
    for i in 0..n {
        for j in 0..n {
            for k in 0..n {
                out.t[idx(n, i, j, k)] =
                    dg[idx(n, k, i, j)] - geo.e[idx(n, k, i, j)] - geo.e[idx(n, k, j, i)];
            }
        }
    }
    out
}

fn amari_chentsov_symmetric() -> Result<Outcome> {
    let (mut asym, mut agree) = (0.0f64, 0.0f64);
    let mut count = 0;
    for (m, th) in mixture_points() {
        let geo = third_order(&m, &th, MixtureChart::Theta);
        let derived = skewness_from_dg(&geo, &mixture_dg(&m, &th));
        asym = asym.max(derived.asymmetry());
        agree = agree.max(rel_diff(&derived.t, &geo.t));
        count += 1;
    }
    for (chart, th) in normal_points() {
        let geo = normal::third_order(chart, &th);
        let derived = skewness_from_dg(&geo, &normal_dg(chart, &th));
        asym = asym.max(derived.asymmetry());
        agree = agree.max(rel_diff(&derived.t, &geo.t));
        count += 1;
    }
    let worst = asym.max(agree);
    Ok(Outcome::at_most(
        "amari-chentsov-symmetric",
        format!(
            "{count} points (mixture w = 0.5, 0.3 by dual-number ∂g; normal family in 5 charts by central differences): T from ∂g − Γ⁽¹⁾ − Γ⁽¹⁾ asymmetric by {asym:.2e}, differs from E[sss] by {agree:.2e} (relative to max |T|)"
        ),
        worst,
        1e-8,
    ))
}

fn dual_connections_identity() -> Result<Outcome> {
    let alphas = [0.0, 0.5, 1.0, 2.0];
    let mut worst = 0.0f64;
    let mut count = 0;
    let mut check = |geo: &ThirdOrder, dg: &[f64]| {
        let n = geo.dim();
        for a in alphas {
            let (p, q) = (geo.connection(a), geo.connection(-a));
            let mut sum = vec![0.0; n * n * n];
            for k in 0..n {
                for i in 0..n {
                    for j in 0..n {
                        sum[idx(n, k, i, j)] = p[idx(n, k, i, j)] + q[idx(n, k, j, i)];
                    }
                }
            }
            worst = worst.max(rel_diff(&sum, dg));
        }
        count += 1;
    };
    for (m, th) in mixture_points() {
        check(
            &third_order(&m, &th, MixtureChart::Theta),
            &mixture_dg(&m, &th),
        );
    }
    for (chart, th) in normal_points() {
        check(&normal::third_order(chart, &th), &normal_dg(chart, &th));
    }
    Ok(Outcome::at_most(
        "dual-connections-identity",
        format!(
            "{count} points × α ∈ {alphas:?}: max |Γ⁽ᵅ⁾_(ki,j) + Γ⁽⁻ᵅ⁾_(kj,i) − ∂ₖg_ij| / max |∂g| = {worst:.2e}"
        ),
        worst,
        1e-8,
    ))
}

fn normal_skewness_closed_form() -> Result<Outcome> {
    let (mut t_err, mut psi_err, mut flat, mut e_err) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (chart, th) in normal_points() {
        let q = normal::third_order(chart, &th);
        t_err = t_err.max(rel_diff(&q.t, &normal::skewness_closed_form(chart, &th)));
        let scale = q.t.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        match chart {
            NormalChart::MuSigma => {
                let (_, v) = chart.mean_var(th[0], th[1]);
                e_err = e_err.max(rel_diff(&q.e, &normal::closed_form_mu_sigma(v.sqrt()).e));
            }
            NormalChart::Natural => {
                psi_err = psi_err.max(rel_diff(&q.t, &normal::natural_skewness(th)));
                flat = flat.max(q.e.iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale);
            }
            NormalChart::Expectation => {
                let m = q.connection(-1.0);
                flat = flat.max(m.iter().fold(0.0f64, |a, v| a.max(v.abs())) / scale);
            }
            _ => {}
        }
    }
    let worst = t_err.max(psi_err).max(flat).max(e_err);
    Ok(Outcome::at_most(
        "normal-skewness-closed-form",
        format!(
            "2 points × 5 charts: T vs (μ,σ) closed form pushed forward {t_err:.2e}; T vs ∇³ψ in η {psi_err:.2e}; Γ⁽¹⁾ (μ,σ) vs closed form {e_err:.2e}; |Γ⁽¹⁾| in η and |Γ⁽⁻¹⁾| in (μ, μ²+σ²) {flat:.2e} (relative to max |T|)"
        ),
        worst,
        1e-11,
    ))
}

fn levi_civita_is_alpha_zero() -> Result<Outcome> {
    let (mut mix, mut nor) = (0.0f64, 0.0f64);
    for (m, th) in mixture_points() {
        let geo = third_order(&m, &th, MixtureChart::Theta);
        let lc = christoffel_first_kind(2, &mixture_dg(&m, &th));
        mix = mix.max(rel_diff(&geo.connection(0.0), &lc));
    }
    for (chart, th) in normal_points() {
        let geo = normal::third_order(chart, &th);
        let lc = christoffel_first_kind(2, &normal_dg(chart, &th));
        nor = nor.max(rel_diff(&geo.connection(0.0), &lc));
    }
    Ok(Outcome::at_most(
        "levi-civita-is-alpha-zero",
        format!(
            "max |Γ⁽⁰⁾ − Christoffel(∂g)| / max |Christoffel|: mixture (10 points, dual-number ∂g) {mix:.2e}, normal (5 charts, central differences) {nor:.2e}"
        ),
        mix.max(nor),
        1e-8,
    ))
}

fn saddle_escape_third_order() -> Result<Outcome> {
    let deltas = [1e-2, 1e-4, 1e-6];
    let variants = [
        Variant::Natural,
        Variant::Geodesic {
            alpha: 0.0,
            tau: 1.0,
        },
        Variant::Euclidean,
    ];
    let mut parts = Vec::new();
    let mut all = true;
    let mut max_rate = f64::NEG_INFINITY;
    let mut times = [[f64::NAN; 3]; 3];
    for (vi, v) in variants.iter().enumerate() {
        let mut line = Vec::new();
        for (di, &d) in deltas.iter().enumerate() {
            let r = measure(1.0, 0.5, d, *v, 400.0)?;
            let t = r.t_reach.unwrap_or(f64::NAN);
            all &= r.t_reach.is_some();
            max_rate = max_rate.max(r.max_rate);
            times[vi][di] = t;
            line.push(format!("{t:.3} ({} evals)", r.rhs_evals));
        }
        parts.push(format!("{}: {}", v.label(), line.join(", ")));
    }
    // the headline: third-order time relative to the natural one at δ₀ = 1e-6
    let ratio = times[1][2] / times[0][2];
    let verdict = if ratio < 1.0 {
        "faster than"
    } else {
        "slower than"
    };
    Ok(Outcome::new(
        "saddle-escape-third-order",
        format!(
            "σ = 1, w = ½, time to L − L* < 1e-6 from δ₀ = 1e-2, 1e-4, 1e-6: {}; at 1e-6 the third-order flow is {verdict} the natural one (ratio {ratio:.3}); cap r = {CAP}; largest recorded dL/dt {max_rate:.2e}",
            parts.join("; ")
        ),
        ratio,
        "every flow converges from every δ₀, dL/dt ≤ 0 at every step (ratio reported, not judged)"
            .into(),
        all && max_rate <= 0.0,
    ))
}

/// Damping of the natural flows at the plateau (the undamped exact metric stops at the solve's
/// rank cut: its smallest eigenvalue is ~δ⁴ off the symmetric subspace).
const PLATEAU_DAMPING: f64 = 1e-8;

fn plateau_escape_third_order() -> Result<Outcome> {
    use crate::geometry::plateau;
    let saddle = plateau::symmetric_saddle()?;
    let deltas = [1e-2, 1e-4, 1e-6];
    let variants = [
        Variant::Natural,
        Variant::Geodesic {
            alpha: 0.0,
            tau: 1.0,
        },
        Variant::Euclidean,
    ];
    let mut parts = Vec::new();
    let mut all = true;
    let mut max_rate = f64::NEG_INFINITY;
    let mut esc = [[f64::NAN; 3]; 3];
    let mut reach = [[f64::NAN; 3]; 3];
    for (vi, v) in variants.iter().enumerate() {
        let mut line = Vec::new();
        for (di, &d) in deltas.iter().enumerate() {
            // the Euclidean flow only to its escape (t ≤ 62 here; its convergence takes t ≈ 500)
            let euclidean = *v == Variant::Euclidean;
            let t_end = if euclidean { 100.0 } else { 20.0 };
            let r = plateau::measure(&saddle, d, 1, *v, PLATEAU_DAMPING, t_end)?;
            all &= r.t_escape.is_some() && (euclidean || r.t_reach.is_some());
            max_rate = max_rate.max(r.max_rate);
            esc[vi][di] = r.t_escape.unwrap_or(f64::NAN);
            reach[vi][di] = r.t_reach.unwrap_or(f64::NAN);
            let reached = r.t_reach.map_or("—".to_string(), |t| format!("{t:.3}"));
            line.push(format!(
                "{:.3}/{reached} ({} evals)",
                esc[vi][di], r.rhs_evals
            ));
        }
        parts.push(format!("{}: {}", v.label(), line.join(", ")));
    }
    let spread = |row: &[f64; 3]| {
        let (lo, hi) = row
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        hi / lo - 1.0
    };
    let (s_nat, s_geo) = (spread(&esc[0]), spread(&esc[1]));
    let eu_growth = esc[2][2] / esc[2][0];
    // the headline: third-order escape time relative to the natural one at δ₀ = 1e-6
    let ratio = esc[1][2] / esc[0][2];
    let verdict = if ratio < 1.0 { "faster" } else { "slower" };
    Ok(Outcome::new(
        "plateau-escape-third-order",
        format!(
            "escape t / t to L − L* < 1e-6 (Euclidean: integrated to t = 100 only) from δ₀ = 1e-2, 1e-4, 1e-6 (direction seed 1, λ = {PLATEAU_DAMPING:e}): {}; at 1e-6 the third-order flow escapes {verdict} than the natural one (ratio {ratio:.3}); escape-time spread over δ₀: natural {s_nat:.3}, third-order {s_geo:.3}; Euclidean t(1e-6)/t(1e-2) = {eu_growth:.2}; largest recorded dL/dt {max_rate:.2e}",
            parts.join("; ")
        ),
        ratio,
        "every flow escapes, natural and third-order converge, dL/dt ≤ 0 at every step, natural and third-order escape spreads ≤ 0.1, Euclidean t(1e-6)/t(1e-2) ≥ 2 (ratio reported, not judged)".into(),
        all && max_rate <= 0.0 && s_nat <= 0.1 && s_geo <= 0.1 && eu_growth >= 2.0,
    ))
}
