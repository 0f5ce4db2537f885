//! The command line with every metric provider: `run` (with `--quality`) and `metric`.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn bin() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary")
}

/// A small network on Iris (4-3-3, n = 27), short horizon: fast in debug builds.
fn small_iris_model(dir: &Path) -> PathBuf {
    let iris = std::fs::canonicalize("models/data/iris.csv").expect("iris.csv");
    let text = format!(
        "[model]\nfamily = \"mlp\"\n[mlp]\nlayers = [4, 3, 3]\ndata = \"{}\"\ninit_seeds = [3]\n\
         [metric]\nsamples = 2\n[flow]\ndamping = 1e-2\nrtol = 1e-4\natol = 1e-6\nt_end = 0.3\n",
        iris.display()
    );
    let p = dir.join("small.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn read_quality(path: &Path) -> Vec<(f64, f64, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            (v[1], v[2], v[3])
        })
        .collect()
}

#[test]
fn mlp_runs_with_every_metric_and_reports_quality() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_iris_model(dir.path());
    for metric in fisher_flow::metric::MetricKind::NAMES {
        let out = dir.path().join(format!("out-{metric}"));
        bin()
            .args([
                "run",
                model.to_str().unwrap(),
                "--metric",
                metric,
                "--quality",
                "--out",
            ])
            .arg(&out)
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("metric {metric}")));
        // verify re-checks exact, euclidean, diagonal and block-diagonal (of the exact Fisher)
        // (not adaptive: held between refreshes)
        // for the MLP; run writes no certificate it could not have checked, and says so
        let checkable = !matches!(*metric, "sampled" | "empirical" | "kfac" | "adaptive");
        let stdout = String::from_utf8_lossy(
            &bin()
                .args(["run", model.to_str().unwrap(), "--metric", metric, "--out"])
                .arg(dir.path().join(format!("again-{metric}")))
                .output()
                .unwrap()
                .stdout,
        )
        .to_string();
        if checkable {
            assert!(stdout.contains("monotone: true"), "{metric}: {stdout}");
        } else {
            assert!(
                stdout.contains("certificate: not written"),
                "{metric}: {stdout}"
            );
        }
        assert_eq!(out.join("certificate.json").exists(), checkable, "{metric}");
        for f in [
            "trajectory.csv",
            "trajectory.json",
            "loss.svg",
            "quality.csv",
            "quality-angle.png",
        ] {
            assert!(out.join(f).exists(), "{metric}: {f} missing");
        }
        assert!(
            !out.join("trajectory.svg").exists(),
            "no (mu1, mu2) plane for the MLP"
        );
        let q = read_quality(&out.join("quality.csv"));
        assert!(q.len() >= 2);
        let header = std::fs::read_to_string(out.join("trajectory.csv")).unwrap();
        assert!(
            header.starts_with("trajectory,t,w1_0_0,w1_1_0,"),
            "{metric}"
        );
        for (t, angle, frob) in q {
            assert!(
                t.is_finite() && angle.is_finite() && frob.is_finite(),
                "{metric}"
            );
            match *metric {
                "exact" => assert!(
                    angle < 1e-4 && frob == 0.0,
                    "exact vs exact: {angle} {frob}"
                ),
                "euclidean" => assert!(frob > 0.1),
                _ => assert!((0.0..=180.0).contains(&angle)),
            }
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("trajectory.json")).unwrap())
                .unwrap();
        assert!(
            json["quality"][0].as_array().is_some_and(|a| !a.is_empty()),
            "{metric}"
        );
    }
}

#[test]
fn sampled_metric_prints_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_iris_model(dir.path());
    bin()
        .args([
            "run",
            model.to_str().unwrap(),
            "--metric",
            "sampled",
            "--out",
        ])
        .arg(dir.path().join("o"))
        .assert()
        .success()
        .stdout(predicate::str::contains("seed 42"));
}

