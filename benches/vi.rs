//! Cost of one right-hand side of the natural VI flow, dφ/dt = −I_φ⁻¹∇L (−ELBO by cubature,
//! exact Gaussian Fisher in the natural chart), on Bayesian logistic regression with 100
//! synthetic examples (seeded), d = 2 and 3, expectations by a Gauss–Hermite tensor rule
//! (10 nodes per axis: 100 and 1000 nodes) against seeded Monte Carlo (1000 draws).

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::flow::FlowRhs;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::variational::{
    Coords, Covariance, Rule, Target, VariationalChart, VariationalGaussian,
};
use nalgebra::{DMatrix, DVector};
use std::hint::black_box;

/// N = 100 examples, features from a fixed LCG (the bench needs no data file), labels by a
/// fixed linear rule with every fifth flipped.
fn logistic(d: usize) -> Target {
    let n = 100;
    let mut state: u64 = 20261202;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let x = DMatrix::from_fn(n, d, |_, j| if j == 0 { 1.0 } else { next() * 1.7 });
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let s: f64 = (0..d).map(|j| x[(i, j)] * (j as f64 - 0.6)).sum();
            let lab = if s > 0.0 { 1.0 } else { -1.0 };
            if i % 5 == 0 { -lab } else { lab }
        })
        .collect();
    Target::Logistic {
        x,
        y,
        prior_var: 4.0,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("vi-natural-rhs");
    for d in [2usize, 3] {
        let coords = Coords {
            d,
            chart: VariationalChart::Natural,
            cov: Covariance::Full,
        };
        // q = N(0.1·1, 0.5·I) in the natural chart
        let m = DVector::from_element(d, 0.1);
        let s = DMatrix::identity(d, d) * 0.5;
        let phi = coords.from_mean_cov(&m, &s).expect("chart");
        let rules = [
            ("gauss-hermite 10/axis", Rule::gauss_hermite(d, 10)),
            ("monte-carlo 1000", Rule::monte_carlo(d, 1000, 7)),
        ];
        for (name, rule) in rules {
            let model = VariationalGaussian::new(coords, logistic(d), rule);
            let rhs = FlowRhs::new(&model, MetricKind::Exact, 0.0);
            let mut out = vec![0.0; phi.len()];
            g.bench_function(format!("d = {d}, {name}"), |b| {
                b.iter(|| rhs.eval(black_box(&phi), &mut out))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots().sample_size(20);
    targets = bench
}
criterion_main!(benches);
