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

//!
//! The comparison itself (cases, rows, columns, figures) is [`fisher_flow::study::compare`];
//! this file parses the flags, prints and writes `timings.json`.

use clap::Args;
use fisher_flow::config::Overrides;
use fisher_flow::export::{OutDir, write_json};
use fisher_flow::flow::SolverKind;
use fisher_flow::metric::MetricKind;
use fisher_flow::study::compare::Comparison;
use fisher_flow::trajectory::Trajectory;
use fisher_flow::{Error, Result};
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
    let base = Overrides {
        rtol: args.rtol,
        atol: args.atol,
        t_end: args.t_end,
        starts,
        ..Overrides::default()
    };
    // Validate every configuration before computing anything; errors name compare's own
    // flags (--metrics, --solvers).
    let configs = Comparison::configurations(
        &args.model,
        &args.metrics,
        &args.solvers,
        &args.refresh,
        &base,
    )
    .map_err(|e| {
        rename_field(e, |f| match f {
            "--metric" => Some("--metrics"),
            "--solver" => Some("--solvers"),
            _ => None,
        })
    })?;
    let comparison = Comparison::new(configs)
        .eps(args.eps)
        .l_star(args.l_star)
        .target_loss(args.target_loss);
    // Every simulator (its solver checks) before touching the output directory.
    comparison.check().map_err(|e| {
        rename_field(e, |f| match f {
            "flow.solver" if !args.solvers.is_empty() => Some("--solvers"),
            "flow.metric" => Some("--metrics"),
            "flow.rtol" if args.rtol.is_some() => Some("--rtol"),
            "flow.atol" if args.atol.is_some() => Some("--atol"),
            "flow.t_end" if args.t_end.is_some() => Some("--t-end"),
            _ => None,
        })
    })?;
    let out_dir = OutDir::open(&args.out, "--out")?;
    let report = comparison.run(&[])?;

    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    report.write(out)?;
    let wall = report.wall_seconds();
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({
            "command": "compare",
            "total_seconds": clock.elapsed().as_secs_f64(),
            "row_wall_seconds": wall,
        }),
    )?;
    if args.json {
        let mut doc = report.json();
        if let Some(map) = doc.as_object_mut() {
            map.insert("command".into(), serde_json::json!("compare"));
            map.insert("succeeded".into(), serde_json::json!(report.succeeded()));
            map.insert("out".into(), serde_json::json!(out.display().to_string()));
        }
        crate::cli::print_json(&doc)?;
    } else {
        print!("{}", report.markdown());
        let ms: Vec<String> = wall.iter().map(|w| format!("{:.1}", w * 1e3)).collect();
        println!("wall ms per row: {} (in timings.json)", ms.join(", "));
        println!(
            "wrote {} (compare.md/json, timings.json and figures)",
            out.display()
        );
    }
    let trajectories: Vec<Trajectory> = report.runs.into_iter().map(|r| r.trajectory).collect();
    crate::run::unfinished(&trajectories)
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
