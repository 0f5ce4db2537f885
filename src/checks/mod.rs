//! The theory property suite behind `fisher-flow check` (and `tests/check.rs`).
//!
//! Each [`Property`] measures one statement of the theory against an independent computation
//! (closed forms, finite differences, a second code path) and returns an [`Outcome`]: what was
//! measured, the value, the tolerance and PASS/FAIL. Groups:
//!
//! * [`fisher`] — the Fisher matrix itself: score-square vs negative-Hessian forms, the KL
//!   expansion, mixture limits, the normal family's five charts, one-parameter families;
//! * [`flow`] — flows: dL/dt along trajectories and certificate verification, reparametrization
//!   invariance, the normal family's exact flow, local convergence rates, escape from the
//!   singular line;
//! * [`geometry`] — steepest descent in a KL ball, gradient angles, Fisher–Rao distances;
//! * [`vi`] — natural-gradient variational inference: the conjugate natural-parameter flow,
//!   chart invariance, the VI optimum against the exact logistic posterior.
//! * [`density`] — the density flows: Fisher–Rao closed form, mass and positivity, the
//!   Fisher–Rao/Wasserstein contrast on a bimodal target.
//! * [`third_order`] — the Amari–Chentsov tensor, α-connections and their duality, the normal
//!   family's closed forms, the third-order flow at the mixture's saddle and the MLP plateau.

pub mod density;
pub mod fisher;
pub mod flow;
pub mod geometry;
pub mod third_order;
pub mod vi;

use crate::error::{Error, Result};
use serde::Serialize;

/// The result of one property.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Outcome {
    /// Property name (stable; `--only NAME`).
    pub name: String,
    /// What was measured, with the numbers.
    pub measured: String,
    /// The headline measured value.
    pub value: f64,
    /// The criterion, in words.
    pub tolerance: String,
    /// Whether it holds.
    pub pass: bool,
    /// What theory says (from the registry).
    pub statement: String,
}

impl Outcome {
    /// A row from its parts.
    pub fn new(name: &str, measured: String, value: f64, tolerance: String, pass: bool) -> Outcome {
        Outcome {
            name: name.into(),
            measured,
            value,
            tolerance,
            pass: pass && value.is_finite(),
            statement: String::new(),
        }
    }

    /// "value ≤ tol" row.
    pub fn at_most(name: &str, measured: String, value: f64, tol: f64) -> Outcome {
        Outcome::new(name, measured, value, format!("<= {tol:.1e}"), value <= tol)
    }

    /// A failed row for a computation that could not run.
    pub fn error(name: &str, e: &Error) -> Outcome {
        Outcome::new(name, format!("error: {e}"), f64::NAN, "runs".into(), false)
    }
}

/// One property of the suite.
pub struct Property {
    pub name: &'static str,
    /// One line: what theory says.
    pub statement: &'static str,
    pub run: fn() -> Result<Outcome>,
}

/// Every property, in report order.
pub fn registry() -> Vec<Property> {
    let mut v = fisher::properties();
    v.extend(flow::properties());
    v.extend(geometry::properties());
    v.extend(vi::properties());
    v.extend(density::properties());
    v.extend(third_order::properties());
    v
}

/// Names of all properties.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|p| p.name).collect()
}

/// Run one property by name; errors inside become a failed row.
pub fn run_one(name: &str) -> Result<Outcome> {
    let reg = registry();
    let Some(p) = reg.iter().find(|p| p.name == name) else {
        return Err(Error::invalid(
            "--only",
            format!("'{name}'"),
            format!("expected one of {}", names().join(", ")),
        ));
    };
    Ok(evaluate(p))
}

fn evaluate(p: &Property) -> Outcome {
    let mut o = (p.run)().unwrap_or_else(|e| Outcome::error(p.name, &e));
    o.statement = p.statement.into();
    o
}

/// Run the suite (or the properties whose names contain `only`, if given).
pub fn run(only: Option<&str>) -> Result<Vec<Outcome>> {
    let only: Vec<String> = only.map(str::to_string).into_iter().collect();
    run_selected(&only)
}

/// Run the properties whose names contain any of `only` (ignoring case; all when `only` is
/// empty), in registry order, each once. A pattern that matches nothing is an error naming
/// `--only`.
pub fn run_selected(only: &[String]) -> Result<Vec<Outcome>> {
    let reg = registry();
    let patterns: Vec<String> = only.iter().map(|o| o.to_lowercase()).collect();
    let matches = |p: &Property, o: &str| p.name.to_lowercase().contains(o);
    if let Some((bad, _)) = only
        .iter()
        .zip(&patterns)
        .find(|(_, o)| !reg.iter().any(|p| matches(p, o)))
    {
        return Err(Error::invalid(
            "--only",
            format!("'{bad}'"),
            format!("matches no property; names: {}", names().join(", ")),
        ));
    }
    let selected: Vec<&Property> = reg
        .iter()
        .filter(|p| patterns.is_empty() || patterns.iter().any(|o| matches(p, o)))
        .collect();
    Ok(selected.iter().map(|p| evaluate(p)).collect())
}

/// Least-squares slope of y against x.
pub fn fit_slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// Largest relative entry-wise difference max|A−B| / max|B|.
pub fn rel_diff(a: &nalgebra::DMatrix<f64>, b: &nalgebra::DMatrix<f64>) -> f64 {
    (a - b).amax() / b.amax().max(f64::MIN_POSITIVE)
}
