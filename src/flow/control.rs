//! Singularity-aware step control near the exchange lines θᵢ = θⱼ of a model
//! ([`crate::model::StatModel::exchange_pairs`]; μ₁ = μ₂ for the mixture).
//!
//! Near the line the Fisher matrix loses rank (κ ~ 1/δ², δ = θⱼ − θᵢ) and the exchange
//! component of the natural gradient grows like 1/δ, so locally δ̇ ≈ a/δ: the flow's Jacobian
//! has an eigenvalue ≈ −δ̇/δ in the exchange direction. An explicit method that does not know
//! this finds the stable step size by rejections, and a large step aimed at the line can jump
//! across it (a label switch the exact flow never makes).
//!
//! All of this holds only where the line is singular for the flow's metric (exact, sampled,
//! empirical Fisher without damping: rank one on the line). For the Euclidean flow, a diagonal
//! or a damped metric f is smooth across the line and, for w ≠ ½, crosses it; the rules below
//! then do not apply (they would freeze the flow on the line). Which pairs are singular is
//! probed per run by [`crate::flow::singular_pairs`]. The rule, on singular pairs:
//!
//! * **(a) never cross.** After every step the sign of each δ is compared with the sign before
//!   it; if one changed (or δ became exactly 0), the step is undone and retried with a quarter
//!   of its size (`crossings_prevented` in the statistics).
//! * **(b) predicted relative change.** Before every step, with the current derivative δ̇ (the
//!   solver's own f at the step start), the step is limited to
//!   h ≤ η_in·|δ|/|δ̇| when δ̇ points towards the line, h ≤ η_out·|δ|/|δ̇| when away;
//!   η_in = η (default 0.5: the linear prediction reaches at most half-way to the line),
//!   η_out = 4η (the stiff eigenvalue −δ̇/δ stays inside tsit45's stability interval
//!   [−3.3, 0] with the error controller's own margin). Far from the line |δ|/|δ̇| is large
//!   and the limit is inactive (`control_limited` counts the steps it shortened).
//! * **(c) defined solve.** f uses the rank-revealing pseudo-inverse (eigen-directions with
//!   λᵢ + λ ≤ RANK_TOL·λ_max dropped) and optionally a damping floor λ_eff = max(λ, ν·tr G)
//!   (`damping_floor`); neither ever divides by 0, and non-finite values are replaced by 0.
//! * **(d) start on the line.** If θᵢ = θⱼ exactly at the start, the flow is restricted to the
//!   line (it is invariant: the single-Gaussian sub-model's natural gradient, see
//!   [`crate::flow::FlowRhs::set_line`]); the run records an `on-singular-line` event.
//!   `--perturb EPS` moves such starts to θⱼ + EPS/2, θᵢ − EPS/2 instead.

/// Default η (largest predicted relative change of δ per step towards the line).
pub const DEFAULT_ETA: f64 = 0.5;
/// Default half-width of the near-singular zone (for statistics).
pub const DEFAULT_ZONE: f64 = 0.1;

/// The step-control rule for one model.
#[derive(Clone, Debug)]
pub struct StepControl {
    /// every exchange pair (near-singular zone statistics)
    pairs: Vec<(usize, usize)>,
    /// the pairs whose line is singular for this flow (rules (a), (b), (d))
    singular: Vec<(usize, usize)>,
    eta: f64,
    zone: f64,
}

impl StepControl {
    /// Control for the given exchange pairs with parameter η and zone half-width.
    pub fn new(pairs: Vec<(usize, usize)>, eta: f64, zone: f64) -> Self {
        StepControl {
            singular: pairs.clone(),
            pairs,
            eta,
            zone,
        }
    }

    /// Apply rules (a), (b), (d) only to these pairs (those whose line is a singular set of
    /// the flow, [`crate::flow::singular_pairs`]); the zone statistics keep every pair.
    pub fn with_singular(mut self, singular: Vec<(usize, usize)>) -> Self {
        self.singular = singular;
        self
    }

