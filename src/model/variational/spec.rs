//! `[vi]`: the variational family's model-file section and its validation.
//!
//! ```toml
//! [model]
//! family = "variational-gaussian"
//! [vi]
//! target = "linear-gaussian"     # or "logistic"
//! chart = "natural"              # "mean-cov" | "mean-cholesky" | "natural"
//! covariance = "full"            # or "mean-field"
//! ```
//! Every count has a bound ([`DESIGN_ROWS_MAX`], [`cubature::NODES_MAX`], [`WORK_MAX`]),
//! every matrix is checked for shape, finiteness and positive definiteness, and errors name
//! the field.

use super::cubature::{self, GH_DIM_MAX, MC_DIM_MAX, Rule};
use super::{Coords, Covariance, Target, VariationalChart, VariationalGaussian};
use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest number of observations (design rows or data rows).
pub const DESIGN_ROWS_MAX: usize = 1_000_000;
/// Largest nodes × observations per loss evaluation.
pub const WORK_MAX: usize = 100_000_000;
/// Largest |value| of a mean, covariance entry, design entry or observation.
pub const VALUE_ABS_MAX: f64 = 1e6;
/// Nodes per axis of the exact-posterior rule (logistic).
pub const EXACT_NODES: usize = 40;

/// One start q₀ = N(mean, cov).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StartSpec {
    pub mean: Vec<f64>,
    pub cov: Vec<Vec<f64>>,
}

/// `[vi]`: the variational family, its target and how expectations are computed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ViSection {
    /// `"linear-gaussian"` or `"logistic"`.
    pub target: String,
    /// `"mean-cov"`, `"mean-cholesky"` or `"natural"` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// `"full"` (default) or `"mean-field"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariance: Option<String>,
    /// Linear-Gaussian: prior mean μ₀ (d values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_mean: Option<Vec<f64>>,
    /// Linear-Gaussian: prior covariance Σ₀ (d rows of d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_cov: Option<Vec<Vec<f64>>>,
    /// Linear-Gaussian: observation noise σ > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_sd: Option<f64>,
    /// Linear-Gaussian: design rows aᵢ (d values each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<Vec<Vec<f64>>>,
    /// Linear-Gaussian: observations yᵢ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observations: Option<Vec<f64>>,
    /// Logistic: CSV file (header line, `#` comments), relative to the model file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Logistic: the label column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Logistic: [negative class, positive class]; other rows are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Logistic: feature columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Logistic: add an intercept (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercept: Option<bool>,
    /// Logistic: standardize the features over the kept rows (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<bool>,
    /// Logistic: prior standard deviation τ of every coefficient (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_sd: Option<f64>,
    /// Gauss–Hermite nodes per axis (d ≤ 3; default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// Monte Carlo draws (d > 3; default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// Seed of the Monte Carlo draws (default 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Starts q₀ (default: the prior).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start: Vec<StartSpec>,
}

fn finite_vec(field: &str, v: &[f64]) -> Result<DVector<f64>> {
    if let Some(x) = v
        .iter()
        .find(|x| !(x.is_finite() && x.abs() <= VALUE_ABS_MAX))
    {
        return Err(Error::invalid(
            field,
            format!("{x:?}"),
            format!("values must be finite with |value| ≤ {VALUE_ABS_MAX:e}"),
        ));
    }
    Ok(DVector::from_column_slice(v))
}

fn matrix(field: &str, rows: &[Vec<f64>], ncols: usize) -> Result<DMatrix<f64>> {
    if rows.len() > DESIGN_ROWS_MAX {
        return Err(Error::invalid(
            field,
            format!("{} rows", rows.len()),
            format!("at most {DESIGN_ROWS_MAX} rows"),
        ));
    }
    let mut m = DMatrix::zeros(rows.len(), ncols);
    for (i, r) in rows.iter().enumerate() {
        if r.len() != ncols {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("{} values", r.len()),
                format!("every row needs {ncols} values (d = {ncols})"),
            ));
        }
        let v = finite_vec(&format!("{field}[{i}]"), r)?;
        m.row_mut(i).copy_from(&v.transpose());
    }
    Ok(m)
}

/// A symmetric positive-definite d × d matrix.
fn spd(field: &str, rows: &[Vec<f64>], d: usize) -> Result<DMatrix<f64>> {
    if rows.len() != d {
        return Err(Error::invalid(
            field,
            format!("{} rows", rows.len()),
            format!("a covariance needs d = {d} rows of {d} values"),
        ));
    }
    let m = matrix(field, rows, d)?;
    if (&m - m.transpose()).amax() > 1e-12 * m.amax() {
        return Err(Error::invalid(
            field,
            "not symmetric",
            "a covariance must be symmetric",
        ));
    }
    let cond_ok = m.clone().cholesky().is_some_and(|c| {
        let dg = c.l_dirty().diagonal();
        let (lo, hi) = (dg.min(), dg.max());
        lo > 0.0 && hi / lo < 1e6
    });
    if !cond_ok {
        return Err(Error::invalid(
            field,
            "its value",
            "must be positive definite with condition number below 1e12",
        ));
    }
    Ok(m)
}

