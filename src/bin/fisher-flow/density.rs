//! `run` and `compare` for model files of family "density": the Fisher–Rao, Wasserstein and
//! Wasserstein–Fisher–Rao flows of KL(ρ‖π) on a grid (see `fisher_flow::density`).
//!
//! `run` integrates all three flows, writes the densities of the file's flow (`density.csv`,
//! columns `t,x,rho` or `t,x,y,rho`, at the save times), KL and mass after every accepted step
//! of every flow (`kl.csv`), a summary (`density.json`), the monotone-KL certificate of the
//! three flows (`certificate.json`, see `fisher_flow::certificate::density`), the snapshots (`density.svg/png` in
//! 1-D; `density-K.svg/png` heat maps in 2-D), KL(t) of the three flows (`kl.svg/png`) and,
//! when target and start are mixtures of one σ and w, the bridge to the parametric mixture
//! flow (`bridge.svg/png`). `compare` runs the flows named by `--metrics` and writes
//! `compare.md`, `compare.json` and `compare-loss.svg/png` (KL against t).

use crate::cli::{num, say};
use crate::compare::CompareArgs;
use crate::run::RunArgs;
use fisher_flow::certificate::density::DensityCertificate;
use fisher_flow::config::Overrides;
use fisher_flow::density::study::{Bridge, bridge};
use fisher_flow::density::{DensityExperiment, DensityPath, FlowKind, fisher_rao_exact, integrate};
use fisher_flow::export::{OutDir, write_atomic, write_json};
use fisher_flow::flow::SolverKind;
use fisher_flow::plot::{self, Dash, LossFigure, PlaneFigure, Series, SeriesStyle};
use fisher_flow::{Error, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Every file the density `run` may write.
pub const DENSITY_OUTPUTS: &[&str] = &[
    "density.csv",
    "kl.csv",
    "density.json",
    "density.svg",
    "density.png",
    "density-0.svg",
    "density-0.png",
    "density-1.svg",
    "density-1.png",
    "density-2.svg",
    "density-2.png",
    "density-3.svg",
    "density-3.png",
    "density-4.svg",
    "density-4.png",
    "density-5.svg",
    "density-5.png",
    "density-target.svg",
    "density-target.png",
    "kl.svg",
    "kl.png",
    "bridge.svg",
    "bridge.png",
];

/// Most snapshot figures (2-D heat maps), picked evenly from the save times.
const SNAPSHOT_FIGURES_MAX: usize = 6;

/// Round-off level of the computed KL: values below are not drawn on log axes.
const KL_FLOOR: f64 = 1e-14;

/// Whether `path` names a density model file.
pub fn is_density(path: &Path) -> bool {
    fisher_flow::density::is_density_file(path)
}

/// Flags of `run` that have no meaning for the density family.
fn reject_run_flags(args: &RunArgs) -> Result<()> {
    let bad = [
        ("--jacobian", args.jacobian.is_some()),
        ("--perturb", args.perturb.is_some()),
        ("--no-step-control", args.no_step_control),
        ("--quality", args.quality),
        ("--l-star", args.l_star.is_some()),
        ("--manifold", args.manifold),
    ];
    match bad.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(Error::invalid(
            *flag,
            "set",
            "does not apply to model.family = \"density\"",
        )),
        None => Ok(()),
    }
}

