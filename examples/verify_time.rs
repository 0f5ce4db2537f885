//! Wall and CPU time of `verify` on a certificate (issue 10: a 100,000-step certificate must
//! verify in under 10 s on 2 cores), and the minimum-of-repeats cost of one reference
//! evaluation (robust to a busy machine).
//!
//! cargo run --release --example verify_time -- CERTIFICATE.json
//!
//! Make a ≥ 100,000-step, complete certificate with e.g.
//! `fisher-flow run --solver tr-bdf2 --rtol 2e-10 --atol 1e-12 --start 3.5,-3 --start=-0.5,3.5`.
use fisher_flow::certificate::reference::RefMixture;
use fisher_flow::certificate::verify::{load, verify};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;
use std::hint::black_box;
use std::time::Instant;

/// User + system CPU seconds of this process so far (Linux /proc; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: utime, stime are the 12th and 13th.
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let k: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (u + k) / tick
}

fn main() {
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    };
    let r = RefMixture::new(&m, "exact", 0.0).expect("metric");
    for (name, full) in [("full point (L, ∇L, I)", 0), ("loss and gradient", 2)] {
        let mut best = f64::INFINITY;
        for _ in 0..20 {
            let n = 500;
            let t = Instant::now();
            for i in 0..n {
                let th = [0.7 + 1e-9 * i as f64, -2.3];
                match full {
                    0 => {
                        black_box(r.at(black_box(&th)));
                    }
                    _ => {
                        black_box(r.loss_grad_at(black_box(&th)));
                    }
                }
            }
            best = best.min(t.elapsed().as_secs_f64() / n as f64);
        }
        println!("reference {name}: {:.1} µs (min of 20 × 500)", best * 1e6);
    }
    let Some(path) = std::env::args().nth(1) else {
        println!("(pass a certificate.json to time verify on it)");
        return;
    };
    let (w0, c0) = (Instant::now(), cpu_seconds());
    let cert = match load(std::path::Path::new(&path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (w1, c1) = (Instant::now(), cpu_seconds());
    let rep = match verify(&cert, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (w2, c2) = (Instant::now(), cpu_seconds());
    let steps: usize = cert.trajectories.iter().map(|t| t.steps.len() - 1).sum();
    println!(
        "{path}: {steps} steps, {} threads | load {:.2} s wall ({:.2} s CPU) | verify {:.2} s wall ({:.2} s CPU, {:.1} µs CPU/step) | ok = {} | worst local error {:.3}",
        rayon::current_num_threads(),
        (w1 - w0).as_secs_f64(),
        c1 - c0,
        (w2 - w1).as_secs_f64(),
        c2 - c1,
        (c2 - c1) / steps.max(1) as f64 * 1e6,
        rep.ok(),
        rep.worst_local_error
    );
    if let Some(f) = rep.failure {
        println!("  {f}");
    }
}
