//! The density flows (`model.family = "density"`): the Wasserstein discretization against the
//! Ornstein–Uhlenbeck closed form, the Fisher–Rao closed form on a small grid, the command line
//! (`run` outputs, `compare`) and bad input (exit 2 naming the field).

use assert_cmd::Command;
use fisher_flow::density::grid::normalized;
use fisher_flow::density::{DensitySettings, FlowKind, Grid, Shape, fisher_rao_exact, integrate};
use std::path::Path;

fn bin() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary")
}

fn on(grid: &Grid, s: &Shape) -> Vec<f64> {
    normalized(&grid.eval(|x| s.log_density(x)), grid.volume())
}

/// KL(N(m, s²)‖N(0, 1)).
fn kl_gauss(m: f64, s2: f64) -> f64 {
    0.5 * (s2 + m * m - 1.0 - s2.ln())
}

/// With π = N(0, 1) the Wasserstein flow is the Ornstein–Uhlenbeck Fokker–Planck equation:
/// from N(m₀, s₀²), ρₜ = N(m₀e^{−t}, 1 + (s₀² − 1)e^{−2t}). The finite-volume flow's KL matches
/// the closed form up to the discretization error, which is second order: halving h divides it
/// by ≈ 4.
#[test]
fn wasserstein_flow_is_ornstein_uhlenbeck() {
    let pi = Shape::Gaussian {
        mean: vec![0.0],
        sd: vec![1.0],
    };
    let (m0, s0) = (2.0, 0.7);
    let start = Shape::Gaussian {
        mean: vec![m0],
        sd: vec![s0],
    };
    let settings = DensitySettings {
        t_end: 2.0,
        rtol: 1e-10,
        atol: 1e-12,
        save_at: vec![0.5, 1.0, 2.0],
        ..DensitySettings::default()
    };
    let error = |cells: usize| -> f64 {
        let grid = Grid::line(-8.0, 8.0, cells);
        let (lp, l0) = (on(&grid, &pi), on(&grid, &start));
        let p = integrate(FlowKind::Wasserstein, &grid, &lp, &l0, &settings).expect("runs");
        assert!(p.finished());
        assert_eq!(p.saved.len(), 3);
        p.saved
            .iter()
            .map(|(t, lr)| {
                let e = (-t).exp();
                let exact = kl_gauss(m0 * e, 1.0 + (s0 * s0 - 1.0) * e * e);
                let got = fisher_flow::density::kl(lr, &lp, grid.volume());
                (got - exact).abs() / exact
            })
            .fold(0.0, f64::max)
    };
    let (coarse, fine) = (error(100), error(200));
    assert!(fine < 4e-3, "relative KL error {fine:.2e} at h = 0.08");
    let order = (coarse / fine).log2();
    assert!(
        (1.8..2.2).contains(&order),
        "order {order:.3} ({coarse:.2e} → {fine:.2e})"
    );
}

/// The Fisher–Rao flow on a coarse 1-D grid against ρₜ ∝ ρ₀^{e^{−t}} π^{1−e^{−t}}, with bdf
/// (the implicit path and its Jacobian) and with tsit45.
#[test]
fn fisher_rao_closed_form_with_both_solvers() {
    let grid = Grid::line(-8.0, 9.0, 60);
    let pi = Shape::Bimodal {
        separation: 4.0,
        sigma: 1.0,
        dim: 1,
    };
    let start = Shape::Gaussian {
        mean: vec![1.0],
        sd: vec![1.5],
    };
    let (lp, l0) = (on(&grid, &pi), on(&grid, &start));
    for (solver, tol) in [
        (fisher_flow::flow::SolverKind::Tsit45, 1e-8),
        (fisher_flow::flow::SolverKind::Bdf, 1e-6),
    ] {
        let settings = DensitySettings {
            t_end: 3.0,
            rtol: 1e-11,
            atol: 1e-13,
            save_at: vec![0.3, 1.0, 3.0],
            solver: Some(solver),
            ..DensitySettings::default()
        };
        let p = integrate(FlowKind::FisherRao, &grid, &lp, &l0, &settings).expect("runs");
        for (t, lr) in &p.saved {
            let ex = fisher_rao_exact(&l0, &lp, grid.volume(), *t);
            let err = lr
                .iter()
                .zip(&ex)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < tol, "{solver:?} t = {t}: {err:.2e}");
        }
    }
}

