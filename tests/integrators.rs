//! Solvers reach θ*, exact and finite-difference Jacobians agree, `auto` switches on a stiff
//! problem and not on a non-stiff one, implicit methods are refused without a dense Jacobian.

use fisher_flow::flow::{FlowKernel, FlowRhs, FlowSettings, JacobianKind, Simulator, SolverKind};
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::Scheme;
use nalgebra::DMatrix;

fn demo(scheme: Scheme) -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme,
    }
}

/// L(θ) = ½ Σ aᵢθᵢ² with Fisher = identity: the flow is θ̇ = −aθ, θᵢ(t) = θᵢ(0)e^{−aᵢt}.
struct Quadratic {
    a: Vec<f64>,
    dense: bool,
}

impl StatModel for Quadratic {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn param_names(&self) -> Vec<String> {
        (0..self.a.len()).map(|i| format!("x{i}")).collect()
    }
    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let mut l = 0.0;
        for i in 0..self.a.len() {
            grad[i] = self.a[i] * theta[i];
            l += 0.5 * self.a[i] * theta[i] * theta[i];
        }
        l
    }
    fn fisher_into(&self, _theta: &[f64], out: &mut DMatrix<f64>) {
        out.fill_with_identity();
    }
    fn flow_kernel(&self) -> Option<Box<dyn FlowKernel + '_>> {
        Some(Box::new(QuadKernel(self.a.clone())))
    }
    fn dense_jacobian(&self) -> bool {
        self.dense
    }
}

struct QuadKernel(Vec<f64>);

impl FlowKernel for QuadKernel {
    fn dim(&self) -> usize {
        self.0.len()
    }
    fn grad_fisher(&self, theta: &[f64], grad: &mut [f64], fisher: &mut [f64]) {
        let n = self.0.len();
        for i in 0..n {
            grad[i] = self.0[i] * theta[i];
            for j in 0..n {
                fisher[i * n + j] = if i == j { 1.0 } else { 0.0 };
            }
        }
    }
    fn grad_fisher_derivs(
        &self,
        theta: &[f64],
        grad: &mut [f64],
        fisher: &mut [f64],
        hess: &mut [f64],
        dfisher: &mut [f64],
    ) {
        let n = self.0.len();
        self.grad_fisher(theta, grad, fisher);
        for i in 0..n {
            for j in 0..n {
                hess[i * n + j] = if i == j { self.0[i] } else { 0.0 };
            }
        }
        dfisher.iter_mut().for_each(|v| *v = 0.0);
    }
}

fn settings(solver: SolverKind) -> FlowSettings {
    FlowSettings {
        solver,
        rtol: 1e-7,
        atol: 1e-9,
        t_end: 15.0,
        interior_points: 0,
        ..FlowSettings::default()
    }
}

#[test]
fn every_solver_reaches_the_target_or_its_swap() {
    let m = demo(Scheme::GaussHermite { nodes: 24 });
    // the optimum of the 24-node discretised loss, by Fisher scoring from θ*
    let opt = {
        let mut th = m.target.to_vec();
        for _ in 0..50 {
            let g = m.gradient(&th);
            let step = m.fisher(&th).cholesky().expect("spd").solve(&g);
            th[0] -= step[0];
            th[1] -= step[1];
        }
        th
    };
    for solver in [
        SolverKind::Tsit45,
        SolverKind::Bdf,
        SolverKind::TrBdf2,
        SolverKind::Esdirk34,
        SolverKind::Auto,
    ] {
        let sim = Simulator::new(&m, settings(solver)).expect("valid");
        for start in [[-3.0, -2.5], [3.5, -3.0]] {
            let tr = sim.run(&start).expect("runs");
            let end = &tr.last().expect("steps").theta;
            let d = ((end[0] - opt[0]).powi(2) + (end[1] - opt[1]).powi(2))
                .sqrt()
                .min(((end[0] - opt[1]).powi(2) + (end[1] - opt[0]).powi(2)).sqrt());
            // |θ(15) − θ*| ≤ e^{−15}·|θ(0) − θ*| + tolerance-level error
            assert!(
                d < 1e-4,
                "{solver:?} from {start:?}: end {end:?}, distance {d:e}"
            );
            assert_eq!(tr.stats.accepted + 1, tr.steps.len());
            assert!(tr.stats.rhs_evals > 0);
            if solver.is_implicit() {
                assert!(
                    tr.stats.jacobians > 0 && tr.stats.factorizations > 0,
                    "{solver:?} {:?}",
                    tr.stats
                );
            }
        }
    }
}

#[test]
fn exact_and_finite_difference_jacobians_agree() {
    for scheme in [Scheme::GaussHermite { nodes: 32 }, Scheme::default()] {
        let m = demo(scheme);
        for metric in [MetricKind::Exact, MetricKind::Euclidean] {
            let exact = FlowRhs::new(&m, metric, 0.0).with_jacobian(JacobianKind::Exact);
            let fd = FlowRhs::new(&m, metric, 0.0).with_jacobian(JacobianKind::Fd);
            assert!(exact.exact_jacobian() && !fd.exact_jacobian());
            for th in [[0.3, 1.1], [-3.0, -2.5], [3.5, -3.0], [-0.5, 3.5]] {
                let je = exact.jacobian(&th);
                let jf = fd.jacobian(&th);
                let scale = je.amax().max(1.0);
                assert!(
                    (&je - &jf).amax() < 1e-6 * scale,
                    "{scheme:?} {metric:?} {th:?}\n{je}\n{jf}"
                );
            }
        }
    }
}

