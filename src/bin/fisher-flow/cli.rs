//! Command-line definitions (clap). Every flag documents its default.

use clap::{Args, Parser, Subcommand};
use fisher_flow::config::Overrides;

/// Natural-gradient (Fisher) flows on statistical manifolds, integrated as ODEs.
///
/// With no subcommand, runs the default demo: `run models/gmm-seed.toml --out output`.
#[derive(Parser, Debug)]
#[command(name = "fisher-flow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Integrate the flow from every start of a model file; write trajectories, certificate, plots.
    Run(crate::run::RunArgs),
    /// Print loss, gradient, Fisher matrix, eigenvalues, κ, natural gradient and their angle at a point.
    Metric(crate::metric::MetricArgs),
    /// Discrete baselines (gd, fisher-diag, ngd with optional Levenberg–Marquardt damping), t = iteration.
    Optimize(crate::optimize::OptimizeArgs),
    /// Integrate an N×N grid of starts (minus the diagonal) in parallel; write field.csv and a summary.
    Field(crate::field::FieldArgs),
    /// Compare metrics and solvers from the same starts: overlaid paths, loss gap, step size, κ, and a table.
    Compare(crate::compare::CompareArgs),
    /// Draw the Fisher-manifold figure: ellipses, κ or angle heat map, probes, flow particles;
    /// optionally an animated GIF of the flow.
    Manifold(crate::manifold::ManifoldArgs),
    /// Serve the interactive manifold page on 127.0.0.1 (ellipses, κ/angle, probes, live particles, exports).
    Explore(crate::explore::ExploreArgs),
    /// Run a convergence study over many settings (SPEC: base model × axes), optionally one
    /// shard of it (--shard K/N, --resume); `sweep merge DIR` merges the shards.
    Sweep(crate::sweep::SweepArgs),
    /// Re-check a certificate independently: exit 0 if all claims hold, 1 if one fails, 2 for bad input.
    Verify(crate::verify::VerifyArgs),
    /// Run the theory property suite: one row per property, exit 1 if any fails.
    Check(crate::check::CheckArgs),
}

/// Settings shared by subcommands that evaluate a model.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelOverrides {
    /// Metric: exact | euclidean | sampled | empirical | diagonal | block-diagonal | kfac
    /// (settings in the model file's [metric]) [default: the model file's flow.metric, else exact]
    #[arg(long)]
    pub metric: Option<String>,
    /// Tikhonov damping λ ≥ 0 added to the metric [default: the file's flow.damping, else 0]
    #[arg(long)]
    pub damping: Option<f64>,
    /// Use K-node Gauss–Hermite quadrature per component instead of the accurate composite rule
    /// [default: the file's [quadrature], else composite Gauss–Legendre]
    #[arg(long, value_name = "K")]
    pub nodes: Option<usize>,
}

impl ModelOverrides {
    /// These flags as the library's overrides (the other fields unset).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            metric: self.metric.clone(),
            damping: self.damping,
            nodes: self.nodes,
            ..Overrides::default()
        }
    }
}

/// `--nodes` sets the mixture's quadrature: refuse it (instead of ignoring it) for models
/// without one.
pub fn check_nodes(
    exp: &fisher_flow::config::Experiment,
    nodes: Option<usize>,
) -> fisher_flow::Result<()> {
    match nodes {
        Some(k) if exp.model.as_mixture().is_none() => Err(fisher_flow::Error::invalid(
            "--nodes",
            k,
            "quadrature applies to the gaussian-mixture family only",
        )),
        _ => Ok(()),
    }
}

/// The `--start MU1,MU2` values, parsed.
pub fn parse_starts(starts: &[String]) -> fisher_flow::Result<Vec<Vec<f64>>> {
    starts
        .iter()
        .map(|s| fisher_flow::config::parse_pair("--start", s))
        .collect()
}

/// Integration settings shared by subcommands that run flows.
#[derive(Args, Debug, Clone, Default)]
pub struct FlowOverrides {
    /// ODE solver: tsit45 | bdf | tr-bdf2 | esdirk34 | auto [default: the file's flow.solver, else tsit45]
    #[arg(long)]
    pub solver: Option<String>,
    /// Relative tolerance [default: the file's flow.rtol, else 1e-8]
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance [default: the file's flow.atol, else 1e-10]
    #[arg(long)]
    pub atol: Option<f64>,
    /// End time of the integration [default: the file's flow.t_end, else 20]
    #[arg(long = "t-end")]
    pub t_end: Option<f64>,
}

/// Output control of `run` (diffrax's SaveAt): which accepted steps are recorded.
#[derive(Args, Debug, Clone, Default)]
pub struct SaveOverrides {
    /// Record every N-th accepted step and the last [default: the file's flow.save_every, else 1]
    #[arg(long = "save-every", value_name = "N")]
    pub save_every: Option<usize>,
    /// Record θ at these times T1,T2,… (dense output) plus start and end, instead of every step [default: the file's flow.save_at, else every step]
    #[arg(long = "save-at", value_name = "T1,T2,...", value_delimiter = ',')]
    pub save_at: Option<Vec<f64>>,
}

/// The third-order correction of `run` (README "Third-order geometry").
#[derive(Args, Debug, Clone, Default)]
pub struct CorrectionOverrides {
    /// Flow order: none (the natural flow) | geodesic-acceleration (capped Transtrum–Sethna correction; exact metric; mixture undamped, MLP with a fixed damping) [default: the file's flow.correction, else none]
    #[arg(long, value_name = "NAME")]
    pub correction: Option<String>,
    /// α of the correction's connection, in [-10, 10] (0 Levi-Civita, 1 e-, -1 m-connection) [default: the file's flow.correction_alpha, else 0]
    #[arg(
        long = "correction-alpha",
        value_name = "A",
        allow_hyphen_values = true
    )]
    pub correction_alpha: Option<f64>,
    /// Time scale τ of the geodesic secant, in [1e-12, 1e3] [default: the file's flow.correction_tau, else 1]
    #[arg(long = "correction-tau", value_name = "T")]
    pub correction_tau: Option<f64>,
}