/// The step cap ends a run as StepCap, not as a finished one.
#[test]
fn step_cap_ends_the_run() {
    let grid = Grid::line(-6.0, 6.0, 40);
    let pi = Shape::Bimodal {
        separation: 3.0,
        sigma: 1.0,
        dim: 1,
    };
    let start = Shape::Gaussian {
        mean: vec![0.0],
        sd: vec![1.0],
    };
    let settings = DensitySettings {
        max_steps: 5,
        ..DensitySettings::default()
    };
    let p = integrate(
        FlowKind::Wasserstein,
        &grid,
        &on(&grid, &pi),
        &on(&grid, &start),
        &settings,
    )
    .expect("runs");
    assert_eq!(p.stop, fisher_flow::density::flow::DensityStop::StepCap);
    assert!(p.steps + p.rejected <= 5);
}

const TINY_1D: &str = r#"
[model]
family = "density"
[density]
flow = "wfr"
lo = [-8.0]
hi = [9.0]
points = [48]
[density.target]
kind = "mixture"
sigma = 1.0
means = [-1.5, 2.0]
[density.start]
kind = "mixture"
means = [1.0, -1.0]
[flow]
t_end = 2.0
"#;

const TINY_2D: &str = r#"
[model]
family = "density"
[density]
lo = [-6.5, -5.5]
hi = [6.5, 5.5]
points = [14, 12]
[density.target]
kind = "bimodal"
separation = 3.0
sigma = 1.0
[density.start]
kind = "gaussian"
mean = [0.5, 0.0]
sd = [1.2, 1.0]
[flow]
t_end = 1.0
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write model");
    p
}

fn rows(csv: &str) -> Vec<Vec<f64>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().expect("number")).collect())
        .collect()
}

#[test]
fn run_writes_densities_kl_and_figures_reproducibly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write(dir.path(), "d1.toml", TINY_1D);
    let out = dir.path().join("out");
    let out2 = dir.path().join("out2");
    for o in [&out, &out2] {
        bin()
            .args([
                "run",
                model.to_str().expect("utf8"),
                "--out",
                o.to_str().expect("utf8"),
                "-q",
            ])
            .assert()
            .code(0);
    }
    let csv = std::fs::read_to_string(out.join("density.csv")).expect("density.csv");
    assert!(csv.starts_with("t,x,rho\n"));
    let r = rows(&csv);
    // 6 default save times × 48 cells, each time a unit mass on cells of width 17/48
    assert_eq!(r.len(), 6 * 48);
    for block in r.chunks(48) {
        let m: f64 = block.iter().map(|row| row[2] * 17.0 / 48.0).sum();
        assert!((m - 1.0).abs() < 1e-12, "mass {m}");
        assert!(
            block
                .iter()
                .all(|row| row[0] == block[0][0] && row[2] > 0.0)
        );
    }
    for f in [
        "kl.csv",
        "density.json",
        "density.svg",
        "density.png",
        "kl.svg",
        "kl.png",
        "bridge.svg",
        "bridge.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
        assert_eq!(
            std::fs::read(out.join(f)).expect("read"),
            std::fs::read(out2.join(f)).expect("read"),
            "{f} differs between reruns"
        );
    }
    assert!(out.join("certificate.json").is_file());
    svg_font_covers(&out, &["density.svg", "kl.svg", "bridge.svg"]);
    // KL falls along every flow in kl.csv
    let kl = std::fs::read_to_string(out.join("kl.csv")).expect("kl.csv");
    let mut last: Option<(String, f64)> = None;
    for line in kl.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let k: f64 = f[2].parse().expect("kl");
        if let Some((flow, prev)) = &last
            && flow == f[0]
        {
            assert!(k <= prev + 1e-14, "{line}");
        }
        last = Some((f[0].to_string(), k));
    }
}

