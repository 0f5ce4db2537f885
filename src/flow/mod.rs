//! The natural-gradient flow dθ/dt = −(G(θ) + λI)⁺∇L(θ), integrated with diffsol.
//!
//! * [`FlowRhs`] evaluates the right-hand side f(θ) and a Jacobian–vector product.
//! * [`Simulator`] drives a diffsol solver step by step at the method's calibrated internal
//!   tolerance ([`internal_tolerances`]: global error ≤ 10·rtol for every method), records
//!   every accepted step (or every `save_every`-th, or θ at `save_at` times), stops at `t_end`,
//!   when ‖∇L‖ falls below max(`grad_tol`, 2·[`noise_floor`]) (a diffsol root function), or
//!   at the step cap, and reports statistics.

pub mod control;
mod kernel;
mod rhs;
mod simulate;

pub use control::StepControl;
pub use kernel::FlowKernel;
pub use rhs::{FlowRhs, solve2};
pub use simulate::{PROGRESS_EVERY, STEADY_FACTOR, Simulator, noise_floor, singular_pairs};

use crate::error::{Error, Result};
use crate::metric::{MetricKind, MetricOptions};

/// Which ODE method integrates the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SolverKind {
    /// Tsitouras 5(4) explicit Runge–Kutta (diffsol `tsit45`).
    Tsit45,
    /// Variable-order BDF (diffsol `bdf`), implicit.
    Bdf,
    /// TR-BDF2 singly diagonally implicit Runge–Kutta (diffsol `tr_bdf2`), implicit.
    TrBdf2,
    /// ESDIRK3(4) (diffsol `esdirk34`), implicit.
    Esdirk34,
    /// Start with `tsit45`, switch to `bdf` while the flow is stiff (see
    /// [`simulate`](crate::flow::Simulator) docs), and back when it passes.
    Auto,
}

impl SolverKind {
    /// All names accepted on the command line and in model files.
    pub const NAMES: &'static [&'static str] = &["tsit45", "bdf", "tr-bdf2", "esdirk34", "auto"];

    /// Parse a solver name, with an error that lists the valid names.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "tsit45" => Ok(SolverKind::Tsit45),
            "bdf" => Ok(SolverKind::Bdf),
            "tr-bdf2" => Ok(SolverKind::TrBdf2),
            "esdirk34" => Ok(SolverKind::Esdirk34),
            "auto" => Ok(SolverKind::Auto),
            _ => Err(Error::invalid(
                field,
                format!("'{s}'"),
                format!("expected one of {}", Self::NAMES.join(", ")),
            )),
        }
    }

    /// The name used in files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            SolverKind::Tsit45 => "tsit45",
            SolverKind::Bdf => "bdf",
            SolverKind::TrBdf2 => "tr-bdf2",
            SolverKind::Esdirk34 => "esdirk34",
            SolverKind::Auto => "auto",
        }
    }

    /// True for methods that need the Jacobian of the right-hand side.
    pub fn is_implicit(&self) -> bool {
        matches!(
            self,
            SolverKind::Bdf | SolverKind::TrBdf2 | SolverKind::Esdirk34
        )
    }
}

/// How implicit methods get the Jacobian ∂f/∂θ of the right-hand side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JacobianKind {
    /// Exactly, by dual numbers through the model's [`FlowKernel`] (quadrature included), where
    /// the model has one and the metric is `exact` or `euclidean`; otherwise finite differences.
    #[default]
    Exact,
    /// Central finite differences of f, 2n evaluations per Jacobian.
    Fd,
}

impl JacobianKind {
    /// All names accepted on the command line and in model files.
    pub const NAMES: &'static [&'static str] = &["exact", "fd"];

    /// Parse a Jacobian kind, with an error that lists the valid names.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(JacobianKind::Exact),
            "fd" => Ok(JacobianKind::Fd),
            _ => Err(Error::invalid(
                field,
                format!("'{s}'"),
                "expected one of exact, fd",
            )),
        }
    }

    /// The name used in files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            JacobianKind::Exact => "exact",
            JacobianKind::Fd => "fd",
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}
fn is_true(b: &bool) -> bool {
    *b
}
fn default_eta() -> f64 {
    control::DEFAULT_ETA
}
fn default_zone() -> f64 {
    control::DEFAULT_ZONE
}

