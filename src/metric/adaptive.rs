//! `adaptive`: dynamic Fisher fidelity — choose the metric, whether to hold it, and how often
//! to refresh it along the flow, from measured progress per cost — and the held ("refreshed
//! every P steps") variants of the fixed metrics it is measured against.
//!
//! **Held curvature.** Between refreshes the flow solves with the factorization made at the
//! last refresh point θ_r: f(θ) = −M(θ_r)⁻¹∇L(θ) (kfac-jax's inverse-update period). A step
//! then costs a gradient and a solve instead of a new metric. The field is smooth between
//! refreshes; a refresh (or a switch of metric) changes it discretely, so each one ends the
//! integrator's segment and restarts it at the current state ([`MetricProvider::after_step`];
//! error control stays honest), and each is recorded as an event in `trajectory.json`.
//!
//! **The objective is cost to reach a loss.** A configuration c is a metric k ∈ {euclidean,
//! diagonal, block-diagonal, kfac, exact} either *fresh* (re-evaluated at every evaluation) or
//! *held* with the current period P. At a trial round, every affordable configuration runs a
//! short trial segment from the same state θ — the same integrator and tolerances as the flow
//! ([`MetricProvider::bind_flow`]), an equal flop budget B each, at most
//! [`TRIAL_STEPS_MAX`] accepted steps — and is rated by its measured loss decrease per flop,
//!
//! rate_c = (L(θ) − L(θ_c)) / flops_c
//!
//! (a held trial shorter than P is charged its refresh amortized over P steps, as the flow will
//! pay it). The best rate is adopted when it beats the current configuration's by
//! [`SWITCH_MARGIN`]. No quality proxy is involved: what is compared is what the flow buys.
//!
//! **Budget.** The trials (and the loss/gradient checks at refreshes) are the provider's own
//! measurements. They are charged to the run, and a round starts only when everything measured
//! so far plus the round stays within `measure_fraction` (default 5 %) of the flops spent so
//! far; rounds are at most one per doubling of the spent flops. Before the first affordable
//! round the provider holds K-FAC (the cheapest curvature with layer structure; diagonal or
//! exact when the model has no layers).
//!
//! **Refresh period.** Held: at each refresh, the realized loss decrease since the last one is
//! compared with the prediction of the exponential model of the flow made there: with
//! s = gᵀx, c = xᵀMx (x = M⁻¹g), dL/dt = −s and d²L/dt² ≈ 2c, so
//! ΔL_pred(Δt) = (s²/2c)(1 − e^{−2cΔt/s}). The period doubles while the ratio stays ≥
//! [`RATIO_GOOD`] and the step size held up (the period's last accepted step ≥
//! [`STEP_STEADY`]× its largest), halves when the ratio falls below [`RATIO_BAD`] or the step
//! size collapsed (last < [`STEP_COLLAPSE`]× largest: the stale metric made the field stiff),
//! within 1 … [`PERIOD_MAX`]. A held metric that keeps degrading at P = 1 becomes
//! the fresh one.

