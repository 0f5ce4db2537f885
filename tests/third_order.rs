//! The third-order flow: the capped geodesic-acceleration correction against an independent
//! computation (θ-chart Christoffel symbols from the kernel's dual-number ∂G), its descent bound
//! dL/dt ≤ −(1 − r)‖v‖²_G pointwise, and the CLI's handling of the flags.

use fisher_flow::flow::{FlowKernel, FlowRhs};
use fisher_flow::geometry::christoffel_first_kind;
use fisher_flow::geometry::correction::{CAP, GeodesicAcceleration};
use fisher_flow::geometry::escape::mixture;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::StatModel;
use fisher_flow::model::mixture_kernel::MixtureKernel;

const POINTS: [[f64; 2]; 5] = [
    [-1.0, 1.5],
    [0.2, 0.25],
    [1.0, -0.4],
    [0.24, 0.26],
    [-2.0, 1.0],
];

/// a = −G⁻¹ Γ(v, v) in θ, with Γ the Christoffel symbols of the dual-number ∂G and a plain
/// 2×2 inverse (fine away from the line).
fn acceleration_theta(m: &fisher_flow::model::GaussianMixture, th: &[f64], v: &[f64]) -> [f64; 2] {
    let k = MixtureKernel::new(m);
    let (mut g, mut f, mut h, mut df) = ([0.0; 2], [0.0; 4], [0.0; 4], vec![0.0; 8]);
    k.grad_fisher_derivs(th, &mut g, &mut f, &mut h, &mut df);
    let gam = christoffel_first_kind(2, &df);
    let mut c = [0.0; 2];
    for (kk, ck) in c.iter_mut().enumerate() {
        for i in 0..2 {
            for j in 0..2 {
                *ck += gam[(i * 2 + j) * 2 + kk] * v[i] * v[j];
            }
        }
    }
    let det = f[0] * f[3] - f[1] * f[2];
    [
        -(f[3] * c[0] - f[1] * c[1]) / det,
        -(-f[2] * c[0] + f[0] * c[1]) / det,
    ]
}

#[test]
fn correction_is_the_capped_levi_civita_acceleration() {
    for w in [0.5, 0.3] {
        let m = mixture(0.8, w);
        let plain = FlowRhs::new(&m, MetricKind::Exact, 0.0);
        for th in [[-1.0, 1.5], [1.0, -0.4], [-2.0, 1.0]] {
            let v = plain.eval_vec(&th);
            let a = acceleration_theta(&m, &th, v.as_slice());
            let gm = m.fisher(&th);
            let norm = |x: &[f64]| {
                (gm[(0, 0)] * x[0] * x[0]
                    + 2.0 * gm[(0, 1)] * x[0] * x[1]
                    + gm[(1, 1)] * x[1] * x[1])
                    .sqrt()
            };
            for tau in [0.1, 1.0] {
                let q = 0.5 * tau * norm(&a) / norm(v.as_slice());
                let s = 1.0 / (1.0 + (q / CAP).powi(2)).sqrt();
                let want = [0.5 * tau * s * a[0], 0.5 * tau * s * a[1]];
                let got = GeodesicAcceleration::new(&m, 0.0, tau).correction(&th, v.as_slice());
                let scale = want[0].abs().max(want[1].abs());
                assert!(scale > 1e-6, "the correction is not negligible here");
                for i in 0..2 {
                    assert!(
                        (got[i] - want[i]).abs() < 1e-8 * scale,
                        "w={w} {th:?} τ={tau}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn corrected_flow_descends_at_least_half_as_fast_as_the_natural_one() {
    for w in [0.5, 0.3] {
        let m = mixture(1.0, w);
        let plain = FlowRhs::new(&m, MetricKind::Exact, 0.0);
        for alpha in [0.0, 1.0, -1.0] {
            for tau in [0.5, 1.0, 100.0] {
                let corr = FlowRhs::new(&m, MetricKind::Exact, 0.0)
                    .with_correction(Some(Box::new(GeodesicAcceleration::new(&m, alpha, tau))));
                for th in POINTS {
                    let g = m.gradient(&th);
                    let v = plain.eval_vec(&th);
                    let f = corr.eval_vec(&th);
                    let natural_rate = g.dot(&v); // = −‖v‖²_G
                    let rate = g.dot(&f);
                    assert!(natural_rate < 0.0);
                    assert!(
                        rate <= (1.0 - CAP) * natural_rate * (1.0 - 1e-9),
                        "w={w} α={alpha} τ={tau} {th:?}: {rate} vs natural {natural_rate}"
                    );
                    assert!((f - &v).norm() > 0.0, "the correction acts");
                }
            }
        }
    }
}

fn cli() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fisher-flow").expect("binary");
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn cli_refuses_bad_corrections_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (vec!["--correction", "cubic"], "--correction"),
        (
            vec![
                "--correction",
                "geodesic-acceleration",
                "--metric",
                "diagonal",
            ],
            "--correction",
        ),
        (
            vec!["--correction", "geodesic-acceleration", "--damping", "0.1"],
            "--correction",
        ),
        (
            vec![
                "--correction",
                "geodesic-acceleration",
                "--correction-tau",
                "0",
            ],
            "--correction-tau",
        ),
        (
            vec![
                "--correction",
                "geodesic-acceleration",
                "--correction-alpha",
                "nan",
            ],
            "--correction-alpha",
        ),
    ] {
        let out = cli()
            .args(["run", "models/gmm-seed.toml", "-q", "--out"])
            .arg(dir.path().join("o"))
            .args(&args)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_corrected_run_writes_no_certificate_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli()
        .args([
            "run",
            "models/gmm-seed.toml",
            "--correction",
            "geodesic-acceleration",
            "--start",
            "0.2,0.3",
            "--t-end",
            "1",
            "--json",
            "--out",
        ])
        .arg(dir.path())
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["certificate_written"], false);
    assert!(!dir.path().join("certificate.json").exists());
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("trajectory.json")).unwrap())
            .unwrap();
    assert!(t.to_string().contains("geodesic-acceleration"));
}

#[test]
fn simulator_refuses_a_correction_without_the_exact_undamped_metric() {
    use fisher_flow::flow::{FlowSettings, Simulator};
    use fisher_flow::geometry::correction::Correction;
    let m = mixture(1.0, 0.5);
    let correction = Correction::GeodesicAcceleration {
        alpha: 0.0,
        tau: 1.0,
    };
    for (metric, damping) in [(MetricKind::Euclidean, 0.0), (MetricKind::Exact, 0.1)] {
        let s = FlowSettings {
            metric,
            damping,
            correction,
            ..FlowSettings::default()
        };
        let e = Simulator::new(&m, s).err().expect("refused");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("flow.correction"), "{e}");
    }
    let ok = FlowSettings {
        correction,
        ..FlowSettings::default()
    };
    assert!(Simulator::new(&m, ok).is_ok());
}
