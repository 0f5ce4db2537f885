//! One integration of a density flow with the sparse split-form Jacobian or the dense one, for
//! CPU-time measurements on a loaded machine (`/usr/bin/time`; criterion's 10 samples of the
//! dense 2-D case take minutes there):
//!
//! `cargo run --release --example density_jacobian -- models/density-2d.toml wasserstein dense`
//!
//! prints the flow's steps, factorizations, the final KL and the wall time of the integration.

use fisher_flow::config::Overrides;
use fisher_flow::density::{DensityExperiment, DensitySettings, FlowKind, integrate};
use std::path::Path;

fn main() -> fisher_flow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(flow), Some(kind)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: density_jacobian MODEL.toml FLOW sparse|dense");
        std::process::exit(2);
    };
    let exp = DensityExperiment::load(Path::new(file), &Overrides::default())?;
    let flow = FlowKind::parse("FLOW", flow)?;
    let settings = DensitySettings {
        save_at: Vec::new(),
        dense_jacobian: kind == "dense",
        ..exp.settings.clone()
    };
    let clock = std::time::Instant::now();
    let p = integrate(flow, &exp.grid, &exp.log_pi, &exp.log_rho0, &settings)?;
    println!(
        "{file} {} {kind}: {} cells, steps {}, rejected {}, factorizations {}, KL(t_end) {:e}, mass drift {:.2e}, {:.3} s",
        flow.name(),
        exp.grid.len(),
        p.steps,
        p.rejected,
        p.factorizations,
        p.kl.last().copied().unwrap_or(f64::NAN),
        p.mass_drift(),
        clock.elapsed().as_secs_f64()
    );
    Ok(())
}
