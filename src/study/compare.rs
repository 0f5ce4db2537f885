//! Comparisons: the same starts under several configurations (metric × solver, and metrics
//! held and refreshed every P steps), side by side — the library behind `fisher-flow compare`.
//!
//! Each row is one configuration from one start: flow time and rhs evaluations to reach
//! L − L* < ε (L* the given reference, else the model's optimum, else the best loss any row
//! reached), steps, rejections, final L − L*, for classifiers the final accuracy; for models
//! with a flop count (MLP) the metric work in total and to reach the start's target loss
//! (given, else the largest final loss of all configurations from that start: the loss every
//! one of them reached), and that cost over the cheapest configuration other than `adaptive`.
//!
//! ```no_run
//! use fisher_flow::config::Overrides;
//! use fisher_flow::study::compare::Comparison;
//! let metrics = ["exact".to_string(), "euclidean".to_string()];
//! let configs = Comparison::configurations(
//!     "models/gmm-seed.toml".as_ref(), &metrics, &[], &[], &Overrides::default())?;
//! let cmp = Comparison::new(configs).eps(1e-6);
//! let report = cmp.run(&[])?;
//! print!("{}", report.markdown());
//! report.write(std::path::Path::new("output/compare"))?;
//! # Ok::<(), fisher_flow::Error>(())
//! ```

use crate::config::{Experiment, Overrides};
use crate::error::{Error, Result};
use crate::flow::Simulator;
use crate::metric::MetricKind;
use crate::metric::provider::REFRESH_MAX;
use crate::model::StatModel;
use crate::plot::{
    self, Dash, LegendEntry, LegendGlyph, LossFigure, PlaneFigure, Series, SeriesStyle,
};
use crate::study::figures::{noise_floor, plane_figure, plane_title, start_label};
use crate::study::{Case, Observer, Runner};
use crate::trajectory::{Retcode, Trajectory};
use serde::Serialize;
use std::path::Path;

/// Default threshold ε of the "time to reach L − L* < ε" columns.
pub const DEFAULT_EPS: f64 = 1e-6;

/// A comparison: configurations (each an [`Experiment`] with its starts), ε, the optional
/// reference L* and target loss.
#[derive(Clone)]
pub struct Comparison {
    configs: Vec<Experiment>,
    eps: f64,
    l_star: Option<f64>,
    target_loss: Option<f64>,
}

/// One configuration run from one start.
#[derive(Clone, Debug, Serialize)]
pub struct ComparisonRow {
    /// Metric name, `METRIC@P` when held and refreshed every P steps.
    pub metric: String,
    pub solver: String,
    pub start: Vec<f64>,
    /// Flow time at which L − L* first falls below ε (None: never).
    pub time_to_eps: Option<f64>,
    /// rhs evaluations spent until then.
    pub rhs_evals_to_eps: Option<usize>,
    pub steps: usize,
    pub rejected: usize,
    pub rhs_evals: usize,
    pub final_gap: f64,
    pub final_accuracy: Option<f64>,
    /// Model flops of the metric work in total (MLP; None otherwise).
    pub flops: Option<f64>,
    /// The loss the next two columns refer to.
    pub target_loss: f64,
    /// Flops spent until L ≤ target_loss first (None: never).
    pub flops_to_target: Option<f64>,
    /// flops_to_target / the cheapest non-adaptive configuration's from the same start.
    pub cost_vs_best_fixed: Option<f64>,
    pub stop: String,
    /// Success, Converged, MaxSteps, Unstable or SolverFailure.
    pub retcode: Retcode,
}

/// One integrated path of a comparison.
#[derive(Clone, Debug)]
pub struct ComparedRun {
    /// Legend label: `METRIC/SOLVER`, `… from start (…)` with several starts.
    pub label: String,
    /// Index of the configuration and of the start.
    pub config: usize,
    pub start: usize,
    pub trajectory: Trajectory,
    /// (t, training accuracy) along the path (classifiers only; else empty).
    pub accuracy: Vec<(f64, f64)>,
}

