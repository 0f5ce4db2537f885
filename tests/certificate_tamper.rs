//! The tamper suite: ≥ 30 distinct edits of a real certificate, each of which `verify` must
//! reject with a reason that names the edited field. Runs in-process (library `verify`), with
//! one CLI round trip for the exit code.

use assert_cmd::Command;
use fisher_flow::certificate::verify::{load, verify};
use fisher_flow::certificate::{Monotone, verify::LOCAL_ERROR_FACTOR};
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::flow::Simulator;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::StatModel;
use fisher_flow::trajectory::Trajectory;
use serde_json::Value;
use std::path::{Path, PathBuf};

const MODEL: &str = r#"
[model]
sigma = 1.0
weight = 0.5
target = [-1.5, 2.0]

[flow]
t_end = 2.0
starts = [[0.3, 0.6], [-2.0, 2.5]]
"#;

struct Base {
    dir: tempfile::TempDir,
    model: PathBuf,
    exp: Experiment,
    trajectories: Vec<Trajectory>,
    cert: Value,
}

fn base() -> Base {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.toml");
    std::fs::write(&model, MODEL).expect("write");
    let exp = Experiment::load(&model, &Overrides::default()).expect("model");
    let trajectories: Vec<Trajectory> = {
        let sim = Simulator::new(&exp.model, exp.flow.clone()).expect("simulator");
        exp.starts
            .iter()
            .map(|s| sim.run(s).expect("run"))
            .collect()
    };
    let cert =
        serde_json::to_value(Monotone::build(&exp, &exp.model, &trajectories)).expect("encode");
    Base {
        dir,
        model,
        exp,
        trajectories,
        cert,
    }
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(v).expect("encode")).expect("write");
    p
}

/// Verify `v` (through a file, as the CLI reads it); the failure's text, or None if it passes.
fn check(b: &Base, v: &Value, with_model: bool) -> Option<String> {
    let p = write(b.dir.path(), "c.json", v);
    let cert = match load(&p) {
        Ok(c) => c,
        Err(e) => return Some(format!("load error: {e}")),
    };
    let m = with_model.then_some(b.model.as_path());
    match verify(&cert, m) {
        Ok(r) => r.failure.map(|f| f.to_string()),
        Err(e) => Some(format!("error: {e}")),
    }
}

