//! The density flows' integration cost: the Wasserstein and WFR flows of `models/density-2d.toml`
//! (banana target, 32×32 cells, bdf, rtol 1e-8) with the sparse split-form Jacobian (faer
//! sparse LU, coloured Jacobian) against the dense n×n Jacobian (nalgebra LU), to t = 2; and
//! the 1-D Wasserstein flow of `models/density-1d.toml` (380 cells) to t = 8, both ways.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::config::Overrides;
use fisher_flow::density::{DensityExperiment, DensitySettings, FlowKind, integrate};
use std::hint::black_box;
use std::path::Path;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("density-flow");
    g.sample_size(10);
    for (file, t_end, flows) in [
        (
            "models/density-2d.toml",
            2.0,
            &[FlowKind::Wasserstein, FlowKind::Wfr][..],
        ),
        ("models/density-1d.toml", 8.0, &[FlowKind::Wasserstein][..]),
    ] {
        let exp = DensityExperiment::load(Path::new(file), &Overrides::default()).expect("model");
        for &flow in flows {
            for dense in [false, true] {
                let settings = DensitySettings {
                    t_end,
                    save_at: Vec::new(),
                    dense_jacobian: dense,
                    ..exp.settings.clone()
                };
                let name = format!(
                    "{} {} {} cells, {} Jacobian",
                    file.trim_start_matches("models/"),
                    flow.name(),
                    exp.grid.len(),
                    if dense { "dense" } else { "sparse" }
                );
                g.bench_function(name, |b| {
                    b.iter(|| {
                        let p = integrate(
                            flow,
                            &exp.grid,
                            &exp.log_pi,
                            black_box(&exp.log_rho0),
                            &settings,
                        )
                        .expect("runs");
                        assert!(p.finished());
                        p.steps
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
