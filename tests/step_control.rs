//! Singularity-aware step control: no step crosses μ₁ = μ₂, a start on the line stays there and
//! says so, `--perturb` leaves it, the control saves rejections near the line.

use assert_cmd::Command;
use fisher_flow::flow::{FlowSettings, Simulator, SolverKind};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;
use proptest::prelude::*;

fn demo(nodes: usize) -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::GaussHermite { nodes },
    }
}

fn fast(solver: SolverKind) -> FlowSettings {
    FlowSettings {
        solver,
        rtol: 1e-6,
        atol: 1e-9,
        t_end: 4.0,
        grad_tol: 0.0,
        interior_points: 0,
        ..FlowSettings::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn no_step_crosses_the_singular_line(
        mu in -3.5f64..3.5,
        log_delta in -7.0f64..-0.5,
        sign in prop::bool::ANY,
        implicit in prop::bool::ANY,
    ) {
        let m = demo(16);
        let delta = 10f64.powf(log_delta) * if sign { 1.0 } else { -1.0 };
        let start = [mu, mu + delta];
        let solver = if implicit { SolverKind::Bdf } else { SolverKind::Tsit45 };
        let tr = Simulator::new(&m, fast(solver)).unwrap().run(&start).unwrap();
        for s in &tr.steps {
            let d = s.theta[1] - s.theta[0];
            prop_assert!(d != 0.0 && d.signum() == delta.signum(), "crossed at t = {}: {:?}", s.t, s.theta);
            prop_assert!(s.theta.iter().all(|v| v.is_finite()) && s.loss.is_finite() && s.rate.is_finite());
        }
    }
}

#[test]
fn a_start_on_the_line_stays_on_it_and_reaches_the_single_gaussian_fit() {
    let m = demo(32);
    let tr = Simulator::new(
        &m,
        FlowSettings {
            t_end: 20.0,
            ..fast(SolverKind::Tsit45)
        },
    )
    .unwrap()
    .run(&[1.3, 1.3])
    .unwrap();
    assert!(tr.steps.iter().all(|s| s.theta[0] == s.theta[1]));
    let ev = tr
        .events
        .iter()
        .find(|e| e.kind == "on-singular-line")
        .expect("event");
    assert!(ev.detail.contains("--perturb"));
    // On the line the model is N(μ, σ²); the cross-entropy minimizer is the target mean
    // w·μ₁* + (1−w)·μ₂* = 0.25.
    let end = &tr.last().unwrap().theta;
    assert!((end[0] - 0.25).abs() < 1e-5, "{end:?}");
}

#[test]
fn control_saves_rejections_near_the_line_at_the_same_accuracy() {
    let m = demo(24);
    let base = FlowSettings {
        rtol: 1e-8,
        atol: 1e-10,
        t_end: 3.0,
        ..fast(SolverKind::Tsit45)
    };
    let start = [0.5 - 5e-5, 0.5 + 5e-5];
    let reference = Simulator::new(
        &m,
        FlowSettings {
            rtol: 1e-12,
            atol: 1e-14,
            ..base.clone()
        },
    )
    .unwrap()
    .run_end(&start)
    .unwrap();
    let r = reference.last().unwrap().theta.clone();
    let run = |control: bool| {
        let tr = Simulator::new(
            &m,
            FlowSettings {
                step_control: control,
                ..base.clone()
            },
        )
        .unwrap()
        .run_end(&start)
        .unwrap();
        let e = &tr.last().unwrap().theta;
        (
            tr.stats.rejected,
            ((e[0] - r[0]).powi(2) + (e[1] - r[1]).powi(2)).sqrt(),
        )
    };
    let (rej_off, err_off) = run(false);
    let (rej_on, err_on) = run(true);
    assert!(
        2 * rej_on <= rej_off,
        "rejections with control {rej_on}, without {rej_off}"
    );
    assert!(
        err_on <= 2.0 * err_off.max(1e-8),
        "error with control {err_on:e}, without {err_off:e}"
    );
}

fn model_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(
        &p,
        "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[quadrature]\nnodes = 16\n[flow]\nrtol = 1e-6\natol = 1e-9\nt_end = 6.0\nstarts = [[1.0, 1.0]]\n",
    )
    .unwrap();
    p
}

