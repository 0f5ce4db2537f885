//! `fisher-flow field`: integrate every start of an N×N grid (minus the diagonal) in parallel
//! and write where each one ends.

use crate::cli::{FlowOverrides, ModelOverrides};
use crate::run::prepare_out_dir;
use clap::Args;
use fisher_flow::config::{Experiment, Overrides, parse_pair};
use fisher_flow::export::{write_atomic, write_json};
use fisher_flow::field::{field_csv, grid_starts, run_field};
use fisher_flow::flow::Simulator;
use fisher_flow::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    /// Worker threads [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output directory
    #[arg(long, default_value = "output/field")]
    pub out: PathBuf,
    /// Hide the progress bar (it is also hidden when stdout is not a terminal)
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn field(args: &FieldArgs) -> Result<()> {
    let clock = Instant::now();
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
    prepare_out_dir(&args.out)?;
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = args.threads {
            if t == 0 {
                return Err(Error::invalid("--threads", 0, "must be ≥ 1"));
            }
            b = b.num_threads(t);
        }
        b.build()
            .map_err(|e| Error::Numerical(format!("thread pool: {e}")))?
    };
    let starts = grid_starts(args.grid, a, b);
    let model = &exp.model;
    let sim = Simulator::new(model, exp.flow.clone())?;
    let bar = ProgressBar::new(starts.len() as u64);
    if args.quiet || !std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} starts {elapsed_precise}")
    {
        bar.set_style(style);
    }
    let compute = Instant::now();
    let tick = || bar.inc(1);
    let points = pool.install(|| run_field(&sim, model, &starts, args.tolerance, &tick))?;
    let compute_time = compute.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let converged = points.iter().filter(|p| p.converged).count();
    let worst = points.iter().map(|p| p.distance).fold(0.0, f64::max);
    let sum =
        |f: &dyn Fn(&fisher_flow::field::FieldPoint) -> usize| points.iter().map(f).sum::<usize>();
    let (steps, rejected, evals) = (
        sum(&|p| p.steps),
        sum(&|p| p.rejected),
        sum(&|p| p.rhs_evals),
    );
    let out = &args.out;
    write_atomic(&out.join("field.csv"), field_csv(&points).as_bytes())?;
    write_json(
        &out.join("field.json"),
        &serde_json::json!({
            "model_file": exp.path.display().to_string(),
            "model_sha256": exp.file_hash,
            "settings": exp.flow,
            "quadrature": model.describe(),
            "grid": args.grid,
            "range": [a, b],
            "starts": points.len(),
            "threads": pool.current_num_threads(),
            "converged": converged,
            "tolerance": args.tolerance,
            "max_distance": if worst.is_finite() { Some(worst) } else { None },
            "steps": steps,
            "rejected": rejected,
            "rhs_evals": evals,
            "compute_seconds": compute_time,
        }),
    )?;
    println!(
        "field {n}x{n} over [{a}, {b}]^2: {} starts | {} | solver {} rtol {:e} atol {:e} t_end {} | {} threads",
        points.len(),
        model.describe(),
        exp.flow.solver.name(),
        exp.flow.rtol,
        exp.flow.atol,
        exp.flow.t_end,
        pool.current_num_threads(),
        n = args.grid
    );
    println!(
        "converged {converged}/{} (end within {:e} of an optimum; max distance {worst:.2e}) | steps {steps} | rejected {rejected} | rhs evals {evals} ({:.0}/start) | compute {:.4} s | wrote {} | total {:.3} s",
        points.len(),
        args.tolerance,
        evals as f64 / points.len().max(1) as f64,
        compute_time,
        out.join("field.csv").display(),
        clock.elapsed().as_secs_f64()
    );
    Ok(())
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
