//! Shards: which cases a shard runs, and its append-only record file.
//!
//! Case `i` of `C` belongs to shard `(i + ⌊i/N⌋) mod N` (+1: shards are numbered 1..N): every
//! block of N consecutive ids goes to all N shards once, rotated by one per block, so shard
//! sizes differ by at most one and a start is not pinned to one shard across settings.
//!
//! A shard writes `DIR/shards/K-of-N/records.jsonl`: a header line (schema, spec hash, K, N,
//! case count) and one JSON line per finished case, each written with one `write` and
//! `fsync`ed before the next, so a SIGKILL loses at most the cases in flight. `--resume`
//! reads the file back, ignores a truncated last line (cutting it off), and skips the ids
//! already there.

use super::record::CaseRecord;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Schema of a shard file's header.
pub const SHARD_SCHEMA: &str = "fisher-flow/sweep-shard/v1";
/// Most shards.
pub const SHARDS_MAX: u64 = 1_000_000;

/// `--shard K/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based index.
    pub k: u64,
    pub n: u64,
}

impl Shard {
    /// The whole sweep as one shard.
    pub const ALL: Shard = Shard { k: 1, n: 1 };

    /// Parse `K/N` (1 ≤ K ≤ N ≤ [`SHARDS_MAX`]), named `flag` in errors.
    pub fn parse(flag: &str, s: &str) -> Result<Shard> {
        let bad = || {
            Error::invalid(
                flag,
                format!("'{s}'"),
                format!("expected K/N with 1 ≤ K ≤ N ≤ {SHARDS_MAX}, e.g. 2/4"),
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u64 = k.trim().parse().map_err(|_| bad())?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || k > n || n > SHARDS_MAX {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// The shard (1-based) of case `id`.
    pub fn of(id: u64, n: u64) -> u64 {
        (id + id / n) % n + 1
    }

    /// Whether case `id` is in this shard.
    pub fn owns(&self, id: u64) -> bool {
        Self::of(id, self.n) == self.k
    }

    /// The case ids of this shard among `0..n_cases`, ascending.
    pub fn ids(&self, n_cases: u64) -> impl Iterator<Item = u64> + '_ {
        (0..n_cases).filter(|&i| self.owns(i))
    }

    /// `K-of-N`: the shard's directory name.
    pub fn name(&self) -> String {
        format!("{}-of-{}", self.k, self.n)
    }

    /// `DIR/shards/K-of-N`.
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join("shards").join(self.name())
    }
}

/// The first line of a shard file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardHeader {
    pub schema: String,
    pub spec_hash: String,
    pub shard: u64,
    pub shards: u64,
    pub cases: u64,
}

/// Name of the record file inside a shard's directory.
pub const RECORDS_FILE: &str = "records.jsonl";

/// A shard file read back: its header, complete records, and the byte length they span.
pub struct ShardFile {
    pub header: ShardHeader,
    pub records: Vec<CaseRecord>,
    /// Bytes up to the end of the last complete line.
    pub valid_len: u64,
    /// Whether a truncated last line was dropped.
    pub truncated: bool,
}

/// Read a shard file. A last line without a newline is a write cut short (dropped); any other
/// line that does not parse is an error naming the file and line.
pub fn read_shard(path: &Path) -> Result<ShardFile> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, msg: String| Error::Parse {
        path: path.to_path_buf(),
        message: format!("line {line}: {msg}"),
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(p) => p + 1,
        None => 0,
    };
    let truncated = complete < bytes.len();
    let text =
        std::str::from_utf8(&bytes[..complete]).map_err(|_| bad(0, "not valid UTF-8".into()))?;
    let mut lines = text.lines();
    let header: ShardHeader = match lines.next() {
        Some(l) => serde_json::from_str(l).map_err(|e| bad(1, format!("bad header: {e}")))?,
        None => {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                message: "no header line (an interrupted start: rerun without --resume)".into(),
            });
        }
    };
    if header.schema != SHARD_SCHEMA {
        return Err(bad(
            1,
            format!("schema '{}', expected '{SHARD_SCHEMA}'", header.schema),
        ));
    }
    let mut records = Vec::new();
    for (i, l) in lines.enumerate() {
        let r: CaseRecord = serde_json::from_str(l).map_err(|e| bad(i + 2, e.to_string()))?;
        records.push(r);
    }
    Ok(ShardFile {
        header,
        records,
        valid_len: complete as u64,
        truncated,
    })
}

/// The append-only record file of a running shard.
pub struct ShardSink {
    path: PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

impl ShardSink {
    /// Start a fresh file with `header` (replacing any earlier one).
    pub fn create(path: &Path, header: &ShardHeader) -> Result<ShardSink> {
        let werr = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let line = serde_json::to_string(header)
            .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
        crate::export::write_atomic(path, format!("{line}\n").as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(werr)?;
        Ok(ShardSink {
            path: path.to_path_buf(),
            file: std::sync::Mutex::new(file),
        })
    }

    /// Reopen an existing file for appending after its first `valid_len` bytes (a truncated
    /// last line is cut off first).
    pub fn reopen(path: &Path, valid_len: u64) -> Result<ShardSink> {
        let werr = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(werr)?;
        file.set_len(valid_len).map_err(werr)?;
        file.sync_all().map_err(werr)?;
        drop(file);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(werr)?;
        Ok(ShardSink {
            path: path.to_path_buf(),
            file: std::sync::Mutex::new(file),
        })
    }

    /// Append one record as a line and fsync it.
    pub fn append(&self, r: &CaseRecord) -> Result<()> {
        let werr = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_string(r)
            .map_err(|e| Error::Numerical(format!("JSON encoding failed: {e}")))?;
        line.push('\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| Error::Numerical("a worker panicked while writing a record".into()))?;
        f.write_all(line.as_bytes()).map_err(werr)?;
        f.sync_data().map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_in_exactly_one_shard_and_sizes_balanced() {
        for n_cases in [1u64, 7, 36, 100, 1001] {
            for n in [1u64, 2, 3, 4, 7, 13] {
                let mut seen = vec![0u32; n_cases as usize];
                let mut sizes = Vec::new();
                for k in 1..=n {
                    let s = Shard { k, n };
                    let ids: Vec<u64> = s.ids(n_cases).collect();
                    sizes.push(ids.len());
                    for i in ids {
                        seen[i as usize] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "C = {n_cases}, N = {n}");
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "C = {n_cases}, N = {n}: {sizes:?}");
            }
        }
    }

    #[test]
    fn shard_flag_parses_and_rejects() {
        assert_eq!(
            Shard::parse("--shard", "2/4").unwrap(),
            Shard { k: 2, n: 4 }
        );
        for bad in ["0/4", "5/4", "x", "1/0", "1/2/3", "-1/2", ""] {
            let e = Shard::parse("--shard", bad).unwrap_err();
            assert!(e.to_string().contains("--shard"), "{e}");
        }
    }
}
