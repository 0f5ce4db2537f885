//! The command line's messages, signals and files (issue 11 "Messages, signals, files" and
//! issue 12 "Results a script can rely on"): flag errors name the flag, SIGPIPE ends quietly,
//! output directories are locked, cleaned of stale temporary files and of earlier outputs,
//! reruns write identical bytes, `--json` prints one document, `optimize` stops on divergence,
//! `--only` is case-insensitive and repeatable.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/gmm-seed.toml");
const MLP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/mlp-synthetic.toml");

fn ff() -> Command {
    Command::cargo_bin("fisher-flow").expect("binary built")
}

/// A small, fast mixture model.
fn model(dir: &Path) -> PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(
        &p,
        "[model]\nsigma = 1.0\ntarget = [-1.5, 2.0]\n[quadrature]\nnodes = 16\n[flow]\nt_end = 2.0\nstarts = [[0.5, 1.0]]\n",
    )
    .expect("write model");
    p
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, one line on stderr containing `flag`, the model file not blamed, no panic.
fn assert_flag_error(o: &std::process::Output, flag: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(
        err.contains(&format!("invalid {flag} ")),
        "{what}: must name {flag}: {err}"
    );
    assert!(!err.contains(".toml"), "{what}: blames the file: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn every_flag_that_overrides_the_file_is_named_in_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let m = m.to_str().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    // (subcommand arguments, flag the error must name)
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", m, "--rtol", "0"], "--rtol"),
        (vec!["run", m, "--atol=-1"], "--atol"),
        (vec!["run", m, "--t-end", "0"], "--t-end"),
        (vec!["run", m, "--damping=-1"], "--damping"),
        (vec!["run", m, "--nodes", "0"], "--nodes"),
        (vec!["run", m, "--nodes", "5000"], "--nodes"),
        (vec!["run", MLP, "--solver", "rk4"], "--solver"),
        (vec!["run", MLP, "--start", "1,2"], "--start"),
        (vec!["run", MLP, "--nodes", "5"], "--nodes"),
        (
            vec!["metric", MLP, "--at", "init", "--nodes", "5"],
            "--nodes",
        ),
        (vec!["optimize", m, "--metric", "kfac"], "--metric"),
        (vec!["field", m, "--metric", "kfac"], "--metric"),
        (vec!["compare", m, "--rtol", "0"], "--rtol"),
        (vec!["compare", m, "--atol", "inf"], "--atol"),
        (vec!["compare", m, "--t-end", "0"], "--t-end"),
        (vec!["compare", m, "--metrics", ""], "--metrics"),
        (
            vec!["compare", m, "--metrics", "exact,,euclidean"],
            "--metrics",
        ),
        (vec!["compare", m, "--metrics", "kfac"], "--metrics"),
        (vec!["compare", m, "--solvers", "tsit45,,bdf"], "--solvers"),
        (vec!["compare", MLP, "--solvers", "tsit45,rk4"], "--solvers"),
        (
            vec!["metric", m, "--at", "1,2", "--damping=-1"],
            "--damping",
        ),
        (vec!["metric", m, "--at", "1,2", "--nodes", "0"], "--nodes"),
        (vec!["optimize", m, "--damping", "nan"], "--damping"),
        (vec!["optimize", m, "--nodes", "0"], "--nodes"),
        (vec!["field", m, "--rtol", "0"], "--rtol"),
        (vec!["field", m, "--atol=-1"], "--atol"),
        (vec!["field", m, "--t-end", "inf"], "--t-end"),
        (vec!["field", m, "--damping=-1"], "--damping"),
        (vec!["field", m, "--nodes", "0"], "--nodes"),
    ];
    for (args, flag) in &cases {
        let mut all = args.clone();
        if args[0] != "metric" {
            all.extend(["--out", out]);
        }
        let o = ff().args(&all).output().unwrap();
        assert_flag_error(&o, flag, &format!("{args:?}"));
    }
    assert!(!Path::new(out).exists(), "a refused command created --out");
}

#[test]
fn threads_beyond_the_bound_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let o = ff()
        .args(["field", m.to_str().unwrap(), "--threads", "100000", "--out"])
        .arg(dir.path().join("f"))
        .output()
        .unwrap();
    assert_flag_error(&o, "--threads", "--threads 100000");
    assert!(stderr(&o).contains("1024"), "{}", stderr(&o));
}

#[test]
fn out_that_is_a_file_is_refused_naming_out() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let file = dir.path().join("afile");
    std::fs::write(&file, "keep").unwrap();
    for sub in ["run", "optimize", "compare", "field"] {
        let o = ff()
            .args([sub, m.to_str().unwrap(), "--out"])
            .arg(&file)
            .output()
            .unwrap();
        assert_flag_error(&o, "--out", sub);
        assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
}

