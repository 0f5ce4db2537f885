//! The three gradient flows of KL(ρ‖π) on the grid, in the state θ = log ρ, integrated with
//! diffsol.
//!
//! * **Fisher–Rao** (`fisher-rao`): ∂ₜρ = −ρ(log(ρ/π) − E_ρ[log(ρ/π)]), i.e.
//!   ∂ₜθᵢ = −(uᵢ − Ē), uᵢ = θᵢ − log πᵢ, Ē = Σ Vρᵢuᵢ / Σ Vρᵢ. Mass is conserved exactly by the
//!   ODE; its solution is ρₜ ∝ ρ₀^{e^{−t}} π^{1−e^{−t}} (cell by cell, so also on the grid).
//!   The Jacobian −I + 1·wᵀ (wⱼ = Vρⱼ(uⱼ + 1 − Ē)/M) has eigenvalues −1 and 0: not stiff,
//!   integrated with `tsit45` by default.
//! * **Wasserstein** (`wasserstein`, Fokker–Planck): ∂ₜρ = ∇·(ρ∇log(ρ/π)) = ∇·(π∇(ρ/π)),
//!   discretized by finite volumes with the flux −√(πᵢπⱼ)(ρⱼ/πⱼ − ρᵢ/πᵢ)/h through the face
//!   between neighbours i, j, and zero flux through the boundary. This is a reversible Markov
//!   generator with rates kᵢ→ⱼ = √(πⱼ/πᵢ)/h²: mass is conserved, π is its exact stationary
//!   density and the discrete KL decreases. In θ: ∂ₜθᵢ = Σⱼ (e^{θⱼ−θᵢ−aᵢⱼ} − e^{aᵢⱼ})/h²,
//!   aᵢⱼ = (log πⱼ − log πᵢ)/2. Stiff (eigenvalues down to ≈ −4d/h²): `bdf` with the exact
//!   Jacobian (given to diffsol as Jacobian–vector products; it forms a dense n×n matrix, so
//!   n ≤ [`IMPLICIT_CELLS_MAX`]).
//! * **Wasserstein–Fisher–Rao** (`wfr`): the sum of both right-hand sides (unit weights).
//!
//! Every accepted step records t, KL(ρ̂‖π) of the normalized ρ̂ and the mass Σ Vρ; the run
//! stops at `t_end` or at the step cap (diffsol has none of its own).

use super::grid::{Grid, log_mass};
use crate::error::{Error, Result};
use crate::flow::SolverKind;
use diffsol::OdeSolverMethod;
use diffsol::{FaerSparseLU, FaerSparseMat, NalgebraLU, NalgebraMat, OdeBuilder, OdeEquations};
use diffsol::{OdeSolverStopReason, Vector};
use serde::Serialize;

/// Most stored states (cells × steps) per flow for the certificate: beyond it every other
/// stored state is dropped (the stride doubles), the first and the last are always kept.
pub const STATE_VALUES_MAX: usize = 1_000_000;

/// Largest number of cells for implicit solvers: they form a dense n×n Jacobian and factor it
/// (8n² bytes = 32 MiB and n³/3 ≈ 2.9 GFLOP per factorization at 2048).
pub const IMPLICIT_CELLS_MAX: usize = 2048;

/// Which gradient flow of KL(ρ‖π).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    /// The Fisher–Rao (spherical Hellinger) flow.
    FisherRao,
    /// The Wasserstein flow (Fokker–Planck).
    Wasserstein,
    /// Their sum, the Wasserstein–Fisher–Rao flow.
    Wfr,
}

