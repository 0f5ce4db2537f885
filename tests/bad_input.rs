//! Issue 11: every input that crashed, hung or wrote a non-finite or false result is refused
//! with exit 2 naming the field (or flag) and its range, or gives finite outputs. Most cases go
//! through the in-process loader (`Experiment::load`, the code the binary runs); the flags
//! that are checked in the command-line layer go through the binary.

use assert_cmd::Command;
use fisher_flow::config::{Experiment, Overrides, limits};
use fisher_flow::model::StatModel;
use std::path::{Path, PathBuf};

const MIX: &str =
    "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[flow]\nt_end = 2.0\nstarts = [[-3.0, -2.5]]\n";

const MLP: &str = "[model]\nfamily = \"mlp\"\n[mlp]\nlayers = [2, 4, 1]\noutput = \"gaussian\"\nnoise = 0.1\n[mlp.synthetic]\nn = 20\nnoise = 0.1\nseed = 7\n[flow]\ndamping = 1e-4\nt_end = 0.5\nmax_steps = 50\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write model");
    p
}

/// Replace the first line starting with `key` (or append `line` under `[section]`).
fn with(base: &str, key: &str, line: &str) -> String {
    let mut out = Vec::new();
    let mut done = false;
    for l in base.lines() {
        if !done && l.starts_with(key) {
            out.push(line.to_string());
            done = true;
        } else {
            out.push(l.to_string());
        }
    }
    assert!(done, "{key} not in base");
    out.join("\n") + "\n"
}

fn load_text(text: &str) -> fisher_flow::Result<Experiment> {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "m.toml", text);
    Experiment::load(&p, &Overrides::default())
}