fn unused(field: &str, set: bool, target: &str) -> Result<()> {
    if set {
        return Err(Error::invalid(
            format!("vi.{field}"),
            "set",
            format!("does not apply to vi.target = \"{target}\""),
        ));
    }
    Ok(())
}

impl ViSection {
    /// The chart and covariance form.
    fn coords(&self, d: usize) -> Result<Coords> {
        let chart = match self.chart.as_deref() {
            None => VariationalChart::Natural,
            Some(s) => VariationalChart::parse(s).ok_or_else(|| {
                Error::invalid(
                    "vi.chart",
                    format!("'{s}'"),
                    "expected \"mean-cov\", \"mean-cholesky\" or \"natural\"",
                )
            })?,
        };
        let cov = match self.covariance.as_deref() {
            None | Some("full") => Covariance::Full,
            Some("mean-field") => Covariance::MeanField,
            Some(s) => {
                return Err(Error::invalid(
                    "vi.covariance",
                    format!("'{s}'"),
                    "expected \"full\" or \"mean-field\"",
                ));
            }
        };
        Ok(Coords { d, chart, cov })
    }

    /// Build the model and its default start (the prior); `base` is the model file's folder.
    pub fn build(&self, base: &Path) -> Result<(VariationalGaussian, StartSpec)> {
        match self.target.as_str() {
            "linear-gaussian" => self.build_linear_gaussian(),
            "logistic" => self.build_logistic(base),
            other => Err(Error::invalid(
                "vi.target",
                format!("'{other}'"),
                "expected \"linear-gaussian\" or \"logistic\"",
            )),
        }
    }

    fn build_linear_gaussian(&self) -> Result<(VariationalGaussian, StartSpec)> {
        let t = "linear-gaussian";
        for (f, set) in [
            ("data", self.data.is_some()),
            ("label", self.label.is_some()),
            ("classes", self.classes.is_some()),
            ("features", self.features.is_some()),
            ("intercept", self.intercept.is_some()),
            ("standardize", self.standardize.is_some()),
            ("prior_sd", self.prior_sd.is_some()),
            ("nodes", self.nodes.is_some()),
            ("samples", self.samples.is_some()),
            ("seed", self.seed.is_some()),
        ] {
            unused(f, set, t)?;
        }
        let need = |f: &str| {
            Error::invalid(
                format!("vi.{f}"),
                "missing",
                "the linear-Gaussian target needs prior_mean, prior_cov, noise_sd, design and observations",
            )
        };
        let mu0 = finite_vec(
            "vi.prior_mean",
            self.prior_mean.as_ref().ok_or_else(|| need("prior_mean"))?,
        )?;
        let d = mu0.len();
        if d == 0 || d > MC_DIM_MAX {
            return Err(Error::invalid(
                "vi.prior_mean",
                format!("{d} values"),
                format!("the dimension d must be between 1 and {MC_DIM_MAX}"),
            ));
        }
        let s0 = spd(
            "vi.prior_cov",
            self.prior_cov.as_ref().ok_or_else(|| need("prior_cov"))?,
            d,
        )?;
        let noise = self.noise_sd.ok_or_else(|| need("noise_sd"))?;
        if !(noise.is_finite() && (1e-6..=1e6).contains(&noise)) {
            return Err(Error::invalid(
                "vi.noise_sd",
                format!("{noise:?}"),
                "must lie in [1e-6, 1e6]",
            ));
        }
        let a = matrix(
            "vi.design",
            self.design.as_ref().ok_or_else(|| need("design"))?,
            d,
        )?;
        let y = finite_vec(
            "vi.observations",
            self.observations
                .as_ref()
                .ok_or_else(|| need("observations"))?,
        )?;
        if y.len() != a.nrows() {
            return Err(Error::invalid(
                "vi.observations",
                format!("{} values", y.len()),
                format!("one observation per design row ({} rows)", a.nrows()),
            ));
        }
        let target = Target::linear_gaussian(&mu0, &s0, &a, &y, noise).ok_or_else(|| {
            Error::invalid("vi.prior_cov", "its value", "must be positive definite")
        })?;
        let mut model = VariationalGaussian::new(self.coords(d)?, target, None);
        model.posterior = model.target.posterior(0);
        if model.posterior.is_none() {
            return Err(Error::invalid(
                "vi.design",
                "its value",
                "the posterior precision is not positive definite",
            ));
        }
        let start = StartSpec {
            mean: mu0.iter().copied().collect(),
            cov: (0..d)
                .map(|i| s0.row(i).iter().copied().collect())
                .collect(),
        };
        Ok((model, start))
    }

