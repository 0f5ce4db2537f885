//! `fisher-flow run`: integrate from every start, write trajectories, certificate and plots.

use crate::cli::{FlowOverrides, ModelOverrides};
use clap::Args;
use fisher_flow::certificate::Monotone;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::{trajectories_csv, write_atomic, write_json};
use fisher_flow::flow::Simulator;
use fisher_flow::model::StatModel;
use fisher_flow::plot::{self, LossFigure, PlaneFigure, Series};
use fisher_flow::trajectory::Trajectory;
use fisher_flow::{Error, Result};
use std::path::Path;
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
    /// Also write the Fisher-manifold figure (default view) as manifold.svg/png
    /// [default: off; on for the no-argument demo]
    #[arg(long)]
    pub manifold: bool,
}

impl RunArgs {
    /// The demo: `run models/gmm-seed.toml --out output`.
    pub fn demo() -> RunArgs {
        RunArgs {
            model: PathBuf::from("models/gmm-seed.toml"),
            out: PathBuf::from("output"),
            overrides: ModelOverrides::default(),
            flow: FlowOverrides::default(),
            starts: Vec::new(),
            jacobian: None,
            perturb: None,
            no_step_control: false,
            quiet: false,
            quality: false,
            manifold: true,
        }
    }
}

pub fn run(args: &RunArgs) -> Result<()> {
    let clock = Instant::now();
    let starts = crate::cli::parse_starts(&args.starts)?;
    let ov = Overrides {
        starts,
        ..args.flow.apply(args.overrides.overrides())
    };
    let mut exp = Experiment::load(&args.model, &ov)?;
    crate::integrate::apply_flags(
        &mut exp,
        args.jacobian.as_deref(),
        args.no_step_control,
        args.perturb,
    )?;
    prepare_out_dir(&args.out)?;
    if let Some(fisher_flow::model::LossKind::Empirical { seed, samples }) =
        exp.model.as_mixture().map(|m| &m.loss_kind)
    {
        println!(
            "empirical loss: {} samples drawn from the target with seed {seed}",
            samples.len()
        );
    }
    crate::quality::announce_seed(&exp);
    let model = &exp.model;
    let sim = Simulator::new(model, exp.flow.clone())?;
    let trajectories = exp
        .starts
        .iter()
        .map(|s| sim.run(s))
        .collect::<Result<Vec<Trajectory>>>()?;
    let cert = Monotone::build(&exp, model, &trajectories);
    let l_star = model.optimal_loss();
    let quality = if args.quality {
        Some(crate::quality::along(&exp, &trajectories)?)
    } else {
        None
    };

    let out = &args.out;
    write_atomic(
        &out.join("trajectory.csv"),
        trajectories_csv(&trajectories).as_bytes(),
    )?;
    let mut doc = serde_json::json!({
        "model_file": exp.path.display().to_string(),
        "model_sha256": exp.file_hash,
        "settings": exp.flow,
        "quadrature": model.describe(),
        "optimal_loss": l_star,
        "optima": model.optima(),
        "trajectories": trajectories,
    });
    if let (Some(q), Some(map)) = (&quality, doc.as_object_mut()) {
        map.insert("quality".into(), serde_json::json!(q));
    }
    write_json(&out.join("trajectory.json"), &doc)?;
    write_json(&out.join("certificate.json"), &cert)?;
    let loss = loss_figure(&exp, &trajectories, l_star);
    let mut wrote =
        "trajectory.csv/json, certificate.json, trajectory.svg/png, loss.svg/png".to_string();
    if let Some(mixture) = model.as_mixture() {
        let plane = plane_figure(&exp, mixture, &trajectories);
        for ext in ["svg", "png"] {
            plot::plane(&out.join(format!("trajectory.{ext}")), &plane)?;
        }
    } else {
        wrote = "trajectory.csv/json, certificate.json, loss.svg/png".to_string();
    }
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("loss.{ext}")), &loss)?;
    }
    if let Some(q) = &quality {
        crate::quality::write(out, &exp, &trajectories, q)?;
        wrote.push_str(", quality.csv, quality-angle.svg/png, quality-frobenius.svg/png");
    }

    if args.manifold {
        crate::manifold::write_default_manifold(&exp, out)?;
        wrote.push_str(", manifold.svg/png");
    }

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
            println!("{}", summary_line(i, tr, ct.monotone, l_star));
            for e in tr.events.iter().filter(|e| e.kind == "on-singular-line") {
                println!("[{i}] {}", e.detail);
            }
        }
    }
    println!(
        "certificate: {} | wrote {} ({wrote}) | total wall time {:.3} s",
        if !cert.complete {
            "INCOMPLETE (a trajectory did not finish: nothing certified)"
        } else if cert.monotone {
            "monotone: true"
        } else {
            "monotone: FALSE"
        },
        out.display(),
        clock.elapsed().as_secs_f64()
    );
    unfinished(&trajectories)
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

