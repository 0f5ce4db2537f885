//! The MLP plateau: a teacher–student soft committee machine at its permutation-symmetric
//! saddle, and how long flows take to leave it.
//!
//! Teacher: y = tanh(t₁·x) + tanh(t₂·x) with t₁ = (2, 0), t₂ = (0, 2)·[`TEACHER_SCALE`]/2,
//! x ~ N(0, I₂), N = [`N_EXAMPLES`] (seed [`DATA_SEED`]), no noise. Student: a 2-2-1 tanh
//! network with a Gaussian output of fixed σ = 1 (L = mean squared error / 2 + ½ln 2π,
//! L* = ½ln 2π at the teacher, which the student can represent), n = 9 parameters.
//!
//! The symmetric subspace S = {w₁ = w₂, b₁ = b₂, v₁ = v₂} (identical hidden units, the MLP
//! analogue of μ₁ = μ₂) is invariant under every flow, and the best student on S is a saddle θ_s
//! of the full loss: the best 2-1-1 network (fitted by the natural flow) with its unit duplicated
//! and its output weight halved. There the Fisher metric is singular along the antisymmetric
//! directions u = (Δw, −Δw, Δb, −Δb, Δv, −Δv, 0) (the two units' Jacobians cancel).
//! A start δ₀ off S is θ₀ = θ_s + δ₀u with u a seeded random unit antisymmetric vector.
//!
//! Measured per flow: the escape time, the first recorded step with
//! L ≤ L_s − ½(L_s − L*) (half-way from the plateau's loss L_s to the optimum, a
//! chart-independent criterion); the time to L − L* < [`REACH_GAP`]; rhs evaluations until
//! each; the wall time of the run; and the stop reason (tsit45, rtol [`RTOL`], atol [`ATOL`]).
//!
//! Off S the Fisher's smallest eigenvalue is ~δ⁴ (one antisymmetric direction's Jacobian
//! vanishes to second order): κ ≈ 2e14 already at δ = 1e-2, past the rank-cut margin of the
//! dense exact solve, so the undamped exact flows stop at their first step (`Unstable`); the
//! natural and third-order flows are measured with G + λI.

use super::escape::Variant;
use crate::error::Result;
use crate::flow::{FlowSettings, Simulator};
use crate::model::StatModel;
use crate::model::data::{Dataset, Targets};
use crate::model::mlp::{Activation, Mlp, OutputKind};
use nalgebra::DMatrix;
use rand::SeedableRng;

/// Examples in the teacher's data set.
pub const N_EXAMPLES: usize = 200;
/// Seed of the inputs.
pub const DATA_SEED: u64 = 11;
/// Norm of each teacher weight vector.
pub const TEACHER_SCALE: f64 = 2.0;
/// Gap L − L* that counts as converged.
pub const REACH_GAP: f64 = 1e-6;
/// Newton steps polishing the saddle.
pub const NEWTON_STEPS: usize = 20;
/// Gradient norm that ends a measured run.
pub const GRAD_TOL: f64 = 1e-13;
/// Relative and absolute tolerances of a measured run (tight: the integration's noise floor
/// on ‖∇L‖, ~‖G‖·(atol + rtol|θ|), must stay below the start's gradient, 2.7e-8 at δ₀ = 1e-6
/// for direction seed 2).
pub const RTOL: f64 = 1e-10;
/// See [`RTOL`].
pub const ATOL: f64 = 1e-12;
/// Largest accepted steps of one measured run.
pub const MAX_STEPS: usize = 200_000;

/// The teacher's data set (see the module doc).
pub fn teacher_data() -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(DATA_SEED);
    let mut normal =
        || -> f64 { rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng) };
    let x = DMatrix::from_fn(2, N_EXAMPLES, |_, _| normal());
    let y = DMatrix::from_fn(1, N_EXAMPLES, |_, i| {
        (TEACHER_SCALE * x[(0, i)]).tanh() + (TEACHER_SCALE * x[(1, i)]).tanh()
    });
    Dataset {
        x,
        targets: Targets::Values(y),
        source: format!(
            "teacher tanh({TEACHER_SCALE}x₁) + tanh({TEACHER_SCALE}x₂), n = {N_EXAMPLES}, seed = {DATA_SEED}"
        ),
    }
}

/// A tanh network with layer sizes `sizes` on the teacher's data, Gaussian output σ = 1.
pub fn student(sizes: Vec<usize>) -> Result<Mlp> {
    Mlp::new(
        sizes,
        Activation::Tanh,
        OutputKind::Gaussian { noise: 1.0 },
        teacher_data(),
    )
}

