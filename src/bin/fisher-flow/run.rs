//! `fisher-flow run`: integrate from every start, write trajectories, certificate and plots.

use crate::cli::{CorrectionOverrides, FlowOverrides, ModelOverrides, SaveOverrides};
use crate::cli::{num, say, take_wall_times};
use clap::Args;
use fisher_flow::certificate::Monotone;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::{OutDir, trajectories_csv, write_atomic, write_json};
use fisher_flow::flow::Simulator;
use fisher_flow::model::StatModel;
use fisher_flow::plot::{self, LossFigure, PlaneFigure, Series};
use fisher_flow::trajectory::Trajectory;
use fisher_flow::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Model file (TOML)
    #[arg(default_value = "models/gmm-seed.toml")]
    pub model: PathBuf,
    /// Output directory (created if missing)
    #[arg(long, default_value = "output")]
    pub out: PathBuf,
    #[command(flatten)]
    pub overrides: ModelOverrides,
    #[command(flatten)]
    pub flow: FlowOverrides,
    #[command(flatten)]
    pub save: SaveOverrides,
    #[command(flatten)]
    pub correction: CorrectionOverrides,
    /// Start point MU1,MU2; repeat for several trajectories [default: the file's flow.starts]
    #[arg(long = "start", value_name = "MU1,MU2", allow_hyphen_values = true)]
    pub starts: Vec<String>,
    /// Jacobian of implicit solvers: exact (dual numbers) | fd [default: the file's flow.jacobian, else exact]
    #[arg(long)]
    pub jacobian: Option<String>,
    /// Move starts lying exactly on the singular line mu1 = mu2 off it by EPS [default: off]
    #[arg(long, value_name = "EPS", allow_hyphen_values = true)]
    pub perturb: Option<f64>,
    /// Disable the singularity-aware step control [default: enabled]
    #[arg(long = "no-step-control")]
    pub no_step_control: bool,
    /// Do not print the per-trajectory summary
    #[arg(long, short)]
    pub quiet: bool,
    /// Also measure the metric's approximation quality at every step against the exact
    /// Fisher (angle of natural gradients, relative Frobenius error; n ≤ 2000): written to
    /// quality.csv, trajectory.json and quality-angle/quality-frobenius.svg/png [default: off]
    #[arg(long)]
    pub quality: bool,
    /// Reference optimal loss L* for the loss-gap figure and summaries (models without a known
    /// optimum, e.g. an MLP: take it from a long, tight run) [default: the model's optimum;
    /// none: the figure shows L itself]
    #[arg(long = "l-star", value_name = "X", allow_hyphen_values = true)]
    pub l_star: Option<f64>,
    /// Also write the Fisher-manifold figure (default view) as manifold.svg/png
    /// [default: off; on for the no-argument demo]
    #[arg(long)]
    pub manifold: bool,
    /// Print one JSON summary on stdout (settings, and per trajectory its end, loss, retcode,
    /// stop reason and statistics) instead of the text summary [default: text]
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// The demo: `run models/gmm-seed.toml --out output`.
    pub fn demo() -> RunArgs {
        RunArgs {
            model: PathBuf::from("models/gmm-seed.toml"),
            out: PathBuf::from("output"),
            overrides: ModelOverrides::default(),
            flow: FlowOverrides::default(),
            save: SaveOverrides::default(),
            correction: CorrectionOverrides::default(),
            starts: Vec::new(),
            jacobian: None,
            perturb: None,
            no_step_control: false,
            quiet: false,
            quality: false,
            l_star: None,
            manifold: true,
            json: false,
        }
    }
}

/// Every file `run` may write into `--out` (removed before a run writes, so that a directory
/// never mixes two runs).
pub const RUN_OUTPUTS: &[&str] = &[
    "trajectory.csv",
    "trajectory.json",
    "certificate.json",
    "trajectory.svg",
    "trajectory.png",
    "loss.svg",
    "loss.png",
    "quality.csv",
    "quality-angle.svg",
    "quality-angle.png",
    "quality-frobenius.svg",
    "quality-frobenius.png",
    "manifold.svg",
    "manifold.png",
    "vi-ellipses.svg",
    "vi-ellipses.png",
    "vi-elbo.svg",
    "vi-elbo.png",
    "timings.json",
];

