//! Measures the Fisher-matrix quadrature error of several rules against a much finer rule,
//! entry by entry, for separations |μ₁ − μ₂|/σ from 0.5 to 20 (σ = 1, w = ½), and the loss and
//! gradient errors (target (−1.5, 2), θ on a grid over [−6, 6]²), with the rule sizes.
//! `cargo run --release --example quad_table`
use fisher_flow::model::{GaussianMixture, LossKind, StatModel};
use fisher_flow::quadrature::{Rule, Scheme};
fn main() {
    let mk = |s, w, target| GaussianMixture {
        sigma: 1.0,
        w,
        target,
        loss_kind: LossKind::Population,
        scheme: s,
    };
    let reference = Scheme::Composite {
        nodes_per_panel: 48,
        max_panel: 0.125,
        half_width: 14.0,
    };
    let comp = |n, h| Scheme::Composite {
        nodes_per_panel: n,
        max_panel: h,
        half_width: 10.0,
    };
    let schemes = [
        ("composite 8/panel, panels ≤ 1σ", comp(8, 1.0)),
        ("composite 10/panel, panels ≤ 1σ", comp(10, 1.0)),
        ("composite 12/panel, panels ≤ 1σ", comp(12, 1.0)),
        ("composite 12/panel, panels ≤ 2σ", comp(12, 2.0)),
        ("composite 12/panel, panels ≤ 3σ", comp(12, 3.0)),
        ("composite 12/panel, panels ≤ 1.5σ", comp(12, 1.5)),
        ("composite 14/panel, panels ≤ 2σ", comp(14, 2.0)),
        ("composite 16/panel, panels ≤ 2σ", comp(16, 2.0)),
        ("composite 16/panel, panels ≤ 3σ", comp(16, 3.0)),
        ("composite 14/panel, panels ≤ 2.5σ", comp(14, 2.5)),
        ("composite 16/panel, panels ≤ 4σ", comp(16, 4.0)),
        ("composite 20/panel, panels ≤ 4σ", comp(20, 4.0)),
        ("default", Scheme::default()),
        ("gauss-hermite 64", Scheme::GaussHermite { nodes: 64 }),
    ];
    for (name, sch) in schemes {
        let mut worst: f64 = 0.0;
        let mut worst_norm: f64 = 0.0;
        let mut nodes = 0;
        for w in [0.5, 0.3, 0.1] {
            let (m, fine) = (mk(sch, w, [0.0, 0.0]), mk(reference, w, [0.0, 0.0]));
            for k in 1..=40 {
                let sep = 0.5 * k as f64;
                let th = [-sep / 2.0, sep / 2.0];
                let (a, b) = (m.fisher(&th), fine.fisher(&th));
                for (i, j) in [(0, 0), (0, 1), (1, 1)] {
                    let e = (a[(i, j)] - b[(i, j)]).abs();
                    if w == 0.5 {
                        worst = worst.max(e / b[(i, j)].abs());
                    }
                    worst_norm = worst_norm.max(e / b.amax());
                }
                let d = m.density(&th);
                nodes = nodes.max(Rule::build(&sch, &d, &d).len());
            }
        }
        // loss and gradient against the same reference, over a grid of θ
        let (m, fine) = (mk(sch, 0.5, [-1.5, 2.0]), mk(reference, 0.5, [-1.5, 2.0]));
        let (mut el, mut eg): (f64, f64) = (0.0, 0.0);
        for i in 0..=12 {
            for j in 0..=12 {
                let th = [-6.0 + i as f64, -6.0 + j as f64 + 0.25];
                let (mut g1, mut g2) = ([0.0; 2], [0.0; 2]);
                let l1 = m.loss_grad(&th, &mut g1);
                let l2 = fine.loss_grad(&th, &mut g2);
                el = el.max((l1 - l2).abs() / l2.abs());
                for k in 0..2 {
                    eg = eg.max((g1[k] - g2[k]).abs() / (1.0 + g2[k].abs()));
                }
            }
        }
        println!(
            "{name:34} Fisher: worst entrywise relative {worst:.1e} (w = 1/2), normwise {worst_norm:.1e} \
             (w = 1/2, 0.3, 0.1); loss {el:.1e}, gradient {eg:.1e}; at most {nodes} nodes"
        );
    }
}