/// The largest |log ρ − log ρ_exact| of the Fisher–Rao flow over its save times.
fn closed_form_error(exp: &DensityExperiment, p: &DensityPath) -> f64 {
    p.saved
        .iter()
        .map(|(t, lr)| {
            let ex = fisher_rao_exact(&exp.log_rho0, &exp.log_pi, exp.grid.volume(), *t);
            lr.iter()
                .zip(&ex)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
}

fn flow_summary(exp: &DensityExperiment, p: &DensityPath) -> serde_json::Value {
    let (monotone, worst) = p.kl_monotone(KL_FLOOR);
    let mut v = serde_json::json!({
        "flow": p.flow,
        "solver": p.solver,
        "steps": p.steps,
        "rejected": p.rejected,
        "factorizations": p.factorizations,
        "stop": p.stop,
        "t_end": p.times.last(),
        "kl_start": p.kl.first(),
        "kl_end": p.kl.last(),
        "kl_monotone": monotone,
        "kl_largest_increase": worst,
        "mass_drift": p.mass_drift(),
        "min_rho": p.min_rho.iter().copied().fold(f64::INFINITY, f64::min),
    });
    if p.flow == FlowKind::FisherRao
        && let Some(map) = v.as_object_mut()
    {
        map.insert(
            "closed_form_max_abs_error_log_rho".into(),
            serde_json::json!(closed_form_error(exp, p)),
        );
    }
    v
}

/// `fisher-flow run` on a density model file.
pub fn run(args: &RunArgs) -> Result<()> {
    let clock = std::time::Instant::now();
    crate::cli::set_json_mode(args.json);
    reject_run_flags(args)?;
    let starts = crate::cli::parse_starts(&args.starts)?;
    let ov = Overrides {
        starts,
        ..args.save.apply(args.flow.apply(args.overrides.overrides()))
    };
    let exp = DensityExperiment::load(&args.model, &ov)?;
    let out_dir = OutDir::open(&args.out, "--out")?;
    let mut paths = Vec::new();
    for flow in FlowKind::ALL {
        paths.push(integrate(
            flow,
            &exp.grid,
            &exp.log_pi,
            &exp.log_rho0,
            &exp.settings,
        )?);
    }
    let bridge = bridge(
        &exp.grid,
        &exp.target,
        &exp.start,
        exp.settings.t_end,
        exp.settings.rtol,
        exp.settings.atol,
    )?;
    let chosen = paths
        .iter()
        .find(|p| p.flow == exp.flow)
        .ok_or_else(|| Error::Numerical("the chosen flow did not run".into()))?;

    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    write_atomic(
        &out.join("density.csv"),
        density_csv(&exp, chosen).as_bytes(),
    )?;
    write_atomic(&out.join("kl.csv"), kl_csv(&paths).as_bytes())?;
    let summaries: Vec<serde_json::Value> = paths.iter().map(|p| flow_summary(&exp, p)).collect();
    let mut doc = serde_json::json!({
        "model_file": exp.path.display().to_string(),
        "model_sha256": exp.file_hash,
        "grid": { "lo": exp.grid.lo, "hi": exp.grid.hi, "points": exp.grid.n },
        "target": exp.target.describe(),
        "start": exp.start.describe(),
        "flow": exp.flow,
        "settings": exp.settings,
        "flows": summaries,
    });
    if let (Some(b), Some(map)) = (&bridge, doc.as_object_mut()) {
        map.insert("bridge".into(), serde_json::json!(b));
    }
    write_json(&out.join("density.json"), &doc)?;
    let cert = DensityCertificate::build(&exp, &paths);
    // compact: the states make it large (n values per stored step and flow)
    let cert_text = serde_json::to_string(&cert)
        .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
    write_atomic(&out.join("certificate.json"), cert_text.as_bytes())?;
    let mut files = vec!["density.csv", "kl.csv", "density.json", "certificate.json"];
    files.extend(snapshot_figures(&exp, chosen, out)?);
    let kl = kl_figure(
        &format!("KL(ρ‖π) along the three flows ({})", exp.target.describe()),
        &paths,
    );
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("kl.{ext}")), &kl)?;
    }
    files.extend(["kl.svg", "kl.png"]);
    if let Some(b) = &bridge {
        let fig = bridge_figure(&exp, b);
        for ext in ["svg", "png"] {
            plot::loss(&out.join(format!("bridge.{ext}")), &fig)?;
        }
        files.extend(["bridge.svg", "bridge.png"]);
    }
    files.push("timings.json");
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({"command": "run", "total_seconds": clock.elapsed().as_secs_f64()}),
    )?;
    let all_monotone = paths.iter().all(|p| p.kl_monotone(KL_FLOOR).0);
    if args.json {
        if let Some(map) = doc.as_object_mut() {
            map.insert("command".into(), serde_json::json!("run"));
            map.insert("out".into(), serde_json::json!(out.display().to_string()));
            map.insert("files".into(), serde_json::json!(files));
            map.insert("certificate_written".into(), serde_json::json!(true));
            map.insert(
                "certificate_monotone".into(),
                serde_json::json!(cert.monotone),
            );
        }
        crate::cli::print_json(&doc)?;
    } else {
        if !args.quiet {
            println!(
                "model {} | density flow on a {} grid {:?} | target {} | start {} | rtol {:e} atol {:e}",
                exp.path.display(),
                if exp.grid.dim() == 1 { "1-D" } else { "2-D" },
                exp.grid.n,
                exp.target.describe(),
                exp.start.describe(),
                exp.settings.rtol,
                exp.settings.atol
            );
            for (p, s) in paths.iter().zip(&summaries) {
                let extra = s
                    .get("closed_form_max_abs_error_log_rho")
                    .and_then(|v| v.as_f64())
                    .map(|e| format!(" | closed form: max |Δlog ρ| {e:.2e}"))
                    .unwrap_or_default();
                println!(
                    "[{}] {} | KL {} -> {} | mass drift {:.2e} | min ρ {:.2e} | KL monotone {} | steps {} | rejected {} | factorizations {} | {:?}{extra}",
                    p.flow.name(),
                    p.solver,
                    num(p.kl.first().copied().unwrap_or(f64::NAN), 6),
                    num(p.kl.last().copied().unwrap_or(f64::NAN), 6),
                    p.mass_drift(),
                    p.min_rho.iter().copied().fold(f64::INFINITY, f64::min),
                    p.kl_monotone(KL_FLOOR).0,
                    p.steps,
                    p.rejected,
                    p.factorizations,
                    p.stop
                );
            }
            if let Some(b) = &bridge {
                let last = |v: &[(f64, f64)]| v.last().map(|p| p.1).unwrap_or(f64::NAN);
                println!(
                    "bridge: mixture natural flow from ({}, {}) KL(π‖p_θ) -> {} | Fisher–Rao flow of the same energy KL(π‖ρ) -> {}",
                    num(b.start[0], 3),
                    num(b.start[1], 3),
                    num(last(&b.parametric), 6),
                    num(last(&b.nonparametric), 6)
                );
            }
        }
        let stored: usize = cert.flows.iter().map(|f| f.states.len()).sum();
        println!(
            "certificate: {} (KL within its tolerance at every accepted step of the three flows, {stored} stored states; check with fisher-flow verify {}) | KL monotone to 1e-14: {all_monotone} | wrote {} ({}) | total wall time {:.3} s",
            if cert.monotone {
                "monotone"
            } else {
                "NOT monotone"
            },
            out.join("certificate.json").display(),
            out.display(),
            files.join(", "),
            clock.elapsed().as_secs_f64()
        );
    }
    let bad: Vec<String> = paths
        .iter()
        .filter(|p| !p.finished())
        .map(|p| format!("{} ({:?})", p.flow.name(), p.stop))
        .collect();
    if bad.is_empty() {
        if !cert.monotone {
            return Err(Error::Unfinished(
                "the certificate is not monotone (a KL increase beyond its tolerance)".into(),
            ));
        }
        Ok(())
    } else {
        Err(Error::Unfinished(format!(
            "{} of 3 flows did not reach t_end: {}",
            bad.len(),
            bad.join("; ")
        )))
    }
}

