//! Studies: cases in, observed trajectories and records out.
//!
//! `run`, `compare`, `field`, `sweep` and the live page (`explore`) are one computation at
//! different sizes: a list of [`Case`]s (a model, flow settings, a start), integrated by a
//! [`Runner`], each result handed to every [`Observer`] (certificate builders, exporters, sweep
//! records, progress bars, the live page). The binary only parses flags and prints.
//!
//! - [`observers`]: the certificate builder, the trajectory exporter and the progress bar of
//!   `run`;
//! - [`figures`]: titles and the figures `run` writes (loss gap, parameter plane, VI);
//! - [`compare`]: [`compare::Comparison`], configurations × starts side by side;
//! - particle fields are [`crate::field::field`] (end-only cases on a parallel runner).
//!
//! ```no_run
//! use fisher_flow::config::{Experiment, Overrides};
//! use fisher_flow::study::{Case, Runner};
//! let exp = Experiment::load("models/gmm-seed.toml".as_ref(), &Overrides::default())?;
//! let cases = Case::from_experiment(&exp);
//! let outcomes = Runner::new().run(&cases, &[])?;
//! for o in &outcomes {
//!     println!("{}: {:?}", o.label, o.result.as_ref().map(|t| t.retcode()));
//! }
//! # Ok::<(), fisher_flow::Error>(())
//! ```

pub mod compare;
pub mod figures;
pub mod observers;
pub mod sweep;

use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::flow::{FlowSettings, Simulator};
use crate::model::StatModel;
use crate::trajectory::Trajectory;
use rayon::prelude::*;
use std::time::Instant;

/// What a case records along its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Recording {
    /// Every accepted step (or what `settings.save_every` / `save_at` select).
    #[default]
    Steps,
    /// Only the start and the end (particle fields: no per-step metric evaluations).
    EndOnly,
}

/// One integration: a model, the flow settings, a start.
#[derive(Clone)]
pub struct Case<'m> {
    /// A name for reports (e.g. `exact/tsit45 #2`).
    pub label: String,
    pub model: &'m dyn StatModel,
    pub settings: FlowSettings,
    pub start: Vec<f64>,
    pub recording: Recording,
}

impl<'m> Case<'m> {
    /// A case recording every step.
    pub fn new(
        label: impl Into<String>,
        model: &'m dyn StatModel,
        settings: FlowSettings,
        start: Vec<f64>,
    ) -> Self {
        Case {
            label: label.into(),
            model,
            settings,
            start,
            recording: Recording::Steps,
        }
    }

    /// The same case recording only its start and end.
    pub fn end_only(mut self) -> Self {
        self.recording = Recording::EndOnly;
        self
    }

    /// One case per start of an experiment (its model and flow settings), labelled `#i`.
    pub fn from_experiment(exp: &'m Experiment) -> Vec<Case<'m>> {
        exp.starts
            .iter()
            .enumerate()
            .map(|(i, s)| Case::new(format!("#{i}"), &exp.model, exp.flow.clone(), s.clone()))
            .collect()
    }
}

/// The result of one case.
pub struct Outcome {
    /// Index of the case in the list given to [`Runner::run`].
    pub index: usize,
    pub label: String,
    /// The trajectory, or why the case could not be integrated (bad settings, a start of the
    /// wrong length); a trajectory that failed numerically is `Ok` with its retcode.
    pub result: Result<Trajectory>,
    /// Wall time of this case, seconds (never written into byte-stable outputs).
    pub wall: f64,
}

/// Sees a study as it runs. Every method has an empty default; observers are shared between
/// threads when the runner is parallel.
pub trait Observer: Sync {
    /// Case `index` is about to start.
    fn case_started(&self, _index: usize, _case: &Case<'_>) {}
    /// Progress inside case `index`: accepted steps so far and the current time (every
    /// [`crate::flow::PROGRESS_EVERY`] accepted steps).
    fn progress(&self, _index: usize, _steps: usize, _t: f64) {}
    /// Case `index` has finished.
    fn case_finished(&self, _case: &Case<'_>, _outcome: &Outcome) {}
}

/// Runs cases, sequentially or on rayon's current pool.
///
/// Defaults: sequential (`parallel = false`); no cap on the number of cases beyond what the
/// caller passes (every case is bounded by its own `max_steps`).
#[derive(Clone, Debug, Default)]
pub struct Runner {
    parallel: bool,
}

impl Runner {
    /// A sequential runner.
    pub fn new() -> Self {
        Runner::default()
    }

    /// Run the cases in parallel on rayon's current thread pool (results stay in case order).
    pub fn parallel(mut self, yes: bool) -> Self {
        self.parallel = yes;
        self
    }

    /// Integrate every case; each outcome is also handed to every observer as it finishes.
    /// Consecutive cases sharing a model and settings share one [`Simulator`] (one kernel).
    /// Errors only for a case list that cannot be set up (invalid settings: the first such
    /// error); per-case failures are in the outcomes.
    pub fn run(&self, cases: &[Case<'_>], observers: &[&dyn Observer]) -> Result<Vec<Outcome>> {
        // Group consecutive cases with the same model (by address) and settings.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, c) in cases.iter().enumerate() {
            match groups.last_mut() {
                Some((s, e)) if same_setup(&cases[*s], c) => *e = i + 1,
                _ => groups.push((i, i + 1)),
            }
        }
        let mut outcomes = Vec::with_capacity(cases.len());
        for (s, e) in groups {
            let first = &cases[s];
            let sim = Simulator::new(first.model, first.settings.clone())?;
            let one = |i: usize| -> Outcome {
                let case = &cases[i];
                for o in observers {
                    o.case_started(i, case);
                }
                let clock = Instant::now();
                let result = run_one(&sim, case, i, observers);
                let outcome = Outcome {
                    index: i,
                    label: case.label.clone(),
                    result,
                    wall: clock.elapsed().as_secs_f64(),
                };
                for o in observers {
                    o.case_finished(case, &outcome);
                }
                outcome
            };
            if self.parallel {
                outcomes.extend((s..e).into_par_iter().map(one).collect::<Vec<_>>());
            } else {
                outcomes.extend((s..e).map(one));
            }
        }
        Ok(outcomes)
    }
}

fn same_setup(a: &Case<'_>, b: &Case<'_>) -> bool {
    std::ptr::addr_eq(
        a.model as *const dyn StatModel,
        b.model as *const dyn StatModel,
    ) && a.settings == b.settings
}

fn run_one(
    sim: &Simulator<'_>,
    case: &Case<'_>,
    index: usize,
    observers: &[&dyn Observer],
) -> Result<Trajectory> {
    if observers.is_empty() {
        return match case.recording {
            Recording::Steps => sim.run(&case.start),
            Recording::EndOnly => sim.run_end(&case.start),
        };
    }
    let progress = |steps: usize, t: f64| {
        for o in observers {
            o.progress(index, steps, t);
        }
    };
    match case.recording {
        Recording::Steps => sim.run_observed(&case.start, &progress),
        Recording::EndOnly => sim.run_end_observed(&case.start, &progress),
    }
}

/// All trajectories of a list of outcomes, or the first error.
pub fn trajectories(outcomes: Vec<Outcome>) -> Result<Vec<Trajectory>> {
    outcomes.into_iter().map(|o| o.result).collect()
}

/// A case list must not be empty when a study needs at least one result.
pub fn require_cases(cases: &[Case<'_>], what: &str) -> Result<()> {
    if cases.is_empty() {
        return Err(Error::invalid(what, "no cases", "give at least one start"));
    }
    Ok(())
}