use super::MetricKind;
use super::cg::{CG_MAX_ITER, FisherOperator};
use super::cost::Shape;
use super::provider::{DENSE_LIMIT, Factorized, MetricOptions, MetricProvider, provider};
use crate::error::{Error, Result};
use crate::flow::{FlowSettings, Simulator};
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
/// Default budget of the measurements: this fraction of the flops spent so far.
pub const DEFAULT_MEASURE_FRACTION: f64 = 0.05;
/// A trial round switches only to a configuration whose measured rate beats the current
/// one's by this factor.
pub const SWITCH_MARGIN: f64 = 1.1;
/// First refresh period (accepted steps) of a held metric.
pub const PERIOD_START: usize = 8;
/// Longest refresh period.
pub const PERIOD_MAX: usize = 512;
/// Realized/predicted decrease at or above which the period doubles.
pub const RATIO_GOOD: f64 = 0.5;
/// Realized/predicted decrease below which the period halves.
pub const RATIO_BAD: f64 = 0.25;
/// A period whose last accepted step is below this fraction of its largest one has collapsed
/// (the held metric went stale and made the field stiff): the period halves.
pub const STEP_COLLAPSE: f64 = 0.25;
/// The period may double only while its last step is at least this fraction of its largest.
pub const STEP_STEADY: f64 = 0.5;
/// Fewest accepted steps of a trial segment (a configuration that cannot afford them within
/// the round's budget sits the round out).
pub const TRIAL_STEPS_MIN: usize = 4;
/// Most accepted steps of a trial segment.
pub const TRIAL_STEPS_MAX: usize = 32;
/// A configuration whose trial rate is below the round's best by this factor is retired (not
/// trialed again), so later rounds spend their budget on the contenders.
pub const RETIRE_FACTOR: f64 = 10.0;
/// Most trial rounds in one run.
pub const ROUNDS_MAX: usize = 64;
/// Largest score factor (rows × n × 8 bytes) a candidate may form.
pub const FACTOR_BYTES_MAX: f64 = 512e6;
/// rhs evaluations per accepted step assumed by the cost model (tsit45; a lower bound: rejected
/// steps and restarts add more, so the budget estimate is conservative).
pub const EVALS_PER_STEP: f64 = 6.0;
/// CG tolerance of the held exact metric above the dense limit.
pub const HELD_CG_TOL: f64 = 1e-8;

/// What the provider does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Choose among the candidate configurations by measured loss decrease per flop.
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

/// A configuration: a metric, fresh at every evaluation or held between refreshes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The metric.
    pub kind: MetricKind,
    /// Re-evaluated at every evaluation (true) or held for the period (false).
    pub fresh: bool,
}

impl Config {
    /// `kind` (fresh), `kind@P` (held).
    fn label(&self, period: usize) -> String {
        if self.fresh || self.kind == MetricKind::Euclidean {
            self.kind.name().to_string()
        } else {
            format!("{}@{period}", self.kind.name())
        }
    }
}

/// The exponential model's prediction made at a refresh.
#[derive(Clone, Copy, Debug)]
struct Prediction {
    t: f64,
    loss: f64,
    /// s = gᵀx (the rate of decrease −dL/dt at the refresh).
    slope: f64,
    /// c = xᵀMx (half of d²L/dt²).
    curvature: f64,
}

impl Prediction {
    /// ΔL_pred(Δt) = (s²/2c)(1 − e^{−2cΔt/s}) (Δt·s when c ≤ 0).
    fn decrease(&self, t: f64) -> f64 {
        let dt = t - self.t;
        let (s, c) = (self.slope, self.curvature);
        if c > 0.0 && s > 0.0 {
            s * s / (2.0 * c) * -(-2.0 * c * dt / s).exp_m1()
        } else {
            dt * s
        }
    }
}

/// One trial segment's measurement.
struct Trial {
    config: Config,
    steps: usize,
    decrease: f64,
    flops: f64,
    rate: f64,
}

/// Mutable state along one run.
#[derive(Default)]
struct State {
    current: Option<Config>,
    /// The held factorization (held configurations).
    held: Option<Held>,
    /// The fresh provider (fresh configurations; it keeps its own draws).
    fresh: Option<Box<dyn MetricProvider>>,
    damping: f64,
    period: usize,
    since: usize,
    /// Flops of refreshes and measurements so far (the simulator adds the evaluations).
    overhead: f64,
    /// Flops of the measurements alone (trials, checks).
    measured: f64,
    /// Estimate of the flops spent so far (evaluations at [`EVALS_PER_STEP`] per accepted
    /// step + overhead), for the budget.
    spent: f64,
    /// Flops of one flow evaluation with the current configuration.
    eval_cost: f64,
    prediction: Option<Prediction>,
    /// Spent flops at which the next trial round may start.
    next_round: f64,
    rounds: usize,
    last_t: f64,
    /// Largest and last accepted step size of the current period.
    h_peak: f64,
    h_last: f64,
    /// The flow's settings (for the trial segments).
    flow: Option<FlowSettings>,
    /// The affordable configurations (adaptive).
    configs: Vec<Config>,
    /// Configurations retired after losing a trial round by [`RETIRE_FACTOR`].
    retired: Vec<Config>,
    /// (kind, detail) of events not yet handed to the simulator.
    events: Vec<(String, String)>,
}

