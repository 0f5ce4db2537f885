//! `fisher-flow sweep` (issue 16): spec parsing and bad-spec errors, shard assignment,
//! sharded + merged = unsharded (timing aside), `--resume` after a truncated shard file, the
//! Parquet file read back, and time-to-ε against an independent computation from `run`'s
//! trajectory.

use assert_cmd::Command;
use fisher_flow::study::sweep::{Shard, SweepSpec};
use std::path::{Path, PathBuf};

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

/// A fast mixture model (Gauss–Hermite 32, loose tolerances, short horizon).
const MODEL: &str = "[model]\nsigma = 1.0\nweight = 0.5\ntarget = [-1.5, 2.0]\n\
[quadrature]\nnodes = 32\n[flow]\nt_end = 8.0\nrtol = 1e-6\natol = 1e-8\nstarts = [[0.5, 1.0]]\n";

/// 2 σ × 2 solvers × 2×2 starts = 16 cases.
const SPEC: &str = r#"base = "model.toml"
epsilon = 1e-5

[[axis]]
name = "sigma"
values = [0.9, 1.0]

[[axis]]
name = "solver"
values = ["tsit45", "bdf"]

[[axis]]
name = "start"
grid = { mu1 = { start = -3.0, stop = 3.0, num = 2 }, mu2 = { start = -2.5, stop = 3.5, num = 2 } }
"#;

/// A directory with `model.toml` and `spec.toml` (the spec text given).
fn setup(spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.toml"), MODEL).expect("model");
    let p = dir.path().join("spec.toml");
    std::fs::write(&p, spec).expect("spec");
    (dir, p)
}

fn run_ok(args: &[&str]) -> String {
    let o = ff().args(args).output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{args:?}: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// results.csv without its timing column (`wall_seconds`, the last).
fn csv_sans_timing(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.rsplit_once(',').expect("columns").0.to_string())
        .collect();
    assert!(lines[0].ends_with(",message"), "{}", lines[0]);
    lines
}

#[test]
fn spec_expands_in_product_order_with_start_fastest() {
    let (dir, p) = setup(SPEC);
    let spec = SweepSpec::load(&p).expect("spec");
    assert_eq!((spec.n_settings, spec.n_starts(), spec.n_cases), (4, 4, 16));
    // Setting 1 = (σ 0.9, bdf): the last axis varies fastest.
    let m = spec.model_file(1);
    assert_eq!(m.model.sigma, Some(0.9));
    assert_eq!(m.flow.solver.as_deref(), Some("bdf"));
    let m = spec.model_file(2);
    assert_eq!(m.model.sigma, Some(1.0));
    assert_eq!(m.flow.solver.as_deref(), Some("tsit45"));
    // Grid: start k = (mu1[k % 2], mu2[k / 2]).
    assert_eq!(spec.starts[1], [3.0, -2.5]);
    assert_eq!(spec.starts[2], [-3.0, 3.5]);
    // ranges, logranges, zip and [axes]
    let text = r#"base = "model.toml"
[[axis]]
name = "rtol"
logrange = { start = 1e-8, stop = 1e-6, num = 3 }
zip = "tol"
[[axis]]
name = "atol"
values = [1e-10, 1e-9, 1e-8]
zip = "tol"
[axes]
w = { range = { start = 0.3, stop = 0.5, num = 2 } }
metric = ["exact", "euclidean"]
start = { random-starts = { n = 5, seed = 7, box = [-3.0, 3.0] } }
"#;
    std::fs::write(dir.path().join("b.toml"), text).unwrap();
    let spec = SweepSpec::load(&dir.path().join("b.toml")).expect("spec b");
    // 3 (zipped) × 2 metrics × 2 weights × 5 starts
    assert_eq!(spec.n_cases, 60);
    let m = spec.model_file(0);
    assert_eq!((m.flow.rtol, m.flow.atol), (Some(1e-8), Some(1e-10)));
    let m = spec.model_file(4);
    assert!(
        (m.flow.rtol.unwrap() - 1e-7).abs() < 1e-20,
        "{:?}",
        m.flow.rtol
    );
    assert_eq!(m.flow.atol, Some(1e-9));
    // Seeded random starts are reproducible and inside the box.
    let again = SweepSpec::load(&dir.path().join("b.toml")).unwrap();
    assert_eq!(spec.starts, again.starts);
    assert_eq!(spec.hash(), again.hash());
    assert!(
        spec.starts
            .iter()
            .flatten()
            .all(|x| (-3.0..=3.0).contains(x))
    );
}

