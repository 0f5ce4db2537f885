//! The command line: outputs of `run` and `metric`, and one-line errors with exit code 2.

use assert_cmd::Command;
use std::path::Path;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml");

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write model");
    p
}

const MINIMAL: &str =
    "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[flow]\nt_end = 3.0\nstarts = [[0.5, 1.0]]\n";

/// Assert a one-line error on stderr containing all `needles`, exit code 2, no panic.
fn assert_bad_input(out: std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "'{n}' missing from: {err}");
    }
}

#[test]
fn run_writes_every_output_with_the_documented_csv_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let assert = ff()
        .args(["run", DEMO, "--out"])
        .arg(&out)
        .args(["--t-end", "4", "--start", "0.1,0.15", "--start", "-3,-2.5"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    for f in [
        "trajectory.csv",
        "trajectory.json",
        "certificate.json",
        "trajectory.svg",
        "trajectory.png",
        "loss.svg",
        "loss.png",
    ] {
        let p = out.join(f);
        assert!(
            p.metadata().map(|m| m.len() > 100).unwrap_or(false),
            "{f} missing or empty"
        );
    }
    let csv = std::fs::read_to_string(out.join("trajectory.csv")).expect("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("trajectory,t,mu1,mu2,loss,grad_norm,kappa,step_size")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == 8));
    // both trajectories present, times increasing within each
    assert!(rows.iter().any(|r| r[0] == "0") && rows.iter().any(|r| r[0] == "1"));
    let t0: Vec<f64> = rows
        .iter()
        .filter(|r| r[0] == "0")
        .map(|r| r[1].parse().expect("t"))
        .collect();
    assert!(t0.windows(2).all(|w| w[1] > w[0]));
    assert!((t0[t0.len() - 1] - 4.0).abs() < 1e-9);
    // the summary names the verdict and the counters
    for key in [
        "start",
        "end",
        "loss",
        "steps",
        "rejected",
        "rhs evals",
        "monotone true",
        "ms",
    ] {
        assert!(stdout.contains(key), "summary lacks '{key}': {stdout}");
    }
    let cert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("certificate.json")).expect("cert"))
            .expect("json");
    assert_eq!(cert["monotone"], serde_json::Value::Bool(true));
    assert_eq!(cert["trajectories"].as_array().map(|a| a.len()), Some(2));
    // nothing half-written remains
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn metric_json_has_exactly_the_documented_keys_and_consistent_values() {
    let out = ff()
        .args(["metric", DEMO, "--at", "0.1,0.15", "--json"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let obj = v.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "angle_deg",
            "condition_number",
            "damped_condition_number",
            "damped_eigenvalues",
            "damping",
            "eigenvalues",
            "fisher",
            "gradient",
            "loss",
            "natural_gradient"
        ]
    );
    // I · natural_gradient = gradient (the printed numbers are consistent with each other)
    let f: Vec<Vec<f64>> = serde_json::from_value(v["fisher"].clone()).expect("matrix");
    let n: Vec<f64> = serde_json::from_value(v["natural_gradient"].clone()).expect("vec");
    let g: Vec<f64> = serde_json::from_value(v["gradient"].clone()).expect("vec");
    for i in 0..2 {
        let r = f[i][0] * n[0] + f[i][1] * n[1];
        assert!(
            (r - g[i]).abs() < 1e-9 * (1.0 + g[i].abs()),
            "row {i}: {r} vs {}",
            g[i]
        );
    }
    let e: Vec<f64> = serde_json::from_value(v["eigenvalues"].clone()).expect("vec");
    let k = v["condition_number"].as_f64().expect("finite κ");
    assert!((k - e[1] / e[0]).abs() < 1e-9 * k);
    let text = ff()
        .args(["metric", DEMO, "--at", "0.1,0.15"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("angle") && text.contains("condition number"));
}

#[test]
fn help_documents_defaults() {
    let out = ff().args(["run", "--help"]).output().expect("runs");
    let h = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--out",
        "--metric",
        "--solver",
        "--rtol",
        "--atol",
        "--t-end",
        "--start",
        "--damping",
        "--nodes",
    ] {
        assert!(h.contains(flag), "{flag} missing");
    }
    assert!(h.matches("default").count() >= 9, "{h}");
    let out = ff().args(["metric", "--help"]).output().expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--json"));
}

#[test]
fn missing_file_is_a_one_line_error() {
    let out = ff()
        .args(["run", "/nonexistent/model.toml"])
        .output()
        .expect("runs");
    assert_bad_input(out, &["/nonexistent/model.toml"]);
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "bad.toml",
        "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0\n",
    );
    let out = ff().arg("run").arg(&p).output().expect("runs");
    assert_bad_input(out, &["bad.toml", "line 3", "column"]);
}

