//! `fisher-flow metric`: the geometry at one point.

use crate::cli::ModelOverrides;
use clap::Args;
use fisher_flow::config::{Experiment, Overrides, parse_pair};
use fisher_flow::inspect::PointReport;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::StatModel;
use fisher_flow::{Error, Result};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct MetricArgs {
    /// Model file (TOML)
    pub model: PathBuf,
    /// Point MU1,MU2 at which to evaluate
    #[arg(long, value_name = "MU1,MU2", allow_hyphen_values = true)]
    pub at: String,
    /// Print JSON with keys loss, gradient, fisher, eigenvalues, condition_number,
    /// natural_gradient, angle_deg [default: text]
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub overrides: ModelOverrides,
}

pub fn metric(args: &MetricArgs) -> Result<()> {
    let at = parse_pair("--at", &args.at)?;
    let ov = Overrides {
        metric: args.overrides.metric.clone(),
        damping: args.overrides.damping,
        nodes: args.overrides.nodes,
        ..Overrides::default()
    };
    let exp = Experiment::load(&args.model, &ov)?;
    let kind: MetricKind = exp.flow.metric;
    let report = PointReport::at(&exp.model, kind, exp.flow.damping, &at);
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
        println!("{text}");
    } else {
        println!("metric: {} (damping {})", kind.name(), exp.flow.damping);
        print!("{}", report.to_text(&exp.model.param_names()));
    }
    Ok(())
}
