//! Data sets for the MLP: a CSV reader (numeric features, a class-label or numeric target
//! column) and a seeded synthetic regression set. Examples are stored as columns.

use crate::error::{Error, Result};
use nalgebra::DMatrix;
use rand::SeedableRng;
use std::path::Path;

/// Targets of a data set.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices 0..k, with the class names in index order (order of first appearance).
    Classes {
        labels: Vec<usize>,
        names: Vec<String>,
    },
    /// Real-valued targets, d_out × N.
    Values(DMatrix<f64>),
}

impl Targets {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(y) => y.ncols(),
        }
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Features (d × N, one example per column) and targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Features, d × N.
    pub x: DMatrix<f64>,
    /// Targets.
    pub targets: Targets,
    /// Where it came from (file path or synthetic recipe), for reports.
    pub source: String,
}

impl Dataset {
    /// Number of examples N.
    pub fn len(&self) -> usize {
        self.x.ncols()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.x.ncols() == 0
    }

    /// Standardize every feature to mean 0 and standard deviation 1 (constant features are
    /// only centred).
    pub fn standardize(&mut self) {
        let n = self.x.ncols() as f64;
        for mut row in self.x.row_iter_mut() {
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let sd = var.sqrt();
            let s = if sd > 0.0 { 1.0 / sd } else { 1.0 };
            row.apply(|v| *v = (*v - mean) * s);
        }
    }
}

/// How the target column(s) of a CSV are read.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetSpec {
    /// One column of class labels (any text).
    Class(String),
    /// Numeric target columns.
    Values(Vec<String>),
}

/// Read a CSV with a header line. Lines that are empty or start with `#` are skipped. Every
/// column not named as a target is a numeric feature. Errors name the file, the line and the
/// column (missing value, wrong column count, non-numeric value, unknown target column).
pub fn read_csv(path: &Path, target: &TargetSpec) -> Result<Dataset> {
    // A FIFO or device would block or never end; a file larger than half the available
    // memory cannot be held (the parsed matrix needs about as much again).
    let avail = crate::config::available_memory();
    crate::config::check_regular_file(path, avail / 4)?;
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_csv(&text, target)
        .map_err(|message| Error::Parse {
            path: path.to_path_buf(),
            message,
        })
        .map(|mut d| {
            d.source = path.display().to_string();
            d
        })
}

/// [`read_csv`] on text; the error is a message without the path.
pub fn parse_csv(text: &str, target: &TargetSpec) -> std::result::Result<Dataset, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (_, header) = lines
        .next()
        .ok_or("no header line (the file has no data)")?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let target_names: Vec<String> = match target {
        TargetSpec::Class(c) => vec![c.clone()],
        TargetSpec::Values(v) => v.clone(),
    };
    let mut target_idx = Vec::new();
    for t in &target_names {
        let i = cols.iter().position(|c| c == t).ok_or_else(|| {
            format!(
                "target column '{t}' not in the header ({})",
                cols.join(", ")
            )
        })?;
        target_idx.push(i);
    }
    let feat_idx: Vec<usize> = (0..cols.len())
        .filter(|i| !target_idx.contains(i))
        .collect();
    if feat_idx.is_empty() {
        return Err("no feature columns besides the target".into());
    }
    let mut feats: Vec<f64> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut n = 0usize;
    for (ln, line) in lines {
        let line_no = ln + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != cols.len() {
            return Err(format!(
                "line {line_no}: expected {} columns, found {}",
                cols.len(),
                fields.len()
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            if f.is_empty() || f.eq_ignore_ascii_case("na") || f.eq_ignore_ascii_case("nan") {
                return Err(format!(
                    "line {line_no}: missing value in column '{}'",
                    cols[i]
                ));
            }
        }
        let num = |i: usize| -> std::result::Result<f64, String> {
            fields[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.abs() <= crate::config::limits::DATA_ABS_MAX)
                .ok_or_else(|| {
                    format!(
                        "line {line_no}: column '{}': '{}' is not a finite number with |value| ≤ {:e}",
                        cols[i],
                        fields[i],
                        crate::config::limits::DATA_ABS_MAX
                    )
                })
        };
        for &i in &feat_idx {
            feats.push(num(i)?);
        }
        match target {
            TargetSpec::Class(_) => {
                let name = fields[target_idx[0]];
                let k = match names.iter().position(|c| c == name) {
                    Some(k) => k,
                    None => {
                        names.push(name.to_string());
                        names.len() - 1
                    }
                };
                labels.push(k);
            }
            TargetSpec::Values(_) => {
                for &i in &target_idx {
                    values.push(num(i)?);
                }
            }
        }
        n += 1;
    }
    if n == 0 {
        return Err("no data rows".into());
    }
    let x = DMatrix::from_column_slice(feat_idx.len(), n, &feats);
    let targets = match target {
        TargetSpec::Class(_) => Targets::Classes { labels, names },
        TargetSpec::Values(v) => Targets::Values(DMatrix::from_column_slice(v.len(), n, &values)),
    };
    Ok(Dataset {
        x,
        targets,
        source: String::new(),
    })
}

/// A seeded synthetic regression set: xᵢ ~ N(0, I_d), yᵢ = f(xᵢ) + noise·εᵢ with
/// f(x) = sin(x₁) + ½·x₂·cos(x₁) (only x₁ when d = 1), one output, ChaCha8 from `seed`.
pub fn synthetic_regression(n: usize, d: usize, noise: f64, seed: u64) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal =
        || -> f64 { rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng) };
    let mut x = DMatrix::zeros(d, n);
    let mut y = DMatrix::zeros(1, n);
    for i in 0..n {
        for r in 0..d {
            x[(r, i)] = normal();
        }
        let x1 = x[(0, i)];
        let x2 = if d > 1 { x[(1, i)] } else { 0.0 };
        y[(0, i)] = x1.sin() + 0.5 * x2 * x1.cos() + noise * normal();
    }
    Dataset {
        x,
        targets: Targets::Values(y),
        source: format!("synthetic regression (n = {n}, d = {d}, noise = {noise}, seed = {seed})"),
    }
}