/// Settings of a flow run. Defaults (see [`FlowSettings::default`]):
///
/// | field | default |
/// |---|---|
/// | `metric` | `exact` |
/// | `damping` λ | 0 |
/// | `solver` | `tsit45` |
/// | `rtol` | 1e-8 |
/// | `atol` | 1e-10 |
/// | `t_end` | 20 |
/// | `grad_tol` | 1e-10 (0 disables the root function; the test fires at max(grad_tol, 2·[`noise_floor`])) |
/// | `max_steps` | 100 000 |
/// | `interior_points` | 2 (dense-output loss samples per step, for certificates) |
/// | `jacobian` | `exact` (dual numbers; `fd` = finite differences) |
/// | `step_control` | true (singularity-aware limits, see [`control`]) |
/// | `control_eta` | 0.5 (largest predicted relative change of δ per step) |
/// | `damping_floor` ν | 0 (λ_eff = max(λ, ν·tr G)) |
/// | `zone` | 0.1 (near-singular zone |θⱼ − θᵢ| < zone, for statistics) |
/// | `calibrated` | true (per-method internal tolerance, [`internal_tolerances`]) |
/// | `save_every` | 1 (record every accepted step) |
/// | `save_at` | empty (record steps, not times) |
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowSettings {
    pub metric: MetricKind,
    pub damping: f64,
    pub solver: SolverKind,
    pub rtol: f64,
    pub atol: f64,
    pub t_end: f64,
    pub grad_tol: f64,
    pub max_steps: usize,
    pub interior_points: usize,
    #[serde(default)]
    pub jacobian: JacobianKind,
    #[serde(default = "default_true")]
    pub step_control: bool,
    #[serde(default = "default_eta")]
    pub control_eta: f64,
    #[serde(default)]
    pub damping_floor: f64,
    #[serde(default = "default_zone")]
    pub zone: f64,
    /// Run each method at its calibrated internal tolerance ([`internal_tolerances`]) so that
    /// `rtol` means the same global accuracy for every solver (default true; false runs the
    /// methods at the raw `rtol`/`atol`, for measuring the calibration).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub calibrated: bool,
    /// Output control: record every `save_every`-th accepted step and the last (default 1:
    /// every step). Ignored when `save_at` is given.
    #[serde(default = "default_one")]
    pub save_every: usize,
    /// Output control: record θ at these times (dense output of the solver; diffrax's
    /// `SaveAt(ts)`), plus the start and the end (default: empty, record steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub save_at: Vec<f64>,
    /// Settings of the metric provider (`[metric]` in the model file); omitted from JSON
    /// when all are at their defaults.
    #[serde(default, skip_serializing_if = "MetricOptions::is_default")]
    pub metric_options: MetricOptions,
    /// Third-order correction of the velocity (`[flow] correction`; default none, omitted
    /// from JSON then).
    #[serde(
        default,
        skip_serializing_if = "crate::geometry::correction::Correction::is_none"
    )]
    pub correction: crate::geometry::correction::Correction,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            metric: MetricKind::Exact,
            damping: 0.0,
            solver: SolverKind::Tsit45,
            rtol: 1e-8,
            atol: 1e-10,
            t_end: 20.0,
            grad_tol: 1e-10,
            max_steps: 100_000,
            interior_points: 2,
            jacobian: JacobianKind::Exact,
            step_control: true,
            control_eta: control::DEFAULT_ETA,
            damping_floor: 0.0,
            zone: control::DEFAULT_ZONE,
            calibrated: true,
            save_every: 1,
            save_at: Vec::new(),
            metric_options: MetricOptions::default(),
            correction: Default::default(),
        }
    }
}

