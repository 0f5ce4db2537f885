//! `fisher-flow verify`: a real certificate verifies; tampering with one loss, one θ, deleting a
//! step, or claiming `monotone: true` for a rising trajectory each fail (exit 1); unreadable
//! input exits 2.

use assert_cmd::Command;
use fisher_flow::certificate::Monotone;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::metric::MetricKind;
use fisher_flow::model::StatModel;
use fisher_flow::trajectory::{Stats, Step, StopReason, Trajectory};
use predicates::str::contains;
use serde_json::Value;
use std::path::{Path, PathBuf};

const MODEL: &str = r#"
[model]
sigma = 1.0
weight = 0.5
target = [-1.5, 2.0]

[flow]
t_end = 2.0
starts = [[0.3, 0.6]]
"#;

fn bin() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary")
}

/// Run the flow on a small model; return (dir, model path, certificate JSON).
fn real_certificate() -> (tempfile::TempDir, PathBuf, Value) {
    certificate_of(MODEL)
}

/// Run the flow on `text` (a model file); return (dir, model path, certificate JSON).
fn certificate_of(text: &str) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.toml");
    std::fs::write(&model, text).expect("write model");
    let out = dir.path().join("out");
    bin()
        .args(["run", "-q"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(out.join("certificate.json")).expect("certificate");
    (dir, model, serde_json::from_str(&text).expect("json"))
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).expect("encode")).expect("write");
    p
}

fn steps(v: &mut Value) -> &mut Vec<Value> {
    v["trajectories"][0]["steps"].as_array_mut().expect("steps")
}

#[test]
fn real_certificate_verifies_also_against_the_model_file() {
    let (dir, model, cert) = real_certificate();
    assert!(steps(&mut cert.clone()).len() > 5, "need a few steps");
    let p = write(dir.path(), "c.json", &cert);
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(0)
        .stdout(contains("verified"));
    bin()
        .arg("verify")
        .arg(&p)
        .arg("--model")
        .arg(&model)
        .assert()
        .code(0);
    // A different model file (same content plus a comment) has another hash: claim fails.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, format!("# changed\n{MODEL}")).expect("write");
    bin()
        .arg("verify")
        .arg(&p)
        .arg("--model")
        .arg(&other)
        .assert()
        .code(1)
        .stderr(contains("SHA-256"));
}

#[test]
fn a_run_stopped_by_the_gradient_root_and_an_empirical_euclidean_run_verify() {
    // The last step ends at the root ‖∇L‖ = grad_tol (state moved back by the solver): it must
    // still carry its interior points and land on the re-integrated flow.
    let converged = MODEL.replace("t_end = 2.0", "t_end = 20.0\ngrad_tol = 1e-4");
    let (dir, _, mut cert) = certificate_of(&converged);
    let stop = cert["trajectories"][0]["stop"]
        .as_str()
        .expect("stop")
        .to_string();
    assert!(stop.contains("converged"), "{stop}");
    let last = steps(&mut cert).last().cloned().expect("steps");
    assert_eq!(last["interior"].as_array().map(|a| a.len()), Some(2));
    let p = write(dir.path(), "c.json", &cert);
    bin().arg("verify").arg(&p).assert().code(0);

    let empirical = MODEL.replace(
        "[flow]",
        "[loss]\nkind = \"empirical\"\nsamples = 200\n\n[flow]\nmetric = \"euclidean\"",
    );
    let (dir, _, cert) = certificate_of(&empirical);
    assert_eq!(cert["metric"], "euclidean");
    let p = write(dir.path(), "c.json", &cert);
    bin().arg("verify").arg(&p).assert().code(0);
}

