//! The runner: builds the diffsol problem, steps it, records accepted steps.

use super::{FlowRhs, FlowSettings, SolverKind};
use crate::error::{Error, Result};
use crate::model::StatModel;
use crate::trajectory::{Stats, Step, StopReason, Trajectory};
use diffsol::{
    NalgebraLU, NalgebraMat, NalgebraVec, OdeBuilder, OdeEquations, OdeSolverMethod,
    OdeSolverStopReason, Vector,
};
use std::time::Instant;

/// Integrates the flow of one model under one set of settings from any number of starts.
pub struct Simulator<'m> {
    model: &'m dyn StatModel,
    settings: FlowSettings,
}

impl<'m> Simulator<'m> {
    /// A simulator; `settings` are validated here.
    pub fn new(model: &'m dyn StatModel, settings: FlowSettings) -> Result<Self> {
        settings.validate()?;
        crate::metric::provider(settings.metric, &settings.metric_options).check(model)?;
        Ok(Simulator { model, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    /// Integrate from `start`.
    pub fn run(&self, start: &[f64]) -> Result<Trajectory> {
        let n = self.model.dim();
        if start.len() != n {
            return Err(Error::invalid(
                "start",
                format!("{start:?}"),
                format!("expected {n} values ({})", self.model.param_names().join(", ")),
            ));
        }
        if start.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("start", format!("{start:?}"), "values must be finite"));
        }
        let clock = Instant::now();
        let s = &self.settings;
        let rhs = FlowRhs::with_options(self.model, s.metric, &s.metric_options, s.damping);
        let x0 = start.to_vec();
        let gtol = s.grad_tol;
        let builder = OdeBuilder::<NalgebraMat<f64>>::new()
            .rtol(s.rtol)
            .atol([s.atol])
            .init(move |_p, _t, y: &mut [f64]| y.copy_from_slice(&x0), n)
            .root(
                |x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| {
                    y[0] = if gtol > 0.0 { rhs.grad_norm(x) - gtol } else { 1.0 };
                },
                1,
            );
        let solver_err = |e: diffsol::DiffsolError| Error::Solver {
            solver: s.solver.name().into(),
            message: e.to_string(),
        };
        let mut traj = match s.solver {
            SolverKind::Tsit45 => {
                let problem = builder
                    .rhs(|x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| rhs.eval(x, y))
                    .build()
                    .map_err(solver_err)?;
                let solver = problem.tsit45().map_err(solver_err)?;
                self.drive(solver, &rhs, start)?
            }
            SolverKind::Bdf => {
                let problem = builder
                    .rhs_implicit(
                        |x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| rhs.eval(x, y),
                        |x: &[f64], _p: &[f64], _t: f64, v: &[f64], y: &mut [f64]| {
                            rhs.jac_vec(x, v, y)
                        },
                    )
                    .build()
                    .map_err(solver_err)?;
                let solver = problem.bdf::<NalgebraLU<f64>>().map_err(solver_err)?;
                self.drive(solver, &rhs, start)?
            }
        };
        traj.stats.rhs_evals = rhs.evals();
        traj.stats.jac_evals = rhs.jac_evals();
        traj.stats.wall_time = clock.elapsed().as_secs_f64();
        Ok(traj)
    }

    /// Step the solver to the end, recording every accepted step.
    fn drive<'a, Eqn, S>(&self, mut solver: S, rhs: &FlowRhs<'_>, start: &[f64]) -> Result<Trajectory>
    where
        Eqn: OdeEquations<T = f64, V = NalgebraVec<f64>> + 'a,
        S: OdeSolverMethod<'a, Eqn>,
    {
        let s = &self.settings;
        let mut steps = vec![self.record(rhs, 0.0, start, 0.0, Vec::new())];
        let stop;
        if let Err(e) = solver.set_stop_time(s.t_end) {
            return Err(Error::Solver {
                solver: s.solver.name().into(),
                message: e.to_string(),
            });
        }
        if s.grad_tol > 0.0 && steps[0].grad_norm < s.grad_tol {
            stop = StopReason::Converged;
        } else {
            loop {
                let t_prev = solver.state().t;
                let reason = match solver.step() {
                    Ok(r) => r,
                    Err(e) => {
                        stop = StopReason::SolverFailure(e.to_string());
                        break;
                    }
                };
                let mut done = None;
                if let OdeSolverStopReason::RootFound(t_root, _) = reason {
                    if let Err(e) = solver.state_mut_back(t_root) {
                        stop = StopReason::SolverFailure(e.to_string());
                        break;
                    }
                    done = Some(StopReason::Converged);
                } else if let OdeSolverStopReason::TstopReached = reason {
                    done = Some(StopReason::TEnd);
                }
                let (t, theta) = {
                    let st = solver.state();
                    (st.t, st.y.clone_as_vec())
                };
                if theta.iter().any(|v| !v.is_finite()) {
                    stop = StopReason::SolverFailure(format!("non-finite state at t = {t}"));
                    break;
                }
                let h = t - t_prev;
                let interior = self.interior(&solver, rhs, t_prev, t);
                steps.push(self.record(rhs, t, &theta, h, interior));
                if let Some(r) = done {
                    stop = r;
                    break;
                }
                if steps.len() > s.max_steps {
                    stop = StopReason::MaxSteps;
                    break;
                }
            }
        }
        let stats = Stats {
            accepted: steps.len() - 1,
            rejected: solver.get_statistics().number_of_error_test_failures,
            ..Stats::default()
        };
        Ok(Trajectory {
            param_names: self.model.param_names(),
            start: start.to_vec(),
            steps,
            stats,
            stop,
        })
    }

    /// Loss at `interior_points` equally spaced interior times of the step, from dense output.
    fn interior<'a, Eqn, S>(&self, solver: &S, rhs: &FlowRhs<'_>, t0: f64, t1: f64) -> Vec<(f64, f64)>
    where
        Eqn: OdeEquations<T = f64, V = NalgebraVec<f64>> + 'a,
        S: OdeSolverMethod<'a, Eqn>,
    {
        let k = self.settings.interior_points;
        (1..=k)
            .filter_map(|j| {
                let t = t0 + (t1 - t0) * j as f64 / (k + 1) as f64;
                let y = solver.interpolate(t).ok()?.clone_as_vec();
                let l = rhs.model().loss(&y);
                l.is_finite().then_some((t, l))
            })
            .collect()
    }

    /// Evaluate everything recorded at an accepted step.
    fn record(&self, rhs: &FlowRhs<'_>, t: f64, theta: &[f64], h: f64, interior: Vec<(f64, f64)>) -> Step {
        let model = rhs.model();
        let n = model.dim();
        let mut grad = vec![0.0; n];
        let loss = model.loss_grad(theta, &mut grad);
        let g = nalgebra::DVector::from_vec(grad);
        let metric = rhs.factorized_at(theta);
        let nat = match &metric {
            Ok(m) => m.solve(&g),
            Err(_) => nalgebra::DVector::from_element(n, f64::NAN),
        };
        let eig = metric.as_ref().ok().and_then(|m| m.eigenvalues());
        let kappa = match &eig {
            Some(v) if !v.is_empty() => {
                let (lo, hi) = (v[0], v[v.len() - 1]);
                if lo <= 0.0 { f64::INFINITY } else { hi / lo }
            }
            _ => f64::NAN,
        };
        Step {
            t,
            theta: theta.to_vec(),
            loss,
            grad_norm: g.norm(),
            kappa,
            min_eig: eig.and_then(|v| v.iter().next().copied()).unwrap_or(f64::NAN),
            rate: -g.dot(&nat),
            step_size: h,
            interior,
        }
    }
}
