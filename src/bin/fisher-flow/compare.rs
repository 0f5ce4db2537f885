//! `fisher-flow compare`: the same starts under several metrics and solvers, side by side.
//!
//! Writes, into `--out`: `compare.md` and `compare.json` (one row per configuration and start:
//! flow time and rhs evaluations to reach L − L* < ε, steps, rejections, rhs evaluations,
//! final L − L*, for classifiers the final accuracy, the retcode and stop reason; wall times
//! go to `timings.json` so that reruns write identical bytes) and the figures
//! `compare-plane` (mixture only: all paths in the (μ₁, μ₂) plane), `compare-loss` (L − L* vs t),
//! `compare-step` (step size vs t), `compare-kappa` (κ of the metric along each path) and, for
//! classifiers, `compare-error` (training error 1 − accuracy vs t), each as .svg and .png.
//!
//! Cost (MLP): every row also has the model flops of its metric work ([`fisher_flow::metric::cost`])
//! in total and to reach the target loss of its start (`--target-loss`, default the largest
//! final loss of all configurations from that start: the loss every one of them reached),
//! and the ratio of that cost to the cheapest configuration other than `adaptive`; the figure
//! `compare-cost` draws L against log₁₀ flops. `--refresh P1,P2,…` adds, for each held-able
//! metric of `--metrics` (exact, diagonal, block-diagonal, kfac), the variant whose metric is
//! held and refreshed every P accepted steps (`kfac@P`).

use crate::run::plane_figure;
use clap::Args;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::{OutDir, write_atomic, write_json};
use fisher_flow::flow::Simulator;
use fisher_flow::flow::SolverKind;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::{AnyModel, StatModel};
use fisher_flow::plot::{self, Dash, LegendEntry, LegendGlyph, LossFigure, Series, SeriesStyle};
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
    /// Reference optimal loss L* of the loss-gap figure and table (models without a known
    /// optimum: take it from a long, tight run) [default: the model's optimum; none: the table
    /// uses the best loss reached and the figure shows L itself]
    #[arg(long = "l-star", value_name = "X", allow_hyphen_values = true)]
    pub l_star: Option<f64>,
    /// Comma-separated refresh periods P (accepted steps): adds each held-able metric of
    /// --metrics (exact, diagonal, block-diagonal, kfac) held and refreshed every P steps,
    /// labelled METRIC@P [default: none]
    #[arg(long, value_delimiter = ',', value_name = "P1,P2,...")]
    pub refresh: Vec<usize>,
    /// Loss the "flops to target" column is measured at [default: per start, the largest
    /// final loss of all configurations]
    #[arg(long = "target-loss", value_name = "X", allow_hyphen_values = true)]
    pub target_loss: Option<f64>,
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
    /// Metric name, `METRIC@P` when held and refreshed every P steps.
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
    /// Model flops of the metric work in total (MLP; None otherwise).
    flops: Option<f64>,
    /// The loss the next two columns refer to.
    target_loss: f64,
    /// Flops spent until L ≤ target_loss first (None: never).
    flops_to_target: Option<f64>,
    /// flops_to_target / the cheapest non-adaptive configuration's from the same start.
    cost_vs_best_fixed: Option<f64>,
    stop: String,
    /// Success, Converged, MaxSteps, Unstable or SolverFailure.
    retcode: Retcode,
}

struct Run {
    label: String,
    /// Index of the configuration (metric × solver) and of the start.
    config: usize,
    start: usize,
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
    "compare-cost.svg",
    "compare-cost.png",
];

