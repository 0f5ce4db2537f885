//! The provider abstraction: a [`MetricProvider`] turns (model, θ, λ) into a [`Factorized`]
//! metric M ≈ G(θ) + λI that can solve M x = g, evaluate vᵀMv and, where the size allows,
//! report its eigenvalues and condition number. Every provider lives in its own file.

use super::{Metric, MetricKind};
use crate::error::{Error, Result};
use crate::gemm::{Op, syrk};
use crate::model::{FisherSource, KfacTargets, StatModel};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Largest n for which a dense n×n metric is formed (8·n² bytes ≈ 134 MB at the limit).
pub const DENSE_LIMIT: usize = 4096;

/// A factorized metric M (the damped approximation of G + λI that a provider solves with).
pub trait Factorized: Send {
    /// Dimension n.
    fn dim(&self) -> usize;
    /// Damping λ.
    fn damping(&self) -> f64;
    /// x = M⁺ g (rank-revealing where the provider is dense or diagonal).
    fn solve(&self, g: &DVector<f64>) -> DVector<f64>;
    /// vᵀ M v.
    fn quad_form(&self, v: &DVector<f64>) -> f64;
    /// The undamped approximation G̃ as a dense matrix, when n ≤ [`DENSE_LIMIT`].
    fn matrix(&self) -> Option<DMatrix<f64>>;
    /// Eigenvalues of G̃, ascending, when affordable.
    fn eigenvalues(&self) -> Option<DVector<f64>>;
    /// κ(G̃) = λ_max/λ_min (∞ when λ_min ≤ 0), when the eigenvalues are affordable.
    fn condition_number(&self) -> Option<f64> {
        let v = self.eigenvalues()?;
        if v.is_empty() {
            return None;
        }
        let (lo, hi) = (v[0], v[v.len() - 1]);
        Some(if lo <= 0.0 { f64::INFINITY } else { hi / lo })
    }
    /// κ(G̃ + λI) = (λ_max + λ)/(λ_min + λ) of the damped metric the flow solves with (the
    /// undamped [`Factorized::condition_number`] when λ = 0), when the eigenvalues are
    /// affordable. Finite whenever λ > 0, also where G̃ is singular.
    fn damped_condition_number(&self) -> Option<f64> {
        let v = self.eigenvalues()?;
        (!v.is_empty()).then(|| super::damped_kappa(&v, self.damping()))
    }
    /// Bytes held by the factorization (its state, not the model's).
    fn memory_bytes(&self) -> usize;
}

/// Evaluates one kind of metric.
pub trait MetricProvider: Send + Sync {
    /// The metric's name (`exact`, `kfac`, …).
    fn name(&self) -> &'static str;
    /// Whether the provider can serve `model` (checked once, before a run).
    fn check(&self, _model: &dyn StatModel) -> Result<()> {
        Ok(())
    }
    /// The factorized metric of `model` at θ with Tikhonov damping λ ≥ 0.
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>>;
    /// Fix the Monte Carlo draws of the coming evaluations at `anchor` (a step's start θ; `None`:
    /// draw at every evaluation's own θ). Providers without draws ignore it (default).
    /// Returns whether the provider holds draws (so f at the anchor may have changed).
    fn set_anchor(&self, _anchor: Option<&[f64]>) -> bool {
        false
    }
    /// ∇L(θ) and the natural gradient (metric + λI)⁻¹∇L(θ) in one pass, for providers that
    /// share work between the two (K-FAC: one forward pass for the loss, the gradient and the
    /// factors); `None` when the provider has no such pass (then: gradient, `factorize`,
    /// `solve`).
    fn gradient_and_natural(
        &self,
        _model: &dyn StatModel,
        _theta: &[f64],
        _damping: f64,
    ) -> Option<Result<(DVector<f64>, DVector<f64>)>> {
        None
    }
    /// Called by the simulator after every accepted step at (θ, t). A provider that holds
    /// curvature between refreshes ([`super::adaptive`]) refreshes or switches here and
    /// returns true: f has changed discretely, so the integrator must restart at θ. Default:
    /// nothing held, false.
    fn after_step(&self, _model: &dyn StatModel, _theta: &[f64], _t: f64) -> bool {
        false
    }
    /// Events (kind, detail) the provider has to report since the last call (switches,
    /// refreshes), for `trajectory.json`. Default: none.
    fn take_events(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Model flops of one flow evaluation f(θ) with this provider ([`super::cost`]), where
    /// the model has a cost model (the MLP); `None` otherwise.
    fn eval_flops(&self, model: &dyn StatModel) -> Option<f64> {
        let shape = super::cost::Shape::of(model)?;
        let kind = MetricKind::parse("metric", self.name()).ok()?;
        let blocks: Vec<usize> = model.param_groups().iter().map(|(_, r)| r.len()).collect();
        Some(shape.fresh_eval(kind, &blocks))
    }
    /// Model flops spent besides the evaluations (measurements, refreshes) so far. Default 0.
    fn overhead_flops(&self) -> f64 {
        0.0
    }
    /// Called by the simulator at the start of a run with its settings (the `adaptive`
    /// provider runs its trial segments under them). Default: ignored.
    fn bind_flow(&self, _settings: &crate::flow::FlowSettings) {}
}

/// Which Fisher estimate `diagonal` and `block-diagonal` start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseMetric {
    /// The exact Fisher.
    #[default]
    Exact,
    /// The Monte Carlo Fisher (`samples`, `seed`).
    Sampled,
    /// The empirical Fisher.
    Empirical,
}

