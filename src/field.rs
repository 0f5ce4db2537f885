//! Particle fields: integrate the flow from every point of an N×N grid over a square (the exact
//! diagonal μ₁ = μ₂ skipped) in parallel, recording only where each start ends.

use crate::error::{Error, Result};
use crate::flow::{FlowSettings, Simulator};
use crate::model::StatModel;
use crate::study::{Case, Observer, Outcome, Runner};
use crate::trajectory::{Retcode, StopReason};

/// The end of one particle.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FieldPoint {
    pub start: [f64; 2],
    pub end: [f64; 2],
    /// The end lies within `tolerance` of a known optimum (θ* or its label swap).
    pub converged: bool,
    /// Distance of the end to the nearest known optimum (∞ if none is known).
    pub distance: f64,
    pub steps: usize,
    pub rejected: usize,
    pub rhs_evals: usize,
    /// Wall time of this start, seconds (not in `field.csv`, which stays byte-identical
    /// between runs; the command writes timings to `timings.json`).
    pub time: f64,
    /// Why integration stopped.
    pub stop: String,
    /// The stop as a return code (`Success`, `Converged`, `MaxSteps`, `Unstable`, `SolverFailure`).
    pub retcode: Retcode,
}

/// The N×N grid over [a, b]² in row-major order (μ₂ outer, μ₁ inner), without the points
/// with μ₁ = μ₂ exactly.
pub fn grid_starts(n: usize, a: f64, b: f64) -> Vec<[f64; 2]> {
    let coord = |i: usize| {
        if n == 1 {
            0.5 * (a + b)
        } else {
            a + (b - a) * i as f64 / (n - 1) as f64
        }
    };
    let mut out = Vec::with_capacity(n * n);
    for j in 0..n {
        for i in 0..n {
            let p = [coord(i), coord(j)];
            if p[0] != p[1] {
                out.push(p);
            }
        }
    }
    out
}

/// Integrate from every start in parallel (rayon's current pool) through the study layer: one
/// end-only [`Case`] per start, a parallel [`Runner`], `observers` seeing every case (progress
/// bars count `case_finished`). Each point is "converged" when its end is within `tolerance`
/// of one of the model's known optima.
pub fn field(
    model: &dyn StatModel,
    settings: &FlowSettings,
    starts: &[[f64; 2]],
    tolerance: f64,
    observers: &[&dyn Observer],
) -> Result<Vec<FieldPoint>> {
    if model.dim() != 2 {
        return Err(Error::invalid(
            "field",
            model.dim(),
            "particle fields need a 2-parameter model",
        ));
    }
    let cases: Vec<Case<'_>> = starts
        .iter()
        .enumerate()
        .map(|(i, s)| Case::new(format!("#{i}"), model, settings.clone(), s.to_vec()).end_only())
        .collect();
    let outcomes = Runner::new().parallel(true).run(&cases, observers)?;
    let optima = model.optima();
    outcomes
        .into_iter()
        .zip(starts)
        .map(|(o, s)| {
            let tr = o.result?;
            let last = tr
                .last()
                .map(|x| x.theta.clone())
                .unwrap_or_else(|| s.to_vec());
            let end = [last[0], last[1]];
            let distance = optima
                .iter()
                // hypot: no overflow of the squares for ends far out (|θ| ~ 1e300)
                .map(|o| (end[0] - o[0]).hypot(end[1] - o[1]))
                .fold(f64::INFINITY, f64::min);
            Ok(FieldPoint {
                start: *s,
                end,
                converged: distance <= tolerance,
                distance,
                steps: tr.stats.accepted,
                rejected: tr.stats.rejected,
                rhs_evals: tr.stats.rhs_evals,
                time: o.wall,
                retcode: tr.retcode(),
                stop: match tr.stop {
                    StopReason::SolverFailure(_) => "solver-failure".into(),
                    StopReason::Unstable(_) => "unstable".into(),
                    StopReason::TEnd => "t-end".into(),
                    StopReason::Converged => "converged".into(),
                    StopReason::MaxSteps => "max-steps".into(),
                },
            })
        })
        .collect()
}

/// [`field`] with `sim`'s settings, calling `tick` after each start (progress bars).
pub fn run_field(
    sim: &Simulator<'_>,
    model: &dyn StatModel,
    starts: &[[f64; 2]],
    tolerance: f64,
    tick: &(dyn Fn() + Sync),
) -> Result<Vec<FieldPoint>> {
    struct Tick<'a>(&'a (dyn Fn() + Sync));
    impl Observer for Tick<'_> {
        fn case_finished(&self, _case: &Case<'_>, _outcome: &Outcome) {
            (self.0)()
        }
    }
    field(model, sim.settings(), starts, tolerance, &[&Tick(tick)])
}

/// `field.csv`: `mu1_start, mu2_start, mu1_end, mu2_end, converged, distance, steps, rejected,
/// rhs_evals, stop, retcode` — no wall-clock column, so two runs write the same bytes.
pub fn field_csv(points: &[FieldPoint]) -> String {
    let mut out = String::from(
        "mu1_start,mu2_start,mu1_end,mu2_end,converged,distance,steps,rejected,rhs_evals,stop,retcode\n",
    );
    for p in points {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            crate::export::csv_num(p.start[0]),
            crate::export::csv_num(p.start[1]),
            crate::export::csv_num(p.end[0]),
            crate::export::csv_num(p.end[1]),
            p.converged,
            crate::export::csv_num(p.distance),
            p.steps,
            p.rejected,
            p.rhs_evals,
            p.stop,
            p.retcode
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_skips_exactly_the_diagonal() {
        let g = grid_starts(32, -4.0, 4.0);
        assert_eq!(g.len(), 32 * 32 - 32);
        assert!(g.iter().all(|p| p[0] != p[1]));
        assert!(g.contains(&[-4.0, 4.0]) && g.contains(&[4.0, -4.0]));
    }
}