/// The load fails with exit code 2 and a one-line message containing every needle.
fn refused(text: &str, needles: &[&str]) {
    let err = match load_text(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 2, "{msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(msg.len() < 400, "message too long: {msg}");
    for n in needles {
        assert!(msg.contains(n), "'{n}' missing from: {msg}");
    }
}

/// Loss, gradient and Fisher matrix at every start are finite.
fn finite_at_starts(exp: &Experiment) {
    for s in &exp.starts {
        let l = exp.model.loss(s);
        let g = exp.model.gradient(s);
        let f = exp.model.fisher(s);
        assert!(l.is_finite(), "loss {l} at {s:?}");
        assert!(g.iter().all(|v| v.is_finite()), "gradient {g} at {s:?}");
        assert!(f.iter().all(|v| v.is_finite()), "Fisher {f} at {s:?}");
    }
}

#[test]
fn sigma_outside_the_representable_range_is_refused_naming_it() {
    // σ ≤ 1e-162 made σ² underflow and the quadrature grow until the allocation failed;
    // σ between 1e155 and 1e300 gave NaN.
    for s in [
        "1e-170", "1e-162", "1e-101", "1e155", "1e300", "0.0", "-1.0", "inf",
    ] {
        refused(
            &with(MIX, "sigma", &format!("sigma = {s}")),
            &["model.sigma", "1e-100", "1e100"],
        );
    }
    refused(
        &with(MIX, "sigma", "sigma = nan"),
        &["model.sigma", "NaN is not a number"],
    );
    refused(
        &MIX.replace("sigma = 1.0\n", ""),
        &["model.sigma", "missing"],
    );
}

#[test]
fn sigma_far_beyond_the_spread_of_the_means_is_refused() {
    // κ = ∞ off the singular line for σ ≥ 4.3e9 with the demo's target; NaN from 1e155.
    for s in ["4.3e9", "1e50", "1e100"] {
        refused(
            &with(MIX, "sigma", &format!("sigma = {s}")),
            &["model.sigma", "cannot be told apart"],
        );
    }
    // Spread 1.5 ≥ 1e-6·σ for σ = 1e6: accepted, finite, and the Fisher matrix is not
    // numerically singular off the line.
    let exp = load_text(&with(MIX, "sigma", "sigma = 1e6")).expect("σ = 1e6 accepted");
    finite_at_starts(&exp);
    let f = exp.model.fisher(&exp.starts[0]);
    let det = f[(0, 0)] * f[(1, 1)] - f[(0, 1)] * f[(1, 0)];
    assert!(det > 0.0, "det {det} of {f}");
}

#[test]
fn means_far_beyond_sigma_are_refused_and_the_boundary_is_finite() {
    refused(
        &with(MIX, "target", "target = [-1e300, 1e300]"),
        &["model.target", "1e8"],
    );
    refused(
        &with(MIX, "starts", "starts = [[1e300, -1e300]]"),
        &["flow.starts[0]", "1e8"],
    );
    refused(
        &format!("{MIX}[plot]\nrange = [-4.0, 1.79e308]\n"),
        &["plot.range", "1e8"],
    );
    // At the edges of the ranges everything is finite: σ = 1e-100 and 1e100 with means at
    // ±1e8·σ and starts between them.
    for (sigma, scale) in [(1e-100_f64, 1e-100_f64), (1e100, 1e100), (1.0, 1.0)] {
        let t = 1e8 * scale;
        let text = format!(
            "[model]\nsigma = {sigma:e}\ntarget = [{:e}, {:e}]\n[flow]\nstarts = [[{:e}, {:e}], [{:e}, {:e}]]\n",
            -t,
            t,
            0.5 * t,
            -0.25 * t,
            -3.0 * sigma,
            2.0 * sigma
        );
        let exp = load_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        finite_at_starts(&exp);
    }
}

#[test]
fn tolerances_and_times_outside_their_ranges_are_refused() {
    let flow = |line: &str| with(MIX, "t_end", &format!("t_end = 2.0\n{line}"));
    refused(
        &with(MIX, "t_end", "t_end = 1e-320"),
        &["flow.t_end", "1e-12"],
    );
    refused(&with(MIX, "t_end", "t_end = 1e13"), &["flow.t_end", "1e12"]);
    refused(&flow("atol = 1e-320"), &["flow.atol", "1e-30"]);
    refused(&flow("atol = 1e308"), &["flow.atol", "1e3"]);
    refused(&flow("rtol = 1e308"), &["flow.rtol", "1e0"]);
    refused(&flow("rtol = 1e-17"), &["flow.rtol", "1e-14"]);
    refused(&flow("rtol = nan"), &["flow.rtol"]);
    refused(
        &flow("interior_points = 1000000000000"),
        &["flow.interior_points", "1000"],
    );
    refused(&flow("max_steps = 1000000000000"), &["flow.max_steps"]);
    refused(&flow("damping = 1e300"), &["flow.damping"]);
    // The bounds themselves are accepted.
    let ok = flow(&format!(
        "rtol = {:e}\natol = {:e}",
        limits::RTOL.0,
        limits::ATOL.0
    ));
    load_text(&ok).expect("boundary tolerances accepted");
}

#[test]
fn counts_that_cannot_be_allocated_are_refused_before_allocating() {
    refused(
        &format!("{MIX}[loss]\nkind = \"empirical\"\nsamples = 1000000000000\n"),
        &["loss.samples"],
    );
    refused(
        &format!("{MIX}[metric]\nsamples = 100000000000\n"),
        &["metric.samples"],
    );
    refused(
        &format!("{MLP}[metric]\nsamples = 1000000000\n")
            .replace("damping = 1e-4", "damping = 1e-4\nmetric = \"sampled\""),
        &["metric.samples"],
    );
    refused(
        &with(MLP, "n = 20", "n = 10000000000000"),
        &["mlp.synthetic.n"],
    );
    // Within every count bound, but the memory estimate exceeds any machine: the dense
    // Fisher of 5e7 parameters (2e16 bytes).
    refused(
        &with(MLP, "layers", "layers = [2, 16777216, 1]"),
        &["mlp.layers", "GB"],
    );
    // The sampled Fisher of a within-bounds sample count on a wide layer: named by samples.
    refused(
        &(with(MLP, "layers", "layers = [2, 1000, 1]")
            .replace("damping = 1e-4", "damping = 1e-4\nmetric = \"diagonal\"")
            + "[metric]\nbase = \"sampled\"\nsamples = 10000000\n"),
        &["metric.samples", "GB"],
    );
}

#[test]
fn layer_sizes_that_overflow_are_refused_naming_mlp_layers() {
    // A segmentation fault (wrapped size product), an index panic and a capacity overflow
    // before; then `[4, 100000000, 3]` aborted allocating.
    for layers in [
        "[2, 8, 9223372036854775808]",
        "[2, 2305843009213693952, 1]",
        "[2, 9223372036854775808, 1]",
        "[2, 8, 4611686018427387904]",
        "[2, 100000000, 1]",
        "[2, 18446744073709551615, 1]",
    ] {
        refused(
            &with(MLP, "layers", &format!("layers = {layers}")),
            &["mlp.layers"],
        );
    }
    // The size check is in `Mlp::new` too, for library callers.
    let data = fisher_flow::model::data::synthetic_regression(4, 2, 0.1, 1);
    let err = fisher_flow::model::Mlp::new(
        vec![2, usize::MAX / 2, 1],
        fisher_flow::model::mlp::Activation::Tanh,
        fisher_flow::model::mlp::OutputKind::Gaussian { noise: 1.0 },
        data,
    )
    .expect_err("overflowing sizes");
    assert!(err.to_string().contains("mlp.layers"), "{err}");
    assert_eq!(
        fisher_flow::model::mlp_spec::param_count(&[2, usize::MAX / 2, 1]),
        None
    );
    assert_eq!(
        fisher_flow::model::mlp_spec::param_count(&[4, 8, 3]),
        Some(5 * 8 + 9 * 3)
    );
}

#[test]
fn undamped_mlp_fisher_flows_are_refused() {
    // They stalled at t ≈ 0 for minutes (until the 20000-step cap).
    for d in ["0.0", "-0.0", "1e-15"] {
        refused(
            &with(MLP, "damping", &format!("damping = {d}")),
            &["flow.damping", "singular"],
        );
    }
    refused(
        &with(MLP, "damping", "damping = 1e-15").replace("[mlp]", "[mlp]\nactivation = \"relu\""),
        &["flow.damping"],
    );
    // The Euclidean flow needs no damping, and a damping floor is an alternative.
    load_text(&with(
        MLP,
        "damping",
        "damping = 0.0\nmetric = \"euclidean\"",
    ))
    .expect("euclidean");
    load_text(&with(MLP, "damping", "damping = 0.0\ndamping_floor = 1e-6")).expect("floor");
}

#[test]
fn mlp_values_outside_their_ranges_are_refused_and_the_bounds_are_finite() {
    refused(
        &MLP.replacen("noise = 0.1\nseed", "noise = 1e300\nseed", 1),
        &["mlp.synthetic.noise", "1e6"],
    );
    refused(
        &with(MLP, "noise = 0.1", "noise = 1e300"),
        &["mlp.noise", "1e-6"],
    );
    let exp = load_text(MLP).expect("mlp loads");
    let n = exp.model.dim();
    let start = vec![1e300; n];
    let text = format!("{MLP}starts = [{:?}]\n", start);
    refused(&text, &["flow.starts[0]", "1e6"]);
    // Bounds: the largest start entries, the largest noises: loss, gradient, Fisher finite.
    let big = vec![limits::MLP_START_ABS_MAX; n];
    let text = with(
        MLP,
        "noise = 0.1",
        &format!("noise = {:e}", limits::MLP_NOISE.0),
    )
    .replacen(
        "noise = 0.1\nseed",
        &format!("noise = {:e}\nseed", limits::SYNTHETIC_NOISE_MAX),
        1,
    ) + &format!("starts = [{big:?}]\n");
    let exp = load_text(&text).unwrap_or_else(|e| panic!("{e}"));
    finite_at_starts(&exp);
}

#[test]
fn csv_values_beyond_the_data_range_are_refused_naming_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "d.csv", "a,b,y\n1,2,0.5\n1e300,3,0.1\n");
    let p = write(
        dir.path(),
        "m.toml",
        &MLP.replace(
            "[mlp.synthetic]\nn = 20\nnoise = 0.1\nseed = 7\n",
            "data = \"d.csv\"\ntarget = \"y\"\n",
        ),
    );
    let err = Experiment::load(&p, &Overrides::default()).expect_err("1e300 refused");
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 2);
    assert!(
        msg.contains("line 3") && msg.contains("'a'") && msg.contains("1e100"),
        "{msg}"
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_directory_as_the_model_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("m.toml");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let err = Experiment::load(&fifo, &Overrides::default()).expect_err("a FIFO");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = Experiment::load(dir.path(), &Overrides::default()).expect_err("a directory");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("directory"), "{err}");
    // A CSV data file that is a FIFO too.
    let csv = dir.path().join("d.csv");
    std::process::Command::new("mkfifo")
        .arg(&csv)
        .status()
        .expect("mkfifo runs");
    let p = write(
        dir.path(),
        "n.toml",
        &MLP.replace(
            "[mlp.synthetic]\nn = 20\nnoise = 0.1\nseed = 7\n",
            "data = \"d.csv\"\ntarget = \"y\"\n",
        ),
    );
    let err = Experiment::load(&p, &Overrides::default()).expect_err("a FIFO CSV");
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn quadrature_panels_stay_bounded_for_any_sigma() {
    use fisher_flow::quadrature::{MAX_SUBDIVISIONS, Mixture2, panels};
    // σ² underflows to 0: the pole distance is 0 and the graded edges used to repeat forever.
    for (sigma, mu) in [
        (1e-170, [0.0, 1e-169]),
        (1e-170, [-1.5, 2.0]),
        (1e200, [-1.5, 2.0]),
        (1.0, [-4.0, 1.79e308]),
        (1.0, [f64::NAN, 0.0]),
    ] {
        let m = Mixture2 { mu, sigma, w: 0.5 };
        let p = panels(1.0, 10.0, &m, &m);
        assert!(p.len() <= 4 * MAX_SUBDIVISIONS + 4096, "{} panels", p.len());
    }
}

