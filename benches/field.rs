//! The particle-field workload: demo mixture, 32×32 grid over [−4, 4]² minus the
//! diagonal (992 starts), 64-node Gauss–Hermite, tsit45, rtol 1e-6, atol 1e-9, t_end 10 — on 1
//! and 2 threads, and a 16×16 grid for the linear-in-starts check.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::field::{grid_starts, run_field};
use fisher_flow::flow::{FlowSettings, Simulator, SolverKind};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;

fn bench(c: &mut Criterion) {
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::GaussHermite { nodes: 64 },
    };
    let settings = FlowSettings {
        solver: SolverKind::Tsit45,
        rtol: 1e-6,
        atol: 1e-9,
        t_end: 10.0,
        ..FlowSettings::default()
    };
    let sim = Simulator::new(&m, settings).expect("valid");
    let mut g = c.benchmark_group("field");
    g.sample_size(20);
    for (grid, threads) in [(32, 1), (32, 2), (16, 1)] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let starts = grid_starts(grid, -4.0, 4.0);
        g.bench_function(
            format!("{grid}x{grid} gh64 tsit45, {threads} thread(s)"),
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
