//! The flow's right-hand side f(θ) = −(G(θ) + λI)⁺∇L(θ) and its Jacobian.
//!
//! * Hot path: with a model [`FlowKernel`] and the `exact` or `euclidean` metric, g and G come
//!   from one fused call; for n = 2 the pseudo-inverse solve is done in closed form on the stack
//!   ([`solve2`]), so an evaluation allocates nothing. Other metrics go through
//!   the metric provider ([`crate::metric::MetricProvider`]), which factorizes the metric
//!   (dense, diagonal, block-diagonal, Kronecker-factored, …) and solves with it.
//! * Jacobian: `exact` assembles ∂f/∂θⱼ = −M⁺(∂g/∂θⱼ + (∂G/∂θⱼ) f) from the kernel's dual-number
//!   derivatives (the damping floor's θ-dependence is not differentiated); `fd` uses central
//!   differences of f (2n evaluations). The full Jacobian is cached per θ, so the n
//!   Jacobian–vector products diffsol asks for when it forms the dense matrix cost one Jacobian.
//! * Damping floor ν (singularity control (c)): λ_eff = max(λ, ν·tr G), so that M is never
//!   closer to singular than ν relative to its size; with ν = 0 (default) the rank-revealing
//!   solve of [`crate::metric::Metric::solve`] (threshold [`RANK_TOL`]) keeps f defined.
//! * On a singular line θᵢ = θⱼ (an invariant set of the flow), [`FlowRhs::set_line`] restricts
//!   the flow to it: f = −(eᵀg / eᵀMe)·e with e = eᵢ + eⱼ — the natural gradient of the
//!   sub-model with θᵢ = θⱼ, which keeps θᵢ = θⱼ exactly in floating point.

use super::{FlowKernel, JacobianKind};
use crate::error::Result;
use crate::geometry::correction::FlowCorrection;
use crate::metric::{
    Factorized, Metric, MetricKind, MetricOptions, MetricProvider, RANK_TOL, provider,
};
use crate::model::StatModel;
use nalgebra::{DMatrix, DVector};
use std::cell::{Cell, RefCell};

/// x = (G + λI)⁺g for a symmetric 2×2 G = [[p, q], [q, r]], with the same eigen-decomposition
/// (Jacobi rotation) and null-direction threshold as [`Metric::solve`].
#[inline]
pub fn solve2(p: f64, q: f64, r: f64, lambda: f64, g: [f64; 2]) -> [f64; 2] {
    let ([l1, l2], c, s) = crate::linalg::jacobi2(p, q, r);
    let (v1, v2) = ([c, -s], [s, c]);
    let top = (l1.max(l2) + lambda).abs();
    let cut = RANK_TOL * top.max(f64::MIN_POSITIVE);
    let mut x = [0.0; 2];
    for (l, v) in [(l1, v1), (l2, v2)] {
        let d = l + lambda;
        if d > cut {
            let c = (v[0] * g[0] + v[1] * g[1]) / d;
            x[0] += c * v[0];
            x[1] += c * v[1];
        }
    }
    x
}

/// Largest n for which `auto` checks stiffness (a check needs the n×n Jacobian, by finite
/// differences 2n rhs evaluations when the model has no kernel; above this `auto` stays
/// explicit, while the implicit solvers themselves run up to
/// [`crate::model::DENSE_JACOBIAN_MAX_DIM`]).
pub const AUTO_CHECK_MAX_DIM: usize = 64;

/// κ threshold above which the 2×2 kernel path hands the solve to the model's
/// cancellation-free [`StatModel::exact_geometry`]: the dense solve loses ≈ ε·κ relative, and the
/// quadrature entries' ≈1e-14 relative error grows to ≈1e-14·κ on λ_min, so below κ = 10³
/// both stay under 1e-10.
pub const NEAR_SINGULAR_KAPPA: f64 = 1e3;

