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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
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
    /// Record every k-th accepted step and the last (default 1).
    pub save_every: Option<usize>,
    /// Record θ at these times (dense output) plus start and end (default: every step).
    pub save_at: Option<Vec<f64>>,
    /// Third-order correction: "none" (default) or "geodesic-acceleration".
    pub correction: Option<String>,
    /// α of the correction's connection (default 0, Levi-Civita).
    pub correction_alpha: Option<f64>,
    /// Time scale τ of the correction (default 1).
    pub correction_tau: Option<f64>,
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
    /// The variational family, for `model.family = "variational-gaussian"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vi: Option<crate::model::variational::spec::ViSection>,
    /// Grid, target and start density, for `model.family = "density"` (see
    /// [`crate::density::config`]).
    pub density: Option<crate::density::config::DensitySection>,
}

fn default_family() -> String {
    "gaussian-mixture".into()
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
    pub save_every: Option<usize>,
    pub save_at: Option<Vec<f64>>,
    pub correction: Option<String>,
    pub correction_alpha: Option<f64>,
    pub correction_tau: Option<f64>,
}

impl Overrides {
    /// The command-line flag that set the file field `field`, if an override did: errors in
    /// that field then name the flag (`--rtol`), not the model file.
    pub fn flag_for(&self, field: &str) -> Option<&'static str> {
        let set = match field {
            "flow.metric" => self.metric.is_some(),
            "flow.solver" => self.solver.is_some(),
            "flow.rtol" => self.rtol.is_some(),
            "flow.atol" => self.atol.is_some(),
            "flow.t_end" => self.t_end.is_some(),
            "flow.damping" => self.damping.is_some(),
            "quadrature.nodes" | "quadrature.scheme" => self.nodes.is_some(),
            f if f.starts_with("flow.starts") => !self.starts.is_empty(),
            "flow.save_every" => self.save_every.is_some(),
            f if f.starts_with("flow.save_at") => self.save_at.is_some(),
            "flow.correction" => self.correction.is_some(),
            "flow.correction_alpha" => self.correction_alpha.is_some(),
            "flow.correction_tau" => self.correction_tau.is_some(),
            _ => false,
        };
        let flag = match field {
            "flow.metric" => "--metric",
            "flow.solver" => "--solver",
            "flow.rtol" => "--rtol",
            "flow.atol" => "--atol",
            "flow.t_end" => "--t-end",
            "flow.damping" => "--damping",
            "quadrature.nodes" | "quadrature.scheme" => "--nodes",
            "flow.save_every" => "--save-every",
            f if f.starts_with("flow.save_at") => "--save-at",
            "flow.correction" => "--correction",
            "flow.correction_alpha" => "--correction-alpha",
            "flow.correction_tau" => "--correction-tau",
            _ => "--start",
        };
        set.then_some(flag)
    }
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
    // Back off to a character boundary: slicing inside a UTF-8 sequence would panic.
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let upto = &text[..end];
    let line = upto.matches('\n').count() + 1;
    let col = upto
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Read and parse a model file (size-checked, UTF-8, TOML with the schema's keys): the file and
/// the SHA-256 of its bytes.
pub fn read_model_file(path: &Path) -> Result<(ModelFile, String)> {
    check_regular_file(path, limits::MODEL_FILE_BYTES_MAX)?;
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
    Ok((file, sha256_hex(&bytes)))
}

/// Map a validation error of a model file to one naming the file (or, when a command-line
/// override set the field, the flag).
pub fn blame(path: &Path, overrides: &Overrides, e: Error) -> Error {
    match e {
        Error::Invalid {
            field,
            value,
            expected,
        } if overrides.flag_for(&field).is_some() => Error::Invalid {
            field: overrides.flag_for(&field).unwrap_or_default().into(),
            value,
            expected,
        },
        Error::Invalid {
            field,
            value,
            expected,
        } => Error::Parse {
            path: path.to_path_buf(),
            message: format!("invalid {field} = {value}: {expected}"),
        },
        other => other,
    }
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
        let (file, hash) = read_model_file(path)?;
        Self::from_file(path, hash, file, overrides).map_err(|e| blame(path, overrides, e))
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
        f.save_every = ov.save_every.or(f.save_every);
        if ov.save_at.is_some() {
            f.save_at = ov.save_at.clone();
        }
        if !ov.starts.is_empty() {
            f.starts = ov.starts.clone();
        }
        if ov.correction.is_some() {
            f.correction = ov.correction.clone();
        }
        f.correction_alpha = ov.correction_alpha.or(f.correction_alpha);
        f.correction_tau = ov.correction_tau.or(f.correction_tau);
        if let Some(k) = ov.nodes {
            file.quadrature.nodes = Some(k);
            file.quadrature.scheme = Some("gauss-hermite".into());
        }

        let m = &file.model;
        if m.family == "density" {
            return Err(Error::invalid(
                "model.family",
                "\"density\"",
                "the density family is handled by `run`, `compare` and `check` only (this command needs a parametric model: \"gaussian-mixture\" or \"mlp\")",
            ));
        }
        section_only("density", file.density.is_some(), "density")?;
        if m.family == "mlp" {
            return Self::from_file_mlp(path, file_hash, file);
        }
        if m.family == "variational-gaussian" {
            return Self::from_file_vi(path, file_hash, file);
        }
        section_only("vi", file.vi.is_some(), "variational-gaussian")?;
        if m.family != "gaussian-mixture" {
            return Err(Error::invalid(
                "model.family",
                format!("'{}'", m.family),
                "expected \"gaussian-mixture\", \"mlp\", \"variational-gaussian\" or \"density\"",
            ));
        }
        section_only("mlp", file.mlp.is_some(), "mlp")?;
        let sigma = match m.sigma {
            None => {
                return Err(Error::invalid(
                    "model.sigma",
                    "missing",
                    "the mixture needs σ > 0",
                ));
            }
            Some(v) => check_sigma("model.sigma", v)?,
        };
        if !(m.weight.is_finite() && m.weight > 0.0 && m.weight < 1.0) {
            return Err(Error::invalid(
                "model.weight",
                m.weight,
                "w must lie strictly between 0 and 1",
            ));
        }
        let target = two_finite("model.target", &m.target)?;
        check_means("model.target", &target, sigma)?;

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
                let n = check_count("loss.samples", file.loss.samples, limits::SAMPLES_MAX)?;
                check_memory("loss.samples", n.checked_mul(8))?;
                LossKind::Empirical {
                    samples: draw_samples(n, file.loss.seed, target, sigma, m.weight),
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
        // The sampled mixture Fisher draws `samples` points (and their scores) per evaluation.
        check_memory(
            "metric.samples",
            flow.metric_options.samples.checked_mul(24),
        )?;
        let f = &file.flow;
        let mut starts = Vec::new();
        for (i, s) in f.starts.iter().enumerate() {
            let field = format!("flow.starts[{i}]");
            let p = two_finite(&field, s)?;
            check_means(&field, &p, sigma)?;
            starts.push(p.to_vec());
        }
        if starts.is_empty() {
            return Err(Error::invalid(
                "flow.starts",
                "[]",
                "give at least one start [mu1, mu2]",
            ));
        }
        check_spread(
            "model.sigma",
            sigma,
            target.iter().chain(starts.iter().flatten()),
        )?;
        let plot_range = match &file.plot.range {
            None => None,
            Some(r) => {
                let [a, b] = two_finite("plot.range", r)?;
                check_window_for("plot.range", a, b, sigma)?;
                Some((a, b))
            }
        };
        let model = AnyModel::Mixture(GaussianMixture {
            sigma,
            w: m.weight,
            target,
            loss_kind,
            scheme,
        });
        crate::metric::provider(flow.metric, &flow.metric_options).check(&model)?;
        check_correction(&flow, true)?;
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
        let flow = flow_settings(&file)?;
        let net = sec.build(base, &flow)?;
        let n = net.dim();
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
            if let Some(v) = s.iter().find(|v| !within(**v, limits::MLP_START_ABS_MAX)) {
                return Err(Error::invalid(
                    format!("flow.starts[{i}]"),
                    format!("{v:?}"),
                    format!(
                        "parameters must be finite with |θᵢ| ≤ {:e}",
                        limits::MLP_START_ABS_MAX
                    ),
                ));
            }
            starts.push(s.clone());
        }
        if starts.is_empty() {
            starts = sec.init_seeds.iter().map(|&seed| net.init(seed)).collect();
        }
        let model = AnyModel::Mlp(Box::new(net));
        crate::metric::provider(flow.metric, &flow.metric_options).check(&model)?;
        check_correction(&flow, false)?;
        if flow.metric != MetricKind::Euclidean
            && flow.damping_floor == 0.0
            && flow.damping < limits::MLP_DAMPING_MIN
        {
            return Err(Error::invalid(
                "flow.damping",
                format!("{:?}", flow.damping),
                format!(
                    "the MLP's Fisher is singular: metric {} needs damping ≥ {:e} (e.g. 1e-4) or flow.damping_floor > 0; undamped, the flow is stiff and stalls at t ≈ 0",
                    flow.metric.name(),
                    limits::MLP_DAMPING_MIN
                ),
            ));
        }
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

impl Experiment {
    /// Validate a file of family `"variational-gaussian"`: `[vi]` builds the family and its
    /// target; starts are `flow.starts` (chart vectors), `[[vi.start]]` (mean, cov) or the prior.
    fn from_file_vi(path: &Path, file_hash: String, file: ModelFile) -> Result<Experiment> {
        use crate::model::variational::spec::ViSection;
        let sec = file.vi.as_ref().ok_or_else(|| {
            Error::invalid(
                "vi",
                "missing",
                "model.family = \"variational-gaussian\" needs a [vi] section",
            )
        })?;
        section_only("mlp", file.mlp.is_some(), "mlp")?;
        let base = path.parent().unwrap_or(Path::new("."));
        let flow = flow_settings(&file)?;
        let (model, prior) = sec.build(base)?;
        let n = model.dim();
        let mut starts = Vec::new();
        for (i, s) in file.flow.starts.iter().enumerate() {
            let field = format!("flow.starts[{i}]");
            if s.len() != n {
                return Err(Error::invalid(
                    field,
                    format!("{} values", s.len()),
                    format!(
                        "the {} chart has {n} parameters ({}); or give [[vi.start]] mean and cov",
                        model.coords.chart.name(),
                        model.param_names().join(", ")
                    ),
                ));
            }
            if model.coords.mean_cov(s).is_none() {
                return Err(Error::invalid(
                    field,
                    format!("{s:?}"),
                    "outside the chart's domain (the covariance must be positive definite)",
                ));
            }
            starts.push(s.clone());
        }
        for (i, s) in sec.start.iter().enumerate() {
            starts.push(ViSection::start_point(
                &model,
                &format!("vi.start[{i}]"),
                s,
            )?);
        }
        if starts.is_empty() {
            starts.push(ViSection::start_point(
                &model,
                "vi (prior as start)",
                &prior,
            )?);
        }
        let mut model = model;
        model.restate_error(&starts);
        model.ensure_posterior();
        let model = AnyModel::Variational(Box::new(model));
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

/// `Err` naming `[section]` when it is present in a file whose family is not `family`.
fn section_only(section: &str, present: bool, family: &str) -> Result<()> {
    if present {
        return Err(Error::invalid(
            section,
            "set",
            format!("[{section}] applies only to model.family = \"{family}\""),
        ));
    }
    Ok(())
}

/// A third-order correction needs what it is defined for: the exact Fisher metric (the
/// geodesics of G) — undamped for the mixture (its descent bound is in G's norm), with a fixed
/// damping λ for the MLP (whose Fisher is singular; the bound is then in G + λI's norm,
/// [`crate::geometry::mlp`]) — and no damping floor.
fn check_correction(flow: &FlowSettings, mixture: bool) -> Result<()> {
    if flow.correction.is_none() {
        return Ok(());
    }
    let why = if flow.metric != MetricKind::Exact {
        Some("needs flow.metric = \"exact\" (the geodesics of the Fisher metric)")
    } else if mixture && (flow.damping != 0.0 || flow.damping_floor != 0.0) {
        Some("needs flow.damping = 0 and no damping floor (the descent bound is in G's norm)")
    } else if flow.damping_floor != 0.0 {
        Some(
            "needs a fixed flow.damping and no damping floor (the descent bound is in G + λI's norm)",
        )
    } else {
        None
    };
    match why {
        Some(w) => Err(Error::invalid(
            "flow.correction",
            format!("'{}'", flow.correction.name()),
            w,
        )),
        None => Ok(()),
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
        save_every: f.save_every.unwrap_or(d.save_every),
        save_at: f.save_at.clone().unwrap_or_default(),
        correction: crate::geometry::correction::Correction::parse(
            f.correction.as_deref().unwrap_or("none"),
            f.correction_alpha.unwrap_or(0.0),
            f.correction_tau.unwrap_or(1.0),
        )?,
        ..d
    };
    flow.validate()?;
    check_in("flow.rtol", flow.rtol, limits::RTOL, limits::RTOL_WHY)?;
    check_in("flow.atol", flow.atol, limits::ATOL, limits::ATOL_WHY)?;
    check_in("flow.t_end", flow.t_end, limits::T_END, limits::T_END_WHY)?;
    if flow.damping > limits::DAMPING_MAX {
        return Err(Error::invalid(
            "flow.damping",
            format!("{:?}", flow.damping),
            format!("must be a finite number in [0, {:e}]", limits::DAMPING_MAX),
        ));
    }
    if !(2..=limits::INTERIOR_POINTS_MAX).contains(&flow.interior_points) {
        return Err(Error::invalid(
            "flow.interior_points",
            flow.interior_points,
            format!(
                "must be between 2 and {} (loss samples per step for the certificate)",
                limits::INTERIOR_POINTS_MAX
            ),
        ));
    }
    check_count("flow.max_steps", flow.max_steps, limits::MAX_STEPS_MAX)?;
    check_count(
        "metric.samples",
        flow.metric_options.samples,
        limits::METRIC_SAMPLES_MAX,
    )?;
    check_count(
        "metric.kfac_samples",
        flow.metric_options.kfac_samples,
        limits::KFAC_SAMPLES_MAX,
    )?;
    Ok(flow)
}

/// The ranges every number of a model file (and every command-line value that replaces one)
/// must lie in. They follow from what f64 arithmetic can represent and resolve; README's
/// model-file table states them.
pub mod limits {
    /// σ of the mixture: σ² and 1/σ² stay normal numbers, and with |μ| ≤ 1e8·σ the loss
    /// (≈ ½(Δ/σ)²), its gradient (≈ Δ/σ²) and the Fisher matrix (≈ (Δ/σ)²/σ²) stay finite.
    pub const SIGMA: (f64, f64) = (1e-100, 1e100);
    /// Means, starts and windows of the mixture: |μ| ≤ 1e8·σ. The quadrature nodes sit at
    /// μ ± O(σ) and x − μ is rounded by 1.1e-16·|μ|, i.e. by ≤ 1.1e-8 σ; beyond, whole panels
    /// collapse onto one float (a target at ±1e300 with σ = 1 gave loss 0 and "converged").
    pub const MEAN_PER_SIGMA: f64 = 1e8;
    /// The spread of the target's and starts' coordinates must be at least this times σ
    /// (see [`super::check_spread`]).
    pub const SPREAD_PER_SIGMA_MIN: f64 = 1e-6;
    /// rtol: below 1e-14 (≈ 50 ε) an explicit step's own rounding exceeds the tolerance and the
    /// step size collapses; above 1 the error control controls nothing.
    pub const RTOL: (f64, f64) = (1e-14, 1.0);
    /// Why rtol is bounded (for the error message).
    pub const RTOL_WHY: &str = "below, rounding exceeds the tolerance and the step size collapses; above, nothing is controlled";
    /// atol: a floor for components near 0. Measured on models/mlp-synthetic.toml (biases
    /// start at 0): 1e-100 reaches t_end in 2.3 s, 1e-200 and 1e-300 stall at t ≈ 0 until
    /// the step cap; above 1e3 the error control controls nothing.
    pub const ATOL: (f64, f64) = (1e-30, 1e3);
    /// Why atol is bounded.
    pub const ATOL_WHY: &str =
        "below, components starting at 0 stall the step size; above, nothing is controlled";
    /// t_end: diffsol refuses an end time within rounding of t = 0 (1e-20 failed, 1e-16
    /// worked); 1e12 is far beyond any flow's time scale (the step cap ends runs anyway).
    pub const T_END: (f64, f64) = (1e-12, 1e12);
    /// Why t_end is bounded.
    pub const T_END_WHY: &str =
        "below, the end time is within rounding of the start; above, beyond any time scale";
    /// λ: beyond, I + λ is λ to every digit.
    pub const DAMPING_MAX: f64 = 1e100;
    /// The MLP's Fisher is singular (softmax: adding a constant to every output leaves p
    /// unchanged; any width: symmetric units), so every Fisher-type metric of an MLP needs
    /// λ ≥ this or a damping floor: with λ = 0 the pseudo-inverse's 1e-12 cutoff lets
    /// eigenvalues ~1e-12·λ_max through, the flow is stiff and stalls at t ≈ 0 until the step
    /// cap (measured: 1000 steps reach t < 0.03 at λ ≤ 1e-8 on models/mlp-synthetic.toml).
    pub const MLP_DAMPING_MIN: f64 = 1e-12;
    /// Dense-output loss samples per step.
    pub const INTERIOR_POINTS_MAX: usize = 1000;
    /// Step cap per trajectory.
    pub const MAX_STEPS_MAX: usize = 100_000_000;
    /// loss.samples and mlp.synthetic.n.
    pub const SAMPLES_MAX: usize = 100_000_000;
    /// metric.samples (drawn at every metric evaluation).
    pub const METRIC_SAMPLES_MAX: usize = 10_000_000;
    /// metric.kfac_samples (target draws per example at every evaluation).
    pub const KFAC_SAMPLES_MAX: usize = 10_000;
    /// Units of one MLP layer.
    pub const LAYER_MAX: usize = 1 << 24;
    /// MLP layers.
    pub const LAYERS_MAX: usize = 1000;
    /// |value| of CSV data and MLP start parameters: with noise ∈ [1e-6, 1e6] the loss
    /// (z − y)²/σ² and its gradient stay finite.
    pub const DATA_ABS_MAX: f64 = 1e100;
    /// |θᵢ| of an MLP start.
    pub const MLP_START_ABS_MAX: f64 = 1e6;
    /// σ of the MLP's Gaussian output.
    pub const MLP_NOISE: (f64, f64) = (1e-6, 1e6);
    /// Noise of the synthetic targets.
    pub const SYNTHETIC_NOISE_MAX: f64 = 1e6;
    /// Model files larger than this are refused (the demos are < 4 kB).
    pub const MODEL_FILE_BYTES_MAX: u64 = 16 << 20;
    /// Used when /proc/meminfo cannot be read: allocations above this are refused.
    pub const MEMORY_FALLBACK_BYTES: u64 = 8 << 30;
}

/// |x| ≤ bound (false for NaN).
fn within(x: f64, bound: f64) -> bool {
    x.abs().partial_cmp(&bound).is_some_and(|o| o.is_le())
}

/// `v` as σ: finite and within [`limits::SIGMA`]; the error says NaN where it is NaN.
pub fn check_sigma(field: &str, v: f64) -> Result<f64> {
    let (lo, hi) = limits::SIGMA;
    if v.is_nan() {
        return Err(Error::invalid(
            field,
            "NaN",
            "NaN is not a number; σ must be > 0",
        ));
    }
    if !(lo..=hi).contains(&v) {
        return Err(Error::invalid(
            field,
            format!("{v:?}"),
            format!("σ must lie in [{lo:e}, {hi:e}] (σ² and 1/σ² representable)"),
        ));
    }
    Ok(v)
}

/// Means (target, starts, window ends) of the mixture: |μ| ≤ [`limits::MEAN_PER_SIGMA`]·σ.
pub fn check_means(field: &str, v: &[f64], sigma: f64) -> Result<()> {
    let bound = limits::MEAN_PER_SIGMA * sigma;
    if let Some(x) = v.iter().find(|x| !within(**x, bound)) {
        return Err(Error::invalid(
            field,
            format!("{v:?}"),
            format!(
                "{x:?} is out of range: |value| ≤ {:e}·σ = {bound:e} (the quadrature resolves x − μ to 1.1e-16·|μ|)",
                limits::MEAN_PER_SIGMA
            ),
        ));
    }
    Ok(())
}

/// σ against the spread s = max − min of the target's and the starts' coordinates: s ≥
/// [`limits::SPREAD_PER_SIGMA_MIN`]·σ. Below, every point is within s ≪ σ of every other: the
/// loss differs from point to point by ≈ (s/σ)² of itself, under the quadrature's 1e-13 once
/// s/σ < 3e-7, and the Fisher matrix's small eigenvalue ≈ (s/σ)²/σ² is lost (κ = ∞ was
/// reported off the singular line for σ ≥ 4.3e9 with the demo's target).
pub fn check_spread<'a>(
    field: &str,
    sigma: f64,
    coords: impl Iterator<Item = &'a f64>,
) -> Result<()> {
    let (lo, hi) = coords.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
        (a.min(x), b.max(x))
    });
    let spread = hi - lo;
    if spread < limits::SPREAD_PER_SIGMA_MIN * sigma {
        return Err(Error::invalid(
            field,
            format!("{sigma:?}"),
            format!(
                "σ is more than {:e} × the spread {spread:?} of the target and the starts: the components cannot be told apart in double precision",
                1.0 / limits::SPREAD_PER_SIGMA_MIN
            ),
        ));
    }
    Ok(())
}

/// A window [a, b] of the (μ₁, μ₂) plane for a mixture of standard deviation σ: finite,
/// a < b, both ends within [`check_means`].
pub fn check_window_for(field: &str, a: f64, b: f64, sigma: f64) -> Result<()> {
    if !(a.is_finite() && b.is_finite() && a < b) {
        return Err(Error::invalid(
            field,
            format!("[{a}, {b}]"),
            "needs finite a < b",
        ));
    }
    check_means(field, &[a, b], sigma)
}

/// `v` within `range` (finite); NaN is named as such.
fn check_in(field: &str, v: f64, (lo, hi): (f64, f64), why: &str) -> Result<()> {
    if v.is_nan() {
        return Err(Error::invalid(field, "NaN", "NaN is not a number"));
    }
    if !(lo..=hi).contains(&v) {
        return Err(Error::invalid(
            field,
            format!("{v:?}"),
            format!("must lie in [{lo:e}, {hi:e}] ({why})"),
        ));
    }
    Ok(())
}

/// A count in 1..=max.
pub fn check_count(field: &str, n: usize, max: usize) -> Result<usize> {
    if n == 0 || n > max {
        return Err(Error::invalid(
            field,
            n,
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(n)
}

/// Bytes the machine can still give: `MemAvailable` of /proc/meminfo, else
/// [`limits::MEMORY_FALLBACK_BYTES`].
pub fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .and_then(|kb| kb.checked_mul(1024))
        })
        .unwrap_or(limits::MEMORY_FALLBACK_BYTES)
}

/// Refuse an allocation of `bytes` (`None`: the size overflowed) larger than half the memory
/// the machine has available, naming the field responsible.
pub fn check_memory(field: &str, bytes: Option<usize>) -> Result<()> {
    let avail = available_memory();
    let budget = avail / 2;
    match bytes {
        Some(b) if (b as u64) <= budget => Ok(()),
        Some(b) => Err(Error::invalid(
            field,
            "its value",
            format!(
                "needs ≈ {:.3} GB of memory, more than half of the {:.3} GB available",
                b as f64 / 1e9,
                avail as f64 / 1e9
            ),
        )),
        None => Err(Error::invalid(
            field,
            "its value",
            "the memory it needs overflows a 64-bit count",
        )),
    }
}

/// Refuse what is not a regular file (a FIFO would block forever, a device never end) or is
/// larger than `max_bytes`.
pub fn check_regular_file(path: &Path, max_bytes: u64) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |msg: String| Error::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, msg),
    };
    if !meta.is_file() {
        return Err(bad(if meta.is_dir() {
            "is a directory, not a file".into()
        } else {
            "not a regular file (a FIFO, socket or device)".into()
        }));
    }
    if meta.len() > max_bytes {
        return Err(bad(format!(
            "{} bytes, more than the {max_bytes} accepted",
            meta.len()
        )));
    }
    Ok(())
}