#[test]
fn metric_subcommand_works_for_the_mlp() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_iris_model(dir.path());
    for metric in ["exact", "kfac", "block-diagonal"] {
        let out = bin()
            .args([
                "metric",
                model.to_str().unwrap(),
                "--at",
                "init",
                "--json",
                "--metric",
                metric,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{metric}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for key in [
            "loss",
            "gradient",
            "fisher",
            "eigenvalues",
            "condition_number",
            "natural_gradient",
            "angle_deg",
        ] {
            assert!(v.get(key).is_some(), "{metric}: key {key}");
        }
        assert_eq!(v["gradient"].as_array().unwrap().len(), 27);
        assert_eq!(v["fisher"].as_array().unwrap().len(), 27);
    }
    // A parameter file (a JSON array) gives the same point as init:3 when it holds those values.
    let init = bin()
        .args([
            "metric",
            model.to_str().unwrap(),
            "--at",
            "init:3",
            "--json",
        ])
        .output()
        .unwrap();
    let a: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let net_init = {
        let exp = fisher_flow::config::Experiment::load(&model, &Default::default()).unwrap();
        exp.starts[0].clone()
    };
    let file = dir.path().join("theta.json");
    std::fs::write(&file, serde_json::to_string(&net_init).unwrap()).unwrap();
    let from_file = bin()
        .args([
            "metric",
            model.to_str().unwrap(),
            "--at",
            file.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(from_file.status.success());
    let b: serde_json::Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(a["loss"], b["loss"]);
    // Wrong length: a clear error.
    bin()
        .args(["metric", model.to_str().unwrap(), "--at", "0.1,0.2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--at").and(predicate::str::contains("27 parameters")));
}

#[test]
fn mixture_accepts_the_new_metrics_and_rejects_kfac() {
    let dir = tempfile::tempdir().unwrap();
    for metric in ["sampled", "diagonal", "block-diagonal"] {
        bin()
            .args([
                "run",
                "models/gmm-seed.toml",
                "--metric",
                metric,
                "--t-end",
                "1",
                "--start",
                "0.5,1.0",
                "--out",
            ])
            .arg(dir.path().join(metric))
            .assert()
            .success();
    }
    bin()
        .args(["run", "models/gmm-seed.toml", "--metric", "kfac", "--out"])
        .arg(dir.path().join("k"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("dense layers")
                .and(predicate::str::contains("panicked").not()),
        );
    bin()
        .args([
            "metric",
            "models/gmm-seed.toml",
            "--at",
            "0.1,0.2",
            "--metric",
            "empirical",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("loss.kind"));
    bin()
        .args(["run", "models/mlp-iris.toml", "--damping=-1", "--out"])
        .arg(dir.path().join("d"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("damping"));
}

/// `metric --damping λ` reports the damped metric's eigenvalues and κ (what the natural
/// gradient solves with) and, labelled, the undamped ones: the MLP's undamped Fisher is
/// singular (κ null), the damped κ is (λ_max + λ)/(λ_min + λ).
#[test]
fn metric_reports_the_damped_and_the_undamped_spectrum() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_iris_model(dir.path());
    let lam = 0.1;
    let out = bin()
        .args([
            "metric",
            model.to_str().unwrap(),
            "--at",
            "init",
            "--json",
            "--damping",
            "0.1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nums = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (ev, dev) = (nums("eigenvalues"), nums("damped_eigenvalues"));
    assert_eq!(ev.len(), 27);
    for (a, b) in ev.iter().zip(&dev) {
        assert!((a + lam - b).abs() < 1e-15, "{a} {b}");
    }
    assert_eq!(v["damping"].as_f64(), Some(lam));
    assert!(
        v["condition_number"].is_null(),
        "undamped Fisher of the softmax net is singular"
    );
    let k = v["damped_condition_number"]
        .as_f64()
        .expect("finite damped κ");
    let k_ref = dev[dev.len() - 1] / dev[0];
    assert!((k - k_ref).abs() < 1e-12 * k_ref, "{k} vs {k_ref}");
    // the text labels both
    let text = bin()
        .args([
            "metric",
            model.to_str().unwrap(),
            "--at",
            "init",
            "--damping",
            "0.1",
        ])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(
        t.contains("(damped)") && t.contains("undamped condition number: inf"),
        "{t}"
    );
}