#[test]
fn bad_specs_exit_2_naming_the_key() {
    let cases: Vec<(&str, &str)> = vec![
        ("[[axis]]\nname = \"sigmaa\"\nvalues = [1.0]\n", "sigmaa"),
        (
            "[[axis]]\nname = \"sigma\"\nvalues = [1.0]\nfoo = 1\n",
            "foo",
        ),
        (
            "[[axis]]\nname = \"sigma\"\nvalues = []\n",
            "axis[0] (sigma).values",
        ),
        (
            "[[axis]]\nname = \"sigma\"\nrange = { start = 1.0, stop = 2.0, num = 0 }\n",
            "axis[0] (sigma).range.num",
        ),
        (
            "[[axis]]\nname = \"sigma\"\nvalues = [1.0, -0.5]\n",
            "axis[0] (sigma)[1]",
        ),
        (
            "[[axis]]\nname = \"sigma\"\nvalues = [0.0]\n",
            "axis[0] (sigma)[0]",
        ),
        ("[[axis]]\nname = \"w\"\nvalues = [1.5]\n", "axis[0] (w)[0]"),
        (
            "[[axis]]\nname = \"solver\"\nvalues = [\"rk4\"]\n",
            "axis[0] (solver).values[0]",
        ),
        (
            "[[axis]]\nname = \"start\"\ngrid = { mu1 = { start = -1.0, stop = 1.0, num = 4000 }, mu2 = { start = -1.0, stop = 1.0, num = 4000 } }\n",
            "axis[0] (start).grid",
        ),
        (
            "[[axis]]\nname = \"sigma\"\nrange = { start = 0.5, stop = 2.0, num = 4000 }\n[[axis]]\nname = \"start\"\ngrid = { mu1 = { start = -1.0, stop = 1.0, num = 50 }, mu2 = { start = -1.0, stop = 1.0, num = 51 } }\n",
            "invalid axes = 10200000 cases",
        ),
        ("[axes]\nbogus = [1]\n", "axes.bogus"),
        (
            "[axes]\nsigma = [1.0]\n[[axis]]\nname = \"sigma\"\nvalues = [2.0]\n",
            "sigma",
        ),
        (
            "[[axis]]\nname = \"rtol\"\nvalues = [1e-6, 1e-7]\nzip = \"z\"\n[[axis]]\nname = \"atol\"\nvalues = [1e-9]\nzip = \"z\"\n",
            "zip",
        ),
        ("epsilon = 0.0\n", "epsilon"),
    ];
    for (body, key) in cases {
        let (dir, p) = setup(&format!("base = \"model.toml\"\n{body}"));
        let out = dir.path().join("out");
        let o = ff()
            .args(["sweep", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{body}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{body}: {err}");
        assert!(err.contains(key), "{body}: must name {key}: {err}");
        assert!(
            err.contains("spec.toml"),
            "{body}: must name the spec: {err}"
        );
        assert!(!err.contains("panicked"), "{body}: {err}");
        assert!(!out.exists(), "{body}: a bad spec wrote {}", out.display());
    }
    // A bad flag names the flag.
    let (dir, p) = setup(SPEC);
    let out = dir.path().join("out");
    for (flag, v) in [("--shard", "5/4"), ("--shard", "0/2"), ("--threads", "0")] {
        let o = ff()
            .args([
                "sweep",
                p.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                flag,
                v,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag} {v}: {err}");
        assert!(err.contains(flag), "{err}");
    }
}

#[test]
fn every_case_lands_in_exactly_one_shard() {
    for n_cases in [1u64, 16, 36, 1296] {
        for n in [1u64, 2, 3, 4, 5, 100] {
            let mut count = vec![0; n_cases as usize];
            for k in 1..=n {
                for i in (Shard { k, n }).ids(n_cases) {
                    count[i as usize] += 1;
                }
            }
            assert!(count.iter().all(|&c| c == 1), "C {n_cases} N {n}");
        }
    }
}

#[test]
fn sharded_and_merged_equals_unsharded_and_parquet_reads_back() {
    let (dir, p) = setup(SPEC);
    let spec = p.to_str().unwrap();
    let single = dir.path().join("single");
    let stdout = run_ok(&[
        "sweep",
        spec,
        "--out",
        single.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    assert!(stdout.contains("16 cases"), "{stdout}");
    assert!(stdout.contains("merged 16 cases"), "{stdout}");
    let sharded = dir.path().join("sharded");
    let s = sharded.to_str().unwrap();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        run_ok(&[
            "sweep",
            spec,
            "--out",
            s,
            "--shard",
            &shard,
            "--threads",
            "1",
        ]);
        if k < 3 {
            // Merging before every shard is there fails, naming the missing one.
            let o = ff().args(["sweep", "merge", s]).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{err}");
            let missing = format!("shard {}-of-3 is missing", k + 1);
            assert!(err.contains(&missing), "{err}");
        }
    }
    run_ok(&["sweep", "merge", s]);
    let a = csv_sans_timing(&single);
    let b = csv_sans_timing(&sharded);
    assert_eq!(a.len(), 17);
    assert_eq!(a, b, "sharded + merged differs from unsharded");
    for f in [
        "results.parquet",
        "summary.json",
        "time-to-eps.svg",
        "time-to-eps.png",
    ] {
        assert!(sharded.join(f).exists(), "{f}");
    }
    assert!(single.join("rate-sigma.png").exists());

    // Parquet: the same rows as the CSV.
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(single.join("results.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).expect("parquet reader");
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 16);
    let arrow = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(single.join("results.parquet")).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let batches: Vec<_> = arrow.map(|b| b.expect("batch")).collect();
    let csv = std::fs::read_to_string(single.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let mut row = 0;
    for b in &batches {
        assert_eq!(b.num_columns(), header.len());
        for (c, name) in header.iter().enumerate() {
            assert_eq!(b.schema().field(c).name(), name);
        }
        for i in 0..b.num_rows() {
            let r = &rows[row];
            let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
            use arrow_array::Array;
            let id = b
                .column(col("id"))
                .as_any()
                .downcast_ref::<arrow_array::UInt64Array>()
                .unwrap()
                .value(i);
            assert_eq!(id.to_string(), r[col("id")]);
            let sigma = b
                .column(col("sigma"))
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap()
                .value(i);
            assert_eq!(sigma, r[col("sigma")].parse::<f64>().unwrap());
            let t = b
                .column(col("t_eps"))
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap();
            if r[col("t_eps")].is_empty() {
                assert!(t.is_null(i));
            } else {
                assert_eq!(t.value(i), r[col("t_eps")].parse::<f64>().unwrap());
            }
            let solver = b
                .column(col("solver"))
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .value(i);
            assert_eq!(solver, r[col("solver")]);
            let rhs = b
                .column(col("rhs_evals"))
                .as_any()
                .downcast_ref::<arrow_array::UInt64Array>()
                .unwrap()
                .value(i);
            assert_eq!(rhs.to_string(), r[col("rhs_evals")]);
            row += 1;
        }
    }
    assert_eq!(row, 16);
}

#[test]
fn resume_after_a_truncated_shard_file_runs_only_the_missing_cases() {
    let (dir, p) = setup(SPEC);
    let spec = p.to_str().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    run_ok(&["sweep", spec, "--out", o, "--shard", "2/2"]);
    let file = out.join("shards/2-of-2/records.jsonl");
    let full = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    assert_eq!(lines.len(), 1 + 8, "header + 8 records");
    // Keep the header and 3 records, and half of the 4th (a write cut short by SIGKILL).
    let cut = format!(
        "{}\n{}",
        lines[..4].join("\n"),
        &lines[4][..lines[4].len() / 2]
    );
    std::fs::write(&file, &cut).unwrap();
    let stdout = run_ok(&["sweep", spec, "--out", o, "--shard", "2/2", "--resume"]);
    assert!(stdout.contains("ran 5, resumed 3"), "{stdout}");
    assert!(stdout.contains("truncated"), "{stdout}");
    let after = std::fs::read_to_string(&file).unwrap();
    let after: Vec<&str> = after.lines().collect();
    assert_eq!(after.len(), 9);
    // The 3 kept records are untouched (not recomputed: their wall times are the same bytes).
    assert_eq!(after[..4], lines[..4]);
    // Resuming a complete shard runs nothing.
    let stdout = run_ok(&["sweep", spec, "--out", o, "--shard", "2/2", "--resume"]);
    assert!(stdout.contains("ran 0, resumed 8"), "{stdout}");
    // With shard 1 the merge equals the unsharded sweep.
    run_ok(&["sweep", spec, "--out", o, "--shard", "1/2"]);
    run_ok(&["sweep", "merge", o]);
    let single = dir.path().join("single");
    run_ok(&["sweep", spec, "--out", single.to_str().unwrap()]);
    assert_eq!(csv_sans_timing(&out), csv_sans_timing(&single));
    // A different spec cannot resume this shard.
    std::fs::write(&p, SPEC.replace("1e-5", "1e-4")).unwrap();
    let o2 = ff()
        .args(["sweep", spec, "--out", o, "--shard", "2/2", "--resume"])
        .output()
        .unwrap();
    assert_eq!(o2.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o2.stderr).contains("--resume"));
}

/// First t with L − L* < ε, interpolated linearly in log(L − L*) between accepted steps:
/// computed here from `run`'s trajectory.json.
fn t_eps_of(traj: &serde_json::Value, eps: f64) -> Option<f64> {
    let l_star = traj["optimal_loss"].as_f64()?;
    let steps = traj["trajectories"][0]["steps"].as_array()?;
    let mut prev: Option<(f64, f64)> = None;
    for s in steps {
        let (t, l) = (s["t"].as_f64()?, s["loss"].as_f64()?);
        let g = l - l_star;
        if g < eps {
            return Some(match prev {
                Some((t0, g0)) if g0 > 0.0 && g > 0.0 => {
                    t0 + (t - t0) * (g0.ln() - eps.ln()) / (g0.ln() - g.ln())
                }
                _ => t,
            });
        }
        prev = Some((t, g));
    }
    None
}

#[test]
fn time_to_eps_matches_run_from_the_same_start() {
    let (dir, p) = setup(SPEC);
    let out = dir.path().join("out");
    run_ok(&[
        "sweep",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--trajectories",
    ]);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let mut checked = 0;
    for line in csv.lines().skip(1) {
        let r: Vec<&str> = line.split(',').collect();
        // σ = 1.0 is the base model's: `run` on it reproduces the case.
        if r[col("sigma")].parse::<f64>().unwrap() != 1.0 {
            continue;
        }
        let id = r[col("id")];
        assert!(
            out.join(format!(
                "trajectories/case-{:08}.csv",
                id.parse::<u64>().unwrap()
            ))
            .exists()
        );
        let start = format!("{},{}", r[col("start_mu1")], r[col("start_mu2")]);
        let run_dir = dir.path().join(format!("run{id}"));
        run_ok(&[
            "run",
            dir.path().join("model.toml").to_str().unwrap(),
            "--start",
            &start,
            "--solver",
            r[col("solver")],
            "--out",
            run_dir.to_str().unwrap(),
            "-q",
        ]);
        let traj: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run_dir.join("trajectory.json")).unwrap(),
        )
        .unwrap();
        let expected = t_eps_of(&traj, 1e-5);
        let got = r[col("t_eps")];
        match expected {
            Some(t) => {
                let g: f64 = got
                    .parse()
                    .unwrap_or_else(|_| panic!("case {id}: t_eps '{got}'"));
                assert!(
                    (g - t).abs() <= 1e-12 * t.abs().max(1.0),
                    "case {id}: {g} vs {t}"
                );
                checked += 1;
            }
            None => assert!(got.is_empty(), "case {id}: {got}"),
        }
        let steps = traj["trajectories"][0]["stats"]["accepted"]
            .as_u64()
            .unwrap();
        assert_eq!(r[col("steps")], steps.to_string(), "case {id}");
        let cert: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run_dir.join("certificate.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            r[col("monotone")],
            cert["trajectories"][0]["monotone"]
                .as_bool()
                .unwrap()
                .to_string(),
            "case {id}"
        );
    }
    assert!(checked >= 4, "only {checked} cases reached ε");
}