/// `t,x,rho` (1-D) or `t,x,y,rho` (2-D) at every save time; ρ normalized on the grid.
fn density_csv(exp: &DensityExperiment, p: &DensityPath) -> String {
    let g = &exp.grid;
    let mut s = String::from(if g.dim() == 1 {
        "t,x,rho\n"
    } else {
        "t,x,y,rho\n"
    });
    for (t, lr) in &p.saved {
        for (i, l) in lr.iter().enumerate() {
            let x = g.point(i);
            let coords: Vec<String> = x.iter().map(|v| format!("{v}")).collect();
            let _ = writeln!(s, "{t},{},{}", coords.join(","), l.exp());
        }
    }
    s
}

/// `flow,t,kl,mass` after every accepted step of every flow.
fn kl_csv(paths: &[DensityPath]) -> String {
    let mut s = String::from("flow,t,kl,mass\n");
    for p in paths {
        for ((t, k), m) in p.times.iter().zip(&p.kl).zip(&p.mass) {
            let _ = writeln!(s, "{},{t},{k},{m}", p.flow.name());
        }
    }
    s
}

/// KL(t) on a log axis, one curve per path, with the round-off band.
fn kl_figure(title: &str, paths: &[DensityPath]) -> LossFigure {
    LossFigure {
        title: title.into(),
        x_label: "t".into(),
        y_label: "KL(ρ‖π)".into(),
        series: paths
            .iter()
            .map(|p| Series {
                label: format!("{} ({})", p.flow.title(), p.solver),
                points: p.times.iter().copied().zip(p.kl.iter().copied()).collect(),
            })
            .collect(),
        noise_floor: Some(KL_FLOOR),
        noise_label: format!("round-off of the computed KL ({KL_FLOOR:.0e})"),
        ..LossFigure::default()
    }
}