pub fn run(args: &RunArgs) -> Result<()> {
    if crate::density::is_density(&args.model) {
        return crate::density::run(args);
    }
    let clock = Instant::now();
    crate::cli::set_json_mode(args.json);
    let starts = crate::cli::parse_starts(&args.starts)?;
    crate::run::check_l_star(args.l_star)?;
    let ov = Overrides {
        starts,
        ..args
            .correction
            .apply(args.save.apply(args.flow.apply(args.overrides.overrides())))
    };
    let mut exp = Experiment::load(&args.model, &ov)?;
    crate::cli::check_nodes(&exp, args.overrides.nodes)?;
    crate::integrate::apply_flags(
        &mut exp,
        args.jacobian.as_deref(),
        args.no_step_control,
        args.perturb,
    )?;
    if let Some(fisher_flow::model::LossKind::Empirical { seed, samples }) =
        exp.model.as_mixture().map(|m| &m.loss_kind)
    {
        say(format!(
            "empirical loss: {} samples drawn from the target with seed {seed}",
            samples.len()
        ));
    }
    crate::quality::announce_seed(&exp);
    let model = &exp.model;
    // Long runs show where they are (stderr, only on a terminal, not with -q or --json).
    let bar = progress_bar(args.quiet || args.json);
    let current = std::sync::atomic::AtomicUsize::new(0);
    let (n_starts, t_end, cap) = (exp.starts.len(), exp.flow.t_end, exp.flow.max_steps);
    let sim = Simulator::new(model, exp.flow.clone())
        .map_err(|e| crate::cli::blame_flag(e, &ov))?
        .with_progress(|steps, t| {
            let i = current.load(std::sync::atomic::Ordering::Relaxed);
            bar.set_message(format!(
                "trajectory {}/{n_starts}: t = {t:.4e} of {t_end:e}, {steps} of at most {cap} steps",
                i + 1
            ));
            bar.tick();
        });
    let out_dir = OutDir::open(&args.out, "--out")?;
    let trajectories = exp
        .starts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            current.store(i, std::sync::atomic::Ordering::Relaxed);
            sim.run(s)
        })
        .collect::<Result<Vec<Trajectory>>>()?;
    bar.finish_and_clear();
    let cert = Monotone::build(&exp, model, &trajectories);
    let l_star = model.optimal_loss();
    // The reference of the loss gap: --l-star, else the model's optimum.
    let gap_ref = args.l_star.or(l_star);
    let quality = if args.quality {
        Some(crate::quality::along(&exp, &trajectories)?)
    } else {
        None
    };

    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    write_atomic(
        &out.join("trajectory.csv"),
        trajectories_csv(&trajectories).as_bytes(),
    )?;
    let mut traj_json = serde_json::json!(trajectories);
    let wall_times = take_wall_times(&mut traj_json);
    let mut doc = serde_json::json!({
        "model_file": exp.path.display().to_string(),
        "model_sha256": exp.file_hash,
        "settings": exp.flow,
        "quadrature": model.describe(),
        "optimal_loss": l_star,
        "optima": model.optima(),
        "trajectories": traj_json,
    });
    if let (Some(q), Some(map)) = (&quality, doc.as_object_mut()) {
        map.insert("quality".into(), serde_json::json!(q));
    }
    write_json(&out.join("trajectory.json"), &doc)?;
    // A certificate re-checks every accepted step; thinned output (--save-every, --save-at)
    // records only some of them, so no certificate is written for it.
    let thinned = exp.flow.save_every > 1 || !exp.flow.save_at.is_empty();
    // Nor for a metric that `verify` has no independent re-evaluation of.
    let uncheckable = fisher_flow::certificate::verify::cannot_recheck(&exp);
    let thinned = thinned || uncheckable.is_some();
    if !thinned {
        write_json(&out.join("certificate.json"), &cert)?;
    }
    let loss = loss_figure(&exp, &trajectories, gap_ref);
    let mut files: Vec<&str> = vec!["trajectory.csv", "trajectory.json"];
    if !thinned {
        files.push("certificate.json");
    }
    if let Some(mixture) = model.as_mixture() {
        let plane = plane_figure(&exp, mixture, &trajectories);
        for ext in ["svg", "png"] {
            plot::plane(&out.join(format!("trajectory.{ext}")), &plane)?;
        }
        files.extend(["trajectory.svg", "trajectory.png"]);
    }
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("loss.{ext}")), &loss)?;
    }
    files.extend(["loss.svg", "loss.png"]);
    if let Some(vi) = model.as_variational() {
        vi_figures(&exp, vi, &trajectories, out)?;
        if vi.d() >= 2 {
            files.extend(["vi-ellipses.svg", "vi-ellipses.png"]);
        }
        files.extend(["vi-elbo.svg", "vi-elbo.png"]);
    }
    if let Some(q) = &quality {
        crate::quality::write(out, &exp, &trajectories, q)?;
        files.extend([
            "quality.csv",
            "quality-angle.svg",
            "quality-angle.png",
            "quality-frobenius.svg",
            "quality-frobenius.png",
        ]);
    }

    if args.manifold {
        crate::manifold::write_default_manifold(&exp, out)?;
        files.extend(["manifold.svg", "manifold.png"]);
    }
    files.push("timings.json");
    let total = clock.elapsed().as_secs_f64();
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({
            "command": "run",
            "total_seconds": total,
            "trajectory_wall_seconds": wall_times,
        }),
    )?;

    if args.json {
        let list: Vec<serde_json::Value> = trajectories
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = crate::cli::trajectory_summary(i, t, l_star);
                if let (Some(map), Some(c)) = (v.as_object_mut(), cert.trajectories.get(i)) {
                    map.insert("monotone".into(), serde_json::json!(c.monotone));
                }
                v
            })
            .collect();
        crate::cli::print_json(&serde_json::json!({
            "command": "run",
            "model_file": exp.path.display().to_string(),
            "model_sha256": exp.file_hash,
            "settings": exp.flow,
            "optimal_loss": l_star,
            "monotone": cert.monotone,
            "certificate_written": !thinned,
            "succeeded": trajectories.iter().all(|t| t.succeeded()),
            "trajectories": list,
            "out": out.display().to_string(),
            "files": files,
        }))?;
    } else {
        if !args.quiet {
            println!(
                "model {} | metric {} | solver {} | rtol {:e} atol {:e} | quadrature {}",
                exp.path.display(),
                exp.flow.metric.name(),
                exp.flow.solver.name(),
                exp.flow.rtol,
                exp.flow.atol,
                model.describe()
            );
            for (i, (tr, ct)) in trajectories.iter().zip(&cert.trajectories).enumerate() {
                println!("{}", summary_line(i, tr, ct.monotone, gap_ref));
                if let (Some(vi), Some(end)) = (model.as_variational(), tr.last())
                    && let (Some(kl), Some(p)) = (vi.kl(&end.theta), &vi.posterior)
                {
                    println!(
                        "[{i}] KL[q||p] = -ELBO + log Z = {kl:.6e} at t = {:.3} (log Z = {:.9}, {})",
                        end.t, p.log_z, p.method
                    );
                }
                for e in tr.events.iter().filter(|e| e.kind == "on-singular-line") {
                    println!("[{i}] {}", e.detail);
                }
            }
        }
        println!(
            "certificate: {} | wrote {} ({}) | total wall time {:.3} s",
            if let Some(why) = uncheckable {
                format!("not written (verify has no independent re-check of {why})")
            } else if thinned {
                "not written (--save-every/--save-at record only some steps; a certificate needs every accepted step)".to_string()
            } else if !cert.complete {
                "INCOMPLETE (a trajectory did not finish: nothing certified)".to_string()
            } else if cert.monotone {
                "monotone: true".to_string()
            } else {
                "monotone: FALSE".to_string()
            },
            out.display(),
            files.join(", "),
            total
        );
    }
    unfinished(&trajectories)
}

