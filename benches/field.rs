//! The particle-field workload: demo mixture, 32×32 grid over [−4, 4]² minus the
//! diagonal (992 starts), tsit45, rtol 1e-6, atol 1e-9, t_end 10 — with 64-node Gauss–Hermite
//! and with the accurate composite Gauss–Legendre default, on 1 and 2 threads, and a 16×16
//! grid for the linear-in-starts check.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::field::{grid_starts, run_field};
use fisher_flow::flow::{FlowSettings, Simulator, SolverKind};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;

fn bench(c: &mut Criterion) {
    let settings = FlowSettings {
        solver: SolverKind::Tsit45,
        rtol: 1e-6,
        atol: 1e-9,
        t_end: 10.0,
        ..FlowSettings::default()
    };
    let mut g = c.benchmark_group("field");
    g.sample_size(10);
    let cases = [
        ("gh64", Scheme::GaussHermite { nodes: 64 }, 32, 1),
        ("gh64", Scheme::GaussHermite { nodes: 64 }, 32, 2),
        ("gh64", Scheme::GaussHermite { nodes: 64 }, 16, 1),
        ("composite", Scheme::default(), 32, 1),
        ("composite", Scheme::default(), 32, 2),
    ];
    for (name, scheme, grid, threads) in cases {
        let m = GaussianMixture {
            sigma: 1.0,
            w: 0.5,
            target: [-1.5, 2.0],
            loss_kind: LossKind::Population,
            scheme,
        };
        let sim = Simulator::new(&m, settings.clone()).expect("valid");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let starts = grid_starts(grid, -4.0, 4.0);
        g.bench_function(
            format!("{grid}x{grid} {name} tsit45, {threads} thread(s)"),
            |b| {
                b.iter(|| {
                    let pts = pool
                        .install(|| run_field(&sim, &m, &starts, 1e-3, &|| {}))
                        .expect("runs");
                    assert!(pts.iter().all(|p| p.converged));
                    pts.len()
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
