//! The figures of a study: titles, the loss-gap and parameter-plane figures of a set of
//! trajectories, and the figure set `fisher-flow run` writes ([`write_run_figures`]), so that a
//! library user draws the same pictures as the binary.
//!
//! The loss-gap figure draws L(θ(t)) − L* on a log axis with the evaluation's noise floor
//! ε_eval·|L*| as a band ([`noise_floor`]); without a reference L* it draws L itself.

use crate::config::Experiment;
use crate::error::Result;
use crate::flow::FlowSettings;
use crate::geometry::correction::Correction;
use crate::metric::MetricKind;
use crate::model::{GaussianMixture, StatModel, VariationalGaussian};
use crate::optimize::Method;
use crate::plot::{self, LossFigure, PlaneFigure, Series};
use crate::study::{Case, Runner};
use crate::trajectory::Trajectory;
use std::path::Path;

/// Step cap of the Euclidean comparison flow in the VI figure.
pub const EUCLIDEAN_STEPS_MAX: usize = 500;

/// Grid points per axis of the loss heat map under the parameter-plane figure.
const PLANE_GRID: usize = 90;

/// The parameter-plane figure of a mixture run: the trajectories over the loss heat map on
/// `exp`'s plot range (else the trajectories' and optima's bounding square, padded by 8 %),
/// the optima and the singular line, titled [`run_title`].
pub fn plane_figure(
    exp: &Experiment,
    model: &GaussianMixture,
    trajectories: &[Trajectory],
) -> PlaneFigure {
    let optima = model.optima();
    let (lo, hi) = exp.plot_range.unwrap_or_else(|| {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        let pts = trajectories
            .iter()
            .flat_map(|t| t.steps.iter().map(|s| s.theta.clone()))
            .chain(optima.iter().cloned());
        for p in pts {
            for v in p {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        let pad = 0.08 * (hi - lo).max(1.0);
        (lo - pad, hi + pad)
    });
    let n = PLANE_GRID;
    let grid: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            let y = lo + (hi - lo) * j as f64 / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    let x = lo + (hi - lo) * i as f64 / (n - 1) as f64;
                    model.loss(&[x, y])
                })
                .collect()
        })
        .collect();
    PlaneFigure {
        title: plane_title(&run_title(exp), model),
        x_label: "μ₁".into(),
        y_label: "μ₂".into(),
        x_range: (lo, hi),
        y_range: (lo, hi),
        loss_grid: grid,
        targets: optima.iter().map(|t| (t[0], t[1])).collect(),
        singular_line: true,
        trajectories: trajectories
            .iter()
            .enumerate()
            .map(|(i, t)| Series {
                label: start_label(i, &t.start),
                points: t.steps.iter().map(|s| (s.theta[0], s.theta[1])).collect(),
            })
            .collect(),
        ..PlaneFigure::default()
    }
}

/// The title of `exp`'s flow: [`flow_title`], naming a third-order correction if there is one
/// ("Natural-gradient flow (exact Fisher) + geodesic acceleration (α = 0, τ = 1)").
pub fn run_title(exp: &Experiment) -> String {
    let base = flow_title(exp.flow.metric);
    match exp.flow.correction {
        Correction::None => base,
        Correction::GeodesicAcceleration { alpha, tau } => {
            format!("{base} + geodesic acceleration (α = {alpha}, τ = {tau})")
        }
    }
}

/// The title of a flow under `metric`: "Euclidean-gradient flow" for the identity metric,
/// else "Natural-gradient flow (… Fisher)" naming the approximation.
pub fn flow_title(metric: MetricKind) -> String {
    use MetricKind as M;
    let which = match metric {
        M::Euclidean => return "Euclidean-gradient flow".into(),
        M::Exact => "exact Fisher",
        M::Sampled => "sampled Fisher",
        M::Empirical => "empirical Fisher",
        M::Diagonal => "diagonal Fisher",
        M::BlockDiagonal => "block-diagonal Fisher",
        M::Kfac => "K-FAC Fisher",
        M::Adaptive => "adaptive Fisher fidelity",
    };
    format!("Natural-gradient flow ({which})")
}

/// "HEAD, σ = …, w = …, target (…, …)": the title of a parameter-plane figure.
pub fn plane_title(head: &str, model: &GaussianMixture) -> String {
    // A typographic minus in the numbers (not in the head, e.g. "Natural-gradient").
    let num = |x: f64| format!("{x}").replace('-', "−");
    format!(
        "{head}, σ = {}, w = {}, target ({}, {})",
        num(model.sigma),
        num(model.w),
        num(model.target[0]),
        num(model.target[1])
    )
}

/// The title of a discrete method: "Gradient descent", "Fisher-diagonal descent" or
/// "Natural-gradient descent (… Fisher)".
pub fn method_title(method: Method, metric: MetricKind) -> String {
    match method {
        Method::Gd => "Gradient descent".into(),
        Method::FisherDiag => "Fisher-diagonal descent".into(),
        Method::Ngd => flow_title(metric).replace("flow", "descent"),
    }
}

/// `s` with its first character in lower case ("Natural-gradient flow (exact Fisher)" →
/// "natural-gradient flow (exact Fisher)").
pub fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// The evaluation's noise floor of L − L*: the model's stated relative error of the loss
/// (quadrature) times |L*|, at least 4 ulp of |L*|.
pub fn noise_floor(model: &dyn StatModel, l_star: f64) -> f64 {
    let rel = model.evaluation_error().max(4.0 * f64::EPSILON);
    rel * l_star.abs().max(f64::MIN_POSITIVE)
}