/// L* = ½ ln 2π, the loss of the teacher (noise-free data, σ = 1).
pub fn optimal_loss() -> f64 {
    0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// Parameter index pairs (unit 1, unit 2) of the 2-2-1 student: w·₀, w·₁, b, v.
pub const PAIRS: [(usize, usize); 4] = [(0, 1), (2, 3), (4, 5), (6, 7)];

/// Distance of θ from S: ‖θ − P_S θ‖ = √(Σ over pairs (x₁ − x₂)²/2).
pub fn distance_from_symmetric(theta: &[f64]) -> f64 {
    PAIRS
        .iter()
        .map(|&(i, j)| 0.5 * (theta[i] - theta[j]).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The symmetric saddle θ_s of the 2-2-1 student: the best 2-1-1 network (natural flow from
/// w = (½, ½), b = 0, v = 1, c = 0 to ‖∇L‖ < 1e-12, then at most [`NEWTON_STEPS`] Newton steps
/// with a central-difference Hessian while ‖∇L‖ falls) with its unit duplicated and its output
/// weight halved.
pub fn symmetric_saddle() -> Result<Vec<f64>> {
    let one = student(vec![2, 1, 1])?;
    let settings = FlowSettings {
        rtol: 1e-10,
        atol: 1e-12,
        t_end: 200.0,
        grad_tol: 1e-12,
        ..FlowSettings::default()
    };
    let tr = Simulator::new(&one, settings)?.run(&[0.5, 0.5, 0.0, 1.0, 0.0])?;
    let mut th = tr
        .last()
        .map(|s| s.theta.clone())
        .ok_or_else(|| crate::error::Error::Numerical("the 2-1-1 fit recorded no step".into()))?;
    let n = th.len();
    for _ in 0..NEWTON_STEPS {
        let g = one.gradient(&th);
        let h = 1e-5;
        let mut hess = DMatrix::zeros(n, n);
        for k in 0..n {
            let mut p = th.clone();
            p[k] += h;
            let gp = one.gradient(&p);
            p[k] -= 2.0 * h;
            let gm = one.gradient(&p);
            hess.set_column(k, &((gp - gm) / (2.0 * h)));
        }
        let hess = (&hess + hess.transpose()) * 0.5;
        let Some(step) = hess.lu().solve(&g) else {
            break;
        };
        let next: Vec<f64> = th.iter().zip(step.iter()).map(|(a, b)| a - b).collect();
        if one.gradient(&next).norm() < g.norm() {
            th = next;
        } else {
            break;
        }
    }
    let (w0, w1, b, v, c) = (th[0], th[1], th[2], th[3], th[4]);
    Ok(vec![w0, w0, w1, w1, b, b, 0.5 * v, 0.5 * v, c])
}

/// θ_s + δ₀u with u a unit antisymmetric vector drawn from `seed` (ChaCha8, N(0, 1) entries).
pub fn plateau_start(saddle: &[f64], delta: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let d: Vec<f64> = (0..PAIRS.len())
        .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
        .collect();
    let norm = (2.0 * d.iter().map(|x| x * x).sum::<f64>()).sqrt();
    let mut th = saddle.to_vec();
    for (&(i, j), x) in PAIRS.iter().zip(&d) {
        th[i] += delta * x / norm;
        th[j] -= delta * x / norm;
    }
    th
}

/// One measured plateau escape.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PlateauEscape {
    /// δ₀, the start's distance from S.
    pub delta: f64,
    /// Seed of the antisymmetric direction.
    pub seed: u64,
    pub variant: String,
    /// Damping λ of the metric (0 for the Euclidean flow).
    pub damping: f64,
    /// Loss at the saddle L_s.
    pub plateau_loss: f64,
    /// First recorded time with L ≤ L_s − ½(L_s − L*) (None: never).
    pub t_escape: Option<f64>,
    /// rhs evaluations until `t_escape` (all of them when it never escaped).
    pub evals_escape: usize,
    /// First time with L − L* < [`REACH_GAP`] (None: never by t_end).
    pub t_reach: Option<f64>,
    /// rhs evaluations until `t_reach` (all of them when it was not reached).
    pub rhs_evals: usize,
    /// Accepted steps of the whole run.
    pub steps: usize,
    /// How the run ended.
    pub stop: String,
    /// Largest recorded dL/dt (≤ 0 for a descent flow).
    pub max_rate: f64,
    /// Final loss gap L − L*.
    pub final_gap: f64,
    /// Wall time of the run, ms (varies with the machine's load).
    pub wall_ms: f64,
}

/// Integrate `variant` on the 2-2-1 student from δ₀ off S (direction `seed`) until t_end, the
/// natural and corrected flows with the metric G + λI (λ = `damping`; the Euclidean flow
/// undamped).
pub fn measure(
    saddle: &[f64],
    delta: f64,
    seed: u64,
    variant: Variant,
    damping: f64,
    t_end: f64,
) -> Result<PlateauEscape> {
    let m = student(vec![2, 2, 1])?;
    let l_star = optimal_loss();
    let l_s = m.loss(saddle);
    let level = l_s - 0.5 * (l_s - l_star);
    let start = plateau_start(saddle, delta, seed);
    let damping = if variant == Variant::Euclidean {
        0.0
    } else {
        damping
    };
    let settings = FlowSettings {
        max_steps: MAX_STEPS,
        grad_tol: GRAD_TOL,
        rtol: RTOL,
        atol: ATOL,
        damping,
        ..variant.settings(t_end)
    };
    let clock = std::time::Instant::now();
    let tr = Simulator::new(&m, settings)?.run(&start)?;
    let wall_ms = clock.elapsed().as_secs_f64() * 1e3;
    let esc = tr.steps.iter().find(|s| s.loss <= level);
    let reach = tr.steps.iter().find(|s| s.loss - l_star < REACH_GAP);
    Ok(PlateauEscape {
        delta,
        seed,
        variant: variant.label(),
        damping,
        plateau_loss: l_s,
        t_escape: esc.map(|s| s.t),
        evals_escape: esc.map_or(tr.stats.rhs_evals, |s| s.rhs_evals),
        t_reach: tr.time_to_reach(l_star, REACH_GAP),
        rhs_evals: reach.map_or(tr.stats.rhs_evals, |s| s.rhs_evals),
        steps: tr.stats.accepted,
        stop: tr.retcode().name().to_string(),
        max_rate: tr
            .steps
            .iter()
            .map(|s| s.rate)
            .fold(f64::NEG_INFINITY, f64::max),
        final_gap: tr.steps.last().map_or(f64::NAN, |s| s.loss - l_star),
        wall_ms,
    })
}
