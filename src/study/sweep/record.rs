//! One record per case: its settings, how it ended, and how fast it got within ε of the optimum.

use super::spec::SweepSpec;
use crate::certificate::Monotone;
use crate::config::Experiment;
use crate::model::StatModel;
use crate::study::Outcome;
use crate::trajectory::Trajectory;
use serde::{Deserialize, Serialize};

/// The record of one case. Every field but `wall_seconds` is a deterministic function of the
/// spec and the case id (merged shards equal an unsharded run except in that column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// Index of the case in the expanded product.
    pub id: u64,
    /// First 16 hex digits of the SHA-256 of the case's settings (all columns up to `t_end`).
    pub settings_hash: String,
    pub sigma: f64,
    pub w: f64,
    pub target_mu1: f64,
    pub target_mu2: f64,
    pub start_mu1: f64,
    pub start_mu2: f64,
    pub metric: String,
    pub solver: String,
    pub rtol: f64,
    pub atol: f64,
    pub damping: f64,
    pub t_end: f64,
    /// `Success`, `Converged`, `MaxSteps`, `Unstable`, `SolverFailure`, or `Error` (the case
    /// could not be set up; see `message`).
    pub retcode: String,
    /// First flow time with L − L* < ε (log-linear interpolation between accepted steps);
    /// None if never.
    pub t_eps: Option<f64>,
    /// Cumulative rhs evaluations at that time (interpolated like t); None if never.
    pub rhs_evals_eps: Option<f64>,
    /// Final time, L − L*, and distance ‖θ − θ*‖₂ to the nearest optimum (θ* or its swap).
    pub t_final: Option<f64>,
    pub loss_gap_final: Option<f64>,
    pub error_final: Option<f64>,
    pub steps: u64,
    pub rejected: u64,
    pub rhs_evals: u64,
    /// The monotone-loss certificate's verdict for this trajectory (None without one).
    pub monotone: Option<bool>,
    /// Why there is no trajectory (retcode `Error`).
    pub message: Option<String>,
    /// Wall time of the case, seconds (the only non-deterministic column).
    pub wall_seconds: f64,
}

/// Column names of the results table, in order.
pub const COLUMNS: &[&str] = &[
    "id",
    "settings_hash",
    "sigma",
    "w",
    "target_mu1",
    "target_mu2",
    "start_mu1",
    "start_mu2",
    "metric",
    "solver",
    "rtol",
    "atol",
    "damping",
    "t_end",
    "retcode",
    "t_eps",
    "rhs_evals_eps",
    "t_final",
    "loss_gap_final",
    "error_final",
    "steps",
    "rejected",
    "rhs_evals",
    "monotone",
    "message",
    "wall_seconds",
];

/// Columns that measure time (excluded when comparing two runs).
pub const TIMING_COLUMNS: &[&str] = &["wall_seconds"];

/// First time with L − L* < ε and the cumulative rhs evaluations then: between the last step
/// above and the first below, t and the evaluations are interpolated at the same fraction,
/// linear in log(L − L*) (at the step itself when a gap is ≤ 0 or it is the first step).
pub fn time_to_eps(tr: &Trajectory, l_star: f64, eps: f64) -> Option<(f64, f64)> {
    let mut prev: Option<(f64, f64, f64)> = None;
    for s in &tr.steps {
        let gap = s.loss - l_star;
        if gap < eps {
            let rhs = s.rhs_evals as f64;
            return Some(match prev {
                Some((t0, g0, r0)) if g0 > 0.0 && gap > 0.0 => {
                    let f = (g0.ln() - eps.ln()) / (g0.ln() - gap.ln());
                    (t0 + (s.t - t0) * f, r0 + (rhs - r0) * f)
                }
                _ => (s.t, rhs),
            });
        }
        prev = Some((s.t, gap, s.rhs_evals as f64));
    }
    None
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The record of case `id` of `spec` from its outcome. `exp` is the experiment of the case's
/// setting; the certificate is built for this one trajectory.
pub fn record(spec: &SweepSpec, exp: &Experiment, id: u64, outcome: &Outcome) -> CaseRecord {
    let start = spec.starts[(id % spec.n_starts()) as usize];
    let (sigma, w, target) = match exp.model.as_mixture() {
        Some(m) => (m.sigma, m.w, [m.target[0], m.target[1]]),
        None => (f64::NAN, f64::NAN, [f64::NAN; 2]),
    };
    let f = &exp.flow;
    let key = format!(
        "{sigma:e},{w:e},{:e},{:e},{:e},{:e},{},{},{:e},{:e},{:e},{:e}",
        target[0],
        target[1],
        start[0],
        start[1],
        f.metric.name(),
        f.solver.name(),
        f.rtol,
        f.atol,
        f.damping,
        f.t_end
    );
    let settings_hash = crate::config::sha256_hex(key.as_bytes())[..16].to_string();
    let mut r = CaseRecord {
        id,
        settings_hash,
        sigma,
        w,
        target_mu1: target[0],
        target_mu2: target[1],
        start_mu1: start[0],
        start_mu2: start[1],
        metric: f.metric.name().into(),
        solver: f.solver.name().into(),
        rtol: f.rtol,
        atol: f.atol,
        damping: f.damping,
        t_end: f.t_end,
        retcode: "Error".into(),
        t_eps: None,
        rhs_evals_eps: None,
        t_final: None,
        loss_gap_final: None,
        error_final: None,
        steps: 0,
        rejected: 0,
        rhs_evals: 0,
        monotone: None,
        message: None,
        wall_seconds: outcome.wall,
    };
    let tr = match &outcome.result {
        Ok(tr) => tr,
        Err(e) => {
            r.message = Some(e.to_string());
            return r;
        }
    };
    let model = &exp.model;
    let l_star = model.optimal_loss();
    r.retcode = tr.retcode().name().into();
    if let Some(ls) = l_star
        && let Some((t, rhs)) = time_to_eps(tr, ls, spec.epsilon)
    {
        r.t_eps = Some(t);
        r.rhs_evals_eps = Some(rhs);
    }
    if let Some(last) = tr.last() {
        r.t_final = finite(last.t);
        r.loss_gap_final = l_star.and_then(|ls| finite(last.loss - ls));
        r.error_final = model
            .optima()
            .iter()
            .map(|o| {
                o.iter()
                    .zip(&last.theta)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt()
            })
            .filter(|d| d.is_finite())
            .min_by(f64::total_cmp);
    }
    r.steps = tr.stats.accepted as u64;
    r.rejected = tr.stats.rejected as u64;
    r.rhs_evals = tr.stats.rhs_evals as u64;
    let cert = Monotone::build(exp, model, std::slice::from_ref(tr));
    r.monotone = cert.trajectories.first().map(|c| c.monotone);
    r
}
