//! `fisher-flow run`: integrate from every start, write trajectories, certificate and plots.

use crate::cli::{CorrectionOverrides, FlowOverrides, ModelOverrides, SaveOverrides};
use crate::cli::{num, say};
use clap::Args;
use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::export::{OutDir, write_json};
use fisher_flow::flow::Simulator;
use fisher_flow::model::StatModel;
pub(crate) use fisher_flow::study::compare::fmt_vec;
use fisher_flow::study::figures;
pub(crate) use fisher_flow::study::figures::{
    loss_figure, lower_first, method_title, plane_figure, plane_title, start_label,
};
use fisher_flow::study::observers::{CertificateBuilder, Progress, TrajectoryExporter};
use fisher_flow::study::{Case, Runner};
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
    // The settings' checks before touching the output directory (errors name the flags).
    Simulator::new(model, exp.flow.clone()).map_err(|e| crate::cli::blame_flag(e, &ov))?;
    let out_dir = OutDir::open(&args.out, "--out")?;
    // One case per start, observed by the certificate builder, the trajectory exporter and
    // (stderr, only on a terminal, not with -q or --json) a progress spinner.
    let cases = Case::from_experiment(&exp);
    let bar = Progress::spinner(&exp, args.quiet || args.json);
    let certifier = CertificateBuilder::new(&exp);
    let exporter = TrajectoryExporter::new();
    let outcomes = Runner::new().run(&cases, &[&bar, &certifier, &exporter])?;
    bar.finish();
    let trajectories = fisher_flow::study::trajectories(outcomes)?;
    let cert = certifier
        .finish()
        .ok_or_else(|| Error::Numerical("certificate: a trajectory is missing".into()))?;
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
    let extra = match &quality {
        Some(q) => vec![("quality", serde_json::json!(q))],
        None => Vec::new(),
    };
    let wall_times = exporter.write(&exp, extra, out)?;
    // A certificate re-checks every accepted step; thinned output (--save-every, --save-at)
    // records only some of them, so no certificate is written for it.
    let thinned = exp.flow.save_every > 1 || !exp.flow.save_at.is_empty();
    // Nor for a metric that `verify` has no independent re-evaluation of.
    let uncheckable = fisher_flow::certificate::verify::cannot_recheck(&exp);
    let thinned = thinned || uncheckable.is_some();
    if !thinned {
        write_json(&out.join("certificate.json"), &cert)?;
    }
    let mut files: Vec<&str> = vec!["trajectory.csv", "trajectory.json"];
    if !thinned {
        files.push("certificate.json");
    }
    files.extend(figures::write_run_figures(
        &exp,
        &trajectories,
        gap_ref,
        out,
    )?);
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

/// `--l-star` must be finite.
pub(crate) fn check_l_star(l_star: Option<f64>) -> Result<()> {
    match l_star {
        Some(x) if !x.is_finite() => Err(Error::invalid("--l-star", x, "must be a finite number")),
        _ => Ok(()),
    }
}
