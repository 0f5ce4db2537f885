//! `fisher-flow sweep SPEC --out DIR [--shard K/N] [--resume]` and `fisher-flow sweep merge DIR`:
//! flags, the progress bar and the summary; the work is `fisher_flow::study::sweep`.

use clap::{Args, Subcommand};
use fisher_flow::study::sweep::{self, CaseRecord, Shard, SweepOptions, SweepSpec, summary};
use fisher_flow::study::{Case, Observer, Outcome};
use fisher_flow::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Largest `--threads` (as `field`).

#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// Sweep spec (TOML): a base model and axes (README "Sweeps")
    #[arg(required = true, value_name = "SPEC.toml")]
    pub spec: Option<PathBuf>,
    /// Output directory: spec.json, shards/K-of-N/records.jsonl, results.csv, results.parquet,
    /// summary.json, figures (required)
    #[arg(long, required = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only shard K of N (1 ≤ K ≤ N): case i belongs to shard (i + ⌊i/N⌋) mod N + 1; merge
    /// the shards afterwards with `sweep merge DIR` [default: 1/1, every case, then merge]
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Skip the cases already recorded in this shard's record file (a truncated last line is
    /// dropped) [default: start the shard afresh]
    #[arg(long)]
    pub resume: bool,
    /// Worker threads, 1 to 1024 [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write every case's trajectory to DIR/trajectories/case-ID.csv [default: off]
    #[arg(long)]
    pub trajectories: bool,
    /// No progress bar [default: shown when stderr is a terminal]
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum SweepAction {
    /// Merge the shards of DIR (all present, complete, of one spec) into results.csv,
    /// results.parquet, summary.json and the figures
    Merge(MergeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The sweep's output directory
    pub dir: PathBuf,
    /// Merge the shards K-of-N of this N [default: the one N present]
    #[arg(long, value_name = "N")]
    pub shards: Option<u64>,
}

/// The progress bar, as a study observer: one tick per finished case, with rate and ETA.
struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new(len: u64, hide: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = indicatif::ProgressBar::new(len);
        if hide || !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        } else if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} cases | {per_sec} | ETA {eta} [{elapsed}]",
        ) {
            bar.set_style(style);
        }
        Progress(bar)
    }
}

impl Observer for Progress {
    fn case_finished(&self, _case: &Case<'_>, _outcome: &Outcome) {
        self.0.inc(1);
    }
}

pub fn sweep(args: &SweepArgs) -> Result<()> {
    if let Some(SweepAction::Merge(m)) = &args.action {
        return merge(&m.dir, m.shards);
    }
    let (Some(spec_path), Some(out)) = (&args.spec, &args.out) else {
        return Err(Error::invalid(
            "SPEC",
            "missing",
            "give SPEC.toml and --out DIR",
        ));
    };
    let shard = match &args.shard {
        Some(s) => Shard::parse("--shard", s)?,
        None => Shard::ALL,
    };
    let pool = crate::field::thread_pool(args.threads)?;
    let spec = SweepSpec::load(spec_path)?;
    if let sweep::spec::StartLayout::Random { seed } = spec.layout {
        println!("random starts: seed {seed}");
    }
    let opts = SweepOptions {
        shard,
        resume: args.resume,
        trajectories: args.trajectories,
    };
    let clock = Instant::now();
    let plan = sweep::plan(&spec, out, &opts)?;
    let progress = Progress::new(plan.pending.len() as u64, args.quiet);
    pool.install(|| sweep::execute(&spec, &plan, &[&progress]))?;
    progress.0.finish_and_clear();
    let wall = clock.elapsed().as_secs_f64();
    let ran = plan.pending.len();
    println!(
        "sweep {}: {} cases ({} settings × {} starts) | shard {}/{}: {} cases, ran {ran}, resumed {}{} | {:.2} s, {:.1} cases/s on {} threads",
        spec_path.display(),
        spec.n_cases,
        spec.n_settings,
        spec.n_starts(),
        shard.k,
        shard.n,
        plan.total,
        plan.resumed,
        if plan.truncated {
            " (a truncated last record was dropped)"
        } else {
            ""
        },
        wall,
        if wall > 0.0 { ran as f64 / wall } else { 0.0 },
        pool.current_num_threads()
    );
    drop(plan);
    if shard == Shard::ALL {
        let (spec, records) = sweep::merge(out, Some(1))?;
        write_and_report(out, &spec, &records)
    } else {
        println!(
            "wrote {}: merge all {} shards with `fisher-flow sweep merge {}`",
            shard.dir(out).join(sweep::shard::RECORDS_FILE).display(),
            shard.n,
            out.display()
        );
        Ok(())
    }
}

fn merge(dir: &Path, shards: Option<u64>) -> Result<()> {
    let (spec, records) = sweep::merge(dir, shards)?;
    write_and_report(dir, &spec, &records)
}

fn write_and_report(out: &Path, spec: &SweepSpec, records: &[CaseRecord]) -> Result<()> {
    let files = sweep::write_results(out, spec, records)?;
    let s = summary::Summary::of(spec, records);
    let codes: Vec<String> = s.retcodes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "merged {} cases: reached L − L* < {:e} in {} (median t {}) | monotone {} of {} | {} | wrote {}: {}",
        s.cases,
        s.epsilon,
        s.reached,
        s.median_t_eps
            .map(|t| crate::cli::num(t, 3))
            .unwrap_or_else(|| "-".into()),
        s.monotone,
        s.cases,
        codes.join(", "),
        out.display(),
        files.join(", ")
    );
    Ok(())
}
