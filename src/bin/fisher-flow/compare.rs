//! `fisher-flow compare`: the same starts under several metrics and solvers, side by side.
//!
//! Writes, into `--out`: `compare.md` and `compare.json` (one row per configuration and start:
//! flow time and rhs evaluations to reach L − L* < ε, steps, rejections, rhs evaluations,
//! final L − L*, for classifiers the final accuracy, the retcode and stop reason; wall times
//! go to `timings.json` so that reruns write identical bytes) and the figures
//! `compare-plane` (mixture only: all paths in the (μ₁, μ₂) plane), `compare-loss` (L − L* vs t),
//! `compare-step` (step size vs t), `compare-kappa` (κ of the metric along each path) and, for
//! classifiers, `compare-error` (training error 1 − accuracy vs t), each as .svg and .png.

use crate::run::plane_figure;
use clap::Args;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::{OutDir, write_atomic, write_json};
use fisher_flow::flow::Simulator;
use fisher_flow::flow::SolverKind;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{AnyModel, StatModel};
use fisher_flow::plot::{self, LossFigure, Series};
use fisher_flow::trajectory::Retcode;
use fisher_flow::trajectory::Trajectory;
use fisher_flow::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Model file (TOML)
    pub model: PathBuf,
    /// Comma-separated metrics to compare (exact, euclidean, sampled, empirical, diagonal,
    /// block-diagonal, kfac)
    #[arg(long, value_delimiter = ',', default_value = "exact,euclidean")]
    pub metrics: Vec<String>,
    /// Comma-separated solvers (tsit45, bdf, tr-bdf2, esdirk34, auto) [default: the file's
    /// flow.solver]
    #[arg(long, value_delimiter = ',')]
    pub solvers: Vec<String>,
    /// Start point MU1,MU2 (mixture); repeat for several [default: the file's flow.starts]
    #[arg(long = "start", value_name = "MU1,MU2", allow_hyphen_values = true)]
    pub starts: Vec<String>,
    /// Threshold ε of the "time to reach L − L* < ε" columns
    #[arg(long, default_value_t = 1e-6)]
    pub eps: f64,
    /// End time [default: the file's flow.t_end, else 20]
    #[arg(long = "t-end")]
    pub t_end: Option<f64>,
    /// Relative tolerance [default: the file's flow.rtol, else 1e-8]
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance [default: the file's flow.atol, else 1e-10]
    #[arg(long)]
    pub atol: Option<f64>,
    /// Output directory (created if missing)
    #[arg(long, default_value = "output/compare")]
    pub out: PathBuf,
    /// Print one JSON summary on stdout (the compare.json keys plus succeeded and out) instead
    /// of the table [default: text]
    #[arg(long)]
    pub json: bool,
}

/// One configuration run from one start.
#[derive(Debug, Serialize)]
struct Row {
    metric: String,
    solver: String,
    start: Vec<f64>,
    /// Flow time at which L − L* first falls below ε (None: never).
    time_to_eps: Option<f64>,
    /// rhs evaluations spent until then.
    rhs_evals_to_eps: Option<usize>,
    steps: usize,
    rejected: usize,
    rhs_evals: usize,
    final_gap: f64,
    final_accuracy: Option<f64>,
    stop: String,
    /// Success, Converged, MaxSteps, Unstable or SolverFailure.
    retcode: Retcode,
}

struct Run {
    label: String,
    trajectory: Trajectory,
    accuracy: Vec<(f64, f64)>,
}

/// Every file `compare` may write into `--out`.
pub const COMPARE_OUTPUTS: &[&str] = &[
    "compare.md",
    "compare.json",
    "timings.json",
    "compare-loss.svg",
    "compare-loss.png",
    "compare-step.svg",
    "compare-step.png",
    "compare-kappa.svg",
    "compare-kappa.png",
    "compare-error.svg",
    "compare-error.png",
    "compare-plane.svg",
    "compare-plane.png",
];

