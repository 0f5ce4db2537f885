//! Command-line definitions (clap). Every flag documents its default.

use clap::{Args, Parser, Subcommand};

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