#[test]
fn run_2d_writes_t_x_y_rho_and_heat_maps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write(dir.path(), "d2.toml", TINY_2D);
    let out = dir.path().join("out");
    bin()
        .args([
            "run",
            model.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
            "-q",
        ])
        .assert()
        .code(0);
    let csv = std::fs::read_to_string(out.join("density.csv")).expect("density.csv");
    assert!(csv.starts_with("t,x,y,rho\n"));
    assert_eq!(rows(&csv).len(), 6 * 168);
    for f in [
        "density-0.png",
        "density-5.svg",
        "density-target.png",
        "kl.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn compare_runs_the_named_flows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write(dir.path(), "d1.toml", TINY_1D);
    let out = dir.path().join("cmp");
    let o = bin()
        .args([
            "compare",
            model.to_str().expect("utf8"),
            "--metrics",
            "fisher-rao,wasserstein",
            "--json",
            "--out",
            out.to_str().expect("utf8"),
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&o).expect("json");
    let flows: Vec<&str> = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["flow"].as_str().expect("flow"))
        .collect();
    assert_eq!(flows, ["fisher-rao", "wasserstein"]);
    assert!(out.join("compare.md").is_file());
}

/// `verify CERT` (exit code, stderr).
fn verify(cert: &Path, model: Option<&Path>) -> (i32, String) {
    let mut c = bin();
    c.arg("verify").arg(cert);
    if let Some(m) = model {
        c.arg("--model").arg(m);
    }
    let o = c.output().expect("runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The density run's certificate verifies (with and without `--model`), and every kind of
/// edit is rejected with exit 1 and a reason naming the field: a KL value, a stored density
/// value (caught by its hash), a Fisher–Rao density moved off the closed form with its hash
/// recomputed, a Wasserstein state replaced consistently (hash and its own claims redone:
/// caught where the claims are checked against the state), a removed flow, a removed state,
/// the verdict, a tolerance, and a changed model file.
#[test]
fn density_certificate_verifies_and_edits_are_rejected() {
    use fisher_flow::density::flow::state_hash;
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write(dir.path(), "d1.toml", TINY_1D);
    let out = dir.path().join("out");
    bin()
        .args(["run", model.to_str().expect("utf8"), "--out"])
        .arg(&out)
        .arg("-q")
        .assert()
        .code(0);
    let cert_path = out.join("certificate.json");
    assert_eq!(verify(&cert_path, None).0, 0);
    assert_eq!(verify(&cert_path, Some(&model)).0, 0);
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cert_path).expect("read")).expect("json");
    assert_eq!(cert["model_family"], "density");
    assert_eq!(cert["monotone"], true);
    let flows = cert["flows"].as_array().expect("flows");
    assert_eq!(flows.len(), 3);
    for f in flows {
        let steps = f["steps"].as_array().expect("steps").len();
        // every step is stored at this size
        assert_eq!(f["states"].as_array().expect("states").len(), steps);
        assert!(steps > 5, "{steps}");
    }
    let tampered = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| -> (i32, String) {
        let mut c = cert.clone();
        edit(&mut c);
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_vec(&c).expect("json")).expect("write");
        verify(&p, None)
    };
    let f64_at = |v: &serde_json::Value| v.as_f64().expect("number");
    let set_state = |c: &mut serde_json::Value, flow: usize, k: usize, th: Vec<f64>| {
        c["flows"][flow]["steps"][k]["state_sha256"] = state_hash(&th).into();
        c["flows"][flow]["states"][k]["log_rho"] = serde_json::json!(th);
    };
    let state = |c: &serde_json::Value, flow: usize, k: usize| -> Vec<f64> {
        c["flows"][flow]["states"][k]["log_rho"]
            .as_array()
            .expect("state")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect()
    };
    type Edit<'a> = Box<dyn Fn(&mut serde_json::Value) + 'a>;
    let cases: Vec<(&str, Edit<'_>, &str)> = vec![
        (
            "kl",
            Box::new(|c| {
                let v = f64_at(&c["flows"][1]["steps"][3]["kl"]);
                c["flows"][1]["steps"][3]["kl"] = (v * (1.0 + 1e-9)).into();
            }),
            "kl: claimed",
        ),
        (
            "density-value",
            Box::new(|c| {
                let v = f64_at(&c["flows"][2]["states"][4]["log_rho"][20]);
                c["flows"][2]["states"][4]["log_rho"][20] = (v + 1e-12).into();
            }),
            "state_sha256",
        ),
        (
            "fisher-rao-off-closed-form",
            Box::new(|c| {
                let mut th = state(c, 0, 3);
                th[24] += 1e-2;
                set_state(c, 0, 3, th);
            }),
            "closed form",
        ),
        (
            "wasserstein-state-swapped",
            Box::new(|c| {
                // a later state in place of step 2's, with its hash: its KL is not step 2's
                let th = state(c, 1, 6);
                set_state(c, 1, 2, th);
            }),
            "kl: claimed",
        ),
        (
            "flow-removed",
            Box::new(|c| {
                c["flows"].as_array_mut().expect("flows").remove(1);
            }),
            "flows",
        ),
        (
            "state-removed",
            Box::new(|c| {
                c["flows"][1]["states"]
                    .as_array_mut()
                    .expect("states")
                    .remove(2);
            }),
            "states at steps",
        ),
        (
            "verdict",
            Box::new(|c| {
                c["flows"][2]["monotone"] = false.into();
            }),
            "monotone",
        ),
        (
            "tolerance",
            Box::new(|c| {
                let v = f64_at(&c["flows"][1]["steps"][2]["tolerance"]);
                c["flows"][1]["steps"][2]["tolerance"] = (v * 2.0).into();
            }),
            "tolerance: claimed",
        ),
        (
            "rtol",
            Box::new(|c| {
                c["rtol"] = 1e-3.into();
            }),
            "rtol",
        ),
    ];
    for (name, edit, needle) in &cases {
        let (code, err) = tampered(name, edit.as_ref());
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
    }
    // a different model file
    let other = write(
        dir.path(),
        "d1b.toml",
        &TINY_1D.replace("t_end = 2.0", "t_end = 2.5"),
    );
    let (code, err) = verify(&cert_path, Some(&other));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("model_sha256"), "{err}");
}

