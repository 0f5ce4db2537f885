//! Measures the Fisher-matrix quadrature error of several rules against a much finer rule,
//! entry by entry, for separations |μ₁ − μ₂|/σ from 0.5 to 20 (σ = 1, w = ½).
//! `cargo run --release --example quad_table`
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::{Rule, Scheme};
fn main() {
    let mk = |s| GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [0.0, 0.0],
        loss_kind: LossKind::Population,
        scheme: s,
    };
    let fine = mk(Scheme::Composite {
        nodes_per_panel: 48,
        max_panel: 0.125,
        half_width: 14.0,
    });
    let schemes = [
        (
            "composite 8/panel",
            Scheme::Composite {
                nodes_per_panel: 8,
                max_panel: 1.0,
                half_width: 10.0,
            },
        ),
        (
            "composite 10/panel",
            Scheme::Composite {
                nodes_per_panel: 10,
                max_panel: 1.0,
                half_width: 10.0,
            },
        ),
        ("composite 12/panel (default)", Scheme::default()),
        ("gauss-hermite 64", Scheme::GaussHermite { nodes: 64 }),
    ];
    for (name, sch) in schemes {
        let m = mk(sch);
        let mut worst: f64 = 0.0;
        let mut nodes = 0;
        for k in 1..=40 {
            let sep = 0.5 * k as f64;
            let th = [-sep / 2.0, sep / 2.0];
            let (a, b) = (m.fisher(&th), fine.fisher(&th));
            for (i, j) in [(0, 0), (0, 1), (1, 1)] {
                worst = worst.max((a[(i, j)] - b[(i, j)]).abs() / b[(i, j)].abs());
            }
            let d = m.density(&th);
            nodes = nodes.max(Rule::build(&sch, &d, &d).len());
        }
        println!("{name:30} worst entrywise relative error {worst:.1e}, at most {nodes} nodes");
    }
}