#[test]
fn unknown_keys_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "m.toml",
        &MINIMAL.replace("sigma = 1.0", "sigma = 1.0\nsigmma = 2.0"),
    );
    let out = ff().arg("run").arg(&p).output().expect("runs");
    assert_bad_input(out, &["m.toml", "sigmma"]);
}

#[test]
fn nonpositive_or_nan_sigma_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in ["0.0", "-1.0", "nan"] {
        let p = write(
            dir.path(),
            "m.toml",
            &MINIMAL.replace("sigma = 1.0", &format!("sigma = {bad}")),
        );
        let out = ff().arg("run").arg(&p).output().expect("runs");
        assert_bad_input(out, &["m.toml", "model.sigma"]);
    }
}

#[test]
fn weight_outside_the_open_unit_interval_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in ["0.0", "1.0", "1.5"] {
        let p = write(
            dir.path(),
            "m.toml",
            &MINIMAL.replace("sigma = 1.0", &format!("sigma = 1.0\nweight = {bad}")),
        );
        let out = ff().arg("run").arg(&p).output().expect("runs");
        assert_bad_input(out, &["model.weight"]);
    }
}

#[test]
fn unknown_metric_or_solver_names_are_rejected() {
    let out = ff()
        .args(["run", DEMO, "--metric", "fishy"])
        .output()
        .expect("runs");
    assert_bad_input(out, &["--metric", "fishy", "exact"]);
    let out = ff()
        .args(["run", DEMO, "--solver", "rk99"])
        .output()
        .expect("runs");
    assert_bad_input(out, &["--solver", "rk99", "tsit45"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "m.toml",
        &MINIMAL.replace("t_end = 3.0", "t_end = 3.0\nmetric = \"nope\""),
    );
    let out = ff().arg("run").arg(&p).output().expect("runs");
    assert_bad_input(out, &["m.toml", "flow.metric"]);
}

#[test]
fn bad_start_and_at_values_are_rejected() {
    let out = ff()
        .args(["run", DEMO, "--start", "1,2,3"])
        .output()
        .expect("runs");
    assert_bad_input(out, &["--start"]);
    let out = ff()
        .args(["metric", DEMO, "--at", "1,nan"])
        .output()
        .expect("runs");
    assert_bad_input(out, &["--at"]);
}

#[test]
fn unwritable_output_directory_is_rejected_before_computing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "not-a-dir", "x");
    let out = ff()
        .args(["run", DEMO, "--out"])
        .arg(file.join("sub"))
        .output()
        .expect("runs");
    assert_bad_input(out, &["not-a-dir"]);
}

#[test]
fn empirical_runs_print_their_seed_and_are_reproducible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "emp.toml",
        &MINIMAL.replace(
            "[flow]",
            "[loss]\nkind = \"empirical\"\nsamples = 200\nseed = 9\n[flow]",
        ),
    );
    let run = |sub: &str| {
        let out = dir.path().join(sub);
        let o = ff()
            .arg("run")
            .arg(&p)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("seed 9"));
        std::fs::read_to_string(out.join("trajectory.csv")).expect("csv")
    };
    assert_eq!(run("a"), run("b"));
}
