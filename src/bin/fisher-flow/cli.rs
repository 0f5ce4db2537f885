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
    /// Record every N-th accepted step and the last [default: the file's flow.save_every, else 1]
    #[arg(long = "save-every", value_name = "N")]
    pub save_every: Option<usize>,
    /// Record θ at these times T1,T2,… (dense output) plus start and end, instead of every step [default: the file's flow.save_at, else every step]
    #[arg(long = "save-at", value_name = "T1,T2,...", value_delimiter = ',')]
    pub save_at: Option<Vec<f64>>,
}

impl FlowOverrides {
    /// `ov` with these flags set.
    pub fn apply(&self, ov: Overrides) -> Overrides {
        Overrides {
            solver: self.solver.clone(),
            rtol: self.rtol,
            atol: self.atol,
            t_end: self.t_end,
            save_every: self.save_every,
            save_at: self.save_at.clone(),
            ..ov
        }
    }
}
