//! Metric providers: θ ↦ a factorized metric G(θ) + λI that the flow solves with.
//!
//! The flow, the `metric` subcommand and the plots only see [`Metric`] and [`MetricKind`].

pub mod adaptive;
pub mod block;
pub mod cg;
pub mod cost;
pub mod dense;
pub mod diagonal;
pub mod euclidean;
pub mod kfac;
pub mod provider;
pub mod quality;

pub use provider::{Factorized, MetricOptions, MetricProvider, MetricSection, provider};

use crate::error::{Error, Result};
use crate::linalg::{SymEigen, sym_eigen};
use crate::model::StatModel;
use nalgebra::{DMatrix, DVector};

/// Which metric the flow uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricKind {
    /// The exact Fisher information (quadrature or closed form, as the model provides).
    Exact,
    /// The identity: the Euclidean gradient flow, the baseline.
    Euclidean,
    /// Monte Carlo Fisher with targets drawn from the model (`[metric] samples`, `seed`).
    Sampled,
    /// Empirical Fisher: outer products of per-example scores on the data set.
    Empirical,
    /// Diagonal of a base estimate (`[metric] base`).
    Diagonal,
    /// Block-diagonal of a base estimate (layers, or `[metric] blocks`).
    BlockDiagonal,
    /// Kronecker-factored approximate curvature, per dense layer.
    Kfac,
    /// Chosen along the flow among euclidean, diagonal, block-diagonal, K-FAC and exact by
    /// measured quality per cost, held between refreshes (see [`adaptive`]).
    Adaptive,
}

impl MetricKind {
    /// All names accepted on the command line and in model files.
    pub const NAMES: &'static [&'static str] = &[
        "exact",
        "euclidean",
        "sampled",
        "empirical",
        "diagonal",
        "block-diagonal",
        "kfac",
        "adaptive",
    ];

    /// Parse a metric name, with an error that lists the valid names.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(MetricKind::Exact),
            "euclidean" => Ok(MetricKind::Euclidean),
            "sampled" => Ok(MetricKind::Sampled),
            "empirical" => Ok(MetricKind::Empirical),
            "diagonal" => Ok(MetricKind::Diagonal),
            "block-diagonal" => Ok(MetricKind::BlockDiagonal),
            "kfac" => Ok(MetricKind::Kfac),
            "adaptive" => Ok(MetricKind::Adaptive),
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
            MetricKind::Exact => "exact",
            MetricKind::Euclidean => "euclidean",
            MetricKind::Sampled => "sampled",
            MetricKind::Empirical => "empirical",
            MetricKind::Diagonal => "diagonal",
            MetricKind::BlockDiagonal => "block-diagonal",
            MetricKind::Kfac => "kfac",
            MetricKind::Adaptive => "adaptive",
        }
    }

    /// Evaluate the metric of `model` at θ with Tikhonov damping λ, as a dense [`Metric`]
    /// (provider settings at their defaults; see [`MetricKind::at_with`]).
    pub fn at(&self, model: &dyn StatModel, theta: &[f64], damping: f64) -> Metric {
        self.at_with(model, theta, damping, &MetricOptions::default())
    }

    /// [`MetricKind::at`] with provider settings. The approximation's dense matrix is
    /// factorized as a [`Metric`]; when the provider fails or n is too large for a dense
    /// matrix, the result is all NaN (use [`provider`] for a [`Factorized`] metric instead).
    pub fn at_with(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
        options: &MetricOptions,
    ) -> Metric {
        let n = model.dim();
        let g = match self {
            MetricKind::Exact => Some(model.fisher(theta)),
            MetricKind::Euclidean => Some(DMatrix::identity(n, n)),
            _ => provider(*self, options)
                .factorize(model, theta, damping)
                .ok()
                .and_then(|f| f.matrix()),
        };
        match g {
            Some(g) if g.iter().all(|v| v.is_finite()) => Metric::new(g, damping),
            _ => Metric::invalid(n, damping),
        }
    }
}

/// The exact metric's geometry at θ from a model-specific, cancellation-free computation
/// ([`crate::model::StatModel::exact_geometry`]; the mixture solves in the chart
/// (M, δ), see [`crate::model::mixture::ChartEval`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    /// ∇L(θ).
    pub gradient: DVector<f64>,
    /// (G + λI)⁻¹∇L(θ) (on a singular line: the limit along the line).
    pub natural: DVector<f64>,
    /// Eigenvalues of the undamped G, ascending, each to full relative accuracy.
    pub eigenvalues: DVector<f64>,
    /// The undamped G.
    pub matrix: DMatrix<f64>,
    /// Damping λ of `natural`.
    pub damping: f64,
}

