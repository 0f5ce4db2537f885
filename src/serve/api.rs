//! The JSON API of `fisher-flow explore`: one checked parameter type, validated once, and one
//! plain function per endpoint (no HTTP in here, so benches and tests call them directly).
//!
//! Every number comes from the library code the command line uses: `/api/metric` is
//! [`PointReport::for_experiment`] (what `fisher-flow metric --at --json` prints), the field
//! is [`manifold::ellipse_field`] and [`manifold::heat_map`], particles are integrated by the
//! study layer ([`manifold::particles`]) with dense output at `frames` equally spaced times,
//! the exports are [`manifold::build`] drawn by [`plot::manifold::manifold`] and the resolved
//! model file. Overrides of σ, w and θ* are applied to the model file and validated by
//! [`Experiment::from_file`], so the page accepts exactly what a model file accepts.

use crate::config::{Experiment, ModelFile, Overrides, check_means, parse_pair};
use crate::error::Error;
use crate::inspect::PointReport;
use crate::manifold::{self, Background, ManifoldOptions, StartLayout};
use crate::metric::MetricKind;
use crate::plot::manifold::{Ellipse, HeatMap, Particle};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Most ellipses per axis a request may ask for.
pub const MAX_GRID: usize = 41;
/// Most particles per request (natural and Euclidean each).
pub const MAX_PARTICLES: usize = 200;
/// Longest flow horizon.
pub const MAX_T_END: f64 = 100.0;
/// Most dense-output frames per particle.
pub const MAX_FRAMES: usize = 400;
/// Most heat-map nodes per axis (the figure export always uses 101, as `manifold` does).
pub const MAX_NODES: usize = 101;
/// Largest ellipse scale.
pub const MAX_SCALE: f64 = 10.0;
/// Longest query string, bytes.
pub const MAX_QUERY: usize = 4096;

/// A request error: HTTP status, message and the parameter it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// 400 for bad input, 404 for an unknown path, 500 for a failed computation, 503 on timeout.
    pub status: u16,
    pub message: String,
    /// The query parameter at fault (`sigma`, `mu1`, …), when there is one.
    pub parameter: Option<String>,
}

impl ApiError {
    /// A 400 naming `parameter`.
    pub fn bad(parameter: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            parameter: Some(parameter.to_string()),
        }
    }

    /// The JSON body `{"error": …, "parameter": …}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.message, "parameter": self.parameter })
    }

    /// A library error: `Invalid` becomes a 400 naming the query parameter behind the field.
    fn from_lib(e: Error) -> Self {
        match &e {
            Error::Invalid { field, .. } => ApiError::bad(parameter_of(field), e.to_string()),
            Error::Parse { .. } => ApiError::bad(
                "query",
                format!("{e} (the overrides make an invalid model file)"),
            ),
            _ => ApiError {
                status: 500,
                message: e.to_string(),
                parameter: None,
            },
        }
    }
}

/// The query parameter that sets a model-file field (errors of [`Experiment::from_file`]).
fn parameter_of(field: &str) -> &str {
    match field {
        "model.sigma" | "plot.range" => "sigma",
        "model.weight" => "w",
        "model.target" => "t1",
        f if f.starts_with("flow.starts") => "sigma",
        f => f,
    }
}

/// Every parameter any endpoint takes, with what it means (for error messages and /api/config).
pub const PARAMETERS: &[(&str, &str)] = &[
    ("mu1", "μ₁ of the point (metric)"),
    ("mu2", "μ₂ of the point (metric)"),
    ("sigma", "σ > 0 replacing the model file's"),
    ("w", "weight w ∈ (0, 1) replacing the model file's"),
    ("t1", "μ₁* of the target replacing the model file's"),
    ("t2", "μ₂* of the target replacing the model file's"),
    ("grid", "ellipses per axis, 1…41"),
    ("scale", "ellipse scale C, (0, 10]"),
    ("heat", "kappa | angle | none"),
    ("nodes", "heat-map nodes per axis, 2…101"),
    ("n", "particles, 0…200"),
    ("seed", "seed of the random particle starts"),
    ("t_end", "flow horizon, (0, 100]"),
    ("frames", "dense-output times per particle, 2…400"),
    ("euclid", "also Euclidean particles: 0 | 1"),
    ("probe", "probe point MU1,MU2 drawn in the export"),
    (
        "rtol",
        "relative tolerance of the particles' solver replacing the file's (the page uses 1e-6)",
    ),
    (
        "quad",
        "K-node Gauss–Hermite quadrature instead of the file's rule (as --nodes K; the page's live field and particles use 32)",
    ),
];

