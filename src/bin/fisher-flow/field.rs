//! `fisher-flow field`: integrate every start of an N×N grid (minus the diagonal) in parallel
//! and write where each one ends (through the study layer: [`fisher_flow::field::field`]).

use crate::cli::{FlowOverrides, ModelOverrides, short};
use clap::Args;
use fisher_flow::config::{Experiment, Overrides, parse_pair};
use fisher_flow::export::{OutDir, write_atomic, write_json};
use fisher_flow::field::{field as field_points, field_csv, grid_starts};
use fisher_flow::flow::Simulator;
use fisher_flow::model::StatModel;
use fisher_flow::study::observers::Progress;
use fisher_flow::{Error, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct FieldArgs {
    /// Model file (TOML)
    pub model: PathBuf,
    /// Grid points per axis N (N×N starts minus the diagonal)
    #[arg(long, default_value_t = 32)]
    pub grid: usize,
    /// Square [A, B]² of starts [default: the file's plot.range, else -4,4]
    #[arg(long, value_name = "A,B", allow_hyphen_values = true)]
    pub range: Option<String>,
    #[command(flatten)]
    pub overrides: ModelOverrides,
    #[command(flatten)]
    pub flow: FlowOverrides,
    /// A start counts as converged when it ends this close to θ* or its swap
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    /// Worker threads, 1 to 1024 [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output directory
    #[arg(long, default_value = "output/field")]
    pub out: PathBuf,
    /// Hide the progress bar (it is also hidden when stdout is not a terminal)
    #[arg(long, short)]
    pub quiet: bool,
    /// Print one JSON summary on stdout (the field.json keys plus succeeded and out) instead
    /// of the text summary [default: text]
    #[arg(long)]
    pub json: bool,
}

/// Largest `--threads`: rayon spawns every worker up front, and far beyond the core count
/// threads only add memory and scheduling (100000 took 55 s to fail with EAGAIN).
pub const MAX_THREADS: usize = 1024;

/// Every file `field` may write into `--out`.
pub const FIELD_OUTPUTS: &[&str] = &["field.csv", "field.json", "timings.json"];

pub fn field(args: &FieldArgs) -> Result<()> {
    let clock = Instant::now();
    crate::cli::set_json_mode(args.json);
    if args.grid < 2 || args.grid > 4096 {
        return Err(Error::invalid(
            "--grid",
            args.grid,
            "must be between 2 and 4096",
        ));
    }
    if !(args.tolerance.is_finite() && args.tolerance > 0.0) {
        return Err(Error::invalid(
            "--tolerance",
            args.tolerance,
            "must be a finite number > 0",
        ));
    }
    let ov = args.flow.apply(args.overrides.overrides());
    let exp = load(args, &ov)?;
    crate::cli::check_nodes(&exp, args.overrides.nodes)?;
    if exp.model.dim() != 2 {
        return Err(Error::invalid(
            "model",
            format!("{} ({} parameters)", args.model.display(), exp.model.dim()),
            "particle fields need a 2-parameter model (the gaussian-mixture family)",
        ));
    }
    let (a, b) = match &args.range {
        Some(r) => {
            let v = parse_pair("--range", r)?;
            if v[0] >= v[1] {
                return Err(Error::invalid("--range", format!("'{r}'"), "needs A < B"));
            }
            exp.check_window("--range", v[0], v[1])?;
            (v[0], v[1])
        }
        None => exp.plot_range.unwrap_or((-4.0, 4.0)),
    };
    let pool = thread_pool(args.threads)?;
    let starts = grid_starts(args.grid, a, b);
    let model = &exp.model;
    // The settings' checks before touching the output directory (errors name the flags).
    Simulator::new(model, exp.flow.clone()).map_err(|e| crate::cli::blame_flag(e, &ov))?;
    let out_dir = OutDir::open(&args.out, "--out")?;
    let bar = Progress::counter(
        starts.len(),
        args.quiet || args.json || !std::io::stdout().is_terminal(),
    );
    let compute = Instant::now();
    let points =
        pool.install(|| field_points(model, &exp.flow, &starts, args.tolerance, &[&bar]))?;
    let compute_time = compute.elapsed().as_secs_f64();
    bar.finish();

    let converged = points.iter().filter(|p| p.converged).count();
    let worst = points.iter().map(|p| p.distance).fold(0.0, f64::max);
    let sum =
        |f: &dyn Fn(&fisher_flow::field::FieldPoint) -> usize| points.iter().map(f).sum::<usize>();
    let (steps, rejected, evals) = (
        sum(&|p| p.steps),
        sum(&|p| p.rejected),
        sum(&|p| p.rhs_evals),
    );
    let mut retcodes = std::collections::BTreeMap::<&str, usize>::new();
    for p in &points {
        *retcodes.entry(p.retcode.name()).or_default() += 1;
    }
    let failed: Vec<&fisher_flow::field::FieldPoint> =
        points.iter().filter(|p| !p.retcode.is_success()).collect();
    out_dir.clear(&crate::cli::known_outputs())?;
    let out = out_dir.path();
    write_atomic(&out.join("field.csv"), field_csv(&points).as_bytes())?;
    let summary = serde_json::json!({
        "model_file": exp.path.display().to_string(),
        "model_sha256": exp.file_hash,
        "settings": exp.flow,
        "quadrature": model.describe(),
        "grid": args.grid,
        "range": [a, b],
        "starts": points.len(),
        "converged": converged,
        "tolerance": args.tolerance,
        "max_distance": if worst.is_finite() { Some(worst) } else { None },
        "steps": steps,
        "rejected": rejected,
        "rhs_evals": evals,
        "retcodes": retcodes,
        "unfinished": failed
            .iter()
            .map(|p| serde_json::json!({"start": p.start, "retcode": p.retcode, "stop": p.stop}))
            .collect::<Vec<_>>(),
    });
    write_json(&out.join("field.json"), &summary)?;
    let per_start: Vec<f64> = points.iter().map(|p| p.time).collect();
    write_json(
        &out.join("timings.json"),
        &serde_json::json!({
            "command": "field",
            "threads": pool.current_num_threads(),
            "compute_seconds": compute_time,
            "total_seconds": clock.elapsed().as_secs_f64(),
            "start_wall_seconds": per_start,
        }),
    )?;
    if args.json {
        let mut doc = summary;
        if let Some(map) = doc.as_object_mut() {
            map.insert("command".into(), serde_json::json!("field"));
            map.insert("succeeded".into(), serde_json::json!(failed.is_empty()));
            map.insert("out".into(), serde_json::json!(out.display().to_string()));
        }
        crate::cli::print_json(&doc)?;
    } else {
        println!(
            "field {n}x{n} over [{}, {}]^2: {} starts | {} | solver {} rtol {:e} atol {:e} t_end {} | {} threads",
            short(a),
            short(b),
            points.len(),
            model.describe(),
            exp.flow.solver.name(),
            exp.flow.rtol,
            exp.flow.atol,
            short(exp.flow.t_end),
            pool.current_num_threads(),
            n = args.grid
        );
        println!(
            "converged {converged}/{} (end within {:e} of an optimum; max distance {worst:.2e}) | steps {steps} | rejected {rejected} | rhs evals {evals} ({:.0}/start) | compute {:.4} s | wrote {} (field.csv/json, timings.json) | total {:.3} s",
            points.len(),
            args.tolerance,
            evals as f64 / points.len().max(1) as f64,
            compute_time,
            out.display(),
            clock.elapsed().as_secs_f64()
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = failed
            .iter()
            .take(5)
            .map(|p| {
                format!(
                    "({}, {}) {}",
                    short(p.start[0]),
                    short(p.start[1]),
                    p.retcode
                )
            })
            .collect();
        Err(Error::Unfinished(format!(
            "{} of {} starts did not finish: {}{}",
            failed.len(),
            points.len(),
            list.join("; "),
            if failed.len() > 5 { "; …" } else { "" }
        )))
    }
}

fn load(args: &FieldArgs, ov: &Overrides) -> Result<Experiment> {
    // A field needs no starts from the file: give the loader a placeholder if it has none.
    match Experiment::load(&args.model, ov) {
        Err(Error::Parse { message, .. }) if message.contains("flow.starts") => {
            let ov = Overrides {
                starts: vec![vec![0.0, 1.0]],
                ..ov.clone()
            };
            Experiment::load(&args.model, &ov)
        }
        other => other,
    }
}

/// A rayon pool of `--threads T` threads (1 … [`MAX_THREADS`]; rayon's default without it).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        if t == 0 || t > MAX_THREADS {
            return Err(Error::invalid(
                "--threads",
                t,
                format!("must be between 1 and {MAX_THREADS}"),
            ));
        }
        b = b.num_threads(t);
    }
    b.build()
        .map_err(|e| Error::Numerical(format!("thread pool: {e}")))
}
