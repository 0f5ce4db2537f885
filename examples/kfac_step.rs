//! One K-FAC natural-gradient evaluation for an MLP d-h-c (default 1000-1000-10) on a batch
//! of B (default 1000) examples, f64, next to a plain gradient evaluation of the same network;
//! prints wall times (median of R repetitions), flop rates, the K-FAC state size and the
//! process's peak resident memory (VmHWM) against the 8·n² bytes of a dense Fisher.
//!
//!     cargo run --release --example kfac_step [-- D H C B R]
//!     cargo run --release --features lapack --example kfac_step

use fisher_flow::gemm::{Op, gemm, gemm_flops};
use fisher_flow::metric::Factorized;
use fisher_flow::metric::kfac::{KfacMetric, KfacProvider, natural_gradient};
use fisher_flow::metric::provider::KfacDamping;
use fisher_flow::model::data::synthetic_classification;
use fisher_flow::model::{Activation, DenseLayers, KfacTargets, Mlp, OutputKind, StatModel};
use nalgebra::DMatrix;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let get = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (d, h, c, b, reps) = (
        get(0, 1000),
        get(1, 1000),
        get(2, 10),
        get(3, 1000),
        get(4, 5),
    );
    let data = synthetic_classification(b, d, c, 1);
    let net =
        Mlp::new(vec![d, h, c], Activation::Tanh, OutputKind::Softmax, data).expect("network");
    let theta = net.init(1);
    let n = net.dim();
    println!(
        "backend: {} | MLP {d}-{h}-{c} (n = {n}), batch {b}, f64",
        fisher_flow::linalg::backend_name()
    );

    // The machine's dgemm rate (the same kernels as the passes), 1000×1000×1000.
    let m = 1000;
    let a = DMatrix::from_fn(m, m, |i, j| ((i * 7 + j * 13) % 17) as f64 - 8.0);
    let mut out = DMatrix::zeros(m, m);
    let t = median(
        (0..reps)
            .map(|_| {
                let c0 = Instant::now();
                gemm(1.0, Op::n(&a), Op::n(&a), 0.0, &mut out);
                c0.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let dgemm = gemm_flops(m, m, m) / t / 1e9;
    let t_na = {
        let c0 = Instant::now();
        let p = &a * &a;
        std::hint::black_box(p);
        c0.elapsed().as_secs_f64()
    };
    println!(
        "dgemm 1000^3: {:.1} GFLOP/s (crate::gemm), {:.1} GFLOP/s (nalgebra `*`)",
        dgemm,
        gemm_flops(m, m, m) / t_na / 1e9
    );

    let mut grad = vec![0.0; n];
    let provider = KfacProvider {
        targets: KfacTargets::Sampled,
        damping_mode: KfacDamping::Factored,
        samples: 1,
        seed: 42,
    };
    // Plain gradient and K-FAC step interleaved, so both see the same machine load; the
    // ratio is taken per pair.
    let mut tg = Vec::new();
    let mut tk = Vec::new();
    let mut ratios = Vec::new();
    net.loss_grad(&theta, &mut grad);
    for _ in 0..reps {
        let c0 = Instant::now();
        net.loss_grad(&theta, &mut grad);
        let a = c0.elapsed().as_secs_f64();
        let c1 = Instant::now();
        let (_l, _g, nat) = natural_gradient(&net, &theta, &provider, 1e-3).expect("kfac");
        std::hint::black_box(nat);
        let b = c1.elapsed().as_secs_f64();
        tg.push(a);
        tk.push(b);
        ratios.push(b / a);
    }
    let (t_grad, t_kfac, ratio) = (median(tg), median(tk), median(ratios));
    let mut phases = [0.0f64; 2];
    // Phase split of one evaluation: factors (+ gradient) vs inverses + preconditioning.
    {
        let c0 = Instant::now();
        let f = net
            .kfac_factors(&theta, KfacTargets::Sampled, 1, 42, true)
            .expect("factors");
        phases[0] = c0.elapsed().as_secs_f64();
        let c1 = Instant::now();
        let g = nalgebra::DVector::from_vec(f.loss_grad.clone().expect("grad").1);
        let km = KfacMetric::new(net.layers(), f.a, f.g, 1e-3, KfacDamping::Factored);
        let nat = km.solve(&g);
        phases[1] = c1.elapsed().as_secs_f64();
        std::hint::black_box(nat);
        println!(
            "K-FAC state (factors + Cholesky factors): {:.1} MB; a dense Fisher would need 8·n² = {:.3e} bytes ({:.2} TB)",
            km.memory_bytes() as f64 / 1e6,
            8.0 * (n as f64).powi(2),
            8.0 * (n as f64).powi(2) / 1e12
        );
    }
    // Useful flops (general-product count 2mkn; symmetric products counted at half).
    let (df, hf, cf, bf) = (d as f64, h as f64, c as f64, b as f64);
    let fwd = 2.0 * hf * (df + 1.0) * bf + 2.0 * cf * (hf + 1.0) * bf;
    let bwd = 2.0 * hf * cf * bf + 2.0 * hf * (df + 1.0) * bf + 2.0 * cf * (hf + 1.0) * bf;
    let plain = fwd + bwd;
    let factors =
        (df + 1.0).powi(2) * bf + (hf + 1.0).powi(2) * bf + hf * hf * bf + 2.0 * hf * cf * bf;
    let chol = ((df + 1.0).powi(3) + hf.powi(3) + (hf + 1.0).powi(3)) / 3.0;
    let precond =
        2.0 * hf * hf * (df + 1.0) + 2.0 * (df + 1.0).powi(2) * hf + 4.0 * (hf + 1.0).powi(2) * cf;
    let kfac = plain + factors + chol + precond;
    println!(
        "plain gradient: {:.4} s ({:.2} GFLOP, {:.1} GFLOP/s)",
        t_grad,
        plain / 1e9,
        plain / t_grad / 1e9
    );
    println!(
        "K-FAC natural gradient: {:.4} s ({:.2} GFLOP, {:.1} GFLOP/s) = {:.2}× the plain gradient (median of paired ratios) | phases: factors+gradient {:.3} s, factorizations+solve {:.3} s",
        t_kfac,
        kfac / 1e9,
        kfac / t_kfac / 1e9,
        ratio,
        phases[0],
        phases[1]
    );
    match peak_rss_kib() {
        Some(k) => println!("peak RSS (VmHWM): {:.1} MB", k as f64 / 1024.0),
        None => println!("peak RSS: unavailable (/proc/self/status)"),
    }
}
