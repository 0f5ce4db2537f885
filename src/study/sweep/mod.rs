//! `fisher-flow sweep`: convergence studies over many settings, sharded.
//!
//! A [`SweepSpec`] (base model × axes) expands into cases with stable ids. A shard
//! ([`Shard`], `--shard K/N`) runs its cases through the study [`Runner`] (rayon, parallel over
//! settings and starts), and a [`RecordSink`] observer turns each finished case into a
//! [`CaseRecord`] appended and fsync'd to `DIR/shards/K-of-N/records.jsonl`. [`merge`] checks
//! that every shard of one spec is there and complete and collects the records in id order;
//! [`write_results`] writes `results.csv`, `results.parquet`, `summary.json` and the figures.
//! An unsharded sweep is shard 1/1 followed by the same merge.
//!
//! ```no_run
//! use fisher_flow::study::sweep::{self, Shard, SweepOptions, SweepSpec};
//! let spec = SweepSpec::load("models/sweep-demo.toml".as_ref())?;
//! let out = std::path::Path::new("output/sweep");
//! let plan = sweep::plan(&spec, out, &SweepOptions::default())?;
//! sweep::execute(&spec, &plan, &[])?;
//! let records = sweep::merge(out, Some(1))?.1;
//! sweep::write_results(out, &spec, &records)?;
//! # Ok::<(), fisher_flow::Error>(())
//! ```

pub mod record;
pub mod shard;
pub mod spec;
pub mod summary;
pub mod table;

pub use record::{CaseRecord, time_to_eps};
pub use shard::{Shard, ShardHeader, ShardSink, read_shard};
pub use spec::SweepSpec;

use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::export::OutDir;
use crate::study::{Case, Observer, Outcome, Runner};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The checked spec, as every shard of a sweep writes it (merge reads it back).
pub const SPEC_FILE: &str = "spec.json";
/// Settings built and run together (bounds the experiments held in memory at once).
pub const SETTINGS_PER_BATCH: usize = 64;

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub shard: Shard,
    /// Skip cases already in the shard's record file.
    pub resume: bool,
    /// Also write each case's trajectory to `DIR/trajectories/case-ID.csv`.
    pub trajectories: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            shard: Shard::ALL,
            resume: false,
            trajectories: false,
        }
    }
}

/// A shard ready to run: its directory (locked), its record file, and the cases still to run.
pub struct Plan {
    /// Held while the shard runs (`DIR/shards/K-of-N`, locked).
    pub dir: OutDir,
    pub sink: ShardSink,
    /// Case ids of the shard not yet recorded, ascending.
    pub pending: Vec<u64>,
    /// Case ids of the shard in all.
    pub total: u64,
    /// Records found by `--resume`.
    pub resumed: u64,
    /// Whether `--resume` cut off a truncated last line.
    pub truncated: bool,
    /// Where trajectories go (`--trajectories`).
    pub trajectories: Option<PathBuf>,
}

fn check_out(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::invalid(
            "--out",
            out.display(),
            "exists and is not a directory",
        ));
    }
    Ok(())
}

/// Open the shard's directory and record file: fresh (the file replaced) or, with `resume`,
/// after the records already there (their spec hash and shard must match).
pub fn plan(spec: &SweepSpec, out: &Path, opts: &SweepOptions) -> Result<Plan> {
    check_out(out)?;
    let shard = opts.shard;
    let dir = OutDir::open(&shard.dir(out), "--out")?;
    crate::export::write_json(&out.join(SPEC_FILE), spec)?;
    let path = dir.join(shard::RECORDS_FILE);
    let header = ShardHeader {
        schema: shard::SHARD_SCHEMA.into(),
        spec_hash: spec.hash().into(),
        shard: shard.k,
        shards: shard.n,
        cases: spec.n_cases,
    };
    let mut done = std::collections::HashSet::new();
    let mut truncated = false;
    let sink = if opts.resume && path.exists() {
        let f = read_shard(&path)?;
        if f.header != header {
            return Err(Error::invalid(
                "--resume",
                path.display(),
                format!(
                    "the shard file is of another sweep (spec hash {}…, shard {}/{}; this one is {}…, {}/{}): rerun without --resume",
                    &f.header.spec_hash[..f.header.spec_hash.len().min(12)],
                    f.header.shard,
                    f.header.shards,
                    &header.spec_hash[..12],
                    header.shard,
                    header.shards
                ),
            ));
        }
        for r in &f.records {
            if !shard.owns(r.id) || r.id >= spec.n_cases || !done.insert(r.id) {
                return Err(Error::Parse {
                    path: path.clone(),
                    message: format!(
                        "case {} is not this shard's or is recorded twice: rerun without --resume",
                        r.id
                    ),
                });
            }
        }
        truncated = f.truncated;
        ShardSink::reopen(&path, f.valid_len)?
    } else {
        ShardSink::create(&path, &header)?
    };
    let total = shard.ids(spec.n_cases).count() as u64;
    let pending: Vec<u64> = shard
        .ids(spec.n_cases)
        .filter(|i| !done.contains(i))
        .collect();
    let trajectories = if opts.trajectories {
        let d = out.join("trajectories");
        std::fs::create_dir_all(&d).map_err(|source| Error::Write {
            path: d.clone(),
            source,
        })?;
        Some(d)
    } else {
        None
    };
    Ok(Plan {
        dir,
        sink,
        pending,
        total,
        resumed: done.len() as u64,
        truncated,
        trajectories,
    })
}