/// The result of [`Comparison::run`]: rows (configuration-major, then start) and the paths.
pub struct ComparisonReport<'c> {
    pub comparison: &'c Comparison,
    pub runs: Vec<ComparedRun>,
    pub rows: Vec<ComparisonRow>,
    /// The loss-gap reference: the given L*, else the model's optimum (None: figures show L).
    pub l_ref: Option<f64>,
    /// The L* of the table: `l_ref`, else the best loss reached.
    pub optimal_loss: f64,
    /// Where `optimal_loss` comes from: "--l-star", "model" or "best loss reached".
    pub optimal_loss_source: &'static str,
}

/// The figures of a comparison (see [`ComparisonReport::figures`]).
pub struct ComparisonFigures {
    /// L − L* (or L) against t.
    pub loss: LossFigure,
    /// Accepted step size against t.
    pub step: LossFigure,
    /// κ of the metric along each path.
    pub kappa: LossFigure,
    /// Training error 1 − accuracy against t (classifiers).
    pub error: Option<LossFigure>,
    /// All paths in the (μ₁, μ₂) plane (mixture).
    pub plane: Option<PlaneFigure>,
    /// L against log₁₀ flops (models with a flop count).
    pub cost: Option<LossFigure>,
}

/// The configuration's name: the metric, `@P` when held and refreshed every P steps.
pub fn metric_label(exp: &Experiment) -> String {
    match exp.flow.metric_options.refresh {
        0 => exp.flow.metric.name().to_string(),
        p => format!("{}@{p}", exp.flow.metric.name()),
    }
}

impl Comparison {
    /// A comparison of `configs` with ε = [`DEFAULT_EPS`], no given L* and no given target.
    pub fn new(configs: Vec<Experiment>) -> Self {
        Comparison {
            configs,
            eps: DEFAULT_EPS,
            l_star: None,
            target_loss: None,
        }
    }