/// The main job's own certificate: the demo's runs stop at the steady state (‖∇L‖ at the
/// integration's noise floor, above grad_tol), which verify must accept from its own bound, and
/// a stop claimed far above that bound must fail.
#[test]
fn the_demo_certificate_verifies_with_its_steady_state_stops() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml"))
            .expect("demo model");
    let (dir, _, mut cert) = certificate_of(&text);
    let trs = cert["trajectories"]
        .as_array()
        .expect("trajectories")
        .clone();
    assert!(
        trs.iter().any(|t| t["stop"]
            .as_str()
            .is_some_and(|s| s.starts_with("converged"))),
        "the demo is expected to stop at the steady state"
    );
    let p = write(dir.path(), "c.json", &cert);
    bin().arg("verify").arg(&p).assert().code(0);
    // --json: stdout is exactly one JSON document, the verdict line goes to stderr
    let o = bin()
        .args(["verify", "--json"])
        .arg(&p)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert!(report["failure"].is_null(), "{report}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("verified:"));
    // cut the first trajectory back to a step far from stationary, still claiming convergence
    let steps = cert["trajectories"][0]["steps"]
        .as_array_mut()
        .expect("steps");
    steps.truncate(3);
    let p = write(dir.path(), "cut.json", &cert);
    bin().arg("verify").arg(&p).assert().code(1);
}

#[test]
fn changing_one_loss_value_fails() {
    let (dir, _, mut cert) = real_certificate();
    let s = &mut steps(&mut cert)[4];
    let l = s["loss"].as_f64().expect("loss");
    s["loss"] = Value::from(l * (1.0 + 1e-9));
    let p = write(dir.path(), "c.json", &cert);
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("step 4").and(contains("loss: claimed")));
}

#[test]
fn changing_one_interior_loss_fails() {
    let (dir, _, mut cert) = real_certificate();
    let s = &mut steps(&mut cert)[3];
    let l = s["interior"][1][1].as_f64().expect("interior loss");
    s["interior"][1][1] = Value::from(l - 1e-6);
    let p = write(dir.path(), "c.json", &cert);
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("step 3").and(contains("interior[1]: claimed loss")));
}

#[test]
fn changing_one_theta_fails() {
    let (dir, _, mut cert) = real_certificate();
    let s = &mut steps(&mut cert)[5];
    let th = s["theta"][1].as_f64().expect("theta");
    s["theta"][1] = Value::from(th + 1e-6);
    let p = write(dir.path(), "c.json", &cert);
    // Losses and rates at step 5 are now re-evaluated at the altered θ and no longer match.
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("step 5"));
}

#[test]
fn changing_theta_and_its_loss_and_rate_consistently_still_fails_by_continuity() {
    let (dir, model, mut cert) = real_certificate();
    let exp = Experiment::load(&model, &Overrides::default()).expect("model");
    let s = &mut steps(&mut cert)[5];
    let mut th: Vec<f64> = serde_json::from_value(s["theta"].clone()).expect("theta");
    th[0] += 1e-6;
    let m = MetricKind::Exact.at(&exp.model, &th, 0.0);
    let g = exp.model.gradient(&th);
    s["theta"] = serde_json::to_value(&th).expect("encode");
    s["loss"] = Value::from(exp.model.loss(&th));
    s["grad_norm"] = Value::from(g.norm());
    s["rate"] = Value::from(-g.dot(&m.solve(&g)));
    s["min_eig"] = Value::from(m.eigenvalues()[0]);
    let p = write(dir.path(), "c.json", &cert);
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("step 5").and(contains("re-integrating")));
}

#[test]
fn deleting_a_step_fails() {
    let (dir, _, mut cert) = real_certificate();
    let st = steps(&mut cert);
    st.remove(3);
    // Renumber, so that only the physics (and the step bookkeeping) can tell.
    for (i, s) in st.iter_mut().enumerate() {
        s["index"] = Value::from(i);
    }
    let p = write(dir.path(), "c.json", &cert);
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("step 3").and(contains("removed")));
}

