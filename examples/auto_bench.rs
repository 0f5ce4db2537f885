//! `auto` against every fixed method on a benchmark set: rhs evaluations (and Jacobians,
//! factorizations) per case, and the ratio auto / best fixed method.
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
    let base = FlowSettings {
        rtol: 1e-8,
        atol: 1e-10,
        t_end: 20.0,
        interior_points: 0,
        jacobian: if std::env::args().any(|a| a == "--fd") {
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
    for (name, model, start) in cases {
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
}
