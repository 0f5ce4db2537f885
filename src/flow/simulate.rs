//! The runner: builds the diffsol problem, steps it under the singularity-aware control,
//! switches methods for `auto`, records accepted steps, events and statistics.
//!
//! **`auto`.** Starts with `tsit45`. After accepted steps (every 4th step, and every step once
//! a stiff run has begun) it estimates the stiffness ratio h·ρ(J), ρ the spectral radius of the
//! flow's Jacobian at the new point (exact dual-number Jacobian where the model has a kernel;
//! 2×2 closed form, Gershgorin bound for n > 2), and compares it with tsit45's stability bound
//! on the negative real axis, B ≈ 3.3 (the test of Hairer & Wanner, *Solving ODEs II*, §IV.2,
//! with ρ from the Jacobian instead of stage differences). A check is stiff when h·ρ > 0.8·B
//! (the step is already stability-limited) or when a stability-limited tsit45 would need more
//! than [`PREDICTED_STIFF`] rhs evaluations to reach t_end, 6·ρ·min(t_end − t, 1/κ)/B with κ
//! the decay rate of ρ between checks (stiffness seen before the fast transient has died out,
//! when tsit45's steps are still accuracy-limited; stiffness that fades as fast as ρ near the
//! singular line is transient and does not count; the first [`STIFF_RUN`] steps are all
//! checked). After [`STIFF_RUN`] consecutive stiff
//! checks it switches to `bdf` at the current state (bdf picks its own first step: it restarts at
//! order 1). On `bdf`, after a grace period
//! of [`NONSTIFF_RUN`]/2 steps, [`NONSTIFF_RUN`] consecutive checks with h·ρ < 0.4·B and a
//! predicted cost below half the threshold mean an explicit step of the same size would be
//! stable and cheap:
//! it switches back. Every switch is an [`Event`] and counts in
//! `solver_switches`. Models without a dense Jacobian stay explicit.

use super::control::StepControl;
use super::{FlowKernel, FlowRhs, FlowSettings, SolverKind};
use crate::error::{Error, Result};
use crate::model::StatModel;
use crate::trajectory::{Event, Stats, Step, StopReason, Trajectory};
use diffsol::{
    NalgebraLU, NalgebraMat, NalgebraVec, OdeBuilder, OdeEquations, OdeSolverMethod,
    OdeSolverStopReason, Vector,
};
use nalgebra::DMatrix;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

/// tsit45's stability bound on the negative real axis.
pub const TSIT45_STABILITY: f64 = 3.3;
/// New rhs evaluations per accepted tsit45 step (7 stages, first same as last).
pub const TSIT45_EVALS_PER_STEP: f64 = 6.0;
/// A stability-limited explicit integration of the remaining interval predicted to cost more
/// than this many rhs evaluations counts as stiff (`bdf` needs a few hundred on the
/// benchmark set, whatever the stiffness).
pub const PREDICTED_STIFF: f64 = 4000.0;

/// The rhs evaluations tsit45 would need, at least, to cover `remaining` time with steps
/// held below its stability limit B/ρ, when ρ decays at the rate `decay` = −d ln ρ/dt ≥ 0:
/// 6/B · ∫ρ dt ≈ 6/B · ρ · min(remaining, 1/decay).
pub fn predicted_explicit_evals(rho: f64, remaining: f64, decay: f64) -> f64 {
    let horizon = if decay > 0.0 {
        remaining.max(0.0).min(1.0 / decay)
    } else {
        remaining.max(0.0)
    };
    TSIT45_EVALS_PER_STEP * rho * horizon / TSIT45_STABILITY
}
/// Consecutive stiff checks before `auto` switches to `bdf`.
pub const STIFF_RUN: usize = 2;
/// Consecutive non-stiff checks before `auto` switches back (hysteresis), and the grace
/// period in steps after a switch to `bdf` during which it does not check.
pub const NONSTIFF_RUN: usize = 16;

/// How a segment (one method) ended.
enum SegmentEnd {
    Stop(StopReason),
    Switch {
        to: SolverKind,
        h: f64,
        ratio: f64,
        predicted: f64,
    },
    /// The metric provider refreshed or switched its held metric after the last step: f
    /// changed discretely, restart the same method at the current state with step `h`.
    Restart {
        h: f64,
    },
}

/// Mutable state of one run shared by its segments.
struct RunState<'p> {
    /// Per-run progress observer (besides the simulator's own).
    progress: Option<&'p (dyn Fn(usize, f64) + Sync)>,
    steps: Vec<Step>,
    end: (f64, Vec<f64>),
    stats: Stats,
    events: Vec<Event>,
    record_all: bool,
    accepted: usize,
    /// Steady-state threshold of the root function, max(grad_tol, 2·noise floor) (updated
    /// after accepted steps; see [`noise_floor`]).
    threshold: Rc<Cell<f64>>,
    /// The last ‖∇L‖ the root function evaluated.
    last_grad: Rc<Cell<f64>>,
    /// ‖∇L‖ at the start.
    grad0: f64,
    /// Output control: `save_at` times (sorted) and the index of the next one.
    save_at: Vec<f64>,
    next_save: usize,
    /// Loss samples (t, L) since the last recorded step (interior points and endpoints of
    /// solver steps that were not recorded): the next record's `interior`.
    pending: Vec<(f64, f64)>,
    /// Time of the last recorded step.
    last_rec_t: f64,
    /// Metric flops of finished segments, rhs evaluations at the current segment's start and
    /// the flops of one evaluation in it ([`crate::metric::cost`]).
    flops_base: f64,
    evals_base: usize,
    eval_cost: f64,
}