fn bridge_figure(exp: &DensityExperiment, b: &Bridge) -> LossFigure {
    LossFigure {
        title: format!(
            "Parametric and non-parametric Fisher flow of KL(π‖·) from ({}, {})",
            b.start[0], b.start[1]
        )
        .replace("(-", "(−")
        .replace(", -", ", −"),
        x_label: "t".into(),
        y_label: "KL(π‖ρ)".into(),
        series: vec![
            Series {
                label: "mixture natural-gradient flow (exact Fisher, 2 parameters)".into(),
                points: b.parametric.clone(),
            },
            Series {
                label: format!(
                    "Fisher–Rao flow on all densities ({} cells), ρₜ = exp(−t)ρ₀ + (1 − exp(−t))π",
                    exp.grid.len()
                ),
                points: b.nonparametric.clone(),
            },
        ],
        styles: vec![
            SeriesStyle {
                colour: 0,
                dash: Dash::Solid,
            },
            SeriesStyle {
                colour: 1,
                dash: Dash::Dashed,
            },
        ],
        noise_floor: Some(1e-12),
        noise_label: "quadrature/grid accuracy of KL (1e-12)".into(),
        ..LossFigure::default()
    }
}

/// Indices of at most `max` entries of `0..n`, evenly spread, first and last included.
fn pick(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..max)
        .map(|k| (k * (n - 1) + (max - 1) / 2) / (max - 1))
        .collect();
    v.dedup();
    v
}