impl FlowKind {
    /// Names accepted in model files and on the command line.
    pub const NAMES: &'static [&'static str] = &["fisher-rao", "wasserstein", "wfr"];
    /// All three, in report order.
    pub const ALL: [FlowKind; 3] = [FlowKind::FisherRao, FlowKind::Wasserstein, FlowKind::Wfr];

    /// Parse a name; the error names `field`.
    pub fn parse(field: &str, s: &str) -> Result<FlowKind> {
        match s {
            "fisher-rao" => Ok(FlowKind::FisherRao),
            "wasserstein" => Ok(FlowKind::Wasserstein),
            "wfr" => Ok(FlowKind::Wfr),
            other => Err(Error::invalid(
                field,
                format!("'{other}'"),
                format!("expected one of {}", FlowKind::NAMES.join(", ")),
            )),
        }
    }

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            FlowKind::FisherRao => "fisher-rao",
            FlowKind::Wasserstein => "wasserstein",
            FlowKind::Wfr => "wfr",
        }
    }

    /// A title, e.g. "Fisher–Rao".
    pub fn title(self) -> &'static str {
        match self {
            FlowKind::FisherRao => "Fisher–Rao",
            FlowKind::Wasserstein => "Wasserstein",
            FlowKind::Wfr => "Wasserstein–Fisher–Rao",
        }
    }

    /// The default solver: tsit45 for the non-stiff Fisher–Rao flow, bdf otherwise.
    pub fn default_solver(self) -> SolverKind {
        match self {
            FlowKind::FisherRao => SolverKind::Tsit45,
            _ => SolverKind::Bdf,
        }
    }
}

/// Integration settings of a density flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DensitySettings {
    /// End time.
    pub t_end: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance (on log ρ).
    pub atol: f64,
    /// Cap on accepted + rejected steps.
    pub max_steps: usize,
    /// Times at which log ρ is saved (sorted, within [0, t_end]).
    pub save_at: Vec<f64>,
    /// Solver; `None` (or `auto`): [`FlowKind::default_solver`].
    pub solver: Option<SolverKind>,
    /// Implicit solvers: integrate f with a dense Jacobian (the old path, for comparisons)
    /// instead of the sparse split form (see [`integrate`]).
    pub dense_jacobian: bool,
}

impl Default for DensitySettings {
    fn default() -> Self {
        DensitySettings {
            t_end: 10.0,
            rtol: 1e-8,
            atol: 1e-10,
            max_steps: 100_000,
            save_at: vec![0.0, 0.5, 1.0, 2.0, 5.0, 10.0],
            solver: None,
            dense_jacobian: false,
        }
    }
}

/// The right-hand side of one flow for a fixed target on a grid.
pub struct DensityRhs<'a> {
    flow: FlowKind,
    log_pi: &'a [f64],
    volume: f64,
    /// (i, j, 1/h², aᵢⱼ) per face.
    faces: Vec<(usize, usize, f64, f64)>,
}

impl<'a> DensityRhs<'a> {
    /// The rhs of `flow` towards `log_pi` (normalized on `grid`).
    pub fn new(flow: FlowKind, grid: &Grid, log_pi: &'a [f64]) -> DensityRhs<'a> {
        let faces = grid
            .faces()
            .into_iter()
            .map(|(i, j, w)| (i, j, w, 0.5 * (log_pi[j] - log_pi[i])))
            .collect();
        DensityRhs {
            flow,
            log_pi,
            volume: grid.volume(),
            faces,
        }
    }

    fn has_fr(&self) -> bool {
        self.flow != FlowKind::Wasserstein
    }
    fn has_w(&self) -> bool {
        self.flow != FlowKind::FisherRao
    }

    /// Weights Vρᵢ/M (scaled by the largest θ to avoid overflow) and Ē.
    fn fr_weights(&self, th: &[f64]) -> (Vec<f64>, f64) {
        let m = th.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut w: Vec<f64> = th.iter().map(|t| (t - m).exp()).collect();
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= s);
        let e = w
            .iter()
            .zip(th.iter().zip(self.log_pi))
            .map(|(wi, (t, p))| wi * (t - p))
            .sum();
        (w, e)
    }

    /// y = f(θ).
    pub fn eval(&self, th: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        if self.has_fr() {
            let (_, e) = self.fr_weights(th);
            for ((yi, t), p) in y.iter_mut().zip(th).zip(self.log_pi) {
                *yi = -(t - p - e);
            }
        }
        if self.has_w() {
            for &(i, j, w, a) in &self.faces {
                let d = th[j] - th[i];
                y[i] += w * ((d - a).exp() - a.exp());
                y[j] += w * ((a - d).exp() - (-a).exp());
            }
        }
    }

