//! The natural-gradient flow dθ/dt = −(G(θ) + λI)⁺∇L(θ), integrated with diffsol.
//!
//! * [`FlowRhs`] evaluates the right-hand side f(θ) and a Jacobian–vector product.
//! * [`Simulator`] drives a diffsol solver step by step, records every accepted step,
//!   stops at `t_end`, when ‖∇L‖ falls below `grad_tol` (a diffsol root function), or at the
//!   step cap, and reports statistics.

mod rhs;
mod simulate;

pub use rhs::FlowRhs;
pub use simulate::Simulator;

use crate::error::{Error, Result};
use crate::metric::{MetricKind, MetricOptions};

/// Which ODE method integrates the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SolverKind {
    /// Tsitouras 5(4) explicit Runge–Kutta (diffsol `tsit45`).
    Tsit45,
    /// Variable-order BDF (diffsol `bdf`), implicit; Jacobian by central finite differences of
    /// the right-hand side.
    Bdf,
}

impl SolverKind {
    /// All names accepted on the command line and in model files.
    pub const NAMES: &'static [&'static str] = &["tsit45", "bdf"];

    /// Parse a solver name, with an error that lists the valid names.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "tsit45" => Ok(SolverKind::Tsit45),
            "bdf" => Ok(SolverKind::Bdf),
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
        }
    }
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
/// | `grad_tol` | 1e-10 (0 disables the root function) |
/// | `max_steps` | 100 000 |
/// | `interior_points` | 2 (dense-output loss samples per step, for certificates) |
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
    /// Settings of the metric provider (`[metric]` in the model file); omitted from JSON
    /// when all are at their defaults.
    #[serde(default, skip_serializing_if = "MetricOptions::is_default")]
    pub metric_options: MetricOptions,
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
            metric_options: MetricOptions::default(),
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
            return Err(Error::invalid("flow.damping", self.damping, "must be a finite number ≥ 0"));
        }
        if !(self.grad_tol.is_finite() && self.grad_tol >= 0.0) {
            return Err(Error::invalid("flow.grad_tol", self.grad_tol, "must be a finite number ≥ 0"));
        }
        if self.max_steps == 0 {
            return Err(Error::invalid("flow.max_steps", 0, "must be ≥ 1"));
        }
        Ok(())
    }
}