/// The sparse split form (the default for implicit solvers) and the dense path integrate the
/// same flows: KL at the save times agrees to the tolerance level, and the split form conserves
/// mass as a genuine check (c is integrated, not computed from θ̃).
#[test]
fn sparse_split_form_matches_the_dense_path() {
    let grid = Grid::plane((-6.5, 6.5), (-5.5, 5.5), 14, 12);
    let pi = Shape::Bimodal {
        separation: 3.0,
        sigma: 1.0,
        dim: 2,
    };
    let start = Shape::Gaussian {
        mean: vec![0.5, 0.0],
        sd: vec![1.2, 1.0],
    };
    let (lp, l0) = (on(&grid, &pi), on(&grid, &start));
    for flow in [FlowKind::Wasserstein, FlowKind::Wfr, FlowKind::FisherRao] {
        let base = DensitySettings {
            t_end: 3.0,
            rtol: 1e-9,
            atol: 1e-11,
            save_at: vec![0.5, 1.0, 3.0],
            solver: Some(fisher_flow::flow::SolverKind::Bdf),
            ..DensitySettings::default()
        };
        let sparse = integrate(flow, &grid, &lp, &l0, &base).expect("sparse");
        let dense = integrate(
            flow,
            &grid,
            &lp,
            &l0,
            &DensitySettings {
                dense_jacobian: true,
                ..base.clone()
            },
        )
        .expect("dense");
        assert!(sparse.finished() && dense.finished(), "{flow:?}");
        assert!(
            sparse.mass_drift() < 1e-7,
            "{flow:?}: {}",
            sparse.mass_drift()
        );
        for ((t, a), (_, b)) in sparse.saved.iter().zip(&dense.saved) {
            let ka = fisher_flow::density::kl(a, &lp, grid.volume());
            let kb = fisher_flow::density::kl(b, &lp, grid.volume());
            assert!(
                (ka - kb).abs() <= 1e-6 * kb.max(1e-3),
                "{flow:?} t = {t}: {ka} vs {kb}"
            );
        }
        if flow == FlowKind::FisherRao {
            // the split form meets the closed form too
            for (t, a) in &sparse.saved {
                let ex = fisher_rao_exact(&l0, &lp, grid.volume(), *t);
                let e = a
                    .iter()
                    .zip(&ex)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
                assert!(e < 1e-6, "t = {t}: {e}");
            }
        }
    }
}