/// A reader that goes away before the writer writes: SIGPIPE ends the process like any Unix
/// filter (killed by the signal, or exit 0), never a panic with exit 101.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let bin = assert_cmd::cargo::cargo_bin("fisher-flow");
    for args in [
        vec!["metric", DEMO, "--at", "1,2"],
        vec!["check", "--only", "kl-quadratic"],
    ] {
        let mut child = std::process::Command::new(&bin)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // close the read end before anything is written
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
        assert!(
            o.status.signal() == Some(13) || o.status.success(),
            "{args:?}: {:?} {err}",
            o.status
        );
    }
}

#[test]
fn stale_temp_files_of_dead_processes_and_dead_locks_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // above Linux's pid_max (2^22): no such process
    let dead = out.join(".trajectory.csv.tmp2147483646");
    let dead_png = out.join(".loss.png.tmp2147483646.png");
    let alive = out.join(format!(".trajectory.csv.tmp{}", std::process::id()));
    let other = out.join("notes.txt");
    std::fs::write(&dead, "half").unwrap();
    std::fs::write(&dead_png, "half").unwrap();
    std::fs::write(&alive, "being written").unwrap();
    std::fs::write(&other, "mine").unwrap();
    std::fs::write(out.join(".fisher-flow.lock"), "2147483646\n").unwrap();
    ff().args(["run", m.to_str().unwrap(), "--out"])
        .arg(&out)
        .assert()
        .success();
    assert!(!dead.exists(), "a dead process's temp file survived");
    assert!(
        !dead_png.exists(),
        "a dead process's PNG temp file survived"
    );
    assert!(alive.exists(), "a live process's temp file was removed");
    assert!(
        other.exists(),
        "a file fisher-flow does not own was removed"
    );
    assert!(
        !out.join(".fisher-flow.lock").exists(),
        "the lock outlived the run"
    );
    assert!(out.join("trajectory.csv").exists());
}

#[test]
fn a_held_lock_refuses_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // this test process is alive: its lock is honoured
    std::fs::write(
        out.join(".fisher-flow.lock"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let o = ff()
        .args(["run", m.to_str().unwrap(), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_flag_error(&o, "--out", "locked --out");
    assert!(stderr(&o).contains("another fisher-flow"), "{}", stderr(&o));
    assert!(!out.join("trajectory.csv").exists());
    assert!(
        out.join(".fisher-flow.lock").exists(),
        "someone else's lock removed"
    );
}

/// Two runs with different settings into one directory at once: every file left there comes
/// from one run (trajectory.csv's last t equals trajectory.json's t_end), and a run that lost
/// the lock says so with exit 2.
#[test]
fn concurrent_runs_never_mix_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let out = dir.path().join("out");
    let bin = assert_cmd::cargo::cargo_bin("fisher-flow");
    for _ in 0..2 {
        let spawn = |t_end: &str| {
            std::process::Command::new(&bin)
                .args(["run", m.to_str().unwrap(), "--t-end", t_end, "-q", "--out"])
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("1.5"), spawn("2.5"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut ok = 0;
        for o in [&a, &b] {
            if o.status.success() {
                ok += 1;
            } else {
                assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
                assert!(stderr(o).contains("another fisher-flow"), "{}", stderr(o));
            }
        }
        assert!(ok >= 1, "neither run succeeded");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("trajectory.json")).unwrap()).unwrap();
        let t_end = json["settings"]["t_end"].as_f64().unwrap();
        let csv = std::fs::read_to_string(out.join("trajectory.csv")).unwrap();
        let last_t: f64 = csv
            .lines()
            .last()
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (last_t - t_end).abs() < 1e-9,
            "mixed: csv t {last_t}, json t_end {t_end}"
        );
        assert!(!out.join(".fisher-flow.lock").exists());
    }
}

#[test]
fn earlier_outputs_are_removed_before_a_new_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let out = dir.path().join("out");
    ff().args(["run", m.to_str().unwrap(), "-q", "--out"])
        .arg(&out)
        .assert()
        .success();
    assert!(out.join("certificate.json").exists());
    std::fs::write(out.join("quality.csv"), "stale").unwrap();
    std::fs::write(out.join("mine.txt"), "keep").unwrap();
    ff().args([
        "optimize",
        m.to_str().unwrap(),
        "--iters",
        "5",
        "-q",
        "--out",
    ])
    .arg(&out)
    .assert()
    .success();
    assert!(
        !out.join("certificate.json").exists(),
        "run's certificate next to optimize's trajectory"
    );
    assert!(!out.join("quality.csv").exists());
    assert!(out.join("mine.txt").exists());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("trajectory.json")).unwrap()).unwrap();
    assert_eq!(json["time_axis"], "iteration");
}