/// A seeded synthetic classification set: xᵢ ~ N(0, I_d), label = argmax of a random linear
/// map Wxᵢ (W entries N(0, 1)), `classes` classes, ChaCha8 from `seed`.
pub fn synthetic_classification(n: usize, d: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal =
        || -> f64 { rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng) };
    let w = DMatrix::from_fn(classes.max(1), d, |_, _| normal());
    let x = DMatrix::from_fn(d, n, |_, _| normal());
    let scores = &w * &x;
    let labels = scores.column_iter().map(|c| c.argmax().0).collect();
    Dataset {
        x,
        targets: Targets::Classes {
            labels,
            names: (0..classes.max(1)).map(|c| format!("class{c}")).collect(),
        },
        source: format!(
            "synthetic classification (n = {n}, d = {d}, classes = {classes}, seed = {seed})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_classes_and_reports_bad_rows() {
        let ok = "# comment\na,b,label\n1,2,x\n3,4,y\n5,6,x\n";
        let d = parse_csv(ok, &TargetSpec::Class("label".into())).expect("parses");
        assert_eq!(
            d.x,
            DMatrix::from_column_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
        assert_eq!(
            d.targets,
            Targets::Classes {
                labels: vec![0, 1, 0],
                names: vec!["x".into(), "y".into()]
            }
        );
        let missing =
            parse_csv("a,b,label\n1,,x\n", &TargetSpec::Class("label".into())).unwrap_err();
        assert!(
            missing.contains("line 2")
                && missing.contains("missing value")
                && missing.contains("'b'"),
            "{missing}"
        );
        let short = parse_csv("a,b,label\n1,2\n", &TargetSpec::Class("label".into())).unwrap_err();
        assert!(short.contains("expected 3 columns, found 2"), "{short}");
        let bad = parse_csv("a,b,label\n1,zz,x\n", &TargetSpec::Class("label".into())).unwrap_err();
        assert!(bad.contains("not a finite number"), "{bad}");
        let unknown = parse_csv("a,b\n1,2\n", &TargetSpec::Class("label".into())).unwrap_err();
        assert!(unknown.contains("target column 'label'"), "{unknown}");
    }

    #[test]
    fn standardize_gives_zero_mean_unit_variance() {
        let mut d = synthetic_regression(50, 3, 0.1, 5);
        d.x *= 3.0;
        d.standardize();
        for row in d.x.row_iter() {
            let m = row.sum() / 50.0;
            let v = row.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 50.0;
            assert!(m.abs() < 1e-12 && (v - 1.0).abs() < 1e-12);
        }
    }
}
