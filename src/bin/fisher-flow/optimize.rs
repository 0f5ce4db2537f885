//! `fisher-flow optimize`: discrete baselines (gd, fisher-diag, ngd with optional
//! Levenberg–Marquardt damping) from every start; same outputs as `run` with t = iteration.

use crate::cli::ModelOverrides;
use crate::cli::{num, take_wall_times};
use crate::run::{fmt_vec, loss_figure, plane_figure, unfinished};
use clap::Args;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::{OutDir, trajectories_csv, write_atomic, write_json};
use fisher_flow::model::StatModel;
use fisher_flow::optimize::{Method, OptimizeSettings, optimize as run_method};
use fisher_flow::plot;
use fisher_flow::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct OptimizeArgs {
    /// Model file (TOML)
    pub model: PathBuf,
    /// Method: gd | fisher-diag | ngd
    #[arg(long, default_value = "ngd")]
    pub method: String,
    /// Learning rate [default: 0.1 for gd and fisher-diag, 1 for ngd]
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Number of iterations
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Levenberg–Marquardt adaptive damping (ngd only): raise λ when ρ < 0.25, lower when ρ > 0.75 [default: off]
    #[arg(long)]
    pub lm: bool,
    /// ε added to the Fisher diagonal by fisher-diag
    #[arg(long, default_value_t = 1e-8, allow_hyphen_values = true)]
    pub eps: f64,
    /// Start point MU1,MU2; repeat for several [default: the file's flow.starts]
    #[arg(long = "start", value_name = "MU1,MU2", allow_hyphen_values = true)]
    pub starts: Vec<String>,
    /// Output directory (created if missing)
    #[arg(long, default_value = "output/optimize")]
    pub out: PathBuf,
    #[command(flatten)]
    pub overrides: ModelOverrides,
    /// Do not print the per-start summary
    #[arg(long, short)]
    pub quiet: bool,
    /// Print one JSON summary on stdout (per start: end, loss, retcode, stop reason,
    /// statistics) instead of the text summary [default: text]
    #[arg(long)]
    pub json: bool,
}

/// Every file `optimize` may write into `--out`.
pub const OPTIMIZE_OUTPUTS: &[&str] = &[
    "trajectory.csv",
    "trajectory.json",
    "trajectory.svg",
    "trajectory.png",
    "loss.svg",
    "loss.png",
    "timings.json",
];

pub fn optimize(args: &OptimizeArgs) -> Result<()> {
    let clock = Instant::now();
    crate::cli::set_json_mode(args.json);
    let starts = crate::cli::parse_starts(&args.starts)?;
    let method = Method::parse("--method", &args.method)?;
    let ov = Overrides {
        starts,
        ..args.overrides.overrides()
    };
    let exp = Experiment::load(&args.model, &ov)?;
    crate::cli::check_nodes(&exp, args.overrides.nodes)?;
    let settings = OptimizeSettings {
        method,
        lr: args.lr.unwrap_or(method.default_lr()),
        iters: args.iters,
        metric: exp.flow.metric,
        damping: if args.lm && exp.flow.damping == 0.0 {
            1e-3
        } else {
            exp.flow.damping
        },
        lm: args.lm,
        eps: args.eps,
        grad_tol: exp.flow.grad_tol,
    };
    settings.validate()?;
    let out_dir = OutDir::open(&args.out, "--out")?;
    let model = &exp.model;
    let outcomes = exp
        .starts
        .iter()
        .map(|s| run_method(model, &settings, s))
        .collect::<Result<Vec<_>>>()?;
    let trajectories: Vec<_> = outcomes.iter().map(|o| o.trajectory.clone()).collect();
    let l_star = model.optimal_loss();
    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    write_atomic(
        &out.join("trajectory.csv"),
        trajectories_csv(&trajectories).as_bytes(),
    )?;
    let mut traj_json = serde_json::json!(trajectories);
    let wall_times = take_wall_times(&mut traj_json);
    write_json(
        &out.join("trajectory.json"),
        &serde_json::json!({
            "model_file": exp.path.display().to_string(),
            "model_sha256": exp.file_hash,
            "discrete": settings,
            "time_axis": "iteration",
            "quadrature": model.describe(),
            "optimal_loss": l_star,
            "optima": model.optima(),
            "damping": outcomes.iter().map(|o| o.damping.clone()).collect::<Vec<_>>(),
            "trajectories": traj_json,
        }),
    )?;
    let what = format!(
        "{} (lr {})",
        crate::run::method_title(method, settings.metric),
        crate::cli::short(settings.lr)
    );
    let plane = exp.model.as_mixture().map(|m| {
        let mut p = plane_figure(&exp, m, &trajectories);
        p.title = crate::run::plane_title(&what, m);
        p
    });
    let mut loss = loss_figure(&exp, &trajectories, l_star);
    loss.title = match l_star {
        Some(_) => format!("Loss gap of {}", crate::run::lower_first(&what)),
        None => format!("Loss of {}", crate::run::lower_first(&what)),
    };
    loss.x_label = "iteration".into();
    for ext in ["svg", "png"] {
        if let Some(plane) = &plane {
            plot::plane(&out.join(format!("trajectory.{ext}")), plane)?;
        }
        plot::loss(&out.join(format!("loss.{ext}")), &loss)?;
    }
    let total = clock.elapsed().as_secs_f64();
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({
            "command": "optimize",
            "total_seconds": total,
            "trajectory_wall_seconds": wall_times,
        }),
    )?;
    if args.json {
        let list: Vec<serde_json::Value> = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut v = crate::cli::trajectory_summary(i, &o.trajectory, l_star);
                if let Some(map) = v.as_object_mut() {
                    map.insert(
                        "final_damping".into(),
                        serde_json::json!(o.damping.last().copied()),
                    );
                }
                v
            })
            .collect();
        crate::cli::print_json(&serde_json::json!({
            "command": "optimize",
            "model_file": exp.path.display().to_string(),
            "model_sha256": exp.file_hash,
            "discrete": settings,
            "optimal_loss": l_star,
            "succeeded": trajectories.iter().all(|t| t.succeeded()),
            "trajectories": list,
            "out": out.display().to_string(),
        }))?;
        return unfinished(&trajectories);
    }
    if !args.quiet {
        println!(
            "model {} | method {} | lr {} | lm {} | metric {}",
            exp.path.display(),
            method.name(),
            crate::cli::short(settings.lr),
            settings.lm,
            settings.metric.name()
        );
        for (i, o) in outcomes.iter().enumerate() {
            let tr = &o.trajectory;
            let last = tr
                .last()
                .ok_or_else(|| Error::Numerical("empty trajectory".into()))?;
            let gap = l_star
                .map(|l| format!(" (L-L* {:.2e})", last.loss - l))
                .unwrap_or_default();
            println!(
                "[{i}] start {} -> end {} | loss {}{gap} | iterations {} | accepted {} | rejected {} | gradient evals {} | final lambda {:.3e} | {} | {} | {:.1} ms",
                fmt_vec(&tr.start),
                fmt_vec(&last.theta),
                num(last.loss, 12),
                last.t,
                tr.stats.accepted,
                tr.stats.rejected,
                tr.stats.rhs_evals,
                o.damping.last().copied().unwrap_or(0.0),
                tr.retcode(),
                tr.stop,
                tr.stats.wall_time * 1e3
            );
        }
    }
    println!(
        "wrote {} (trajectory.csv/json, trajectory.svg/png, loss.svg/png, timings.json) | total wall time {:.3} s",
        out.display(),
        total
    );
    unfinished(&trajectories)
}