    /// y = (∂f/∂θ)·v.
    pub fn jac_vec(&self, th: &[f64], v: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        if self.has_fr() {
            let (w, e) = self.fr_weights(th);
            let s: f64 = w
                .iter()
                .zip(th.iter().zip(self.log_pi))
                .zip(v)
                .map(|((wj, (t, p)), vj)| wj * (t - p + 1.0 - e) * vj)
                .sum();
            for (yi, vi) in y.iter_mut().zip(v) {
                *yi = -vi + s;
            }
        }
        if self.has_w() {
            for &(i, j, w, a) in &self.faces {
                let d = th[j] - th[i];
                let dv = v[j] - v[i];
                y[i] += w * (d - a).exp() * dv;
                y[j] -= w * (a - d).exp() * dv;
            }
        }
    }

    /// The split form's rhs at x = (θ̃, c) (see [`integrate`]): −(θ̃ − log π)·[FR] + W(θ̃)
    /// and c' = −Ē(θ̃)·[FR].
    pub fn eval_split(&self, x: &[f64], y: &mut [f64]) {
        let n = self.log_pi.len();
        let th = &x[..n];
        y.fill(0.0);
        if self.has_fr() {
            let (_, e) = self.fr_weights(th);
            for ((yi, t), p) in y[..n].iter_mut().zip(th).zip(self.log_pi) {
                *yi = -(t - p);
            }
            y[n] = -e;
        }
        if self.has_w() {
            self.add_w(th, &mut y[..n]);
        }
    }

    /// The Jacobian–vector product diffsol is given for the split form: the θ̃ rows
    /// −v·[FR] + W'v. The c row (−∇Ē·v) is left out: it is dense, so it would force one
    /// colour per column and fill the LU; nothing depends on c, so the Newton iteration is
    /// block lower-triangular and c converges one iteration after θ̃.
    pub fn jac_vec_split(&self, x: &[f64], v: &[f64], y: &mut [f64]) {
        let n = self.log_pi.len();
        let th = &x[..n];
        let vt = &v[..n];
        y.fill(0.0);
        if self.has_fr() {
            for (yi, vi) in y[..n].iter_mut().zip(vt) {
                *yi = -vi;
            }
        }
        if self.has_w() {
            for &(i, j, w, a) in &self.faces {
                let d = th[j] - th[i];
                let dv = vt[j] - vt[i];
                y[i] += w * (d - a).exp() * dv;
                y[j] -= w * (a - d).exp() * dv;
            }
        }
    }

    /// y += W(θ).
    fn add_w(&self, th: &[f64], y: &mut [f64]) {
        for &(i, j, w, a) in &self.faces {
            let d = th[j] - th[i];
            y[i] += w * ((d - a).exp() - a.exp());
            y[j] += w * ((a - d).exp() - (-a).exp());
        }
    }

    /// KL(ρ̂‖π) of the normalized ρ̂ = ρ/M.
    pub fn kl(&self, th: &[f64]) -> f64 {
        kl(th, self.log_pi, self.volume)
    }

    /// ‖∇_θ KL(ρ̂‖π)‖₂ (gᵢ = Vρ̂ᵢ(log(ρ̂ᵢ/πᵢ) − KL)) and Σ Vρ̂ᵢ(|log ρ̂ᵢ| + |log πᵢ| + 1).
    pub fn grad_and_scale(&self, th: &[f64]) -> (f64, f64) {
        let z = log_mass(th, self.volume);
        let kl = self.kl(th);
        let (mut g2, mut scale) = (0.0, 0.0);
        for (t, p) in th.iter().zip(self.log_pi) {
            let lr = t - z;
            let m = self.volume * lr.exp();
            let g = m * (lr - p - kl);
            g2 += g * g;
            scale += m * (lr.abs() + p.abs() + 1.0);
        }
        (g2.sqrt(), scale)
    }

    /// The mass M = Σ Vρᵢ.
    pub fn mass(&self, th: &[f64]) -> f64 {
        log_mass(th, self.volume).exp()
    }
}

/// KL(ρ̂‖π) = Σ V ρ̂ᵢ (log ρ̂ᵢ − log πᵢ) on a grid of cell volume V, ρ̂ = ρ/Σ Vρ (`log_pi`
/// normalized).
pub fn kl(log_rho: &[f64], log_pi: &[f64], volume: f64) -> f64 {
    let z = log_mass(log_rho, volume);
    log_rho
        .iter()
        .zip(log_pi)
        .map(|(r, p)| {
            let lr = r - z;
            volume * lr.exp() * (lr - p)
        })
        .sum()
}