#[test]
fn cli_says_so_on_the_line_and_perturb_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let out = Command::cargo_bin("fisher-flow")
        .unwrap()
        .args([
            "run",
            model.to_str().unwrap(),
            "--out",
            dir.path().join("a").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("singular line").count(), 1, "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/trajectory.json")).unwrap())
            .unwrap();
    let steps = json["trajectories"][0]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["theta"][0] == s["theta"][1]));

    let out = Command::cargo_bin("fisher-flow")
        .unwrap()
        .args([
            "run",
            model.to_str().unwrap(),
            "--perturb",
            "1e-3",
            "--out",
            dir.path().join("b").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("perturbed start"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("b/trajectory.json")).unwrap())
            .unwrap();
    let steps = json["trajectories"][0]["steps"].as_array().unwrap();
    let last = &steps[steps.len() - 1]["theta"];
    let (a, b) = (last[0].as_f64().unwrap(), last[1].as_f64().unwrap());
    assert!((b - a).abs() > 1.0, "left the line: {a} {b}");

    let out = Command::cargo_bin("fisher-flow")
        .unwrap()
        .args([
            "run",
            model.to_str().unwrap(),
            "--perturb",
            "-1",
            "--out",
            dir.path().join("c").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--perturb"));
}

#[test]
fn fast_two_by_two_solve_matches_the_metric_pseudo_inverse() {
    use fisher_flow::flow::FlowRhs;
    use fisher_flow::metric::MetricKind;
    use fisher_flow::model::StatModel;
    let m = demo(64);
    let rhs = FlowRhs::new(&m, MetricKind::Exact, 0.0);
    assert!(rhs.uses_kernel());
    for th in [
        [0.3, 0.3 + 1e-3],
        [0.3, 0.3 + 1e-7],
        [1.0, 1.0],
        [-3.0, 2.5],
        [2.0, -1.0],
    ] {
        let f = rhs.eval_vec(&th);
        // the cancellation-free chart solve (the dense pseudo-inverse loses ≈ ε/δ² near the line)
        let reference = -m.exact_geometry(&th, 0.0).expect("chart solve").natural;
        let scale = reference.amax().max(1e-12);
        assert!(
            (&f - &reference).amax() <= 1e-8 * scale,
            "{th:?}: {f} vs {reference}"
        );
    }
}

#[test]
fn damping_floor_scales_with_the_trace_of_the_fisher_matrix() {
    use fisher_flow::flow::FlowRhs;
    use fisher_flow::metric::MetricKind;
    use fisher_flow::model::StatModel;
    let m = demo(32);
    let nu = 1e-3;
    let rhs = FlowRhs::new(&m, MetricKind::Exact, 0.0).with_damping_floor(nu);
    for th in [[0.3, 0.3 + 1e-4], [-2.0, 1.0]] {
        let g = m.fisher(&th);
        let lam = nu * g.trace();
        let mut damped = g.clone();
        damped[(0, 0)] += lam;
        damped[(1, 1)] += lam;
        let reference = -damped.cholesky().unwrap().solve(&m.gradient(&th));
        let f = rhs.eval_vec(&th);
        assert!(
            (&f - &reference).amax() <= 1e-9 * reference.amax(),
            "{th:?}: {f} vs {reference}"
        );
        // and it bounds the speed near the line: |f| ≤ |∇L| / λ_eff
        assert!(f.norm() <= m.gradient(&th).norm() / lam * (1.0 + 1e-12));
    }
}

/// The issue's model: σ = 1, w = 0.2, target (−1.5, 2), composite quadrature.
fn unequal() -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.2,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

/// Classical RK4 with a fixed step for dθ/dt = f(θ): an integrator independent of diffsol and
/// of the step control.
fn rk4(f: impl Fn(&[f64]) -> [f64; 2], start: [f64; 2], t_end: f64, steps: usize) -> [f64; 2] {
    let h = t_end / steps as f64;
    let mut y = start;
    let add = |y: [f64; 2], k: [f64; 2], c: f64| [y[0] + c * k[0], y[1] + c * k[1]];
    for _ in 0..steps {
        let k1 = f(&y);
        let k2 = f(&add(y, k1, 0.5 * h));
        let k3 = f(&add(y, k2, 0.5 * h));
        let k4 = f(&add(y, k3, h));
        for i in 0..2 {
            y[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
    y
}

#[test]
fn the_euclidean_flow_crosses_the_line_when_w_is_not_one_half() {
    use fisher_flow::metric::MetricKind;
    use fisher_flow::model::StatModel;
    let m = unequal();
    let start = [0.5, 0.4];
    // independent reference: RK4, h = 2/800 (error O(h⁴) ≈ 1e-11 here)
    let reference = rk4(
        |th| {
            let g = m.gradient(th);
            [-g[0], -g[1]]
        },
        start,
        2.0,
        800,
    );
    // the issue's value (scipy DOP853 at rtol 1e-12)
    let issue = [0.433992401, 1.364609609];
    assert!(
        (reference[0] - issue[0]).abs() < 1e-9 && (reference[1] - issue[1]).abs() < 1e-9,
        "{reference:?}"
    );
    for solver in [SolverKind::Tsit45, SolverKind::Bdf, SolverKind::Auto] {
        let tr = Simulator::new(
            &m,
            FlowSettings {
                metric: MetricKind::Euclidean,
                solver,
                rtol: 1e-10,
                atol: 1e-12,
                t_end: 2.0,
                grad_tol: 0.0,
                ..FlowSettings::default()
            },
        )
        .unwrap()
        .run(&start)
        .unwrap();
        assert!(tr.succeeded(), "{solver:?}: {:?}", tr.stop);
        let end = &tr.last().unwrap().theta;
        assert!(
            (end[0] - reference[0]).abs() < 1e-8 && (end[1] - reference[1]).abs() < 1e-8,
            "{solver:?}: {end:?} vs {reference:?}"
        );
        assert_eq!(tr.stats.control_limited, 0, "{solver:?}");
        assert_eq!(tr.stats.crossings_prevented, 0, "{solver:?}");
    }
}

#[test]
fn the_diagonal_metric_flow_is_not_held_at_the_line() {
    use fisher_flow::metric::MetricKind;
    use fisher_flow::model::StatModel;
    let m = unequal();
    // starts just above the line: the diagonal flow's δ̇ ≠ 0 on the line, so it crosses
    let start = [0.5, 0.52];
    let reference = rk4(
        |th| {
            let g = m.gradient(th);
            let d = m.fisher(th);
            [-g[0] / d[(0, 0)], -g[1] / d[(1, 1)]]
        },
        start,
        1.0,
        2000,
    );
    // the true flow crosses μ₁ = μ₂ (before the fix it froze there at t ≈ 0.007 on the cap)
    assert!(reference[1] < reference[0], "{reference:?}");
    let tr = Simulator::new(
        &m,
        FlowSettings {
            metric: MetricKind::Diagonal,
            rtol: 1e-10,
            atol: 1e-12,
            t_end: 1.0,
            grad_tol: 0.0,
            ..FlowSettings::default()
        },
    )
    .unwrap()
    .run_end(&start)
    .unwrap();
    assert!(tr.succeeded(), "{:?}", tr.stop);
    let end = &tr.last().unwrap().theta;
    assert!(
        (end[0] - reference[0]).abs() < 1e-7 && (end[1] - reference[1]).abs() < 1e-7,
        "{end:?} vs {reference:?}"
    );
}

#[test]
fn only_metrics_that_degenerate_on_the_line_make_it_singular() {
    use fisher_flow::flow::{FlowRhs, singular_pairs};
    use fisher_flow::metric::MetricKind;
    let m = unequal();
    let start = [0.5, 0.4];
    let singular = |metric, damping: f64| {
        let rhs = FlowRhs::new(&m, metric, damping);
        !singular_pairs(&rhs, &[(0, 1)], &start).is_empty()
    };
    assert!(singular(MetricKind::Exact, 0.0));
    assert!(singular(MetricKind::Sampled, 0.0));
    assert!(!singular(MetricKind::Euclidean, 0.0));
    assert!(!singular(MetricKind::Diagonal, 0.0));
    assert!(!singular(MetricKind::Exact, 1e-3));
    // the floor: λ_eff = ν·tr G > 0
    let floored = FlowRhs::new(&m, MetricKind::Exact, 0.0).with_damping_floor(1e-3);
    assert!(singular_pairs(&floored, &[(0, 1)], &start).is_empty());
}