/// Whether the symmetric 2×2 [[p, q], [q, r]] has κ > [`NEAR_SINGULAR_KAPPA`] (estimated as
/// tr²/det, which is ≥ κ; no eigen-decomposition).
#[inline]
fn near_singular(p: f64, q: f64, r: f64) -> bool {
    let tr = p + r;
    let det = p * r - q * q;
    (det * NEAR_SINGULAR_KAPPA).partial_cmp(&(tr * tr)) != Some(std::cmp::Ordering::Greater)
}

/// The model kernel, owned or shared with other right-hand sides (particle fields).
enum Kernel<'m> {
    Owned(Box<dyn FlowKernel + 'm>),
    Shared(&'m dyn FlowKernel),
}

impl<'m> Kernel<'m> {
    fn get(&self) -> &dyn FlowKernel {
        match self {
            Kernel::Owned(b) => b.as_ref(),
            Kernel::Shared(r) => *r,
        }
    }
}

/// Right-hand side of the flow, with evaluation counters.
pub struct FlowRhs<'m> {
    model: &'m dyn StatModel,
    metric: MetricKind,
    options: MetricOptions,
    provider: Box<dyn MetricProvider>,
    damping: f64,
    damping_floor: f64,
    kernel: Option<Kernel<'m>>,
    jacobian: JacobianKind,
    line: Option<(usize, usize)>,
    evals: Cell<usize>,
    jac_evals: Cell<usize>,
    jacobians: Cell<usize>,
    jac_cache: RefCell<Option<(Vec<f64>, DMatrix<f64>)>>,
    grad_cache: RefCell<(Vec<f64>, f64)>,
    /// The last 2×2 kernel evaluation (θ, ∇L, G): the kernel is a pure function of θ, and
    /// the records, the steady-state threshold and the solver's first stage often ask for
    /// the θ of the last one (first-same-as-last steps end where the next begins).
    kernel_cache: Cell<Option<KernelValue>>,
    correction: Option<Box<dyn FlowCorrection + 'm>>,
}

/// One 2×2 kernel evaluation: θ, ∇L(θ) and the model's Fisher matrix G(θ) (row-major).
#[derive(Clone, Copy, Debug)]
struct KernelValue {
    theta: [f64; 2],
    grad: [f64; 2],
    fisher: [f64; 4],
}

impl<'m> FlowRhs<'m> {
    /// The flow of `model` under `metric` with damping λ (exact Jacobian, no floor).
    pub fn new(model: &'m dyn StatModel, metric: MetricKind, damping: f64) -> Self {
        Self::build(
            model,
            metric,
            damping,
            model.flow_kernel().map(Kernel::Owned),
        )
    }

    /// As [`FlowRhs::new`] with an already built kernel of `model` (shared between starts).
    pub fn with_kernel(
        model: &'m dyn StatModel,
        metric: MetricKind,
        damping: f64,
        kernel: Option<&'m dyn FlowKernel>,
    ) -> Self {
        Self::build(model, metric, damping, kernel.map(Kernel::Shared))
    }

    fn build(
        model: &'m dyn StatModel,
        metric: MetricKind,
        damping: f64,
        kernel: Option<Kernel<'m>>,
    ) -> Self {
        let options = MetricOptions::default();
        FlowRhs {
            model,
            metric,
            provider: provider(metric, &options),
            options,
            damping,
            damping_floor: 0.0,
            kernel,
            jacobian: JacobianKind::Exact,
            line: None,
            evals: Cell::new(0),
            jac_evals: Cell::new(0),
            jacobians: Cell::new(0),
            jac_cache: RefCell::new(None),
            grad_cache: RefCell::new((Vec::new(), f64::NAN)),
            kernel_cache: Cell::new(None),
            correction: None,
        }
    }

    /// The flow of `model` under `metric` with provider settings `options` and damping λ.
    pub fn with_options(
        model: &'m dyn StatModel,
        metric: MetricKind,
        options: &MetricOptions,
        damping: f64,
    ) -> Self {
        Self::new(model, metric, damping).with_metric_options(options)
    }

