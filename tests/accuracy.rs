//! `--rtol` means the same accuracy for every solver: with the per-method calibration of the
//! internal tolerance (`fisher_flow::flow::calibration`), the global error at user tolerance
//! rtol (atol = rtol/100) is ≤ 10·(rtol·‖θ‖∞ + atol) against an independent tight reference.
//! A real subset of the work–precision set of `examples/work_precision.rs` (48 starts × 3
//! times × 3 tolerances there): the worst cases and both flows.

use fisher_flow::flow::{FlowSettings, Simulator, SolverKind, calibration, internal_tolerances};
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;

fn mixture(sigma: f64, w: f64, target: [f64; 2]) -> GaussianMixture {
    GaussianMixture {
        sigma,
        w,
        target,
        loss_kind: LossKind::Population,
        scheme: Scheme::default(),
    }
}

fn end(m: &GaussianMixture, s: FlowSettings, start: [f64; 2]) -> [f64; 2] {
    let tr = Simulator::new(m, s).unwrap().run_end(&start).unwrap();
    assert!(tr.succeeded(), "{:?}", tr.stop);
    let th = &tr.last().unwrap().theta;
    [th[0], th[1]]
}

fn settings(metric: MetricKind, solver: SolverKind, rtol: f64, t: f64) -> FlowSettings {
    FlowSettings {
        metric,
        solver,
        rtol,
        atol: rtol * 1e-2,
        t_end: t,
        grad_tol: 0.0,
        interior_points: 0,
        max_steps: 1_000_000,
        ..FlowSettings::default()
    }
}

#[test]
fn every_solver_meets_ten_times_rtol() {
    // (model, metric, start): the bdf case (σ = 3, w = 0.9, start (20, 25)) with both
    // flows, and the unequal-weight Euclidean flow through μ₁ = μ₂
    let c = mixture(3.0, 0.9, [-4.5, 6.0]);
    let b = mixture(1.0, 0.2, [-1.5, 2.0]);
    let cases = [
        (&c, MetricKind::Exact, [20.0, 25.0]),
        (&c, MetricKind::Euclidean, [20.0, 25.0]),
        (&b, MetricKind::Euclidean, [0.5, 0.4]),
    ];
    let times = [0.5, 2.0];
    // reference: tsit45 uncalibrated at rtol 1e-13
    let refs: Vec<Vec<[f64; 2]>> = cases
        .iter()
        .map(|&(m, metric, start)| {
            times
                .iter()
                .map(|&t| {
                    let mut s = settings(metric, SolverKind::Tsit45, 1e-13, t);
                    s.calibrated = false;
                    end(m, s, start)
                })
                .collect()
        })
        .collect();
    // tight tolerances only where a method is cheap enough in a debug build
    let plan: [(SolverKind, &[f64]); 5] = [
        (SolverKind::Tsit45, &[1e-6, 1e-10]),
        (SolverKind::Bdf, &[1e-6, 1e-10]),
        (SolverKind::Auto, &[1e-6, 1e-10]),
        (SolverKind::Esdirk34, &[1e-6, 1e-8]),
        (SolverKind::TrBdf2, &[1e-6]),
    ];
    let mut worst = Vec::new();
    for (solver, rtols) in plan {
        for &rtol in rtols {
            let mut e_max = 0.0f64;
            for (&(m, metric, start), r) in cases.iter().zip(&refs) {
                for (&t, r) in times.iter().zip(r) {
                    let th = end(m, settings(metric, solver, rtol, t), start);
                    let scale = rtol * r[0].abs().max(r[1].abs()) + rtol * 1e-2;
                    let e = (th[0] - r[0]).abs().max((th[1] - r[1]).abs()) / scale;
                    e_max = e_max.max(e);
                }
            }
            worst.push(format!("{} {rtol:e}: {e_max:.2}", solver.name()));
            assert!(
                e_max <= 10.0,
                "{} at rtol {rtol:e}: error {e_max:.2}× (rtol‖θ‖ + atol)",
                solver.name()
            );
        }
    }
    eprintln!("largest error / (rtol‖θ‖∞ + atol): {}", worst.join("; "));
}

#[test]
fn internal_tolerances_are_never_looser_than_the_users() {
    for m in [
        SolverKind::Tsit45,
        SolverKind::Bdf,
        SolverKind::TrBdf2,
        SolverKind::Esdirk34,
        SolverKind::Auto,
    ] {
        let (c, p) = calibration(m);
        assert!(c > 0.0 && p >= 1.0);
        for k in 0..=28 {
            let rtol = 10f64.powf(-(k as f64) / 2.0);
            let (r, a) = internal_tolerances(m, rtol, 1e-3 * rtol);
            assert!(r <= rtol && r > 0.0, "{m:?} {rtol:e}: {r:e}");
            assert!(a <= 1e-3 * rtol && a > 0.0);
            // the same ratio for both
            assert!((a / (1e-3 * rtol) - r / rtol).abs() <= 1e-12);
        }
        // absurd values stay finite and never loosen
        let (r, a) = internal_tolerances(m, 1e-300, 1e-320);
        assert!(r <= 1e-300 && r > 0.0 && a <= 1e-320, "{m:?}: {r:e} {a:e}");
    }
}