fn st(v: &mut Value, t: usize) -> &mut Vec<Value> {
    v["trajectories"][t]["steps"].as_array_mut().expect("steps")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

type Edit = (&'static str, &'static str, bool, Box<dyn Fn(&mut Value)>);

fn scale(field: &'static str, k: usize, by: f64) -> Box<dyn Fn(&mut Value)> {
    Box::new(move |v: &mut Value| {
        let s = &mut st(v, 0)[k];
        s[field] = Value::from(f(&s[field]) * by);
    })
}

#[test]
fn every_edit_is_rejected_with_a_reason_naming_the_field() {
    let b = base();
    assert_eq!(
        check(&b, &b.cert, false),
        None,
        "the real certificate verifies"
    );
    assert_eq!(
        check(&b, &b.cert, true),
        None,
        "also against its model file"
    );
    let n0 = b.cert["trajectories"][0]["steps"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    assert!(n0 > 8, "need a few steps, got {n0}");

    // A θ moved by 1.5·LOCAL_ERROR_FACTOR (37.5×) the controller's bound — above the first
    // term plus the largest accepted re-integration estimate (a quarter of it), below the old
    // factor 40 — with every value at it recomputed consistently from the library model:
    // only continuity can tell.
    let forged = {
        let mut trs = b.trajectories.clone();
        let s = &mut trs[0].steps[5];
        let n = 2.0f64;
        let bound = n.sqrt() * (b.exp.flow.rtol * s.theta[0].abs() + b.exp.flow.atol);
        s.theta[0] += 1.5 * LOCAL_ERROR_FACTOR * bound;
        let m = MetricKind::Exact.at(&b.exp.model, &s.theta, 0.0);
        let g = b.exp.model.gradient(&s.theta);
        s.loss = b.exp.model.loss(&s.theta);
        s.grad_norm = g.norm();
        s.rate = -g.dot(&m.solve(&g));
        serde_json::to_value(Monotone::build(&b.exp, &b.exp.model, &trs)).expect("encode")
    };

    let edits: Vec<Edit> = vec![
        (
            "loss × (1+1e-9)",
            "loss",
            false,
            scale("loss", 4, 1.0 + 1e-9),
        ),
        (
            "grad_norm × 1e6",
            "grad_norm",
            false,
            scale("grad_norm", 4, 1e6),
        ),
        (
            "grad_norm × 1.001",
            "grad_norm",
            false,
            scale("grad_norm", 4, 1.001),
        ),
        ("rate × 1.01", "rate", false, scale("rate", 4, 1.01)),
        ("rate > 0", "rate", false, scale("rate", 4, -1.0)),
        (
            "min_eig × 1.01",
            "min_eig",
            false,
            scale("min_eig", 4, 1.01),
        ),
        (
            "tolerance × 2",
            "tolerance",
            false,
            scale("tolerance", 4, 2.0),
        ),
        ("h × 1.1", "h =", false, scale("h", 4, 1.1)),
        (
            "t shifted",
            "h =",
            false,
            Box::new(|v: &mut Value| {
                let s = &mut st(v, 0)[4];
                s["t"] = Value::from(f(&s["t"]) + 1e-4);
            }),
        ),
        (
            "index",
            "index",
            false,
            Box::new(|v: &mut Value| st(v, 0)[4]["index"] = Value::from(7)),
        ),
        (
            "theta[1] + 1e-6",
            "loss",
            false,
            Box::new(|v: &mut Value| {
                let s = &mut st(v, 0)[5];
                s["theta"][1] = Value::from(f(&s["theta"][1]) + 1e-6);
            }),
        ),
        (
            "interior loss − 1e-6",
            "interior[1]",
            false,
            Box::new(|v: &mut Value| {
                let s = &mut st(v, 0)[3];
                s["interior"][1][1] = Value::from(f(&s["interior"][1][1]) - 1e-6);
            }),
        ),
        (
            "interior time moved",
            "interior[0]",
            false,
            Box::new(|v: &mut Value| {
                let s = &mut st(v, 0)[3];
                s["interior"][0][0] = Value::from(f(&s["interior"][0][0]) + 1e-6);
            }),
        ),
        (
            "interior point dropped",
            "interior",
            false,
            Box::new(|v: &mut Value| {
                st(v, 0)[3]["interior"]
                    .as_array_mut()
                    .expect("interior")
                    .pop();
            }),
        ),
        (
            "a middle step deleted",
            "removed",
            false,
            Box::new(|v: &mut Value| {
                let s = st(v, 0);
                s.remove(3);
                for (i, x) in s.iter_mut().enumerate() {
                    x["index"] = Value::from(i);
                }
            }),
        ),
        (
            "the last step deleted",
            "t_end",
            false,
            Box::new(|v: &mut Value| {
                st(v, 0).pop();
            }),
        ),
        (
            "all steps but the start deleted",
            "t_end",
            false,
            Box::new(|v: &mut Value| {
                st(v, 0).truncate(1);
            }),
        ),
        (
            "a whole trajectory deleted",
            "starts",
            false,
            Box::new(|v: &mut Value| {
                v["trajectories"].as_array_mut().expect("trs").pop();
            }),
        ),
        (
            "max_rate = +1",
            "max_rate",
            false,
            Box::new(|v: &mut Value| v["trajectories"][0]["max_rate"] = Value::from(1.0)),
        ),
        (
            "max_increase = 1",
            "max_increase",
            false,
            Box::new(|v: &mut Value| v["trajectories"][0]["max_increase"] = Value::from(1.0)),
        ),
        (
            "first_violation = 3",
            "first_violation",
            false,
            Box::new(|v: &mut Value| v["trajectories"][0]["first_violation"] = Value::from(3)),
        ),
        (
            "trajectory monotone = false",
            "monotone",
            false,
            Box::new(|v: &mut Value| v["trajectories"][0]["monotone"] = Value::from(false)),
        ),
        (
            "certificate monotone = false",
            "monotone",
            false,
            Box::new(|v: &mut Value| v["monotone"] = Value::from(false)),
        ),
        (
            "certificate complete = false",
            "complete",
            false,
            Box::new(|v: &mut Value| v["complete"] = Value::from(false)),
        ),
        (
            "trajectory complete = false",
            "complete",
            false,
            Box::new(|v: &mut Value| v["trajectories"][0]["complete"] = Value::from(false)),
        ),
        (
            "stop = converged",
            "converged",
            false,
            Box::new(|v: &mut Value| {
                v["trajectories"][0]["stop"] = Value::from("converged (gradient below tolerance)")
            }),
        ),
        (
            "stop = step cap",
            "step cap",
            false,
            Box::new(|v: &mut Value| {
                v["trajectories"][0]["stop"] = Value::from("step cap reached")
            }),
        ),
        (
            "stop = unknown",
            "stop",
            false,
            Box::new(|v: &mut Value| v["trajectories"][0]["stop"] = Value::from("done")),
        ),
        (
            "start changed",
            "start",
            false,
            Box::new(|v: &mut Value| {
                v["trajectories"][0]["start"][0] = Value::from(0.31);
                st(v, 0)[0]["theta"][0] = Value::from(0.31);
            }),
        ),
        (
            "solver relabelled bdf",
            "solver",
            false,
            Box::new(|v: &mut Value| v["solver"] = Value::from("bdf")),
        ),
        (
            "rtol",
            "rtol",
            false,
            Box::new(|v: &mut Value| v["rtol"] = Value::from(1e-6)),
        ),
        (
            "tolerance.atol",
            "tolerance.atol",
            false,
            Box::new(|v: &mut Value| v["tolerance"]["atol"] = Value::from(1e-6)),
        ),
        (
            "damping",
            "damping",
            false,
            Box::new(|v: &mut Value| v["damping"] = Value::from(0.1)),
        ),
        (
            "metric",
            "metric",
            false,
            Box::new(|v: &mut Value| v["metric"] = Value::from("euclidean")),
        ),
        (
            "interior_points",
            "interior_points",
            false,
            Box::new(|v: &mut Value| v["interior_points"] = Value::from(3)),
        ),
        (
            "quadrature_relative_error",
            "quadrature_relative_error",
            false,
            Box::new(|v: &mut Value| {
                v["tolerance"]["quadrature_relative_error"] = Value::from(1e-3)
            }),
        ),
        (
            "tolerance.formula",
            "tolerance.formula",
            false,
            Box::new(|v: &mut Value| v["tolerance"]["formula"] = Value::from("tol_k = 1")),
        ),
        (
            "continuity_formula",
            "continuity_formula",
            false,
            Box::new(|v: &mut Value| {
                v["tolerance"]["continuity_formula"] = Value::from("anything goes")
            }),
        ),
        (
            "quadrature text",
            "quadrature",
            false,
            Box::new(|v: &mut Value| {
                v["quadrature"] = Value::from("Gauss-Hermite (64 nodes/component)")
            }),
        ),
        (
            "param_names",
            "param_names",
            false,
            Box::new(|v: &mut Value| v["param_names"][0] = Value::from("a")),
        ),
        (
            "model_family",
            "model_family",
            false,
            Box::new(|v: &mut Value| v["model_family"] = Value::from("mlp")),
        ),
        (
            "model_resolved σ without --model",
            "loss",
            false,
            Box::new(|v: &mut Value| v["model_resolved"]["model"]["sigma"] = Value::from(1.0001)),
        ),
        (
            "model_resolved σ with --model",
            "model_resolved.model.sigma",
            true,
            Box::new(|v: &mut Value| v["model_resolved"]["model"]["sigma"] = Value::from(1.0001)),
        ),
        (
            "model_resolved target with --model",
            "model_resolved.model.target",
            true,
            Box::new(|v: &mut Value| v["model_resolved"]["model"]["target"][0] = Value::from(-1.4)),
        ),
        (
            "model_resolved weight with --model",
            "model_resolved.model.weight",
            true,
            Box::new(|v: &mut Value| v["model_resolved"]["model"]["weight"] = Value::from(0.5001)),
        ),
        (
            "model_resolved t_end",
            "t_end",
            false,
            Box::new(|v: &mut Value| v["model_resolved"]["flow"]["t_end"] = Value::from(2.5)),
        ),
        (
            "model_resolved grad_tol with --model",
            "model_resolved.flow.grad_tol",
            true,
            Box::new(|v: &mut Value| v["model_resolved"]["flow"]["grad_tol"] = Value::from(1e-3)),
        ),
        (
            "model_sha256 with --model",
            "model_sha256",
            true,
            Box::new(|v: &mut Value| v["model_sha256"] = Value::from("00")),
        ),
    ];
    assert!(edits.len() >= 30);
    let mut missed = Vec::new();
    for (name, field, with_model, edit) in &edits {
        let mut v = b.cert.clone();
        edit(&mut v);
        match check(&b, &v, *with_model) {
            None => missed.push(format!("{name}: accepted")),
            Some(why) if !why.contains(field) => {
                missed.push(format!("{name}: reason does not name '{field}': {why}"))
            }
            Some(_) => {}
        }
    }
    match check(&b, &forged, false) {
        Some(why) if why.contains("theta[0]") && why.contains("re-integrating") => {}
        other => missed.push(format!("consistent θ forgery: {other:?}")),
    }
    assert!(
        missed.is_empty(),
        "{} edits not caught:\n{}",
        missed.len(),
        missed.join("\n")
    );

    // Absurd values end in a failure (NaN evaluations, bounded bisection), not a hang.
    let mut v = b.cert.clone();
    for t in v["trajectories"].as_array_mut().expect("trs") {
        t["start"] = serde_json::json!([1e308, 1e308]);
        for s in t["steps"].as_array_mut().expect("steps") {
            s["theta"] = serde_json::json!([1e308, 1e308]);
        }
    }
    v["model_resolved"]["flow"]["starts"] = serde_json::json!([[1e308, 1e308], [1e308, 1e308]]);
    assert!(check(&b, &v, false).is_some(), "θ = 1e308 must fail");
    let mut v = b.cert.clone();
    v["model_resolved"]["model"]["sigma"] = Value::from(1e308);
    assert!(check(&b, &v, false).is_some(), "σ = 1e308 must fail");

    // The CLI: exit 1 for a failed claim, naming the field.
    let mut v = b.cert.clone();
    v["trajectories"][0]["max_rate"] = Value::from(1.0);
    let p = write(b.dir.path(), "cli.json", &v);
    Command::cargo_bin("fisher-flow")
        .expect("binary")
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("max_rate"));
}