/// The `adaptive` provider, or a fixed metric refreshed every `period` steps.
pub struct AdaptiveProvider {
    policy: Policy,
    /// Fixed refresh period (accepted steps); `None`: adapted.
    fixed_period: Option<usize>,
    options: MetricOptions,
    state: Mutex<State>,
}

impl AdaptiveProvider {
    /// `adaptive` with `options` (`refresh` > 0 fixes the period of held configurations).
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

    /// The options of a fixed, fresh provider.
    fn fresh_options(&self) -> MetricOptions {
        let mut o = self.options.clone();
        o.refresh = 0;
        o
    }

    /// Block sizes of block-diagonal for `model`.
    fn blocks(&self, model: &dyn StatModel) -> Vec<usize> {
        super::block::resolve_blocks(model, &self.options.blocks)
            .map(|b| b.iter().map(|v| v.len()).collect())
            .unwrap_or_default()
    }

    /// Whether candidate `kind` is affordable for `model` (held; `fresh`: re-evaluated at
    /// every evaluation, where the exact metric needs the dense matrix).
    fn affordable(&self, model: &dyn StatModel, kind: MetricKind, fresh: bool) -> bool {
        let n = model.dim();
        let shape = Shape::of(model);
        let factor_ok = shape
            .as_ref()
            .is_none_or(|s| s.roots * s.examples * s.n * 8.0 <= FACTOR_BYTES_MAX);
        let opts = self.fresh_options();
        match kind {
            MetricKind::Euclidean => true,
            MetricKind::Exact => {
                (n <= DENSE_LIMIT && factor_ok)
                    || (!fresh && n > DENSE_LIMIT && model.mlp().is_some())
            }
            MetricKind::Diagonal => factor_ok && provider(kind, &opts).check(model).is_ok(),
            MetricKind::BlockDiagonal => {
                factor_ok
                    && self.blocks(model).iter().all(|&b| b <= DENSE_LIMIT)
                    && provider(kind, &opts).check(model).is_ok()
            }
            MetricKind::Kfac => provider(kind, &opts).check(model).is_ok(),
            _ => false,
        }
    }

    /// Every affordable configuration.
    fn configs(&self, model: &dyn StatModel) -> Vec<Config> {
        let mut out = Vec::new();
        for kind in CANDIDATES {
            for fresh in [false, true] {
                if kind == MetricKind::Euclidean && !fresh {
                    continue;
                }
                if self.affordable(model, kind, fresh) {
                    out.push(Config { kind, fresh });
                }
            }
        }
        out
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
        provider(kind, &self.fresh_options()).factorize(model, theta, damping)
    }

    /// Flops of one evaluation with `config` (0 without a cost model).
    fn eval_cost(&self, model: &dyn StatModel, config: Config) -> f64 {
        Shape::of(model).map_or(0.0, |s| {
            let blocks = self.blocks(model);
            if config.fresh {
                s.fresh_eval(config.kind, &blocks)
            } else {
                s.gradient() + s.solve(config.kind, &blocks, CG_MAX_ITER as f64 / 4.0)
            }
        })
    }

    /// Flops of one refresh of a held `kind`.
    fn refresh_cost(&self, model: &dyn StatModel, kind: MetricKind) -> f64 {
        Shape::of(model).map_or(0.0, |s| s.refresh(kind, &self.blocks(model)))
    }

