//! What metric providers may ask of a model beyond [`super::StatModel`]: Fisher score factors
//! and, for K-FAC, its dense layers with their Kronecker factors.

use crate::error::{Error, Result};
use nalgebra::DMatrix;

/// Where the scores of a Fisher estimate I ≈ RᵀR come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FisherSource {
    /// The exact expectation over the model's own predictive distribution.
    Exact,
    /// Monte Carlo: `samples` targets drawn from the model (seeded).
    Sampled { samples: usize, seed: u64 },
    /// Per-example scores at the observed data (the "empirical Fisher").
    Empirical,
}

impl FisherSource {
    /// `exact`, `sampled` or `empirical`.
    pub fn name(&self) -> &'static str {
        match self {
            FisherSource::Exact => "exact",
            FisherSource::Sampled { .. } => "sampled",
            FisherSource::Empirical => "empirical",
        }
    }
}

/// Which targets define the output-side K-FAC factor G = E[g gᵀ].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KfacTargets {
    /// Targets drawn from the model's predictive distribution (seeded Monte Carlo; the default).
    #[default]
    Sampled,
    /// The data's targets (the empirical-Fisher variant).
    Empirical,
    /// The exact expectation over the predictive distribution (one backward pass per output
    /// unit; makes K-FAC exact for a single linear layer).
    Exact,
}

impl KfacTargets {
    /// Parse `sampled | empirical | exact`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "sampled" => Ok(KfacTargets::Sampled),
            "empirical" => Ok(KfacTargets::Empirical),
            "exact" => Ok(KfacTargets::Exact),
            _ => Err(Error::invalid(
                field,
                format!("'{s}'"),
                "expected one of sampled, empirical, exact",
            )),
        }
    }

    /// The name used in files.
    pub fn name(&self) -> &'static str {
        match self {
            KfacTargets::Sampled => "sampled",
            KfacTargets::Empirical => "empirical",
            KfacTargets::Exact => "exact",
        }
    }
}

/// One dense layer z = W a + b. Its parameters are the column-major entries of the
/// d_out × (d_in + 1) matrix [W | b], stored contiguously from `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// Display name, e.g. `layer1`.
    pub name: String,
    /// Inputs d_in (without the bias 1).
    pub d_in: usize,
    /// Outputs d_out.
    pub d_out: usize,
    /// Index of the layer's first parameter in θ.
    pub offset: usize,
}

impl LayerShape {
    /// Number of parameters d_out·(d_in + 1).
    pub fn len(&self) -> usize {
        self.d_out * (self.d_in + 1)
    }

    /// Whether the layer has no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-layer Kronecker factors: the Fisher block of layer ℓ is approximated by Aℓ ⊗ Gℓ with
/// Aℓ = E[ã ãᵀ] ((d_in+1)², inputs with a 1 appended) and Gℓ = E[g gᵀ] (d_out², gradients of
/// log p with respect to the pre-activations).
#[derive(Clone, Debug)]
pub struct KfacFactors {
    /// Aℓ per layer.
    pub a: Vec<DMatrix<f64>>,
    /// Gℓ per layer.
    pub g: Vec<DMatrix<f64>>,
    /// L(θ) and ∇L(θ), when asked for (they share the forward pass).
    pub loss_grad: Option<(f64, Vec<f64>)>,
}

/// A model made of dense layers (what K-FAC needs).
pub trait DenseLayers: Send + Sync {
    /// The layers, in order.
    fn layers(&self) -> Vec<LayerShape>;

    /// The Kronecker factors at θ (`samples` target draws per example and `seed` for
    /// [`KfacTargets::Sampled`]); with `with_grad`, also L and ∇L from the same forward pass.
    fn kfac_factors(
        &self,
        theta: &[f64],
        targets: KfacTargets,
        samples: usize,
        seed: u64,
        with_grad: bool,
    ) -> Result<KfacFactors>;
}
