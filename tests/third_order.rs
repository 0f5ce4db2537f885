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

// ---- the MLP: exact f''(v, v), the Levi-Civita covector, the skewness, descent ----

mod mlp {
    use super::CAP;
    use fisher_flow::flow::FlowRhs;
    use fisher_flow::geometry::correction::Correction;
    use fisher_flow::geometry::mlp::{connection_covector, directional};
    use fisher_flow::geometry::plateau;
    use fisher_flow::metric::MetricKind;
    use fisher_flow::model::StatModel;
    use fisher_flow::model::data::{synthetic_classification, synthetic_regression};
    use fisher_flow::model::mlp::{Activation, Mlp, OutputKind};
    use nalgebra::{DMatrix, DVector};
    use rand::SeedableRng;

    /// A regression net with two hidden layers and a softmax net (tanh), small enough for
    /// finite differences of the dense Fisher.
    fn nets() -> Vec<Mlp> {
        vec![
            Mlp::new(
                vec![2, 3, 2, 1],
                Activation::Tanh,
                OutputKind::Gaussian { noise: 0.7 },
                synthetic_regression(25, 2, 0.1, 3),
            )
            .unwrap(),
            Mlp::new(
                vec![2, 3, 3],
                Activation::Tanh,
                OutputKind::Softmax,
                synthetic_classification(25, 2, 3, 4),
            )
            .unwrap(),
        ]
    }

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect()
    }

    /// Jv per example (d_L × N) from the per-example Jacobian rows of back-propagation (a code
    /// path independent of the forward mode).
    fn jv_backward(m: &Mlp, th: &[f64], v: &[f64]) -> DMatrix<f64> {
        let f = m.forward(th);
        let (d, n) = (f.z.nrows(), f.z.ncols());
        let mut out = DMatrix::zeros(d, n);
        for c in 0..d {
            let mut e = DMatrix::zeros(d, n);
            e.row_mut(c).fill(1.0);
            let deltas = m.backward(th, &f, e);
            let rows = m.per_example(&f, &deltas) * DVector::from_column_slice(v);
            out.row_mut(c).copy_from(&rows.transpose());
        }
        out
    }

    fn max_abs(m: &DMatrix<f64>) -> f64 {
        m.iter().fold(0.0f64, |a, x| a.max(x.abs()))
    }

    #[test]
    fn second_directional_derivative_matches_finite_differences_of_jv() {
        for m in nets() {
            for seed in 1..4 {
                let th = m.init(seed);
                let v = random(m.dim(), 100 + seed);
                let d = directional(&m, &th, &v);
                let jv = jv_backward(&m, &th, &v);
                let e1 = max_abs(&(&d.jv - &jv)) / max_abs(&jv);
                assert!(e1 < 1e-12, "ż = Jv: {e1:e}");
                // central difference of Jv along v, O(h²)
                let h = 1e-4;
                let shift = |s: f64| -> Vec<f64> {
                    th.iter().zip(&v).map(|(a, b)| a + s * h * b).collect()
                };
                let fd = (jv_backward(&m, &shift(1.0), &v) - jv_backward(&m, &shift(-1.0), &v))
                    / (2.0 * h);
                let e2 = max_abs(&(&d.second - &fd)) / max_abs(&fd);
                assert!(e2 < 1e-6, "f''(v, v) vs FD of Jv: {e2:e}");
                assert!(max_abs(&fd) > 1e-3, "a nonzero second derivative");
            }
        }
    }

    /// Γ⁽⁰⁾_{ij,k}vⁱvʲ = (∂_v G v)_k − ½∂ₖ(vᵀGv), both by central differences of the dense
    /// Fisher matrix.
    fn christoffel_fd(m: &Mlp, th: &[f64], v: &[f64]) -> DVector<f64> {
        let h = 1e-5;
        let n = th.len();
        let vv = DVector::from_column_slice(v);
        let at = |dir: &[f64], s: f64| -> DMatrix<f64> {
            let p: Vec<f64> = th.iter().zip(dir).map(|(a, b)| a + s * h * b).collect();
            m.fisher(&p)
        };
        let dgv = (at(v, 1.0) - at(v, -1.0)) / (2.0 * h) * &vv;
        DVector::from_fn(n, |k, _| {
            let mut e = vec![0.0; n];
            e[k] = 1.0;
            let q = |s: f64| at(&e, s).quad_form_sym(&vv);
            dgv[k] - 0.5 * (q(1.0) - q(-1.0)) / (2.0 * h)
        })
    }

    trait Quad {
        fn quad_form_sym(&self, v: &DVector<f64>) -> f64;
    }
    impl Quad for DMatrix<f64> {
        fn quad_form_sym(&self, v: &DVector<f64>) -> f64 {
            (self * v).dot(v)
        }
    }

    #[test]
    fn levi_civita_covector_is_the_christoffel_contraction_of_the_fisher() {
        for m in nets() {
            for seed in 1..3 {
                let th = m.init(seed);
                let v = random(m.dim(), 200 + seed);
                let c = connection_covector(&m, &th, 0.0, &v);
                let want = christoffel_fd(&m, &th, &v);
                let err = (&c - &want).amax() / want.amax();
                assert!(err < 1e-6, "{:?}: {err:e}", m.output());
                // and the e-connection differs from it (softmax: by ½T(v, v, ·))
                let c1 = connection_covector(&m, &th, 1.0, &v);
                if matches!(m.output(), OutputKind::Softmax) {
                    assert!((&c1 - &c).amax() > 1e-3 * c.amax());
                } else {
                    assert!(
                        (&c1 - &c).amax() <= 1e-14 * c.amax(),
                        "T = 0 for the Gaussian"
                    );
                }
            }
        }
    }

    #[test]
    fn skewness_is_the_third_central_moment_of_the_output_score() {
        // (Γ⁽⁻¹⁾ − Γ⁽¹⁾)(v, v)·v = T(v, v, v) = (1/N) Σᵢ Σ_c p_c (u_c − pᵀu)³, u = Jᵢv
        let m = nets().remove(1);
        for seed in 1..4 {
            let th = m.init(seed);
            let v = random(m.dim(), 300 + seed);
            let vv = DVector::from_column_slice(&v);
            let t = (connection_covector(&m, &th, -1.0, &v)
                - connection_covector(&m, &th, 1.0, &v))
            .dot(&vv);
            let f = m.forward(&th);
            let u = jv_backward(&m, &th, &v);
            let n = u.ncols();
            let want: f64 = (0..n)
                .map(|i| {
                    let (p, ui) = (f.p.column(i), u.column(i));
                    let bar = p.dot(&ui);
                    p.iter()
                        .zip(ui.iter())
                        .map(|(pc, uc)| pc * (uc - bar).powi(3))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / n as f64;
            assert!(
                (t - want).abs() < 1e-12 * want.abs().max(1e-3),
                "{t} vs {want}"
            );
        }
    }

    #[test]
    fn corrected_mlp_flow_descends_at_least_half_as_fast_as_the_natural_one() {
        let saddle = plateau::symmetric_saddle().unwrap();
        let student = plateau::student(vec![2, 2, 1]).unwrap();
        let mut cases: Vec<(Mlp, Vec<f64>)> = Vec::new();
        for m in nets() {
            for seed in 1..3 {
                let th = m.init(seed);
                cases.push((m.clone(), th));
            }
        }
        for d in [1e-2, 1e-4] {
            cases.push((student.clone(), plateau::plateau_start(&saddle, d, 1)));
        }
        cases.push((student.clone(), student.init(5)));
        // undamped and damped (the bound is then in G + λI's norm, ∇L = −(G + λI)v)
        for ((m, th), lam) in cases.iter().flat_map(|c| [(c, 0.0), (c, 1e-6)]) {
            let plain = FlowRhs::new(m, MetricKind::Exact, lam);
            let g = m.gradient(th);
            let v = plain.eval_vec(th);
            let natural_rate = g.dot(&v);
            assert!(natural_rate < 0.0);
            for alpha in [0.0, 1.0, -1.0] {
                for tau in [0.5, 1.0, 100.0] {
                    let c = Correction::GeodesicAcceleration { alpha, tau };
                    let corr = FlowRhs::new(m, MetricKind::Exact, lam)
                        .with_correction(m.flow_correction(&c));
                    assert!(corr.has_correction());
                    let f = corr.eval_vec(th);
                    let rate = g.dot(&f);
                    assert!(
                        rate <= (1.0 - CAP) * natural_rate * (1.0 - 1e-6),
                        "{:?} λ={lam} α={alpha} τ={tau}: {rate} vs natural {natural_rate}",
                        m.sizes()
                    );
                    assert!((f - &v).norm() > 0.0, "the correction acts");
                }
            }
        }
    }

    #[test]
    fn symmetric_subspace_is_a_saddle_with_a_singular_fisher() {
        let saddle = plateau::symmetric_saddle().unwrap();
        let m = plateau::student(vec![2, 2, 1]).unwrap();
        assert_eq!(plateau::distance_from_symmetric(&saddle), 0.0);
        let g = m.gradient(&saddle);
        assert!(g.norm() < 1e-9, "stationary: {}", g.norm());
        // the antisymmetric directions are null directions of G
        let u = DVector::from_vec(plateau::plateau_start(&[0.0; 9], 1.0, 1));
        let fu = m.fisher(&saddle) * &u;
        assert!(fu.norm() < 1e-12, "{}", fu.norm());
        let th = plateau::plateau_start(&saddle, 1e-3, 1);
        assert!((plateau::distance_from_symmetric(&th) - 1e-3).abs() < 1e-15);
        // and the loss decreases along some antisymmetric direction: a saddle, not a minimum
        let l_s = m.loss(&saddle);
        let lower = (1..20).any(|s| m.loss(&plateau::plateau_start(&saddle, 0.05, s)) < l_s);
        assert!(lower, "no descent off the symmetric subspace");
    }

    #[test]
    fn cli_runs_a_corrected_mlp_flow() {
        let dir = tempfile::tempdir().unwrap();
        let out = super::cli()
            .args([
                "run",
                "models/mlp-synthetic.toml",
                "--correction",
                "geodesic-acceleration",
                "--t-end",
                "0.05",
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
        let t = std::fs::read_to_string(dir.path().join("trajectory.json")).unwrap();
        assert!(t.contains("geodesic-acceleration"));
    }
}
