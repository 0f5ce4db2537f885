//! The composite kernel's Fisher matrix and gradient at the θ of `benches/jax/rule_accuracy.py`
//! (the demo mixture, default quadrature), one line per θ: `mu1 mu2 G11 G12 G22 g1 g2`, for that
//! script to compare with a 48 000-node reference and with the JAX rule at equal footing:
//! `cargo run --release --example kernel_values > /tmp/ours.txt &&
//! python3 benches/jax/rule_accuracy.py /tmp/ours.txt` (numpy only).
use fisher_flow::model::mixture_kernel::MixtureKernel;
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;

/// The field's corners, the optimum and its swap, near-line and near-diagonal starts.
const THETAS: [[f64; 2]; 9] = [
    [0.1, 0.15],
    [-3.0, -2.5],
    [3.5, -3.0],
    [-4.0, 4.0],
    [-1.5, 2.0],
    [2.3, -1.7],
    [0.3, 0.300001],
    [-4.0, -3.74],
    [3.9, 4.0],
];

fn main() {
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    };
    let k = MixtureKernel::new(&m);
    for th in THETAS {
        if let Some((g, f)) = k.composite_grad_fisher(&th) {
            println!(
                "{:e} {:e} {:e} {:e} {:e} {:e} {:e}",
                th[0], th[1], f[0], f[1], f[2], g[0], g[1]
            );
        }
    }
}