impl RunState<'_> {
    /// Metric flops spent so far.
    fn flops_now(&self, rhs: &FlowRhs<'_>) -> f64 {
        self.flops_base
            + rhs.evals().saturating_sub(self.evals_base) as f64 * self.eval_cost
            + rhs.provider().overhead_flops()
    }

    /// Close the current segment's flop account and open the next one.
    fn next_segment(&mut self, rhs: &FlowRhs<'_>, model: &dyn StatModel) {
        self.flops_base += rhs.evals().saturating_sub(self.evals_base) as f64 * self.eval_cost;
        self.evals_base = rhs.evals();
        self.eval_cost = rhs.provider().eval_flops(model).unwrap_or(0.0);
    }

    /// Events the metric provider has to report (switches, refreshes), at time t.
    fn metric_events(&mut self, rhs: &FlowRhs<'_>, t: f64) {
        for (kind, detail) in rhs.provider().take_events() {
            match kind.as_str() {
                "metric-switch" if t > 0.0 => self.stats.metric_switches += 1,
                "metric-refresh" if t > 0.0 => self.stats.metric_refreshes += 1,
                _ => {}
            }
            self.events.push(Event { t, kind, detail });
        }
    }

    /// Stamp the last recorded step with the flops spent so far.
    fn stamp(&mut self, rhs: &FlowRhs<'_>) {
        let f = self.flops_now(rhs);
        if let Some(s) = self.steps.last_mut() {
            s.flops = f;
        }
    }
}

/// Integrates the flow of one model under one set of settings from any number of starts.
pub struct Simulator<'m> {
    model: &'m dyn StatModel,
    settings: FlowSettings,
    /// The model's kernel, built once and shared by every start.
    kernel: Option<Box<dyn FlowKernel + 'm>>,
    /// Observer of progress: called with (accepted steps, t) every [`PROGRESS_EVERY`]
    /// accepted steps (a progress bar on long runs).
    progress: Option<Box<dyn Fn(usize, f64) + Sync + 'm>>,
}

/// A step whose metric has κ > 1/(RANK_MARGIN·RANK_TOL) ends the trajectory when the solve has
/// a rank cut there (see [`FlowRhs::solve_has_rank_cut`]).
pub const RANK_MARGIN: f64 = 100.0;

/// How often (in accepted steps) the progress observer is called.
pub const PROGRESS_EVERY: usize = 64;

