//! Cost of one right-hand side of the third-order flow against the natural flow's, for the demo
//! mixture (composite rule) at a point near the saddle (δ = 1e-4) and one far from the line.
//! The correction adds a quadrature of dual-number scores and Hessians (g, T, Γ⁽¹⁾ in the chart
//! (M, δ)) to every evaluation. For the MLP plateau student (2-2-1 tanh, N = 200, metric
//! G + 1e-8 I) the correction adds a second-order forward pass, a backward pass and a second
//! dense Fisher solve, at a point 1e-4 off the symmetric saddle and at a seeded initialization.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::flow::FlowRhs;
use fisher_flow::geometry::correction::GeodesicAcceleration;
use fisher_flow::geometry::escape::mixture;
use fisher_flow::geometry::mlp::MlpGeodesicAcceleration;
use fisher_flow::geometry::plateau;
use fisher_flow::metric::MetricKind;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let m = mixture(1.0, 0.5);
    let mut g = c.benchmark_group("third-order");
    for (name, theta) in [("near", [0.24995, 0.25005]), ("far", [0.7, -2.3])] {
        let plain = FlowRhs::new(&m, MetricKind::Exact, 0.0);
        g.bench_function(format!("natural rhs {name}"), |b| {
            let mut out = [0.0; 2];
            b.iter(|| plain.eval(black_box(&theta), &mut out))
        });
        let corr = FlowRhs::new(&m, MetricKind::Exact, 0.0)
            .with_correction(Some(Box::new(GeodesicAcceleration::new(&m, 0.0, 1.0))));
        g.bench_function(format!("geodesic-acceleration rhs {name}"), |b| {
            let mut out = [0.0; 2];
            b.iter(|| corr.eval(black_box(&theta), &mut out))
        });
    }
    let m = plateau::student(vec![2, 2, 1]).expect("student");
    let saddle = plateau::symmetric_saddle().expect("saddle");
    for (name, theta) in [
        ("plateau", plateau::plateau_start(&saddle, 1e-4, 1)),
        ("init", m.init(5)),
    ] {
        let plain = FlowRhs::new(&m, MetricKind::Exact, 1e-8);
        g.bench_function(format!("mlp natural rhs {name}"), |b| {
            let mut out = [0.0; 9];
            b.iter(|| plain.eval(black_box(&theta), &mut out))
        });
        let corr = FlowRhs::new(&m, MetricKind::Exact, 1e-8)
            .with_correction(Some(Box::new(MlpGeodesicAcceleration::new(&m, 0.0, 1.0))));
        g.bench_function(format!("mlp geodesic-acceleration rhs {name}"), |b| {
            let mut out = [0.0; 9];
            b.iter(|| corr.eval(black_box(&theta), &mut out))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
