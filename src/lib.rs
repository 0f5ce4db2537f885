//! fisher-flow: natural-gradient flows on statistical manifolds.
pub mod error;
pub mod export;
pub mod plot;

pub use error::{Error, Result};
pub mod certificate;
pub mod checks;
pub mod config;
pub mod field;
pub mod flow;
pub mod geodesic;
pub mod inspect;
pub mod linalg;
pub mod metric;
pub mod model;
pub mod optimize;
pub mod quadrature;
pub mod trajectory;
