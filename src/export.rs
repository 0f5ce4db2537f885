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
pub fn csv_num(v: f64) -> String {
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
    let names = trajectories
        .first()
        .map(|t| t.param_names.clone())
        .unwrap_or_default();
    let mut out = trajectories_csv_header(&names);
    for (i, tr) in trajectories.iter().enumerate() {
        out.push_str(&trajectory_csv_rows(i, tr));
    }
    out
}

/// The header line of `trajectory.csv` for parameters named `names`.
pub fn trajectories_csv_header(names: &[String]) -> String {
    let mut out = String::from("trajectory,t,");
    for n in names {
        out.push_str(n);
        out.push(',');
    }
    out.push_str("loss,grad_norm,kappa,step_size\n");
    out
}

/// The rows of trajectory number `i` in `trajectory.csv`.
pub fn trajectory_csv_rows(i: usize, tr: &crate::trajectory::Trajectory) -> String {
    let mut out = String::new();
    for s in &tr.steps {
        out.push_str(&format!("{i},{}", csv_num(s.t)));
        for v in &s.theta {
            out.push(',');
            out.push_str(&csv_num(*v));
        }
        out.push_str(&format!(
            ",{},{},{},{}\n",
            csv_num(s.loss),
            csv_num(s.grad_norm),
            csv_num(s.kappa),
            csv_num(s.step_size)
        ));
    }
    out
}

/// Name of the lock file a run holds in its output directory.
pub const LOCK_FILE: &str = ".fisher-flow.lock";

/// Whether the process `pid` is alive. On Linux this reads `/proc/PID`; elsewhere a process is
/// assumed alive (a stale lock is then reported, not broken).
pub fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// The PID in the name of a temporary file made from [`temp_path`] (`.NAME.tmpPID`, or
/// `.NAME.tmpPID.EXT` as the PNG and GIF writers use), if any.
pub fn temp_owner(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, rest) = name.rsplit_once(".tmp")?;
    let (digits, ext) = rest.split_once('.').unwrap_or((rest, ""));
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !ext.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    digits.parse().ok()
}

/// Remove the temporary files (`.NAME.tmpPID[.EXT]`) left in `dir` by processes that no longer run
/// (a run killed by SIGINT or SIGKILL while writing). Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = temp_owner(&name)
            && !pid_alive(pid)
            && e.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// An output directory held by one command for as long as the value lives.
///
/// [`OutDir::open`] creates the directory if it is missing (and removes it again on drop if
/// nothing was written into it, so a failed command leaves no empty directory), takes an
/// exclusive lock (the file [`LOCK_FILE`], created with `create_new` and holding the PID; a
/// lock whose process is gone is taken over), and removes stale temporary files of dead
/// processes. [`OutDir::clear`] removes fisher-flow's own earlier outputs just before new ones
/// are written, so the directory never mixes files of two runs.
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    lock: PathBuf,
    created: bool,
}

impl OutDir {
    /// Open `path` (named `flag` in errors, e.g. `--out`) for writing.
    pub fn open(path: &Path, flag: &str) -> Result<OutDir> {
        if path.exists() && !path.is_dir() {
            return Err(Error::invalid(
                flag,
                path.display(),
                "exists and is not a directory",
            ));
        }
        let created = !path.exists();
        std::fs::create_dir_all(path).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let lock = path.join(LOCK_FILE);
        let mut dir = OutDir {
            path: path.to_path_buf(),
            lock: PathBuf::new(),
            created,
        };
        let me = std::process::id();
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(mut f) => {
                    f.write_all(format!("{me}\n").as_bytes())
                        .map_err(|source| Error::Write {
                            path: lock.clone(),
                            source,
                        })?;
                    dir.lock = lock;
                    remove_stale_temps(path);
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&lock)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if pid_alive(pid) => {
                            return Err(Error::invalid(
                                flag,
                                path.display(),
                                format!(
                                    "another fisher-flow (pid {pid}) is writing into it; wait for it or choose another directory (lock: {})",
                                    lock.display()
                                ),
                            ));
                        }
                        // The owner is gone (or the file is being written right now): a dead
                        // owner's lock is removed and taken; a half-written one is retried.
                        Some(_) => {
                            let _ = std::fs::remove_file(&lock);
                        }
                        None => std::thread::sleep(std::time::Duration::from_millis(50)),
                    }
                }
                Err(source) => {
                    return Err(Error::Write {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Err(Error::invalid(
            flag,
            path.display(),
            format!(
                "cannot take the lock {}: remove it if no fisher-flow is running",
                lock.display()
            ),
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Remove the files named in `owned` (fisher-flow's own output names) left by an earlier
    /// run. Other files are left alone.
    pub fn clear(&self, owned: &[&str]) -> Result<()> {
        for name in owned {
            let p = self.path.join(name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Write { path: p, source }),
            }
        }
        Ok(())
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if !self.lock.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.lock);
        }
        if self.created {
            // Succeeds only when the directory is empty: a command that failed before writing
            // leaves nothing behind.
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_owner_reads_the_pid_of_temp_names_only() {
        assert_eq!(temp_owner(".trajectory.csv.tmp1234"), Some(1234));
        assert_eq!(temp_owner(&format!(".x.tmp{}", u32::MAX)), Some(u32::MAX));
        assert_eq!(temp_owner("trajectory.csv.tmp12"), None);
        assert_eq!(temp_owner(".x.tmp"), None);
        assert_eq!(temp_owner(".x.tmp12a"), None);
        assert_eq!(temp_owner(".x.tmp99999999999"), None); // beyond u32
        assert_eq!(temp_owner(".loss.png.tmp77.png"), Some(77));
        assert_eq!(temp_owner(".anim.gif.tmp8.gif"), Some(8));
        assert_eq!(temp_owner(".x.tmp8.a.b"), None);
        let p = temp_path(Path::new("/d/loss.png"));
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(temp_owner(&name), Some(std::process::id()));
    }

    #[test]
    fn out_dir_lock_lifecycle() {
        let base = std::env::temp_dir().join(format!("ff-outdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let out = base.join("new");
        {
            let d = OutDir::open(&out, "--out").unwrap();
            assert!(d.join(LOCK_FILE).exists());
            // a second holder in the same (live) process is refused
            let e = OutDir::open(&out, "--out").unwrap_err();
            assert!(e.to_string().contains("--out"), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
        // created and left empty: removed again with the lock
        assert!(!out.exists());
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(LOCK_FILE), "2147483646\n").unwrap();
        {
            let d = OutDir::open(&out, "--out").unwrap();
            std::fs::write(d.join("a.csv"), "x").unwrap();
            d.clear(&["a.csv", "absent.json"]).unwrap();
            assert!(!d.join("a.csv").exists());
        }
        // existed before: kept (empty), lock gone
        assert!(out.is_dir() && !out.join(LOCK_FILE).exists());
        let file = base.join("f");
        std::fs::write(&file, "").unwrap();
        let e = OutDir::open(&file, "--out").unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