/// Step cap of the Euclidean comparison flow in the VI figure.
const EUCLIDEAN_STEPS_MAX: usize = 500;

/// The variational family's figures: q's ellipses over the exact posterior's 2-D marginal
/// (the last two coordinates of z; none for d = 1), and KL[q‖p] against t for the natural and the Euclidean
/// flow from the same starts (the one this run did not integrate is integrated here with the
/// same settings).
fn vi_figures(
    exp: &Experiment,
    vi: &fisher_flow::model::VariationalGaussian,
    trajectories: &[Trajectory],
    out: &std::path::Path,
) -> Result<()> {
    use fisher_flow::metric::MetricKind;
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
    }
    // The other flow from the same starts: Euclidean beside a natural run, the exact
    // natural flow beside a Euclidean run. The Euclidean one is capped: in badly scaled
    // charts it is stiff and an explicit solver would crawl (its curve then ends where the
    // cap stopped it, and the legend says so).
    let euclidean_run = exp.flow.metric == MetricKind::Euclidean;
    let settings = fisher_flow::flow::FlowSettings {
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
    let sim = Simulator::new(vi, settings)?;
    let other = exp
        .starts
        .iter()
        .map(|s| sim.run(s))
        .collect::<Result<Vec<Trajectory>>>()?;
    let (natural, euclidean) = if euclidean_run {
        (other, trajectories.to_vec())
    } else {
        (trajectories.to_vec(), other)
    };
    let fig = plot::vi::elbo_figure(vi, &natural, &euclidean);
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("vi-elbo.{ext}")), &fig)?;
    }
    Ok(())
}

