//! Observers that `fisher-flow run` subscribes to a study: the certificate builder, the
//! trajectory exporter and the progress bar. Each sees a case as it finishes, so a trajectory
//! is certified and serialized once, without a second pass over the study.

use crate::certificate::{CertTrajectory, Monotone};
use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::export::{trajectories_csv_header, trajectory_csv_rows, write_atomic, write_json};
use crate::model::StatModel;
use crate::study::{Case, Observer, Outcome};
use std::path::Path;
use std::sync::Mutex;

/// Lock `m`, taking the data even if another thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Slots for one value per case, filled as cases finish (in any order).
struct Slots<T>(Mutex<Vec<Option<T>>>);

impl<T> Slots<T> {
    fn new() -> Self {
        Slots(Mutex::new(Vec::new()))
    }
    fn put(&self, index: usize, v: T) {
        let mut s = lock(&self.0);
        if s.len() <= index {
            s.resize_with(index + 1, || None);
        }
        s[index] = Some(v);
    }
    /// Every slot in order, or None if a case did not deliver one.
    fn take(&self) -> Option<Vec<T>> {
        std::mem::take(&mut *lock(&self.0)).into_iter().collect()
    }
}

/// Builds the monotone-loss certificate ([`Monotone`]) of a run: each trajectory is certified
/// as it finishes; [`CertificateBuilder::finish`] assembles them in case order.
pub struct CertificateBuilder<'e> {
    exp: &'e Experiment,
    entries: Slots<CertTrajectory>,
}

impl<'e> CertificateBuilder<'e> {
    /// A builder for the cases of `exp` ([`Case::from_experiment`]).
    pub fn new(exp: &'e Experiment) -> Self {
        CertificateBuilder {
            exp,
            entries: Slots::new(),
        }
    }

    /// The certificate of every finished case (None if a case did not give a trajectory).
    pub fn finish(self) -> Option<Monotone> {
        let entries = self.entries.take()?;
        Some(Monotone::assemble(self.exp, &self.exp.model, entries))
    }
}

impl Observer for CertificateBuilder<'_> {
    fn case_finished(&self, case: &Case<'_>, outcome: &Outcome) {
        if let Ok(tr) = &outcome.result {
            self.entries
                .put(outcome.index, Monotone::certify(self.exp, case.model, tr));
        }
    }
}

/// Serializes each trajectory as it finishes into its `trajectory.csv` rows and its
/// `trajectory.json` entry (wall time moved out, so that reruns write identical bytes);
/// [`TrajectoryExporter::write`] writes both files.
pub struct TrajectoryExporter {
    parts: Slots<(Vec<String>, String, serde_json::Value, serde_json::Value)>,
}

impl Default for TrajectoryExporter {
    fn default() -> Self {
        TrajectoryExporter::new()
    }
}

impl TrajectoryExporter {
    pub fn new() -> Self {
        TrajectoryExporter {
            parts: Slots::new(),
        }
    }

    /// Write `trajectory.csv` and `trajectory.json` of `exp`'s run into `out` (`extra`: more
    /// top-level keys of trajectory.json, e.g. `quality`). Returns the wall times taken out
    /// of the trajectories (for `timings.json`).
    pub fn write(
        self,
        exp: &Experiment,
        extra: Vec<(&str, serde_json::Value)>,
        out: &Path,
    ) -> Result<Vec<serde_json::Value>> {
        let parts = self.parts.take().ok_or_else(|| {
            Error::Numerical("trajectory exporter: a case gave no trajectory".into())
        })?;
        let names = parts.first().map(|p| p.0.clone()).unwrap_or_default();
        let mut csv = trajectories_csv_header(&names);
        let mut list = Vec::with_capacity(parts.len());
        let mut walls = Vec::with_capacity(parts.len());
        for (_, rows, json, wall) in parts {
            csv.push_str(&rows);
            list.push(json);
            walls.push(wall);
        }
        write_atomic(&out.join("trajectory.csv"), csv.as_bytes())?;
        let model = &exp.model;
        let mut doc = serde_json::json!({
            "model_file": exp.path.display().to_string(),
            "model_sha256": exp.file_hash,
            "settings": exp.flow,
            "quadrature": model.describe(),
            "optimal_loss": model.optimal_loss(),
            "optima": model.optima(),
            "trajectories": list,
        });
        if let Some(map) = doc.as_object_mut() {
            for (k, v) in extra {
                map.insert(k.into(), v);
            }
        }
        write_json(&out.join("trajectory.json"), &doc)?;
        Ok(walls)
    }
}

impl Observer for TrajectoryExporter {
    fn case_finished(&self, _case: &Case<'_>, outcome: &Outcome) {
        if let Ok(tr) = &outcome.result {
            let rows = trajectory_csv_rows(outcome.index, tr);
            let mut json = serde_json::to_value(tr).unwrap_or(serde_json::Value::Null);
            let wall = json
                .get_mut("stats")
                .and_then(|s| s.as_object_mut())
                .and_then(|s| s.remove("wall_time"))
                .unwrap_or(serde_json::Value::Null);
            self.parts
                .put(outcome.index, (tr.param_names.clone(), rows, json, wall));
        }
    }
}

/// An indicatif progress display on stderr, hidden when asked or when stderr is not a
/// terminal: a spinner naming the trajectory, its t and steps ([`Progress::spinner`]), or a
/// bar counting finished cases ([`Progress::counter`]).
pub struct Progress {
    bar: indicatif::ProgressBar,
    kind: ProgressKind,
}

enum ProgressKind {
    Spinner {
        cases: usize,
        t_end: f64,
        cap: usize,
    },
    Counter,
}

impl Progress {
    /// "trajectory i/n: t = … of t_end, s of at most cap steps" for the cases of `exp`.
    pub fn spinner(exp: &Experiment, hide: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = indicatif::ProgressBar::new_spinner();
        if hide || !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        } else if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
        {
            bar.set_style(style);
        }
        Progress {
            bar,
            kind: ProgressKind::Spinner {
                cases: exp.starts.len(),
                t_end: exp.flow.t_end,
                cap: exp.flow.max_steps,
            },
        }
    }

    /// A bar "pos/len starts" over `len` cases (hidden when `hide` or stderr is not a
    /// terminal).
    pub fn counter(len: usize, hide: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = indicatif::ProgressBar::new(len as u64);
        if hide || !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        } else if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} starts {elapsed_precise}")
        {
            bar.set_style(style);
        }
        Progress {
            bar,
            kind: ProgressKind::Counter,
        }
    }

    /// Remove the display.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn progress(&self, index: usize, steps: usize, t: f64) {
        if let ProgressKind::Spinner { cases, t_end, cap } = self.kind {
            self.bar.set_message(format!(
                "trajectory {}/{cases}: t = {t:.4e} of {t_end:e}, {steps} of at most {cap} steps",
                index + 1
            ));
            self.bar.tick();
        }
    }

    fn case_finished(&self, _case: &Case<'_>, _outcome: &Outcome) {
        if let ProgressKind::Counter = self.kind {
            self.bar.inc(1);
        }
    }
}
