//! `fisher-flow verify`: re-check a certificate independently of the code that wrote it.

use clap::Args;
use fisher_flow::Result;
use fisher_flow::certificate::{load_any, verify_any};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Certificate written by `fisher-flow run` (certificate.json)
    pub certificate: PathBuf,
    /// Model file to re-evaluate with; its SHA-256 must match the certificate's
    /// [default: the resolved model copy stored in the certificate]
    #[arg(long, value_name = "MODEL.toml")]
    pub model: Option<PathBuf>,
    /// Print the report as JSON [default: text]
    #[arg(long)]
    pub json: bool,
}

/// Exit code: 0 all claims hold, 1 a claim fails (first failing step printed), 2 bad input.
pub fn verify(args: &VerifyArgs) -> Result<i32> {
    let cert = load_any(&args.certificate)?;
    let report = verify_any(&cert, args.model.as_deref())?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| fisher_flow::Error::Numerical(format!("JSON encoding failed: {e}")))?;
        println!("{text}");
    } else {
        println!(
            "checked {} trajectories, {} steps | worst loss mismatch {:.3} of tolerance | worst rate mismatch {:.3} | worst continuity {:.3} | worst increase {:.3}",
            report.trajectories,
            report.steps_checked,
            report.worst_loss_ratio,
            report.worst_rate_ratio,
            report.worst_continuity_ratio,
            report.worst_increase_ratio
        );
    }
    match &report.failure {
        None => {
            // with --json, stdout carries the one JSON document only
            let line = format!("verified: {} (all claims hold)", args.certificate.display());
            if args.json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            Ok(0)
        }
        Some(f) => {
            eprintln!("verification FAILED: {} — {f}", args.certificate.display());
            Ok(1)
        }
    }
}