    /// Use provider settings `options` (samples, seed, blocks, K-FAC options, …).
    pub fn with_metric_options(mut self, options: &MetricOptions) -> Self {
        self.options = options.clone();
        self.provider = provider(self.metric, options);
        self
    }

    /// The provider's factorized metric at θ (with damping λ, without the floor).
    pub fn factorized_at(&self, theta: &[f64]) -> Result<Box<dyn Factorized>> {
        self.provider.factorize(self.model, theta, self.damping)
    }

    /// κ of the metric the flow solves with, M = G + λ_eff I (λ_eff = max(λ, ν·tr G)), and
    /// λ_min(G) of the undamped metric, from the provider's factorization (cancellation-free
    /// eigenvalues where the model has them, [`StatModel::exact_geometry`]); NaN when the
    /// provider cannot afford eigenvalues. κ is finite wherever λ_eff > 0.
    pub fn conditioning_at(&self, theta: &[f64]) -> (f64, f64) {
        let Ok(m) = self.factorized_at(theta) else {
            return (f64::NAN, f64::NAN);
        };
        let Some(eig) = m.eigenvalues().filter(|v| !v.is_empty()) else {
            return (f64::NAN, f64::NAN);
        };
        let lam = match self.metric {
            MetricKind::Euclidean => self.damping,
            _ => self.effective_damping(eig.sum()),
        };
        let kappa = if lam == self.damping {
            // the provider's own κ of what it solves with (K-FAC: its factored damping)
            m.damped_condition_number()
                .unwrap_or_else(|| crate::metric::damped_kappa(&eig, lam))
        } else {
            crate::metric::damped_kappa(&eig, lam)
        };
        (kappa, eig[0])
    }

    /// Start a step at θ: Monte Carlo metrics draw their targets here and hold them for every
    /// evaluation until the next call (common random numbers within a step, so f is a smooth,
    /// deterministic function of θ while the error control compares its stages). Returns
    /// true when the metric has draws: f(θ) may then differ from the value the solver kept
    /// from the previous step (first-same-as-last), and the caller must refresh it.
    pub fn begin_step(&self, theta: &[f64]) -> bool {
        self.provider.set_anchor(Some(theta))
    }

    /// The metric provider.
    pub fn provider(&self) -> &dyn MetricProvider {
        self.provider.as_ref()
    }

    /// Choose how Jacobians are computed.
    pub fn with_jacobian(mut self, kind: JacobianKind) -> Self {
        self.jacobian = kind;
        self
    }

    /// A third-order correction of the velocity ([`crate::geometry::correction`]), applied to
    /// f off the singular line; Jacobians are then finite differences of the corrected f.
    pub fn with_correction(mut self, correction: Option<Box<dyn FlowCorrection + 'm>>) -> Self {
        self.correction = correction;
        *self.jac_cache.borrow_mut() = None;
        self
    }

    /// Whether a third-order correction is applied.
    pub fn has_correction(&self) -> bool {
        self.correction.is_some()
    }

    /// Relative damping floor ν: λ_eff = max(λ, ν·tr G).
    pub fn with_damping_floor(mut self, nu: f64) -> Self {
        self.damping_floor = nu;
        self
    }

    /// Restrict the flow to the singular line θᵢ = θⱼ (or lift the restriction with `None`).
    pub fn set_line(&mut self, line: Option<(usize, usize)>) {
        self.line = line;
        *self.jac_cache.borrow_mut() = None;
    }

