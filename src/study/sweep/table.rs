//! The results table: `results.csv` (header + one row per case, numbers in shortest round-trip
//! form, empty for null) and `results.parquet` (the same columns, Arrow types, uncompressed),
//! both written to a temporary file and renamed.

use super::record::{COLUMNS, CaseRecord};
use crate::error::{Error, Result};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use std::path::Path;
use std::sync::Arc;

fn opt(v: Option<f64>) -> String {
    v.map(crate::export::csv_num).unwrap_or_default()
}

/// A CSV field: quoted (with doubled quotes) when it holds a comma, quote or line break.
fn text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV text of `records` (in the given order).
pub fn to_csv(records: &[CaseRecord]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for r in records {
        let row = [
            r.id.to_string(),
            text(&r.settings_hash),
            crate::export::csv_num(r.sigma),
            crate::export::csv_num(r.w),
            crate::export::csv_num(r.target_mu1),
            crate::export::csv_num(r.target_mu2),
            crate::export::csv_num(r.start_mu1),
            crate::export::csv_num(r.start_mu2),
            text(&r.metric),
            text(&r.solver),
            crate::export::csv_num(r.rtol),
            crate::export::csv_num(r.atol),
            crate::export::csv_num(r.damping),
            crate::export::csv_num(r.t_end),
            text(&r.retcode),
            opt(r.t_eps),
            opt(r.rhs_evals_eps),
            opt(r.t_final),
            opt(r.loss_gap_final),
            opt(r.error_final),
            r.steps.to_string(),
            r.rejected.to_string(),
            r.rhs_evals.to_string(),
            r.monotone.map(|b| b.to_string()).unwrap_or_default(),
            r.message.as_deref().map(text).unwrap_or_default(),
            crate::export::csv_num(r.wall_seconds),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The Arrow schema of the results table.
pub fn schema() -> Schema {
    let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|&c| match c {
            "id" | "steps" | "rejected" | "rhs_evals" => f(c, DataType::UInt64, false),
            "settings_hash" | "metric" | "solver" | "retcode" => f(c, DataType::Utf8, false),
            "message" => f(c, DataType::Utf8, true),
            "monotone" => f(c, DataType::Boolean, true),
            "t_eps" | "rhs_evals_eps" | "t_final" | "loss_gap_final" | "error_final" => {
                f(c, DataType::Float64, true)
            }
            _ => f(c, DataType::Float64, false),
        })
        .collect();
    Schema::new(fields)
}

/// `records` as one Arrow record batch with [`schema`].
pub fn to_batch(records: &[CaseRecord]) -> Result<RecordBatch> {
    let u = |g: fn(&CaseRecord) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(records.iter().map(g)))
    };
    let f = |g: fn(&CaseRecord) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(records.iter().map(g)))
    };
    let fo = |g: fn(&CaseRecord) -> Option<f64>| -> ArrayRef {
        Arc::new(records.iter().map(g).collect::<Float64Array>())
    };
    let s = |g: fn(&CaseRecord) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(g)))
    };
    let columns: Vec<ArrayRef> = vec![
        u(|r| r.id),
        s(|r| &r.settings_hash),
        f(|r| r.sigma),
        f(|r| r.w),
        f(|r| r.target_mu1),
        f(|r| r.target_mu2),
        f(|r| r.start_mu1),
        f(|r| r.start_mu2),
        s(|r| &r.metric),
        s(|r| &r.solver),
        f(|r| r.rtol),
        f(|r| r.atol),
        f(|r| r.damping),
        f(|r| r.t_end),
        s(|r| &r.retcode),
        fo(|r| r.t_eps),
        fo(|r| r.rhs_evals_eps),
        fo(|r| r.t_final),
        fo(|r| r.loss_gap_final),
        fo(|r| r.error_final),
        u(|r| r.steps),
        u(|r| r.rejected),
        u(|r| r.rhs_evals),
        Arc::new(records.iter().map(|r| r.monotone).collect::<BooleanArray>()),
        Arc::new(
            records
                .iter()
                .map(|r| r.message.as_deref())
                .collect::<StringArray>(),
        ),
        f(|r| r.wall_seconds),
    ];
    RecordBatch::try_new(Arc::new(schema()), columns)
        .map_err(|e| Error::Numerical(format!("results table: {e}")))
}

/// Write `records` to `path` as Parquet, atomically.
pub fn write_parquet(path: &Path, records: &[CaseRecord]) -> Result<()> {
    let batch = to_batch(records)?;
    let tmp = crate::export::temp_path(path);
    let werr = |e: String| Error::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
            .map_err(|e| werr(e.to_string()))?;
        w.write(&batch).map_err(|e| werr(e.to_string()))?;
        let file = w.into_inner().map_err(|e| werr(e.to_string()))?;
        file.sync_all().map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    })();
    match result {
        Ok(()) => crate::export::commit(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