/// The configuration's name: the metric, `@P` when held and refreshed every P steps.
fn metric_label(exp: &Experiment) -> String {
    match exp.flow.metric_options.refresh {
        0 => exp.flow.metric.name().to_string(),
        p => format!("{}@{p}", exp.flow.metric.name()),
    }
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    if crate::density::is_density(&args.model) {
        return crate::density::compare(args);
    }
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
    if let Some(&p) = args
        .refresh
        .iter()
        .find(|&&p| p == 0 || p > fisher_flow::metric::provider::REFRESH_MAX)
    {
        return Err(Error::invalid(
            "--refresh",
            p,
            format!(
                "every period must be in 1..={} accepted steps",
                fisher_flow::metric::provider::REFRESH_MAX
            ),
        ));
    }
    if let Some(x) = args.target_loss
        && !x.is_finite()
    {
        return Err(Error::invalid(
            "--target-loss",
            x,
            "must be a finite number",
        ));
    }
    let starts = crate::cli::parse_starts(&args.starts)?;
    crate::run::check_l_star(args.l_star)?;
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
            configs.push(Experiment::load(&args.model, &ov).map_err(|e| {
                rename_field(e, |f| match f {
                    "--metric" => Some("--metrics"),
                    "--solver" => Some("--solvers"),
                    _ => None,
                })
            })?);
            let last = configs.len() - 1;
            let holdable = matches!(
                configs[last].flow.metric,
                MetricKind::Exact
                    | MetricKind::Diagonal
                    | MetricKind::BlockDiagonal
                    | MetricKind::Kfac
            );
            if holdable {
                for &p in &args.refresh {
                    let mut held = configs[last].clone();
                    held.flow.metric_options.refresh = p;
                    configs.push(held);
                }
            }
        }
    }
    // Build every simulator (its solver checks) before touching the output directory.
    let sims = configs
        .iter()
        .map(|exp| {
            Simulator::new(&exp.model, exp.flow.clone()).map_err(|e| {
                rename_field(e, |f| match f {
                    "flow.solver" if !args.solvers.is_empty() => Some("--solvers"),
                    "flow.metric" => Some("--metrics"),
                    "flow.rtol" if args.rtol.is_some() => Some("--rtol"),
                    "flow.atol" if args.atol.is_some() => Some("--atol"),
                    "flow.t_end" if args.t_end.is_some() => Some("--t-end"),
                    _ => None,
                })
            })
        })
        .collect::<Result<Vec<Simulator>>>()?;
    let out_dir = OutDir::open(&args.out, "--out")?;

    let mut runs: Vec<Run> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for (config, (exp, sim)) in configs.iter().zip(&sims).enumerate() {
        for (start_index, start) in exp.starts.iter().enumerate() {
            let trajectory = sim.run(start)?;
            let accuracy = match exp.model.as_mlp() {
                Some(m) if m.accuracy(start).is_some() => trajectory
                    .steps
                    .iter()
                    .filter_map(|s| m.accuracy(&s.theta).map(|a| (s.t, a)))
                    .collect(),
                _ => Vec::new(),
            };
            let mut label = format!("{}/{}", metric_label(exp), exp.flow.solver.name());
            if exp.starts.len() > 1 {
                label.push_str(&format!(
                    " from {}",
                    crate::run::start_label(start_index, start)
                ));
            }
            runs.push(Run {
                label,
                config,
                start: start_index,
                trajectory,
                accuracy,
            });
        }
    }
    // L*: the model's known optimum, else the best loss any configuration reached.
    let model = &configs[0].model;
    // The reference of the loss gap: --l-star, else the model's optimum.
    let l_ref = args.l_star.or_else(|| model.optimal_loss());
    let l_star = l_ref.unwrap_or_else(|| {
        runs.iter()
            .filter_map(|r| r.trajectory.last().map(|s| s.loss))
            .fold(f64::INFINITY, f64::min)
    });
    // The target loss of each start: --target-loss, else the largest final loss of all
    // configurations from it (every one reached it).
    let n_starts = runs.iter().map(|r| r.start + 1).max().unwrap_or(0);
    let targets: Vec<f64> = (0..n_starts)
        .map(|k| {
            args.target_loss.unwrap_or_else(|| {
                runs.iter()
                    .filter(|r| r.start == k)
                    .filter_map(|r| r.trajectory.last().map(|s| s.loss))
                    .filter(|l| l.is_finite())
                    .fold(f64::NEG_INFINITY, f64::max)
            })
        })
        .collect();
    let to_target = |r: &Run| -> Option<f64> {
        let s = r
            .trajectory
            .steps
            .iter()
            .find(|s| s.loss <= targets[r.start])?;
        (s.flops > 0.0).then_some(s.flops)
    };
    let best_fixed: Vec<Option<f64>> = (0..n_starts)
        .map(|k| {
            runs.iter()
                .filter(|r| r.start == k && configs[r.config].flow.metric != MetricKind::Adaptive)
                .filter_map(to_target)
                .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.min(c))))
        })
        .collect();
    let mut k = 0;
    for exp in &configs {
        for _ in &exp.starts {
            let r = &runs[k];
            k += 1;
            let tr = &r.trajectory;
            let first = tr.steps.iter().find(|s| s.loss - l_star < args.eps);
            let flops_to_target = to_target(r);
            rows.push(Row {
                metric: metric_label(exp),
                flops: (tr.stats.flops > 0.0).then_some(tr.stats.flops),
                target_loss: targets[r.start],
                flops_to_target,
                cost_vs_best_fixed: flops_to_target.zip(best_fixed[r.start]).map(|(a, b)| a / b),
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
        "optimal_loss_source": if args.l_star.is_some() { "--l-star" } else if model.optimal_loss().is_some() { "model" } else { "best loss reached" },
        "rows": rows,
    });
    write_json(&out.join("compare.json"), &doc)?;
    figures(args, &configs, model, &runs, l_ref)?;
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
        "| metric | solver | start | t to L−L*<{eps:e} | rhs evals to ε | steps | rejected | rhs evals | final L−L* | accuracy | flops | target L | flops to target | × best fixed | retcode | stop |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let e = |v: Option<f64>| opt(v.map(|x| format!("{x:.3e}")));
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2e} | {} | {} | {:.6} | {} | {} | {} | {} |\n",
            r.metric,
            r.solver,
            // `|` would end the table cell.
            crate::run::fmt_vec(&r.start).replace('|', "\\|"),
            opt(r.time_to_eps.map(|t| crate::cli::num(t, 4))),
            opt(r.rhs_evals_to_eps),
            r.steps,
            r.rejected,
            r.rhs_evals,
            r.final_gap,
            opt(r.final_accuracy.map(|a| format!("{a:.4}"))),
            e(r.flops),
            r.target_loss,
            e(r.flops_to_target),
            opt(r.cost_vs_best_fixed.map(|x| format!("{x:.3}"))),
            r.retcode,
            r.stop
        ));
    }
    s
}