/// The observer that records every finished case of one setting.
pub struct RecordSink<'a> {
    spec: &'a SweepSpec,
    exp: &'a Experiment,
    ids: &'a [u64],
    sink: &'a ShardSink,
    trajectories: Option<&'a Path>,
    error: Mutex<Option<Error>>,
}

impl RecordSink<'_> {
    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
    }
}

impl Observer for RecordSink<'_> {
    fn case_finished(&self, _case: &Case<'_>, outcome: &Outcome) {
        let id = self.ids[outcome.index];
        let r = record::record(self.spec, self.exp, id, outcome);
        if let (Some(dir), Ok(tr)) = (self.trajectories, &outcome.result) {
            let path = dir.join(format!("case-{id:08}.csv"));
            let csv = crate::export::trajectories_csv(std::slice::from_ref(tr));
            if let Err(e) = crate::export::write_atomic(&path, csv.as_bytes()) {
                self.fail(e);
            }
        }
        if let Err(e) = self.sink.append(&r) {
            self.fail(e);
        }
    }
}

/// Run the plan's pending cases; every observer also sees them (ids are the `Runner`'s
/// indices within one setting: use [`case_id`] on the case label for the sweep's id).
pub fn execute(spec: &SweepSpec, plan: &Plan, observers: &[&dyn Observer]) -> Result<()> {
    let n_starts = spec.n_starts();
    let mut groups: Vec<(u64, Vec<u64>)> = Vec::new();
    for &id in &plan.pending {
        let s = id / n_starts;
        match groups.last_mut() {
            Some((g, ids)) if *g == s => ids.push(id),
            _ => groups.push((s, vec![id])),
        }
    }
    for batch in groups.chunks(SETTINGS_PER_BATCH) {
        batch.par_iter().try_for_each(|(s, ids)| -> Result<()> {
            let exp = spec.experiment(*s)?;
            let cases: Vec<Case<'_>> = ids
                .iter()
                .map(|&id| {
                    Case::new(
                        format!("case {id}"),
                        &exp.model,
                        exp.flow.clone(),
                        spec.starts[(id % n_starts) as usize].to_vec(),
                    )
                })
                .collect();
            let rec = RecordSink {
                spec,
                exp: &exp,
                ids,
                sink: &plan.sink,
                trajectories: plan.trajectories.as_deref(),
                error: Mutex::new(None),
            };
            let mut all: Vec<&dyn Observer> = vec![&rec];
            all.extend_from_slice(observers);
            Runner::new().parallel(true).run(&cases, &all)?;
            match rec.error.into_inner() {
                Ok(Some(e)) => Err(e),
                _ => Ok(()),
            }
        })?;
    }
    Ok(())
}

/// The sweep's case id of a case built by [`execute`] (its label is `case ID`).
pub fn case_id(case: &Case<'_>) -> Option<u64> {
    case.label.strip_prefix("case ")?.parse().ok()
}

