//! The exact natural gradient of an MLP two ways: matrix-free CG on Fisher–vector products
//! ([`fisher_flow::metric::cg`]) against the dense Fisher (score factor, RᵀR, eigendecomposition,
//! solve), on a 20-40-10 softmax network (n = 1250, batch 500) and the 4-8-3 Iris size.
//!
//!     cargo bench --bench cg

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::metric::Metric;
use fisher_flow::metric::cg::natural_gradient_cg;
use fisher_flow::model::data::synthetic_classification;
use fisher_flow::model::{Activation, Mlp, OutputKind, StatModel};
use std::hint::black_box;
use std::time::Duration;

fn network(sizes: Vec<usize>, n: usize) -> (Mlp, Vec<f64>) {
    let data = synthetic_classification(n, sizes[0], *sizes.last().unwrap_or(&2), 1);
    let net = Mlp::new(sizes, Activation::Tanh, OutputKind::Softmax, data).expect("network");
    let theta = net.init(1);
    (net, theta)
}

fn bench(c: &mut Criterion) {
    let lambda = 1e-3;
    for (name, sizes, n) in [
        ("4-8-3 x150", vec![4, 8, 3], 150),
        ("20-40-10 x500", vec![20, 40, 10], 500),
    ] {
        let (net, theta) = network(sizes, n);
        let mut g = c.benchmark_group(format!("natural gradient {name} (n = {})", net.dim()));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.bench_function("cg (Fisher-vector products, tol 1e-8)", |b| {
            b.iter(|| black_box(natural_gradient_cg(&net, &theta, lambda, 1e-8, 2000)))
        });
        g.bench_function("dense (R^T R, eigendecomposition, solve)", |b| {
            b.iter(|| {
                let grad = net.gradient(&theta);
                let m = Metric::new(net.fisher(&theta), lambda);
                black_box(m.solve(&grad))
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