    /// The model.
    pub fn model(&self) -> &'m dyn StatModel {
        self.model
    }

    /// ∇L(θ) and the metric matrix G(θ) (row-major 2×2; the identity for `euclidean`) from the
    /// kernel, if f takes the kernel path and n = 2.
    pub fn grad_metric2(&self, theta: &[f64]) -> Option<([f64; 2], [f64; 4])> {
        if theta.len() != 2 || !self.uses_kernel() {
            return None;
        }
        let v = self.kernel_value(theta)?;
        let f = if matches!(self.metric, MetricKind::Euclidean) {
            [1.0, 0.0, 0.0, 1.0]
        } else {
            v.fisher
        };
        Some((v.grad, f))
    }

    /// L(θ) from the model's kernel where it has a fused path for it (see
    /// [`FlowKernel::loss`]); None otherwise.
    pub fn kernel_loss(&self, theta: &[f64]) -> Option<f64> {
        self.kernel.as_ref()?.get().loss(theta)
    }

    /// L(θ): the kernel's fused loss where it has one, else the model's.
    pub fn loss(&self, theta: &[f64]) -> f64 {
        self.kernel_loss(theta)
            .unwrap_or_else(|| self.model.loss(theta))
    }

    /// (L, ∇L) at θ from the kernel when it has both (the fused loss and the 2×2 kernel's
    /// gradient on the same node set); None otherwise.
    pub fn kernel_loss_grad2(&self, theta: &[f64]) -> Option<(f64, [f64; 2])> {
        let l = self.kernel_loss(theta)?;
        Some((l, self.kernel_value(theta)?.grad))
    }

    /// The 2×2 kernel's (∇L, G) at θ, from the cache when θ is the last one evaluated; None
    /// without a 2-parameter kernel.
    fn kernel_value(&self, theta: &[f64]) -> Option<KernelValue> {
        let [t0, t1] = theta else { return None };
        if let Some(v) = self.kernel_cache.get()
            && v.theta[0].to_bits() == t0.to_bits()
            && v.theta[1].to_bits() == t1.to_bits()
        {
            return Some(v);
        }
        let k = self.kernel.as_ref()?.get();
        if k.dim() != 2 {
            return None;
        }
        let mut v = KernelValue {
            theta: [*t0, *t1],
            grad: [0.0; 2],
            fisher: [0.0; 4],
        };
        k.grad_fisher(theta, &mut v.grad, &mut v.fisher);
        self.kernel_cache.set(Some(v));
        Some(v)
    }

    /// The damping actually applied for a metric with trace `trace` (λ or the floor).
    pub fn damping_at(&self, trace: f64) -> f64 {
        self.effective_damping(trace)
    }

    /// True if f and the exact Jacobian come from the model's fused kernel.
    /// Whether f's solve can drop a direction at the rank cut ([`RANK_TOL`]) near θ: not when
    /// the flow is restricted to a singular line, not for the Euclidean metric, and not for the
    /// exact metric whose model solves cancellation-free near its singular set
    /// ([`StatModel::exact_geometry`]).
    pub fn solve_has_rank_cut(&self, theta: &[f64]) -> bool {
        if self.line.is_some() || matches!(self.metric, MetricKind::Euclidean) {
            return false;
        }
        !(self.uses_kernel()
            && matches!(self.metric, MetricKind::Exact)
            && self.model.exact_geometry(theta, self.damping).is_some())
    }

    pub fn uses_kernel(&self) -> bool {
        self.kernel.is_some() && matches!(self.metric, MetricKind::Exact | MetricKind::Euclidean)
    }

    /// True if Jacobians are exact (dual numbers) rather than finite differences.
    pub fn exact_jacobian(&self) -> bool {
        self.jacobian == JacobianKind::Exact
            && self.uses_kernel()
            && self.line.is_none()
            && self.correction.is_none()
    }

    fn effective_damping(&self, trace: f64) -> f64 {
        self.damping.max(self.damping_floor * trace)
    }

    /// The metric at θ as a dense [`Metric`] (with the damping floor applied; all NaN when the
    /// provider cannot form it).
    pub fn metric_at(&self, theta: &[f64]) -> Metric {
        let m = self
            .metric
            .at_with(self.model, theta, self.damping, &self.options);
        if self.damping_floor > 0.0 {
            let lam = self.effective_damping(m.matrix().trace());
            if lam > self.damping {
                return Metric::new(m.matrix().clone(), lam);
            }
        }
        m
    }

    /// f(θ) written into `out`; counts one evaluation. Non-finite components become 0.
    pub fn eval(&self, theta: &[f64], out: &mut [f64]) {
        self.eval_first_order(theta, out);
        if let (Some(c), None) = (self.correction.as_ref(), self.line) {
            c.apply_damped(theta, out, self.damping);
            out.iter_mut()
                .for_each(|o| *o = if o.is_finite() { *o } else { 0.0 });
        }
    }

    /// The flow's velocity without the third-order correction.
    fn eval_first_order(&self, theta: &[f64], out: &mut [f64]) {
        self.evals.set(self.evals.get() + 1);
        let n = theta.len();
        if let Some((g, f)) = self.grad_metric2(theta) {
            out.copy_from_slice(&self.kernel_velocity(theta, g, f));
            return;
        }
        if self.line.is_none() && self.damping_floor == 0.0 {
            // one pass for ∇L and the natural gradient where the provider has one (K-FAC)
            match self
                .provider
                .gradient_and_natural(self.model, theta, self.damping)
            {
                Some(Ok((g, x))) => {
                    self.remember_grad(theta, g.norm());
                    for (o, v) in out.iter_mut().zip(x.iter()) {
                        *o = if v.is_finite() { -v } else { 0.0 };
                    }
                    return;
                }
                Some(Err(_)) => {
                    out.iter_mut().for_each(|o| *o = f64::NAN);
                    return;
                }
                None => {}
            }
        }
        let g = self.model.gradient(theta);
        self.remember_grad(theta, g.norm());
        let x = match self.line {
            Some((i, j)) => {
                let mut e = DVector::zeros(n);
                e[i] = 1.0;
                e[j] = 1.0;
                let c = e.dot(&g) / self.metric_at(theta).quad_form(&e);
                e * c
            }
            None if self.damping_floor > 0.0 => self.metric_at(theta).solve(&g),
            None => match self.factorized_at(theta) {
                Ok(m) => m.solve(&g),
                // A failed factorization makes the state non-finite, which the runner reports.
                Err(_) => {
                    out.iter_mut().for_each(|o| *o = f64::NAN);
                    return;
                }
            },
        };
        for (o, v) in out.iter_mut().zip(x.iter()) {
            *o = if v.is_finite() { -v } else { 0.0 };
        }
    }

    /// f(θ) = −M(θ)⁻¹g of the 2×2 kernel path from ∇L = `g` and the metric `f` (row-major,
    /// as [`FlowRhs::grad_metric2`] returns them) already evaluated at θ: the restricted solve
    /// on a singular line, the model's cancellation-free solve near it, the rank-revealing
    /// 2×2 solve elsewhere. Non-finite components become 0. Does not count an evaluation.
    fn kernel_velocity(&self, theta: &[f64], g: [f64; 2], f: [f64; 4]) -> [f64; 2] {
        self.remember_grad(theta, (g[0] * g[0] + g[1] * g[1]).sqrt());
        let lam = self.effective_damping(f[0] + f[3]);
        let x = match self.line {
            Some(_) => {
                // e = (1, 1): c = eᵀg / eᵀMe
                let c = (g[0] + g[1]) / (f[0] + 2.0 * f[1] + f[3] + 2.0 * lam);
                [c, c]
            }
            None if matches!(self.metric, MetricKind::Exact) && near_singular(f[0], f[1], f[3]) => {
                // near the singular line: the model's cancellation-free solve
                match self.model.exact_geometry(theta, lam) {
                    Some(geo) => {
                        let gg = [geo.gradient[0], geo.gradient[1]];
                        self.remember_grad(theta, (gg[0] * gg[0] + gg[1] * gg[1]).sqrt());
                        [geo.natural[0], geo.natural[1]]
                    }
                    None => solve2(f[0], f[1], f[3], lam, g),
                }
            }
            None => solve2(f[0], f[1], f[3], lam, g),
        };
        x.map(|v| if v.is_finite() { -v } else { 0.0 })
    }

    /// f(θ) from ∇L and the metric the 2×2 kernel path already evaluated at θ
    /// ([`FlowRhs::grad_metric2`]), without evaluating the kernel again; None where f is not
    /// that path's solve alone (a third-order correction is applied on top).
    pub fn velocity_from2(&self, theta: &[f64], g: [f64; 2], f: [f64; 4]) -> Option<[f64; 2]> {
        (theta.len() == 2 && self.uses_kernel() && self.correction.is_none())
            .then(|| self.kernel_velocity(theta, g, f))
    }

    /// [`FlowRhs::conditioning_at`] from the 2×2 metric `f` of [`FlowRhs::grad_metric2`] at θ
    /// in closed form, where that equals the provider's eigenvalues to rounding: off the
    /// near-singular zone of the exact metric (there the provider's cancellation-free
    /// eigenvalues decide, and this returns None).
    pub fn conditioning_from2(&self, f: [f64; 4]) -> Option<(f64, f64)> {
        if !self.uses_kernel()
            || (matches!(self.metric, MetricKind::Exact) && near_singular(f[0], f[1], f[3]))
        {
            return None;
        }
        let ([l1, l2], _, _) = crate::linalg::jacobi2(f[0], f[1], f[3]);
        if !(l1.is_finite() && l2.is_finite()) {
            return None;
        }
        let (lo, hi) = (l1.min(l2), l1.max(l2));
        let eig = DVector::from_row_slice(&[lo, hi]);
        let lam = match self.metric {
            MetricKind::Euclidean => self.damping,
            _ => self.effective_damping(lo + hi),
        };
        Some((crate::metric::damped_kappa(&eig, lam), eig[0]))
    }

    /// The model's Fisher matrix at θ from the fused 2×2 kernel (row-major), whatever metric
    /// the flow solves with; None without one. The kernel is not counted as an f evaluation.
    pub fn kernel_fisher2(&self, theta: &[f64]) -> Option<[f64; 4]> {
        self.kernel_value(theta).map(|v| v.fisher)
    }

    fn remember_grad(&self, theta: &[f64], norm: f64) {
        let mut c = self.grad_cache.borrow_mut();
        c.0.clear();
        c.0.extend_from_slice(theta);
        c.1 = norm;
    }

    /// The Jacobian for `auto`'s stiffness checks: the exact one whenever the model has a
    /// kernel (whatever `jacobian` says: the setting is for the implicit solvers, and finite
    /// differences would cost 2n rhs evaluations per check), else [`FlowRhs::jacobian`].
    pub fn stiffness_jacobian(&self, theta: &[f64]) -> DMatrix<f64> {
        if self.exact_jacobian()
            || self.correction.is_some()
            || !(self.uses_kernel() && self.line.is_none())
        {
            return self.jacobian(theta);
        }
        self.jacobians.set(self.jacobians.get() + 1);
        self.jacobian_exact(theta)
    }

    /// The Jacobian ∂f/∂θ at θ (exact or finite differences, see the module docs); cached.
    pub fn jacobian(&self, theta: &[f64]) -> DMatrix<f64> {
        if let Some((t, j)) = self.jac_cache.borrow().as_ref()
            && t.as_slice() == theta
        {
            return j.clone();
        }
        self.jacobians.set(self.jacobians.get() + 1);
        let j = if self.exact_jacobian() {
            self.jacobian_exact(theta)
        } else {
            self.jacobian_fd(theta)
        };
        *self.jac_cache.borrow_mut() = Some((theta.to_vec(), j.clone()));
        j
    }

    /// Exact Jacobian from the kernel's dual-number derivatives.
    fn jacobian_exact(&self, theta: &[f64]) -> DMatrix<f64> {
        let n = theta.len();
        let Some(k) = self.kernel.as_ref().map(|k| k.get()) else {
            return self.jacobian_fd(theta);
        };
        let (mut g, mut f, mut h, mut df) = (
            vec![0.0; n],
            vec![0.0; n * n],
            vec![0.0; n * n],
            vec![0.0; n * n * n],
        );
        k.grad_fisher_derivs(theta, &mut g, &mut f, &mut h, &mut df);
        let euclid = matches!(self.metric, MetricKind::Euclidean);
        let gm = if euclid {
            DMatrix::identity(n, n)
        } else {
            DMatrix::from_row_slice(n, n, &f)
        };
        let lam = self.effective_damping(gm.trace());
        let metric = Metric::new(gm, lam);
        let gv = DVector::from_vec(g);
        let fv = -metric.solve(&gv);
        let mut jac = DMatrix::zeros(n, n);
        for j in 0..n {
            let mut rhs = DVector::from_fn(n, |i, _| h[i * n + j]);
            if !euclid {
                let dg = DMatrix::from_row_slice(n, n, &df[j * n * n..(j + 1) * n * n]);
                rhs += dg * &fv;
            }
            let col = -metric.solve(&rhs);
            jac.set_column(j, &col);
        }
        jac.map(|v| if v.is_finite() { v } else { 0.0 })
    }

    /// Central finite-difference Jacobian: column j = (f(θ + εeⱼ) − f(θ − εeⱼ)) / 2ε with
    /// ε = ∛(machine ε)·max(1, |θⱼ|) (error O(ε²)).
    pub fn jacobian_fd(&self, theta: &[f64]) -> DMatrix<f64> {
        let n = theta.len();
        let mut jac = DMatrix::zeros(n, n);
        let mut tp = theta.to_vec();
        let (mut fp, mut fm) = (vec![0.0; n], vec![0.0; n]);
        for j in 0..n {
            let eps = f64::EPSILON.cbrt() * theta[j].abs().max(1.0);
            tp[j] = theta[j] + eps;
            self.eval(&tp, &mut fp);
            tp[j] = theta[j] - eps;
            self.eval(&tp, &mut fm);
            tp[j] = theta[j];
            for i in 0..n {
                jac[(i, j)] = (fp[i] - fm[i]) / (2.0 * eps);
            }
        }
        jac
    }

    /// J(θ)·v from the cached Jacobian at θ.
    pub fn jac_vec(&self, theta: &[f64], v: &[f64], out: &mut [f64]) {
        self.jac_evals.set(self.jac_evals.get() + 1);
        let j = self.jacobian(theta);
        for (i, o) in out.iter_mut().enumerate() {
            *o = (0..v.len()).map(|k| j[(i, k)] * v[k]).sum();
        }
    }

    /// ‖∇L(θ)‖ (for the convergence root function; not counted as an rhs evaluation; reuses
    /// the last evaluation at the same θ).
    pub fn grad_norm(&self, theta: &[f64]) -> f64 {
        {
            let c = self.grad_cache.borrow();
            if c.0.as_slice() == theta {
                return c.1;
            }
        }
        if let Some(v) = self.kernel_value(theta) {
            return (v.grad[0] * v.grad[0] + v.grad[1] * v.grad[1]).sqrt();
        }
        self.model.gradient(theta).norm()
    }

    /// Take one evaluation off the counter (bookkeeping evaluations of the recorder).
    pub fn uncount_eval(&self) {
        self.evals.set(self.evals.get().saturating_sub(1));
    }

    /// Number of f evaluations so far (including those of finite-difference Jacobians).
    pub fn evals(&self) -> usize {
        self.evals.get()
    }

    /// Number of Jacobian–vector products so far.
    pub fn jac_evals(&self) -> usize {
        self.jac_evals.get()
    }

    /// Number of full Jacobian evaluations so far.
    pub fn jacobians(&self) -> usize {
        self.jacobians.get()
    }

    /// f(θ) allocating.
    pub fn eval_vec(&self, theta: &[f64]) -> DVector<f64> {
        let mut out = vec![0.0; theta.len()];
        self.eval(theta, &mut out);
        DVector::from_vec(out)
    }
}
