//! Flows of the mixture: convergence, monotone loss, natural vs Euclidean speed.

use fisher_flow::flow::{FlowSettings, Simulator, SolverKind};
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::Scheme;

fn model() -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

/// Distance to the nearest optimum (θ* or its label swap).
fn dist_to_optimum(m: &GaussianMixture, th: &[f64]) -> f64 {
    m.optima()
        .iter()
        .map(|o| ((o[0] - th[0]).powi(2) + (o[1] - th[1]).powi(2)).sqrt())
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn natural_flow_reaches_an_optimum_monotonically_with_both_solvers() {
    let m = model();
    for solver in [SolverKind::Tsit45, SolverKind::Bdf] {
        let settings = FlowSettings {
            solver,
            rtol: 1e-8,
            atol: 1e-10,
            t_end: 25.0,
            ..FlowSettings::default()
        };
        let sim = Simulator::new(&m, settings).expect("valid settings");
        for start in [
            [0.1, 0.15],
            [-3.0, -2.5],
            [3.5, -3.0],
            [-0.5, 3.5],
            [2.5, 3.0],
        ] {
            let tr = sim.run(&start).expect("runs");
            let end = &tr.last().expect("steps").theta;
            assert!(
                dist_to_optimum(&m, end) < 1e-5,
                "{solver:?} {start:?} → {end:?}"
            );
            // the label never switches: the sign of μ₂ − μ₁ is kept
            assert_eq!((end[1] - end[0]).signum(), (start[1] - start[0]).signum());
            // the loss never rises by more than evaluation noise between accepted steps
            for w in tr.steps.windows(2) {
                assert!(
                    w[1].loss <= w[0].loss + 1e-12,
                    "{solver:?} {start:?}: {} → {}",
                    w[0].loss,
                    w[1].loss
                );
                assert!(w[1].rate <= 0.0);
            }
            assert!(tr.stats.rhs_evals > 0 && tr.stats.accepted > 0);
        }
    }
}

#[test]
fn rate_equals_the_derivative_of_the_loss_along_the_flow() {
    // dL/dt = −∇Lᵀ I⁻¹ ∇L, checked against finite differences of L between dense steps.
    let m = model();
    let settings = FlowSettings {
        rtol: 1e-10,
        atol: 1e-12,
        t_end: 3.0,
        ..FlowSettings::default()
    };
    let sim = Simulator::new(&m, settings).expect("valid");
    let tr = sim.run(&[0.5, 3.0]).expect("runs");
    let mut checked = 0;
    for w in tr.steps.windows(3) {
        let (a, b, c) = (&w[0], &w[1], &w[2]);
        if c.t - a.t < 1e-6 {
            continue;
        }
        // second-order non-uniform central difference at b
        let (h1, h2) = (b.t - a.t, c.t - b.t);
        let d = (h1 * h1 * (c.loss - b.loss) + h2 * h2 * (b.loss - a.loss)) / (h1 * h2 * (h1 + h2));
        let scale = b.rate.abs().max(1e-6);
        let tol = 0.05 * scale + (h1.max(h2)).powi(2) * 10.0 * scale;
        assert!(
            (d - b.rate).abs() < tol,
            "t={}: fd {d} vs rate {}",
            b.t,
            b.rate
        );
        checked += 1;
    }
    assert!(checked > 5);
}

#[test]
fn euclidean_flow_needs_at_least_twice_the_time_from_the_near_diagonal_start() {
    let m = model();
    let l_star = m.optimal_loss().expect("known optimum");
    let time = |metric| {
        let settings = FlowSettings {
            metric,
            t_end: 400.0,
            grad_tol: 0.0,
            ..FlowSettings::default()
        };
        let tr = Simulator::new(&m, settings)
            .expect("valid")
            .run(&[0.1, 0.15])
            .expect("runs");
        tr.time_to_reach(l_star, 1e-6)
            .expect("reaches L − L* < 1e-6")
    };
    let natural = time(MetricKind::Exact);
    let euclidean = time(MetricKind::Euclidean);
    eprintln!(
        "time to L − L* < 1e-6 from (0.1, 0.15): natural {natural:.3}, Euclidean {euclidean:.3}, ratio {:.2}",
        euclidean / natural
    );
    assert!(
        euclidean >= 2.0 * natural,
        "natural {natural}, euclidean {euclidean}"
    );
}

#[test]
fn gradient_tolerance_stops_early_via_the_root_function() {
    let m = model();
    let settings = FlowSettings {
        grad_tol: 1e-4,
        t_end: 100.0,
        ..FlowSettings::default()
    };
    let tr = Simulator::new(&m, settings)
        .expect("valid")
        .run(&[0.0, 3.0])
        .expect("runs");
    assert_eq!(tr.stop, fisher_flow::trajectory::StopReason::Converged);
    let last = tr.last().expect("steps");
    assert!(last.t < 100.0);
    assert!(
        (last.grad_norm - 1e-4).abs() < 1e-6,
        "root located: {}",
        last.grad_norm
    );
}

#[test]
fn step_cap_is_respected() {
    let m = model();
    let settings = FlowSettings {
        max_steps: 7,
        ..FlowSettings::default()
    };
    let tr = Simulator::new(&m, settings)
        .expect("valid")
        .run(&[0.0, 3.0])
        .expect("runs");
    assert_eq!(tr.stop, fisher_flow::trajectory::StopReason::MaxSteps);
    assert_eq!(tr.stats.accepted, 7);
}

#[test]
fn empirical_loss_flow_reaches_the_sample_optimum() {
    let samples = fisher_flow::model::mixture::draw_samples(400, 11, [-1.5, 2.0], 1.0, 0.5);
    let m = GaussianMixture {
        loss_kind: LossKind::Empirical { samples, seed: 11 },
        ..model()
    };
    let opt = m.optima();
    // the empirical optimum is a stationary point of the empirical loss, near θ*
    assert!(m.gradient(&opt[0]).norm() < 1e-10);
    assert!(((opt[0][0] + 1.5).powi(2) + (opt[0][1] - 2.0).powi(2)).sqrt() < 0.5);
    let settings = FlowSettings {
        t_end: 30.0,
        ..FlowSettings::default()
    };
    let tr = Simulator::new(&m, settings)
        .expect("valid")
        .run(&[0.0, 1.0])
        .expect("runs");
    let end = &tr.last().expect("steps").theta;
    assert!(dist_to_optimum(&m, end) < 1e-6, "{end:?} vs {opt:?}");
}

fn end_of(
    m: &dyn StatModel,
    s: FlowSettings,
    start: &[f64],
) -> fisher_flow::trajectory::Trajectory {
    Simulator::new(m, s)
        .expect("valid")
        .run(start)
        .expect("runs")
}

#[test]
fn save_every_records_every_kth_step_and_the_last_with_the_same_integration() {
    let m = model();
    let base = FlowSettings {
        t_end: 6.0,
        grad_tol: 0.0,
        ..FlowSettings::default()
    };
    let start = [0.1, 0.15];
    let all = end_of(&m, base.clone(), &start);
    let k = 5;
    let some = end_of(
        &m,
        FlowSettings {
            save_every: k,
            ..base
        },
        &start,
    );
    // same integration: same accepted steps and the same end, bit for bit
    assert_eq!(all.stats.accepted, some.stats.accepted);
    assert_eq!(all.last().unwrap().theta, some.last().unwrap().theta);
    let n = all.stats.accepted;
    assert_eq!(
        some.steps.len(),
        1 + n / k + usize::from(!n.is_multiple_of(k))
    );
    // the recorded steps are every k-th step of the full record
    for (j, s) in some.steps.iter().enumerate().take(n / k + 1) {
        assert_eq!(s.t, all.steps[j * k].t);
        assert_eq!(s.theta, all.steps[j * k].theta);
        if j > 0 {
            assert_eq!(s.step_size, s.t - some.steps[j - 1].t);
            // the interior holds every loss sample of the k solver steps: k·2 interior points
            // and the k − 1 unrecorded endpoints, in time order
            assert_eq!(s.interior.len(), k * 2 + (k - 1));
            assert!(s.interior.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}

#[test]
fn save_at_records_the_given_times_from_dense_output() {
    let m = model();
    let rtol = 1e-8;
    let base = FlowSettings {
        rtol,
        atol: 1e-10,
        t_end: 4.0,
        grad_tol: 0.0,
        ..FlowSettings::default()
    };
    let start = [-3.0, -2.5];
    let times = vec![3.3, 0.5, 1.0, 2.0, 0.5];
    let tr = end_of(
        &m,
        FlowSettings {
            save_at: times,
            ..base.clone()
        },
        &start,
    );
    let ts: Vec<f64> = tr.steps.iter().map(|s| s.t).collect();
    assert_eq!(ts, vec![0.0, 0.5, 1.0, 2.0, 3.3, 4.0]);
    for s in &tr.steps[1..] {
        // an independent run that ends exactly at t, at a tight tolerance
        let r = end_of(
            &m,
            FlowSettings {
                t_end: s.t,
                rtol: 1e-12,
                atol: 1e-14,
                ..base.clone()
            },
            &start,
        );
        let r = &r.last().unwrap().theta;
        let scale = r[0].abs().max(r[1].abs());
        let e = (s.theta[0] - r[0]).abs().max((s.theta[1] - r[1]).abs());
        assert!(e <= 10.0 * rtol * scale, "t = {}: {e:e}", s.t);
        assert!((s.loss - m.loss(&s.theta)).abs() < 1e-14);
    }
}

#[test]
fn save_settings_are_validated() {
    let m = model();
    for s in [
        FlowSettings {
            save_every: 0,
            ..FlowSettings::default()
        },
        FlowSettings {
            save_at: vec![1.0, 30.0],
            ..FlowSettings::default()
        },
        FlowSettings {
            save_at: vec![f64::NAN],
            ..FlowSettings::default()
        },
    ] {
        let e = Simulator::new(&m, s).err().expect("rejected").to_string();
        assert!(e.contains("flow.save_"), "{e}");
    }
}

#[test]
fn the_steady_state_test_fires_at_the_noise_floor_of_the_integration() {
    use fisher_flow::flow::noise_floor;
    let m = model();
    // grad_tol = 1e-10 is below what rtol 1e-8 resolves (‖∇L‖ wanders at ≈1e-8 near θ*):
    // before, t_end = 1e6 ran into the step cap
    let s = FlowSettings {
        t_end: 1e6,
        ..FlowSettings::default()
    };
    let tr = end_of(&m, s.clone(), &[0.1, 0.15]);
    assert_eq!(tr.stop, fisher_flow::trajectory::StopReason::Converged);
    let last = tr.last().unwrap();
    assert!(last.t < 60.0, "t = {}", last.t);
    let floor = noise_floor(&m, &last.theta, s.rtol, s.atol);
    assert!(floor > 1e-9 && floor < 1e-7, "{floor:e}");
    assert!(
        last.grad_norm <= 2.0 * floor * 1.01,
        "{} vs {floor:e}",
        last.grad_norm
    );
    assert!(dist_to_optimum(&m, &last.theta) < 1e-6);
    assert!(tr.events.iter().any(|e| e.kind == "steady-state"));
    // a grad_tol above the floor still decides, without the event
    let tr = end_of(
        &m,
        FlowSettings {
            grad_tol: 1e-5,
            ..s
        },
        &[0.1, 0.15],
    );
    assert!((tr.last().unwrap().grad_norm - 1e-5).abs() < 1e-7);
    assert!(!tr.events.iter().any(|e| e.kind == "steady-state"));
}

/// L = ½(θ₁ − 3)² + ½θ₂² with the identity Fisher, undefined (NaN) for θ₁ > 1.
struct Cliff;
impl StatModel for Cliff {
    fn dim(&self) -> usize {
        2
    }
    fn param_names(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }
    fn loss_grad(&self, t: &[f64], g: &mut [f64]) -> f64 {
        if t[0] > 1.0 {
            g.fill(f64::NAN);
            return f64::NAN;
        }
        g[0] = t[0] - 3.0;
        g[1] = t[1];
        0.5 * ((t[0] - 3.0).powi(2) + t[1] * t[1])
    }
    fn fisher_into(&self, _t: &[f64], out: &mut nalgebra::DMatrix<f64>) {
        out.fill_with_identity();
    }
}

#[test]
fn non_finite_values_and_absurd_tolerances_end_in_a_non_success_retcode() {
    use fisher_flow::trajectory::StopReason;
    let tr = end_of(
        &Cliff,
        FlowSettings {
            metric: MetricKind::Euclidean,
            t_end: 5.0,
            grad_tol: 0.0,
            ..FlowSettings::default()
        },
        &[0.0, 1.0],
    );
    assert!(matches!(tr.stop, StopReason::Unstable(_)), "{:?}", tr.stop);
    assert!(!tr.succeeded());
    // atol = 1e-320: the run ends (cap or failure), it does not hang
    let m = model();
    let tr = Simulator::new(
        &m,
        FlowSettings {
            atol: 1e-320,
            rtol: 1e-300,
            t_end: 1e6,
            max_steps: 500,
            ..FlowSettings::default()
        },
    )
    .unwrap()
    .run_end(&[0.1, 0.15])
    .unwrap();
    assert!(!tr.succeeded(), "{:?}", tr.stop);
    assert!(tr.stats.accepted + tr.stats.rejected <= 1000);
}

#[test]
fn cli_save_flags_and_their_model_file_keys() {
    use assert_cmd::Command;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.toml");
    std::fs::write(
        &model,
        "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[quadrature]\nnodes = 16\n[flow]\nrtol = 1e-6\natol = 1e-8\nt_end = 3.0\nsave_at = [0.5, 1.5]\nstarts = [[0.0, 1.0]]\n",
    )
    .unwrap();
    let run = |extra: &[&str], out: &str| {
        let mut args = vec!["run", model.to_str().unwrap(), "-q", "--out"];
        let o = dir.path().join(out);
        let o = o.to_str().unwrap().to_string();
        args.push(&o);
        args.extend_from_slice(extra);
        let r = Command::cargo_bin("fisher-flow")
            .unwrap()
            .args(&args)
            .output()
            .unwrap();
        let csv = std::fs::read_to_string(dir.path().join(out).join("trajectory.csv"))
            .unwrap_or_default();
        (r, csv)
    };
    // the file's save_at: start, 0.5, 1.5, end
    let (r, csv) = run(&[], "a");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let ts: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ts, vec![0.0, 0.5, 1.5, 3.0]);
    // thinned output records only some steps: no certificate is written, and the run says so
    assert!(!dir.path().join("a").join("certificate.json").exists());
    // the flag replaces it
    let (r, csv) = run(&["--save-at", "1,2"], "b");
    assert!(r.status.success());
    assert_eq!(csv.lines().count(), 1 + 4);
    // a time beyond t_end: one line naming the key, exit 2
    let (r, _) = run(&["--save-at", "1,50"], "c");
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--save-at"));
    let (r, _) = run(&["--save-every", "0"], "d");
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--save-every"));
    let (r, _) = run(&["--save-every", "3", "--save-at", "1"], "e");
    assert!(r.status.success());
    assert!(!dir.path().join("e").join("certificate.json").exists());
    assert!(String::from_utf8_lossy(&r.stdout).contains("certificate: not written"));
}

/// The progress observer sees every PROGRESS_EVERY-th accepted step, in order, with the
/// step's time.
#[test]
fn progress_observer_sees_every_64th_step_in_order() {
    use fisher_flow::flow::PROGRESS_EVERY;
    use std::sync::Mutex;
    let m = model();
    let settings = FlowSettings {
        rtol: 1e-10,
        atol: 1e-12,
        t_end: 3.0,
        ..FlowSettings::default()
    };
    let seen = Mutex::new(Vec::<(usize, f64)>::new());
    let sim = Simulator::new(&m, settings)
        .expect("valid")
        .with_progress(|k, t| seen.lock().expect("lock").push((k, t)));
    let tr = sim.run(&[0.5, 1.0]).expect("runs");
    drop(sim);
    let seen = seen.into_inner().expect("lock");
    assert!(
        tr.stats.accepted >= PROGRESS_EVERY,
        "{} steps",
        tr.stats.accepted
    );
    assert_eq!(seen.len(), tr.stats.accepted / PROGRESS_EVERY);
    for (j, &(k, t)) in seen.iter().enumerate() {
        assert_eq!(k, (j + 1) * PROGRESS_EVERY);
        // the observer's t is the time of accepted step k (row k of the trajectory)
        assert_eq!(t, tr.steps[k].t);
    }
}
