//! `fisher-flow check`: run the theory property suite, one row per property.

use clap::Args;
use fisher_flow::checks;
use fisher_flow::{Error, Result};

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Print JSON (array of {name, statement, measured, value, tolerance, pass}) [default: a text table]
    #[arg(long)]
    pub json: bool,
    /// Run only the properties whose name contains NAME, ignoring case; repeat (or separate
    /// by commas) for several [default: all]
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Exit code: 0 if every property holds, 1 if any fails.
pub fn check(args: &CheckArgs) -> Result<i32> {
    let rows = checks::run_selected(&args.only)?;
    if args.json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
        println!("{text}");
    } else {
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4);
        for r in &rows {
            println!(
                "{:<w$}  {}  {}  [tolerance {}]",
                r.name,
                if r.pass { "PASS" } else { "FAIL" },
                r.measured,
                r.tolerance
            );
        }
        let failed = rows.iter().filter(|r| !r.pass).count();
        println!(
            "{} properties, {} passed, {failed} failed",
            rows.len(),
            rows.len() - failed
        );
    }
    Ok(if rows.iter().all(|r| r.pass) { 0 } else { 1 })
}