/// The closed form of the Fisher–Rao flow: log ρₜ = e^{−t} log ρ₀ + (1 − e^{−t}) log π, up
/// to normalization (returned normalized).
pub fn fisher_rao_exact(log_rho0: &[f64], log_pi: &[f64], volume: f64, t: f64) -> Vec<f64> {
    let a = (-t).exp();
    let th: Vec<f64> = log_rho0
        .iter()
        .zip(log_pi)
        .map(|(r, p)| a * r + (1.0 - a) * p)
        .collect();
    super::grid::normalized(&th, volume)
}

/// How a density flow ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum DensityStop {
    /// Reached t_end.
    Finished,
    /// The step cap ended it.
    StepCap,
    /// The solver failed (message).
    SolverFailure(String),
    /// log ρ became non-finite.
    NonFinite,
}

/// One integrated density flow.
#[derive(Clone, Debug, Serialize)]
pub struct DensityPath {
    /// Which flow.
    pub flow: FlowKind,
    /// Solver used.
    pub solver: String,
    /// t at the start and after every accepted step.
    pub times: Vec<f64>,
    /// KL(ρ̂‖π) at those times.
    pub kl: Vec<f64>,
    /// Mass Σ Vρ at those times (1 at the start).
    pub mass: Vec<f64>,
    /// Smallest ρᵢ over the grid at those times.
    pub min_rho: Vec<f64>,
    /// ‖∇_θ KL‖₂ at those times: gᵢ = Vρ̂ᵢ(log(ρ̂ᵢ/πᵢ) − KL).
    pub grad_norm: Vec<f64>,
    /// Σ Vρ̂ᵢ(|log ρ̂ᵢ| + |log πᵢ| + 1): the scale of KL's round-off.
    pub kl_scale: Vec<f64>,
    /// maxᵢ |θᵢ| of the state.
    pub theta_max: Vec<f64>,
    /// SHA-256 of the state θ = log ρ (unnormalized, as integrated; little-endian f64 bytes).
    pub state_sha256: Vec<String>,
    /// (index into `times`, θ) of the stored states: every `state_stride`-th and the last.
    #[serde(skip)]
    pub states: Vec<(usize, Vec<f64>)>,
    /// The last recorded θ (moved into `states` when the run ends).
    #[serde(skip)]
    last_state: Vec<f64>,
    /// Stride of `states` (doubles whenever they exceed [`STATE_VALUES_MAX`] values).
    pub state_stride: usize,
    /// (t, normalized log ρ) at the save times reached.
    #[serde(skip)]
    pub saved: Vec<(f64, Vec<f64>)>,
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (error-test failures).
    pub rejected: usize,
    /// Linear-solver setups (Jacobian factorizations; 0 for explicit solvers).
    pub factorizations: usize,
    /// How it ended.
    pub stop: DensityStop,
}

impl DensityPath {
    /// Whether it reached t_end.
    pub fn finished(&self) -> bool {
        self.stop == DensityStop::Finished
    }

    /// Whether KL never increased from one accepted step to the next by more than `tol`
    /// (absolute, for round-off), and the largest increase.
    pub fn kl_monotone(&self, tol: f64) -> (bool, f64) {
        let worst = self
            .kl
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(f64::NEG_INFINITY, f64::max);
        (worst <= tol || self.kl.len() < 2, worst.max(0.0))
    }

    /// Largest |M(t) − 1|.
    pub fn mass_drift(&self) -> f64 {
        self.mass
            .iter()
            .map(|m| (m - 1.0).abs())
            .fold(0.0, f64::max)
    }

    /// Mean decay rate −Δlog KL/Δt over [t1, t2] (KL interpolated linearly in log between
    /// steps); `None` when the path does not cover the window or KL is not positive there.
    pub fn rate(&self, t1: f64, t2: f64) -> Option<f64> {
        let at = |t: f64| -> Option<f64> {
            let k = self.times.iter().position(|&s| s >= t)?;
            if k == 0 {
                return self.kl.first().map(|v| v.ln());
            }
            let (ta, tb) = (self.times[k - 1], self.times[k]);
            let (a, b) = (self.kl[k - 1], self.kl[k]);
            if a <= 0.0 || b <= 0.0 {
                return None;
            }
            let s = (t - ta) / (tb - ta);
            Some(a.ln() * (1.0 - s) + b.ln() * s)
        };
        let (a, b) = (at(t1)?, at(t2)?);
        let r = -(b - a) / (t2 - t1);
        r.is_finite().then_some(r)
    }
}

