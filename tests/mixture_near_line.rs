//! The mixture's natural gradient, eigenvalues and angle near and on the singular line μ₁ = μ₂,
//! against an independent 60-digit reference (mpmath, `tests/data/mixture_near_line_reference.py`,
//! which integrates in plain θ-coordinates) and against the closed-form flow on the line.

use fisher_flow::flow::FlowRhs;
use fisher_flow::inspect::PointReport;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::Scheme;

fn mixture(sigma: f64, w: f64, target: [f64; 2]) -> GaussianMixture {
    GaussianMixture {
        sigma,
        w,
        target,
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    num / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

struct Case {
    model: GaussianMixture,
    theta: [f64; 2],
    nat: [f64; 2],
    angle: f64,
    eig: [f64; 2],
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/mixture_near_line_reference.json");
    let v: serde_json::Value = serde_json::from_str(text).expect("reference JSON parses");
    let pair = |x: &serde_json::Value| [x[0].as_f64().unwrap(), x[1].as_f64().unwrap()];
    v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            model: mixture(
                c["sigma"].as_f64().unwrap(),
                c["w"].as_f64().unwrap(),
                pair(&c["target"]),
            ),
            // parsed by Rust's exact float parser from the generator's repr() strings
            theta: [0, 1].map(|k| c["theta_str"][k].as_str().unwrap().parse().unwrap()),
            nat: pair(&c["natural_gradient"]),
            angle: c["angle_deg"].as_f64().unwrap(),
            eig: pair(&c["eigenvalues"]),
        })
        .collect()
}

#[test]
fn natural_gradient_and_kappa_match_the_60_digit_reference_down_to_1e_12_sigma() {
    let cases = cases();
    assert!(cases.len() >= 16);
    let mut smallest = f64::INFINITY;
    for c in &cases {
        let d = (c.theta[1] - c.theta[0]).abs() / c.model.sigma;
        smallest = smallest.min(d);
        let geo = c
            .model
            .exact_geometry(&c.theta, 0.0)
            .expect("the mixture has a chart geometry");
        // the chart's θ-gradient is the model's gradient, bit for bit: a caller that solves the
        // exact provider's metric with ∇L (optimize, records) gets the chart natural gradient
        assert_eq!(c.model.gradient(&c.theta), geo.gradient);
        // κ and the eigenvalues (issue 11's κ = inf cases) to full relative accuracy
        let r = PointReport::at(&c.model, MetricKind::Exact, 0.0, &c.theta);
        let k = r.condition_number.expect("finite κ off the line");
        let k_ref = c.eig[1] / c.eig[0];
        assert!((k - k_ref).abs() < 1e-10 * k_ref, "{k} vs {k_ref}");
        let rhs = FlowRhs::new(&c.model, MetricKind::Exact, 0.0);
        let (k_rec, lmin_rec) = rhs.conditioning_at(&c.theta);
        assert!((k_rec - k_ref).abs() < 1e-10 * k_ref, "{k_rec} vs {k_ref}");
        assert!((lmin_rec - c.eig[0]).abs() < 1e-10 * c.eig[0]);
        for k in 0..2 {
            let e = (geo.eigenvalues[k] - c.eig[k]).abs() / c.eig[k];
            assert!(e < 1e-10, "{:?}: eigenvalue {k} off by {e:e}", c.theta);
        }
        if c.model.sigma > 1e6 {
            // The loss gradient's exchange part, −E_θ*[s_δ], is E[y²]/σ² − 1 ≈ spread²/σ² of the
            // target: at σ ≈ 4e9 its quadrature cancels to nothing, so the natural gradient is
            // not claimed there (only the metric's eigenvalues are).
            continue;
        }
        let e = rel(geo.natural.as_slice(), &c.nat);
        assert!(e < 1e-10, "{:?}: natural gradient off by {e:e}", c.theta);
        // the flow's right-hand side (kernel path) and the metric report agree with it
        let f = rhs.eval_vec(&c.theta);
        let e = rel(&[-f[0], -f[1]], &c.nat);
        assert!(e < 1e-10, "{:?}: rhs off by {e:e}", c.theta);
        assert!(rel(&r.natural_gradient, &c.nat) < 1e-10);
        assert!(
            (r.angle_deg - c.angle).abs() < 1e-9,
            "{:?}: angle {} vs {}",
            c.theta,
            r.angle_deg,
            c.angle
        );
    }
    assert!(smallest <= 1.01e-12);
}

