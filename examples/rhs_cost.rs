//! Minimum-of-repeats timing of one fast-path rhs evaluation (robust to a busy machine).
use fisher_flow::flow::FlowRhs;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::GaussHermite { nodes: 64 },
    };
    let rhs = FlowRhs::new(&m, MetricKind::Exact, 0.0);
    let mut out = [0.0; 2];
    let mut best = f64::INFINITY;
    for _ in 0..30 {
        let n = 20000;
        let t = Instant::now();
        for i in 0..n {
            rhs.eval(black_box(&[0.7 + 1e-9 * i as f64, -2.3]), &mut out);
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
    }
    let k = fisher_flow::model::mixture_kernel::MixtureKernel::new(&m);
    let mut bk = f64::INFINITY;
    for _ in 0..30 {
        let n = 20000;
        let t = Instant::now();
        for i in 0..n {
            black_box(k.fast_grad_fisher(black_box(&[0.7 + 1e-9 * i as f64, -2.3])));
        }
        bk = bk.min(t.elapsed().as_secs_f64() / n as f64);
    }
    println!("kernel alone (g and I): {:.0} ns", bk * 1e9);
    let mut bexp = f64::INFINITY;
    for _ in 0..30 {
        let n = 200000;
        let t = Instant::now();
        let mut acc = 0.0;
        for i in 0..n {
            acc += black_box(0.1 + 1e-7 * i as f64).exp();
        }
        black_box(acc);
        bexp = bexp.min(t.elapsed().as_secs_f64() / n as f64);
    }
    println!(
        "fast rhs: {:.0} ns per evaluation (min of 30 x 20000); libm exp {:.2} ns; bound 2*2K*exp = {:.0} ns (K = 64)",
        best * 1e9,
        bexp * 1e9,
        256.0 * bexp * 1e9
    );
}
