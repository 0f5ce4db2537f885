//! The `[mlp]` section of a model file (family `"mlp"`) and its validation into an [`Mlp`].

use super::data::{Dataset, TargetSpec, read_csv, synthetic_regression};
use super::mlp::{Activation, Mlp, OutputKind};
use crate::config::{check_count, check_memory, limits};
use crate::error::{Error, Result};
use crate::flow::FlowSettings;
use crate::metric::MetricKind;
use crate::metric::provider::BaseMetric;
use crate::model::layers::KfacTargets;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[mlp.synthetic]`: a seeded synthetic regression set instead of a CSV file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSection {
    /// Number of examples (default 200).
    #[serde(default = "default_n")]
    pub n: usize,
    /// Noise standard deviation of the targets (default 0.1).
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// Seed (default 7).
    #[serde(default = "default_data_seed")]
    pub seed: u64,
}

/// `[mlp]`: the network and its data.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpSection {
    /// Layer sizes [d₀, d₁, …, d_L] (input, hidden…, output), each ≥ 1.
    pub layers: Vec<usize>,
    /// Hidden nonlinearity: `"tanh"` (default) or `"relu"`.
    #[serde(default = "default_activation")]
    pub activation: String,
    /// `"softmax"` (classification, default) or `"gaussian"` (regression with fixed noise).
    #[serde(default = "default_output")]
    pub output: String,
    /// σ of the Gaussian output (default 1).
    #[serde(default = "default_sigma")]
    pub noise: f64,
    /// CSV data file, relative to the model file.
    pub data: Option<String>,
    /// Target column(s) of the CSV, comma-separated for several (default "species").
    pub target: Option<String>,
    /// Standardize the features to mean 0, sd 1 (default true).
    #[serde(default = "default_true")]
    pub standardize: bool,
    /// A synthetic regression set instead of `data`.
    pub synthetic: Option<SyntheticSection>,
    /// Seeds of the initial parameter vectors, one trajectory each (default [1]); used when
    /// `flow.starts` is empty.
    #[serde(default = "default_init_seeds")]
    pub init_seeds: Vec<u64>,
}

fn default_n() -> usize {
    200
}
fn default_noise() -> f64 {
    0.1
}
fn default_data_seed() -> u64 {
    7
}
fn default_activation() -> String {
    "tanh".into()
}
fn default_output() -> String {
    "softmax".into()
}
fn default_sigma() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_init_seeds() -> Vec<u64> {
    vec![1]
}

impl MlpSection {
    /// Build the network; `base` is the directory of the model file (data paths are relative
    /// to it). `flow` (already validated) is used to estimate the memory a metric evaluation
    /// needs before the data set is made: an estimate above the machine's refuses the file.
    pub fn build(&self, base: &Path, flow: &FlowSettings) -> Result<Mlp> {
        check_layers(&self.layers)?;
        let activation = match self.activation.as_str() {
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            other => {
                return Err(Error::invalid(
                    "mlp.activation",
                    format!("'{other}'"),
                    "expected \"tanh\" or \"relu\"",
                ));
            }
        };
        let output = match self.output.as_str() {
            "softmax" => OutputKind::Softmax,
            "gaussian" => {
                let (lo, hi) = limits::MLP_NOISE;
                if !(lo..=hi).contains(&self.noise) {
                    return Err(Error::invalid(
                        "mlp.noise",
                        format!("{:?}", self.noise),
                        format!("must lie in [{lo:e}, {hi:e}] (so that (z − y)²/σ² stays finite)"),
                    ));
                }
                OutputKind::Gaussian { noise: self.noise }
            }
            other => {
                return Err(Error::invalid(
                    "mlp.output",
                    format!("'{other}'"),
                    "expected \"softmax\" or \"gaussian\"",
                ));
            }
        };
        let mut data: Dataset = match (&self.data, &self.synthetic) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "mlp.synthetic",
                    "set",
                    "give either mlp.data or mlp.synthetic, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "mlp.data",
                    "missing",
                    "give a CSV file (mlp.data) or [mlp.synthetic]",
                ));
            }
            (Some(file), None) => {
                let default_target = if output == OutputKind::Softmax {
                    "species"
                } else {
                    "y"
                };
                let t = self.target.clone().unwrap_or_else(|| default_target.into());
                let spec = match output {
                    OutputKind::Softmax => TargetSpec::Class(t),
                    OutputKind::Gaussian { .. } => {
                        TargetSpec::Values(t.split(',').map(|s| s.trim().to_string()).collect())
                    }
                };
                let data = read_csv(&base.join(file), &spec)?;
                self.check_memory(data.len(), "mlp.data", flow)?;
                data
            }
            (None, Some(s)) => {
                let n = check_count("mlp.synthetic.n", s.n, limits::SAMPLES_MAX)?;
                if !(0.0..=limits::SYNTHETIC_NOISE_MAX).contains(&s.noise) {
                    return Err(Error::invalid(
                        "mlp.synthetic.noise",
                        format!("{:?}", s.noise),
                        format!(
                            "must lie in [0, {:e}] (targets and their squares stay finite)",
                            limits::SYNTHETIC_NOISE_MAX
                        ),
                    ));
                }
                if !matches!(output, OutputKind::Gaussian { .. }) {
                    return Err(Error::invalid(
                        "mlp.output",
                        "softmax",
                        "the synthetic set is a regression: use output = \"gaussian\"",
                    ));
                }
                self.check_memory(n, "mlp.synthetic.n", flow)?;
                synthetic_regression(n, self.layers[0], s.noise, s.seed)
            }
        };
        if self.standardize {
            data.standardize();
        }
        if self.init_seeds.is_empty() {
            return Err(Error::invalid(
                "mlp.init_seeds",
                "[]",
                "give at least one seed",
            ));
        }
        Mlp::new(self.layers.clone(), activation, output, data)
    }

    /// Refuse the file when one loss, gradient and metric evaluation on `n` examples would
    /// need more than half the machine's available memory, naming the largest contributor
    /// (`n_field` for the examples, `mlp.layers`, `metric.samples` or `metric.kfac_samples`).
    fn check_memory(&self, n: usize, n_field: &str, flow: &FlowSettings) -> Result<()> {
        let parts = memory_parts(&self.layers, n, flow);
        let total = parts
            .iter()
            .try_fold(0usize, |acc, (_, b)| b.and_then(|b| acc.checked_add(b)));
        let field = parts
            .iter()
            .max_by_key(|(_, b)| b.unwrap_or(usize::MAX))
            .map(|(f, _)| {
                if *f == "examples" {
                    format!("{n_field} × mlp.layers")
                } else {
                    f.to_string()
                }
            })
            .unwrap_or_else(|| n_field.to_string());
        check_memory(&field, total)
    }
}

/// Layer sizes: at least two, each in 1..=[`limits::LAYER_MAX`], at most
/// [`limits::LAYERS_MAX`] layers, and a parameter count Σ (dℓ₋₁ + 1)·dℓ that fits (checked).
pub fn check_layers(layers: &[usize]) -> Result<usize> {
    let bad = |why: String| Error::invalid("mlp.layers", format!("{layers:?}"), why);
    if layers.len() < 2 {
        return Err(bad(
            "give at least an input and an output size, e.g. [4, 8, 3]".into(),
        ));
    }
    if layers.len() > limits::LAYERS_MAX {
        return Err(bad(format!("at most {} sizes", limits::LAYERS_MAX)));
    }
    if let Some(i) = layers.iter().position(|&s| s == 0) {
        return Err(bad(format!(
            "layer size at position {i} is 0; every layer needs at least one unit"
        )));
    }
    if let Some(i) = layers.iter().position(|&s| s > limits::LAYER_MAX) {
        return Err(bad(format!(
            "layer size at position {i} exceeds {} units",
            limits::LAYER_MAX
        )));
    }
    param_count(layers).ok_or_else(|| bad("the parameter count overflows".into()))
}

/// Σ (dℓ₋₁ + 1)·dℓ, or `None` on overflow.
pub fn param_count(layers: &[usize]) -> Option<usize> {
    layers.windows(2).try_fold(0usize, |acc, w| {
        w[0].checked_add(1)
            .and_then(|a| a.checked_mul(w[1]))
            .and_then(|l| acc.checked_add(l))
    })
}

/// Bytes of one evaluation by contributor (`None`: overflow): the data and activations
/// ("examples": inputs, targets, forward and backward passes, ≈ 3 Σ (dℓ + 1)·N), the
/// metric's per-example factor (roots·N × n for the dense, diagonal and block-diagonal
/// metrics, plus n² for the dense ones) or K-FAC's output deltas and factors.
fn memory_parts(
    layers: &[usize],
    n: usize,
    flow: &FlowSettings,
) -> Vec<(&'static str, Option<usize>)> {
    let f8 = |x: Option<usize>| x.and_then(|x| x.checked_mul(8));
    let dim = param_count(layers);
    let d_out = layers.last().copied().unwrap_or(1);
    let units = layers.iter().try_fold(0usize, |acc, &d| {
        d.checked_add(1).and_then(|d| acc.checked_add(d))
    });
    let examples = f8(units
        .and_then(|u| u.checked_mul(n))
        .and_then(|b| b.checked_mul(3)));
    let opts = &flow.metric_options;
    let source_roots = |base: BaseMetric| match base {
        BaseMetric::Exact => ("mlp.layers", d_out),
        BaseMetric::Sampled => ("metric.samples", opts.samples),
        BaseMetric::Empirical => ("mlp.layers", 1),
    };
    let mut parts = vec![("examples", examples)];
    let factor = |field: &'static str, roots: usize, dense: bool| {
        let rows = roots.checked_mul(n);
        let fac = f8(rows.and_then(|r| dim.and_then(|d| r.checked_mul(d))));
        let outs = f8(rows.and_then(|r| r.checked_mul(d_out)));
        let sq = if dense {
            f8(dim.and_then(|d| d.checked_mul(d)))
        } else {
            Some(0)
        };
        vec![
            (field, fac.zip(outs).and_then(|(a, b)| a.checked_add(b))),
            ("mlp.layers", sq),
        ]
    };
    match flow.metric {
        MetricKind::Euclidean => {}
        MetricKind::Exact => parts.extend(factor("mlp.layers", d_out, true)),
        // adaptive forms a dense exact metric only up to the dense limit, and no score
        // factor above FACTOR_BYTES_MAX (it then measures with Fisher–vector products)
        MetricKind::Adaptive => {
            if dim.is_some_and(|d| d <= crate::metric::provider::DENSE_LIMIT) {
                parts.extend(factor("mlp.layers", d_out, true))
            } else {
                parts.push((
                    "mlp.layers",
                    Some(crate::metric::adaptive::FACTOR_BYTES_MAX as usize),
                ))
            }
        }
        MetricKind::Sampled => parts.extend(factor("metric.samples", opts.samples, true)),
        MetricKind::Empirical => parts.extend(factor("mlp.layers", 1, true)),
        MetricKind::Diagonal | MetricKind::BlockDiagonal => {
            let (field, roots) = source_roots(opts.base);
            parts.extend(factor(field, roots, false));
        }
        MetricKind::Kfac => {
            let (field, roots) = match opts.kfac_targets {
                KfacTargets::Sampled => ("metric.kfac_samples", opts.kfac_samples),
                KfacTargets::Empirical => ("mlp.layers", 1),
                KfacTargets::Exact => ("mlp.layers", d_out),
            };
            let outs = f8(roots.checked_mul(n).and_then(|r| r.checked_mul(d_out)));
            let factors = f8(layers.iter().try_fold(0usize, |acc, &d| {
                d.checked_add(1)
                    .and_then(|d| d.checked_mul(d))
                    .and_then(|q| q.checked_mul(2))
                    .and_then(|q| acc.checked_add(q))
            }));
            parts.push((field, outs));
            parts.push(("mlp.layers", factors));
        }
    }
    parts
}
