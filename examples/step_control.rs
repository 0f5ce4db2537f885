//! Measures the singularity-aware step control: starts at distance δ = 1e-1 … 1e-4 from the
//! singular line μ₁ = μ₂, tsit45 with and without the control, rejected steps, rhs evaluations
//! and the error of θ(t_end) against a reference run at rtol 1e-12.
//!
//! `cargo run --release --example step_control [-- --nodes K]`

use fisher_flow::flow::{FlowSettings, Simulator, SolverKind};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scheme = match args.iter().position(|a| a == "--nodes") {
        Some(i) => Scheme::GaussHermite {
            nodes: args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(64),
        },
        None => Scheme::default(),
    };
    let eta: Option<f64> = args
        .iter()
        .position(|a| a == "--eta")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme,
    };
    let t_end = 3.0;
    let base = FlowSettings {
        solver: SolverKind::Tsit45,
        rtol: 1e-8,
        atol: 1e-10,
        t_end,
        grad_tol: 0.0,
        interior_points: 0,
        control_eta: eta.unwrap_or(fisher_flow::flow::control::DEFAULT_ETA),
        ..FlowSettings::default()
    };
    println!(
        "quadrature: {} | tsit45 rtol 1e-8 atol 1e-10 | t_end {t_end} | eta {}",
        scheme_name(&m),
        base.control_eta
    );
    println!(
        "{:>8} {:>10} | {:>9} {:>9} {:>11} | {:>9} {:>9} {:>11} {:>8}",
        "delta",
        "mu",
        "rej(off)",
        "rhs(off)",
        "err(off)",
        "rej(on)",
        "rhs(on)",
        "err(on)",
        "limited"
    );
    let mut tot = [0usize; 4];
    let mut crossings = [0usize; 2];
    for &mu in &[0.25, 0.5, -1.0, 2.0] {
        for &delta in &[1e-1, 1e-2, 1e-3, 1e-4] {
            let start = [mu - 0.5 * delta, mu + 0.5 * delta];
            let reference = Simulator::new(
                &m,
                FlowSettings {
                    rtol: 1e-12,
                    atol: 1e-14,
                    step_control: true,
                    ..base.clone()
                },
            )
            .and_then(|s| s.run_end(&start))
            .expect("reference");
            let r = &reference.last().expect("end").theta;
            let mut row = Vec::new();
            for control in [false, true] {
                let tr = Simulator::new(
                    &m,
                    FlowSettings {
                        step_control: control,
                        ..base.clone()
                    },
                )
                .and_then(|s| s.run(&start))
                .expect("run");
                if tr
                    .steps
                    .iter()
                    .any(|s| (s.theta[1] - s.theta[0]).signum() != delta.signum())
                {
                    crossings[usize::from(control)] += 1;
                }
                let e = &tr.last().expect("end").theta;
                let err = ((e[0] - r[0]).powi(2) + (e[1] - r[1]).powi(2)).sqrt();
                row.push((
                    tr.stats.rejected,
                    tr.stats.rhs_evals,
                    err,
                    tr.stats.control_limited,
                ));
            }
            tot[0] += row[0].0;
            tot[1] += row[0].1;
            tot[2] += row[1].0;
            tot[3] += row[1].1;
            println!(
                "{delta:>8.0e} {mu:>10} | {:>9} {:>9} {:>11.2e} | {:>9} {:>9} {:>11.2e} {:>8}",
                row[0].0, row[0].1, row[0].2, row[1].0, row[1].1, row[1].2, row[1].3
            );
        }
    }
    println!(
        "total: rejected {} -> {}, rhs evals {} -> {}, runs that crossed the line {} -> {}",
        tot[0], tot[2], tot[1], tot[3], crossings[0], crossings[1]
    );
    // Loose tolerances: does any accepted step cross μ₁ = μ₂ without the control?
    for target in [[-1.5, 2.0], [0.5, 0.5]] {
        let m = GaussianMixture {
            target,
            ..m.clone()
        };
        let mut cross = [0usize; 2];
        let mut runs = 0;
        for i in 0..40 {
            for &delta in &[3e-1, 1e-1, 3e-2, 1e-2, 1e-3] {
                let mu = -3.0 + 6.0 * i as f64 / 39.0;
                for sign in [1.0, -1.0] {
                    let start = [mu, mu + sign * delta];
                    runs += 1;
                    for control in [false, true] {
                        let tr = Simulator::new(
                            &m,
                            FlowSettings {
                                rtol: 1e-3,
                                atol: 1e-6,
                                t_end: 20.0,
                                step_control: control,
                                ..base.clone()
                            },
                        )
                        .and_then(|s| s.run(&start))
                        .expect("run");
                        if tr
                            .steps
                            .iter()
                            .any(|s| (s.theta[1] - s.theta[0]).signum() != sign)
                        {
                            cross[usize::from(control)] += 1;
                        }
                    }
                }
            }
        }
        println!(
            "target {target:?}, rtol 1e-3, atol 1e-6, t_end 20, {runs} near-diagonal starts: runs with a step across the line: without control {}, with control {}",
            cross[0], cross[1]
        );
    }
}

fn scheme_name(m: &GaussianMixture) -> String {
    m.scheme.describe()
}
