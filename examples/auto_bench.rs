//! `auto` against every fixed method on a benchmark set, two ways:
//!
//! 1. at equal tolerance (rtol 1e-8): rhs evaluations (and Jacobians, factorizations) per
//!    case, and the ratio auto / best fixed method;
//! 2. at equal accuracy (work–precision): every method runs at rtol = 10^(−4 − k/8),
//!    k = 0..64 (atol = rtol/100); the error of a run is the largest distance to the reference
//!    solution at t ∈ {0.5, 1, 2, 4, 8, 20} (tsit45 at rtol 1e-13 for the mixture, the closed
//!    form θ(t) = θ(0)e^{−at} for the stiff quadratic); the cost of a method at accuracy ε is
//!    the fewest rhs evaluations (run to t_end = 20) of a tolerance whose error is ≤ ε.
//!    Methods of different order and error constants reach different accuracies at the same
//!    rtol (bdf's global error is 10–70× tsit45's here), so this is the comparison that tells
//!    which method is cheapest for a result of a given quality.
//!
//! Part 1 runs every method as shipped, at its calibrated internal tolerance
//! ([`fisher_flow::flow::calibration`]: equal rtol means equal accuracy); part 2 runs the fixed
//! methods at raw tolerances and `auto` as shipped.
//!
//! `cargo run --release --example auto_bench [-- --fd]` (`--fd`: finite-difference Jacobians,
//! whose 2n evaluations per Jacobian count as rhs evaluations)

use fisher_flow::flow::{FlowKernel, FlowSettings, Simulator, SolverKind};
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::Scheme;
use nalgebra::DMatrix;

/// L = ½(θ₁² + 1000θ₂²) with Fisher = I: a classic linear stiff problem.
struct Stiff;
impl StatModel for Stiff {
    fn dim(&self) -> usize {
        2
    }
    fn param_names(&self) -> Vec<String> {
        vec!["x".into(), "y".into()]
    }
    fn loss_grad(&self, t: &[f64], g: &mut [f64]) -> f64 {
        g[0] = t[0];
        g[1] = 1000.0 * t[1];
        0.5 * (t[0] * t[0] + 1000.0 * t[1] * t[1])
    }
    fn fisher_into(&self, _t: &[f64], out: &mut DMatrix<f64>) {
        out.fill_with_identity();
    }
    fn flow_kernel(&self) -> Option<Box<dyn FlowKernel + '_>> {
        Some(Box::new(StiffKernel))
    }
}
struct StiffKernel;
impl FlowKernel for StiffKernel {
    fn dim(&self) -> usize {
        2
    }
    fn grad_fisher(&self, t: &[f64], g: &mut [f64], f: &mut [f64]) {
        g[0] = t[0];
        g[1] = 1000.0 * t[1];
        f.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
    }
    fn grad_fisher_derivs(
        &self,
        t: &[f64],
        g: &mut [f64],
        f: &mut [f64],
        h: &mut [f64],
        df: &mut [f64],
    ) {
        self.grad_fisher(t, g, f);
        h.copy_from_slice(&[1.0, 0.0, 0.0, 1000.0]);
        df.iter_mut().for_each(|v| *v = 0.0);
    }
}

fn mixture(target: [f64; 2]) -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target,
        loss_kind: LossKind::Population,
        scheme: Scheme::GaussHermite { nodes: 64 },
    }
}

fn main() {
    let fd = std::env::args().any(|a| a == "--fd");
    let base = FlowSettings {
        rtol: 1e-8,
        atol: 1e-10,
        t_end: 20.0,
        grad_tol: 0.0,
        interior_points: 0,
        jacobian: if fd {
            fisher_flow::flow::JacobianKind::Fd
        } else {
            fisher_flow::flow::JacobianKind::Exact
        },
        ..FlowSettings::default()
    };
    let near = mixture([-1.5, 2.0]);
    let sym = mixture([-1.0, 1.0]);
    let on_line = mixture([0.5, 0.5]);
    let cases: Vec<(&str, &dyn StatModel, [f64; 2])> = vec![
        ("near-diagonal (0.1, 0.15)", &near, [0.1, 0.15]),
        ("far (-3.5, 3.8)", &near, [-3.5, 3.8]),
        ("symmetric target (-1,1), start (2.5, 3)", &sym, [2.5, 3.0]),
        (
            "target on the line (0.5,0.5), start (-2, 3)",
            &on_line,
            [-2.0, 3.0],
        ),
        ("stiff quadratic, start (1, 1)", &Stiff, [1.0, 1.0]),
    ];
    let methods = [
        SolverKind::Tsit45,
        SolverKind::Bdf,
        SolverKind::TrBdf2,
        SolverKind::Esdirk34,
    ];
    println!(
        "rtol 1e-8 atol 1e-10 t_end 20, {} Jacobians; entries: rhs evals / jacobians / factorizations, wall time",
        base.jacobian.name()
    );
    for &(name, model, start) in &cases {
        let mut best = usize::MAX;
        let mut line = format!("{name:<46}");
        for m in methods {
            let tr = Simulator::new(
                model,
                FlowSettings {
                    solver: m,
                    ..base.clone()
                },
            )
            .and_then(|s| s.run_end(&start))
            .expect("run");
            best = best.min(tr.stats.rhs_evals);
            line += &format!(
                " | {} {}/{}/{} {:.2}ms",
                m.name(),
                tr.stats.rhs_evals,
                tr.stats.jacobians,
                tr.stats.factorizations,
                tr.stats.wall_time * 1e3
            );
        }
        let tr = Simulator::new(
            model,
            FlowSettings {
                solver: SolverKind::Auto,
                ..base.clone()
            },
        )
        .and_then(|s| s.run_end(&start))
        .expect("run");
        line += &format!(
            " | auto {}/{}/{} {:.2}ms switches {} | auto/best {:.2}",
            tr.stats.rhs_evals,
            tr.stats.jacobians,
            tr.stats.factorizations,
            tr.stats.wall_time * 1e3,
            tr.stats.solver_switches,
            tr.stats.rhs_evals as f64 / best as f64
        );
        println!("{line}");
    }
    work_precision(&base, &cases);
}

