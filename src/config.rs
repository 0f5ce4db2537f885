//! The model-file schema (TOML, unknown keys rejected) and its validation into an [`Experiment`].
//!
//! Every value is checked once, here; the error names the file and the field and says what is
//! expected. Command-line overrides are applied to the raw file before validation, so they are
//! checked by the same code.

use crate::error::{Error, Result};
use crate::flow::{FlowSettings, SolverKind};
use crate::metric::{MetricKind, MetricOptions, MetricSection};
use crate::model::mlp_spec::MlpSection;
use crate::model::{AnyModel, GaussianMixture, LossKind, StatModel, mixture::draw_samples};
use crate::quadrature::Scheme;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[model]`: the statistical model.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model family: `"gaussian-mixture"` (default) or `"mlp"` (settings in `[mlp]`).
    #[serde(default = "default_family")]
    pub family: String,
    /// Shared standard deviation σ > 0 (mixture only; required there).
    #[serde(default = "default_missing", skip_serializing_if = "is_missing")]
    pub sigma: f64,
    /// Weight w ∈ (0, 1) of the first component (default 0.5).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Target means θ* = [μ₁*, μ₂*] (mixture only; required there).
    #[serde(default)]
    pub target: Vec<f64>,
}

/// `[loss]`: population cross-entropy or empirical negative log-likelihood.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LossSection {
    /// `"population"` (default) or `"empirical"`.
    #[serde(default = "default_loss_kind")]
    pub kind: String,
    /// Number of samples drawn from the target (empirical only; default 500).
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Seed of the sample draw (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            kind: default_loss_kind(),
            samples: default_samples(),
            seed: default_seed(),
        }
    }
}

/// `[quadrature]`: how expectations over x are computed.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuadratureSection {
    /// `"composite"` (default, accurate to ~1e-13) or `"gauss-hermite"`.
    pub scheme: Option<String>,
    /// Gauss–Hermite nodes per component (setting it selects `gauss-hermite`).
    pub nodes: Option<usize>,
}

/// `[flow]`: the ODE and how to integrate it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSection {
    pub metric: Option<String>,
    pub damping: Option<f64>,
    pub solver: Option<String>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub t_end: Option<f64>,
    pub grad_tol: Option<f64>,
    pub max_steps: Option<usize>,
    pub interior_points: Option<usize>,
    /// Jacobian of implicit solvers: "exact" (dual numbers, default) or "fd".
    pub jacobian: Option<String>,
    /// Singularity-aware step control (default true).
    pub step_control: Option<bool>,
    /// Relative damping floor ν ∈ [0, 1): λ_eff = max(λ, ν·tr I(θ)) (default 0).
    pub damping_floor: Option<f64>,
    /// Starting points, each [μ₁, μ₂].
    #[serde(default)]
    pub starts: Vec<Vec<f64>>,
}

/// `[plot]`: figure settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSection {
    /// Window [a, b] for both axes of the (μ₁, μ₂) plane; default: fitted to the trajectories.
    pub range: Option<Vec<f64>>,
}

/// The whole model file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub model: ModelSection,
    #[serde(default)]
    pub loss: LossSection,
    #[serde(default)]
    pub quadrature: QuadratureSection,
    #[serde(default)]
    pub flow: FlowSection,
    #[serde(default)]
    pub plot: PlotSection,
    /// Metric-provider settings.
    #[serde(default, skip_serializing_if = "MetricSection::is_empty")]
    pub metric: MetricSection,
    /// The network, for `model.family = "mlp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp: Option<MlpSection>,
}

fn default_family() -> String {
    "gaussian-mixture".into()
}
fn default_missing() -> f64 {
    f64::NAN
}
/// A missing σ (NaN) is left out when serializing (JSON has no NaN).
fn is_missing(v: &f64) -> bool {
    v.is_nan()
}
fn default_weight() -> f64 {
    0.5
}
fn default_loss_kind() -> String {
    "population".into()
}
fn default_samples() -> usize {
    500
}
fn default_seed() -> u64 {
    42
}

/// Command-line values that replace the file's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub metric: Option<String>,
    pub solver: Option<String>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub t_end: Option<f64>,
    pub damping: Option<f64>,
    pub nodes: Option<usize>,
    pub starts: Vec<Vec<f64>>,
}

/// A validated experiment: model, flow settings and starts.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub file_hash: String,
    /// The resolved file (defaults filled in, overrides applied).
    pub resolved: ModelFile,
    /// The model.
    pub model: AnyModel,
    /// Flow settings.
    pub flow: FlowSettings,
    /// Starting points.
    pub starts: Vec<Vec<f64>>,
    /// Plot window, if set.
    pub plot_range: Option<(f64, f64)>,
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let upto = &text[..offset.min(text.len())];
    let line = upto.matches('\n').count() + 1;
    let col = upto
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

