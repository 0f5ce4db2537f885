//! Natural-gradient variational inference (issue 14): gradients, Fisher metric, closed forms,
//! the verify reference, the model files and bad input. The flow properties themselves are in
//! the check suite (`vi-*`, run by tests/check.rs).

use assert_cmd::Command;
use fisher_flow::certificate::verify::Reference;
use fisher_flow::certificate::vi_ref::RefVi;
use fisher_flow::checks::vi::{conjugate, conjugate_start, iris_logistic};
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::model::StatModel;
use fisher_flow::model::variational::coords::kl_gauss;
use fisher_flow::model::variational::{Covariance, VariationalChart, VariationalGaussian};
use nalgebra::{DMatrix, DVector};
use std::path::Path;

fn models(chart: VariationalChart, cov: Covariance) -> Vec<VariationalGaussian> {
    vec![
        conjugate(chart, cov),
        iris_logistic(chart, cov, &["petal_length", "petal_width"], 6, false).expect("iris"),
    ]
}

fn point(m: &VariationalGaussian) -> Vec<f64> {
    let d = m.d();
    let mean = DVector::from_fn(d, |i, _| 0.3 - 0.4 * i as f64);
    let a = DMatrix::from_fn(d, d, |i, j| 0.2 * ((i + 2 * j) % 3) as f64 - 0.1);
    let s = &a * a.transpose() + DMatrix::identity(d, d) * 0.4;
    m.coords.from_mean_cov(&mean, &s).expect("pd")
}

/// ∇L matches central finite differences in every chart, full and mean-field, for both
/// targets (the cubature gradient goes through the Cholesky factor).
#[test]
fn gradient_matches_finite_differences() {
    for chart in VariationalChart::ALL {
        for cov in [Covariance::Full, Covariance::MeanField] {
            for m in models(chart, cov) {
                let phi = point(&m);
                let g = m.gradient(&phi);
                for k in 0..m.dim() {
                    let h = 1e-5 * phi[k].abs().max(1.0);
                    let (mut a, mut b) = (phi.clone(), phi.clone());
                    a[k] += h;
                    b[k] -= h;
                    let fd = (m.loss(&a) - m.loss(&b)) / (2.0 * h);
                    assert!(
                        (fd - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()),
                        "{chart:?} {cov:?} {} k={k}: fd {fd} vs {}",
                        m.target.name(),
                        g[k]
                    );
                }
            }
        }
    }
}

/// Conjugate target: L + log Z equals the closed-form KL[q ‖ N(P⁻¹b, P⁻¹)] computed from
/// the posterior's moments (an independent formula), and vanishes at the posterior.
#[test]
fn conjugate_loss_is_the_kl_up_to_log_evidence() {
    for chart in VariationalChart::ALL {
        let m = conjugate(chart, Covariance::Full);
        let post = m.posterior.clone().expect("closed form");
        let (mean, cov) = conjugate_start();
        let phi = m.coords.from_mean_cov(&mean, &cov).expect("pd");
        let kl = kl_gauss(&mean, &cov, &post.mean, &post.cov).expect("pd");
        let got = m.kl(&phi).expect("log Z known");
        assert!(
            (got - kl).abs() < 1e-12 * (1.0 + kl),
            "{chart:?}: {got} vs {kl}"
        );
        let opt = m.optima().remove(0);
        assert!(m.kl(&opt).expect("known").abs() < 1e-12);
        assert!(m.gradient(&opt).amax() < 1e-11);
    }
}

/// Mean-field on the conjugate target: the stated optimum (m = μ*, S = diag(1/Pᵢᵢ)) has zero
/// gradient and a positive KL gap.
#[test]
fn mean_field_conjugate_optimum_is_stationary() {
    let m = conjugate(VariationalChart::MeanCov, Covariance::MeanField);
    let opt = m.optima().remove(0);
    assert!(m.gradient(&opt).amax() < 1e-12);
    assert!(m.kl(&opt).expect("known") > 1e-3);
}