/// Integrate `flow` from `log_rho0` towards `log_pi` (both normalized on `grid`).
///
/// Explicit solvers integrate θ' = f(θ). Implicit solvers integrate the *split form* in the
/// state (θ̃, c), θ = θ̃ − c:
///
///   θ̃ᵢ' = −(θ̃ᵢ − log πᵢ)·[FR] + Wᵢ(θ̃),  c' = −Ē(θ̃)·[FR],
///
/// which is the same flow: W and the normalized ρ̂ depend on θ only up to a constant, and
/// Ē(θ̃ − c) = Ē(θ̃) − c, so θ̃' − c' = f(θ̃ − c). Its Jacobian [[−I·[FR] + W', 0], [−∇Ēᵀ, 0]] is
/// sparse — the 5-point (3-point in 1-D) stencil plus one dense row, no dense column — where f's
/// Jacobian has the dense rank-one term 1·∇Ēᵀ. diffsol finds the pattern by NaN probing, colours
/// it (a handful of Jacobian–vector products per Jacobian) and factors it with faer's sparse LU.
/// Mass is still a genuine check: log M(θ) = log M(θ̃) − c, and c is integrated, not computed
/// from θ̃. `settings.dense_jacobian` selects the old dense path (f with a dense n×n Jacobian,
/// n ≤ [`IMPLICIT_CELLS_MAX`]) for comparisons.
pub fn integrate(
    flow: FlowKind,
    grid: &Grid,
    log_pi: &[f64],
    log_rho0: &[f64],
    settings: &DensitySettings,
) -> Result<DensityPath> {
    let rhs = DensityRhs::new(flow, grid, log_pi);
    let solver = match settings.solver {
        None | Some(SolverKind::Auto) => flow.default_solver(),
        Some(k) => k,
    };
    let n = log_rho0.len();
    let dense = solver.is_implicit() && settings.dense_jacobian;
    if dense && n > IMPLICIT_CELLS_MAX {
        return Err(Error::invalid(
            "density.points",
            n,
            format!(
                "the dense-Jacobian path forms a dense {n}×{n} matrix; use at most {IMPLICIT_CELLS_MAX} cells, or the sparse default"
            ),
        ));
    }
    let solver_err = |e: diffsol::DiffsolError| Error::Solver {
        solver: solver.name().into(),
        message: e.to_string(),
    };
    let mut path = DensityPath {
        flow,
        solver: solver.name().into(),
        times: Vec::new(),
        kl: Vec::new(),
        mass: Vec::new(),
        min_rho: Vec::new(),
        grad_norm: Vec::new(),
        kl_scale: Vec::new(),
        theta_max: Vec::new(),
        state_sha256: Vec::new(),
        states: Vec::new(),
        state_stride: 1,
        last_state: Vec::new(),
        saved: Vec::new(),
        steps: 0,
        rejected: 0,
        factorizations: 0,
        stop: DensityStop::Finished,
    };
    let plain = |x: &[f64]| x.to_vec();
    if solver.is_implicit() && !dense {
        let split = |x: &[f64]| {
            let c = x[n];
            x[..n].iter().map(|v| v - c).collect::<Vec<f64>>()
        };
        let mut x0 = log_rho0.to_vec();
        x0.push(0.0);
        let problem = OdeBuilder::<FaerSparseMat<f64>>::new()
            .t0(0.0)
            .rtol(settings.rtol)
            .atol([settings.atol])
            .init(move |_p, _t, y: &mut [f64]| y.copy_from_slice(&x0), n + 1)
            .rhs_implicit(
                |x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| rhs.eval_split(x, y),
                |x: &[f64], _p: &[f64], _t: f64, v: &[f64], y: &mut [f64]| {
                    rhs.jac_vec_split(x, v, y)
                },
            )
            .build()
            .map_err(solver_err)?;
        match solver {
            SolverKind::Bdf => drive(
                problem.bdf::<FaerSparseLU<f64>>().map_err(solver_err)?,
                &rhs,
                &split,
                grid,
                settings,
                &mut path,
            ),
            SolverKind::TrBdf2 => drive(
                problem.tr_bdf2::<FaerSparseLU<f64>>().map_err(solver_err)?,
                &rhs,
                &split,
                grid,
                settings,
                &mut path,
            ),
            _ => drive(
                problem
                    .esdirk34::<FaerSparseLU<f64>>()
                    .map_err(solver_err)?,
                &rhs,
                &split,
                grid,
                settings,
                &mut path,
            ),
        }
    } else {
        let x0 = log_rho0.to_vec();
        let problem = OdeBuilder::<NalgebraMat<f64>>::new()
            .t0(0.0)
            .rtol(settings.rtol)
            .atol([settings.atol])
            .init(move |_p, _t, y: &mut [f64]| y.copy_from_slice(&x0), n)
            .rhs_implicit(
                |x: &[f64], _p: &[f64], _t: f64, y: &mut [f64]| rhs.eval(x, y),
                |x: &[f64], _p: &[f64], _t: f64, v: &[f64], y: &mut [f64]| rhs.jac_vec(x, v, y),
            )
            .build()
            .map_err(solver_err)?;
        match solver {
            SolverKind::Bdf => drive(
                problem.bdf::<NalgebraLU<f64>>().map_err(solver_err)?,
                &rhs,
                &plain,
                grid,
                settings,
                &mut path,
            ),
            SolverKind::TrBdf2 => drive(
                problem.tr_bdf2::<NalgebraLU<f64>>().map_err(solver_err)?,
                &rhs,
                &plain,
                grid,
                settings,
                &mut path,
            ),
            SolverKind::Esdirk34 => drive(
                problem.esdirk34::<NalgebraLU<f64>>().map_err(solver_err)?,
                &rhs,
                &plain,
                grid,
                settings,
                &mut path,
            ),
            SolverKind::Tsit45 | SolverKind::Auto => drive(
                problem.tsit45().map_err(solver_err)?,
                &rhs,
                &plain,
                grid,
                settings,
                &mut path,
            ),
        }
    }
    let last = path.times.len().saturating_sub(1);
    if !path.times.is_empty() && path.states.last().is_none_or(|(i, _)| *i != last) {
        let th = std::mem::take(&mut path.last_state);
        path.states.push((last, th));
    }
    Ok(path)
}