/// The parameters of one request, each checked once. Unset means the endpoint's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pub mu: Option<[f64; 2]>,
    pub sigma: Option<f64>,
    pub w: Option<f64>,
    pub t1: Option<f64>,
    pub t2: Option<f64>,
    pub grid: Option<usize>,
    pub scale: Option<f64>,
    pub heat: Option<Background>,
    pub nodes: Option<usize>,
    pub n: Option<usize>,
    pub seed: Option<u64>,
    pub t_end: Option<f64>,
    pub frames: Option<usize>,
    pub euclid: bool,
    pub probe: Option<[f64; 2]>,
    pub quad: Option<usize>,
    pub rtol: Option<f64>,
}

fn finite(name: &str, v: &str) -> Result<f64, ApiError> {
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| ApiError::bad(name, format!("{name} = '{v}' is not a number")))?;
    if !x.is_finite() {
        return Err(ApiError::bad(
            name,
            format!("{name} = '{v}' must be a finite number"),
        ));
    }
    Ok(x)
}

fn count(name: &str, v: &str, lo: usize, hi: usize) -> Result<usize, ApiError> {
    let k: usize = v.trim().parse().map_err(|_| {
        ApiError::bad(
            name,
            format!("{name} = '{v}' is not a whole number in {lo}…{hi}"),
        )
    })?;
    if !(lo..=hi).contains(&k) {
        return Err(ApiError::bad(
            name,
            format!("{name} = {k} is out of range: must be between {lo} and {hi}"),
        ));
    }
    Ok(k)
}

fn positive_at_most(name: &str, v: &str, hi: f64) -> Result<f64, ApiError> {
    let x = finite(name, v)?;
    if !(x > 0.0 && x <= hi) {
        return Err(ApiError::bad(
            name,
            format!("{name} = {x} is out of range: must be > 0 and ≤ {hi}"),
        ));
    }
    Ok(x)
}

