//! What a flow run produces: accepted steps, statistics and why it stopped.

use serde::{Deserialize, Serialize};

/// One accepted step of the flow (row 0 is the start, with `step_size` 0).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Time t.
    pub t: f64,
    /// Parameters θ(t).
    pub theta: Vec<f64>,
    /// Loss L(θ).
    pub loss: f64,
    /// Euclidean gradient norm ‖∇L(θ)‖.
    pub grad_norm: f64,
    /// Condition number κ of the metric at θ (∞ when singular).
    pub kappa: f64,
    /// Smallest eigenvalue of the (undamped) metric at θ.
    pub min_eig: f64,
    /// dL/dt = −∇Lᵀ(G + λI)⁺∇L along the flow.
    pub rate: f64,
    /// Size of the step that ended here.
    pub step_size: f64,
    /// (t, L) at interior points of the step, from the solver's dense output.
    pub interior: Vec<(f64, f64)>,
    /// Right-hand-side evaluations spent up to this step (iterations for discrete methods).
    #[serde(default)]
    pub rhs_evals: usize,
    /// Model flops of the metric work spent up to this step ([`crate::metric::cost`]; MLP
    /// flows only, 0 and omitted otherwise).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub flops: f64,
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// Why integration stopped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum StopReason {
    /// Reached t_end.
    TEnd,
    /// ‖∇L‖ fell below the gradient tolerance (root function).
    Converged,
    /// Hit the step cap.
    MaxSteps,
    /// The solver reported an error; the trajectory up to it is kept.
    SolverFailure(String),
    /// The state, loss or velocity became non-finite (or the iteration diverged); the
    /// trajectory up to the last finite point is kept.
    Unstable(String),
}

/// The outcome of a trajectory, one word a script can test (after DifferentialEquations.jl's
/// `ReturnCode`): `Success` (t_end reached), `Converged` (gradient test), `MaxSteps` (step
/// cap), `Unstable` (non-finite values, divergence) or `SolverFailure`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Retcode {
    Success,
    Converged,
    MaxSteps,
    Unstable,
    SolverFailure,
}

impl Retcode {
    /// Whether the trajectory ended as asked (t_end or the gradient test).
    pub fn is_success(self) -> bool {
        matches!(self, Retcode::Success | Retcode::Converged)
    }

    /// The name written to outputs.
    pub fn name(self) -> &'static str {
        match self {
            Retcode::Success => "Success",
            Retcode::Converged => "Converged",
            Retcode::MaxSteps => "MaxSteps",
            Retcode::Unstable => "Unstable",
            Retcode::SolverFailure => "SolverFailure",
        }
    }
}

impl std::fmt::Display for Retcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl StopReason {
    /// The return code of this stop.
    pub fn retcode(&self) -> Retcode {
        match self {
            StopReason::TEnd => Retcode::Success,
            StopReason::Converged => Retcode::Converged,
            StopReason::MaxSteps => Retcode::MaxSteps,
            StopReason::SolverFailure(_) => Retcode::SolverFailure,
            StopReason::Unstable(_) => Retcode::Unstable,
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::TEnd => write!(f, "t_end reached"),
            StopReason::Converged => write!(f, "converged (gradient below tolerance)"),
            StopReason::MaxSteps => write!(f, "step cap reached"),
            StopReason::SolverFailure(m) => write!(f, "solver failure: {m}"),
            StopReason::Unstable(m) => write!(f, "unstable: {m}"),
        }
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps (local error test failures).
    pub rejected: usize,
    /// Right-hand-side evaluations f(θ) (including those for Jacobians).
    pub rhs_evals: usize,
    /// Jacobian–vector products requested by implicit solvers.
    pub jac_evals: usize,
    /// Wall time in seconds.
    pub wall_time: f64,
    /// Full Jacobian evaluations (exact: one dual-number pass; fd: n+1 or 2n rhs evaluations).
    #[serde(default)]
    pub jacobians: usize,
    /// LU factorizations (linear-solver setups) of implicit solvers.
    #[serde(default)]
    pub factorizations: usize,
    /// Switches between explicit and implicit methods (solver `auto`).
    #[serde(default)]
    pub solver_switches: usize,
    /// Steps whose size the singularity-aware control limited (predicted relative change of δ).
    #[serde(default)]
    pub control_limited: usize,
    /// Steps that would have crossed a singular line θᵢ = θⱼ and were retried shorter.
    #[serde(default)]
    pub crossings_prevented: usize,
    /// Flow time spent in the near-singular zone |θⱼ − θᵢ| < zone.
    #[serde(default)]
    pub time_near_singular: f64,
    /// Refreshes of a held metric (each restarts the integrator; `[metric] refresh`, `adaptive`).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub metric_refreshes: usize,
    /// Switches of `adaptive` between metrics (each restarts the integrator).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub metric_switches: usize,
    /// Model flops of the metric work ([`crate::metric::cost`]; MLP flows only).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub flops: f64,
}

/// Something that happened during a run, at flow time `t`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Flow time.
    pub t: f64,
    /// `switch` (auto changed method), `on-singular-line` (the start lies on θᵢ = θⱼ and the
    /// run stays there), `crossing-prevented`, …
    pub kind: String,
    /// Human-readable detail, e.g. "tsit45 -> bdf (h·ρ = 3.4 over 15 steps)".
    pub detail: String,
}

/// A flow trajectory from one start.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Trajectory {
    /// Parameter names (CSV columns).
    pub param_names: Vec<String>,
    /// Start θ(0).
    pub start: Vec<f64>,
    /// Accepted steps, starting with the initial point.
    pub steps: Vec<Step>,
    /// Counters.
    pub stats: Stats,
    /// Why it stopped.
    pub stop: StopReason,
    /// Events (solver switches, singular-line notes), in time order.
    #[serde(default)]
    pub events: Vec<Event>,
}

impl Trajectory {
    /// The last recorded step.
    pub fn last(&self) -> Option<&Step> {
        self.steps.last()
    }

    /// The return code of this trajectory.
    pub fn retcode(&self) -> Retcode {
        self.stop.retcode()
    }

    /// Whether the trajectory ended as asked (t_end or the gradient test).
    pub fn succeeded(&self) -> bool {
        self.retcode().is_success()
    }

    /// First time at which L − L* < `eps`, linearly interpolated in log(L − L*) between steps.
    pub fn time_to_reach(&self, l_star: f64, eps: f64) -> Option<f64> {
        let mut prev: Option<(f64, f64)> = None;
        for s in &self.steps {
            let gap = s.loss - l_star;
            if gap < eps {
                return Some(match prev {
                    Some((t0, g0)) if g0 > 0.0 && gap > 0.0 => {
                        let (a, b, e) = (g0.ln(), gap.ln(), eps.ln());
                        t0 + (s.t - t0) * (a - e) / (a - b)
                    }
                    _ => s.t,
                });
            }
            prev = Some((s.t, gap));
        }
        None
    }
}