    /// The exchange pairs watched (zone statistics).
    pub fn pairs(&self) -> &[(usize, usize)] {
        &self.pairs
    }

    /// The pairs the control acts on.
    pub fn singular_pairs(&self) -> &[(usize, usize)] {
        &self.singular
    }

    /// Largest step allowed at θ with derivative `dy` (rule (b)), or ∞.
    pub fn max_step(&self, theta: &[f64], dy: &[f64]) -> f64 {
        let mut h = f64::INFINITY;
        for &(i, j) in &self.singular {
            let d = theta[j] - theta[i];
            let dd = dy[j] - dy[i];
            if d == 0.0 || dd == 0.0 || !dd.is_finite() {
                continue;
            }
            let towards = d * dd < 0.0;
            let eta = if towards { self.eta } else { 4.0 * self.eta };
            h = h.min(eta * d.abs() / dd.abs());
        }
        h
    }

    /// True if a step from `before` to `after` crossed (or landed on) a line it was not on
    /// (rule (a)).
    pub fn crossed(&self, before: &[f64], after: &[f64]) -> bool {
        self.singular.iter().any(|&(i, j)| {
            let d0 = before[j] - before[i];
            let d1 = after[j] - after[i];
            d0 != 0.0 && (d1 == 0.0 || d0.signum() != d1.signum())
        })
    }

    /// True if θ lies exactly on a line.
    pub fn on_line(&self, theta: &[f64]) -> Option<(usize, usize)> {
        self.singular
            .iter()
            .copied()
            .find(|&(i, j)| theta[i] == theta[j])
    }

    /// True if θ is inside the near-singular zone of some pair.
    pub fn in_zone(&self, theta: &[f64]) -> bool {
        self.pairs
            .iter()
            .any(|&(i, j)| (theta[j] - theta[i]).abs() < self.zone)
    }
}

/// Move a start that lies exactly on a line θᵢ = θⱼ off it: θᵢ −= ε/2, θⱼ += ε/2 (rule (d),
/// `--perturb EPS`). Returns true if the start was moved.
pub fn perturb_off_lines(pairs: &[(usize, usize)], start: &mut [f64], eps: f64) -> bool {
    let mut moved = false;
    for &(i, j) in pairs {
        if start[i] == start[j] {
            start[i] -= 0.5 * eps;
            start[j] += 0.5 * eps;
            moved = true;
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_eta_times_distance_over_speed() {
        let c = StepControl::new(vec![(0, 1)], 0.5, 0.1);
        // δ = 0.01 moving towards the line at speed 1: h ≤ 0.5·0.01
        assert!((c.max_step(&[0.0, 0.01], &[0.0, -1.0]) - 0.005).abs() < 1e-15);
        // moving away: 4η
        assert!((c.max_step(&[0.0, 0.01], &[0.0, 1.0]) - 0.02).abs() < 1e-15);
        assert!(c.crossed(&[0.0, 0.01], &[0.0, -0.01]));
        assert!(c.crossed(&[0.0, 0.01], &[0.0, 0.0]));
        assert!(!c.crossed(&[0.0, 0.01], &[0.0, 0.02]));
        assert!(!c.crossed(&[1.0, 1.0], &[1.0, 1.0]));
    }

    #[test]
    fn a_pair_that_is_not_singular_is_only_watched_for_statistics() {
        let c = StepControl::new(vec![(0, 1)], 0.5, 0.1).with_singular(Vec::new());
        assert_eq!(c.max_step(&[0.0, 0.01], &[0.0, -1.0]), f64::INFINITY);
        assert!(!c.crossed(&[0.0, 0.01], &[0.0, -0.01]));
        assert!(c.on_line(&[1.0, 1.0]).is_none());
        assert!(c.in_zone(&[0.0, 0.01]));
    }
}