/// SHA-256 of the little-endian bytes of `th`.
pub fn state_hash(th: &[f64]) -> String {
    let bytes: Vec<u8> = th.iter().flat_map(|v| v.to_le_bytes()).collect();
    crate::config::sha256_hex(&bytes)
}

/// Record (t, θ) into the path: KL, mass, smallest ρ, the certificate's per-step values, and
/// θ itself every `state_stride` steps.
fn record(path: &mut DensityPath, rhs: &DensityRhs<'_>, t: f64, th: &[f64]) -> bool {
    let finite = th.iter().all(|v| v.is_finite());
    let k = path.times.len();
    path.times.push(t);
    path.kl.push(rhs.kl(th));
    path.mass.push(rhs.mass(th));
    let lo = th.iter().copied().fold(f64::INFINITY, f64::min);
    path.min_rho.push(lo.exp());
    let (g, scale) = rhs.grad_and_scale(th);
    path.grad_norm.push(g);
    path.kl_scale.push(scale);
    path.theta_max
        .push(th.iter().fold(0.0f64, |m, v| m.max(v.abs())));
    path.state_sha256.push(state_hash(th));
    let n = th.len().max(1);
    if k.is_multiple_of(path.state_stride) {
        path.states.push((k, th.to_vec()));
        while path.states.len() > 2 && path.states.len() * n > STATE_VALUES_MAX {
            path.state_stride *= 2;
            let s = path.state_stride;
            path.states.retain(|(i, _)| i % s == 0);
        }
    }
    path.last_state.clear();
    path.last_state.extend_from_slice(th);
    finite
}