    /// The configurations of one model file: every metric × solver (`solvers` empty: the
    /// file's), each held-able metric (exact, diagonal, block-diagonal, kfac) also held and
    /// refreshed every P accepted steps for each P of `refresh`; `base` gives the other
    /// overrides (tolerances, t_end, starts). Errors name the override that failed
    /// (`--metric`, `--solver`, …).
    pub fn configurations(
        model: &Path,
        metrics: &[String],
        solvers: &[String],
        refresh: &[usize],
        base: &Overrides,
    ) -> Result<Vec<Experiment>> {
        if metrics.is_empty() {
            return Err(Error::invalid(
                "--metrics",
                "''",
                "give at least one metric",
            ));
        }
        if let Some(&p) = refresh.iter().find(|&&p| p == 0 || p > REFRESH_MAX) {
            return Err(Error::invalid(
                "--refresh",
                p,
                format!("every period must be in 1..={REFRESH_MAX} accepted steps"),
            ));
        }
        let solvers: Vec<Option<String>> = if solvers.is_empty() {
            vec![None]
        } else {
            solvers.iter().cloned().map(Some).collect()
        };
        let mut configs = Vec::new();
        for metric in metrics {
            for solver in &solvers {
                let ov = Overrides {
                    metric: Some(metric.clone()),
                    solver: solver.clone(),
                    ..base.clone()
                };
                let exp = Experiment::load(model, &ov)?;
                let holdable = matches!(
                    exp.flow.metric,
                    MetricKind::Exact
                        | MetricKind::Diagonal
                        | MetricKind::BlockDiagonal
                        | MetricKind::Kfac
                );
                let held: Vec<Experiment> = if holdable {
                    refresh
                        .iter()
                        .map(|&p| {
                            let mut held = exp.clone();
                            held.flow.metric_options.refresh = p;
                            held
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                configs.push(exp);
                configs.extend(held);
            }
        }
        Ok(configs)
    }

    /// Threshold ε of the time-to-ε columns.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Reference optimal loss L* (None: the model's optimum, else the best loss reached).
    pub fn l_star(mut self, l_star: Option<f64>) -> Self {
        self.l_star = l_star;
        self
    }

    /// The loss of the flops-to-target column (None: per start, the largest final loss).
    pub fn target_loss(mut self, target: Option<f64>) -> Self {
        self.target_loss = target;
        self
    }

    /// The configurations.
    pub fn configs(&self) -> &[Experiment] {
        &self.configs
    }

    /// Check everything that can be checked before integrating: ε, L*, the target and every
    /// configuration's simulator (solver against model, metric provider). The first error.
    pub fn check(&self) -> Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid(
                "--eps",
                self.eps,
                "must be a finite number > 0",
            ));
        }
        if let Some(x) = self.l_star.filter(|x| !x.is_finite()) {
            return Err(Error::invalid("--l-star", x, "must be a finite number"));
        }
        if let Some(x) = self.target_loss.filter(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "--target-loss",
                x,
                "must be a finite number",
            ));
        }
        if self.configs.is_empty() {
            return Err(Error::invalid(
                "--metrics",
                "''",
                "give at least one metric",
            ));
        }
        for exp in &self.configs {
            Simulator::new(&exp.model, exp.flow.clone())?;
        }
        Ok(())
    }

    /// The cases: configuration-major, then start, labelled as in the figures' legends.
    pub fn cases(&self) -> Vec<Case<'_>> {
        let mut cases = Vec::new();
        for exp in &self.configs {
            for (k, start) in exp.starts.iter().enumerate() {
                let mut label = format!("{}/{}", metric_label(exp), exp.flow.solver.name());
                if exp.starts.len() > 1 {
                    label.push_str(&format!(" from {}", start_label(k, start)));
                }
                cases.push(Case::new(
                    label,
                    &exp.model,
                    exp.flow.clone(),
                    start.clone(),
                ));
            }
        }
        cases
    }

    /// Integrate every case sequentially (observers see each one) and build the rows.
    pub fn run(&self, observers: &[&dyn Observer]) -> Result<ComparisonReport<'_>> {
        self.check()?;
        let cases = self.cases();
        let outcomes = Runner::new().run(&cases, observers)?;
        let mut index = Vec::with_capacity(cases.len());
        for (c, exp) in self.configs.iter().enumerate() {
            index.extend((0..exp.starts.len()).map(|k| (c, k)));
        }
        let mut runs = Vec::with_capacity(outcomes.len());
        for (outcome, (config, start)) in outcomes.into_iter().zip(index) {
            let trajectory = outcome.result?;
            let exp = &self.configs[config];
            let first = &exp.starts[start];
            let accuracy = match exp.model.as_mlp() {
                Some(m) if m.accuracy(first).is_some() => trajectory
                    .steps
                    .iter()
                    .filter_map(|s| m.accuracy(&s.theta).map(|a| (s.t, a)))
                    .collect(),
                _ => Vec::new(),
            };
            runs.push(ComparedRun {
                label: outcome.label,
                config,
                start,
                trajectory,
                accuracy,
            });
        }
        Ok(self.report(runs))
    }

    fn report(&self, runs: Vec<ComparedRun>) -> ComparisonReport<'_> {
        let configs = &self.configs;
        let model = &configs[0].model;
        // The reference of the loss gap: the given L*, else the model's optimum.
        let l_ref = self.l_star.or_else(|| model.optimal_loss());
        // L* of the table: l_ref, else the best loss any configuration reached.
        let l_star = l_ref.unwrap_or_else(|| {
            runs.iter()
                .filter_map(|r| r.trajectory.last().map(|s| s.loss))
                .fold(f64::INFINITY, f64::min)
        });
        // The target loss of each start: the given one, else the largest final loss of all
        // configurations from it (every one reached it).
        let n_starts = runs.iter().map(|r| r.start + 1).max().unwrap_or(0);
        let targets: Vec<f64> = (0..n_starts)
            .map(|k| {
                self.target_loss.unwrap_or_else(|| {
                    runs.iter()
                        .filter(|r| r.start == k)
                        .filter_map(|r| r.trajectory.last().map(|s| s.loss))
                        .filter(|l| l.is_finite())
                        .fold(f64::NEG_INFINITY, f64::max)
                })
            })
            .collect();
        let to_target = |r: &ComparedRun| -> Option<f64> {
            let s = r
                .trajectory
                .steps
                .iter()
                .find(|s| s.loss <= targets[r.start])?;
            (s.flops > 0.0).then_some(s.flops)
        };
        let best_fixed: Vec<Option<f64>> = (0..n_starts)
            .map(|k| {
                runs.iter()
                    .filter(|r| {
                        r.start == k && configs[r.config].flow.metric != MetricKind::Adaptive
                    })
                    .filter_map(to_target)
                    .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.min(c))))
            })
            .collect();
        let rows = runs
            .iter()
            .map(|r| {
                let exp = &configs[r.config];
                let tr = &r.trajectory;
                let first = tr.steps.iter().find(|s| s.loss - l_star < self.eps);
                let flops_to_target = to_target(r);
                ComparisonRow {
                    metric: metric_label(exp),
                    flops: (tr.stats.flops > 0.0).then_some(tr.stats.flops),
                    target_loss: targets[r.start],
                    flops_to_target,
                    cost_vs_best_fixed: flops_to_target
                        .zip(best_fixed[r.start])
                        .map(|(a, b)| a / b),
                    solver: exp.flow.solver.name().into(),
                    start: tr.start.clone(),
                    time_to_eps: tr.time_to_reach(l_star, self.eps),
                    rhs_evals_to_eps: first.map(|s| s.rhs_evals),
                    steps: tr.stats.accepted,
                    rejected: tr.stats.rejected,
                    rhs_evals: tr.stats.rhs_evals,
                    final_gap: tr.last().map(|s| s.loss - l_star).unwrap_or(f64::NAN),
                    final_accuracy: r.accuracy.last().map(|&(_, a)| a),
                    stop: tr.stop.to_string(),
                    retcode: tr.retcode(),
                }
            })
            .collect();
        let optimal_loss_source = if self.l_star.is_some() {
            "--l-star"
        } else if model.optimal_loss().is_some() {
            "model"
        } else {
            "best loss reached"
        };
        ComparisonReport {
            comparison: self,
            runs,
            rows,
            l_ref,
            optimal_loss: l_star,
            optimal_loss_source,
        }
    }
}

