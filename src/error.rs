//! One error type for the library. The binary maps [`Error::exit_code`] to the process exit code.

use std::path::PathBuf;

/// Everything that can go wrong in fisher-flow, with enough context to say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A model file is not valid TOML or does not match the schema.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A setting has a value outside its domain.
    #[error("invalid {field} = {value}: {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot { path: PathBuf, message: String },
    /// The ODE solver failed.
    #[error("solver {solver}: {message}")]
    Solver { solver: String, message: String },
    /// A numerical failure (non-finite values, failed factorization).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// Outputs were written, but some trajectories did not end as asked (step cap, solver
    /// failure, non-finite values): exit 1 so that scripts notice.
    #[error("{0}")]
    Unfinished(String),
}

impl Error {
    /// Build an [`Error::Invalid`] from displayable parts.
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// Exit code for the command line: 2 for bad input, 1 for a failed computation.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Read { .. }
            | Error::Write { .. }
            | Error::Parse { .. }
            | Error::Invalid { .. } => 2,
            _ => 1,
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