fn drive<'a, Eqn, S>(
    mut solver: S,
    rhs: &DensityRhs<'_>,
    state: &dyn Fn(&[f64]) -> Vec<f64>,
    grid: &Grid,
    s: &DensitySettings,
    path: &mut DensityPath,
) where
    Eqn: OdeEquations<T = f64> + 'a,
    S: OdeSolverMethod<'a, Eqn>,
{
    let vol = grid.volume();
    let y0 = state(&solver.state().y.clone_as_vec());
    record(path, rhs, 0.0, &y0);
    let mut next = 0;
    while next < s.save_at.len() && s.save_at[next] <= 0.0 {
        path.saved.push((0.0, super::grid::normalized(&y0, vol)));
        next += 1;
    }
    if let Err(e) = solver.set_stop_time(s.t_end) {
        path.stop = DensityStop::SolverFailure(e.to_string());
        return;
    }
    loop {
        let reason = match solver.step() {
            Ok(r) => r,
            Err(e) => {
                path.stop = DensityStop::SolverFailure(e.to_string());
                break;
            }
        };
        let stats = solver.get_statistics();
        path.steps = stats.number_of_steps;
        path.rejected = stats.number_of_error_test_failures;
        path.factorizations = stats.number_of_linear_solver_setups;
        let t = solver.state().t;
        // save points inside the step (dense output), then the step's end
        while next < s.save_at.len() && s.save_at[next] < t {
            let ts = s.save_at[next];
            match solver.interpolate(ts) {
                Ok(v) => path
                    .saved
                    .push((ts, super::grid::normalized(&state(&v.clone_as_vec()), vol))),
                Err(e) => {
                    path.stop = DensityStop::SolverFailure(e.to_string());
                    return;
                }
            }
            next += 1;
        }
        let y = state(&solver.state().y.clone_as_vec());
        if !record(path, rhs, t, &y) {
            path.stop = DensityStop::NonFinite;
            return;
        }
        let done = matches!(reason, OdeSolverStopReason::TstopReached) || t >= s.t_end;
        if done {
            while next < s.save_at.len() && s.save_at[next] <= t {
                path.saved
                    .push((s.save_at[next], super::grid::normalized(&y, vol)));
                next += 1;
            }
            break;
        }
        if path.steps + path.rejected >= s.max_steps {
            path.stop = DensityStop::StepCap;
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Jacobian–vector product against central differences of the rhs, for all flows.
    #[test]
    fn jacobian_matches_finite_differences() {
        let g = Grid::plane((-2.0, 2.0), (-1.0, 2.0), 5, 4);
        let lp: Vec<f64> = super::super::grid::normalized(
            &g.eval(|x| -0.5 * x[0] * x[0] - x[1] * x[1] * 0.7 + 0.3 * x[0] * x[1]),
            g.volume(),
        );
        let th: Vec<f64> = (0..g.len())
            .map(|i| (i as f64 * 0.37).sin() - 1.0)
            .collect();
        let v: Vec<f64> = (0..g.len()).map(|i| (i as f64 * 1.3).cos()).collect();
        for flow in FlowKind::ALL {
            let r = DensityRhs::new(flow, &g, &lp);
            let mut jv = vec![0.0; g.len()];
            r.jac_vec(&th, &v, &mut jv);
            let eps = 1e-6;
            let (mut fp, mut fm) = (vec![0.0; g.len()], vec![0.0; g.len()]);
            let tp: Vec<f64> = th.iter().zip(&v).map(|(a, b)| a + eps * b).collect();
            let tm: Vec<f64> = th.iter().zip(&v).map(|(a, b)| a - eps * b).collect();
            r.eval(&tp, &mut fp);
            r.eval(&tm, &mut fm);
            for k in 0..g.len() {
                let fd = (fp[k] - fm[k]) / (2.0 * eps);
                assert!((fd - jv[k]).abs() < 1e-6 * (1.0 + fd.abs()), "{flow:?} {k}");
            }
        }
    }

    /// π is a fixed point of every flow, and every flow conserves mass: Σ Vρᵢfᵢ = 0.
    #[test]
    fn target_is_stationary_and_mass_is_conserved() {
        let g = Grid::line(-3.0, 4.0, 30);
        let lp = super::super::grid::normalized(&g.eval(|x| -(x[0] - 0.5).powi(2)), g.volume());
        let th: Vec<f64> = g.eval(|x| -0.3 * x[0] * x[0] + 0.2 * x[0]);
        for flow in FlowKind::ALL {
            let r = DensityRhs::new(flow, &g, &lp);
            let mut y = vec![0.0; g.len()];
            r.eval(&lp, &mut y);
            assert!(y.iter().all(|v| v.abs() < 1e-12), "{flow:?}");
            r.eval(&th, &mut y);
            let dm: f64 = th.iter().zip(&y).map(|(t, f)| t.exp() * f).sum();
            assert!(dm.abs() < 1e-12, "{flow:?}: {dm}");
        }
    }
}