/// How K-FAC damps its factors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KfacDamping {
    /// (A + π√λ I) ⊗ (G + √λ/π I), π² = (tr A/dim A)/(tr G/dim G) (Martens & Grosse 2015).
    #[default]
    Factored,
    /// A ⊗ G + λI exactly, through eigendecompositions of A and G.
    Exact,
}

/// `[metric]` in a model file: settings of the providers (all optional).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricSection {
    /// Monte Carlo draws for `sampled` (mixture: draws of x; MLP: target draws per example)
    /// and target draws per example for K-FAC's sampled targets. Default 1000 (mixture) / 1
    /// (K-FAC) — see [`MetricOptions`].
    pub samples: Option<usize>,
    /// Seed of every Monte Carlo draw (default 42).
    pub seed: Option<u64>,
    /// Base estimate of `diagonal`/`block-diagonal`: exact | sampled | empirical (default exact).
    pub base: Option<String>,
    /// Parameter groups of `block-diagonal`, each a list of parameter names (a trailing `*`
    /// matches a prefix); parameters in no group form one more block. Default: the model's
    /// groups (MLP: one block per layer; mixture: one per parameter).
    pub blocks: Option<Vec<Vec<String>>>,
    /// K-FAC output-factor targets: sampled | empirical | exact (default sampled).
    pub kfac_targets: Option<String>,
    /// K-FAC damping: factored | exact (default factored).
    pub kfac_damping: Option<String>,
    /// Target draws per example for K-FAC's sampled targets (default 1).
    pub kfac_samples: Option<usize>,
    /// Hold the metric between refreshes, refreshed every this many accepted steps
    /// (exact, diagonal, block-diagonal, kfac, adaptive); 0 (default): re-evaluated at every
    /// evaluation, and for `adaptive` grown and shrunk along the flow.
    pub refresh: Option<usize>,
    /// `adaptive`: the largest fraction of the flops spent so far that its own measurements
    /// (trial segments, checks) may cost, in (0, 0.5] (default 0.05).
    pub measure_fraction: Option<f64>,
}

impl MetricSection {
    /// Whether no setting is given (the section is then omitted from resolved files).
    pub fn is_empty(&self) -> bool {
        *self == MetricSection::default()
    }
}

/// Validated provider settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricOptions {
    /// Monte Carlo draws of `sampled`.
    pub samples: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Base of `diagonal`/`block-diagonal`.
    pub base: BaseMetric,
    /// Named parameter groups of `block-diagonal` (empty: the model's groups).
    pub blocks: Vec<Vec<String>>,
    /// K-FAC targets.
    pub kfac_targets: KfacTargets,
    /// K-FAC damping.
    pub kfac_damping: KfacDamping,
    /// K-FAC target draws per example.
    pub kfac_samples: usize,
    /// Refresh period of held metrics (0: fresh at every evaluation / adapted by `adaptive`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh: usize,
    /// `adaptive`: budget of its measurements, a fraction of the flops spent so far.
    #[serde(
        default = "default_fraction",
        skip_serializing_if = "is_default_fraction"
    )]
    pub measure_fraction: f64,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}