// ---- flags checked by the command line ----

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

fn assert_bad_flag(out: std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' missing from: {err}");
    }
}

#[test]
fn command_line_values_are_validated_like_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = write(dir.path(), "m.toml", MIX);
    let out = dir.path().join("out");
    let o = ff()
        .args(["run"])
        .arg(&m)
        .args(["--start", "1e300,-1e300", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    assert_bad_flag(o, &["--start", "1e8"]);
    assert!(!out.join("trajectory.csv").exists());
    let o = ff()
        .args(["manifold"])
        .arg(&m)
        .args(["--sigma", "1e-170", "--out"])
        .arg(dir.path().join("m.svg"))
        .output()
        .expect("runs");
    assert_bad_flag(o, &["--sigma", "1e-100"]);
    // A σ in range but too small for the file's target (2 > 1e8·1e-9).
    let o = ff()
        .args(["manifold"])
        .arg(&m)
        .args(["--sigma", "1e-9", "--out"])
        .arg(dir.path().join("m.svg"))
        .output()
        .expect("runs");
    assert_bad_flag(o, &["--sigma", "too small"]);
    let o = ff()
        .args(["field"])
        .arg(&m)
        .args(["--range=-1e300,1e300", "--grid", "3", "--out"])
        .arg(dir.path().join("f"))
        .output()
        .expect("runs");
    assert_bad_flag(o, &["--range", "1e8"]);
    let o = ff()
        .args(["metric"])
        .arg(&m)
        .args(["--at", "1e300,0"])
        .output()
        .expect("runs");
    assert_bad_flag(o, &["--at", "1e8"]);
}

#[test]
fn every_subcommand_refuses_an_underflowing_sigma_before_computing() {
    // σ ≤ 1e-162 crashed run, metric, field, optimize and manifold (σ² = 0, unbounded
    // quadrature panels).
    let dir = tempfile::tempdir().expect("tempdir");
    let m = write(dir.path(), "m.toml", &with(MIX, "sigma", "sigma = 1e-170"));
    let out = dir.path().join("out");
    let o = |args: &[&str]| {
        let mut c = ff();
        c.arg(args[0]).arg(&m).args(&args[1..]);
        c.output().expect("runs")
    };
    let out_s = out.to_string_lossy().to_string();
    let svg = dir.path().join("m.svg").to_string_lossy().to_string();
    for args in [
        vec!["run", "--out", &out_s],
        vec!["metric", "--at", "0,1"],
        vec!["field", "--grid", "3", "--out", &out_s],
        vec!["optimize", "--out", &out_s],
        vec!["compare", "--out", &out_s],
        vec!["manifold", "--out", &svg],
    ] {
        assert_bad_flag(o(&args), &["model.sigma", "1e-100"]);
    }
}
