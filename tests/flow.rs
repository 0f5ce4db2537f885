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
