//! `adaptive`: dynamic Fisher fidelity — choose the metric and how often to refresh it along
//! the flow, from measurements — and the stale ("refreshed every P steps") variants of the
//! fixed metrics it is measured against.
//!
//! **Held curvature.** Between refreshes the flow solves with the factorization made at the
//! last refresh point θ_r: f(θ) = −M(θ_r)⁻¹∇L(θ) (kfac-jax's inverse-update period). A step
//! then costs a gradient and a solve instead of a new metric. The field is smooth between
//! refreshes; a refresh (or a switch of metric) changes it discretely, so each one ends the
//! integrator's segment and restarts it at the current state ([`MetricProvider::after_step`];
//! error control stays honest), and each is recorded as an event in `trajectory.json`.
//!
//! **Quality.** At a check, with g = ∇L(θ) and the exact natural gradient x* = (F + λI)⁻¹g by
//! matrix-free CG ([`super::cg`]), each candidate k ∈ {euclidean, diagonal, block-diagonal,
//! kfac, exact} gives xₖ = Mₖ⁻¹g. An explicit integrator's step along f = −Mₖ⁻¹g is bounded
//! by stability, h ≲ B/ρₖ with ρₖ = λ_max(Mₖ⁻¹(F + λI)) (F standing in for the Hessian, as
//! in Gauss–Newton), so the loss decrease one step can make is ∝ gᵀxₖ/ρₖ; relative to the
//! exact metric's (ρ = 1):
//!
//! qₖ = (gᵀxₖ / ρₖ) / (gᵀx*) ∈ [0, 1]
//!
//! (≤ 1 because F + λI ≤ ρₖMₖ ⇒ Mₖ⁻¹ ≤ ρₖ(F + λI)⁻¹). ρₖ comes from [`POWER_ITERS`] power
//! iterations on Mₖ⁻¹(F + λI) (each a Fisher–vector product and a solve). The Euclidean
//! angle ∠(xₖ, x*) is reported too.
//!
//! **Cost.** The flop model of [`super::cost`]: per accepted step ≈ 6 evaluations of
//! (gradient + solveₖ) plus refreshₖ/P. The choice maximizes qₖ / costₖ.
//!
//! **Refresh period from drift.** At a refresh the old and new factorizations both solve with
//! the current g; their angle δ is the drift of the held curvature over the period. The next
//! period is P·δ*/δ (δ* = `drift_deg`, default 30°), at most 4× longer or shorter than the last,
//! in [1, [`PERIOD_MAX`]]. The realized loss decrease since the refresh is compared with the
//! quadratic model's prediction Δt·gᵀx − ½Δt²·xᵀMx made there; a ratio below ½ (or every
//! `check_every` refreshes, doubling while the choice stands) triggers a new check.

use super::cg::{CG_MAX_ITER, FisherOperator};
use super::cost::Shape;
use super::provider::{DENSE_LIMIT, Factorized, MetricOptions, MetricProvider, provider};
use super::{MetricKind, angle_deg};
use crate::error::{Error, Result};
use crate::model::{Mlp, StatModel};
use nalgebra::{DMatrix, DVector};
use std::sync::{Arc, Mutex, MutexGuard};

/// The metrics `adaptive` chooses among.
pub const CANDIDATES: [MetricKind; 5] = [
    MetricKind::Euclidean,
    MetricKind::Diagonal,
    MetricKind::BlockDiagonal,
    MetricKind::Kfac,
    MetricKind::Exact,
];
/// Default target drift δ* per refresh period, degrees.
pub const DEFAULT_DRIFT_DEG: f64 = 30.0;
/// A check switches only to a candidate whose q/cost beats the current one's by this factor.
pub const SWITCH_MARGIN: f64 = 1.25;
/// First refresh period (accepted steps) when it is chosen from drift.
pub const PERIOD_START: usize = 4;
/// Longest refresh period.
pub const PERIOD_MAX: usize = 512;
/// Refreshes between checks after a switch (doubles while the choice stands, up to
/// [`CHECK_MAX`]).
pub const CHECK_FIRST: usize = 2;
/// Longest interval between checks, in refreshes.
pub const CHECK_MAX: usize = 32;
/// Largest score factor (rows × n × 8 bytes) a candidate may form.
pub const FACTOR_BYTES_MAX: f64 = 512e6;
/// rhs evaluations per accepted step assumed by the cost model (tsit45).
pub const EVALS_PER_STEP: f64 = 6.0;
/// CG tolerance and cap of the reference natural gradient at a check (an angle needs no more).
pub const PROBE_CG_TOL: f64 = 1e-6;
/// CG tolerance of the held exact metric above the dense limit.
pub const HELD_CG_TOL: f64 = 1e-8;
/// Power iterations for ρₖ = λ_max(Mₖ⁻¹(F + λI)).
pub const POWER_ITERS: usize = 12;

