//! `fisher-flow field`: every grid start minus the diagonal, field.csv columns, convergence to
//! θ* or its swap, no progress bar when stdout is not a terminal, clear errors.

use assert_cmd::Command;
use fisher_flow::field::{grid_starts, run_field};
use fisher_flow::flow::{FlowSettings, Simulator};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;

fn model_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(
        &p,
        "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[flow]\nstarts = [[0.0, 1.0]]\n",
    )
    .unwrap();
    p
}

#[test]
fn field_csv_has_every_off_diagonal_start_and_all_converge() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let out = dir.path().join("f");
    let o = Command::cargo_bin("fisher-flow")
        .unwrap()
        .args([
            "field",
            model.to_str().unwrap(),
            "--grid",
            "6",
            "--range",
            "-4,4",
            "--nodes",
            "24",
            "--rtol",
            "1e-6",
            "--atol",
            "1e-9",
            "--t-end",
            "12",
            "--threads",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("30 starts") && stdout.contains("converged 30/30"),
        "{stdout}"
    );
    // no progress-bar control characters when stdout is a pipe
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\r'));
    let csv = std::fs::read_to_string(out.join("field.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "mu1_start,mu2_start,mu1_end,mu2_end,converged,distance,steps,rejected,rhs_evals,stop,retcode"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 6 * 6 - 6);
    let target = [-1.5, 2.0];
    for r in &rows {
        let v = |i: usize| r[i].parse::<f64>().unwrap();
        assert_ne!(v(0), v(1), "diagonal start {r:?}");
        let d = ((v(2) - target[0]).hypot(v(3) - target[1]))
            .min((v(2) - target[1]).hypot(v(3) - target[0]));
        // |θ(12) − θ*| ≤ e^{−12}·|θ(0) − θ*| ≈ 7e-5 plus the 24-node quadrature offset
        assert!(d < 1e-3, "{r:?}");
        assert_eq!(r[4], "true");
        // t_end, or the steady state at the integration's noise floor before it
        assert!(r[10] == "Success" || r[10] == "Converged", "{r:?}");
        assert!(r[6].parse::<usize>().unwrap() > 0 && r[8].parse::<usize>().unwrap() > 0);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("field.json")).unwrap()).unwrap();
    assert_eq!(json["starts"], 30);
    assert_eq!(json["converged"], 30);
}

#[test]
fn parallel_and_serial_fields_agree_exactly() {
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme: Scheme::GaussHermite { nodes: 16 },
    };
    let sim = Simulator::new(
        &m,
        FlowSettings {
            rtol: 1e-6,
            atol: 1e-9,
            t_end: 5.0,
            ..FlowSettings::default()
        },
    )
    .unwrap();
    let starts = grid_starts(5, -3.0, 3.0);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run_field(&sim, &m, &starts, 1e-3, &|| {}))
            .unwrap()
    };
    let (a, b) = (run(1), run(2));
    for (p, q) in a.iter().zip(&b) {
        assert_eq!(
            (p.start, p.end, p.steps, p.rhs_evals),
            (q.start, q.end, q.steps, q.rhs_evals)
        );
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    for (args, flag) in [
        (vec!["--grid", "1"], "--grid"),
        (vec!["--range", "3,-3"], "--range"),
        (vec!["--range", "a,b"], "--range"),
        (vec!["--threads", "0"], "--threads"),
        (vec!["--solver", "rk4"], "--solver"),
    ] {
        let mut all = vec![
            "field",
            model.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ];
        all.extend(args.iter().copied());
        let o = Command::cargo_bin("fisher-flow")
            .unwrap()
            .args(&all)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(flag),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