impl CorrectionOverrides {
    /// `ov` with these flags set.
    pub fn apply(&self, ov: Overrides) -> Overrides {
        Overrides {
            correction: self.correction.clone(),
            correction_alpha: self.correction_alpha,
            correction_tau: self.correction_tau,
            ..ov
        }
    }
}

impl FlowOverrides {
    /// `ov` with these flags set.
    pub fn apply(&self, ov: Overrides) -> Overrides {
        Overrides {
            solver: self.solver.clone(),
            rtol: self.rtol,
            atol: self.atol,
            t_end: self.t_end,
            ..ov
        }
    }
}

impl SaveOverrides {
    /// `ov` with these flags set.
    pub fn apply(&self, ov: Overrides) -> Overrides {
        Overrides {
            save_every: self.save_every,
            save_at: self.save_at.clone(),
            ..ov
        }
    }
}

/// Name the flag instead of the file field in an `Invalid` error when a flag set that field
/// (errors raised after loading, e.g. by the simulator's solver checks).
pub fn blame_flag(e: fisher_flow::Error, ov: &Overrides) -> fisher_flow::Error {
    match e {
        fisher_flow::Error::Invalid {
            field,
            value,
            expected,
        } => fisher_flow::Error::Invalid {
            field: ov.flag_for(&field).map(str::to_string).unwrap_or(field),
            value,
            expected,
        },
        other => other,
    }
}

/// Every file name a fisher-flow command writes into an output directory. Before a command
/// writes, it removes these (from whichever command wrote them), so a directory never holds
/// files of two different runs; files with other names are left alone.
pub fn known_outputs() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = crate::run::RUN_OUTPUTS
        .iter()
        .chain(crate::optimize::OPTIMIZE_OUTPUTS)
        .chain(crate::field::FIELD_OUTPUTS)
        .chain(crate::compare::COMPARE_OUTPUTS)
        .chain(crate::density::DENSITY_OUTPUTS)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Whether `--json` is active: human-readable lines then go to stderr, so that stdout carries
/// exactly one JSON document.
static JSON_MODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switch human-readable output to stderr (`--json`).
pub fn set_json_mode(on: bool) {
    JSON_MODE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Print a human-readable line: on stdout, or on stderr under `--json`.
pub fn say(line: impl std::fmt::Display) {
    if JSON_MODE.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Print `value` as the one JSON document on stdout.
pub fn print_json(value: &serde_json::Value) -> fisher_flow::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| fisher_flow::Error::Numerical(format!("JSON encoding failed: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A number for a summary line: `digits` decimals in fixed notation for 1e-4 ≤ |v| < 1e6 (and
/// 0), scientific notation otherwise, so that 3e307 never prints as 308 digits.
pub fn num(v: f64, digits: usize) -> String {
    if v == 0.0 || (v.is_finite() && (1e-4..1e6).contains(&v.abs())) {
        format!("{v:.digits$}")
    } else if v.is_finite() {
        format!("{v:.digits$e}")
    } else {
        format!("{v}")
    }
}

/// A user-given number in shortest form: plain for 1e-4 ≤ |v| < 1e6 (and 0), else with an
/// exponent (`{}` of 1e300 would print 301 digits).
pub fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Move every `stats.wall_time` out of serialized trajectories (so that outputs of two
/// identical runs are byte-identical) and return them in order, for `timings.json`.
pub fn take_wall_times(trajectories: &mut serde_json::Value) -> Vec<serde_json::Value> {
    let mut times = Vec::new();
    if let Some(list) = trajectories.as_array_mut() {
        for t in list {
            let w = t
                .get_mut("stats")
                .and_then(|s| s.as_object_mut())
                .and_then(|s| s.remove("wall_time"))
                .unwrap_or(serde_json::Value::Null);
            times.push(w);
        }
    }
    times
}

/// One trajectory of a `--json` summary: start, end, final loss (and L − L*), final t, return
/// code, stop reason and the statistics (wall time excluded: it is in `timings.json`).
pub fn trajectory_summary(
    i: usize,
    tr: &fisher_flow::trajectory::Trajectory,
    l_star: Option<f64>,
) -> serde_json::Value {
    let last = tr.last();
    let loss = last.map(|s| s.loss);
    let mut stats = serde_json::json!(tr.stats);
    if let Some(s) = stats.as_object_mut() {
        s.remove("wall_time");
    }
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    serde_json::json!({
        "index": i,
        "start": tr.start,
        "end": last.map(|s| s.theta.clone()),
        "t": last.map(|s| s.t),
        "loss": finite(loss),
        "loss_gap": finite(loss.zip(l_star).map(|(l, s)| l - s)),
        "retcode": tr.retcode(),
        "stop": tr.stop.to_string(),
        "stats": stats,
    })
}