/// v ↦ (F + λI)v.
type VecOp<'a> = dyn Fn(&DVector<f64>) -> DVector<f64> + 'a;

/// What the provider does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Choose among [`CANDIDATES`] by measured quality per cost.
    Adaptive,
    /// Hold one metric, refreshed every period.
    Fixed(MetricKind),
}

/// One factorization shared between the provider's state and the rhs that solves with it.
#[derive(Clone)]
struct Held(Arc<Mutex<Box<dyn Factorized>>>);

impl Held {
    fn new(m: Box<dyn Factorized>) -> Self {
        Held(Arc::new(Mutex::new(m)))
    }
    fn get(&self) -> MutexGuard<'_, Box<dyn Factorized>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl Factorized for Held {
    fn dim(&self) -> usize {
        self.get().dim()
    }
    fn damping(&self) -> f64 {
        self.get().damping()
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        self.get().solve(g)
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        self.get().quad_form(v)
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        self.get().matrix()
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        self.get().eigenvalues()
    }
    fn damped_condition_number(&self) -> Option<f64> {
        self.get().damped_condition_number()
    }
    fn memory_bytes(&self) -> usize {
        self.get().memory_bytes()
    }
}

/// The exact Fisher of an MLP at θ_r as a CG solver (n above the dense limit).
pub struct CgMetric {
    mlp: Box<Mlp>,
    theta: Vec<f64>,
    damping: f64,
    /// Fisher–vector products of the last solve.
    last_iters: Mutex<usize>,
}

impl CgMetric {
    /// F(θ) + λI of `mlp` (λ > 0 for a definite system).
    pub fn new(mlp: &Mlp, theta: &[f64], damping: f64) -> Self {
        CgMetric {
            mlp: Box::new(mlp.clone()),
            theta: theta.to_vec(),
            damping,
            last_iters: Mutex::new(0),
        }
    }
}

impl Factorized for CgMetric {
    fn dim(&self) -> usize {
        self.theta.len()
    }
    fn damping(&self) -> f64 {
        self.damping
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        let op = FisherOperator::new(&self.mlp, &self.theta);
        let s = op.solve(g, self.damping, HELD_CG_TOL, CG_MAX_ITER);
        if let Ok(mut k) = self.last_iters.lock() {
            *k = s.iterations;
        }
        s.x
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        let op = FisherOperator::new(&self.mlp, &self.theta);
        op.mul(v).dot(v) + self.damping * v.norm_squared()
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        None
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        None
    }
    fn memory_bytes(&self) -> usize {
        8 * self.theta.len()
    }
}

/// The quadratic model's prediction made at a refresh.
#[derive(Clone, Copy, Debug)]
struct Prediction {
    t: f64,
    loss: f64,
    /// gᵀx (the predicted rate of decrease −dL/dt).
    slope: f64,
    /// xᵀMx.
    curvature: f64,
}

/// Mutable state along one run.
#[derive(Default)]
struct State {
    current: Option<MetricKind>,
    held: Option<Held>,
    damping: f64,
    period: usize,
    since: usize,
    refreshes_since_check: usize,
    check_every: usize,
    /// Flops of checks and refreshes so far.
    overhead: f64,
    /// Flops of one flow evaluation with the held metric.
    eval_cost: f64,
    prediction: Option<Prediction>,
    /// (kind, detail) of events not yet handed to the simulator.
    events: Vec<(String, String)>,
}

/// The `adaptive` provider, or a fixed metric refreshed every `period` steps.
pub struct AdaptiveProvider {
    policy: Policy,
    /// Fixed refresh period (accepted steps); `None`: chosen from drift.
    fixed_period: Option<usize>,
    drift_deg: f64,
    options: MetricOptions,
    state: Mutex<State>,
}

/// One candidate measured at a check.
struct Probe {
    kind: MetricKind,
    metric: Box<dyn Factorized>,
    quality: f64,
    angle: f64,
    cost_per_step: f64,
}

impl AdaptiveProvider {
    /// `adaptive` with `options` (`refresh` > 0 fixes the period, else drift chooses it).
    pub fn adaptive(options: &MetricOptions) -> Self {
        Self::build(Policy::Adaptive, options)
    }

    /// `kind` held and refreshed every `options.refresh` accepted steps.
    pub fn fixed(kind: MetricKind, options: &MetricOptions) -> Self {
        Self::build(Policy::Fixed(kind), options)
    }