/// The density snapshots: one line figure in 1-D, heat maps in 2-D.
fn snapshot_figures(
    exp: &DensityExperiment,
    p: &DensityPath,
    out: &Path,
) -> Result<Vec<&'static str>> {
    let g = &exp.grid;
    let names: [[&'static str; 2]; 6] = [
        ["density-0.svg", "density-0.png"],
        ["density-1.svg", "density-1.png"],
        ["density-2.svg", "density-2.png"],
        ["density-3.svg", "density-3.png"],
        ["density-4.svg", "density-4.png"],
        ["density-5.svg", "density-5.png"],
    ];
    let mut files = Vec::new();
    if g.dim() == 1 {
        let xs: Vec<f64> = (0..g.len()).map(|i| g.coord(0, i)).collect();
        let line = |label: String, lr: &[f64]| Series {
            label,
            points: xs.iter().copied().zip(lr.iter().map(|l| l.exp())).collect(),
        };
        let mut series: Vec<Series> = pick(p.saved.len(), 8)
            .into_iter()
            .map(|k| {
                let (t, lr) = &p.saved[k];
                line(format!("t = {}", num(*t, 3)), lr)
            })
            .collect();
        let mut styles: Vec<SeriesStyle> = (0..series.len())
            .map(|k| SeriesStyle {
                colour: k,
                dash: Dash::Solid,
            })
            .collect();
        series.push(line("target π".into(), &exp.log_pi));
        styles.push(SeriesStyle {
            colour: 9,
            dash: Dash::Dashed,
        });
        let fig = LossFigure {
            title: format!(
                "{} flow of densities ρₜ → π ({})",
                exp.flow.title(),
                exp.target.describe()
            ),
            x_label: "x".into(),
            y_label: "ρ(x)".into(),
            series,
            styles,
            linear_y: true,
            ..LossFigure::default()
        };
        for ext in ["svg", "png"] {
            plot::loss(&out.join(format!("density.{ext}")), &fig)?;
        }
        files.extend(["density.svg", "density.png"]);
        return Ok(files);
    }
    let heat = |title: String, lr: &[f64]| {
        let (nx, ny) = (g.n[0], g.n[1]);
        PlaneFigure {
            title,
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: (g.coord(0, 0), g.coord(0, nx - 1)),
            y_range: (g.coord(1, 0), g.coord(1, ny - 1)),
            // the heat map shows log₁₀(L − min L): with L = −log ρ that is
            // log₁₀(log ρ_max − log ρ), dark where ρ is largest
            loss_grid: (0..ny)
                .map(|j| (0..nx).map(|i| -lr[i + nx * j]).collect())
                .collect(),
            z_label: "log₁₀(log ρ_max − log ρ)".into(),
            ..PlaneFigure::default()
        }
    };
    for (slot, k) in pick(p.saved.len(), SNAPSHOT_FIGURES_MAX)
        .into_iter()
        .enumerate()
    {
        let (t, lr) = &p.saved[k];
        let fig = heat(
            format!("{} flow, ρ at t = {}", exp.flow.title(), num(*t, 3)),
            lr,
        );
        for (ext, name) in ["svg", "png"].iter().zip(names[slot]) {
            debug_assert!(name.ends_with(ext));
            plot::plane(&out.join(name), &fig)?;
        }
        files.extend(names[slot]);
    }
    let fig = heat(format!("Target π: {}", exp.target.describe()), &exp.log_pi);
    for name in ["density-target.svg", "density-target.png"] {
        plot::plane(&out.join(name), &fig)?;
    }
    files.extend(["density-target.svg", "density-target.png"]);
    Ok(files)
}