/// A spinner with a message on stderr, hidden when `hide` or when stderr is not a terminal.
pub(crate) fn progress_bar(hide: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = indicatif::ProgressBar::new_spinner();
    if hide || !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
    {
        bar.set_style(style);
    }
    bar
}

/// `Err(Unfinished)` (exit 1) naming every trajectory that did not end as asked.
pub(crate) fn unfinished(trajectories: &[Trajectory]) -> Result<()> {
    let bad: Vec<String> = trajectories
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.succeeded())
        .map(|(i, t)| format!("[{i}] {} ({})", t.retcode(), t.stop))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Unfinished(format!(
            "{} of {} trajectories did not finish: {}",
            bad.len(),
            trajectories.len(),
            bad.join("; ")
        )))
    }
}

pub(crate) fn fmt_vec(v: &[f64]) -> String {
    if v.len() > 4 {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        return format!("(n = {}, |θ| = {})", v.len(), num(norm, 6));
    }
    let parts: Vec<String> = v.iter().map(|&x| num(x, 6)).collect();
    format!("({})", parts.join(", "))
}

/// One line per trajectory: start, end, final loss, steps, rejections, rhs evaluations,
/// certificate verdict, wall time.
fn summary_line(i: usize, tr: &Trajectory, monotone: bool, l_star: Option<f64>) -> String {
    let end = tr.last().map(|s| s.theta.clone()).unwrap_or_default();
    let loss = tr.last().map(|s| s.loss).unwrap_or(f64::NAN);
    let gap = l_star
        .map(|l| format!(" (L-L* {:.2e})", loss - l))
        .unwrap_or_default();
    format!(
        "[{i}] start {} -> end {} | loss {}{gap} | t {} | {} | steps {} | rejected {} | rhs evals {} | jacobians {} | factorizations {} | switches {} | near-singular t {} | monotone {} | {} | {:.1} ms",
        fmt_vec(&tr.start),
        fmt_vec(&end),
        num(loss, 12),
        num(tr.last().map(|s| s.t).unwrap_or(0.0), 3),
        tr.retcode(),
        tr.stats.accepted,
        tr.stats.rejected,
        tr.stats.rhs_evals,
        tr.stats.jacobians,
        tr.stats.factorizations,
        tr.stats.solver_switches,
        num(tr.stats.time_near_singular, 3),
        monotone,
        tr.stop,
        tr.stats.wall_time * 1e3
    )
}

pub(crate) fn plane_figure(
    exp: &Experiment,
    model: &fisher_flow::model::GaussianMixture,
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
    let n = 90;
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
fn run_title(exp: &Experiment) -> String {
    use fisher_flow::geometry::correction::Correction;
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
pub(crate) fn flow_title(metric: fisher_flow::metric::MetricKind) -> String {
    use fisher_flow::metric::MetricKind as M;
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
pub(crate) fn plane_title(head: &str, model: &fisher_flow::model::GaussianMixture) -> String {
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
pub(crate) fn method_title(
    method: fisher_flow::optimize::Method,
    metric: fisher_flow::metric::MetricKind,
) -> String {
    use fisher_flow::optimize::Method;
    match method {
        Method::Gd => "Gradient descent".into(),
        Method::FisherDiag => "Fisher-diagonal descent".into(),
        Method::Ngd => flow_title(metric).replace("flow", "descent"),
    }
}

/// `s` with its first character in lower case ("Natural-gradient flow (exact Fisher)" →
/// "natural-gradient flow (exact Fisher)").
pub(crate) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// `--l-star` must be finite.
pub(crate) fn check_l_star(l_star: Option<f64>) -> Result<()> {
    match l_star {
        Some(x) if !x.is_finite() => Err(Error::invalid("--l-star", x, "must be a finite number")),
        _ => Ok(()),
    }
}

/// The evaluation's noise floor of L − L*: the model's stated relative error of the loss
/// (quadrature) times |L*|, at least 4 ulp of |L*|.
pub(crate) fn noise_floor(model: &dyn StatModel, l_star: f64) -> f64 {
    let rel = model.evaluation_error().max(4.0 * f64::EPSILON);
    rel * l_star.abs().max(f64::MIN_POSITIVE)
}

/// L − L* against time (log axis with the noise floor as a band) when a reference L* is known
/// (the model's optimum or `--l-star`); otherwise L itself (log axis when every L > 0).
pub(crate) fn loss_figure(
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