/// A deliberately unstable fixed-step explicit Euler discretization of the natural flow
/// (h = 3: each step maps θ* + δ to roughly θ* − 2δ, so the loss rises), recorded as a trajectory
/// with linear interpolation as its dense output.
fn euler_trajectory(exp: &Experiment, start: [f64; 2], h: f64, n: usize, k: usize) -> Trajectory {
    let model = &exp.model;
    let record = |t: f64, th: &[f64], h: f64, interior: Vec<(f64, f64)>| {
        let g = model.gradient(th);
        let m = MetricKind::Exact.at(model, th, 0.0);
        Step {
            t,
            theta: th.to_vec(),
            loss: model.loss(th),
            grad_norm: g.norm(),
            kappa: m.condition_number(),
            min_eig: m.eigenvalues()[0],
            rate: -g.dot(&m.solve(&g)),
            step_size: h,
            interior,
            rhs_evals: 0,
            flops: 0.0,
        }
    };
    let mut th = start.to_vec();
    let mut steps = vec![record(0.0, &th, 0.0, Vec::new())];
    for i in 1..=n {
        let g = model.gradient(&th);
        let v = MetricKind::Exact.at(model, &th, 0.0).solve(&g);
        let next: Vec<f64> = th.iter().zip(v.iter()).map(|(a, d)| a - h * d).collect();
        let t0 = (i - 1) as f64 * h;
        let interior = (1..=k)
            .map(|j| {
                let s = j as f64 / (k + 1) as f64;
                let p: Vec<f64> = th.iter().zip(&next).map(|(a, b)| a + s * (b - a)).collect();
                (t0 + s * h, model.loss(&p))
            })
            .collect();
        steps.push(record(i as f64 * h, &next, h, interior));
        th = next;
    }
    Trajectory {
        param_names: model.param_names(),
        start: start.to_vec(),
        steps,
        stats: Stats::default(),
        stop: StopReason::TEnd,
        events: Vec::new(),
    }
}

#[test]
fn claiming_monotone_for_a_rising_euler_trajectory_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.toml");
    std::fs::write(&model, MODEL.replace("[[0.3, 0.6]]", "[[-1.4, 1.9]]")).expect("write");
    let exp = Experiment::load(&model, &Overrides::default()).expect("model");
    let tr = euler_trajectory(&exp, [-1.4, 1.9], 3.0, 3, exp.flow.interior_points);
    // The loss really rises along it (checked against the model, not the certificate).
    assert!(
        tr.steps[1].loss > tr.steps[0].loss + 1e-6,
        "{} {}",
        tr.steps[1].loss,
        tr.steps[0].loss
    );
    let cert = Monotone::build(&exp, &exp.model, &[tr]);
    assert!(!cert.monotone, "the builder must see the rise");
    let mut v = serde_json::to_value(&cert).expect("encode");
    v["monotone"] = Value::from(true);
    v["trajectories"][0]["monotone"] = Value::from(true);
    v["trajectories"][0]["first_violation"] = Value::Null;
    let p = write(dir.path(), "c.json", &v);
    bin()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(contains("monotone = true").and(contains("first_violation Some(1)")));
    // The honest certificate (monotone: false) certifies nothing: also exit 1.
    let p = write(
        dir.path(),
        "honest.json",
        &serde_json::to_value(&cert).expect("encode"),
    );
    bin().arg("verify").arg(&p).assert().code(1);
}

#[test]
fn unreadable_input_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("g.json");
    std::fs::write(&garbage, "this is { not json").expect("write");
    bin()
        .arg("verify")
        .arg(&garbage)
        .assert()
        .code(2)
        .stderr(contains("not valid JSON"));
    bin()
        .arg("verify")
        .arg(dir.path().join("missing.json"))
        .assert()
        .code(2)
        .stderr(contains("cannot read"));
    let wrong = write(
        dir.path(),
        "w.json",
        &serde_json::json!({"schema": "something/else", "x": 1}),
    );
    bin()
        .arg("verify")
        .arg(&wrong)
        .assert()
        .code(2)
        .stderr(contains("unsupported schema"));
    let partial = write(
        dir.path(),
        "p.json",
        &serde_json::json!({"schema": fisher_flow::certificate::SCHEMA, "monotone": true}),
    );
    bin()
        .arg("verify")
        .arg(&partial)
        .assert()
        .code(2)
        .stderr(contains("does not match schema"));
}

