//! Wall and CPU time of the 992-start particle field (benches/field.rs's workload),
//! for measurements on a shared machine: the process CPU time (Linux `/proc/self/stat`,
//! 10 ms ticks) is what the work costs regardless of other jobs; the criterion bench reports
//! wall time.
//! `cargo run --release --example field_time -- [gh64|composite] [threads] [repeats]`
use fisher_flow::field::{grid_starts, run_field};
use fisher_flow::flow::{FlowSettings, Simulator, SolverKind};
use fisher_flow::model::{GaussianMixture, LossKind};
use fisher_flow::quadrature::Scheme;
use std::time::Instant;

/// utime + stime of this process in seconds (None off Linux).
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the ")" of the command name: state is field 3, utime 14, stime 15
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scheme = match args.get(1).map(String::as_str) {
        Some("gh64") => Scheme::GaussHermite { nodes: 64 },
        _ => Scheme::default(),
    };
    let threads: usize = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 64);
    let repeats: usize = args
        .get(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .clamp(1, 1000);
    let m = GaussianMixture {
        sigma: 1.0,
        w: 0.5,
        target: [-1.5, 2.0],
        loss_kind: LossKind::Population,
        scheme,
    };
    let settings = FlowSettings {
        solver: SolverKind::Tsit45,
        rtol: 1e-6,
        atol: 1e-9,
        t_end: 10.0,
        ..FlowSettings::default()
    };
    let sim = match Simulator::new(&m, settings) {
        Ok(s) => s,
        Err(e) => return eprintln!("{e}"),
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => return eprintln!("{e}"),
    };
    let starts = grid_starts(32, -4.0, 4.0);
    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    let mut evals = 0;
    for _ in 0..repeats {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let pts = match pool.install(|| run_field(&sim, &m, &starts, 1e-3, &|| {})) {
            Ok(p) => p,
            Err(e) => return eprintln!("{e}"),
        };
        wall = wall.min(t0.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, cpu_seconds()) {
            cpu = cpu.min(b - a);
        }
        evals = pts.iter().map(|p| p.rhs_evals).sum::<usize>();
        assert!(pts.iter().all(|p| p.converged), "a start did not converge");
    }
    println!(
        "{} on {threads} thread(s), {} starts, {evals} rhs evaluations: min wall {wall:.3} s, \
         min CPU {cpu:.2} s ({:.2} µs CPU per rhs)",
        scheme.describe(),
        starts.len(),
        cpu / evals as f64 * 1e6
    );
}