#[test]
fn the_issue_point_has_an_angle_of_89_9996_degrees() {
    let m = mixture(1.0, 0.5, [-1.5, 2.0]);
    let r = PointReport::at(&m, MetricKind::Exact, 0.0, &[12.4999995, 12.5000005]);
    assert!((r.angle_deg - 89.9996).abs() < 1e-4, "{}", r.angle_deg);
}

/// On the line both `metric` and `run` use the limit along the line: (v_M, v_M) with
/// v_M = g_M/A = M − m*, so the flow is M(t) = m* + (M₀ − m*)e^{−t}.
#[test]
fn on_the_line_metric_and_run_agree_with_the_closed_form_flow() {
    for &(w, sigma, m0) in &[(0.3, 1.0, 0.4), (0.5, 1.0, 2.0), (0.85, 2.0, -1.0)] {
        let target = [-1.5, 2.0];
        let m = mixture(sigma, w, target);
        let m_star = w * target[0] + (1.0 - w) * target[1];
        let th = [m0, m0];
        // metric: the limit δ → 0 of the natural gradient's component along the line
        let r = PointReport::at(&m, MetricKind::Exact, 0.0, &th);
        for k in 0..2 {
            let e = (r.natural_gradient[k] - (m0 - m_star)).abs();
            assert!(
                e < 1e-12 * (1.0 + m_star.abs()),
                "w {w}: {:?}",
                r.natural_gradient
            );
        }
        // and the limit of the off-line values: the along-line part converges to it
        for d in [1e-6, -1e-9] {
            let g = m
                .exact_geometry(&[m0 - (1.0 - w) * d, m0 + w * d], 0.0)
                .unwrap();
            let along = w * g.natural[0] + (1.0 - w) * g.natural[1];
            assert!((along - (m0 - m_star)).abs() < 1e-5 * (1.0 + m_star.abs()));
        }
        // run (restricted to the line) integrates θ' = −(v_M, v_M)
        let mut rhs = FlowRhs::new(&m, MetricKind::Exact, 0.0);
        rhs.set_line(Some((0, 1)));
        let f = rhs.eval_vec(&th);
        for k in 0..2 {
            assert!((f[k] + r.natural_gradient[k]).abs() < 1e-12 * (1.0 + m_star.abs()));
        }
        // integrate with RK4 (fixed steps) and compare with m* + (M₀ − m*)e^{−t}
        let (mut y, h, steps) = (th, 0.01, 150);
        for _ in 0..steps {
            let k1 = rhs.eval_vec(&y);
            let y2 = [y[0] + 0.5 * h * k1[0], y[1] + 0.5 * h * k1[1]];
            let k2 = rhs.eval_vec(&y2);
            let y3 = [y[0] + 0.5 * h * k2[0], y[1] + 0.5 * h * k2[1]];
            let k3 = rhs.eval_vec(&y3);
            let y4 = [y[0] + h * k3[0], y[1] + h * k3[1]];
            let k4 = rhs.eval_vec(&y4);
            for i in 0..2 {
                y[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
        }
        let t = h * steps as f64;
        let exact = m_star + (m0 - m_star) * (-t).exp();
        assert_eq!(y[0], y[1], "the flow stays on the line");
        assert!((y[0] - exact).abs() < 1e-9, "w {w}: {} vs {exact}", y[0]);
    }
}

#[test]
fn damped_natural_gradient_matches_the_dense_solve_away_from_the_line() {
    // with λ > 0 the dense solve is well conditioned: both must agree
    let m = mixture(1.0, 0.3, [-1.5, 2.0]);
    for th in [[0.4, 0.4 + 1e-7], [-1.0, 1.0], [0.2, 0.2]] {
        for lam in [1e-3, 0.1] {
            let geo = m.exact_geometry(&th, lam).unwrap();
            let dense = MetricKind::Exact.at(&m, &th, lam);
            let x = dense.solve(&geo.gradient);
            assert!(
                rel(geo.natural.as_slice(), x.as_slice()) < 1e-9,
                "{th:?} {lam}"
            );
            let r = PointReport::at(&m, MetricKind::Exact, lam, &th);
            let k = r.damped_condition_number.expect("damped κ is finite");
            let ev = dense.eigenvalues();
            let k_ref = (ev[1] + lam) / (ev[0] + lam);
            assert!((k - k_ref).abs() < 1e-9 * k_ref, "{k} {k_ref}");
        }
    }
}