/// Colour and line pattern of every run, and the legend explaining them: with one start,
/// colour by configuration; with several, colour by start and pattern by configuration (or the
/// other way round when there are more than four configurations but at most four starts).
/// `note(config)` is appended to a configuration's legend label.
fn styling(
    configs: &[Experiment],
    runs: &[Run],
    note: &dyn Fn(usize) -> String,
) -> (Vec<SeriesStyle>, Vec<LegendEntry>) {
    let n_starts = runs.iter().map(|r| r.start + 1).max().unwrap_or(0);
    let name = |c: usize| {
        format!(
            "{}/{}{}",
            metric_label(&configs[c]),
            configs[c].flow.solver.name(),
            note(c)
        )
    };
    let start_name = |k: usize| {
        runs.iter()
            .find(|r| r.start == k)
            .map(|r| crate::run::start_label(k, &r.trajectory.start))
            .unwrap_or_default()
    };
    let line = |label: String, colour: Option<usize>, dash: Dash| LegendEntry {
        label,
        glyph: LegendGlyph::Line(colour, dash),
    };
    if n_starts <= 1 {
        let styles = runs
            .iter()
            .map(|r| SeriesStyle {
                colour: r.config,
                dash: Dash::Solid,
            })
            .collect();
        let legend = (0..configs.len())
            .map(|c| line(name(c), Some(c), Dash::Solid))
            .collect();
        return (styles, legend);
    }
    let by_start = configs.len() <= 4 || n_starts > 4;
    let styles = runs
        .iter()
        .map(|r| {
            let (colour, dash) = if by_start {
                (r.start, r.config)
            } else {
                (r.config, r.start)
            };
            SeriesStyle {
                colour,
                dash: Dash::nth(dash),
            }
        })
        .collect();
    let mut legend = Vec::new();
    if by_start {
        legend.extend((0..n_starts).map(|k| line(start_name(k), Some(k), Dash::Solid)));
        legend.extend((0..configs.len()).map(|c| line(name(c), None, Dash::nth(c))));
    } else {
        legend.extend((0..configs.len()).map(|c| line(name(c), Some(c), Dash::Solid)));
        legend.extend((0..n_starts).map(|k| line(start_name(k), None, Dash::nth(k))));
    }
    (styles, legend)
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
    configs: &[Experiment],
    model: &AnyModel,
    runs: &[Run],
    l_ref: Option<f64>,
) -> Result<()> {
    let exp = &configs[0];
    let out = &args.out;
    let title = |what: &str| format!("{what} — {}", exp.path.display());
    let (styles, legend) = styling(configs, runs, &|_| String::new());
    let styled = |fig: LossFigure| LossFigure {
        styles: styles.clone(),
        legend: legend.clone(),
        ..fig
    };
    let loss = styled(match l_ref {
        Some(ls) => {
            let floor = crate::run::noise_floor(model, ls);
            LossFigure {
                title: title("Loss gap L − L*"),
                x_label: "t".into(),
                y_label: "L − L*".into(),
                series: series(runs, |r| {
                    r.trajectory
                        .steps
                        .iter()
                        .map(|s| (s.t, s.loss - ls))
                        .collect()
                }),
                noise_floor: Some(floor),
                noise_label: format!("noise floor {floor:.1e} (evaluation error × |L*|)"),
                ..LossFigure::default()
            }
        }
        None => {
            let positive = runs
                .iter()
                .flat_map(|r| r.trajectory.steps.iter())
                .all(|s| !s.loss.is_finite() || s.loss > 0.0);
            LossFigure {
                title: title("Loss L (no reference L*: see --l-star)"),
                x_label: "t".into(),
                y_label: "L".into(),
                series: series(runs, |r| {
                    r.trajectory.steps.iter().map(|s| (s.t, s.loss)).collect()
                }),
                linear_y: !positive,
                ..LossFigure::default()
            }
        }
    });
    let step = styled(LossFigure {
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
        ..LossFigure::default()
    });
    // κ is ∞ where the metric is singular (e.g. the exact Fisher of an over-parametrised
    // network) and NaN where it was not computed: such configurations say so in the legend.
    let kappa_note = |c: usize| {
        let ks: Vec<f64> = runs
            .iter()
            .filter(|r| r.config == c)
            .flat_map(|r| r.trajectory.steps.iter().map(|s| s.kappa))
            .collect();
        if ks.is_empty() || ks.iter().any(|k| k.is_finite()) {
            String::new()
        } else if ks.iter().all(|k| k.is_nan()) {
            " — κ not computed (n too large)".into()
        } else {
            " — κ = ∞ (singular metric), not drawn".into()
        }
    };
    let (_, kappa_legend) = styling(configs, runs, &kappa_note);
    let kappa = LossFigure {
        title: title("Condition number of the metric along each path"),
        x_label: "t".into(),
        y_label: "κ".into(),
        series: series(runs, |r| {
            r.trajectory.steps.iter().map(|s| (s.t, s.kappa)).collect()
        }),
        styles: styles.clone(),
        legend: kappa_legend,
        ..LossFigure::default()
    };
    let error = runs.iter().any(|r| !r.accuracy.is_empty()).then(|| {
        let worst = runs
            .iter()
            .flat_map(|r| r.accuracy.iter().map(|&(_, a)| 1.0 - a))
            .filter(|e| e.is_finite())
            .fold(0.0, f64::max);
        styled(LossFigure {
            title: title("Training error 1 − accuracy"),
            x_label: "t".into(),
            y_label: "1 − accuracy".into(),
            series: series(runs, |r| {
                r.accuracy.iter().map(|&(t, a)| (t, 1.0 - a)).collect()
            }),
            linear_y: true,
            y_range: Some((0.0, (1.05 * worst).clamp(0.01, 1.0))),
            ..LossFigure::default()
        })
    });
    let plane = model.as_mixture().map(|m| {
        let trajectories: Vec<Trajectory> = runs.iter().map(|r| r.trajectory.clone()).collect();
        let mut fig = plane_figure(exp, m, &trajectories);
        fig.title = crate::run::plane_title("Compared flows", m);
        for (s, r) in fig.trajectories.iter_mut().zip(runs) {
            s.label = r.label.clone();
        }
        // Colour by start, pattern by configuration, as in the other figures.
        fig.styles = styles.clone();
        fig.legend = legend.clone();
        fig
    });
    // L against the metric work (MLP flows: model flops, log scale on the axis)
    let cost = runs
        .iter()
        .any(|r| r.trajectory.stats.flops > 0.0)
        .then(|| {
            styled(LossFigure {
                title: title("Loss against cost"),
                x_label: "log₁₀ flops (cost model)".into(),
                y_label: "L".into(),
                series: series(runs, |r| {
                    r.trajectory
                        .steps
                        .iter()
                        .filter(|s| s.flops > 0.0)
                        .map(|s| (s.flops.log10(), s.loss))
                        .collect()
                }),
                linear_y: runs
                    .iter()
                    .flat_map(|r| r.trajectory.steps.iter())
                    .any(|s| s.loss.is_finite() && s.loss <= 0.0),
                ..LossFigure::default()
            })
        });
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("compare-loss.{ext}")), &loss)?;
        if let Some(c) = &cost {
            plot::loss(&out.join(format!("compare-cost.{ext}")), c)?;
        }
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

/// An `Invalid` error with its field renamed where `rename` says so (errors then name
/// compare's own flags); other errors unchanged.
fn rename_field(e: Error, rename: impl Fn(&str) -> Option<&'static str>) -> Error {
    match e {
        Error::Invalid {
            field,
            value,
            expected,
        } => Error::Invalid {
            field: rename(&field).map_or(field, str::to_string),
            value,
            expected,
        },
        other => other,
    }
}