impl Experiment {
    /// σ of the mixture.
    pub fn sigma(&self) -> Option<f64> {
        self.model.as_mixture().map(|m| m.sigma)
    }

    /// Check a window [a, b] of the plane given by `field` (`--range`): finite, a < b, and
    /// within the mixture's numeric range (see [`limits::MEAN_PER_SIGMA`]).
    pub fn check_window(&self, field: &str, a: f64, b: f64) -> Result<()> {
        match self.sigma() {
            Some(s) => check_window_for(field, a, b, s),
            None => check_window_for(field, a, b, f64::INFINITY),
        }
    }

    /// Check a point θ given by `field` (`--at`): the mixture's numeric range for each
    /// coordinate (see [`limits::MEAN_PER_SIGMA`]), or the MLP start bound.
    pub fn check_point(&self, field: &str, theta: &[f64]) -> Result<()> {
        match self.sigma() {
            Some(s) => check_means(field, theta, s),
            None => match theta
                .iter()
                .find(|v| !within(**v, limits::MLP_START_ABS_MAX))
            {
                Some(v) => Err(Error::invalid(
                    field,
                    format!("{v:?}"),
                    format!(
                        "parameters must be finite with |θᵢ| ≤ {:e}",
                        limits::MLP_START_ABS_MAX
                    ),
                )),
                None => Ok(()),
            },
        }
    }

    /// Check a σ that replaces the file's (`manifold --sigma`): its own range, and the
    /// target, starts and window against it.
    pub fn check_sigma_override(&self, field: &str, sigma: f64) -> Result<()> {
        check_sigma(field, sigma)?;
        if let Some(m) = self.model.as_mixture() {
            check_spread(
                field,
                sigma,
                m.target.iter().chain(self.starts.iter().flatten()),
            )?;
            let mut pts: Vec<f64> = m.target.to_vec();
            if let Some((a, b)) = self.plot_range {
                pts.extend([a, b]);
            }
            let bound = limits::MEAN_PER_SIGMA * sigma;
            if let Some(x) = pts.iter().find(|x| !within(**x, bound)) {
                return Err(Error::invalid(
                    field,
                    format!("{sigma:?}"),
                    format!(
                        "too small for the model's means: {x:e} exceeds {:e}·σ = {bound:e}",
                        limits::MEAN_PER_SIGMA
                    ),
                ));
            }
        }
        Ok(())
    }
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
