//! Discrete baselines decrease the loss; Levenberg–Marquardt raises λ after a bad step.

use assert_cmd::Command;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::optimize::{LM_UP, Method, OptimizeSettings, optimize};
use fisher_flow::quadrature::Scheme;

fn demo() -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::GaussHermite { nodes: 32 },
    }
}

fn settings(method: Method) -> OptimizeSettings {
    OptimizeSettings {
        method,
        lr: method.default_lr(),
        iters: 60,
        metric: MetricKind::Exact,
        damping: 0.0,
        lm: false,
        eps: 1e-8,
        grad_tol: 1e-10,
    }
}

#[test]
fn every_baseline_decreases_the_loss() {
    let m = demo();
    let l_star = m.loss(&m.target);
    for method in [Method::Gd, Method::FisherDiag, Method::Ngd] {
        for start in [[-3.0, -2.5], [3.5, -3.0], [-0.5, 3.5]] {
            let o = optimize(&m, &settings(method), &start).unwrap();
            let steps = &o.trajectory.steps;
            let l0 = steps[0].loss;
            let l1 = steps.last().unwrap().loss;
            assert!(l1 < l0 - 1e-3, "{method:?} {start:?}: {l0} -> {l1}");
            // gd and fisher-diag at rate 0.1 decrease the loss at every iteration; discrete ngd
            // does not (from (−3, −2.5) its first step overshoots: the flow is monotone, the
            // discrete method is not — LM damping below repairs that)
            if method != Method::Ngd {
                assert!(
                    steps.windows(2).all(|w| w[1].loss <= w[0].loss + 1e-12),
                    "{method:?} {start:?}"
                );
            }
            assert!((l1 - l_star) < 0.5 * (l0 - l_star));
        }
    }
}

#[test]
fn natural_gradient_descent_with_unit_rate_converges_fast() {
    let m = demo();
    let o = optimize(&m, &settings(Method::Ngd), &[-3.0, -2.5]).unwrap();
    // Fisher scoring near the optimum is Newton-like: few iterations to ‖∇L‖ < 1e-10
    assert!(
        o.trajectory.steps.len() < 15,
        "{}",
        o.trajectory.steps.len()
    );
    let end = &o.trajectory.last().unwrap().theta;
    let opt = m.optima();
    let d = opt
        .iter()
        .map(|t| ((end[0] - t[0]).powi(2) + (end[1] - t[1]).powi(2)).sqrt())
        .fold(f64::INFINITY, f64::min);
    assert!(d < 1e-4, "{end:?}");
}

#[test]
fn levenberg_marquardt_raises_lambda_after_a_bad_step_and_never_accepts_an_increase() {
    let m = demo();
    // Close to the singular line the undamped natural gradient is huge: the first step is bad.
    let s = OptimizeSettings {
        lm: true,
        damping: 1e-3,
        iters: 40,
        ..settings(Method::Ngd)
    };
    let start = [0.1, 0.15];
    let o = optimize(&m, &s, &start).unwrap();
    let steps = &o.trajectory.steps;
    // independent check that the first trial step increases the loss
    let g = m.gradient(&start);
    let mut f = m.fisher(&start);
    f[(0, 0)] += 1e-3;
    f[(1, 1)] += 1e-3;
    let p = -f.cholesky().unwrap().solve(&g);
    assert!(m.loss(&[start[0] + p[0], start[1] + p[1]]) > steps[0].loss);
    assert!(
        (o.damping[1] - 1e-3 * LM_UP).abs() < 1e-15,
        "{:?}",
        &o.damping[..3]
    );
    assert!(o.trajectory.stats.rejected >= 1);
    assert_eq!(steps[1].theta, steps[0].theta, "a bad step is rejected");
    assert!(steps.windows(2).all(|w| w[1].loss <= w[0].loss));
    assert!(o.trajectory.events.iter().any(|e| e.kind == "lm-damping"));
    // and it still ends close to the optimum
    assert!(steps.last().unwrap().loss - m.loss(&m.target) < 1e-8);
}

#[test]
fn cli_writes_run_outputs_and_rejects_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.toml");
    std::fs::write(&model, "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[quadrature]\nnodes = 16\n[flow]\nstarts = [[-3.0, -2.5]]\n").unwrap();
    let out = dir.path().join("o");
    Command::cargo_bin("fisher-flow")
        .unwrap()
        .args([
            "optimize",
            model.to_str().unwrap(),
            "--method",
            "gd",
            "--iters",
            "20",
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .success();
    for f in [
        "trajectory.csv",
        "trajectory.json",
        "trajectory.svg",
        "loss.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("trajectory.json")).unwrap()).unwrap();
    let steps = json["trajectories"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 21);
    assert_eq!(steps[20]["t"].as_f64(), Some(20.0));
    for bad in [
        vec!["--method", "adam"],
        vec!["--lr", "-1"],
        vec!["--method", "gd", "--lm"],
    ] {
        let mut args = vec![
            "optimize",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(bad.iter().copied());
        let o = Command::cargo_bin("fisher-flow")
            .unwrap()
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(bad[bad.len() - 2]) || err.contains(bad[0]),
            "{bad:?}: {err}"
        );
    }
}
