//! fisher-flow: natural-gradient flows on statistical manifolds.
pub mod certificate;
pub mod checks;
pub mod config;
pub mod density;
pub mod error;
pub mod export;
pub mod field;
pub mod flow;
pub mod gemm;
pub mod geodesic;
pub mod geometry;
pub mod inspect;
pub mod linalg;
pub mod manifold;
pub mod metric;
pub mod model;
pub mod optimize;
pub mod plot;
pub mod quadrature;
pub mod serve;
pub mod study;
pub mod trajectory;

pub use error::{Error, Result};