/// `fisher-flow compare` on a density model file: the flows named by `--metrics` (the
/// parametric default `exact,euclidean` means all three) × `--solvers`.
pub fn compare(args: &CompareArgs) -> Result<()> {
    let clock = std::time::Instant::now();
    crate::cli::set_json_mode(args.json);
    if !(args.eps.is_finite() && args.eps > 0.0) {
        return Err(Error::invalid(
            "--eps",
            args.eps,
            "must be a finite number > 0",
        ));
    }
    if !args.starts.is_empty() {
        return Err(Error::invalid(
            "--start",
            "set",
            "does not apply to model.family = \"density\" (the start density is [density.start])",
        ));
    }
    if args.l_star.is_some() {
        return Err(Error::invalid(
            "--l-star",
            "set",
            "does not apply to model.family = \"density\" (KL(ρ‖π) has minimum 0)",
        ));
    }
    let parametric_default = args.metrics == ["exact", "euclidean"];
    let flows: Vec<FlowKind> = if parametric_default {
        FlowKind::ALL.to_vec()
    } else {
        args.metrics
            .iter()
            .map(|m| FlowKind::parse("--metrics", m))
            .collect::<Result<_>>()?
    };
    let solvers: Vec<Option<SolverKind>> = if args.solvers.is_empty() {
        vec![None]
    } else {
        args.solvers
            .iter()
            .map(|s| SolverKind::parse("--solvers", s).map(Some))
            .collect::<Result<_>>()?
    };
    let ov = Overrides {
        rtol: args.rtol,
        atol: args.atol,
        t_end: args.t_end,
        ..Overrides::default()
    };
    let exp = DensityExperiment::load(&args.model, &ov)?;
    let out_dir = OutDir::open(&args.out, "--out")?;
    let mut paths = Vec::new();
    for &flow in &flows {
        for solver in &solvers {
            let settings = fisher_flow::density::DensitySettings {
                solver: solver.or(exp.settings.solver),
                ..exp.settings.clone()
            };
            paths.push(integrate(
                flow,
                &exp.grid,
                &exp.log_pi,
                &exp.log_rho0,
                &settings,
            )?);
        }
    }
    let rows: Vec<serde_json::Value> = paths
        .iter()
        .map(|p| {
            let k = p.kl.iter().position(|&k| k < args.eps);
            let mut v = flow_summary(&exp, p);
            if let Some(map) = v.as_object_mut() {
                map.insert(
                    "time_to_eps".into(),
                    serde_json::json!(k.map(|i| p.times[i])),
                );
                map.insert(
                    "rate_last_half".into(),
                    serde_json::json!(p.rate(0.5 * exp.settings.t_end, exp.settings.t_end)),
                );
            }
            v
        })
        .collect();
    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    let mut md = format!(
        "# compare: density flows, {}\n\nTarget {}, start {}, grid {:?} cells on {:?}–{:?}, rtol {:e}, atol {:e}, ε = {:e}.\n\n| flow | solver | steps | rejected | factorizations | KL(0) | KL(t_end) | t(KL < ε) | rate −dlog KL/dt, last half | mass drift | KL monotone |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        exp.path.display(),
        exp.target.describe(),
        exp.start.describe(),
        exp.grid.n,
        exp.grid.lo,
        exp.grid.hi,
        exp.settings.rtol,
        exp.settings.atol,
        args.eps
    );
    for (p, r) in paths.iter().zip(&rows) {
        let f = |key: &str| {
            r.get(key)
                .and_then(|v| v.as_f64())
                .map(|x| num(x, 4))
                .unwrap_or_else(|| "—".into())
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1e} | {} |",
            p.flow.name(),
            p.solver,
            p.steps,
            p.rejected,
            p.factorizations,
            f("kl_start"),
            f("kl_end"),
            f("time_to_eps"),
            f("rate_last_half"),
            p.mass_drift(),
            p.kl_monotone(KL_FLOOR).0
        );
    }
    write_atomic(&out.join("compare.md"), md.as_bytes())?;
    let doc = serde_json::json!({
        "model_file": exp.path.display().to_string(),
        "model_sha256": exp.file_hash,
        "eps": args.eps,
        "rows": rows,
    });
    write_json(&out.join("compare.json"), &doc)?;
    let fig = kl_figure(
        &format!("KL(ρ‖π) against t ({})", exp.target.describe()),
        &paths,
    );
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("compare-loss.{ext}")), &fig)?;
    }
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({"command": "compare", "total_seconds": clock.elapsed().as_secs_f64()}),
    )?;
    if args.json {
        let mut doc = doc;
        if let Some(map) = doc.as_object_mut() {
            map.insert(
                "succeeded".into(),
                serde_json::json!(paths.iter().all(|p| p.finished())),
            );
            map.insert("out".into(), serde_json::json!(out.display().to_string()));
        }
        crate::cli::print_json(&doc)?;
    } else {
        say(md.trim_end());
        println!(
            "wrote {} (compare.md, compare.json, compare-loss.svg, compare-loss.png, timings.json)",
            out.display()
        );
    }
    if paths.iter().all(|p| p.finished()) {
        Ok(())
    } else {
        Err(Error::Unfinished("some flows did not reach t_end".into()))
    }
}