pub(crate) fn prepare_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    // Probe writability now, before any computation, so the error is immediate and clear.
    let probe = out.join(".fisher-flow-write-test");
    std::fs::write(&probe, b"").map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub(crate) fn fmt_vec(v: &[f64]) -> String {
    if v.len() > 4 {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        return format!("(n = {}, |θ| = {norm:.6})", v.len());
    }
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
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
        "[{i}] start {} -> end {} | loss {loss:.12}{gap} | t {:.3} | steps {} | rejected {} | rhs evals {} | jacobians {} | factorizations {} | switches {} | near-singular t {:.3} | monotone {} | {} | {:.1} ms",
        fmt_vec(&tr.start),
        fmt_vec(&end),
        tr.last().map(|s| s.t).unwrap_or(0.0),
        tr.stats.accepted,
        tr.stats.rejected,
        tr.stats.rhs_evals,
        tr.stats.jacobians,
        tr.stats.factorizations,
        tr.stats.solver_switches,
        tr.stats.time_near_singular,
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
        title: format!(
            "{} flow, σ = {}, w = {}, target ({}, {})",
            if exp.flow.metric.name() == "exact" {
                "Natural-gradient"
            } else {
                "Euclidean-gradient"
            },
            model.sigma,
            model.w,
            model.target[0],
            model.target[1]
        ),
        x_label: "μ₁".into(),
        y_label: "μ₂".into(),
        x_range: (lo, hi),
        y_range: (lo, hi),
        loss_grid: grid,
        targets: optima.iter().map(|t| (t[0], t[1])).collect(),
        singular_line: true,
        trajectories: trajectories
            .iter()
            .map(|t| Series {
                label: format!("start ({:.2}, {:.2})", t.start[0], t.start[1]),
                points: t.steps.iter().map(|s| (s.theta[0], s.theta[1])).collect(),
            })
            .collect(),
    }
}

pub(crate) fn loss_figure(
    exp: &Experiment,
    trajectories: &[Trajectory],
    l_star: Option<f64>,
) -> LossFigure {
    let ls = l_star.unwrap_or_else(|| {
        trajectories
            .iter()
            .filter_map(|t| t.last().map(|s| s.loss))
            .fold(f64::INFINITY, f64::min)
    });
    LossFigure {
        title: format!(
            "Loss gap along the {} flow ({})",
            exp.flow.metric.name(),
            exp.flow.solver.name()
        ),
        x_label: "t".into(),
        y_label: "L − L*".into(),
        series: trajectories
            .iter()
            .enumerate()
            .map(|(i, t)| Series {
                label: start_label(i, &t.start),
                points: t.steps.iter().map(|s| (s.t, s.loss - ls)).collect(),
            })
            .collect(),
    }
}

/// Legend label of a trajectory: its start for the mixture, its index for larger models.
pub fn start_label(i: usize, start: &[f64]) -> String {
    if start.len() == 2 {
        format!("start ({:.2}, {:.2})", start[0], start[1])
    } else {
        format!("start {i}")
    }
}