    fn build_logistic(&self, base: &Path) -> Result<(VariationalGaussian, StartSpec)> {
        let t = "logistic";
        for (f, set) in [
            ("prior_mean", self.prior_mean.is_some()),
            ("prior_cov", self.prior_cov.is_some()),
            ("noise_sd", self.noise_sd.is_some()),
            ("design", self.design.is_some()),
            ("observations", self.observations.is_some()),
        ] {
            unused(f, set, t)?;
        }
        let file = self.data.as_ref().ok_or_else(|| {
            Error::invalid(
                "vi.data",
                "missing",
                "the logistic target needs a CSV file (vi.data)",
            )
        })?;
        let label = self.label.clone().unwrap_or_else(|| "species".into());
        let classes = self.classes.as_ref().ok_or_else(|| {
            Error::invalid(
                "vi.classes",
                "missing",
                "give the two class names [negative, positive]",
            )
        })?;
        if classes.len() != 2 || classes[0] == classes[1] {
            return Err(Error::invalid(
                "vi.classes",
                format!("{classes:?}"),
                "expected two different class names [negative, positive]",
            ));
        }
        let features = self.features.as_ref().ok_or_else(|| {
            Error::invalid("vi.features", "missing", "name one or more feature columns")
        })?;
        let intercept = self.intercept.unwrap_or(true);
        let d = features.len() + usize::from(intercept);
        if features.is_empty() || d > MC_DIM_MAX {
            return Err(Error::invalid(
                "vi.features",
                format!("{} columns", features.len()),
                format!("d = features + intercept must be between 1 and {MC_DIM_MAX}"),
            ));
        }
        let tau = self.prior_sd.unwrap_or(2.0);
        if !(tau.is_finite() && (1e-3..=1e3).contains(&tau)) {
            return Err(Error::invalid(
                "vi.prior_sd",
                format!("{tau:?}"),
                "must lie in [1e-3, 1e3]",
            ));
        }
        let path = base.join(file);
        let (mut x, y) = read_two_classes(&path, &label, classes, features)?;
        if self.standardize.unwrap_or(true) {
            standardize(&mut x);
        }
        if intercept {
            x = x.insert_column(0, 1.0);
        }
        let rule = match (self.nodes, self.samples) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "vi.samples",
                    "set",
                    "give vi.nodes (Gauss-Hermite, d ≤ 3) or vi.samples (Monte Carlo), not both",
                ));
            }
            (Some(n), None) if d > GH_DIM_MAX => {
                return Err(Error::invalid(
                    "vi.nodes",
                    n,
                    format!(
                        "Gauss-Hermite tensor cubature is for d ≤ {GH_DIM_MAX} (here d = {d}): remove vi.nodes to use seeded Monte Carlo (vi.samples), or use fewer features"
                    ),
                ));
            }
            (nodes, None) if d <= GH_DIM_MAX => {
                let n = nodes.unwrap_or(16);
                if !(1..=64).contains(&n) {
                    return Err(Error::invalid("vi.nodes", n, "must be between 1 and 64"));
                }
                Rule::gauss_hermite(d, n).ok_or_else(|| {
                    Error::invalid(
                        "vi.nodes",
                        n,
                        format!("n^d must be at most {}", cubature::NODES_MAX),
                    )
                })?
            }
            (_, samples) => {
                let n = samples.unwrap_or(4096);
                crate::config::check_count("vi.samples", n, cubature::NODES_MAX)?;
                let seed = self.seed.unwrap_or(7);
                Rule::monte_carlo(d, n, seed)
                    .ok_or_else(|| Error::invalid("vi.samples", n, "too many draws"))?
            }
        };
        if self.seed.is_some() && rule.describe.starts_with("Gauss") {
            return Err(Error::invalid(
                "vi.seed",
                "set",
                "only applies to Monte Carlo expectations (d > 3 or vi.samples)",
            ));
        }
        match rule.len().checked_mul(x.nrows()) {
            Some(w) if w <= WORK_MAX => {}
            _ => {
                return Err(Error::invalid(
                    "vi.nodes",
                    rule.len(),
                    format!(
                        "nodes × data rows ({} × {}) exceeds {WORK_MAX:e} per evaluation: use fewer nodes or samples",
                        rule.len(),
                        x.nrows()
                    ),
                ));
            }
        }
        let target = Target::Logistic {
            x,
            y,
            prior_var: tau * tau,
        };
        // The exact posterior is computed once the starts are valid
        // ([`VariationalGaussian::ensure_posterior`]).
        let model = VariationalGaussian::new(self.coords(d)?, target, Some(rule));
        let start = StartSpec {
            mean: vec![0.0; d],
            cov: (0..d)
                .map(|i| {
                    (0..d)
                        .map(|j| if i == j { tau * tau } else { 0.0 })
                        .collect()
                })
                .collect(),
        };
        Ok((model, start))
    }

    /// The chart point of a start (checked: dimensions, symmetric positive definite).
    pub fn start_point(
        model: &VariationalGaussian,
        field: &str,
        s: &StartSpec,
    ) -> Result<Vec<f64>> {
        let d = model.d();
        if s.mean.len() != d {
            return Err(Error::invalid(
                format!("{field}.mean"),
                format!("{} values", s.mean.len()),
                format!("d = {d} values"),
            ));
        }
        let m = finite_vec(&format!("{field}.mean"), &s.mean)?;
        let c = spd(&format!("{field}.cov"), &s.cov, d)?;
        model.coords.from_mean_cov(&m, &c).ok_or_else(|| {
            Error::invalid(
                format!("{field}.cov"),
                "its value",
                "must be positive definite",
            )
        })
    }
}

