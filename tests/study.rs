//! The study layer as a library user sees it: `run`, `compare` and `field` through
//! `fisher_flow::study` (no binary), with the same bytes as the binary's outputs.

use assert_cmd::Command;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::write_json;
use fisher_flow::field::{field, field_csv, grid_starts};
use fisher_flow::model::StatModel;
use fisher_flow::study::compare::Comparison;
use fisher_flow::study::figures::write_run_figures;
use fisher_flow::study::observers::{CertificateBuilder, TrajectoryExporter};
use fisher_flow::study::{Case, Runner, trajectories};
use std::path::Path;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml");

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn starts() -> Vec<Vec<f64>> {
    vec![vec![0.1, 0.15], vec![-3.0, -2.5]]
}

#[test]
fn run_through_the_library_writes_the_binary_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_out = dir.path().join("bin");
    let o = ff()
        .args(["run", DEMO, "-q", "--t-end", "8"])
        .args(["--start", "0.1,0.15", "--start", "-3,-2.5", "--out"])
        .arg(&bin_out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let ov = Overrides {
        t_end: Some(8.0),
        starts: starts(),
        ..Overrides::default()
    };
    let exp = Experiment::load(Path::new(DEMO), &ov).expect("model");
    let lib_out = dir.path().join("lib");
    std::fs::create_dir_all(&lib_out).expect("mkdir");
    let cases = Case::from_experiment(&exp);
    let certifier = CertificateBuilder::new(&exp);
    let exporter = TrajectoryExporter::new();
    let outcomes = Runner::new()
        .run(&cases, &[&certifier, &exporter])
        .expect("runs");
    let trs = trajectories(outcomes).expect("trajectories");
    assert_eq!(trs.len(), 2);
    let cert = certifier.finish().expect("every case certified");
    assert!(cert.complete && cert.monotone);
    write_json(&lib_out.join("certificate.json"), &cert).expect("write");
    exporter.write(&exp, Vec::new(), &lib_out).expect("write");
    let files = write_run_figures(&exp, &trs, exp.model.optimal_loss(), &lib_out).expect("figs");
    assert!(files.contains(&"trajectory.svg") && files.contains(&"loss.png"));
    for f in [
        "trajectory.csv",
        "trajectory.json",
        "certificate.json",
        "trajectory.svg",
        "trajectory.png",
        "loss.svg",
        "loss.png",
    ] {
        assert!(
            bytes(&bin_out.join(f)) == bytes(&lib_out.join(f)),
            "{f} differs between the binary and the library"
        );
    }
}

#[test]
fn compare_through_the_library_writes_the_binary_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_out = dir.path().join("bin");
    let o = ff()
        .args(["compare", DEMO, "--metrics", "exact,euclidean"])
        .args(["--solvers", "tsit45,bdf", "--t-end", "20"])
        .args(["--start", "0.1,0.15", "--start", "-3,-2.5", "--out"])
        .arg(&bin_out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let base = Overrides {
        t_end: Some(20.0),
        starts: starts(),
        ..Overrides::default()
    };
    let metrics = ["exact".to_string(), "euclidean".to_string()];
    let solvers = ["tsit45".to_string(), "bdf".to_string()];
    let configs = Comparison::configurations(Path::new(DEMO), &metrics, &solvers, &[], &base)
        .expect("configurations");
    assert_eq!(configs.len(), 4, "metrics × solvers");
    let cmp = Comparison::new(configs).eps(1e-6);
    let report = cmp.run(&[]).expect("runs");
    assert_eq!(report.rows.len(), 8, "configurations × starts");
    assert!(report.succeeded());
    // The library's table is the binary's stdout table and compare.md.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with(&report.markdown()));
    let lib_out = dir.path().join("lib");
    std::fs::create_dir_all(&lib_out).expect("mkdir");
    report.write(&lib_out).expect("write");
    for f in [
        "compare.md",
        "compare.json",
        "compare-loss.svg",
        "compare-step.png",
        "compare-kappa.svg",
        "compare-plane.png",
    ] {
        assert!(
            bytes(&bin_out.join(f)) == bytes(&lib_out.join(f)),
            "{f} differs between the binary and the library"
        );
    }
}

#[test]
fn field_through_the_library_writes_the_binary_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_out = dir.path().join("bin");
    let o = ff()
        .args([
            "field",
            DEMO,
            "-q",
            "--grid",
            "6",
            "--threads",
            "2",
            "--out",
        ])
        .arg(&bin_out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let exp = Experiment::load(Path::new(DEMO), &Overrides::default()).expect("model");
    let (a, b) = exp.plot_range.unwrap_or((-4.0, 4.0));
    let starts = grid_starts(6, a, b);
    let points = field(&exp.model, &exp.flow, &starts, 1e-3, &[]).expect("runs");
    assert_eq!(points.len(), 6 * 6 - 6);
    // An independent end-only run of one start agrees with its point.
    let sim = fisher_flow::flow::Simulator::new(&exp.model, exp.flow.clone()).expect("valid");
    let tr = sim.run_end(&starts[7]).expect("runs");
    let end = tr.last().expect("end").theta.clone();
    assert_eq!(points[7].end, [end[0], end[1]]);
    assert_eq!(
        field_csv(&points).into_bytes(),
        bytes(&bin_out.join("field.csv"))
    );
}