impl Experiment {
    /// Read, parse, override and validate a model file.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Experiment> {
        // Command-line names are checked first so their errors name the flag, not the file.
        if let Some(m) = &overrides.metric {
            MetricKind::parse("--metric", m)?;
        }
        if let Some(s) = &overrides.solver {
            SolverKind::parse("--solver", s)?;
        }
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| Error::Parse {
            path: path.to_path_buf(),
            message: "not valid UTF-8 text".into(),
        })?;
        let file: ModelFile = toml::from_str(&text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            let message = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(&text, span.start);
                    format!("line {l}, column {c}: {msg}")
                }
                None => msg,
            };
            Error::Parse {
                path: path.to_path_buf(),
                message,
            }
        })?;
        Self::from_file(path, sha256_hex(&bytes), file, overrides).map_err(|e| match e {
            Error::Invalid {
                field,
                value,
                expected,
            } => Error::Parse {
                path: path.to_path_buf(),
                message: format!("invalid {field} = {value}: {expected}"),
            },
            other => other,
        })
    }

    /// Validate an already parsed file.
    pub fn from_file(
        path: &Path,
        file_hash: String,
        mut file: ModelFile,
        ov: &Overrides,
    ) -> Result<Experiment> {
        // Apply overrides to the raw file first, so the same checks see them.
        let f = &mut file.flow;
        if ov.metric.is_some() {
            f.metric = ov.metric.clone();
        }
        if ov.solver.is_some() {
            f.solver = ov.solver.clone();
        }
        f.rtol = ov.rtol.or(f.rtol);
        f.atol = ov.atol.or(f.atol);
        f.t_end = ov.t_end.or(f.t_end);
        f.damping = ov.damping.or(f.damping);
        if !ov.starts.is_empty() {
            f.starts = ov.starts.clone();
        }
        if let Some(k) = ov.nodes {
            file.quadrature.nodes = Some(k);
            file.quadrature.scheme = Some("gauss-hermite".into());
        }

        let m = &file.model;
        if m.family == "mlp" {
            return Self::from_file_mlp(path, file_hash, file);
        }
        if m.family != "gaussian-mixture" {
            return Err(Error::invalid(
                "model.family",
                format!("'{}'", m.family),
                "expected \"gaussian-mixture\" or \"mlp\"",
            ));
        }
        if file.mlp.is_some() {
            return Err(Error::invalid(
                "mlp",
                "set",
                "[mlp] applies only to model.family = \"mlp\"",
            ));
        }
        if m.sigma.is_nan() {
            return Err(Error::invalid(
                "model.sigma",
                "missing",
                "the mixture needs σ > 0",
            ));
        }
        if !(m.sigma.is_finite() && m.sigma > 0.0) {
            return Err(Error::invalid(
                "model.sigma",
                m.sigma,
                "σ must be a finite number > 0",
            ));
        }
        if !(m.weight.is_finite() && m.weight > 0.0 && m.weight < 1.0) {
            return Err(Error::invalid(
                "model.weight",
                m.weight,
                "w must lie strictly between 0 and 1",
            ));
        }
        let target = two_finite("model.target", &m.target)?;

        let scheme = match (file.quadrature.scheme.as_deref(), file.quadrature.nodes) {
            (None | Some("composite"), None) => Scheme::default(),
            (None | Some("gauss-hermite"), Some(k)) => {
                if k == 0 || k > 1000 {
                    return Err(Error::invalid(
                        "quadrature.nodes",
                        k,
                        "must be between 1 and 1000",
                    ));
                }
                Scheme::GaussHermite { nodes: k }
            }
            (Some("gauss-hermite"), None) => Scheme::GaussHermite { nodes: 64 },
            (Some("composite"), Some(_)) => {
                return Err(Error::invalid(
                    "quadrature.nodes",
                    "set",
                    "only applies to scheme = \"gauss-hermite\"",
                ));
            }
            (Some(other), _) => {
                return Err(Error::invalid(
                    "quadrature.scheme",
                    format!("'{other}'"),
                    "expected \"composite\" or \"gauss-hermite\"",
                ));
            }
        };

        let loss_kind = match file.loss.kind.as_str() {
            "population" => LossKind::Population,
            "empirical" => {
                if file.loss.samples == 0 {
                    return Err(Error::invalid("loss.samples", 0, "must be ≥ 1"));
                }
                LossKind::Empirical {
                    samples: draw_samples(
                        file.loss.samples,
                        file.loss.seed,
                        target,
                        m.sigma,
                        m.weight,
                    ),
                    seed: file.loss.seed,
                }
            }
            other => {
                return Err(Error::invalid(
                    "loss.kind",
                    format!("'{other}'"),
                    "expected \"population\" or \"empirical\"",
                ));
            }
        };

        let flow = flow_settings(&file)?;
        let f = &file.flow;
        let mut starts = Vec::new();
        for (i, s) in f.starts.iter().enumerate() {
            starts.push(two_finite(&format!("flow.starts[{i}]"), s)?.to_vec());
        }
        if starts.is_empty() {
            return Err(Error::invalid(
                "flow.starts",
                "[]",
                "give at least one start [mu1, mu2]",
            ));
        }
        let plot_range = match &file.plot.range {
            None => None,
            Some(r) => {
                let [a, b] = two_finite("plot.range", r)?;
                if a >= b {
                    return Err(Error::invalid(
                        "plot.range",
                        format!("{r:?}"),
                        "needs a < b",
                    ));
                }
                Some((a, b))
            }
        };
        let model = AnyModel::Mixture(GaussianMixture {
            sigma: m.sigma,
            w: m.weight,
            target,
            loss_kind,
            scheme,
        });
        crate::metric::provider(flow.metric, &flow.metric_options).check(&model)?;
        Ok(Experiment {
            path: path.to_path_buf(),
            file_hash,
            resolved: file,
            model,
            flow,
            starts,
            plot_range,
        })
    }

    /// Validate a file of family `"mlp"`: `[mlp]` builds the network; starts are
    /// `flow.starts` (full parameter vectors) or seeded initializations (`mlp.init_seeds`).
    fn from_file_mlp(path: &Path, file_hash: String, file: ModelFile) -> Result<Experiment> {
        let sec = file.mlp.as_ref().ok_or_else(|| {
            Error::invalid(
                "mlp",
                "missing",
                "model.family = \"mlp\" needs an [mlp] section",
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let net = sec.build(base)?;
        let n = net.dim();
        let flow = flow_settings(&file)?;
        let mut starts = Vec::new();
        for (i, s) in file.flow.starts.iter().enumerate() {
            if s.len() != n {
                return Err(Error::invalid(
                    format!("flow.starts[{i}]"),
                    format!("{} values", s.len()),
                    format!(
                        "the network has {n} parameters (leave flow.starts empty to use mlp.init_seeds)"
                    ),
                ));
            }
            if s.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    format!("flow.starts[{i}]"),
                    "non-finite",
                    "values must be finite",
                ));
            }
            starts.push(s.clone());
        }
        if starts.is_empty() {
            starts = sec.init_seeds.iter().map(|&seed| net.init(seed)).collect();
        }
        let model = AnyModel::Mlp(Box::new(net));
        crate::metric::provider(flow.metric, &flow.metric_options).check(&model)?;
        Ok(Experiment {
            path: path.to_path_buf(),
            file_hash,
            resolved: file,
            model,
            flow,
            starts,
            plot_range: None,
        })
    }
}