/// The verify reference (projection quadrature, KL-Hessian Fisher) agrees with the model.
#[test]
fn reference_agrees_with_the_model() {
    for chart in VariationalChart::ALL {
        for cov in [Covariance::Full, Covariance::MeanField] {
            for m in models(chart, cov) {
                let r = RefVi::new(&m);
                let phi = point(&m);
                let p = r.point(&phi);
                let tol = m.evaluation_error().max(1e-9);
                assert!(
                    (p.loss - m.loss(&phi)).abs() <= tol * p.loss_scale,
                    "{chart:?} {cov:?} {}: loss {} vs {} (tol {tol:e})",
                    m.target.name(),
                    p.loss,
                    m.loss(&phi)
                );
                let g = m.gradient(&phi);
                let dg = g
                    .iter()
                    .zip(&p.grad)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(dg <= tol * p.grad_scale, "{chart:?} {cov:?}: grad {dg:e}");
                let f = m.fisher(&phi);
                assert!(
                    (&f - &p.fisher).norm() <= 1e-9 * p.fisher_scale,
                    "{chart:?} {cov:?}: fisher\n{f}\nvs\n{}",
                    p.fisher
                );
            }
        }
    }
}

/// The logistic target's exact posterior: at d = 2 its log-evidence matches a brute-force
/// 2-D trapezoid sum on a wide grid.
#[test]
fn logistic_evidence_matches_brute_force() {
    let m = iris_logistic(
        VariationalChart::Natural,
        Covariance::Full,
        &["petal_width"],
        8,
        true,
    )
    .expect("iris");
    let post = m.posterior.clone().expect("d = 2");
    let (c0, c1) = (post.mean[0], post.mean[1]);
    let (s0, s1) = (post.cov[(0, 0)].sqrt(), post.cov[(1, 1)].sqrt());
    let n = 400;
    let (h0, h1) = (16.0 * s0 / n as f64, 16.0 * s1 / n as f64);
    let mut logs = Vec::new();
    for i in 0..=n {
        for j in 0..=n {
            let z = DVector::from_column_slice(&[
                c0 - 8.0 * s0 + i as f64 * h0,
                c1 - 8.0 * s1 + j as f64 * h1,
            ]);
            logs.push(m.target.log_density_grad(&z).0);
        }
    }
    let mx = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_z = mx + (logs.iter().map(|v| (v - mx).exp()).sum::<f64>() * h0 * h1).ln();
    assert!(
        (log_z - post.log_z).abs() < 1e-6,
        "{log_z} vs {}",
        post.log_z
    );
}

fn load(path: &str) -> Experiment {
    Experiment::load(Path::new(path), &Overrides::default()).expect("model file")
}

/// The shipped model files load, and their stated cubature error is small.
#[test]
fn shipped_model_files_load() {
    let c = load("models/vi-conjugate.toml");
    assert_eq!(c.starts.len(), 2);
    assert_eq!(c.model.dim(), 5);
    let l = load("models/vi-logistic.toml");
    let v = l.model.as_variational().expect("vi");
    assert_eq!(v.d(), 3);
    // 12³ nodes: measured 6.7e-5 (16³: 9.6e-6)
    assert!(v.evaluation_error() < 1e-4, "{}", v.evaluation_error());
    assert!(v.posterior.is_some());
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(&p, text).expect("write");
    p
}

/// Bad input: exit 2 with a one-line message naming the field and what to change.
#[test]
fn bad_input_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::read_to_string("models/vi-logistic.toml").expect("read");
    let base = base.replace(
        "data = \"data/iris.csv\"",
        &format!(
            "data = \"{}\"",
            std::fs::canonicalize("models/data/iris.csv")
                .expect("iris")
                .display()
        ),
    );
    let cases: Vec<(String, &[&str])> = vec![
        (
            base.replace(
                "features = [\"petal_length\", \"petal_width\"]",
                "features = [\"petal_length\", \"petal_width\", \"sepal_length\"]",
            ),
            &["vi.nodes", "d ≤ 3", "Monte Carlo"],
        ),
        (
            base.replace("chart = \"mean-cov\"", "chart = \"polar\""),
            &["vi.chart", "mean-cholesky"],
        ),
        (
            base.replace(
                "features = [\"petal_length\", \"petal_width\"]",
                "features = [\"petal_size\"]",
            ),
            &["vi.features", "petal_size"],
        ),
        (
            base.replace(
                "classes = [\"Iris-versicolor\", \"Iris-virginica\"]",
                "classes = [\"Iris-versicolor\", \"Iris-rosea\"]",
            ),
            &["vi.classes", "Iris-rosea"],
        ),
        (
            base.replace("cov = [[4.0, 0.0, 0.0],", "cov = [[-4.0, 0.0, 0.0],"),
            &["vi.start[0].cov", "positive definite"],
        ),
        (
            base.replace("prior_sd = 2.0", "prior_sd = 0.0"),
            &["vi.prior_sd"],
        ),
        (base.replace("nodes = 12", "nodes = 0"), &["vi.nodes"]),
        (
            base.replace("target = \"logistic\"", "target = \"probit\""),
            &["vi.target", "logistic"],
        ),
    ];
    for (text, needles) in cases {
        let p = write(dir.path(), &text);
        let out = Command::cargo_bin("fisher-flow")
            .expect("binary")
            .args(["run", p.to_str().expect("utf8"), "--out"])
            .arg(dir.path().join("out"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "'{n}' missing from: {err}");
        }
    }
}

