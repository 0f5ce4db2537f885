//! The sweep specification: a TOML file with a base model and axes, parsed with serde (unknown
//! keys rejected) and checked once into a [`SweepSpec`].
//!
//! ```toml
//! base = "gmm-seed.toml"        # a model file, relative to the spec; or an inline [base] table
//! epsilon = 1e-6                # time-to-ε threshold on L − L* (default 1e-6)
//!
//! [[axis]]
//! name = "sigma"
//! values = [0.8, 1.0]
//!
//! [[axis]]
//! name = "rtol"
//! logrange = { start = 1e-10, stop = 1e-6, num = 3 }
//!
//! [[axis]]
//! name = "start"
//! grid = { mu1 = { start = -3.5, stop = 3.5, num = 6 }, mu2 = { start = -3.0, stop = 4.0, num = 6 } }
//!
//! [axes]                        # shorthand: name = list, or name = { range = … }
//! solver = ["tsit45", "bdf"]
//! ```
//!
//! Axes: `sigma`, `w`, `target` ([μ₁, μ₂] pairs), `start` (pairs, `grid` or
//! `random-starts = { n, seed, box = [lo, hi] }`), `metric`, `solver`, `rtol`, `atol`,
//! `damping`, `t_end`. Values come from `values`, `range` (linear, `start`, `stop`, `num`) or
//! `logrange` (geometric). Axes with the same `zip = "NAME"` advance together (equal lengths);
//! all other axes (and zip groups) combine as a Cartesian product, `[[axis]]` entries first,
//! then `[axes]` in key order, the last varying fastest; the start axis (the base file's
//! `flow.starts` when there is none) always varies fastest of all. A case's id is its index in
//! that product, so case `id` has setting `id / n_starts` and start `id % n_starts`.

use crate::config::{Experiment, ModelFile, Overrides};
use crate::error::{Error, Result};
use crate::flow::SolverKind;
use crate::metric::MetricKind;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most cases of one sweep (the product of all axes).
pub const CASES_MAX: u64 = 10_000_000;
/// Largest spec file, bytes.
pub const SPEC_BYTES_MAX: u64 = 1 << 20;
/// Default threshold ε of time-to-ε.
pub const DEFAULT_EPSILON: f64 = 1e-6;
/// Default seed of `random-starts`.
pub const DEFAULT_SEED: u64 = 1;

/// `{ start, stop, num }`: `num` points from `start` to `stop` inclusive.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub start: f64,
    pub stop: f64,
    pub num: u64,
}

/// `grid = { mu1 = RANGE, mu2 = RANGE }`: the product of two linear ranges of start means.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    pub mu1: RangeSpec,
    pub mu2: RangeSpec,
}

/// `random-starts = { n, seed, box = [lo, hi] }`: n starts uniform in [lo, hi]².
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RandomSpec {
    pub n: u64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(rename = "box")]
    pub bounds: [f64; 2],
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

/// One axis as written (`[[axis]]` entry, or the table form of `[axes]`).
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAxis {
    /// Axis name (`[[axis]]` only; `[axes]` takes it from the key).
    pub name: Option<String>,
    pub values: Option<Vec<toml::Value>>,
    pub range: Option<RangeSpec>,
    pub logrange: Option<RangeSpec>,
    pub grid: Option<GridSpec>,
    #[serde(rename = "random-starts")]
    pub random_starts: Option<RandomSpec>,
    /// Zip group: axes with the same name advance together.
    pub zip: Option<String>,
}

/// `[axes]` entry: a list of values or the table form.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ShortAxis {
    List(Vec<toml::Value>),
    Table(Box<RawAxis>),
}

/// The spec file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// A model-file path (relative to the spec) or an inline model file.
    pub base: toml::Value,
    pub epsilon: Option<f64>,
    #[serde(default)]
    pub axis: Vec<RawAxis>,
    #[serde(default)]
    pub axes: BTreeMap<String, ShortAxis>,
}

/// The axes a sweep can vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum AxisName {
    Sigma,
    W,
    Target,
    Start,
    Metric,
    Solver,
    Rtol,
    Atol,
    Damping,
    TEnd,
}