use predicates::prelude::PredicateBooleanExt;

/// Every metric `run` accepts on the mixture either verifies (exact, euclidean, empirical,
/// diagonal and block-diagonal of an exact or empirical base) or gets no certificate (sampled:
/// a Monte Carlo metric has no independent re-check) — never an unverifiable certificate. The
/// diagonal runs stop at the steady state (‖∇L‖ at the integration's noise floor, above
/// grad_tol), which verify re-derives.
#[test]
fn every_mixture_metric_verifies_or_is_refused_naming_metric() {
    let long = MODEL.replace("t_end = 2.0", "t_end = 40.0\ngrad_tol = 1e-10");
    let empirical = long.replace(
        "[flow]",
        "[loss]\nkind = \"empirical\"\nsamples = 300\n\n[flow]",
    );
    let cases = [
        (
            long.replace("[flow]", "[flow]\nmetric = \"diagonal\""),
            true,
        ),
        (
            long.replace("[flow]", "[flow]\nmetric = \"block-diagonal\""),
            true,
        ),
        (
            empirical.replace("[flow]", "[flow]\nmetric = \"empirical\""),
            true,
        ),
        (
            format!(
                "{}\n[metric]\nbase = \"empirical\"\n",
                empirical.replace("[flow]", "[flow]\nmetric = \"diagonal\"")
            ),
            true,
        ),
        (
            long.replace("[flow]", "[flow]\nmetric = \"sampled\""),
            false,
        ),
    ];
    for (text, supported) in cases {
        if supported {
            let (dir, _, cert) = certificate_of(&text);
            let p = write(dir.path(), "c.json", &cert);
            bin().arg("verify").arg(&p).assert().code(0);
        } else {
            // run writes no certificate verify could not re-check, and says why
            let dir = tempfile::tempdir().expect("tempdir");
            let model = dir.path().join("m.toml");
            std::fs::write(&model, &text).expect("write model");
            let out = dir.path().join("out");
            bin()
                .arg("run")
                .arg(&model)
                .arg("--out")
                .arg(&out)
                .assert()
                .success()
                .stdout(contains("certificate: not written").and(contains("Monte Carlo")));
            assert!(out.join("trajectory.csv").exists());
            assert!(!out.join("certificate.json").exists());
        }
    }
    // The diagonal run did stop at the steady state (so that path is exercised above).
    let (_, _, mut cert) = certificate_of(&long.replace("[flow]", "[flow]\nmetric = \"diagonal\""));
    let stop = cert["trajectories"][0]["stop"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let g = steps(&mut cert).last().expect("steps")["grad_norm"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        stop.starts_with("converged") && g > 1e-10,
        "{stop}, ‖∇L‖ = {g:e}"
    );
}

/// Near μ₁ = μ₂ the empirical Fisher's λ_min/λ_max reaches the solve's rank cut: the stages of a
/// step straddled it, f jumped inside the step, `run` wrote monotone: true and `verify` rejected
/// the continuity (issue 10). Such a trajectory now ends as Unstable: run exits 1, the
/// certificate says incomplete, and verify refuses it for that reason.
#[test]
fn a_flow_reaching_the_rank_cut_ends_unstable_and_is_not_certified() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml"))
            .expect("demo model")
            .replace(
                "kind = \"population\"",
                "kind = \"empirical\"\nsamples = 500\nseed = 3",
            );
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.toml");
    std::fs::write(&model, text).expect("write");
    let out = dir.path().join("out");
    let o = bin()
        .args([
            "run",
            "-q",
            "--metric",
            "empirical",
            "--start=-3,-2.5",
            "--out",
        ])
        .arg(&out)
        .arg(&model)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("rank cut"));
    let cert: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("certificate.json")).expect("certificate"),
    )
    .expect("json");
    assert_eq!(cert["trajectories"][0]["complete"], false);
    assert_eq!(cert["monotone"], false);
    let o = bin()
        .arg("verify")
        .arg(out.join("certificate.json"))
        .output()
        .expect("verify runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("incomplete"));
}