impl<'m> Simulator<'m> {
    /// A simulator; `settings` are validated here, and implicit solvers are refused for models
    /// without a dense Jacobian.
    pub fn new(model: &'m dyn StatModel, settings: FlowSettings) -> Result<Self> {
        settings.validate()?;
        if settings.solver.is_implicit() && !model.dense_jacobian() {
            return Err(Error::invalid(
                "flow.solver",
                settings.solver.name(),
                format!(
                    "implicit solvers need a dense {n}×{n} Jacobian, which this model (n = {n}) does not provide; use tsit45 or auto",
                    n = model.dim()
                ),
            ));
        }
        crate::metric::provider(settings.metric, &settings.metric_options).check(model)?;
        if !settings.correction.is_none() {
            let why = match model.flow_correction(&settings.correction) {
                None => Some(format!(
                    "the {} model has no third-order geometry",
                    model.family()
                )),
                Some(c)
                    if settings.metric != crate::metric::MetricKind::Exact
                        || (settings.damping != 0.0 && !c.supports_damping())
                        || settings.damping_floor != 0.0 =>
                {
                    Some(if c.supports_damping() {
                        "needs the exact metric with a fixed damping (the geodesics of the Fisher metric)".into()
                    } else {
                        "needs the undamped exact metric (the geodesics of the Fisher metric)"
                            .into()
                    })
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                return Err(Error::invalid(
                    "flow.correction",
                    settings.correction.name(),
                    why,
                ));
            }
        }
        Ok(Simulator {
            model,
            settings,
            kernel: model.flow_kernel(),
            progress: None,
        })
    }

    /// Report progress to `observer(accepted steps, t)` every [`PROGRESS_EVERY`] accepted
    /// steps of every run (default: none).
    pub fn with_progress(mut self, observer: impl Fn(usize, f64) + Sync + 'm) -> Self {
        self.progress = Some(Box::new(observer));
        self
    }

    /// The settings.
    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    /// Integrate from `start`, recording every accepted step.
    pub fn run(&self, start: &[f64]) -> Result<Trajectory> {
        self.run_with(start, true, None)
    }

    /// Integrate from `start` recording only the start and the end point (particle fields):
    /// same statistics, no per-step metric evaluations.
    pub fn run_end(&self, start: &[f64]) -> Result<Trajectory> {
        self.run_with(start, false, None)
    }

    /// [`Simulator::run`], also reporting progress to `observer(accepted steps, t)` every
    /// [`PROGRESS_EVERY`] accepted steps.
    pub fn run_observed(
        &self,
        start: &[f64],
        observer: &(dyn Fn(usize, f64) + Sync),
    ) -> Result<Trajectory> {
        self.run_with(start, true, Some(observer))
    }

    /// [`Simulator::run_end`], also reporting progress to `observer`.
    pub fn run_end_observed(
        &self,
        start: &[f64],
        observer: &(dyn Fn(usize, f64) + Sync),
    ) -> Result<Trajectory> {
        self.run_with(start, false, Some(observer))
    }

    fn run_with(
        &self,
        start: &[f64],
        record_all: bool,
        observer: Option<&(dyn Fn(usize, f64) + Sync)>,
    ) -> Result<Trajectory> {
        let n = self.model.dim();
        if start.len() != n {
            return Err(Error::invalid(
                "start",
                format!("{start:?}"),
                format!(
                    "expected {n} values ({})",
                    self.model.param_names().join(", ")
                ),
            ));
        }
        if start.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "start",
                format!("{start:?}"),
                "values must be finite",
            ));
        }
        let clock = Instant::now();
        let s = &self.settings;
        let mut rhs = FlowRhs::with_kernel(self.model, s.metric, s.damping, self.kernel.as_deref())
            .with_metric_options(&s.metric_options)
            .with_jacobian(s.jacobian)
            .with_damping_floor(s.damping_floor)
            .with_correction(self.model.flow_correction(&s.correction));
        rhs.provider().bind_flow(s);
        // statistics (time near the line) watch every exchange pair; the control only the
        // pairs whose line is a singular set of this flow's metric
        let pairs = self.model.exchange_pairs();
        let singular = singular_pairs(&rhs, &pairs, start);
        let control = StepControl::new(pairs, s.control_eta, s.zone).with_singular(singular);
        let mut st = RunState {
            progress: observer,
            steps: Vec::new(),
            end: (0.0, start.to_vec()),
            stats: Stats::default(),
            events: Vec::new(),
            record_all,
            accepted: 0,
            threshold: Rc::new(Cell::new(s.grad_tol)),
            last_grad: Rc::new(Cell::new(f64::INFINITY)),
            grad0: f64::INFINITY,
            save_at: s.save_at.clone(),
            next_save: 0,
            pending: Vec::new(),
            last_rec_t: 0.0,
            flops_base: 0.0,
            evals_base: 0,
            eval_cost: 0.0,
        };
        st.save_at.sort_by(f64::total_cmp);
        st.save_at.dedup();
        // t = 0 is the start record
        st.next_save = st.save_at.iter().take_while(|&&t| t <= 0.0).count();
        if let Some((i, j)) = control.on_line(start) {
            rhs.set_line(Some((i, j)));
            st.events.push(Event {
                t: 0.0,
                kind: "on-singular-line".into(),
                detail: format!(
                    "start on the singular line {a} = {b}: the flow stays on it (invariant set; the single-component fit there is a saddle); use --perturb EPS to leave it",
                    a = self.model.param_names()[i],
                    b = self.model.param_names()[j]
                ),
            });
        }
        st.steps.push(if record_all {
            self.record(&rhs, 0.0, start, 0.0, Vec::new())
        } else {
            self.record_lean(&rhs, 0.0, start, 0.0)
        });
        // the held metric's first choice (adaptive) is made at the start record
        st.metric_events(&rhs, 0.0);
        st.next_segment(&rhs, self.model);
        st.stamp(&rhs);
        st.grad0 = st.steps[0].grad_norm;
        let first_method = match s.solver {
            SolverKind::Auto => SolverKind::Tsit45,
            m => m,
        };
        if s.grad_tol > 0.0 {
            st.threshold
                .set(self.steady_threshold(&rhs, first_method, start));
        }
        let stop = if !st.steps[0].loss.is_finite() || !st.grad0.is_finite() {
            StopReason::Unstable("non-finite loss or gradient at the start".into())
        } else if s.grad_tol > 0.0 && st.grad0 < st.threshold.get() {
            let g0 = st.grad0;
            self.steady_event(&mut st, 0.0, g0);
            StopReason::Converged
        } else {
            let mut method = first_method;
            let mut h0 = None;
            loop {
                let (t0, y0) = st.end.clone();
                let end = self.segment(method, &rhs, &control, &mut st, t0, &y0, h0)?;
                st.next_segment(&rhs, self.model);
                match end {
                    SegmentEnd::Stop(r) => break r,
                    SegmentEnd::Restart { h } => h0 = Some(h),
                    SegmentEnd::Switch {
                        to,
                        h,
                        ratio,
                        predicted,
                    } => {
                        st.stats.solver_switches += 1;
                        st.events.push(Event {
                            t: st.end.0,
                            kind: "switch".into(),
                            detail: format!(
                                "{} -> {} (at the last of the consecutive checks h·ρ = {ratio:.3}, tsit45's stability bound {TSIT45_STABILITY}; stability-limited tsit45 to t_end ≥ {predicted:.0} rhs evaluations, stiff above {PREDICTED_STIFF})",
                                method.name(),
                                to.name()
                            ),
                        });
                        method = to;
                        // bdf restarts at order 1: its own initial step suits it better than
                        // tsit45's (measured: 4–25 % fewer evaluations at equal accuracy)
                        h0 = (to != SolverKind::Bdf).then_some(h);
                    }
                }
            }
        };
        if record_all && st.end.0 > st.last_rec_t {
            // the last state is always recorded (save_every > 1, save_at)
            let (t, y) = st.end.clone();
            let interior = std::mem::take(&mut st.pending)
                .into_iter()
                .filter(|&(ts, _)| ts < t)
                .collect();
            let h = t - st.last_rec_t;
            st.steps.push(self.record(&rhs, t, &y, h, interior));
            st.stamp(&rhs);
            st.last_rec_t = t;
        }
        if !record_all {
            let (t, y) = st.end.clone();
            if st.accepted > 0 {
                let h = 0.0;
                st.steps.push(self.record_lean(&rhs, t, &y, h));
                st.stamp(&rhs);
            }
        }
        let stop = match (stop, st.steps.last()) {
            (StopReason::TEnd | StopReason::Converged, Some(last))
                if !(last.loss.is_finite() && last.grad_norm.is_finite()) =>
            {
                StopReason::Unstable(format!("non-finite loss or gradient at t = {}", last.t))
            }
            (r, _) => r,
        };
        st.stats.accepted = st.accepted;
        st.stats.rhs_evals = rhs.evals();
        st.stats.jac_evals = rhs.jac_evals();
        st.stats.jacobians = rhs.jacobians();
        st.stats.flops = st.flops_now(&rhs);
        st.stats.wall_time = clock.elapsed().as_secs_f64();
        Ok(Trajectory {
            param_names: self.model.param_names(),
            start: start.to_vec(),
            steps: st.steps,
            stats: st.stats,
            stop,
            events: st.events,
        })
    }

    /// Build the diffsol problem from (t0, y0) and drive one method until it stops or `auto`
    /// asks for a switch.
    #[allow(clippy::too_many_arguments)]
    fn segment(
        &self,
        method: SolverKind,
        rhs: &FlowRhs<'_>,
        control: &StepControl,
        st: &mut RunState,
        t0: f64,
        y0: &[f64],
        h0: Option<f64>,
    ) -> Result<SegmentEnd> {
        let s = &self.settings;
        let n = y0.len();
        let x0 = y0.to_vec();
        let gtol = s.grad_tol;
        let (threshold, last_grad) = (st.threshold.clone(), st.last_grad.clone());
        let (threshold, last_grad) = (&*threshold, &*last_grad);
        let solver_err = |e: diffsol::DiffsolError| Error::Solver {
            solver: method.name().into(),
            message: e.to_string(),
        };
        let (rtol, atol) = if s.calibrated {
            super::internal_tolerances(method, s.rtol, s.atol)
        } else {
            (s.rtol, s.atol)
        };
        let builder = OdeBuilder::<NalgebraMat<f64>>::new()
            .t0(t0)
            .rtol(rtol)
            .atol([atol])
            .init(move |_p, _t, y: &mut [f64]| y.copy_from_slice(&x0), n)
            .root(
                |x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| {
                    y[0] = if gtol > 0.0 {
                        let g = rhs.grad_norm(x);
                        last_grad.set(g);
                        g - threshold.get()
                    } else {
                        1.0
                    };
                },
                1,
            );
        if !self.model.dense_jacobian() {
            let problem = builder
                .rhs(|x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| rhs.eval(x, y))
                .build()
                .map_err(solver_err)?;
            let solver = problem.tsit45().map_err(solver_err)?;
            return self.drive(solver, method, rhs, control, st, h0);
        }
        let problem = builder
            .rhs_implicit(
                |x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| rhs.eval(x, y),
                |x: &[f64], _p: &[f64], _t: f64, v: &[f64], y: &mut [f64]| rhs.jac_vec(x, v, y),
            )
            .build()
            .map_err(solver_err)?;
        match method {
            SolverKind::Tsit45 | SolverKind::Auto => {
                let solver = problem.tsit45().map_err(solver_err)?;
                self.drive(solver, method, rhs, control, st, h0)
            }
            SolverKind::Bdf => {
                let solver = problem.bdf::<NalgebraLU<f64>>().map_err(solver_err)?;
                self.drive(solver, method, rhs, control, st, h0)
            }
            SolverKind::TrBdf2 => {
                let solver = problem.tr_bdf2::<NalgebraLU<f64>>().map_err(solver_err)?;
                self.drive(solver, method, rhs, control, st, h0)
            }
            SolverKind::Esdirk34 => {
                let solver = problem.esdirk34::<NalgebraLU<f64>>().map_err(solver_err)?;
                self.drive(solver, method, rhs, control, st, h0)
            }
        }
    }

    /// Step the solver to the end, recording every accepted step.
    #[allow(clippy::too_many_arguments)]
    fn drive<'a, Eqn, S>(
        &self,
        mut solver: S,
        method: SolverKind,
        rhs: &FlowRhs<'_>,
        control: &StepControl,
        st: &mut RunState,
        h0: Option<f64>,
    ) -> Result<SegmentEnd>
    where
        Eqn: OdeEquations<T = f64, V = NalgebraVec<f64>> + 'a,
        S: OdeSolverMethod<'a, Eqn>,
    {
        let s = &self.settings;
        // stiffness checks only where a Jacobian is cheap (see AUTO_CHECK_MAX_DIM)
        let auto = s.solver == SolverKind::Auto
            && self.model.dense_jacobian()
            && self.model.dim() <= super::rhs::AUTO_CHECK_MAX_DIM;
        let is_bdf = method == SolverKind::Bdf;
        let controlled = s.step_control && !control.singular_pairs().is_empty();
        if let Err(e) = solver.set_stop_time(s.t_end) {
            return Ok(SegmentEnd::Stop(StopReason::SolverFailure(e.to_string())));
        }
        if let Some(h) = h0 {
            *solver.state_mut().h = h;
        }
        let seg_start = st.accepted;
        let setups0 = solver.get_statistics().number_of_linear_solver_setups;
        let rejected0 = solver.get_statistics().number_of_error_test_failures;
        let mut run_len = 0usize;
        // (t, ρ) of the previous stiffness check, for the decay rate of ρ
        let mut last_check: Option<(f64, f64)> = None;
        let mut retries = 0usize;
        let finish = |st: &mut RunState, solver: &S| {
            let stats = solver.get_statistics();
            st.stats.factorizations += stats.number_of_linear_solver_setups - setups0;
            st.stats.rejected += stats.number_of_error_test_failures - rejected0;
        };
        loop {
            // sampled metrics: draws fixed within the step, f at its start refreshed
            let y0 = solver.state().y.clone_as_vec();
            if rhs.begin_step(&y0) {
                let f0 = rhs.eval_vec(&y0);
                let x = solver.state_mut();
                for (i, &d) in f0.iter().enumerate() {
                    x.dy.set_index(i, d);
                }
            }
            let (t_prev, y_prev, dy_prev, h_prev) = {
                let x = solver.state();
                (x.t, x.y.clone_as_vec(), x.dy.clone_as_vec(), x.h)
            };
            // (b) limit the step by the predicted relative change of δ
            if controlled && !is_bdf {
                let hmax = control.max_step(&y_prev, &dy_prev);
                if h_prev > hmax {
                    *solver.state_mut().h = hmax;
                    st.stats.control_limited += 1;
                }
            }
            let reason = match solver.step() {
                Ok(r) => r,
                Err(e) => {
                    finish(st, &solver);
                    return Ok(SegmentEnd::Stop(StopReason::SolverFailure(e.to_string())));
                }
            };
            // rejected steps count against the cap too
            let rejected = st.stats.rejected
                + (solver.get_statistics().number_of_error_test_failures - rejected0);
            if st.accepted + st.stats.crossings_prevented + rejected
                >= s.max_steps.saturating_mul(2)
            {
                finish(st, &solver);
                return Ok(SegmentEnd::Stop(StopReason::MaxSteps));
            }
            let (t_new, y_new) = {
                let x = solver.state();
                (x.t, x.y.clone_as_vec())
            };
            // (a) never cross a singular line: undo and retry with a quarter of the step
            if controlled && control.crossed(&y_prev, &y_new) {
                st.stats.crossings_prevented += 1;
                retries += 1;
                // every attempt counts against the step cap (item: nothing loops unbounded)
                if st.accepted + st.stats.crossings_prevented >= s.max_steps {
                    finish(st, &solver);
                    return Ok(SegmentEnd::Stop(StopReason::MaxSteps));
                }
                if retries > 60 {
                    finish(st, &solver);
                    return Ok(SegmentEnd::Stop(StopReason::SolverFailure(format!(
                        "cannot avoid crossing the singular line at t = {t_prev}"
                    ))));
                }
                {
                    let x = solver.state_mut();
                    for (i, (&y, &d)) in y_prev.iter().zip(&dy_prev).enumerate() {
                        x.y.set_index(i, y);
                        x.dy.set_index(i, d);
                    }
                    *x.t = t_prev;
                    *x.h = 0.25 * (t_new - t_prev).abs().max(f64::MIN_POSITIVE);
                }
                if let Err(e) = solver.set_stop_time(s.t_end) {
                    finish(st, &solver);
                    return Ok(SegmentEnd::Stop(StopReason::SolverFailure(e.to_string())));
                }
                continue;
            }
            retries = 0;
            let mut done = None;
            // the step ends at the root if one was found; state_mut_back discards the step's
            // dense output, so the interior samples and save_at points are taken first
            let t_stop = match reason {
                OdeSolverStopReason::RootFound(t_root, _) => t_root,
                _ => t_new,
            };
            let (samples, saves) = if st.record_all {
                (
                    self.interior(&solver, rhs, t_prev, t_stop),
                    self.save_points(&solver, st, t_stop),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            if let OdeSolverStopReason::RootFound(t_root, _) = reason {
                if let Err(e) = solver.state_mut_back(t_root) {
                    finish(st, &solver);
                    return Ok(SegmentEnd::Stop(StopReason::SolverFailure(e.to_string())));
                }
                done = Some(StopReason::Converged);
                let g = rhs.grad_norm(&solver.state().y.clone_as_vec());
                self.steady_event(st, t_root, g);
            } else if let OdeSolverStopReason::TstopReached = reason {
                done = Some(StopReason::TEnd);
            }
            let (t, theta) = {
                let x = solver.state();
                (x.t, x.y.clone_as_vec())
            };
            if theta.iter().any(|v| !v.is_finite()) {
                finish(st, &solver);
                return Ok(SegmentEnd::Stop(StopReason::Unstable(format!(
                    "non-finite state at t = {t}"
                ))));
            }
            let h = t - t_prev;
            if control.in_zone(&y_prev) {
                st.stats.time_near_singular += h;
            }
            st.accepted += 1;
            if st.accepted.is_multiple_of(PROGRESS_EVERY) {
                if let Some(p) = &self.progress {
                    p(st.accepted, t);
                }
                if let Some(p) = st.progress {
                    p(st.accepted, t);
                }
            }
            if st.record_all {
                self.save(rhs, st, samples, saves, t, &theta, done.is_some());
            }
            // Within RANK_MARGIN of the solve's rank cut the stages of a step can fall on both
            // sides of it: f is then discontinuous inside the step and the step can be neither
            // trusted nor certified. End the trajectory there (Unstable) instead of chattering.
            if st.record_all {
                let (kappa, _) = rhs.conditioning_at(&theta);
                if kappa > 1.0 / (RANK_MARGIN * crate::metric::RANK_TOL)
                    && rhs.solve_has_rank_cut(&theta)
                {
                    finish(st, &solver);
                    return Ok(SegmentEnd::Stop(StopReason::Unstable(format!(
                        "the metric is within {RANK_MARGIN}× of its rank cut at t = {t:e} (κ = {kappa:.3e} > {:.0e}): its smallest direction is about to be dropped, so f is discontinuous near θ and further steps cannot be certified; use --damping or the exact metric",
                        1.0 / (RANK_MARGIN * crate::metric::RANK_TOL)
                    ))));
                }
            }
            st.end = (t, theta.clone());
            if let Some(r) = done {
                finish(st, &solver);
                return Ok(SegmentEnd::Stop(r));
            }
            if st.accepted >= s.max_steps {
                finish(st, &solver);
                return Ok(SegmentEnd::Stop(StopReason::MaxSteps));
            }
            // a held metric refreshed or switched: f changed discretely, restart here
            let restart = rhs.provider().after_step(self.model, &theta, t);
            st.metric_events(rhs, t);
            if restart {
                finish(st, &solver);
                return Ok(SegmentEnd::Restart {
                    h: solver.state().h,
                });
            }
            // the steady-state threshold follows the noise floor once ‖∇L‖ is small (every
            // 4th step: it costs a Fisher matrix and changes slowly near a stationary point)
            if s.grad_tol > 0.0 && st.accepted.is_multiple_of(4) {
                let g = st.last_grad.get();
                if g <= 1e-3 * st.grad0 || g <= 100.0 * st.threshold.get() {
                    st.threshold.set(self.steady_threshold(rhs, method, &theta));
                }
            }
            // the spectral radius costs a Jacobian: every 4th step, every step during a run
            // (and every step of the first STIFF_RUN, so a stiff start is seen at once)
            if auto && (run_len > 0 || st.accepted.is_multiple_of(4) || st.accepted <= STIFF_RUN) {
                let rho = spectral_radius(&rhs.stiffness_jacobian(&theta));
                let ratio = h * rho;
                // stiffness that fades at a rate κ = −d ln ρ/dt lasts about 1/κ: near the
                // singular line ρ ~ 1/δ² falls as fast as δ grows, far faster than t_end
                let decay = last_check
                    .filter(|&(t0, r0)| t > t0 && rho < r0)
                    .map_or(0.0, |(t0, r0)| (r0 / rho).ln() / (t - t0));
                last_check = Some((t, rho));
                let predicted = predicted_explicit_evals(rho, s.t_end - t, decay);
                let (stiffish, to) = if is_bdf {
                    (
                        ratio < 0.4 * TSIT45_STABILITY && predicted < 0.5 * PREDICTED_STIFF,
                        SolverKind::Tsit45,
                    )
                } else {
                    (
                        ratio > 0.8 * TSIT45_STABILITY || predicted > PREDICTED_STIFF,
                        SolverKind::Bdf,
                    )
                };
                // after a switch to bdf, give its order and step size STIFF_RUN steps to build
                // up, and ask for twice as long a non-stiff run (hysteresis)
                let grace = is_bdf && st.accepted - seg_start <= NONSTIFF_RUN / 2;
                run_len = if stiffish && !grace { run_len + 1 } else { 0 };
                // (a run counts checked steps; checks are consecutive steps once one is stiff)
                let needed = if is_bdf { NONSTIFF_RUN } else { STIFF_RUN };
                if run_len >= needed {
                    finish(st, &solver);
                    let h_next = solver.state().h;
                    return Ok(SegmentEnd::Switch {
                        to,
                        h: h_next,
                        ratio,
                        predicted,
                    });
                }
            }
        }
    }

    /// θ at the `save_at` times inside (t_prev, t_stop) of the current step (dense output);
    /// a time equal to t_stop is recorded from the step's end state by [`Simulator::save`].
    fn save_points<'a, Eqn, S>(
        &self,
        solver: &S,
        st: &RunState,
        t_stop: f64,
    ) -> Vec<(f64, Vec<f64>)>
    where
        Eqn: OdeEquations<T = f64, V = NalgebraVec<f64>> + 'a,
        S: OdeSolverMethod<'a, Eqn>,
    {
        st.save_at[st.next_save..]
            .iter()
            .take_while(|&&ts| ts < t_stop)
            .filter_map(|&ts| Some((ts, solver.interpolate(ts).ok()?.clone_as_vec())))
            .collect()
    }

    /// Output control after an accepted step ending at (t, θ) with its interior loss samples:
    /// records the `save_at` points inside the step and the end when it is a `save_at` time,
    /// or (without `save_at`) every `save_every`-th step; the last step (`last`) always. The
    /// loss samples of unrecorded steps (interior points and endpoints) go into the next
    /// record's `interior`, so the recorded loss sequence still covers every step.
    #[allow(clippy::too_many_arguments)]
    fn save(
        &self,
        rhs: &FlowRhs<'_>,
        st: &mut RunState,
        samples: Vec<(f64, f64)>,
        saves: Vec<(f64, Vec<f64>)>,
        t: f64,
        theta: &[f64],
        last: bool,
    ) {
        let s = &self.settings;
        st.pending.extend(samples);
        let push = |st: &mut RunState, ts: f64, y: &[f64]| {
            let (before, after): (Vec<_>, Vec<_>) =
                st.pending.drain(..).partition(|&(tp, _)| tp < ts);
            st.pending = after;
            let h = ts - st.last_rec_t;
            st.steps.push(self.record(rhs, ts, y, h, before));
            st.stamp(rhs);
            st.last_rec_t = ts;
        };
        let record_end = if st.save_at.is_empty() {
            last || s.save_every <= 1 || st.accepted.is_multiple_of(s.save_every)
        } else {
            for (ts, y) in saves {
                push(st, ts, &y);
                st.next_save += 1;
            }
            let hit = st.save_at.get(st.next_save) == Some(&t);
            if hit {
                st.next_save += 1;
            }
            last || hit
        };
        if record_end {
            push(st, t, theta);
        } else {
            st.pending.push((t, rhs.loss(theta)));
        }
    }

    /// The steady-state threshold at θ for `method`: max(grad_tol, 2·[`noise_floor`]) with the
    /// tolerances the method runs at.
    /// The Fisher matrix comes from the model's kernel when it has one (the same quadrature
    /// as [`StatModel::fisher`], fused).
    fn steady_threshold(&self, rhs: &FlowRhs<'_>, method: SolverKind, theta: &[f64]) -> f64 {
        let s = &self.settings;
        let (rtol, atol) = if s.calibrated {
            super::internal_tolerances(method, s.rtol, s.atol)
        } else {
            (s.rtol, s.atol)
        };
        let floor = match rhs.kernel_fisher2(theta) {
            Some(f) => {
                let g = DMatrix::from_row_slice(2, 2, &f);
                floor_of(&g, theta, rtol, atol)
            }
            None => noise_floor(self.model, theta, rtol, atol),
        };
        s.grad_tol.max(STEADY_FACTOR * floor)
    }

    /// Record why the run stops as converged when the noise floor, not `grad_tol`, decided.
    fn steady_event(&self, st: &mut RunState, t: f64, g: f64) {
        let thr = st.threshold.get();
        if thr > self.settings.grad_tol {
            st.events.push(Event {
                t,
                kind: "steady-state".into(),
                detail: format!(
                    "‖∇L‖ = {g:.3e} reached the noise floor of the integration ({STEADY_FACTOR}·floor = {thr:.3e} > grad_tol = {:e}): the state is within the solver tolerance of a stationary point",
                    self.settings.grad_tol
                ),
            });
        }
    }

    /// Loss at `interior_points` equally spaced interior times of the step, from dense output.
    fn interior<'a, Eqn, S>(
        &self,
        solver: &S,
        rhs: &FlowRhs<'_>,
        t0: f64,
        t1: f64,
    ) -> Vec<(f64, f64)>
    where
        Eqn: OdeEquations<T = f64, V = NalgebraVec<f64>> + 'a,
        S: OdeSolverMethod<'a, Eqn>,
    {
        let k = self.settings.interior_points;
        (1..=k)
            .filter_map(|j| {
                let t = t0 + (t1 - t0) * j as f64 / (k + 1) as f64;
                let y = solver.interpolate(t).ok()?.clone_as_vec();
                let l = rhs.loss(&y);
                l.is_finite().then_some((t, l))
            })
            .collect()
    }

    /// The start or end record of a lean run ([`Simulator::run_end`]): the same fields as
    /// [`Simulator::record`], with ∇L and G from the kernel when f uses it.
    fn record_lean(&self, rhs: &FlowRhs<'_>, t: f64, theta: &[f64], h: f64) -> Step {
        let Some((g, f)) = rhs.grad_metric2(theta) else {
            return self.record(rhs, t, theta, h, Vec::new());
        };
        // κ, λ_min and f from the kernel's (g, G) where they are its closed forms
        let (kappa, min_eig) = rhs
            .conditioning_from2(f)
            .unwrap_or_else(|| rhs.conditioning_at(theta));
        let v = match rhs.velocity_from2(theta, g, f) {
            Some(v) => v,
            None => {
                let v = rhs.eval_vec(theta);
                rhs_uncount(rhs);
                [v[0], v[1]]
            }
        };
        Step {
            t,
            theta: theta.to_vec(),
            loss: rhs.loss(theta),
            grad_norm: (g[0] * g[0] + g[1] * g[1]).sqrt(),
            kappa,
            min_eig,
            rate: g[0] * v[0] + g[1] * v[1],
            step_size: h,
            interior: Vec::new(),
            rhs_evals: rhs.evals(),
            flops: 0.0,
        }
    }

    /// Evaluate everything recorded at an accepted step.
    fn record(
        &self,
        rhs: &FlowRhs<'_>,
        t: f64,
        theta: &[f64],
        h: f64,
        interior: Vec<(f64, f64)>,
    ) -> Step {
        let model = rhs.model();
        // L and ∇L from the kernel's one node set where it has a fused loss, else the model's
        let (loss, g) = match rhs.kernel_loss_grad2(theta) {
            Some((l, g)) => (l, nalgebra::DVector::from_row_slice(&g)),
            None => {
                let mut grad = vec![0.0; model.dim()];
                let loss = model.loss_grad(theta, &mut grad);
                (loss, nalgebra::DVector::from_vec(grad))
            }
        };
        let f = rhs.eval_vec(theta);
        rhs_uncount(rhs);
        // κ of the damped metric and λ_min of the undamped one: in closed form from the 2×2
        // kernel's G off the near-singular zone, else from the provider's factorization where
        // the size allows (NaN otherwise).
        let (kappa, min_eig) = rhs
            .grad_metric2(theta)
            .and_then(|(_, m)| rhs.conditioning_from2(m))
            .unwrap_or_else(|| rhs.conditioning_at(theta));
        Step {
            t,
            theta: theta.to_vec(),
            loss,
            grad_norm: g.norm(),
            kappa,
            min_eig,
            rate: g.dot(&f),
            step_size: h,
            interior,
            rhs_evals: rhs.evals(),
            flops: 0.0,
        }
    }
}