/// Read `DIR/spec.json` and every shard `DIR/shards/K-of-N` (all with one N, or N =
/// `shards` when given), check that the shards are complete, of this spec, and disjoint, and
/// return the spec and all records in id order.
pub fn merge(out: &Path, shards: Option<u64>) -> Result<(SweepSpec, Vec<CaseRecord>)> {
    let spec_path = out.join(SPEC_FILE);
    let text = std::fs::read_to_string(&spec_path).map_err(|source| Error::Read {
        path: spec_path.clone(),
        source,
    })?;
    let spec: SweepSpec = serde_json::from_str::<SweepSpec>(&text)
        .map_err(|e| Error::Parse {
            path: spec_path.clone(),
            message: e.to_string(),
        })?
        .rehash();
    let shard_root = out.join("shards");
    let entries = std::fs::read_dir(&shard_root).map_err(|source| Error::Read {
        path: shard_root.clone(),
        source,
    })?;
    let mut found: Vec<Shard> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((k, n)) = name.split_once("-of-")
            && let (Ok(k), Ok(n)) = (k.parse::<u64>(), n.parse::<u64>())
            && k >= 1
            && k <= n
            && e.path().join(shard::RECORDS_FILE).exists()
        {
            found.push(Shard { k, n });
        }
    }
    let mut counts: Vec<u64> = found.iter().map(|s| s.n).collect();
    counts.sort_unstable();
    counts.dedup();
    let n = match (shards, counts.as_slice()) {
        (Some(n), _) => n,
        (None, [n]) => *n,
        (None, []) => {
            return Err(Error::invalid(
                "DIR",
                shard_root.display(),
                "no shard record files (shards/K-of-N/records.jsonl): run the sweep first",
            ));
        }
        (None, many) => {
            return Err(Error::invalid(
                "DIR",
                shard_root.display(),
                format!(
                    "holds shards of different counts N = {many:?}: remove the stale ones (or merge with --shards N)"
                ),
            ));
        }
    };
    let mut records: Vec<CaseRecord> = Vec::with_capacity(spec.n_cases as usize);
    for k in 1..=n {
        let sh = Shard { k, n };
        let path = sh.dir(out).join(shard::RECORDS_FILE);
        if !path.exists() {
            return Err(Error::invalid(
                "DIR",
                out.display(),
                format!(
                    "shard {} is missing ({}): run `fisher-flow sweep {} --out {} --shard {k}/{n}`",
                    sh.name(),
                    path.display(),
                    spec.spec_file,
                    out.display()
                ),
            ));
        }
        let f = read_shard(&path)?;
        if f.header.spec_hash != spec.hash() {
            return Err(Error::Parse {
                path: path.clone(),
                message: format!(
                    "of another spec (hash {}…, {} has {}…): rerun this shard",
                    &f.header.spec_hash[..f.header.spec_hash.len().min(12)],
                    spec_path.display(),
                    &spec.hash()[..12]
                ),
            });
        }
        if (f.header.shard, f.header.shards) != (k, n) {
            return Err(Error::Parse {
                path: path.clone(),
                message: format!(
                    "header says shard {}/{}, its directory {}",
                    f.header.shard,
                    f.header.shards,
                    sh.name()
                ),
            });
        }
        let expected = sh.ids(spec.n_cases).count();
        if f.records
            .iter()
            .any(|r| !sh.owns(r.id) || r.id >= spec.n_cases)
        {
            return Err(Error::Parse {
                path: path.clone(),
                message: "holds a case of another shard".into(),
            });
        }
        if f.records.len() != expected || f.truncated {
            return Err(Error::invalid(
                "DIR",
                out.display(),
                format!(
                    "shard {} is incomplete: {} of {expected} cases recorded{}: finish it with `fisher-flow sweep {} --out {} --shard {k}/{n} --resume`",
                    sh.name(),
                    f.records.len(),
                    if f.truncated {
                        ", last line truncated"
                    } else {
                        ""
                    },
                    spec.spec_file,
                    out.display()
                ),
            ));
        }
        records.extend(f.records);
    }
    records.sort_by_key(|r| r.id);
    if let Some(w) = records.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::invalid(
            "DIR",
            out.display(),
            format!("case {} is recorded twice", w[0].id),
        ));
    }
    if records.len() as u64 != spec.n_cases {
        return Err(Error::invalid(
            "DIR",
            out.display(),
            format!("{} records for {} cases", records.len(), spec.n_cases),
        ));
    }
    Ok((spec, records))
}

/// Files [`write_results`] writes into the sweep directory.
pub const RESULT_FILES: &[&str] = &[
    "results.csv",
    "results.parquet",
    "summary.json",
    "time-to-eps.svg",
    "time-to-eps.png",
    "rate-sigma.svg",
    "rate-sigma.png",
];

/// Write the merged results: `results.csv`, `results.parquet`, `summary.json`, and the figures
/// (time-to-ε heat maps over the starts per setting; median time-to-ε against σ when σ is an
/// axis). Returns the names written.
pub fn write_results(
    out: &Path,
    spec: &SweepSpec,
    records: &[CaseRecord],
) -> Result<Vec<&'static str>> {
    let dir = OutDir::open(out, "--out")?;
    dir.clear(RESULT_FILES)?;
    crate::export::write_atomic(&dir.join("results.csv"), table::to_csv(records).as_bytes())?;
    table::write_parquet(&dir.join("results.parquet"), records)?;
    let sum = summary::Summary::of(spec, records);
    crate::export::write_json(&dir.join("summary.json"), &sum)?;
    let mut files = vec!["results.csv", "results.parquet", "summary.json"];
    let heat = summary::heat_figure(spec, records);
    for ext in ["svg", "png"] {
        crate::plot::grid::heat_maps(&dir.join(&format!("time-to-eps.{ext}")), &heat)?;
    }
    files.extend(["time-to-eps.svg", "time-to-eps.png"]);
    if let Some(fig) = summary::sigma_figure(spec, records) {
        for ext in ["svg", "png"] {
            crate::plot::loss(&dir.join(&format!("rate-sigma.{ext}")), &fig)?;
        }
        files.extend(["rate-sigma.svg", "rate-sigma.png"]);
    }
    Ok(files)
}
