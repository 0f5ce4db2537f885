//! The server-side work of one slider move on the `fisher-flow explore` page, measured on the
//! API's handler functions (no HTTP): the panel (`/api/metric`), the field (`/api/field`, grid
//! 15, κ heat map on 61×61 nodes) and the flow (`/api/particles`, 24 particles, 120 frames),
//! each at the page's defaults (live field and particles with 32-node Gauss–Hermite
//! quadrature, particles at rtol 1e-6) and, for comparison, with the model file's composite
//! rule and rtol 1e-8 (what the exports use).
//! The budget: ≤ 50 ms for the whole move.

use criterion::{Criterion, criterion_group, criterion_main};
use fisher_flow::serve::api::{self, Base, Params};
use std::hint::black_box;

fn slider_move(c: &mut Criterion) {
    let base = Base::load(None).expect("the built-in model loads");
    let mut g = c.benchmark_group("explore");
    g.sample_size(20);
    for (name, quad, rtol) in [
        ("page (quad=32, rtol=1e-6)", "&quad=32", "&rtol=1e-6"),
        ("file's quadrature and rtol", "", ""),
    ] {
        // σ moved: every endpoint recomputes
        let metric = Params::parse("mu1=1.5&mu2=1&sigma=0.9", api::METRIC_PARAMS).unwrap();
        let field = Params::parse(
            &format!("sigma=0.9&grid=15&heat=kappa&nodes=61{quad}"),
            api::FIELD_PARAMS,
        )
        .unwrap();
        let parts = Params::parse(
            &format!("sigma=0.9&n=24&seed=42&t_end=20&frames=120{quad}{rtol}"),
            api::PARTICLE_PARAMS,
        )
        .unwrap();
        g.bench_function(format!("slider move, {name}"), |b| {
            b.iter(|| {
                black_box(api::metric(&base, &metric).unwrap());
                black_box(api::field(&base, &field).unwrap());
                black_box(api::particles(&base, &parts).unwrap());
            })
        });
        g.bench_function(format!("field only, {name}"), |b| {
            b.iter(|| black_box(api::field(&base, &field).unwrap()))
        });
        g.bench_function(format!("particles only, {name}"), |b| {
            b.iter(|| black_box(api::particles(&base, &parts).unwrap()))
        });
    }
    g.bench_function("metric (panel)", |b| {
        let metric = Params::parse("mu1=1.5&mu2=1&sigma=0.9", api::METRIC_PARAMS).unwrap();
        b.iter(|| black_box(api::metric(&base, &metric).unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = slider_move
}
criterion_main!(benches);