fn default_fraction() -> f64 {
    super::adaptive::DEFAULT_MEASURE_FRACTION
}
fn is_default_fraction(v: &f64) -> bool {
    *v == super::adaptive::DEFAULT_MEASURE_FRACTION
}

/// Largest refresh period accepted in `[metric] refresh`.
pub const REFRESH_MAX: usize = 1_000_000;

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions {
            samples: 1000,
            seed: 42,
            base: BaseMetric::Exact,
            blocks: Vec::new(),
            kfac_targets: KfacTargets::Sampled,
            kfac_damping: KfacDamping::Factored,
            kfac_samples: 1,
            refresh: 0,
            measure_fraction: super::adaptive::DEFAULT_MEASURE_FRACTION,
        }
    }
}

impl MetricOptions {
    /// Validate a `[metric]` section; errors name the field.
    pub fn from_section(s: &MetricSection) -> Result<MetricOptions> {
        let d = MetricOptions::default();
        let samples = s.samples.unwrap_or(d.samples);
        if samples == 0 {
            return Err(Error::invalid("metric.samples", 0, "must be ≥ 1"));
        }
        let kfac_samples = s.kfac_samples.unwrap_or(d.kfac_samples);
        if kfac_samples == 0 {
            return Err(Error::invalid("metric.kfac_samples", 0, "must be ≥ 1"));
        }
        let base = match s.base.as_deref() {
            None | Some("exact") => BaseMetric::Exact,
            Some("sampled") => BaseMetric::Sampled,
            Some("empirical") => BaseMetric::Empirical,
            Some(o) => {
                return Err(Error::invalid(
                    "metric.base",
                    format!("'{o}'"),
                    "expected one of exact, sampled, empirical",
                ));
            }
        };
        let kfac_targets = match s.kfac_targets.as_deref() {
            None => d.kfac_targets,
            Some(t) => KfacTargets::parse("metric.kfac_targets", t)?,
        };
        let kfac_damping = match s.kfac_damping.as_deref() {
            None | Some("factored") => KfacDamping::Factored,
            Some("exact") => KfacDamping::Exact,
            Some(o) => {
                return Err(Error::invalid(
                    "metric.kfac_damping",
                    format!("'{o}'"),
                    "expected \"factored\" or \"exact\"",
                ));
            }
        };
        let blocks = s.blocks.clone().unwrap_or_default();
        if let Some(i) = blocks.iter().position(|b| b.is_empty()) {
            return Err(Error::invalid(
                format!("metric.blocks[{i}]"),
                "[]",
                "a block needs at least one parameter name",
            ));
        }
        let refresh = s.refresh.unwrap_or(0);
        if refresh > REFRESH_MAX {
            return Err(Error::invalid(
                "metric.refresh",
                refresh,
                format!("must be ≤ {REFRESH_MAX} accepted steps (0: refresh at every evaluation)"),
            ));
        }
        let measure_fraction = s.measure_fraction.unwrap_or(d.measure_fraction);
        if !(measure_fraction.is_finite() && measure_fraction > 0.0 && measure_fraction <= 0.5) {
            return Err(Error::invalid(
                "metric.measure_fraction",
                measure_fraction,
                "must be a fraction in (0, 0.5]",
            ));
        }
        Ok(MetricOptions {
            refresh,
            measure_fraction,
            samples,
            seed: s.seed.unwrap_or(d.seed),
            base,
            blocks,
            kfac_targets,
            kfac_damping,
            kfac_samples,
        })
    }

    /// Whether every setting is at its default.
    pub fn is_default(&self) -> bool {
        *self == MetricOptions::default()
    }

    /// The Fisher source of the `diagonal`/`block-diagonal` base.
    pub fn base_source(&self) -> FisherSource {
        match self.base {
            BaseMetric::Exact => FisherSource::Exact,
            BaseMetric::Sampled => FisherSource::Sampled {
                samples: self.samples,
                seed: self.seed,
            },
            BaseMetric::Empirical => FisherSource::Empirical,
        }
    }
}

