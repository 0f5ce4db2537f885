//! The infinite-dimensional limit of the Fisher flow: gradient flows of KL(ρ‖π) for a density ρ
//! on a grid (`model.family = "density"`).
//!
//! The natural-gradient flow of a parametric family is the Fisher–Rao flow
//! ∂ₜρ = −ρ(log(ρ/π) − E_ρ[log(ρ/π)]) restricted to the family's tangent space; here ρ is free
//! (one value per grid cell) and the flow is integrated in θ = log ρ. Beside it the Wasserstein
//! (Fokker–Planck) flow and the Wasserstein–Fisher–Rao flow (see [`flow`]).
//!
//! * [`grid`] — the cell-centred grid, masses, normalization;
//! * [`shape`] — the targets and start densities of the model file;
//! * [`flow`] — the three right-hand sides, the Fisher–Rao closed form, the diffsol driver;
//! * [`config`] — `[density]` and its validation;
//! * [`study`] — the bimodal rate contrast and the bridge to the mixture flow.

pub mod config;
pub mod flow;
pub mod grid;
pub mod shape;
pub mod study;

pub use config::{DensityExperiment, is_density_file};
pub use flow::{DensityPath, DensitySettings, FlowKind, fisher_rao_exact, integrate, kl};
pub use grid::Grid;
pub use shape::Shape;
