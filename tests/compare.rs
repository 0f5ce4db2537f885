//! `fisher-flow compare`: the table against independent runs, the figures, bad input.

use assert_cmd::Command;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::flow::Simulator;
use fisher_flow::model::StatModel;
use std::path::Path;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml");
const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/mlp-iris.toml");

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn mixture_table_matches_independent_runs_and_figures_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cmp");
    let o = ff()
        .args([
            "compare",
            DEMO,
            "--metrics",
            "exact,euclidean",
            "--solvers",
            "tsit45,bdf",
        ])
        .args([
            "--start", "0.1,0.15", "--start", "-3,-2.5", "--t-end", "30", "--out",
        ])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("| metric | solver |"));
    let v = json(&out.join("compare.json"));
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2 * 2 * 2, "metrics × solvers × starts");
    // each row's time to ε equals an independent library run of the same configuration
    for row in rows {
        let ov = Overrides {
            metric: row["metric"].as_str().map(String::from),
            solver: row["solver"].as_str().map(String::from),
            t_end: Some(30.0),
            starts: vec![serde_json::from_value(row["start"].clone()).expect("start")],
            ..Overrides::default()
        };
        let exp = Experiment::load(Path::new(DEMO), &ov).expect("model");
        let l_star = exp.model.optimal_loss().expect("L*");
        let tr = Simulator::new(&exp.model, exp.flow.clone())
            .expect("valid")
            .run(&exp.starts[0])
            .expect("runs");
        let t = tr.time_to_reach(l_star, 1e-6).expect("reaches ε");
        let reported = row["time_to_eps"].as_f64().expect("reached");
        assert!(
            (t - reported).abs() < 1e-9 * t.max(1.0),
            "{row}: {t} vs {reported}"
        );
        let to_eps = row["rhs_evals_to_eps"].as_u64().expect("count") as usize;
        assert!(to_eps > 0 && to_eps <= tr.stats.rhs_evals);
        assert_eq!(row["rhs_evals"].as_u64(), Some(tr.stats.rhs_evals as u64));
    }
    // the Euclidean flow from the near-diagonal start is slower than the natural one
    let time = |metric: &str| {
        rows.iter()
            .find(|r| r["metric"] == metric && r["solver"] == "tsit45" && r["start"][0] == 0.1)
            .and_then(|r| r["time_to_eps"].as_f64())
            .expect("row")
    };
    assert!(time("euclidean") > 2.0 * time("exact"));
    for fig in [
        "compare-plane",
        "compare-loss",
        "compare-step",
        "compare-kappa",
    ] {
        for ext in ["svg", "png"] {
            let p = out.join(format!("{fig}.{ext}"));
            assert!(
                p.metadata().map(|m| m.len() > 1000).unwrap_or(false),
                "{fig}.{ext}"
            );
        }
    }
    let svg = std::fs::read_to_string(out.join("compare-plane.svg")).expect("svg");
    for label in [
        "exact/tsit45",
        "exact/bdf",
        "euclidean/tsit45",
        "euclidean/bdf",
    ] {
        assert!(svg.contains(label), "legend lacks {label}");
    }
    assert!(
        std::fs::read_to_string(out.join("compare.md"))
            .expect("md")
            .lines()
            .count()
            == 2 + 8
    );
}

#[test]
fn mlp_comparison_reports_accuracy_and_has_no_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cmp");
    let o = ff()
        .args([
            "compare",
            IRIS,
            "--metrics",
            "exact,diagonal",
            "--t-end",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&out.join("compare.json"));
    assert_eq!(v["optimal_loss_source"], "best loss reached");
    for row in v["rows"].as_array().expect("rows") {
        let a = row["final_accuracy"].as_f64().expect("classifier accuracy");
        assert!((0.0..=1.0).contains(&a));
        // L* is the best loss any configuration reached, so no gap is negative
        assert!(row["final_gap"].as_f64().expect("gap") >= 0.0);
    }
    assert!(out.join("compare-error.png").exists());
    assert!(!out.join("compare-plane.png").exists());
}

#[test]
fn unknown_metric_in_the_list_is_a_one_line_error() {
    let out = ff()
        .args(["compare", DEMO, "--metrics", "exact,nope"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--metric") && err.contains("nope"), "{err}");
}