/// The validated `[flow]` and `[metric]` settings of a file.
fn flow_settings(file: &ModelFile) -> Result<FlowSettings> {
    let d = FlowSettings::default();
    let f = &file.flow;
    let flow = FlowSettings {
        metric: match &f.metric {
            Some(s) => MetricKind::parse("flow.metric", s)?,
            None => d.metric,
        },
        solver: match &f.solver {
            Some(s) => SolverKind::parse("flow.solver", s)?,
            None => d.solver,
        },
        damping: f.damping.unwrap_or(d.damping),
        rtol: f.rtol.unwrap_or(d.rtol),
        atol: f.atol.unwrap_or(d.atol),
        t_end: f.t_end.unwrap_or(d.t_end),
        grad_tol: f.grad_tol.unwrap_or(d.grad_tol),
        max_steps: f.max_steps.unwrap_or(d.max_steps),
        interior_points: f.interior_points.unwrap_or(d.interior_points),
        metric_options: MetricOptions::from_section(&file.metric)?,
        jacobian: match &f.jacobian {
            Some(s) => crate::flow::JacobianKind::parse("flow.jacobian", s)?,
            None => d.jacobian,
        },
        step_control: f.step_control.unwrap_or(d.step_control),
        damping_floor: f.damping_floor.unwrap_or(d.damping_floor),
        ..d
    };
    flow.validate()?;
    if flow.interior_points < 2 {
        return Err(Error::invalid(
            "flow.interior_points",
            flow.interior_points,
            "must be ≥ 2",
        ));
    }
    Ok(flow)
}

fn two_finite(field: &str, v: &[f64]) -> Result<[f64; 2]> {
    if v.len() != 2 {
        return Err(Error::invalid(
            field,
            format!("{v:?}"),
            "expected two numbers [mu1, mu2]",
        ));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            field,
            format!("{v:?}"),
            "values must be finite",
        ));
    }
    Ok([v[0], v[1]])
}

/// Parse "A,B" (command-line pairs such as `--start` and `--at`).
pub fn parse_pair(flag: &str, s: &str) -> Result<Vec<f64>> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 2 {
        return Err(Error::invalid(
            flag,
            format!("'{s}'"),
            "expected two numbers A,B",
        ));
    }
    let mut out = Vec::with_capacity(2);
    for p in parts {
        let v: f64 = p
            .parse()
            .map_err(|_| Error::invalid(flag, format!("'{s}'"), "expected two numbers A,B"))?;
        if !v.is_finite() {
            return Err(Error::invalid(
                flag,
                format!("'{s}'"),
                "values must be finite",
            ));
        }
        out.push(v);
    }
    Ok(out)
}
