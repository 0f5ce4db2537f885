//! The mixture's Fisher matrix, scores and gradients against closed forms and finite differences.

use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::Scheme;

fn model(w: f64, sigma: f64) -> GaussianMixture {
    GaussianMixture {
        sigma,
        w,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

#[test]
fn well_separated_fisher_is_diag_w_over_sigma2() {
    for &(w, sigma) in &[(0.5, 1.0), (0.3, 1.0), (0.5, 0.5)] {
        let m = model(w, sigma);
        // (−10, 10) is 20σ apart for σ = 1; scale with σ so the separation stays ≥ 20σ.
        let th = [-10.0 * sigma, 10.0 * sigma];
        let f = m.fisher(&th);
        let s2 = sigma * sigma;
        assert!((f[(0, 0)] - w / s2).abs() < 1e-9, "{f}");
        assert!((f[(1, 1)] - (1.0 - w) / s2).abs() < 1e-9, "{f}");
        assert!(f[(0, 1)].abs() < 1e-9, "{f}");
    }
}

#[test]
fn coincident_means_give_the_rank_one_closed_form() {
    for &(w, sigma, m0) in &[(0.5, 1.0, 0.3), (0.25, 0.7, -2.0), (0.9, 2.0, 5.0)] {
        let f = model(w, sigma).fisher(&[m0, m0]);
        let s2 = sigma * sigma;
        let expect = [
            [w * w, w * (1.0 - w)],
            [w * (1.0 - w), (1.0 - w) * (1.0 - w)],
        ];
        for i in 0..2 {
            for j in 0..2 {
                let e = expect[i][j] / s2;
                assert!(
                    (f[(i, j)] - e).abs() < 1e-12 * e.abs().max(1.0),
                    "({i},{j}) {} vs {e}",
                    f[(i, j)]
                );
            }
        }
        // rank one: the determinant vanishes relative to the entries
        let det = f[(0, 0)] * f[(1, 1)] - f[(0, 1)] * f[(1, 0)];
        assert!(det.abs() < 1e-14 * f.norm_squared());
    }
}

#[test]
fn score_square_form_equals_negative_hessian_form() {
    for &(w, sigma) in &[(0.5, 1.0), (0.3, 0.8)] {
        let m = model(w, sigma);
        for th in [
            [0.1, 0.15],
            [-1.5, 2.0],
            [-3.0, 0.5],
            [2.0, 2.0],
            [-6.0, 6.0],
            [1.0, -4.0],
        ] {
            let a = m.fisher(&th);
            let b = m.fisher_hessian_form(&th);
            assert!(
                (&a - &b).amax() < 1e-8 * a.amax().max(1.0),
                "{th:?}\n{a}\n{b}"
            );
        }
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    for loss_kind in [
        LossKind::Population,
        LossKind::Empirical {
            samples: fisher_flow::model::mixture::draw_samples(300, 7, [-1.5, 2.0], 1.0, 0.5),
            seed: 7,
        },
    ] {
        let m = GaussianMixture {
            loss_kind,
            ..model(0.5, 1.0)
        };
        for th in [[0.1, 0.15], [-3.0, 4.0], [1.5, -1.0], [2.0, 2.0]] {
            let g = m.gradient(&th);
            for k in 0..2 {
                let h = 1e-5;
                let mut p = th;
                let mut q = th;
                p[k] += h;
                q[k] -= h;
                let fd = (m.loss(&p) - m.loss(&q)) / (2.0 * h);
                assert!(
                    (g[k] - fd).abs() < 1e-7 * (1.0 + g[k].abs()),
                    "{th:?} k={k}: {} vs {fd}",
                    g[k]
                );
            }
        }
    }
}

#[test]
fn loss_is_minimal_at_the_target_and_its_swap() {
    let m = model(0.5, 1.0);
    let l_star = m.loss(&[-1.5, 2.0]);
    assert!((m.loss(&[2.0, -1.5]) - l_star).abs() < 1e-12);
    assert!(m.gradient(&[-1.5, 2.0]).norm() < 1e-12);
    for th in [[-1.4, 2.0], [-1.5, 2.1], [0.0, 0.0], [3.0, 3.0]] {
        assert!(m.loss(&th) > l_star);
    }
}

#[test]
fn far_apart_components_and_tiny_sigma_stay_finite() {
    let m = model(0.5, 1e-3);
    let th = [-1e4, 1e4];
    let mut g = [0.0; 2];
    let l = m.loss_grad(&th, &mut g);
    assert!(l.is_finite() && g.iter().all(|v| v.is_finite()));
    let f = m.fisher(&th);
    assert!(f.iter().all(|v| v.is_finite()));
}

/// I₁₂ = E[s₁s₂] = ∫ w₁N₁·w₂N₂/p · (x−μ₁)(x−μ₂)/σ⁴ dx by an independent computation: the
/// trapezoid rule with h = σ/1000 on [μ₁ − 12σ, μ₂ + 12σ], integrand in log space (for an
/// analytic integrand the trapezoid error is ~e^{−2π·d/h}, d = πσ²/|Δ| the pole distance:
/// below e^{−400} here).
fn f12_trapezoid(mu: [f64; 2], sigma: f64, w: f64) -> f64 {
    let s2 = sigma * sigma;
    let norm = -(sigma * (2.0 * std::f64::consts::PI).sqrt()).ln();
    let f = |x: f64| {
        let la = w.ln() - (x - mu[0]).powi(2) / (2.0 * s2) + norm;
        let lb = (1.0 - w).ln() - (x - mu[1]).powi(2) / (2.0 * s2) + norm;
        let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
        let lse = hi + (lo - hi).exp().ln_1p();
        (la + lb - lse).exp() * (x - mu[0]) * (x - mu[1]) / (s2 * s2)
    };
    let (a, b) = (mu[0] - 12.0 * sigma, mu[1] + 12.0 * sigma);
    let h = sigma / 1000.0;
    let n = ((b - a) / h).ceil() as usize;
    let h = (b - a) / n as f64;
    let mut sum = 0.5 * (f(a) + f(b));
    for i in 1..n {
        sum += f(a + i as f64 * h);
    }
    sum * h
}

#[test]
fn off_diagonal_fisher_entry_is_exact_for_well_separated_components() {
    // was −1.47e-195 for the true −8.65e-87 at 40σ (the rule covered only ±10σ around each mean)
    for &(w, sigma, sep) in &[
        (0.5, 1.0, 15.0),
        (0.5, 1.0, 25.0),
        (0.3, 1.0, 40.0),
        (0.5, 2.0, 40.0),
        (0.9, 1.0, 55.0),
    ] {
        let m = model(w, sigma);
        let th = [-0.5 * sep * sigma, 0.5 * sep * sigma];
        let f = m.fisher(&th);
        let r = f12_trapezoid(th, sigma, w);
        assert!(r < 0.0 && r.is_normal(), "{sep}σ: reference {r}");
        assert!(
            (f[(0, 1)] - r).abs() < 1e-10 * r.abs(),
            "w {w} {sep}σ: I12 = {:e}, reference {r:e}",
            f[(0, 1)]
        );
        // the diagonal stays ≈ w/σ² (its cross-term correction ~ e^{−sep²/8})
        assert!((f[(0, 0)] - w / (sigma * sigma)).abs() < 1e-8 / (sigma * sigma));
    }
}