#[test]
fn exact_jacobian_of_a_quadratic_is_minus_its_hessian() {
    let q = Quadratic {
        a: vec![2.0, 30.0],
        dense: true,
    };
    let rhs = FlowRhs::new(&q, MetricKind::Exact, 0.5);
    let j = rhs.jacobian(&[0.7, -0.2]);
    // f = −(I + λI)⁻¹ aθ ⇒ J = −diag(a)/(1 + λ)
    assert!((j[(0, 0)] + 2.0 / 1.5).abs() < 1e-14 && (j[(1, 1)] + 30.0 / 1.5).abs() < 1e-14);
    assert!(j[(0, 1)].abs() < 1e-15 && j[(1, 0)].abs() < 1e-15);
}

#[test]
fn auto_switches_on_a_stiff_problem_and_not_on_a_non_stiff_one() {
    let stiff = Quadratic {
        a: vec![1.0, 1000.0],
        dense: true,
    };
    let s = FlowSettings {
        grad_tol: 0.0,
        ..settings(SolverKind::Auto)
    };
    let tr = Simulator::new(&stiff, s.clone())
        .expect("valid")
        .run(&[1.0, 1.0])
        .expect("runs");
    assert!(tr.stats.solver_switches >= 1, "{:?}", tr.stats);
    let ev = tr
        .events
        .iter()
        .find(|e| e.kind == "switch")
        .expect("switch event");
    assert!(ev.detail.contains("tsit45 -> bdf"), "{}", ev.detail);
    // the exact solution is θ(t) = θ(0)e^{−at}
    let end = &tr.last().expect("steps").theta;
    assert!((end[0] - (-15.0f64).exp()).abs() < 1e-6, "{end:?}");
    // cheaper than staying explicit
    let explicit = Simulator::new(
        &stiff,
        FlowSettings {
            solver: SolverKind::Tsit45,
            ..s.clone()
        },
    )
    .expect("valid")
    .run(&[1.0, 1.0])
    .expect("runs");
    assert!(
        tr.stats.rhs_evals < explicit.stats.rhs_evals,
        "{:?} vs {:?}",
        tr.stats,
        explicit.stats
    );
    // and within 1.2× of bdf throughout: the stiffness is seen in the first steps, from the
    // predicted cost of a stability-limited explicit integration
    let bdf = Simulator::new(
        &stiff,
        FlowSettings {
            solver: SolverKind::Bdf,
            ..s.clone()
        },
    )
    .expect("valid")
    .run(&[1.0, 1.0])
    .expect("runs");
    assert!(
        (tr.stats.rhs_evals as f64) <= 1.2 * bdf.stats.rhs_evals as f64,
        "auto {:?} vs bdf {:?}",
        tr.stats,
        bdf.stats
    );
    assert!(ev.t < 0.01, "switched late: {}", ev.t);

    let mild = Quadratic {
        a: vec![1.0, 2.0],
        dense: true,
    };
    let tr = Simulator::new(&mild, s)
        .expect("valid")
        .run(&[1.0, 1.0])
        .expect("runs");
    assert_eq!(tr.stats.solver_switches, 0, "{:?}", tr.events);
    assert!(tr.events.is_empty());
}

#[test]
fn implicit_solvers_are_refused_without_a_dense_jacobian_and_auto_stays_explicit() {
    let big = Quadratic {
        a: vec![1.0, 1000.0],
        dense: false,
    };
    for solver in [SolverKind::Bdf, SolverKind::TrBdf2, SolverKind::Esdirk34] {
        let err = Simulator::new(&big, settings(solver))
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("flow.solver") && msg.contains("dense"),
            "{msg}"
        );
    }
    let tr = Simulator::new(&big, settings(SolverKind::Auto))
        .expect("auto allowed")
        .run(&[1.0, 1.0])
        .expect("runs");
    assert_eq!(tr.stats.solver_switches, 0);
    assert_eq!(tr.stats.jacobians, 0);
}

#[test]
fn solver_names_round_trip_and_bad_names_are_listed() {
    for name in SolverKind::NAMES {
        assert_eq!(SolverKind::parse("s", name).expect("valid").name(), *name);
    }
    let e = SolverKind::parse("flow.solver", "rk4")
        .expect_err("invalid")
        .to_string();
    assert!(e.contains("tr-bdf2") && e.contains("auto"), "{e}");
}

#[test]
fn auto_on_a_non_stiff_mixture_costs_what_tsit45_costs_even_with_fd_jacobians() {
    // The stiffness checks use the exact Jacobian whatever `jacobian` says, so they cost no
    // rhs evaluations; staying explicit, auto takes tsit45's steps exactly.
    let m = demo(Scheme::GaussHermite { nodes: 64 });
    for jacobian in [JacobianKind::Exact, JacobianKind::Fd] {
        let run = |solver, start: [f64; 2]| {
            Simulator::new(
                &m,
                FlowSettings {
                    jacobian,
                    grad_tol: 0.0,
                    ..settings(solver)
                },
            )
            .expect("valid")
            .run(&start)
            .expect("runs")
        };
        // far, and close to the singular line: there ρ(J) ≈ 2500 at the start, but it falls
        // like 1/δ² as δ grows, a transient that tsit45 resolves with accuracy-limited steps
        for start in [[-3.5, 3.8], [0.1, 0.15]] {
            let auto = run(SolverKind::Auto, start);
            let explicit = run(SolverKind::Tsit45, start);
            assert_eq!(
                auto.stats.solver_switches, 0,
                "{start:?}: {:?}",
                auto.events
            );
            assert_eq!(
                auto.stats.rhs_evals, explicit.stats.rhs_evals,
                "{jacobian:?}"
            );
            assert!(auto.stats.jacobians > 0, "checked: {:?}", auto.stats);
            assert_eq!(auto.steps.len(), explicit.steps.len());
        }
    }
}