/// Every file but `timings.json` is byte-identical across two runs of each command.
#[test]
fn reruns_write_identical_bytes_and_timings_apart() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let m = m.to_str().unwrap();
    let cmds: Vec<Vec<&str>> = vec![
        vec!["run", m, "--start", "0.5,1", "--start", "-2,1"],
        vec!["field", m, "--grid", "3", "--threads", "2"],
        vec!["compare", m, "--solvers", "tsit45"],
        vec!["optimize", m, "--iters", "20"],
    ];
    for args in cmds {
        let dirs = [dir.path().join("a"), dir.path().join("b")];
        for d in &dirs {
            ff().args(&args).arg("--out").arg(d).assert().success();
        }
        let names: Vec<String> = std::fs::read_dir(&dirs[0])
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n == "timings.json"),
            "{args:?}: {names:?}"
        );
        for n in &names {
            let a = std::fs::read(dirs[0].join(n)).unwrap();
            let b = std::fs::read(dirs[1].join(n)).unwrap();
            if n == "timings.json" {
                let t: serde_json::Value = serde_json::from_slice(&a).unwrap();
                assert!(t["total_seconds"].as_f64().unwrap() > 0.0);
            } else {
                assert!(a == b, "{args:?}: {n} differs between reruns");
            }
        }
        for d in &dirs {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

fn json_stdout(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

#[test]
fn json_summaries_carry_a_retcode_per_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let m = m.to_str().unwrap();
    let out = dir.path().join("out");

    let o = ff()
        .args([
            "run", m, "--json", "--start", "0.5,1", "--start", "-2,1", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_stdout(&o);
    let tr = v["trajectories"].as_array().unwrap();
    assert_eq!(tr.len(), 2);
    for t in tr {
        assert_eq!(t["retcode"], "Success");
        assert_eq!(t["t"].as_f64(), Some(2.0));
        assert!(t["stats"]["accepted"].as_u64().unwrap() > 0);
        assert!(t["stats"].get("wall_time").is_none());
    }
    assert_eq!(v["succeeded"], true);

    // the manifold figure's description goes to stderr too: stdout stays one JSON document
    let o = ff()
        .args([
            "run",
            m,
            "--json",
            "--manifold",
            "--start",
            "0.5,1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json_stdout(&o)["files"].as_array().map(|f| f.len() > 3),
        Some(true)
    );
    assert!(stderr(&o).contains("ellipses:"), "{}", stderr(&o));

    // a step cap that cannot be met: MaxSteps, exit 1, stdout still one JSON document
    let capped = dir.path().join("capped.toml");
    std::fs::write(
        &capped,
        std::fs::read_to_string(m).unwrap() + "max_steps = 2\n",
    )
    .unwrap();
    let o = ff()
        .args(["run", capped.to_str().unwrap(), "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_stdout(&o);
    assert_eq!(v["trajectories"][0]["retcode"], "MaxSteps");
    assert_eq!(v["succeeded"], false);

    let o = ff()
        .args(["field", m, "--grid", "3", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_stdout(&o);
    assert_eq!(v["starts"], 6);
    assert_eq!(v["retcodes"]["Success"], 6);

    let o = ff()
        .args(["compare", m, "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_stdout(&o);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["retcode"] == "Success"));
}

/// gd with lr 50 blows up geometrically: it must stop (Unstable, exit 1) within seconds,
/// never pass 1e300-sized values on, and print no 80-digit numbers.
#[test]
fn diverging_optimize_stops_as_unstable() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = ff()
        .args([
            "optimize", DEMO, "--method", "gd", "--lr", "50", "--iters", "200", "--start",
            "0.1,0.15", "--out",
        ])
        .arg(&out)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Unstable"), "{stdout}");
    assert!(
        !stdout
            .split(|c: char| !c.is_ascii_digit())
            .any(|d| d.len() > 20),
        "a long fixed-point number: {stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("trajectory.json")).unwrap()).unwrap();
    let steps = json["trajectories"][0]["steps"].as_array().unwrap();
    assert!(steps.len() < 200, "kept iterating: {} steps", steps.len());
    let l0 = steps[0]["loss"].as_f64().unwrap();
    for s in steps {
        let l = s["loss"].as_f64().unwrap();
        assert!(
            l.is_finite() && l - l0 <= 1e10 * (1.0 + l0.abs()),
            "loss {l}"
        );
    }
    assert!(out.join("loss.png").exists());

    let o = ff()
        .args([
            "optimize", DEMO, "--method", "gd", "--lr", "50", "--iters", "200", "--start",
            "0.1,0.15", "--json", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_stdout(&o)["trajectories"][0]["retcode"], "Unstable");
}

#[test]
fn only_is_case_insensitive_and_repeatable() {
    let o = ff()
        .args([
            "check",
            "--json",
            "--only",
            "KL-Quadratic",
            "--only",
            "fisher-forms-NORMAL,one-parameter-fisher",
        ])
        .output()
        .unwrap();
    let v = json_stdout(&o);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "fisher-forms-normal",
            "kl-quadratic",
            "one-parameter-fisher"
        ]
    );
    let o = ff()
        .args(["check", "--only", "kl-quadratic", "--only", "no-such"])
        .output()
        .unwrap();
    assert_flag_error(&o, "--only", "unknown --only");
    assert!(stderr(&o).contains("no-such"));
}