impl Params {
    /// Parse a URL query string, accepting only the names in `allowed`; `mu1`/`mu2` are
    /// required when allowed. Every error names the parameter.
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Params, ApiError> {
        if query.len() > MAX_QUERY {
            return Err(ApiError::bad(
                "query",
                format!(
                    "the query string has {} bytes; at most {MAX_QUERY}",
                    query.len()
                ),
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad("query", format!("malformed query string: {e}")))?;
        let mut seen: Vec<&str> = Vec::new();
        let mut p = Params::default();
        let mut mu = [None, None];
        for (name, v) in &pairs {
            let Some(&known) = allowed.iter().find(|a| **a == name.as_str()) else {
                return Err(ApiError::bad(
                    name,
                    format!(
                        "unknown parameter '{name}': this endpoint takes {}",
                        allowed.join(", ")
                    ),
                ));
            };
            if seen.contains(&known) {
                return Err(ApiError::bad(name, format!("{name} is given twice")));
            }
            seen.push(known);
            if v.trim().is_empty() {
                return Err(ApiError::bad(name, format!("{name} has no value")));
            }
            match known {
                "mu1" => mu[0] = Some(finite(known, v)?),
                "mu2" => mu[1] = Some(finite(known, v)?),
                "sigma" => p.sigma = Some(finite(known, v)?),
                "w" => p.w = Some(finite(known, v)?),
                "t1" => p.t1 = Some(finite(known, v)?),
                "t2" => p.t2 = Some(finite(known, v)?),
                "grid" => p.grid = Some(count(known, v, 1, MAX_GRID)?),
                "scale" => p.scale = Some(positive_at_most(known, v, MAX_SCALE)?),
                "heat" => {
                    p.heat = Some(
                        Background::parse(known, v)
                            .map_err(|e| ApiError::bad(known, e.to_string()))?,
                    )
                }
                "nodes" => p.nodes = Some(count(known, v, 2, MAX_NODES)?),
                "n" => p.n = Some(count(known, v, 0, MAX_PARTICLES)?),
                "seed" => {
                    p.seed = Some(v.trim().parse().map_err(|_| {
                        ApiError::bad(known, format!("seed = '{v}' is not a whole number ≥ 0"))
                    })?)
                }
                "t_end" => p.t_end = Some(positive_at_most(known, v, MAX_T_END)?),
                "frames" => p.frames = Some(count(known, v, 2, MAX_FRAMES)?),
                "euclid" => {
                    p.euclid = match v.as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(ApiError::bad(
                                known,
                                format!("euclid = '{v}': expected 0 or 1"),
                            ));
                        }
                    }
                }
                "rtol" => p.rtol = Some(finite(known, v)?),
                "quad" => {
                    p.quad = Some(v.trim().parse().map_err(|_| {
                        ApiError::bad(known, format!("quad = '{v}' is not a whole number"))
                    })?)
                }
                "probe" => {
                    let q =
                        parse_pair(known, v).map_err(|e| ApiError::bad(known, e.to_string()))?;
                    p.probe = Some([q[0], q[1]]);
                }
                _ => {}
            }
        }
        if allowed.contains(&"mu1") {
            for (k, name) in ["mu1", "mu2"].iter().enumerate() {
                if mu[k].is_none() {
                    return Err(ApiError::bad(name, format!("{name} is required")));
                }
            }
            p.mu = Some([mu[0].unwrap_or_default(), mu[1].unwrap_or_default()]);
        }
        Ok(p)
    }
}

/// Parameters of each endpoint.
pub const METRIC_PARAMS: &[&str] = &["mu1", "mu2", "sigma", "w", "t1", "t2", "quad"];
pub const FIELD_PARAMS: &[&str] = &[
    "sigma", "w", "t1", "t2", "grid", "scale", "heat", "nodes", "quad",
];
pub const PARTICLE_PARAMS: &[&str] = &[
    "sigma", "w", "t1", "t2", "n", "seed", "t_end", "frames", "euclid", "quad", "rtol",
];
pub const EXPORT_PARAMS: &[&str] = &[
    "sigma", "w", "t1", "t2", "grid", "scale", "heat", "n", "seed", "t_end", "probe",
];
pub const MODEL_PARAMS: &[&str] = &["sigma", "w", "t1", "t2", "t_end"];

/// The model file the server was started with: parsed once, overridden per request.
#[derive(Clone, Debug)]
pub struct Base {
    /// Where it came from (shown on the page; the built-in seed model has a made-up name).
    pub path: PathBuf,
    pub hash: String,
    pub file: ModelFile,
    /// The experiment as loaded (no overrides).
    pub exp: Experiment,
}

/// The model file `models/gmm-seed.toml`, built in: `explore` without a model file shows it.
pub const SEED_MODEL: &str = include_str!("../../models/gmm-seed.toml");

impl Base {
    /// Parse and validate a model file (or the built-in seed model); it must be a mixture.
    pub fn load(path: Option<&std::path::Path>) -> crate::Result<Base> {
        let (path, exp) = match path {
            Some(p) => (p.to_path_buf(), Experiment::load(p, &Overrides::default())?),
            None => {
                let path = PathBuf::from("models/gmm-seed.toml (built in)");
                let file: ModelFile = toml::from_str(SEED_MODEL).map_err(|e| Error::Parse {
                    path: path.clone(),
                    message: e.message().to_string(),
                })?;
                let hash = crate::config::sha256_hex(SEED_MODEL.as_bytes());
                (
                    path.clone(),
                    Experiment::from_file(&path, hash, file, &Overrides::default())?,
                )
            }
        };
        manifold::view_model(&exp, &ManifoldOptions::default())?;
        Ok(Base {
            path,
            hash: exp.file_hash.clone(),
            file: exp.resolved.clone(),
            exp,
        })
    }