    /// The configuration held before any measurement: K-FAC where the model has layers,
    /// else diagonal, else exact, else euclidean (held, [`PERIOD_START`]).
    fn prior(&self, model: &dyn StatModel) -> Config {
        let kind = [MetricKind::Kfac, MetricKind::Diagonal, MetricKind::Exact]
            .into_iter()
            .find(|&k| self.affordable(model, k, false))
            .unwrap_or(MetricKind::Euclidean);
        Config {
            kind,
            fresh: kind == MetricKind::Euclidean,
        }
    }

    /// Adopt `config` at θ (time t): factorize (held) or build the fresh provider, and store
    /// the prediction of the exponential model (charged as a measurement: one gradient).
    fn adopt(
        &self,
        st: &mut State,
        model: &dyn StatModel,
        config: Config,
        theta: &[f64],
        t: f64,
    ) -> Result<()> {
        let damping = st.damping;
        let shape = Shape::of(model);
        if config.fresh {
            let p = provider(config.kind, &self.fresh_options());
            p.check(model)?;
            st.fresh = Some(p);
            st.held = None;
            st.prediction = None;
        } else {
            let metric = self.factorize_kind(model, config.kind, theta, damping)?;
            let refresh = self.refresh_cost(model, config.kind);
            st.overhead += refresh;
            st.spent += refresh;
            if matches!(self.policy, Policy::Adaptive) && self.fixed_period.is_none() {
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
                if let Some(s) = &shape {
                    let c = s.gradient() + s.solve(config.kind, &self.blocks(model), 0.0);
                    st.overhead += c;
                    st.measured += c;
                    st.spent += c;
                }
            }
            st.held = Some(Held::new(metric));
            st.fresh = None;
        }
        st.eval_cost = self.eval_cost(model, config);
        st.current = Some(config);
        st.since = 0;
        st.h_peak = 0.0;
        st.h_last = 0.0;
        Ok(())
    }

    /// One trial segment of `config` from θ: at most `steps` accepted steps of the flow's own
    /// integrator; its decrease and flops (a held trial shorter than the period charged the
    /// refresh amortized over the period).
    #[allow(clippy::too_many_arguments)]
    fn trial(
        &self,
        model: &dyn StatModel,
        flow: &FlowSettings,
        config: Config,
        period: usize,
        theta: &[f64],
        loss0: f64,
        steps: usize,
        t_left: f64,
    ) -> Option<Trial> {
        let mut s = flow.clone();
        s.metric = config.kind;
        s.metric_options = self.fresh_options();
        if !config.fresh && config.kind != MetricKind::Euclidean {
            s.metric_options.refresh = period.max(1);
        }
        s.t_end = t_left;
        s.grad_tol = 0.0;
        s.max_steps = steps;
        s.save_at.clear();
        s.save_every = 1;
        let sim = Simulator::new(model, s).ok()?;
        let tr = sim.run_end(theta).ok()?;
        let end = tr.last()?;
        let mut flops = tr.stats.flops;
        let done = tr.stats.accepted;
        if !config.fresh && config.kind != MetricKind::Euclidean && done < period {
            flops -= self.refresh_cost(model, config.kind) * (1.0 - done as f64 / period as f64);
        }
        let decrease = loss0 - end.loss;
        let rate = if flops > 0.0 && decrease.is_finite() {
            decrease / flops
        } else {
            f64::NEG_INFINITY
        };
        Some(Trial {
            config,
            steps: done,
            decrease,
            flops: tr.stats.flops,
            rate,
        })
    }