impl AxisName {
    /// Every name, as written in specs.
    pub const NAMES: &'static [&'static str] = &[
        "sigma", "w", "target", "start", "metric", "solver", "rtol", "atol", "damping", "t_end",
    ];

    fn parse(field: &str, s: &str) -> Result<AxisName> {
        Ok(match s {
            "sigma" => AxisName::Sigma,
            "w" => AxisName::W,
            "target" => AxisName::Target,
            "start" => AxisName::Start,
            "metric" => AxisName::Metric,
            "solver" => AxisName::Solver,
            "rtol" => AxisName::Rtol,
            "atol" => AxisName::Atol,
            "damping" => AxisName::Damping,
            "t_end" => AxisName::TEnd,
            _ => {
                return Err(Error::invalid(
                    field,
                    format!("'{s}'"),
                    format!("unknown axis: expected one of {}", Self::NAMES.join(", ")),
                ));
            }
        })
    }

    /// The name written in specs and column headers.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The model-file field this axis sets.
    fn file_field(self) -> &'static str {
        match self {
            AxisName::Sigma => "model.sigma",
            AxisName::W => "model.weight",
            AxisName::Target => "model.target",
            AxisName::Start => "flow.starts",
            AxisName::Metric => "flow.metric",
            AxisName::Solver => "flow.solver",
            AxisName::Rtol => "flow.rtol",
            AxisName::Atol => "flow.atol",
            AxisName::Damping => "flow.damping",
            AxisName::TEnd => "flow.t_end",
        }
    }
}

/// The values of one axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Values {
    Numbers(Vec<f64>),
    Pairs(Vec<[f64; 2]>),
    Names(Vec<String>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Numbers(v) => v.len(),
            Values::Pairs(v) => v.len(),
            Values::Names(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the starts were given (for figures: a grid becomes a heat map).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartLayout {
    /// `grid`: start k = (mu1[k % n1], mu2[k / n1]).
    Grid { mu1: Vec<f64>, mu2: Vec<f64> },
    /// `random-starts` with its seed.
    Random { seed: u64 },
    /// A list (`values`, or the base file's `flow.starts`).
    List,
}

/// One checked axis (not the start axis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub name: AxisName,
    pub values: Values,
}

/// A checked sweep: the base model file, the setting dimensions (each a list of axes of equal
/// length that advance together) and the starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Where the spec was read from (for messages).
    pub spec_file: String,
    /// The base model file (the base path, or the spec for an inline base).
    pub base_file: String,
    /// The base model file as parsed (defaults filled in by serde).
    pub base: ModelFile,
    /// Threshold ε of time-to-ε on L − L*.
    pub epsilon: f64,
    /// Setting dimensions in product order (the last varies fastest).
    pub dims: Vec<Vec<Axis>>,
    /// The starts (the fastest dimension).
    pub starts: Vec<[f64; 2]>,
    pub layout: StartLayout,
    /// Number of settings (the product of the dimensions' lengths).
    pub n_settings: u64,
    /// Number of cases, `n_settings · starts.len()` (≤ [`CASES_MAX`]).
    pub n_cases: u64,
    /// [`SweepSpec::hash`], computed once.
    #[serde(skip)]
    hash: String,
}

/// The axis values of one setting, by axis name.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub index: u64,
    pub values: Vec<(AxisName, Value)>,
}

/// One axis value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Pair([f64; 2]),
    Name(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x}"),
            Value::Pair([a, b]) => write!(f, "[{a}, {b}]"),
            Value::Name(s) => write!(f, "{s}"),
        }
    }
}

fn spec_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// `num` points of a linear (or geometric) range, checked: num ≥ 1, finite ends, positive ends
/// for a log range, `num` ≤ [`CASES_MAX`].
pub fn expand_range(key: &str, r: &RangeSpec, log: bool) -> Result<Vec<f64>> {
    if r.num == 0 {
        return Err(Error::invalid(
            format!("{key}.num"),
            0,
            "empty range: num must be ≥ 1",
        ));
    }
    if r.num > CASES_MAX {
        return Err(Error::invalid(
            format!("{key}.num"),
            r.num,
            format!("at most {CASES_MAX}"),
        ));
    }
    if !(r.start.is_finite() && r.stop.is_finite()) {
        return Err(Error::invalid(
            key,
            format!("[{}, {}]", r.start, r.stop),
            "start and stop must be finite",
        ));
    }
    if log && !(r.start > 0.0 && r.stop > 0.0) {
        return Err(Error::invalid(
            key,
            format!("[{}, {}]", r.start, r.stop),
            "a logrange needs start > 0 and stop > 0",
        ));
    }
    let n = r.num as usize;
    let (a, b) = if log {
        (r.start.ln(), r.stop.ln())
    } else {
        (r.start, r.stop)
    };
    Ok((0..n)
        .map(|k| {
            // (a·(n−1−k) + b·k)/(n−1): exact at both ends and for symmetric grids.
            let v = if n == 1 {
                a
            } else {
                (a * (n - 1 - k) as f64 + b * k as f64) / (n - 1) as f64
            };
            if log {
                if k == 0 {
                    r.start
                } else if k == n - 1 {
                    r.stop
                } else {
                    v.exp()
                }
            } else {
                v
            }
        })
        .collect())
}