/// `run` on the conjugate model writes the VI figures and a certificate that `verify`
/// accepts; a tampered loss is rejected.
#[test]
fn conjugate_run_certificate_verifies_and_tampering_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let st = Command::cargo_bin("fisher-flow")
        .expect("binary")
        .args([
            "run",
            "models/vi-conjugate.toml",
            "--t-end",
            "3",
            "-q",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for f in ["vi-ellipses.png", "vi-elbo.svg", "certificate.json"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let cert = out.join("certificate.json");
    let ok = Command::cargo_bin("fisher-flow")
        .expect("binary")
        .arg("verify")
        .arg(&cert)
        .output()
        .expect("verify");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cert).expect("read")).expect("json");
    let l = &mut v["trajectories"][0]["steps"][3]["loss"];
    *l = serde_json::json!(l.as_f64().expect("loss") - 1e-4);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_string(&v).expect("json")).expect("write");
    let no = Command::cargo_bin("fisher-flow")
        .expect("binary")
        .arg("verify")
        .arg(&bad)
        .output()
        .expect("verify");
    assert_eq!(
        no.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&no.stdout)
    );
}

/// Beyond d = 3 the expectations are seeded Monte Carlo: the rule names its seed, the
/// gradient is still the exact derivative of the (fixed-draw) loss, and verify declines to
/// re-check it (no certificate is written).
#[test]
fn monte_carlo_beyond_three_dimensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::read_to_string("models/vi-logistic.toml").expect("read");
    let text = base
        .replace(
            "data = \"data/iris.csv\"",
            &format!(
                "data = \"{}\"",
                std::fs::canonicalize("models/data/iris.csv")
                    .expect("iris")
                    .display()
            ),
        )
        .replace(
            "features = [\"petal_length\", \"petal_width\"]",
            "features = [\"petal_length\", \"petal_width\", \"sepal_length\", \"sepal_width\"]",
        )
        .replace("nodes = 12", "samples = 256\nseed = 11")
        .replace("chart = \"mean-cov\"", "chart = \"mean-cholesky\"")
        .replace(
            "mean = [0.0, 0.0, 0.0]\ncov = [[4.0, 0.0, 0.0],\n       [0.0, 4.0, 0.0],\n       [0.0, 0.0, 4.0]]",
            "mean = [0.0, 0.0, 0.0, 0.0, 0.0]\ncov = [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]",
        );
    let p = write(dir.path(), &text);
    let exp = Experiment::load(&p, &Overrides::default()).expect("loads");
    let v = exp.model.as_variational().expect("vi");
    assert_eq!(v.d(), 5);
    assert!(
        v.describe().contains("Monte Carlo, 256"),
        "{}",
        v.describe()
    );
    assert!(v.describe().contains("seed 11"), "{}", v.describe());
    assert!(v.posterior.is_none());
    assert!(fisher_flow::certificate::verify::cannot_recheck(&exp).is_some());
    let phi = exp.starts[0].clone();
    let g = v.gradient(&phi);
    for k in [0, 4, 5, 9, 19] {
        let h = 1e-5;
        let (mut a, mut b) = (phi.clone(), phi.clone());
        a[k] += h;
        b[k] -= h;
        let fd = (v.loss(&a) - v.loss(&b)) / (2.0 * h);
        assert!(
            (fd - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()),
            "k={k}: {fd} vs {}",
            g[k]
        );
    }
}
