//! Flags shared by the subcommands that integrate flows (`run`, `field`): Jacobian kind, step
//! control, `--perturb`.

use fisher_flow::config::Experiment;
use fisher_flow::flow::{JacobianKind, control::perturb_off_lines};
use fisher_flow::model::StatModel;
use fisher_flow::{Error, Result};

/// Apply `--jacobian`, `--no-step-control` and `--perturb EPS` to a loaded experiment.
pub fn apply_flags(
    exp: &mut Experiment,
    jacobian: Option<&str>,
    no_step_control: bool,
    perturb: Option<f64>,
) -> Result<()> {
    if let Some(j) = jacobian {
        exp.flow.jacobian = JacobianKind::parse("--jacobian", j)?;
    }
    if no_step_control {
        exp.flow.step_control = false;
    }
    if let Some(eps) = perturb {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid(
                "--perturb",
                eps,
                "must be a finite number > 0",
            ));
        }
        // The exchange eigenvalue of the Fisher matrix is ~δ²·‖I‖/σ²: below δ ≈ 1e-6σ it
        // falls under RANK_TOL and the rank-revealing solve treats it as null.
        let resolvable = 1e-5 * exp.model.as_mixture().map_or(1.0, |m| m.sigma);
        if eps < resolvable {
            crate::cli::say(format!(
                "note: --perturb {eps:e} is below {resolvable:e} (≈ √RANK_TOL·σ): the exchange direction is under the metric's rank threshold there, so the flow may not leave the line"
            ));
        }
        let pairs = exp.model.exchange_pairs();
        for s in exp.starts.iter_mut() {
            let before = s.clone();
            if perturb_off_lines(&pairs, s, eps) {
                crate::cli::say(format!(
                    "perturbed start {before:?} off the singular line by {eps:e}: now {s:?}"
                ));
            }
        }
    }
    Ok(())
}