    /// The experiment with the request's σ, w, θ* (and horizon) in place of the file's,
    /// validated by the model-file code; errors name the query parameter.
    pub fn experiment(&self, p: &Params) -> Result<Experiment, ApiError> {
        if p.sigma.is_none()
            && p.w.is_none()
            && p.t1.is_none()
            && p.t2.is_none()
            && p.t_end.is_none()
            && p.quad.is_none()
            && p.rtol.is_none()
        {
            return Ok(self.exp.clone());
        }
        let mut file = self.file.clone();
        if let Some(s) = p.sigma {
            crate::config::check_sigma("sigma", s).map_err(ApiError::from_lib)?;
            file.model.sigma = Some(s);
        }
        let sigma = file.model.sigma.unwrap_or(1.0);
        if let Some(w) = p.w {
            if !(w > 0.0 && w < 1.0) {
                return Err(ApiError::bad(
                    "w",
                    format!(
                        "w = {w} is out of range: the weight must lie strictly between 0 and 1"
                    ),
                ));
            }
            file.model.weight = w;
        }
        for (k, (name, v)) in [("t1", p.t1), ("t2", p.t2)].into_iter().enumerate() {
            if let Some(v) = v {
                check_means(name, &[v], sigma).map_err(ApiError::from_lib)?;
                if file.model.target.len() == 2 {
                    file.model.target[k] = v;
                }
            }
        }
        if let Some(t) = p.t_end {
            file.flow.t_end = Some(t);
        }
        let ov = Overrides {
            nodes: p.quad,
            rtol: p.rtol,
            ..Overrides::default()
        };
        Experiment::from_file(&self.path, self.hash.clone(), file, &ov).map_err(|e| match e {
            Error::Invalid {
                field,
                value,
                expected,
            } if field.starts_with("quadrature") => {
                ApiError::bad("quad", format!("invalid quad = {value}: {expected}"))
            }
            Error::Invalid {
                field,
                value,
                expected,
            } if field == "flow.rtol" => {
                ApiError::bad("rtol", format!("invalid rtol = {value}: {expected}"))
            }
            e => ApiError::from_lib(e),
        })
    }

    /// The model file of the view: the resolved file with the request's overrides, as TOML
    /// (`fisher-flow run` and `manifold` accept it).
    pub fn model_toml(&self, p: &Params) -> Result<String, ApiError> {
        let exp = self.experiment(p)?;
        let body = toml::to_string(&exp.resolved).map_err(|e| ApiError {
            status: 500,
            message: format!("TOML encoding failed: {e}"),
            parameter: None,
        })?;
        Ok(format!(
            "# Settings of a fisher-flow explore view (from {}).\n# fisher-flow run FILE, fisher-flow manifold FILE and fisher-flow explore FILE accept it.\n\n{body}",
            self.path.display()
        ))
    }
}

/// `GET /api/config`: the model's values, the window, the defaults and every limit.
pub fn config(base: &Base) -> Result<Value, ApiError> {
    let m =
        manifold::view_model(&base.exp, &ManifoldOptions::default()).map_err(ApiError::from_lib)?;
    let d = ManifoldOptions::default();
    let (a, b) = d.window(&base.exp);
    Ok(json!({
        "model": base.path.display().to_string(),
        "sigma": m.sigma,
        "w": m.w,
        "target": m.target,
        "range": [a, b],
        "damping": base.exp.flow.damping,
        "defaults": {
            "grid": d.grid, "scale": d.ellipse_scale, "n": d.particles, "seed": d.seed,
            "t_end": base.exp.flow.t_end.min(MAX_T_END), "frames": 120, "nodes": 61,
            "probe": d.probes.first(),
            "quad": 32,
            "rtol": 1e-6,
        },
        "limits": {
            "grid": MAX_GRID, "n": MAX_PARTICLES, "t_end": MAX_T_END, "frames": MAX_FRAMES,
            "nodes": MAX_NODES, "scale": MAX_SCALE, "query_bytes": MAX_QUERY,
            "sigma": crate::config::limits::SIGMA,
        },
        "parameters": PARAMETERS.iter().map(|(k, v)| json!({"name": k, "meaning": v})).collect::<Vec<_>>(),
    }))
}