/// Times at which the accuracy of a run is checked: the first accepted step at or after each
/// of 40 log-spaced times in [1e-4, 20].
fn check_times() -> Vec<f64> {
    (0..40)
        .map(|j| 1e-4 * (2e5f64).powf(j as f64 / 39.0))
        .collect()
}

/// The exact flow from (t0, θ0) to t1.
type Reference<'a> = dyn Fn(f64, &[f64], f64) -> Vec<f64> + 'a;

/// A run of `method` at `rtol` to t_end = 20: its rhs evaluations and its largest error at the
/// check steps, against `reference(t0, θ0, t1)` (the exact flow from (t0, θ0) to t1).
fn run_error(
    model: &dyn StatModel,
    base: &FlowSettings,
    method: SolverKind,
    rtol: f64,
    start: [f64; 2],
    reference: &Reference,
) -> (usize, f64) {
    // fixed methods at raw tolerances (the sweep covers the same internal range for each, the
    // cost–error curve does not depend on how rtol maps to it); auto as shipped, with each
    // segment's calibrated tolerance
    let s = FlowSettings {
        solver: method,
        rtol,
        atol: rtol * 1e-2,
        t_end: 20.0,
        grad_tol: 0.0,
        calibrated: method == SolverKind::Auto,
        ..base.clone()
    };
    let tr = Simulator::new(model, s)
        .and_then(|s| s.run(&start))
        .expect("run");
    if !tr.succeeded() {
        // a run that did not reach t_end is no point of the work–precision curve
        eprintln!("{} at rtol {rtol:e}: {:?}", method.name(), tr.stop);
        return (usize::MAX, f64::INFINITY);
    }
    let (mut t_ref, mut y_ref) = (0.0, start.to_vec());
    let mut err = 0.0f64;
    let mut next = check_times().into_iter().peekable();
    for step in &tr.steps {
        let mut due = false;
        while next.peek().is_some_and(|&c| c <= step.t) {
            next.next();
            due = true;
        }
        if due {
            y_ref = reference(t_ref, &y_ref, step.t);
            t_ref = step.t;
            let d = (step.theta[0] - y_ref[0]).hypot(step.theta[1] - y_ref[1]);
            err = err.max(d);
        }
    }
    (tr.stats.rhs_evals, err)
}

fn work_precision(base: &FlowSettings, cases: &[(&str, &dyn StatModel, [f64; 2])]) {
    let methods = [
        SolverKind::Tsit45,
        SolverKind::Bdf,
        SolverKind::TrBdf2,
        SolverKind::Esdirk34,
        SolverKind::Auto,
    ];
    let rtols: Vec<f64> = (0..=32)
        .map(|k| 10f64.powf(-4.0 - k as f64 / 4.0))
        .collect();
    let eps = [1e-6, 1e-8];
    println!();
    println!(
        "work-precision: rhs evaluations (t_end 20) of the cheapest rtol = 10^(-4-k/4) whose largest error at 40 log-spaced check times is ≤ ε"
    );
    for &(name, model, start) in cases {
        let stiff = name.starts_with("stiff");
        let reference = |t0: f64, y0: &[f64], t1: f64| -> Vec<f64> {
            if stiff {
                vec![y0[0] * (t0 - t1).exp(), y0[1] * (1000.0 * (t0 - t1)).exp()]
            } else if t1 <= t0 {
                y0.to_vec()
            } else {
                let s = FlowSettings {
                    solver: SolverKind::Tsit45,
                    rtol: 1e-13,
                    atol: 1e-15,
                    t_end: t1 - t0,
                    grad_tol: 0.0,
                    ..base.clone()
                };
                let tr = Simulator::new(model, s)
                    .and_then(|s| s.run_end(y0))
                    .expect("reference run");
                tr.last().expect("end").theta.clone()
            }
        };
        let mut line = format!("{name:<46}");
        let mut costs = vec![[f64::INFINITY; 2]; methods.len()];
        for (mi, &m) in methods.iter().enumerate() {
            for &rtol in &rtols {
                let (evals, err) = run_error(model, base, m, rtol, start, &reference);
                for (k, &e) in eps.iter().enumerate() {
                    if err <= e {
                        costs[mi][k] = costs[mi][k].min(evals as f64);
                    }
                }
            }
        }
        for (k, &e) in eps.iter().enumerate() {
            let best = (0..methods.len() - 1)
                .min_by(|&a, &b| costs[a][k].total_cmp(&costs[b][k]))
                .unwrap_or(0);
            let auto = costs[methods.len() - 1][k];
            line += &format!(
                " | ε {e:e}: best {} {:.0}, auto {:.0}, auto/best {:.2}",
                methods[best].name(),
                costs[best][k],
                auto,
                auto / costs[best][k]
            );
        }
        println!("{line}");
    }
}