    /// A trial round at θ when the budget allows one: returns the configuration to adopt
    /// (None: keep the current one) and the event's detail.
    fn round(
        &self,
        st: &mut State,
        model: &dyn StatModel,
        theta: &[f64],
        loss: f64,
        t: f64,
    ) -> Option<(Config, String)> {
        let (Some(flow), Some(current)) = (st.flow.clone(), st.current) else {
            return None;
        };
        if st.rounds >= ROUNDS_MAX || st.spent < st.next_round {
            return None;
        }
        let t_left = flow.t_end - t;
        if t_left.is_nan() || t_left <= 0.0 {
            return None;
        }
        let configs: Vec<Config> = st
            .configs
            .iter()
            .copied()
            .filter(|c| !st.retired.contains(c))
            .collect();
        if configs.len() < 2 {
            return None;
        }
        let avail = self.options.measure_fraction * st.spent - st.measured;
        let period = st.period;
        // steps a configuration can afford with `budget`
        let steps_of = |c: Config, budget: f64| -> usize {
            let step = EVALS_PER_STEP * self.eval_cost(model, c);
            let init = if c.fresh {
                0.0
            } else {
                self.refresh_cost(model, c.kind)
            };
            if step <= 0.0 {
                return TRIAL_STEPS_MAX;
            }
            ((budget - init) / step)
                .floor()
                .clamp(0.0, TRIAL_STEPS_MAX as f64) as usize
        };
        // the budget split equally among the k cheapest configurations, k as large as lets
        // each of them afford TRIAL_STEPS_MIN steps with its share avail/k
        let min_cost = |c: Config| {
            let init = if c.fresh {
                0.0
            } else {
                self.refresh_cost(model, c.kind)
            };
            init + TRIAL_STEPS_MIN as f64 * EVALS_PER_STEP * self.eval_cost(model, c)
        };
        let mut entrants = configs;
        entrants.sort_by(|a, b| min_cost(*a).total_cmp(&min_cost(*b)));
        let k = (1..=entrants.len())
            .rev()
            .find(|&k| min_cost(entrants[k - 1]) <= avail / k as f64)
            .unwrap_or(0);
        entrants.truncate(k);
        let budget = avail / k.max(1) as f64;
        if entrants.len() < 2 || !entrants.contains(&current) {
            return None;
        }
        st.rounds += 1;
        let loss = if loss.is_finite() {
            loss
        } else {
            // (a measurement: one loss)
            if let Some(s) = Shape::of(model) {
                let c = 2.0 * s.examples * s.n;
                st.overhead += c;
                st.measured += c;
                st.spent += c;
            }
            model.loss(theta)
        };
        let mut trials = Vec::new();
        let mut cost = 0.0;
        for c in entrants {
            let steps = steps_of(c, budget);
            if let Some(tr) = self.trial(model, &flow, c, period, theta, loss, steps, t_left) {
                cost += tr.flops;
                trials.push(tr);
            }
        }
        st.overhead += cost;
        st.measured += cost;
        st.spent += cost;
        st.next_round = 2.0 * st.spent;
        let rate_of = |c: Config| {
            trials
                .iter()
                .find(|x| x.config == c)
                .map_or(f64::NEG_INFINITY, |x| x.rate)
        };
        let cur = rate_of(current);
        let best = trials
            .iter()
            .filter(|x| x.rate.is_finite())
            .max_by(|a, b| a.rate.total_cmp(&b.rate))?;
        let summary = trials
            .iter()
            .map(|x| {
                format!(
                    "{} ΔL={:.3e} in {} steps, {:.3e} flops: {:.3e}/flop",
                    x.config.label(period),
                    x.decrease,
                    x.steps,
                    x.flops,
                    x.rate
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let best_rate = best.rate;
        let retire: Vec<Config> = trials
            .iter()
            .filter(|x| x.config != current && x.rate * RETIRE_FACTOR < best_rate)
            .map(|x| x.config)
            .collect();
        let retired_note = if retire.is_empty() {
            String::new()
        } else {
            format!(
                "; retired: {}",
                retire
                    .iter()
                    .map(|c| c.label(period))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        st.retired.extend(retire);
        let pick = if best.config != current && best.rate > SWITCH_MARGIN * cur.max(0.0) {
            best.config
        } else {
            current
        };
        Some((
            pick,
            format!("trial round {}: {summary}{retired_note}", st.rounds),
        ))
    }

    /// The budget line of an event: measurements against the flops spent (estimate).
    fn budget_note(st: &State) -> String {
        format!(
            "measured {:.4e} flops of {:.4e} spent",
            st.measured, st.spent
        )
    }

    /// First evaluation: adopt the prior (adaptive) or the fixed metric at θ.
    fn init(
        &self,
        st: &mut State,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<()> {
        st.damping = damping;
        st.period = self.fixed_period.unwrap_or(PERIOD_START);
        let (config, kind_name) = match self.policy {
            Policy::Fixed(kind) => (Config { kind, fresh: false }, "metric-refresh"),
            Policy::Adaptive => {
                st.configs = self.configs(model);
                (self.prior(model), "metric-switch")
            }
        };
        self.adopt(st, model, config, theta, 0.0)?;
        let detail = match self.policy {
            Policy::Fixed(kind) => {
                format!("{} held, refreshed every {} steps", kind.name(), st.period)
            }
            Policy::Adaptive => format!(
                "-> {} (before any measurement; trial rounds once affordable within {} of the flops spent)",
                config.label(st.period),
                self.options.measure_fraction
            ),
        };
        st.events.push((kind_name.into(), detail));
        Ok(())
    }

    /// The period rule at a refresh of a held metric: (new period, whether to go fresh, note).
    fn next_period(&self, st: &State, ratio: Option<f64>) -> (usize, bool, String) {
        let p = st.period;
        if let Some(fp) = self.fixed_period {
            return (fp, false, String::new());
        }
        let collapse = st.h_last < STEP_COLLAPSE * st.h_peak;
        let bad = ratio.is_some_and(|r| r < RATIO_BAD) || collapse;
        let good = ratio.is_some_and(|r| r >= RATIO_GOOD) && st.h_last >= STEP_STEADY * st.h_peak;
        let note = format!(
            "step {:.3e}, largest in the period {:.3e}{}",
            st.h_last,
            st.h_peak,
            if collapse { " (collapsed)" } else { "" }
        );
        if bad {
            if p == 1 {
                return (1, true, note);
            }
            ((p / 2).max(1), false, note)
        } else if good {
            ((2 * p).min(PERIOD_MAX), false, note)
        } else {
            (p, false, note)
        }
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
            Policy::Fixed(k) => provider(k, &self.fresh_options()).check(model),
            Policy::Adaptive => Ok(()),
        }
    }
    fn bind_flow(&self, settings: &FlowSettings) {
        self.lock().flow = Some(settings.clone());
    }
    fn set_anchor(&self, anchor: Option<&[f64]>) -> bool {
        let st = self.lock();
        match &st.fresh {
            Some(p) => p.set_anchor(anchor),
            None => false,
        }
    }
    fn gradient_and_natural(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Option<Result<(DVector<f64>, DVector<f64>)>> {
        let st = self.lock();
        st.fresh
            .as_ref()?
            .gradient_and_natural(model, theta, damping)
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let mut st = self.lock();
        if st.current.is_none() {
            self.init(&mut st, model, theta, damping)?;
        }
        if let Some(p) = &st.fresh {
            return p.factorize(model, theta, damping);
        }
        match &st.held {
            Some(h) => Ok(Box::new(h.clone())),
            None => Err(Error::invalid("flow.metric", self.name(), "no metric held")),
        }
    }
    fn after_step(&self, model: &dyn StatModel, theta: &[f64], t: f64) -> bool {
        let mut st = self.lock();
        let Some(current) = st.current else {
            return false;
        };
        let h = t - st.last_t;
        st.last_t = t;
        st.h_peak = st.h_peak.max(h);
        st.h_last = h;
        st.spent += EVALS_PER_STEP * st.eval_cost;
        st.since += 1;
        let adaptive = matches!(self.policy, Policy::Adaptive);
        let held = !current.fresh && current.kind != MetricKind::Euclidean;
        let refresh_due = held && st.since >= st.period;
        // a trial round may be due (adaptive only, within the budget)
        let round_due = adaptive && st.spent >= st.next_round && st.rounds < ROUNDS_MAX;
        if !refresh_due && !round_due {
            return false;
        }
        let shape = Shape::of(model);
        let mut note = String::new();
        let mut next = current;
        let mut go_fresh = false;
        let mut loss = f64::NAN;
        if refresh_due && adaptive && self.fixed_period.is_none() {
            // realized vs predicted decrease over the period (a measurement: one loss)
            loss = model.loss(theta);
            if let Some(s) = &shape {
                let c = 2.0 * s.examples * s.n;
                st.overhead += c;
                st.measured += c;
                st.spent += c;
            }
            let ratio = st.prediction.map(|p| {
                let pred = p.decrease(t);
                if pred > 0.0 {
                    (p.loss - loss) / pred
                } else {
                    f64::NAN
                }
            });
            let (p, fresh, n) = self.next_period(&st, ratio);
            let old = st.period;
            st.period = p;
            go_fresh = fresh;
            note = format!(
                "realized/predicted decrease {}; {n}; period {old} -> {p}",
                ratio.map_or("n/a".to_string(), |r| format!("{r:.3}"))
            );
            if go_fresh {
                next = Config {
                    kind: current.kind,
                    fresh: true,
                };
            }
        }
        let mut round_note = None;
        if round_due
            && !go_fresh
            && let Some((pick, detail)) = self.round(&mut st, model, theta, loss, t)
        {
            next = pick;
            round_note = Some(detail);
        }
        let switched = next != current;
        if !switched && !refresh_due {
            // a round that kept the current configuration between refreshes: no restart
            if let Some(d) = round_note {
                let detail = format!(
                    "{} kept ({d}); {}",
                    current.label(st.period),
                    Self::budget_note(&st)
                );
                st.events.push(("metric-check".into(), detail));
            }
            return false;
        }
        if self.adopt(&mut st, model, next, theta, t).is_err() {
            return false;
        }
        let budget = Self::budget_note(&st);
        let detail = if switched {
            format!(
                "{} -> {}{}{}; {budget}",
                current.label(st.period),
                next.label(st.period),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                },
                round_note.map_or(String::new(), |d| format!("; {d}"))
            )
        } else {
            format!(
                "{} refreshed{}{}; {budget}",
                next.label(st.period),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                },
                round_note.map_or(String::new(), |d| format!("; {d}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// On a quadratic L = L* + ½θᵀHθ with the metric M = H, the flow is θ(t) = θ₀e^{−t} and
    /// L(t) − L* = (L₀ − L*)e^{−2t}: the exponential model is exact there (s = gᵀH⁻¹g =
    /// 2(L₀ − L*), c = xᵀHx = s).
    #[test]
    fn the_exponential_model_is_exact_for_a_quadratic_with_the_exact_metric() {
        let h = DMatrix::from_row_slice(2, 2, &[3.0, 1.0, 1.0, 2.0]);
        let theta0 = DVector::from_vec(vec![0.7, -1.3]);
        let g = &h * &theta0;
        let x = h.clone().cholesky().expect("spd").solve(&g);
        let gap0 = 0.5 * theta0.dot(&(&h * &theta0));
        let p = Prediction {
            t: 1.0,
            loss: 5.0 + gap0,
            slope: g.dot(&x),
            curvature: x.dot(&(&h * &x)),
        };
        for dt in [1e-3_f64, 0.1, 0.5, 2.0, 10.0] {
            let want = gap0 * (1.0 - (-2.0 * dt).exp());
            let got = p.decrease(1.0 + dt);
            assert!(
                (got - want).abs() <= 1e-12 * gap0,
                "Δt = {dt}: {got} vs {want}"
            );
        }
        // without curvature information: the linear prediction
        let flat = Prediction {
            curvature: 0.0,
            ..p
        };
        assert!((flat.decrease(1.5) - 0.5 * p.slope).abs() <= 1e-15);
    }
}