/// `GET /api/metric`: exactly the keys and values of `fisher-flow metric MODEL --at MU1,MU2
/// --json` for the model with the overrides.
pub fn metric(base: &Base, p: &Params) -> Result<Value, ApiError> {
    let exp = base.experiment(p)?;
    let mu =
        p.mu.ok_or_else(|| ApiError::bad("mu1", "mu1 is required"))?;
    exp.check_point("mu1", &mu[..1])
        .map_err(ApiError::from_lib)?;
    exp.check_point("mu2", &mu[1..])
        .map_err(ApiError::from_lib)?;
    let report = PointReport::for_experiment(&exp, &mu).map_err(ApiError::from_lib)?;
    serde_json::to_value(&report).map_err(|e| ApiError {
        status: 500,
        message: format!("JSON encoding failed: {e}"),
        parameter: None,
    })
}

fn ellipse_json(e: &Ellipse) -> Value {
    json!({
        "c": [e.center.0, e.center.1],
        "a": [[e.axes[0].0, e.axes[0].1], [e.axes[1].0, e.axes[1].1]],
        "clipped": e.clipped,
    })
}

fn heat_json(h: &HeatMap) -> Value {
    json!({
        "kind": match h.kind { crate::plot::manifold::HeatKind::Kappa => "kappa", _ => "angle" },
        "nodes": h.nodes,
        "lo": h.lo,
        "hi": h.hi,
        // NaN (κ undefined) becomes null
        "z": h.z.iter().map(|v| if v.is_finite() { json!(v) } else { Value::Null }).collect::<Vec<_>>(),
    })
}

/// The manifold options a request selects (defaults: `fisher-flow manifold`'s).
fn options(base: &Base, p: &Params) -> ManifoldOptions {
    let d = ManifoldOptions::default();
    ManifoldOptions {
        sigma: None, // already in the experiment
        grid: p.grid.unwrap_or(d.grid),
        ellipse_scale: p.scale.unwrap_or(d.ellipse_scale),
        range: None,
        probes: p.probe.map(|q| vec![q]).unwrap_or_default(),
        particles: p.n.unwrap_or(d.particles),
        layout: StartLayout::Random,
        seed: p.seed.unwrap_or(d.seed),
        background: p.heat.unwrap_or(d.background),
        t_end: Some(p.t_end.unwrap_or(base.exp.flow.t_end.min(MAX_T_END))),
        heat_nodes: p.nodes.unwrap_or(61),
    }
}

/// `GET /api/field`: the ellipse tessellation and the heat map, computed by the code of
/// `fisher-flow manifold`.
pub fn field(base: &Base, p: &Params) -> Result<Value, ApiError> {
    let exp = base.experiment(p)?;
    let opts = options(base, p);
    opts.validate(&exp).map_err(ApiError::from_lib)?;
    let model = manifold::view_model(&exp, &opts).map_err(ApiError::from_lib)?;
    let window = opts.window(&exp);
    let (ellipses, eps) = manifold::ellipse_field(&model, &opts, window);
    let heat = manifold::heat_map(
        &model,
        exp.flow.damping,
        opts.background,
        opts.heat_nodes,
        window,
    );
    Ok(json!({
        "title": manifold::title(&model),
        "range": [window.0, window.1],
        "cell": (window.1 - window.0) / opts.grid as f64,
        "epsilon": eps,
        "ellipses": ellipses.iter().map(ellipse_json).collect::<Vec<_>>(),
        "heat": heat.as_ref().map(heat_json),
        "targets": crate::model::StatModel::optima(&model),
    }))
}

