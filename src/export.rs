//! Atomic file output: everything is written to a temporary file next to the target and renamed.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling of `path` used while writing it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Move a finished temporary file into place.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(tmp);
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Write `bytes` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let werr = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    drop(f);
    commit(&tmp, path)
}

/// Serialize `value` as pretty JSON and write it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
    write_atomic(path, text.as_bytes())
}

/// Format a number for CSV: shortest round-trip representation, `inf`/`nan` spelled out.
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// `trajectory.csv`: a header and one row per accepted step (row 0 of each trajectory is its
/// start): `trajectory, t, <param names…>, loss, grad_norm, kappa, step_size`.
pub fn trajectories_csv(trajectories: &[crate::trajectory::Trajectory]) -> String {
    let mut out = String::new();
    let names = trajectories
        .first()
        .map(|t| t.param_names.clone())
        .unwrap_or_default();
    out.push_str("trajectory,t,");
    for n in &names {
        out.push_str(n);
        out.push(',');
    }
    out.push_str("loss,grad_norm,kappa,step_size\n");
    for (i, tr) in trajectories.iter().enumerate() {
        for s in &tr.steps {
            out.push_str(&format!("{i},{}", num(s.t)));
            for v in &s.theta {
                out.push(',');
                out.push_str(&num(*v));
            }
            out.push_str(&format!(
                ",{},{},{},{}\n",
                num(s.loss),
                num(s.grad_norm),
                num(s.kappa),
                num(s.step_size)
            ));
        }
    }
    out
}