/// The exchange pairs whose line θᵢ = θⱼ is a singular set of this flow: those where the
/// metric the flow solves with (damping and floor included) is rank-deficient on the line,
/// probed once at the start's projection onto it (θᵢ = θⱼ = their mean), with the solve's own
/// rank threshold: λ_min + λ ≤ [`RANK_TOL`](crate::metric::RANK_TOL)·(λ_max + λ).
///
/// Only there does the natural gradient's exchange component grow like 1/δ, the flow never
/// reaches the line from off it, and the line is an invariant set (on it the flow is the
/// restricted one, rule (d)). For the Euclidean flow, a diagonal metric (diag of a rank-one
/// matrix with both entries > 0) or any damped metric, f is smooth across the line: it is
/// invariant only by symmetry (w = ½), and for w ≠ ½ the flow crosses it (δ̇ ≠ 0 on it), so
/// neither crossing prevention nor the δ/δ̇ step limit may apply (they would freeze the flow
/// on the line). A metric that cannot be formed there counts as singular (the safe side).
pub fn singular_pairs(
    rhs: &FlowRhs<'_>,
    pairs: &[(usize, usize)],
    start: &[f64],
) -> Vec<(usize, usize)> {
    pairs
        .iter()
        .copied()
        .filter(|&(i, j)| {
            let mut probe = start.to_vec();
            let m = 0.5 * (start[i] + start[j]);
            probe[i] = m;
            probe[j] = m;
            let metric = rhs.metric_at(&probe);
            let ev = metric.eigenvalues();
            if ev.is_empty() || ev.iter().any(|v| !v.is_finite()) {
                return true;
            }
            let lam = metric.damping();
            let (lo, hi) = (ev[0] + lam, ev[ev.len() - 1] + lam);
            lo <= crate::metric::RANK_TOL * hi.abs().max(f64::MIN_POSITIVE)
        })
        .collect()
}