impl Geometry {
    /// κ(G + λI) = (λ_max + λ)/(λ_min + λ) (∞ when the denominator is ≤ 0).
    pub fn condition_number(&self) -> f64 {
        damped_kappa(&self.eigenvalues, self.damping)
    }
}

/// κ(G + λI) from G's ascending eigenvalues: (λ_max + λ)/(λ_min + λ), ∞ when λ_min + λ ≤ 0
/// (NaN for no eigenvalues).
pub fn damped_kappa(eigenvalues: &DVector<f64>, damping: f64) -> f64 {
    if eigenvalues.is_empty() {
        return f64::NAN;
    }
    let lo = eigenvalues[0] + damping;
    let hi = eigenvalues[eigenvalues.len() - 1] + damping;
    if lo <= 0.0 { f64::INFINITY } else { hi / lo }
}

/// Relative eigenvalue floor of the rank-revealing solve: eigen-directions with
/// λᵢ + λ ≤ `RANK_TOL`·max(λ_max + λ, tiny) are treated as null directions (the metric carries
/// no information there, e.g. the exchange direction exactly on μ₁ = μ₂). The value sits just
/// above the relative accuracy of the quadrature Fisher entries (≈1e-13), so that what is
/// dropped is below what the entries can resolve.
pub const RANK_TOL: f64 = 1e-12;

/// A factorized symmetric positive semidefinite metric M = G + λI.
#[derive(Clone, Debug)]
pub struct Metric {
    matrix: DMatrix<f64>,
    damping: f64,
    eigen: SymEigen,
}

impl Metric {
    /// Factorize G + λI (eigendecomposition through [`crate::linalg`]).
    pub fn new(matrix: DMatrix<f64>, damping: f64) -> Self {
        let eigen = sym_eigen(&matrix);
        Metric {
            matrix,
            damping,
            eigen,
        }
    }

    /// An all-NaN metric (what [`MetricKind::at`] returns when the metric is unavailable).
    pub fn invalid(n: usize, damping: f64) -> Self {
        Metric {
            matrix: DMatrix::from_element(n, n, f64::NAN),
            damping,
            eigen: SymEigen {
                values: DVector::from_element(n, f64::NAN),
                vectors: DMatrix::from_element(n, n, f64::NAN),
            },
        }
    }

    /// The undamped matrix G.
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.matrix
    }

    /// Damping λ.
    pub fn damping(&self) -> f64 {
        self.damping
    }

    /// Eigenvalues of G, ascending.
    pub fn eigenvalues(&self) -> &DVector<f64> {
        &self.eigen.values
    }

    /// Eigenvectors of G (columns), in the order of [`Metric::eigenvalues`].
    pub fn eigenvectors(&self) -> &DMatrix<f64> {
        &self.eigen.vectors
    }

    /// κ(G) = λ_max/λ_min (∞ when λ_min ≤ 0).
    pub fn condition_number(&self) -> f64 {
        let v = &self.eigen.values;
        let (lo, hi) = (v[0], v[v.len() - 1]);
        if lo <= 0.0 { f64::INFINITY } else { hi / lo }
    }

    /// The null-direction threshold on λᵢ + λ.
    fn cutoff(&self) -> f64 {
        let v = &self.eigen.values;
        let top = (v[v.len() - 1] + self.damping).abs();
        RANK_TOL * top.max(f64::MIN_POSITIVE)
    }

    /// x = (G + λI)⁺ g, the rank-revealing (pseudo-inverse) solve: exact where G + λI is
    /// positive definite, and zero along directions below [`RANK_TOL`].
    pub fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        let q = &self.eigen.vectors;
        let cut = self.cutoff();
        let mut x = DVector::zeros(g.len());
        for (i, &l) in self.eigen.values.iter().enumerate() {
            let d = l + self.damping;
            if d > cut {
                let c = q.column(i).dot(g) / d;
                x.axpy(c, &q.column(i), 1.0);
            }
        }
        x
    }

    /// vᵀ(G + λI)v.
    pub fn quad_form(&self, v: &DVector<f64>) -> f64 {
        (&self.matrix * v).dot(v) + self.damping * v.dot(v)
    }

    /// Number of eigen-directions treated as null by [`Metric::solve`].
    pub fn null_directions(&self) -> usize {
        let cut = self.cutoff();
        self.eigen
            .values
            .iter()
            .filter(|&&l| l + self.damping <= cut)
            .count()
    }
}

/// Angle in degrees between two vectors (0 when either is zero).
pub fn angle_deg(a: &DVector<f64>, b: &DVector<f64>) -> f64 {
    let na = a.norm();
    let nb = b.norm();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (a.dot(b) / (na * nb)).clamp(-1.0, 1.0).acos().to_degrees()
}