pub fn compare(args: &CompareArgs) -> Result<()> {
    let clock = std::time::Instant::now();
    crate::cli::set_json_mode(args.json);
    if !(args.eps.is_finite() && args.eps > 0.0) {
        return Err(Error::invalid(
            "--eps",
            args.eps,
            "must be a finite number > 0",
        ));
    }
    if args.metrics.is_empty() {
        return Err(Error::invalid(
            "--metrics",
            "''",
            "give at least one metric",
        ));
    }
    // The lists are checked here so that an error names the flag the user typed.
    for m in &args.metrics {
        MetricKind::parse("--metrics", m)?;
    }
    for s in &args.solvers {
        SolverKind::parse("--solvers", s)?;
    }
    let starts = crate::cli::parse_starts(&args.starts)?;
    let solvers: Vec<Option<String>> = if args.solvers.is_empty() {
        vec![None]
    } else {
        args.solvers.iter().cloned().map(Some).collect()
    };
    // Validate every configuration before computing anything.
    let mut configs = Vec::new();
    for metric in &args.metrics {
        for solver in &solvers {
            let ov = Overrides {
                metric: Some(metric.clone()),
                solver: solver.clone(),
                rtol: args.rtol,
                atol: args.atol,
                t_end: args.t_end,
                starts: starts.clone(),
                ..Overrides::default()
            };
            // Errors name compare's own flags (--metrics, --solvers).
            configs.push(Experiment::load(&args.model, &ov).map_err(|e| match e {
                Error::Invalid {
                    field,
                    value,
                    expected,
                } => Error::Invalid {
                    field: match field.as_str() {
                        "--metric" => "--metrics".into(),
                        "--solver" => "--solvers".into(),
                        _ => field,
                    },
                    value,
                    expected,
                },
                other => other,
            })?);
        }
    }
    // Build every simulator (its solver checks) before touching the output directory.
    let sims = configs
        .iter()
        .map(|exp| {
            Simulator::new(&exp.model, exp.flow.clone()).map_err(|e| match e {
                Error::Invalid {
                    field,
                    value,
                    expected,
                } => Error::Invalid {
                    field: match field.as_str() {
                        "flow.solver" if !args.solvers.is_empty() => "--solvers".into(),
                        "flow.metric" => "--metrics".into(),
                        f if f == "flow.rtol" && args.rtol.is_some() => "--rtol".into(),
                        f if f == "flow.atol" && args.atol.is_some() => "--atol".into(),
                        f if f == "flow.t_end" && args.t_end.is_some() => "--t-end".into(),
                        _ => field,
                    },
                    value,
                    expected,
                },
                other => other,
            })
        })
        .collect::<Result<Vec<Simulator>>>()?;
    let out_dir = OutDir::open(&args.out, "--out")?;

    let mut runs: Vec<Run> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for (exp, sim) in configs.iter().zip(&sims) {
        for start in &exp.starts {
            let trajectory = sim.run(start)?;
            let accuracy = match exp.model.as_mlp() {
                Some(m) if m.accuracy(start).is_some() => trajectory
                    .steps
                    .iter()
                    .filter_map(|s| m.accuracy(&s.theta).map(|a| (s.t, a)))
                    .collect(),
                _ => Vec::new(),
            };
            let mut label = format!("{}/{}", exp.flow.metric.name(), exp.flow.solver.name());
            if exp.starts.len() > 1 {
                label.push_str(&format!(
                    " from {}",
                    crate::run::start_label(runs.len(), start)
                ));
            }
            runs.push(Run {
                label,
                trajectory,
                accuracy,
            });
        }
    }
    // L*: the model's known optimum, else the best loss any configuration reached.
    let model = &configs[0].model;
    let l_star = model.optimal_loss().unwrap_or_else(|| {
        runs.iter()
            .filter_map(|r| r.trajectory.last().map(|s| s.loss))
            .fold(f64::INFINITY, f64::min)
    });
    let mut k = 0;
    for exp in &configs {
        for _ in &exp.starts {
            let r = &runs[k];
            k += 1;
            let tr = &r.trajectory;
            let first = tr.steps.iter().find(|s| s.loss - l_star < args.eps);
            rows.push(Row {
                metric: exp.flow.metric.name().into(),
                solver: exp.flow.solver.name().into(),
                start: tr.start.clone(),
                time_to_eps: tr.time_to_reach(l_star, args.eps),
                rhs_evals_to_eps: first.map(|s| s.rhs_evals),
                steps: tr.stats.accepted,
                rejected: tr.stats.rejected,
                rhs_evals: tr.stats.rhs_evals,
                final_gap: tr.last().map(|s| s.loss - l_star).unwrap_or(f64::NAN),
                final_accuracy: r.accuracy.last().map(|&(_, a)| a),
                stop: tr.stop.to_string(),
                retcode: tr.retcode(),
            });
        }
    }

    let table = markdown(&rows, args.eps);
    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    write_atomic(&out.join("compare.md"), table.as_bytes())?;
    let doc = serde_json::json!({
        "model_file": configs[0].path.display().to_string(),
        "model_sha256": configs[0].file_hash,
        "eps": args.eps,
        "optimal_loss": l_star,
        "optimal_loss_source": if model.optimal_loss().is_some() { "model" } else { "best loss reached" },
        "rows": rows,
    });
    write_json(&out.join("compare.json"), &doc)?;
    figures(args, &configs[0], model, &runs, l_star)?;
    let wall: Vec<f64> = runs.iter().map(|r| r.trajectory.stats.wall_time).collect();
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({
            "command": "compare",
            "total_seconds": clock.elapsed().as_secs_f64(),
            "row_wall_seconds": wall,
        }),
    )?;
    let all_ok = rows.iter().all(|r| r.retcode.is_success());
    if args.json {
        let mut doc = doc;
        if let Some(map) = doc.as_object_mut() {
            map.insert("command".into(), serde_json::json!("compare"));
            map.insert("succeeded".into(), serde_json::json!(all_ok));
            map.insert("out".into(), serde_json::json!(out.display().to_string()));
        }
        crate::cli::print_json(&doc)?;
    } else {
        print!("{table}");
        let ms: Vec<String> = wall.iter().map(|w| format!("{:.1}", w * 1e3)).collect();
        println!("wall ms per row: {} (in timings.json)", ms.join(", "));
        println!(
            "wrote {} (compare.md/json, timings.json and figures)",
            out.display()
        );
    }
    let trajectories: Vec<Trajectory> = runs.into_iter().map(|r| r.trajectory).collect();
    crate::run::unfinished(&trajectories)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "—".into())
}