/// The steady-state test fires at ‖∇L‖ ≤ max(grad_tol, `STEADY_FACTOR`·[`noise_floor`]).
pub const STEADY_FACTOR: f64 = 2.0;

/// The noise floor of ‖∇L‖ along an integration at tolerances (rtol, atol): the smallest
/// gradient the integrated state resolves. The error control keeps the state within about
/// τᵢ = atol + rtol·|θᵢ| of the exact flow (near a stable stationary point θ̄ an explicit
/// method's steps grow to its stability limit and the state jitters at that level), so
/// ‖∇L‖ ≈ ‖H(θ − θ̄)‖ cannot be resolved below ‖H‖·‖τ‖. With the Fisher matrix as the
/// Hessian's scale (equal at the optimum of a well-specified population loss):
///
/// floor = ‖G(θ)‖_F·‖τ‖₂ + 64ε·√tr G(θ)
///
/// (the second term: rounding of the quadrature sums). The quadrature's stated error
/// ([`StatModel::evaluation_error`]) is a bias of a deterministic rule, smooth in θ, and
/// shifts the stationary point rather than adding noise, so it is not part of the floor.
/// Measured on the demo (rtol 1e-8, atol 1e-10, tsit45): ‖∇L‖ wanders in 0.9–1.3e-8 after
/// t ≈ 35 against a floor of 1.4e-8.
pub fn noise_floor(model: &dyn StatModel, theta: &[f64], rtol: f64, atol: f64) -> f64 {
    // above the dense limit the n×n Fisher is not formed (82 689 parameters: 55 GB); the
    // floor is then unknown and grad_tol alone decides
    if model.dim() > crate::metric::provider::DENSE_LIMIT {
        return 0.0;
    }
    floor_of(&model.fisher(theta), theta, rtol, atol)
}