fn number(key: &str, v: &toml::Value) -> Result<f64> {
    match v {
        toml::Value::Float(x) => Ok(*x),
        toml::Value::Integer(i) => Ok(*i as f64),
        other => Err(Error::invalid(key, other, "expected a number")),
    }
}

fn pair(key: &str, v: &toml::Value) -> Result<[f64; 2]> {
    match v.as_array() {
        Some(a) if a.len() == 2 => {
            let p = [number(key, &a[0])?, number(key, &a[1])?];
            if p.iter().all(|x| x.is_finite()) {
                Ok(p)
            } else {
                Err(Error::invalid(key, v, "both means must be finite"))
            }
        }
        _ => Err(Error::invalid(key, v, "expected a pair [mu1, mu2]")),
    }
}

/// The checked values of axis `name` from its raw form (named `key` in errors).
fn axis_values(key: &str, name: AxisName, raw: &RawAxis) -> Result<(Values, StartLayout)> {
    let sources = [
        raw.values.is_some(),
        raw.range.is_some(),
        raw.logrange.is_some(),
        raw.grid.is_some(),
        raw.random_starts.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources != 1 {
        return Err(Error::invalid(
            key,
            format!("{sources} value sources"),
            "give exactly one of values, range, logrange, grid (start), random-starts (start)",
        ));
    }
    let is_start = name == AxisName::Start;
    if !is_start && (raw.grid.is_some() || raw.random_starts.is_some()) {
        let k = if raw.grid.is_some() {
            "grid"
        } else {
            "random-starts"
        };
        return Err(Error::invalid(
            format!("{key}.{k}"),
            "set",
            "only the start axis takes a grid or random starts",
        ));
    }
    let pairs = matches!(name, AxisName::Target | AxisName::Start);
    let names = matches!(name, AxisName::Metric | AxisName::Solver);
    if (pairs || names) && (raw.range.is_some() || raw.logrange.is_some()) {
        return Err(Error::invalid(
            key,
            "range",
            "ranges apply to numeric axes only (sigma, w, rtol, atol, damping, t_end)",
        ));
    }
    let values = if let Some(g) = &raw.grid {
        let mu1 = expand_range(&format!("{key}.grid.mu1"), &g.mu1, false)?;
        let mu2 = expand_range(&format!("{key}.grid.mu2"), &g.mu2, false)?;
        check_count(&format!("{key}.grid"), g.mu1.num.saturating_mul(g.mu2.num))?;
        let starts = mu2
            .iter()
            .flat_map(|&b| mu1.iter().map(move |&a| [a, b]))
            .collect();
        return Ok((Values::Pairs(starts), StartLayout::Grid { mu1, mu2 }));
    } else if let Some(r) = &raw.random_starts {
        let k = format!("{key}.random-starts");
        check_count(&format!("{k}.n"), r.n)?;
        if r.n == 0 {
            return Err(Error::invalid(format!("{k}.n"), 0, "must be ≥ 1"));
        }
        let [lo, hi] = r.bounds;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::invalid(
                format!("{k}.box"),
                format!("[{lo}, {hi}]"),
                "needs finite lo < hi",
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(r.seed);
        let starts = (0..r.n)
            .map(|_| {
                [
                    lo + (hi - lo) * rng.random::<f64>(),
                    lo + (hi - lo) * rng.random::<f64>(),
                ]
            })
            .collect();
        return Ok((Values::Pairs(starts), StartLayout::Random { seed: r.seed }));
    } else if let Some(r) = &raw.range {
        Values::Numbers(expand_range(&format!("{key}.range"), r, false)?)
    } else if let Some(r) = &raw.logrange {
        Values::Numbers(expand_range(&format!("{key}.logrange"), r, true)?)
    } else {
        let list = raw.values.as_deref().unwrap_or_default();
        let k = format!("{key}.values");
        if list.is_empty() {
            return Err(Error::invalid(
                k,
                "[]",
                "empty list: give at least one value",
            ));
        }
        check_count(&k, list.len() as u64)?;
        if pairs {
            Values::Pairs(
                list.iter()
                    .enumerate()
                    .map(|(i, v)| pair(&format!("{k}[{i}]"), v))
                    .collect::<Result<_>>()?,
            )
        } else if names {
            Values::Names(
                list.iter()
                    .enumerate()
                    .map(|(i, v)| match v.as_str() {
                        Some(s) => {
                            let f = format!("{k}[{i}]");
                            if name == AxisName::Metric {
                                MetricKind::parse(&f, s)?;
                            } else {
                                SolverKind::parse(&f, s)?;
                            }
                            Ok(s.to_string())
                        }
                        None => Err(Error::invalid(
                            format!("{k}[{i}]"),
                            v,
                            "expected a name (string)",
                        )),
                    })
                    .collect::<Result<_>>()?,
            )
        } else {
            Values::Numbers(
                list.iter()
                    .enumerate()
                    .map(|(i, v)| number(&format!("{k}[{i}]"), v))
                    .collect::<Result<_>>()?,
            )
        }
    };
    if let Values::Numbers(v) = &values {
        for (i, &x) in v.iter().enumerate() {
            check_number(&format!("{key}[{i}]"), name, x)?;
        }
    }
    Ok((values, StartLayout::List))
}

/// Domain of a numeric axis value (the full check, with the other settings, is the model
/// file's validation of every setting).
fn check_number(key: &str, name: AxisName, x: f64) -> Result<()> {
    let ok = x.is_finite()
        && match name {
            AxisName::Sigma | AxisName::Rtol | AxisName::Atol | AxisName::TEnd => x > 0.0,
            AxisName::W => x > 0.0 && x < 1.0,
            AxisName::Damping => x >= 0.0,
            _ => true,
        };
    if ok {
        return Ok(());
    }
    let expected = match name {
        AxisName::Sigma => "σ must be a finite number > 0",
        AxisName::W => "w must lie strictly between 0 and 1",
        AxisName::Damping => "must be a finite number ≥ 0",
        _ => "must be a finite number > 0",
    };
    Err(Error::invalid(key, x, expected))
}

fn check_count(key: &str, n: u64) -> Result<()> {
    if n > CASES_MAX {
        return Err(Error::invalid(key, n, format!("at most {CASES_MAX}")));
    }
    Ok(())
}

impl SweepSpec {
    /// Read, parse and check a spec file; errors name the spec and the key.
    pub fn load(path: &Path) -> Result<SweepSpec> {
        crate::config::check_regular_file(path, SPEC_BYTES_MAX)?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse and check spec text read from `path` (a relative base is resolved against
    /// `path`'s directory).
    pub fn parse(path: &Path, text: &str) -> Result<SweepSpec> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let upto = &text[..span.start.min(text.len())];
                    let line = upto.matches('\n').count() + 1;
                    spec_err(path, format!("line {line}: {msg}"))
                }
                None => spec_err(path, msg),
            }
        })?;
        Self::check(path, raw).map_err(|e| match e {
            Error::Invalid {
                field,
                value,
                expected,
            } => spec_err(path, format!("invalid {field} = {value}: {expected}")),
            other => other,
        })
    }

    fn check(path: &Path, raw: RawSpec) -> Result<SweepSpec> {
        let (base, base_file) = match &raw.base {
            toml::Value::String(rel) => {
                let dir = path.parent().unwrap_or(Path::new("."));
                let p: PathBuf = dir.join(rel);
                let (file, _) = crate::config::read_model_file(&p)?;
                (file, p.display().to_string())
            }
            toml::Value::Table(t) => {
                let file: ModelFile =
                    toml::Value::Table(t.clone())
                        .try_into()
                        .map_err(|e: toml::de::Error| {
                            Error::invalid("base", "table", e.message().trim().replace('\n', " "))
                        })?;
                (file, path.display().to_string())
            }
            other => {
                return Err(Error::invalid(
                    "base",
                    other.type_str(),
                    "expected a model-file path (string) or an inline [base] model table",
                ));
            }
        };
        if base.model.family != "gaussian-mixture" {
            return Err(Error::invalid(
                "base.model.family",
                format!("'{}'", base.model.family),
                "sweep supports the gaussian-mixture family",
            ));
        }
        let epsilon = raw.epsilon.unwrap_or(DEFAULT_EPSILON);
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(Error::invalid(
                "epsilon",
                epsilon,
                "must be a finite number > 0",
            ));
        }
        let mut entries: Vec<(String, AxisName, RawAxis)> = Vec::new();
        for (i, a) in raw.axis.into_iter().enumerate() {
            let key = format!("axis[{i}]");
            let name = match &a.name {
                Some(n) => AxisName::parse(&format!("{key}.name"), n)?,
                None => {
                    return Err(Error::invalid(
                        format!("{key}.name"),
                        "missing",
                        "every [[axis]] needs a name",
                    ));
                }
            };
            entries.push((format!("axis[{i}] ({})", name.name()), name, a));
        }
        for (k, a) in raw.axes {
            let key = format!("axes.{k}");
            let name = AxisName::parse(&key, &k)?;
            let a = match a {
                ShortAxis::List(values) => RawAxis {
                    values: Some(values),
                    ..RawAxis::default()
                },
                ShortAxis::Table(t) => {
                    let t = *t;
                    if t.name.is_some() {
                        return Err(Error::invalid(
                            format!("{key}.name"),
                            "set",
                            "[axes] entries take their name from the key",
                        ));
                    }
                    t
                }
            };
            entries.push((key, name, a));
        }
        // Each axis once.
        for (i, (key, name, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(_, n, _)| n == name) {
                return Err(Error::invalid(
                    key.as_str(),
                    name.name(),
                    "this axis is given twice",
                ));
            }
        }
        let mut dims: Vec<Vec<Axis>> = Vec::new();
        let mut zips: Vec<(String, usize)> = Vec::new();
        let mut starts: Option<(Vec<[f64; 2]>, StartLayout)> = None;
        for (key, name, a) in &entries {
            let (values, layout) = axis_values(key, *name, a)?;
            if *name == AxisName::Start {
                if a.zip.is_some() {
                    return Err(Error::invalid(
                        format!("{key}.zip"),
                        "set",
                        "the start axis cannot be zipped (it always varies fastest)",
                    ));
                }
                if let Values::Pairs(p) = values {
                    starts = Some((p, layout));
                }
                continue;
            }
            let axis = Axis {
                name: *name,
                values,
            };
            match &a.zip {
                Some(z) => match zips.iter().find(|(n, _)| n == z) {
                    Some(&(_, d)) => {
                        let len = dims[d][0].values.len();
                        if axis.values.len() != len {
                            return Err(Error::invalid(
                                format!("{key}.zip"),
                                format!("'{z}'"),
                                format!(
                                    "zipped axes need equal lengths: {} has {} values, {} has {len}",
                                    name.name(),
                                    axis.values.len(),
                                    dims[d][0].name.name()
                                ),
                            ));
                        }
                        dims[d].push(axis);
                    }
                    None => {
                        zips.push((z.clone(), dims.len()));
                        dims.push(vec![axis]);
                    }
                },
                None => dims.push(vec![axis]),
            }
        }
        let (starts, layout) = match starts {
            Some(s) => s,
            None => {
                let list: Vec<[f64; 2]> = base
                    .flow
                    .starts
                    .iter()
                    .enumerate()
                    .map(|(i, s)| match s.as_slice() {
                        [a, b] => Ok([*a, *b]),
                        _ => Err(Error::invalid(
                            format!("base flow.starts[{i}]"),
                            format!("{} values", s.len()),
                            "expected [mu1, mu2]",
                        )),
                    })
                    .collect::<Result<_>>()?;
                if list.is_empty() {
                    return Err(Error::invalid(
                        "axis start",
                        "missing",
                        "give a start axis or flow.starts in the base model",
                    ));
                }
                (list, StartLayout::List)
            }
        };
        let mut n_settings: u64 = 1;
        for d in &dims {
            n_settings = n_settings.saturating_mul(d[0].values.len() as u64);
        }
        let n_cases = n_settings.saturating_mul(starts.len() as u64);
        if n_cases > CASES_MAX {
            return Err(Error::invalid(
                "axes",
                format!("{n_cases} cases"),
                format!("the product of the axes exceeds the cap of {CASES_MAX} cases"),
            ));
        }
        let spec = SweepSpec {
            spec_file: path.display().to_string(),
            base_file,
            base,
            epsilon,
            dims,
            starts,
            layout,
            n_settings,
            n_cases,
            hash: String::new(),
        }
        .rehash();
        // Every setting once through the model file's own validation (σ against the starts'
        // spread, the metric against the model, …), with every start.
        for s in 0..spec.n_settings {
            spec.experiment(s)?;
        }
        Ok(spec)
    }

    /// Hash of the checked spec (SHA-256 of its canonical JSON, without the file names):
    /// shards of one sweep carry it.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The spec with its hash computed (after deserializing one).
    pub fn rehash(mut self) -> SweepSpec {
        let mut v = serde_json::json!(self);
        // The spec's location does not change the study.
        if let Some(m) = v.as_object_mut() {
            m.remove("spec_file");
            m.remove("base_file");
        }
        self.hash = crate::config::sha256_hex(v.to_string().as_bytes());
        self
    }

    /// Number of starts (the fastest dimension).
    pub fn n_starts(&self) -> u64 {
        self.starts.len() as u64
    }

    /// The axis values of setting `index` (`0..n_settings`).
    pub fn setting(&self, index: u64) -> Setting {
        let mut rest = index;
        let mut values = Vec::new();
        for d in self.dims.iter().rev() {
            let len = d[0].values.len() as u64;
            let k = (rest % len) as usize;
            rest /= len;
            for a in d {
                let v = match &a.values {
                    Values::Numbers(v) => Value::Number(v[k]),
                    Values::Pairs(v) => Value::Pair(v[k]),
                    Values::Names(v) => Value::Name(v[k].clone()),
                };
                values.push((a.name, v));
            }
        }
        values.sort_by_key(|(n, _)| *n);
        Setting { index, values }
    }

    /// The model file of setting `index`: the base with the setting's axis values and every
    /// start of the sweep.
    pub fn model_file(&self, index: u64) -> ModelFile {
        let mut f = self.base.clone();
        for (name, v) in self.setting(index).values {
            match (name, v) {
                (AxisName::Sigma, Value::Number(x)) => f.model.sigma = Some(x),
                (AxisName::W, Value::Number(x)) => f.model.weight = x,
                (AxisName::Target, Value::Pair(p)) => f.model.target = p.to_vec(),
                (AxisName::Metric, Value::Name(s)) => f.flow.metric = Some(s),
                (AxisName::Solver, Value::Name(s)) => f.flow.solver = Some(s),
                (AxisName::Rtol, Value::Number(x)) => f.flow.rtol = Some(x),
                (AxisName::Atol, Value::Number(x)) => f.flow.atol = Some(x),
                (AxisName::Damping, Value::Number(x)) => f.flow.damping = Some(x),
                (AxisName::TEnd, Value::Number(x)) => f.flow.t_end = Some(x),
                _ => {}
            }
        }
        f.flow.starts = self.starts.iter().map(|p| p.to_vec()).collect();
        f
    }

    /// The validated experiment of setting `index`; an error names the axis values.
    pub fn experiment(&self, index: u64) -> Result<Experiment> {
        let file = self.model_file(index);
        let path = Path::new(&self.base_file);
        Experiment::from_file(path, self.hash.clone(), file, &Overrides::default()).map_err(|e| {
            let setting = self.setting(index);
            let what: Vec<String> = setting
                .values
                .iter()
                .map(|(n, v)| format!("{} = {v}", n.name()))
                .collect();
            match e {
                Error::Invalid {
                    field,
                    value,
                    expected,
                } => {
                    let axis = setting
                        .values
                        .iter()
                        .map(|(n, _)| *n)
                        .chain(std::iter::once(AxisName::Start))
                        .find(|n| field.starts_with(n.file_field()));
                    let key = match axis {
                        Some(a) => format!("axis {}", a.name()),
                        None => format!("base {field}"),
                    };
                    Error::invalid(
                        key,
                        value,
                        format!("{expected} (setting {index}: {})", what.join(", ")),
                    )
                }
                other => other,
            }
        })
    }
}
