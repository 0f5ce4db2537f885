//! K-FAC against the plain gradient on an MLP 1000-1000-10 (batch 1000, f64), the machine's
//! dgemm rate, and the exact mixture Fisher at one point.
//!
//!     cargo bench --bench kfac
//!     cargo bench --bench kfac --features lapack
//!
//! Peak memory and flop rates of the same step: `cargo run --release --example kfac_step`.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::gemm::{Op, gemm};
use fisher_flow::metric::kfac::{KfacProvider, natural_gradient};
use fisher_flow::metric::provider::KfacDamping;
use fisher_flow::model::data::synthetic_classification;
use fisher_flow::model::{
    Activation, GaussianMixture, KfacTargets, LossKind, Mlp, OutputKind, StatModel,
};
use fisher_flow::quadrature::Scheme;
use nalgebra::DMatrix;
use std::hint::black_box;
use std::time::Duration;

fn network() -> (Mlp, Vec<f64>) {
    let data = synthetic_classification(1000, 1000, 10, 1);
    let net = Mlp::new(
        vec![1000, 1000, 10],
        Activation::Tanh,
        OutputKind::Softmax,
        data,
    )
    .expect("network");
    let theta = net.init(1);
    (net, theta)
}

fn kfac_vs_gradient(c: &mut Criterion) {
    let (net, theta) = network();
    let backend = fisher_flow::linalg::backend_name();
    let mut g = c.benchmark_group(format!("mlp-1000-1000-10 batch 1000 [{backend}]"));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    let mut grad = vec![0.0; net.dim()];
    g.bench_function("plain gradient", |b| {
        b.iter(|| black_box(net.loss_grad(black_box(&theta), &mut grad)))
    });
    let p = KfacProvider {
        targets: KfacTargets::Sampled,
        damping_mode: KfacDamping::Factored,
        samples: 1,
        seed: 42,
    };
    g.bench_function("kfac natural gradient", |b| {
        b.iter(|| black_box(natural_gradient(&net, black_box(&theta), &p, 1e-3).expect("kfac")))
    });
    g.finish();
}

fn dgemm_rate(c: &mut Criterion) {
    let a = DMatrix::from_fn(1000, 1000, |i, j| ((i * 7 + j * 13) % 17) as f64 - 8.0);
    let mut out = DMatrix::zeros(1000, 1000);
    let mut g = c.benchmark_group("dgemm 1000x1000x1000 (2 GFLOP)");
    g.sample_size(20);
    g.bench_function("crate::gemm (faer)", |b| {
        b.iter(|| gemm(1.0, Op::n(black_box(&a)), Op::n(&a), 0.0, &mut out))
    });
    g.bench_function("nalgebra mul", |b| b.iter(|| black_box(black_box(&a) * &a)));
    g.finish();
}

fn mixture_fisher(c: &mut Criterion) {
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    };
    let theta = [0.1, 0.15];
    let mut out = DMatrix::zeros(2, 2);
    c.bench_function(
        "exact mixture Fisher at (0.1, 0.15), composite quadrature",
        |b| b.iter(|| m.fisher_into(black_box(&theta), &mut out)),
    );
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotters backend needs a system font this machine may lack.
    config = Criterion::default().without_plots();
    targets = kfac_vs_gradient, dgemm_rate, mixture_fisher
}
criterion_main!(benches);