/// The provider of `kind` with `options` (`refresh` > 0: the metric held between refreshes,
/// [`super::adaptive`]).
pub fn provider(kind: MetricKind, options: &MetricOptions) -> Box<dyn MetricProvider> {
    use super::{
        adaptive::AdaptiveProvider, block, dense::DenseProvider, diagonal, euclidean, kfac,
    };
    match kind {
        MetricKind::Adaptive => Box::new(AdaptiveProvider::adaptive(options)),
        MetricKind::Exact | MetricKind::Diagonal | MetricKind::BlockDiagonal | MetricKind::Kfac
            if options.refresh > 0 =>
        {
            Box::new(AdaptiveProvider::fixed(kind, options))
        }
        MetricKind::Exact => Box::new(DenseProvider::exact()),
        MetricKind::Euclidean => Box::new(euclidean::EuclideanProvider),
        MetricKind::Sampled => Box::new(DenseProvider::new(FisherSource::Sampled {
            samples: options.samples,
            seed: options.seed,
        })),
        MetricKind::Empirical => Box::new(DenseProvider::new(FisherSource::Empirical)),
        MetricKind::Diagonal => Box::new(diagonal::DiagonalProvider {
            base: options.base_source(),
        }),
        MetricKind::BlockDiagonal => Box::new(block::BlockProvider {
            base: options.base_source(),
            blocks: options.blocks.clone(),
        }),
        MetricKind::Kfac => Box::new(kfac::KfacProvider {
            targets: options.kfac_targets,
            damping_mode: options.kfac_damping,
            samples: options.kfac_samples,
            seed: options.seed,
        }),
    }
}

/// The dense Fisher estimate of `source`: RᵀR from the model's score factor, or (exact only,
/// when the model has no factor) [`StatModel::fisher`].
pub fn fisher_estimate(
    model: &dyn StatModel,
    theta: &[f64],
    source: &FisherSource,
) -> Result<DMatrix<f64>> {
    fisher_estimate_anchored(model, theta, source, None)
}

/// [`fisher_estimate`] with sampled targets drawn at `anchor` when given
/// ([`StatModel::fisher_factor_anchored`]).
pub fn fisher_estimate_anchored(
    model: &dyn StatModel,
    theta: &[f64],
    source: &FisherSource,
    anchor: Option<&[f64]>,
) -> Result<DMatrix<f64>> {
    let n = model.dim();
    dense_affordable(n, source.name())?;
    let factor = match anchor {
        Some(a) => model.fisher_factor_anchored(theta, source, a),
        None => model.fisher_factor(theta, source),
    };
    match factor {
        Ok(r) => {
            let mut g = DMatrix::zeros(n, n);
            syrk(1.0, Op::t(&r), &mut g);
            Ok(g)
        }
        Err(e) => match source {
            FisherSource::Exact => Ok(model.fisher(theta)),
            _ => Err(e),
        },
    }
}

/// Error unless an n×n matrix is affordable.
pub fn dense_affordable(n: usize, what: &str) -> Result<()> {
    if n > DENSE_LIMIT {
        return Err(Error::invalid(
            "metric",
            what,
            format!(
                "forms a dense {n}×{n} matrix; n exceeds {DENSE_LIMIT}, use kfac (or euclidean)"
            ),
        ));
    }
    Ok(())
}

/// Check that `source` is available for `model` (a trial evaluation at θ = 0).
pub fn check_source(model: &dyn StatModel, source: &FisherSource) -> Result<()> {
    if *source == FisherSource::Exact {
        return Ok(());
    }
    dense_affordable(model.dim(), source.name())?;
    let zero = vec![0.0; model.dim()];
    // A tiny trial (one draw) is enough to learn whether the model supports the source.
    let trial = match source {
        FisherSource::Sampled { seed, .. } => FisherSource::Sampled {
            samples: 1,
            seed: *seed,
        },
        s => s.clone(),
    };
    model.fisher_factor(&zero, &trial).map(|_| ())
}

impl Factorized for Metric {
    fn dim(&self) -> usize {
        self.matrix().nrows()
    }
    fn damping(&self) -> f64 {
        Metric::damping(self)
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        Metric::solve(self, g)
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        Metric::quad_form(self, v)
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        Some(Metric::matrix(self).clone())
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        Some(Metric::eigenvalues(self).clone())
    }
    fn condition_number(&self) -> Option<f64> {
        Some(Metric::condition_number(self))
    }
    fn memory_bytes(&self) -> usize {
        let n = self.matrix().nrows();
        8 * (2 * n * n + n)
    }
}