/// `v` with `digits` digits: plain for 1e-4 ≤ |v| < 1e6 (and 0), else with an exponent.
fn num(v: f64, digits: usize) -> String {
    if v == 0.0 || (v.is_finite() && (1e-4..1e6).contains(&v.abs())) {
        format!("{v:.digits$}")
    } else if v.is_finite() {
        format!("{v:.digits$e}")
    } else {
        format!("{v}")
    }
}

/// A point as "(x, y)" with 6 digits, "(n = …, |θ| = …)" beyond 4 coordinates.
pub fn fmt_vec(v: &[f64]) -> String {
    if v.len() > 4 {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        return format!("(n = {}, |θ| = {})", v.len(), num(norm, 6));
    }
    let parts: Vec<String> = v.iter().map(|&x| num(x, 6)).collect();
    format!("({})", parts.join(", "))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "—".into())
}

impl ComparisonReport<'_> {
    /// Every row ended as asked (success or converged).
    pub fn succeeded(&self) -> bool {
        self.rows.iter().all(|r| r.retcode.is_success())
    }

    /// The trajectories, in row order.
    pub fn trajectories(&self) -> Vec<&Trajectory> {
        self.runs.iter().map(|r| &r.trajectory).collect()
    }

    /// Wall time of every row, seconds (never in the byte-stable outputs).
    pub fn wall_seconds(&self) -> Vec<f64> {
        self.runs
            .iter()
            .map(|r| r.trajectory.stats.wall_time)
            .collect()
    }

    /// `compare.md`: the table.
    pub fn markdown(&self) -> String {
        let eps = self.comparison.eps;
        let mut s = format!(
            "| metric | solver | start | t to L−L*<{eps:e} | rhs evals to ε | steps | rejected | rhs evals | final L−L* | accuracy | flops | target L | flops to target | × best fixed | retcode | stop |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        );
        let e = |v: Option<f64>| opt(v.map(|x| format!("{x:.3e}")));
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2e} | {} | {} | {:.6} | {} | {} | {} | {} |\n",
                r.metric,
                r.solver,
                // `|` would end the table cell.
                fmt_vec(&r.start).replace('|', "\\|"),
                opt(r.time_to_eps.map(|t| num(t, 4))),
                opt(r.rhs_evals_to_eps),
                r.steps,
                r.rejected,
                r.rhs_evals,
                r.final_gap,
                opt(r.final_accuracy.map(|a| format!("{a:.4}"))),
                e(r.flops),
                r.target_loss,
                e(r.flops_to_target),
                opt(r.cost_vs_best_fixed.map(|x| format!("{x:.3}"))),
                r.retcode,
                r.stop
            ));
        }
        s
    }

    /// `compare.json`: model file and hash, ε, L* and its source, the rows.
    pub fn json(&self) -> serde_json::Value {
        let first = &self.comparison.configs[0];
        serde_json::json!({
            "model_file": first.path.display().to_string(),
            "model_sha256": first.file_hash,
            "eps": self.comparison.eps,
            "optimal_loss": self.optimal_loss,
            "optimal_loss_source": self.optimal_loss_source,
            "rows": self.rows,
        })
    }

    /// Write `compare.md`, `compare.json` and the figures (each .svg and .png) into `out`
    /// (an existing directory); timings are the caller's.
    pub fn write(&self, out: &Path) -> Result<()> {
        crate::export::write_atomic(&out.join("compare.md"), self.markdown().as_bytes())?;
        crate::export::write_json(&out.join("compare.json"), &self.json())?;
        self.figures().write(out)
    }

    /// The figures: loss (gap), step size, κ, training error (classifiers), the plane
    /// (mixture), L against cost (flop counts).
    pub fn figures(&self) -> ComparisonFigures {
        let configs = &self.comparison.configs;
        let runs = &self.runs;
        let exp = &configs[0];
        let model = &exp.model;
        let title = |what: &str| format!("{what} — {}", exp.path.display());
        let (styles, legend) = styling(configs, runs, &|_| String::new());
        let styled = |fig: LossFigure| LossFigure {
            styles: styles.clone(),
            legend: legend.clone(),
            ..fig
        };
        let loss = styled(match self.l_ref {
            Some(ls) => {
                let floor = noise_floor(model, ls);
                LossFigure {
                    title: title("Loss gap L − L*"),
                    x_label: "t".into(),
                    y_label: "L − L*".into(),
                    series: series(runs, |r| {
                        r.trajectory
                            .steps
                            .iter()
                            .map(|s| (s.t, s.loss - ls))
                            .collect()
                    }),
                    noise_floor: Some(floor),
                    noise_label: format!("noise floor {floor:.1e} (evaluation error × |L*|)"),
                    ..LossFigure::default()
                }
            }
            None => {
                let positive = runs
                    .iter()
                    .flat_map(|r| r.trajectory.steps.iter())
                    .all(|s| !s.loss.is_finite() || s.loss > 0.0);
                LossFigure {
                    title: title("Loss L (no reference L*: see --l-star)"),
                    x_label: "t".into(),
                    y_label: "L".into(),
                    series: series(runs, |r| {
                        r.trajectory.steps.iter().map(|s| (s.t, s.loss)).collect()
                    }),
                    linear_y: !positive,
                    ..LossFigure::default()
                }
            }
        });
        let step = styled(LossFigure {
            title: title("Accepted step size"),
            x_label: "t".into(),
            y_label: "step size h".into(),
            series: series(runs, |r| {
                r.trajectory
                    .steps
                    .iter()
                    .skip(1)
                    .map(|s| (s.t, s.step_size))
                    .collect()
            }),
            ..LossFigure::default()
        });
        // κ is ∞ where the metric is singular (e.g. the exact Fisher of an over-parametrised
        // network) and NaN where it was not computed: such configurations say so in the legend.
        let kappa_note = |c: usize| {
            let ks: Vec<f64> = runs
                .iter()
                .filter(|r| r.config == c)
                .flat_map(|r| r.trajectory.steps.iter().map(|s| s.kappa))
                .collect();
            if ks.is_empty() || ks.iter().any(|k| k.is_finite()) {
                String::new()
            } else if ks.iter().all(|k| k.is_nan()) {
                " — κ not computed (n too large)".into()
            } else {
                " — κ = ∞ (singular metric), not drawn".into()
            }
        };
        let (_, kappa_legend) = styling(configs, runs, &kappa_note);
        let kappa = LossFigure {
            title: title("Condition number of the metric along each path"),
            x_label: "t".into(),
            y_label: "κ".into(),
            series: series(runs, |r| {
                r.trajectory.steps.iter().map(|s| (s.t, s.kappa)).collect()
            }),
            styles: styles.clone(),
            legend: kappa_legend,
            ..LossFigure::default()
        };
        let error = runs.iter().any(|r| !r.accuracy.is_empty()).then(|| {
            let worst = runs
                .iter()
                .flat_map(|r| r.accuracy.iter().map(|&(_, a)| 1.0 - a))
                .filter(|e| e.is_finite())
                .fold(0.0, f64::max);
            styled(LossFigure {
                title: title("Training error 1 − accuracy"),
                x_label: "t".into(),
                y_label: "1 − accuracy".into(),
                series: series(runs, |r| {
                    r.accuracy.iter().map(|&(t, a)| (t, 1.0 - a)).collect()
                }),
                linear_y: true,
                y_range: Some((0.0, (1.05 * worst).clamp(0.01, 1.0))),
                ..LossFigure::default()
            })
        });
        let plane = model.as_mixture().map(|m| {
            let trajectories: Vec<Trajectory> = runs.iter().map(|r| r.trajectory.clone()).collect();
            let mut fig = plane_figure(exp, m, &trajectories);
            fig.title = plane_title("Compared flows", m);
            for (s, r) in fig.trajectories.iter_mut().zip(runs) {
                s.label = r.label.clone();
            }
            // Colour by start, pattern by configuration, as in the other figures.
            fig.styles = styles.clone();
            fig.legend = legend.clone();
            fig
        });
        // L against the metric work (MLP flows: model flops, log scale on the axis)
        let cost = runs
            .iter()
            .any(|r| r.trajectory.stats.flops > 0.0)
            .then(|| {
                styled(LossFigure {
                    title: title("Loss against cost"),
                    x_label: "log₁₀ flops (cost model)".into(),
                    y_label: "L".into(),
                    series: series(runs, |r| {
                        r.trajectory
                            .steps
                            .iter()
                            .filter(|s| s.flops > 0.0)
                            .map(|s| (s.flops.log10(), s.loss))
                            .collect()
                    }),
                    linear_y: runs
                        .iter()
                        .flat_map(|r| r.trajectory.steps.iter())
                        .any(|s| s.loss.is_finite() && s.loss <= 0.0),
                    ..LossFigure::default()
                })
            });
        ComparisonFigures {
            loss,
            step,
            kappa,
            error,
            plane,
            cost,
        }
    }
}

