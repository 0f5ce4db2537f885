//! The `[mlp]` section of a model file (family `"mlp"`) and its validation into an [`Mlp`].

use super::data::{Dataset, TargetSpec, read_csv, synthetic_regression};
use super::mlp::{Activation, Mlp, OutputKind};
use crate::error::{Error, Result};
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
    /// to it).
    pub fn build(&self, base: &Path) -> Result<Mlp> {
        if self.layers.len() < 2 {
            return Err(Error::invalid(
                "mlp.layers",
                format!("{:?}", self.layers),
                "give at least an input and an output size, e.g. [4, 8, 3]",
            ));
        }
        if let Some(i) = self.layers.iter().position(|&s| s == 0) {
            return Err(Error::invalid(
                "mlp.layers",
                format!("{:?}", self.layers),
                format!("layer size at position {i} is 0; every layer needs at least one unit"),
            ));
        }
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
                if !(self.noise.is_finite() && self.noise > 0.0) {
                    return Err(Error::invalid(
                        "mlp.noise",
                        self.noise,
                        "must be a finite number > 0",
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
                read_csv(&base.join(file), &spec)?
            }
            (None, Some(s)) => {
                if s.n == 0 {
                    return Err(Error::invalid("mlp.synthetic.n", 0, "must be ≥ 1"));
                }
                if !(s.noise.is_finite() && s.noise >= 0.0) {
                    return Err(Error::invalid(
                        "mlp.synthetic.noise",
                        s.noise,
                        "must be a finite number ≥ 0",
                    ));
                }
                if !matches!(output, OutputKind::Gaussian { .. }) {
                    return Err(Error::invalid(
                        "mlp.output",
                        "softmax",
                        "the synthetic set is a regression: use output = \"gaussian\"",
                    ));
                }
                synthetic_regression(s.n, self.layers[0], s.noise, s.seed)
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
}