/// [`noise_floor`] from the Fisher matrix `g` at θ.
fn floor_of(g: &DMatrix<f64>, theta: &[f64], rtol: f64, atol: f64) -> f64 {
    let tau = theta
        .iter()
        .map(|t| (atol + rtol * t.abs()).powi(2))
        .sum::<f64>()
        .sqrt();
    let f = g.norm() * tau + 64.0 * f64::EPSILON * g.trace().max(0.0).sqrt();
    if f.is_finite() { f } else { 0.0 }
}

/// The recording evaluation of f is bookkeeping, not solver work: take it off the counter.
fn rhs_uncount(rhs: &FlowRhs<'_>) {
    rhs.uncount_eval();
}

/// Spectral radius of a square matrix: exact for 2×2, Gershgorin bound otherwise.
pub fn spectral_radius(j: &DMatrix<f64>) -> f64 {
    if j.nrows() == 2 {
        let tr = j[(0, 0)] + j[(1, 1)];
        let det = j[(0, 0)] * j[(1, 1)] - j[(0, 1)] * j[(1, 0)];
        let disc = 0.25 * tr * tr - det;
        if disc >= 0.0 {
            let r = disc.sqrt();
            (0.5 * tr + r).abs().max((0.5 * tr - r).abs())
        } else {
            det.abs().sqrt()
        }
    } else {
        j.row_iter()
            .map(|r| r.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max)
    }
}