/// Every column to mean 0, standard deviation 1 (constant columns only centred).
pub fn standardize(x: &mut DMatrix<f64>) {
    for j in 0..x.ncols() {
        let n = x.nrows() as f64;
        let mean = x.column(j).sum() / n;
        let sd = (x.column(j).map(|v| (v - mean).powi(2)).sum() / n).sqrt();
        let sd = if sd > 0.0 { sd } else { 1.0 };
        x.column_mut(j).apply(|v| *v = (*v - mean) / sd);
    }
}

/// Rows of the two classes: features (N × k) and labels ±1 (second class +1).
fn read_two_classes(
    path: &Path,
    label: &str,
    classes: &[String],
    features: &[String],
) -> Result<(DMatrix<f64>, Vec<f64>)> {
    crate::config::check_regular_file(path, 64 << 20)?;
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_two_classes(&text, path, label, classes, features)
}

/// [`read_two_classes`] on the file's text (`path` names it in errors).
pub fn parse_two_classes(
    text: &str,
    path: &Path,
    label: &str,
    classes: &[String],
    features: &[String],
) -> Result<(DMatrix<f64>, Vec<f64>)> {
    let bad = |message: String| Error::Parse {
        path: path.to_path_buf(),
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (_, header) = lines.next().ok_or_else(|| bad("no header line".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str, field: &str| {
        cols.iter().position(|c| *c == name).ok_or_else(|| {
            Error::invalid(
                field,
                format!("'{name}'"),
                format!(
                    "not a column of {} (columns: {})",
                    path.display(),
                    cols.join(", ")
                ),
            )
        })
    };
    let li = find(label, "vi.label")?;
    let fi: Vec<usize> = features
        .iter()
        .map(|f| find(f, "vi.features"))
        .collect::<Result<_>>()?;
    let mut rows: Vec<f64> = Vec::new();
    let mut y = Vec::new();
    for (ln, line) in lines {
        let v: Vec<&str> = line.split(',').map(str::trim).collect();
        if v.len() != cols.len() {
            return Err(bad(format!(
                "line {}: {} values, the header has {}",
                ln + 1,
                v.len(),
                cols.len()
            )));
        }
        let sign = if v[li] == classes[0] {
            -1.0
        } else if v[li] == classes[1] {
            1.0
        } else {
            continue;
        };
        if y.len() >= DESIGN_ROWS_MAX {
            return Err(bad(format!(
                "more than {DESIGN_ROWS_MAX} rows of the two classes"
            )));
        }
        for &j in &fi {
            let x: f64 = v[j]
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && x.abs() <= VALUE_ABS_MAX)
                .ok_or_else(|| {
                    bad(format!(
                        "line {}, column '{}': '{}' is not a finite number",
                        ln + 1,
                        cols[j],
                        v[j]
                    ))
                })?;
            rows.push(x);
        }
        y.push(sign);
    }
    for (k, c) in classes.iter().enumerate() {
        if !y.iter().any(|&s| s == if k == 0 { -1.0 } else { 1.0 }) {
            return Err(Error::invalid(
                "vi.classes",
                format!("'{c}'"),
                format!("no row of {} has {label} = {c}", path.display()),
            ));
        }
    }
    Ok((DMatrix::from_row_slice(y.len(), fi.len(), &rows), y))
}
