//! Cost of one right-hand-side evaluation f(θ) = −(I + λI)⁺∇L for the demo mixture:
//! the shared-exponential Gauss–Hermite fast path (K = 64), the generic log-sum-exp path
//! through `loss_grad` + `fisher` + `Metric::solve` (same rule), and the composite default (the
//! whole rhs and its kernel alone; the node count is printed, for ns per node); plus one libm
//! `exp` for the bound 2·2K·t_exp. The rhs benches alternate between θ and a point 1e-9 away:
//! `FlowRhs` keeps its last kernel evaluation, and a repeated θ would time the cache.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::flow::FlowRhs;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::mixture_kernel::MixtureKernel;
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::{Grading, PanelScratch, Rule, Scheme};
use std::hint::black_box;

fn demo(scheme: Scheme) -> GaussianMixture {
    GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme,
    }
}

fn bench(c: &mut Criterion) {
    let gh = demo(Scheme::GaussHermite { nodes: 64 });
    let comp = demo(Scheme::default());
    let theta = [0.7, -2.3];
    let mut g = c.benchmark_group("rhs");
    let thetas = [theta, [theta[0] + 1e-9, theta[1]]];
    let fast = FlowRhs::new(&gh, MetricKind::Exact, 0.0);
    g.bench_function("gauss-hermite-64 fast path", |b| {
        let (mut out, mut i) = ([0.0; 2], 0usize);
        b.iter(|| {
            i ^= 1;
            fast.eval(black_box(&thetas[i]), &mut out)
        })
    });
    g.bench_function(
        "gauss-hermite-64 generic (loss_grad + fisher + Metric::solve)",
        |b| {
            b.iter(|| {
                let gr = gh.gradient(black_box(&theta));
                MetricKind::Exact.at(&gh, black_box(&theta), 0.0).solve(&gr)
            })
        },
    );
    let slow = FlowRhs::new(&comp, MetricKind::Exact, 0.0);
    g.bench_function("composite default", |b| {
        let (mut out, mut i) = ([0.0; 2], 0usize);
        b.iter(|| {
            i ^= 1;
            slow.eval(black_box(&thetas[i]), &mut out)
        })
    });
    // Nodes of one composite evaluation at θ: the generic path's two rules (Fisher + gradient)
    // and the kernel's one node set (their union), for ns per node.
    let (p, t) = (comp.density(&theta), comp.density(&comp.target));
    let two_rules =
        Rule::build(&comp.scheme, &p, &p).len() + Rule::build(&comp.scheme, &t, &p).len();
    let union = match comp.scheme {
        Scheme::Composite {
            nodes_per_panel,
            max_panel,
            half_width,
        } => {
            let mut s = PanelScratch::default();
            s.build_union(max_panel, half_width, &[p, t], &p, &Grading::of(&p))
                .len()
                * nodes_per_panel
        }
        Scheme::GaussHermite { .. } => 0,
    };
    eprintln!(
        "composite default at θ = {theta:?}: {two_rules} nodes in the generic path's two rules, \
         {union} in the kernel's one node set (gauss-hermite-64: 256)"
    );
    let kernel = MixtureKernel::new(&comp);
    g.bench_function("composite default, kernel alone (g and I)", |b| {
        b.iter(|| kernel.composite_grad_fisher(black_box(&theta)))
    });
    g.bench_function("exact jacobian gauss-hermite-64", |b| {
        let mut k = 0.0;
        b.iter(|| {
            k += 1e-9;
            fast.jacobian(black_box(&[theta[0] + k, theta[1]]))
        })
    });
    g.bench_function("libm exp x1", |b| {
        let mut x = 0.1f64;
        b.iter(|| {
            x = black_box(x) + 1e-9;
            x.exp()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