fn particle_json(p: &Particle) -> Value {
    json!({
        "t": p.times,
        "p": p.points.iter().map(|q| [q.0, q.1]).collect::<Vec<_>>(),
    })
}

/// `GET /api/particles`: `n` seeded random starts (as `manifold --particles n --seed s`)
/// integrated on the natural-gradient flow (exact metric, tsit45, the file's tolerances) by the
/// study layer, recorded at `frames` equally spaced times of [0, t_end] (dense output); with
/// `euclid=1` also on the Euclidean gradient flow from the same starts.
pub fn particles(base: &Base, p: &Params) -> Result<Value, ApiError> {
    let exp = base.experiment(p)?;
    let opts = options(base, p);
    opts.validate(&exp).map_err(ApiError::from_lib)?;
    let model = manifold::view_model(&exp, &opts).map_err(ApiError::from_lib)?;
    let window = opts.window(&exp);
    let (starts, text) = manifold::particle_starts(&opts, window);
    let t_end = opts.t_end.unwrap_or(exp.flow.t_end);
    let frames = p.frames.unwrap_or(120);
    let save_at: Vec<f64> = (1..frames)
        .map(|k| t_end * k as f64 / (frames - 1) as f64)
        .collect();
    let run = |metric: MetricKind| -> Result<Vec<Particle>, ApiError> {
        let mut settings = manifold::particle_settings(&exp.flow, metric, t_end);
        settings.save_at = save_at.clone();
        manifold::particles(&model, &settings, &starts).map_err(ApiError::from_lib)
    };
    let natural = run(MetricKind::Exact)?;
    let euclidean = if p.euclid {
        Some(run(MetricKind::Euclidean)?)
    } else {
        None
    };
    Ok(json!({
        "starts": text,
        "t_end": t_end,
        "natural": natural.iter().map(particle_json).collect::<Vec<_>>(),
        "euclidean": euclidean.map(|v| v.iter().map(particle_json).collect::<Vec<_>>()),
    }))
}

/// The figure format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Svg,
    Png,
}

/// The options and experiment of an export: exactly what `fisher-flow manifold MODEL.toml
/// --grid G --ellipse-scale C --heatmap H --particles N --seed S --t-end T [--probe P |
/// --no-probe]` uses, MODEL.toml being `/api/model.toml` with the same overrides.
pub fn export_setup(base: &Base, p: &Params) -> Result<(Experiment, ManifoldOptions), ApiError> {
    let exp = base.experiment(p)?;
    let mut opts = options(base, p);
    opts.heat_nodes = ManifoldOptions::default().heat_nodes;
    opts.t_end = p.t_end;
    opts.validate(&exp).map_err(ApiError::from_lib)?;
    Ok((exp, opts))
}

static EXPORT_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `GET /api/export.svg`, `/api/export.png`: the bytes `fisher-flow manifold` writes.
pub fn export(base: &Base, p: &Params, format: ExportFormat) -> Result<Vec<u8>, ApiError> {
    let (exp, opts) = export_setup(base, p)?;
    let (fig, _) = manifold::build(&exp, &opts).map_err(ApiError::from_lib)?;
    // The plot code writes files (atomically); draw into a private temporary one.
    let k = EXPORT_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ext = match format {
        ExportFormat::Svg => "svg",
        ExportFormat::Png => "png",
    };
    let path = std::env::temp_dir().join(format!(
        "fisher-flow-explore-{}-{k}.{ext}",
        std::process::id()
    ));
    let drawn = crate::plot::manifold::manifold(&path, &fig).map_err(ApiError::from_lib);
    let bytes = drawn.and_then(|()| {
        std::fs::read(&path).map_err(|e| ApiError {
            status: 500,
            message: format!("cannot read back {}: {e}", path.display()),
            parameter: None,
        })
    });
    let _ = std::fs::remove_file(&path);
    bytes
}
