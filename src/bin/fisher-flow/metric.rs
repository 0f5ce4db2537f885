//! `fisher-flow metric`: the geometry at one point.

use crate::cli::ModelOverrides;
use clap::Args;
use fisher_flow::config::{Experiment, parse_pair};
use fisher_flow::inspect::PointReport;
use fisher_flow::metric::MetricKind;
use fisher_flow::model::StatModel;
use fisher_flow::{Error, Result};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct MetricArgs {
    /// Model file (TOML)
    pub model: PathBuf,
    /// Point at which to evaluate: MU1,MU2 (mixture); `init` (the model's first start: for the
    /// MLP its first seeded initialization), `init:SEED` (MLP), or a parameter file (numbers
    /// separated by commas, spaces or newlines; `[`/`]` ignored, so a JSON array works)
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub at: String,
    /// Print JSON with keys loss, gradient, fisher, eigenvalues, condition_number,
    /// natural_gradient, angle_deg [default: text]
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub overrides: ModelOverrides,
}

pub fn metric(args: &MetricArgs) -> Result<()> {
    let ov = args.overrides.overrides();
    let exp = Experiment::load(&args.model, &ov)?;
    crate::cli::check_nodes(&exp, args.overrides.nodes)?;
    let at = resolve_point(&exp, &args.at)?;
    let kind: MetricKind = exp.flow.metric;
    let report = PointReport::for_experiment(&exp, &at)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
        println!("{text}");
    } else {
        println!(
            "metric: {} (damping {})",
            kind.name(),
            crate::cli::short(exp.flow.damping)
        );
        crate::quality::announce_seed(&exp);
        print!("{}", report.to_text(&exp.model.param_names()));
    }
    Ok(())
}

/// The point of `--at`: a pair, `init`, `init:SEED`, or a parameter file.
fn resolve_point(exp: &Experiment, at: &str) -> Result<Vec<f64>> {
    let n = exp.model.dim();
    let point = if at == "init" {
        exp.starts.first().cloned().unwrap_or_default()
    } else if let Some(seed) = at.strip_prefix("init:") {
        let seed: u64 = seed.parse().map_err(|_| {
            Error::invalid(
                "--at",
                format!("'{at}'"),
                "expected init:SEED with an integer seed",
            )
        })?;
        let net = exp.model.as_mlp().ok_or_else(|| {
            Error::invalid(
                "--at",
                format!("'{at}'"),
                "init:SEED applies to the mlp family",
            )
        })?;
        net.init(seed)
    } else if let Ok(pair) = parse_pair("--at", at) {
        pair
    } else {
        let path = std::path::Path::new(at);
        if !path.exists() {
            return Err(Error::invalid(
                "--at",
                format!("'{at}'"),
                "expected MU1,MU2, init, init:SEED or an existing parameter file",
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        text.split(|c: char| c == ',' || c == '[' || c == ']' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| Error::Parse {
                        path: path.to_path_buf(),
                        message: format!("'{t}' is not a finite number"),
                    })
            })
            .collect::<Result<Vec<f64>>>()?
    };
    if point.len() != n {
        return Err(Error::invalid(
            "--at",
            format!("{} values", point.len()),
            format!(
                "the model has {n} parameters ({}…)",
                exp.model
                    .param_names()
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    exp.check_point("--at", &point)?;
    Ok(point)
}