/// Bad input: exit 2 and a one-line message naming what to change.
#[test]
fn bad_input_is_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, &str)] = &[
        // a non-normalizable target
        (
            "kind = \"mixture\"\nsigma = 1.0\nmeans = [-1.5, 2.0]",
            "kind = \"potential\"\ncoefficients = [0.0, 0.0, 0.0, 1.0]",
            "density.target.coefficients",
        ),
        // a grid that does not cover π's mass
        ("lo = [-8.0]", "lo = [-2.0]", "the grid holds mass"),
        // a target whose mass lies entirely off the grid
        (
            "means = [-1.5, 2.0]",
            "means = [-150.0, 200.0]",
            "the grid holds mass",
        ),
        ("flow = \"wfr\"", "flow = \"hellinger\"", "density.flow"),
        ("points = [48]", "points = [2]", "density.points"),
        ("points = [48]", "points = [48, 10]", "density.lo"),
        (
            "kind = \"mixture\"\nmeans = [1.0, -1.0]",
            "kind = \"banana\"\nwidth = 1.0\ncurvature = 1.0",
            "density.start.kind",
        ),
        (
            "t_end = 2.0",
            "t_end = 2.0\nmetric = \"exact\"",
            "flow.metric",
        ),
    ];
    for (k, (from, to, needle)) in cases.iter().enumerate() {
        assert!(TINY_1D.contains(from), "{from}");
        let text = TINY_1D.replacen(from, to, 1);
        let model = write(dir.path(), &format!("bad{k}.toml"), &text);
        let o = bin()
            .args(["run", model.to_str().expect("utf8"), "--out"])
            .arg(dir.path().join(format!("o{k}")))
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8_lossy(&o);
        assert!(err.contains(needle), "case {k}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let model = write(dir.path(), "ok.toml", TINY_1D);
    // --metric names a parametric metric; other commands refuse the family
    for (args, needle) in [
        (vec!["run", "--metric", "exact"], "--metric"),
        (vec!["field"], "model.family"),
    ] {
        let o = bin()
            .args(&args)
            .arg(&model)
            .args(["--out"])
            .arg(dir.path().join("ox"))
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8_lossy(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// Every character the figures write is in the SVG font subset (else an SVG viewer shows a
/// missing glyph).
fn svg_font_covers(dir: &Path, names: &[&str]) {
    use ab_glyph::Font;
    let font = ab_glyph::FontRef::try_from_slice(fisher_flow::plot::font::DEJAVU_SANS_SUBSET)
        .expect("font");
    for name in names {
        let svg = std::fs::read_to_string(dir.join(name)).expect("svg");
        for text in svg.split("<text").skip(1) {
            let body = text.split_once('>').map(|x| x.1).unwrap_or("");
            let body = body.split("</text>").next().unwrap_or("");
            for c in body
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '&' && *c != ';')
            {
                assert_ne!(font.glyph_id(c).0, 0, "{name}: '{c}' (U+{:04X})", c as u32);
            }
        }
    }
}