/// L − L* against time (log axis with the noise floor as a band) when a reference L* is known
/// (the model's optimum or a given one); otherwise L itself (log axis when every L > 0).
pub fn loss_figure(
    exp: &Experiment,
    trajectories: &[Trajectory],
    l_star: Option<f64>,
) -> LossFigure {
    let series = |f: &dyn Fn(f64) -> f64| -> Vec<Series> {
        trajectories
            .iter()
            .enumerate()
            .map(|(i, t)| Series {
                label: start_label(i, &t.start),
                points: t.steps.iter().map(|s| (s.t, f(s.loss))).collect(),
            })
            .collect()
    };
    let along = format!(
        "{}, {}",
        lower_first(&run_title(exp)),
        exp.flow.solver.name()
    );
    match l_star {
        Some(ls) => {
            let floor = noise_floor(&exp.model, ls);
            LossFigure {
                title: format!("Loss gap along the {along}"),
                x_label: "t".into(),
                y_label: "L − L*".into(),
                series: series(&|l| l - ls),
                noise_floor: Some(floor),
                noise_label: format!("noise floor {floor:.1e} (evaluation error × |L*|)"),
                ..LossFigure::default()
            }
        }
        None => {
            let positive = trajectories
                .iter()
                .flat_map(|t| t.steps.iter())
                .all(|s| !s.loss.is_finite() || s.loss > 0.0);
            LossFigure {
                title: format!("Loss along the {along} (no reference L*: see --l-star)"),
                x_label: "t".into(),
                y_label: "L".into(),
                series: series(&|l| l),
                linear_y: !positive,
                ..LossFigure::default()
            }
        }
    }
}

/// Legend label of a trajectory: its start for the mixture, its index for larger models.
pub fn start_label(i: usize, start: &[f64]) -> String {
    if start.len() == 2 {
        format!("start ({:.2}, {:.2})", start[0], start[1]).replace('-', "−")
    } else {
        format!("start {i}")
    }
}

/// The variational family's figures: q's ellipses over the exact posterior's 2-D marginal
/// (the last two coordinates of z; none for d = 1), and KL[q‖p] against t for the natural and
/// the Euclidean flow from the same starts (the one this run did not integrate is integrated
/// here with the same settings, through the study [`Runner`]). Returns the files written.
pub fn vi_figures(
    exp: &Experiment,
    vi: &VariationalGaussian,
    trajectories: &[Trajectory],
    out: &Path,
) -> Result<Vec<&'static str>> {
    let mut files = Vec::new();
    let d = vi.d();
    let dims = if d >= 2 { (d - 2, d - 1) } else { (0, 0) };
    if d >= 2 {
        let title = format!(
            "q = N(m, S) over the posterior, {} ({} chart)",
            lower_first(&flow_title(exp.flow.metric)),
            vi.coords.chart.name(),
        );
        let fig = plot::vi::posterior_plane(vi, dims, trajectories, &title);
        for ext in ["svg", "png"] {
            plot::plane(&out.join(format!("vi-ellipses.{ext}")), &fig)?;
        }
        files.extend(["vi-ellipses.svg", "vi-ellipses.png"]);
    }
    // The other flow from the same starts: Euclidean beside a natural run, the exact
    // natural flow beside a Euclidean run. The Euclidean one is capped: in badly scaled
    // charts it is stiff and an explicit solver would crawl (its curve then ends where the
    // cap stopped it, and the legend says so).
    let euclidean_run = exp.flow.metric == MetricKind::Euclidean;
    let settings = FlowSettings {
        metric: if euclidean_run {
            MetricKind::Exact
        } else {
            MetricKind::Euclidean
        },
        max_steps: if euclidean_run {
            exp.flow.max_steps
        } else {
            exp.flow.max_steps.min(EUCLIDEAN_STEPS_MAX)
        },
        ..exp.flow.clone()
    };
    let cases: Vec<Case<'_>> = exp
        .starts
        .iter()
        .enumerate()
        .map(|(i, s)| Case::new(format!("#{i}"), vi, settings.clone(), s.clone()))
        .collect();
    let other = crate::study::trajectories(Runner::new().run(&cases, &[])?)?;
    let (natural, euclidean) = if euclidean_run {
        (other, trajectories.to_vec())
    } else {
        (trajectories.to_vec(), other)
    };
    let fig = plot::vi::elbo_figure(vi, &natural, &euclidean);
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("vi-elbo.{ext}")), &fig)?;
    }
    files.extend(["vi-elbo.svg", "vi-elbo.png"]);
    Ok(files)
}

/// The figures `fisher-flow run` writes into `out` for `trajectories` of `exp`: the parameter
/// plane (`trajectory.svg/png`, mixture only), the loss (gap) figure (`loss.svg/png`, against
/// `l_star` when given) and the variational family's [`vi_figures`]. Returns the files written,
/// in order.
pub fn write_run_figures(
    exp: &Experiment,
    trajectories: &[Trajectory],
    l_star: Option<f64>,
    out: &Path,
) -> Result<Vec<&'static str>> {
    let mut files = Vec::new();
    let loss = loss_figure(exp, trajectories, l_star);
    if let Some(mixture) = exp.model.as_mixture() {
        let plane = plane_figure(exp, mixture, trajectories);
        for ext in ["svg", "png"] {
            plot::plane(&out.join(format!("trajectory.{ext}")), &plane)?;
        }
        files.extend(["trajectory.svg", "trajectory.png"]);
    }
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("loss.{ext}")), &loss)?;
    }
    files.extend(["loss.svg", "loss.png"]);
    if let Some(vi) = exp.model.as_variational() {
        files.extend(vi_figures(exp, vi, trajectories, out)?);
    }
    Ok(files)
}