impl ComparisonFigures {
    /// Write `compare-{loss,cost,step,kappa,error,plane}.{svg,png}` (those present) into `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        for ext in ["svg", "png"] {
            plot::loss(&out.join(format!("compare-loss.{ext}")), &self.loss)?;
            if let Some(c) = &self.cost {
                plot::loss(&out.join(format!("compare-cost.{ext}")), c)?;
            }
            plot::loss(&out.join(format!("compare-step.{ext}")), &self.step)?;
            plot::loss(&out.join(format!("compare-kappa.{ext}")), &self.kappa)?;
            if let Some(e) = &self.error {
                plot::loss(&out.join(format!("compare-error.{ext}")), e)?;
            }
            if let Some(p) = &self.plane {
                plot::plane(&out.join(format!("compare-plane.{ext}")), p)?;
            }
        }
        Ok(())
    }
}

/// Colour and line pattern of every run, and the legend explaining them: with one start,
/// colour by configuration; with several, colour by start and pattern by configuration (or the
/// other way round when there are more than four configurations but at most four starts).
/// `note(config)` is appended to a configuration's legend label.
fn styling(
    configs: &[Experiment],
    runs: &[ComparedRun],
    note: &dyn Fn(usize) -> String,
) -> (Vec<SeriesStyle>, Vec<LegendEntry>) {
    let n_starts = runs.iter().map(|r| r.start + 1).max().unwrap_or(0);
    let name = |c: usize| {
        format!(
            "{}/{}{}",
            metric_label(&configs[c]),
            configs[c].flow.solver.name(),
            note(c)
        )
    };
    let start_name = |k: usize| {
        runs.iter()
            .find(|r| r.start == k)
            .map(|r| start_label(k, &r.trajectory.start))
            .unwrap_or_default()
    };
    // `adaptive` configurations take the first, strongest colours: with many configurations
    // the later palette entries are light and `adaptive` (listed last) would be hard to see.
    let mut order: Vec<usize> = (0..configs.len()).collect();
    order.sort_by_key(|&c| configs[c].flow.metric.name() != "adaptive");
    let mut colour_of = vec![0; configs.len()];
    for (k, &c) in order.iter().enumerate() {
        colour_of[c] = k;
    }
    let line = |label: String, colour: Option<usize>, dash: Dash| LegendEntry {
        label,
        glyph: LegendGlyph::Line(colour, dash),
    };
    if n_starts <= 1 {
        let styles = runs
            .iter()
            .map(|r| SeriesStyle {
                colour: colour_of[r.config],
                dash: Dash::Solid,
            })
            .collect();
        let legend = (0..configs.len())
            .map(|c| line(name(c), Some(colour_of[c]), Dash::Solid))
            .collect();
        return (styles, legend);
    }
    let by_start = configs.len() <= 4 || n_starts > 4;
    let styles = runs
        .iter()
        .map(|r| {
            let (colour, dash) = if by_start {
                (r.start, r.config)
            } else {
                (colour_of[r.config], r.start)
            };
            SeriesStyle {
                colour,
                dash: Dash::nth(dash),
            }
        })
        .collect();
    let mut legend = Vec::new();
    if by_start {
        legend.extend((0..n_starts).map(|k| line(start_name(k), Some(k), Dash::Solid)));
        legend.extend((0..configs.len()).map(|c| line(name(c), None, Dash::nth(c))));
    } else {
        legend.extend((0..configs.len()).map(|c| line(name(c), Some(colour_of[c]), Dash::Solid)));
        legend.extend((0..n_starts).map(|k| line(start_name(k), None, Dash::nth(k))));
    }
    (styles, legend)
}

fn series(runs: &[ComparedRun], f: impl Fn(&ComparedRun) -> Vec<(f64, f64)>) -> Vec<Series> {
    runs.iter()
        .map(|r| Series {
            label: r.label.clone(),
            points: f(r),
        })
        .collect()
}