    fn build(policy: Policy, options: &MetricOptions) -> Self {
        AdaptiveProvider {
            policy,
            fixed_period: (options.refresh > 0).then_some(options.refresh),
            drift_deg: options.drift_deg,
            options: options.clone(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Block sizes of block-diagonal for `model`.
    fn blocks(&self, model: &dyn StatModel) -> Vec<usize> {
        super::block::resolve_blocks(model, &self.options.blocks)
            .map(|b| b.iter().map(|v| v.len()).collect())
            .unwrap_or_default()
    }

    /// Whether candidate `kind` is affordable for `model`.
    fn affordable(&self, model: &dyn StatModel, kind: MetricKind) -> bool {
        let n = model.dim();
        let shape = Shape::of(model);
        let factor_ok = shape
            .as_ref()
            .is_none_or(|s| s.roots * s.examples * s.n * 8.0 <= FACTOR_BYTES_MAX);
        match kind {
            MetricKind::Euclidean => true,
            MetricKind::Exact => {
                (n <= DENSE_LIMIT && factor_ok) || (n > DENSE_LIMIT && model.mlp().is_some())
            }
            MetricKind::Diagonal => factor_ok && provider(kind, &self.options).check(model).is_ok(),
            MetricKind::BlockDiagonal => {
                factor_ok
                    && self.blocks(model).iter().all(|&b| b <= DENSE_LIMIT)
                    && provider(kind, &self.options).check(model).is_ok()
            }
            MetricKind::Kfac => provider(kind, &self.options).check(model).is_ok(),
            _ => false,
        }
    }

    /// The factorization of `kind` at θ (exact above the dense limit: CG).
    fn factorize_kind(
        &self,
        model: &dyn StatModel,
        kind: MetricKind,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        if kind == MetricKind::Exact
            && model.dim() > DENSE_LIMIT
            && let Some(m) = model.mlp()
        {
            return Ok(Box::new(CgMetric::new(m, theta, damping)));
        }
        let mut opts = self.options.clone();
        opts.refresh = 0;
        provider(kind, &opts).factorize(model, theta, damping)
    }

    /// Flops of one evaluation with a held `kind` (0 without a cost model).
    fn eval_cost(&self, model: &dyn StatModel, kind: MetricKind) -> f64 {
        Shape::of(model).map_or(0.0, |s| {
            s.gradient() + s.solve(kind, &self.blocks(model), CG_MAX_ITER as f64 / 4.0)
        })
    }

    fn refresh_cost(&self, model: &dyn StatModel, kind: MetricKind) -> f64 {
        Shape::of(model).map_or(0.0, |s| s.refresh(kind, &self.blocks(model)))
    }

    /// Measure every affordable candidate at θ (see the module docs); returns them, the cost
    /// of the measurement and a one-line summary.
    fn probe(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
        period: usize,
    ) -> Result<(Vec<Probe>, f64)> {
        let shape = Shape::of(model);
        let mut cost = 0.0;
        let g = model.gradient(theta);
        let lam = damping.max(1e-12 * (1.0 + g.norm()));
        // F·v: matrix-free for the MLP, dense otherwise (small models)
        let dense_f;
        let op;
        let fmul: Box<VecOp<'_>> = match model.mlp() {
            Some(m) => {
                op = FisherOperator::new(m, theta);
                Box::new(|v: &DVector<f64>| op.mul(v) + v * lam)
            }
            None => {
                dense_f = model.fisher(theta);
                Box::new(|v: &DVector<f64>| &dense_f * v + v * lam)
            }
        };
        let reference = super::cg::cg(&fmul, &g, PROBE_CG_TOL, CG_MAX_ITER.min(4 * model.dim()));
        if let Some(s) = &shape {
            cost += s.gradient() + 2.0 * s.examples * s.n + reference.iterations as f64 * s.fvp();
        }
        let gx = g.dot(&reference.x);
        let mut out = Vec::new();
        let kinds: Vec<MetricKind> = match self.policy {
            Policy::Adaptive => CANDIDATES
                .into_iter()
                .filter(|&k| self.affordable(model, k))
                .collect(),
            Policy::Fixed(k) => vec![k],
        };
        for kind in kinds {
            let Ok(metric) = self.factorize_kind(model, kind, theta, damping) else {
                continue;
            };
            let x = metric.solve(&g);
            // ρ = λ_max(M⁻¹(F + λI)) by power iteration from x (exact: 1 by construction)
            let iters = if kind == MetricKind::Exact {
                0
            } else {
                POWER_ITERS
            };
            let mut rho: f64 = 1.0;
            let mut v = x.clone();
            for _ in 0..iters {
                let nv = v.norm();
                if !(nv > 0.0 && nv.is_finite()) {
                    break;
                }
                v /= nv;
                let w = metric.solve(&fmul(&v));
                // ‖Av‖ for ‖v‖ = 1 → λ_max(A) (A is similar to an SPD matrix)
                rho = w.norm();
                v = w;
            }
            let quality = {
                let num = g.dot(&x) / rho.max(f64::MIN_POSITIVE);
                if gx > 0.0 && num.is_finite() {
                    (num / gx).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            };
            let refresh = self.refresh_cost(model, kind);
            let evalc = self.eval_cost(model, kind);
            if let Some(s) = &shape {
                cost +=
                    refresh + (evalc - s.gradient()) * (1 + iters) as f64 + s.fvp() * iters as f64;
            }
            let cost_per_step = match &shape {
                Some(_) => EVALS_PER_STEP * evalc + refresh / period.max(1) as f64,
                None => 1.0,
            };
            out.push(Probe {
                kind,
                metric,
                quality,
                angle: angle_deg(&x, &reference.x),
                cost_per_step,
            });
        }
        if out.is_empty() {
            return Err(Error::invalid(
                "flow.metric",
                "adaptive",
                "no candidate metric is available for this model",
            ));
        }
        Ok((out, cost))
    }

    /// Pick the best probe (quality per cost; ties: the earlier, cheaper candidate); the
    /// `current` metric is kept unless another beats it by [`SWITCH_MARGIN`].
    fn choose(probes: Vec<Probe>, current: Option<MetricKind>) -> (Probe, String) {
        let summary = probes
            .iter()
            .map(|p| {
                format!(
                    "{} q={:.3} angle={:.1}° cost/step={:.3e}",
                    p.kind.name(),
                    p.quality,
                    p.angle,
                    p.cost_per_step
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let mut best: Option<Probe> = None;
        for p in probes {
            let margin = |k: MetricKind| {
                if Some(k) == current {
                    SWITCH_MARGIN
                } else {
                    1.0
                }
            };
            let better = match &best {
                None => true,
                Some(b) => {
                    margin(p.kind) * p.quality / p.cost_per_step
                        > margin(b.kind) * b.quality / b.cost_per_step
                }
            };
            if better {
                best = Some(p);
            }
        }
        // probes is non-empty (checked by `probe`)
        let best = best.unwrap_or_else(|| unreachable!());
        (best, summary)
    }

    /// First evaluation: choose (adaptive) or factorize the fixed metric at θ.
    fn init(
        &self,
        st: &mut State,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<()> {
        st.damping = damping;
        st.period = self.fixed_period.unwrap_or(PERIOD_START);
        st.check_every = CHECK_FIRST;
        let (kind, metric, detail) = match self.policy {
            Policy::Fixed(kind) => {
                let m = self.factorize_kind(model, kind, theta, damping)?;
                st.overhead += self.refresh_cost(model, kind);
                (
                    kind,
                    m,
                    format!("{} held, refreshed every {} steps", kind.name(), st.period),
                )
            }
            Policy::Adaptive => {
                let (probes, cost) = self.probe(model, theta, damping, st.period)?;
                st.overhead += cost;
                let (best, summary) = Self::choose(probes, None);
                (
                    best.kind,
                    best.metric,
                    format!(
                        "-> {} (largest q/cost; {summary}); refresh period {} steps",
                        best.kind.name(),
                        st.period
                    ),
                )
            }
        };
        let kind_name = if matches!(self.policy, Policy::Adaptive) {
            "metric-switch"
        } else {
            "metric-refresh"
        };
        st.events.push((kind_name.into(), detail));
        self.hold(st, model, kind, metric, theta, 0.0);
        Ok(())
    }

    /// Hold `metric` from θ (time t) and store the quadratic model's prediction.
    fn hold(
        &self,
        st: &mut State,
        model: &dyn StatModel,
        kind: MetricKind,
        metric: Box<dyn Factorized>,
        theta: &[f64],
        t: f64,
    ) {
        let mut g = vec![0.0; model.dim()];
        let loss = model.loss_grad(theta, &mut g);
        let g = DVector::from_vec(g);
        let x = metric.solve(&g);
        st.prediction = Some(Prediction {
            t,
            loss,
            slope: g.dot(&x),
            curvature: metric.quad_form(&x),
        });
        st.eval_cost = self.eval_cost(model, kind);
        st.current = Some(kind);
        st.held = Some(Held::new(metric));
        st.since = 0;
    }
}

impl MetricProvider for AdaptiveProvider {
    fn name(&self) -> &'static str {
        match self.policy {
            Policy::Adaptive => "adaptive",
            Policy::Fixed(k) => k.name(),
        }
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        match self.policy {
            Policy::Fixed(k) => {
                let mut opts = self.options.clone();
                opts.refresh = 0;
                provider(k, &opts).check(model)
            }
            Policy::Adaptive => Ok(()),
        }
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let mut st = self.lock();
        if st.held.is_none() {
            self.init(&mut st, model, theta, damping)?;
        }
        match &st.held {
            Some(h) => Ok(Box::new(h.clone())),
            None => Err(Error::invalid("flow.metric", self.name(), "no metric held")),
        }
    }
    fn after_step(&self, model: &dyn StatModel, theta: &[f64], t: f64) -> bool {
        let mut st = self.lock();
        let (Some(current), Some(old)) = (st.current, st.held.clone()) else {
            return false;
        };
        st.since += 1;
        if st.since < st.period {
            return false;
        }
        let damping = st.damping;
        let mut g = vec![0.0; model.dim()];
        let loss = model.loss_grad(theta, &mut g);
        let g = DVector::from_vec(g);
        let shape = Shape::of(model);
        if let Some(s) = &shape {
            st.overhead += s.gradient();
        }
        // realized vs predicted decrease since the last refresh
        let ratio = st.prediction.map(|p| {
            let dt = t - p.t;
            let predicted = dt * p.slope - 0.5 * dt * dt * p.curvature;
            let realized = p.loss - loss;
            if predicted > 0.0 {
                realized / predicted
            } else {
                f64::NAN
            }
        });
        st.refreshes_since_check += 1;
        let check = matches!(self.policy, Policy::Adaptive)
            && (st.refreshes_since_check >= st.check_every || ratio.is_some_and(|r| r < 0.5));
        // the new metric: a full check (adaptive), else a refresh of the current one
        let (kind, metric, summary) = if check {
            match self.probe(model, theta, damping, st.period) {
                Ok((probes, cost)) => {
                    st.overhead += cost;
                    st.refreshes_since_check = 0;
                    let (best, summary) = Self::choose(probes, Some(current));
                    (best.kind, best.metric, Some(summary))
                }
                Err(_) => return false,
            }
        } else {
            match self.factorize_kind(model, current, theta, damping) {
                Ok(m) => {
                    st.overhead += self.refresh_cost(model, current);
                    (current, m, None)
                }
                Err(_) => return false,
            }
        };
        let switched = kind != current;
        // drift of the held curvature over the period: old vs new solve at the current g
        let drift = if switched {
            f64::NAN
        } else {
            let (xo, xn) = (old.solve(&g), metric.solve(&g));
            if let Some(s) = &shape {
                st.overhead += 2.0 * s.solve(kind, &self.blocks(model), 0.0);
            }
            angle_deg(&xo, &xn)
        };
        let old_period = st.period;
        if switched {
            st.period = self.fixed_period.unwrap_or(PERIOD_START);
            st.check_every = CHECK_FIRST;
        } else {
            if check {
                st.check_every = (2 * st.check_every).min(CHECK_MAX);
            }
            if self.fixed_period.is_none() {
                let p = st.period as f64;
                let next = if drift > 0.0 {
                    p * self.drift_deg / drift
                } else {
                    4.0 * p
                };
                st.period = (next.clamp(p / 4.0, 4.0 * p).round() as usize).clamp(1, PERIOD_MAX);
            }
        }
        let ratio_s = ratio.map_or("n/a".to_string(), |r| format!("{r:.3}"));
        let detail = if switched {
            format!(
                "{} -> {} ({}); realized/predicted decrease {ratio_s}; refresh period {} steps",
                current.name(),
                kind.name(),
                summary.unwrap_or_default(),
                st.period
            )
        } else {
            format!(
                "{} refreshed after {old_period} steps: drift {drift:.2}°, realized/predicted decrease {ratio_s}, next period {} steps{}",
                kind.name(),
                st.period,
                summary.map_or(String::new(), |s| format!("; checked: {s}"))
            )
        };
        st.events.push((
            if switched {
                "metric-switch"
            } else {
                "metric-refresh"
            }
            .into(),
            detail,
        ));
        self.hold(&mut st, model, kind, metric, theta, t);
        true
    }
    fn take_events(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.lock().events)
    }
    fn eval_flops(&self, model: &dyn StatModel) -> Option<f64> {
        Shape::of(model)?;
        let st = self.lock();
        match st.current {
            Some(_) => Some(st.eval_cost),
            None => Some(0.0),
        }
    }
    fn overhead_flops(&self) -> f64 {
        self.lock().overhead
    }
}