impl FlowSettings {
    /// Check every value once; the error names the field and says what is expected.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(name, v, "must be a finite number > 0"))
            }
        };
        pos("flow.rtol", self.rtol)?;
        pos("flow.atol", self.atol)?;
        pos("flow.t_end", self.t_end)?;
        if !(self.damping.is_finite() && self.damping >= 0.0) {
            return Err(Error::invalid(
                "flow.damping",
                self.damping,
                "must be a finite number ≥ 0",
            ));
        }
        if !(self.grad_tol.is_finite() && self.grad_tol >= 0.0) {
            return Err(Error::invalid(
                "flow.grad_tol",
                self.grad_tol,
                "must be a finite number ≥ 0",
            ));
        }
        pos("flow.control_eta", self.control_eta)?;
        pos("flow.zone", self.zone)?;
        if !(self.damping_floor.is_finite() && (0.0..1.0).contains(&self.damping_floor)) {
            return Err(Error::invalid(
                "flow.damping_floor",
                self.damping_floor,
                "must be a finite number in [0, 1)",
            ));
        }
        if self.save_every == 0 {
            return Err(Error::invalid("flow.save_every", 0, "must be ≥ 1"));
        }
        if let Some(&t) = self
            .save_at
            .iter()
            .find(|&&t| !(t.is_finite() && (0.0..=self.t_end).contains(&t)))
        {
            return Err(Error::invalid(
                "flow.save_at",
                t,
                format!(
                    "every time must be finite and in [0, t_end = {}]",
                    self.t_end
                ),
            ));
        }
        if self.max_steps == 0 {
            return Err(Error::invalid("flow.max_steps", 0, "must be ≥ 1"));
        }
        Ok(())
    }
}

/// Per-method calibration of the internal tolerance: the method runs at
/// rtol_int = min(rtol, c_m·rtol^p_m), atol_int = atol·rtol_int/rtol, so that the global
/// error at a given `rtol` is ≤ 10·rtol for every method (measured by
/// `cargo run --release --example work_precision`; README, *Integrators*). The internal
/// tolerances are never looser than the user's (certificates rely on them), nor tighter than
/// 4ε unless the user's is.
///
/// Measured raw (uncalibrated) on 48 initial value problems × 3 times (the example's first 8
/// starts per model): the largest error
/// e = ‖θ − θ_ref‖∞/(rtol‖θ_ref‖∞ + atol) at internal rtol = k·rtol behaves like A·k^q, and the
/// k* that brings e to 4 (2.5× inside the contract) follows k* ≈ c·rtol^(p−1):
///
/// | method | raw e at rtol 1e-6 / 1e-8 / 1e-10 | k* at 1e-6 / 1e-8 / 1e-10 | c_m | p_m |
/// |---|---|---|---|---|
/// | `tsit45` | 1.3 / 1.6 / 1.3 | 1 (met) | 1 | 1 |
/// | `bdf` | 11 / 44 / 119 | 0.1–0.2 / 0.031 / 0.016 | 3 | 1.25 |
/// | `tr-bdf2` | 98 / 453 / 2080 | 8.2e-3 / 8.5e-4 / 8.5e-5 | 8 | 1.5 |
/// | `esdirk34` | 112 / 76 / 83 | 0.23 / 0.16 / ≥ 7.3e-3 | 2 | 1.25 |
///
/// (`tr-bdf2` is second order: its error falls like k^0.67, so 10·rtol costs it 10–400× the
/// evaluations of `tsit45`.) `auto` uses each segment's method's calibration.
pub fn calibration(method: SolverKind) -> (f64, f64) {
    match method {
        SolverKind::Tsit45 | SolverKind::Auto => (1.0, 1.0),
        SolverKind::Bdf => (3.0, 1.25),
        SolverKind::TrBdf2 => (8.0, 1.5),
        SolverKind::Esdirk34 => (2.0, 1.25),
    }
}

/// The tolerances `method` actually runs at for the user's `rtol`, `atol`
/// ([`calibration`]): (min(rtol, c·rtol^p), atol·that/rtol). Both are ≤ the user's.
pub fn internal_tolerances(method: SolverKind, rtol: f64, atol: f64) -> (f64, f64) {
    let (c, p) = calibration(method);
    // not below 4ε (a relative tolerance the arithmetic cannot meet), unless the user's is
    let r = (c * rtol.powf(p)).max(4.0 * f64::EPSILON).min(rtol);
    // underflow-safe: r/rtol ∈ (0, 1]
    let r = if r > 0.0 && r.is_finite() { r } else { rtol };
    // the smallest positive number, not 0, when the product underflows (never above atol)
    let a = (atol * (r / rtol)).max(f64::from_bits(1)).min(atol);
    (r, a)
}