fn markdown(rows: &[Row], eps: f64) -> String {
    let mut s = format!(
        "| metric | solver | start | t to L−L*<{eps:e} | rhs evals to ε | steps | rejected | rhs evals | final L−L* | accuracy | retcode | stop |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2e} | {} | {} | {} |\n",
            r.metric,
            r.solver,
            crate::run::fmt_vec(&r.start),
            opt(r.time_to_eps.map(|t| crate::cli::num(t, 4))),
            opt(r.rhs_evals_to_eps),
            r.steps,
            r.rejected,
            r.rhs_evals,
            r.final_gap,
            opt(r.final_accuracy.map(|a| format!("{a:.4}"))),
            r.retcode,
            r.stop
        ));
    }
    s
}

fn series(runs: &[Run], f: impl Fn(&Run) -> Vec<(f64, f64)>) -> Vec<Series> {
    runs.iter()
        .map(|r| Series {
            label: r.label.clone(),
            points: f(r),
        })
        .collect()
}

fn figures(
    args: &CompareArgs,
    exp: &Experiment,
    model: &AnyModel,
    runs: &[Run],
    l_star: f64,
) -> Result<()> {
    let out = &args.out;
    let title = |what: &str| format!("{what} — {}", exp.path.display());
    let loss = LossFigure {
        title: title("Loss gap L − L*"),
        x_label: "t".into(),
        y_label: "L − L*".into(),
        series: series(runs, |r| {
            r.trajectory
                .steps
                .iter()
                .map(|s| (s.t, s.loss - l_star))
                .collect()
        }),
    };
    let step = LossFigure {
        title: title("Accepted step size"),
        x_label: "t".into(),
        y_label: "step size h".into(),
        series: series(runs, |r| {
            r.trajectory
                .steps
                .iter()
                .skip(1)
                .map(|s| (s.t, s.step_size))
                .collect()
        }),
    };
    let kappa = LossFigure {
        title: title("Condition number of the metric along each path"),
        x_label: "t".into(),
        y_label: "κ".into(),
        series: series(runs, |r| {
            r.trajectory.steps.iter().map(|s| (s.t, s.kappa)).collect()
        }),
    };
    let error = runs
        .iter()
        .any(|r| !r.accuracy.is_empty())
        .then(|| LossFigure {
            title: title("Training error 1 − accuracy"),
            x_label: "t".into(),
            y_label: "1 − accuracy".into(),
            series: series(runs, |r| {
                r.accuracy.iter().map(|&(t, a)| (t, 1.0 - a)).collect()
            }),
        });
    let plane = model.as_mixture().map(|m| {
        let trajectories: Vec<Trajectory> = runs.iter().map(|r| r.trajectory.clone()).collect();
        let mut fig = plane_figure(exp, m, &trajectories);
        fig.title = format!(
            "Compared flows, σ = {}, w = {}, target ({}, {})",
            m.sigma, m.w, m.target[0], m.target[1]
        );
        for (s, r) in fig.trajectories.iter_mut().zip(runs) {
            s.label = r.label.clone();
        }
        fig
    });
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("compare-loss.{ext}")), &loss)?;
        plot::loss(&out.join(format!("compare-step.{ext}")), &step)?;
        plot::loss(&out.join(format!("compare-kappa.{ext}")), &kappa)?;
        if let Some(e) = &error {
            plot::loss(&out.join(format!("compare-error.{ext}")), e)?;
        }
        if let Some(p) = &plane {
            plot::plane(&out.join(format!("compare-plane.{ext}")), p)?;
        }
    }
    Ok(())
}
