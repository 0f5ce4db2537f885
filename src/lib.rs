//! fisher-flow: natural-gradient flows on statistical manifolds.
pub mod error;
pub mod export;
pub mod plot;

pub use error::{Error, Result};
pub mod model;
pub mod quadrature;
pub mod linalg;
pub mod metric;
pub mod flow;
pub mod trajectory;
pub mod certificate;
pub mod config;
pub mod inspect;
pub mod gemm;
