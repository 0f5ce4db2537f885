//! Natural-gradient variational inference: the Gaussian family q(z|φ) = N(m, S) over z ∈ Rᵈ
//! (full covariance or mean-field) as a [`StatModel`] over φ in a chart of the user's choice
//! ([`coords`]).
//!
//! Loss: L(φ) = −ELBO(φ) = E_q[log q] − E_q[log p̃] = −½ log det(2πe S) − E_q[log p̃(z)],
//! so KL[q ‖ p(·|data)] = L + log Z (Z the evidence; known for the conjugate target, computed
//! by tensor quadrature for the logistic one). Gradient: exact — closed forms for the entropy
//! and for the Gaussian parts, and for the cubature parts the chain rule through the
//! reparametrization z = m + Lε and the Cholesky factor (see
//! [`target::Target::expected_log_density`]), so ∇L is the exact gradient of the L that is
//! evaluated. Metric: the Gaussian family's exact Fisher I_φ = JᵀI_θJ ([`coords::Coords::fisher`]).
//!
//! Flow: dφ/dt = −I_φ⁻¹∇L. For the conjugate target in natural coordinates η the natural
//! gradient of KL[q_η ‖ p_η*] = (η − η*)ᵀμ(η) − A(η) + A(η*) is I⁻¹·I(η − η*) = η − η*, so
//! η(t) = η* + (η₀ − η*)e^{−t} exactly; the flow is chart-invariant, so in every chart it is
//! this curve mapped through the chart.

pub mod coords;
pub mod cubature;
pub mod spec;
pub mod target;

pub use coords::{Coords, Covariance, VariationalChart};
pub use cubature::Rule;
pub use target::{Posterior, Target};

use super::StatModel;
use nalgebra::{DMatrix, DVector};
use std::f64::consts::{E, PI};

/// The variational Gaussian family with its target.
#[derive(Clone, Debug)]
pub struct VariationalGaussian {
    pub coords: Coords,
    pub target: Target,
    /// Cubature for E_q over the non-closed-form parts (None: the target is closed-form).
    pub rule: Option<Rule>,
    /// Stated relative error of the loss and gradient (measured for cubature rules).
    pub eval_error: f64,
    /// The exact posterior (moments and log-evidence), if computed.
    pub posterior: Option<Posterior>,
}

/// Loss in base coordinates: value, ∂/∂m and the symmetric matrix gradient G
/// (∂L/∂s_ab = tr(G E_ab)).
pub struct BaseLoss {
    pub value: f64,
    pub grad_m: DVector<f64>,
    pub grad_s: DMatrix<f64>,
}

impl VariationalGaussian {
    /// The family over `coords` for `target`; `rule` is required iff the target is not
    /// closed-form. The stated error is measured: the loss and gradient with `rule` against
    /// a rule with 8 more nodes per axis (tensor rules), at q = N(0, I) and at the posterior's
    /// Laplace approximation (and at the starts, [`Self::restate_error`]), ×10; Monte Carlo rules state none (1e-2: verify re-checks none).
    pub fn new(coords: Coords, target: Target, rule: Option<Rule>) -> VariationalGaussian {
        let mut m = VariationalGaussian {
            coords,
            target,
            rule,
            eval_error: f64::EPSILON * 64.0,
            posterior: None,
        };
        m.eval_error = m.measure_error(&[]);
        m
    }

    /// Re-measure the stated error including the points `phis` (the starts: the widest q's
    /// of a run, where a tensor rule is least accurate).
    pub fn restate_error(&mut self, phis: &[Vec<f64>]) {
        let extra: Vec<(DVector<f64>, DMatrix<f64>)> = phis
            .iter()
            .filter_map(|p| self.coords.mean_cov(p))
            .collect();
        self.eval_error = self.measure_error(&extra);
    }

    fn measure_error(&self, extra: &[(DVector<f64>, DMatrix<f64>)]) -> f64 {
        let Some(rule) = &self.rule else {
            return f64::EPSILON * 64.0;
        };
        let d = self.coords.d;
        let n = match rule.describe.strip_prefix("Gauss-Hermite ") {
            Some(rest) => rest
                .split('^')
                .next()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0),
            None => return 1e-2,
        };
        let Some(finer) = Rule::gauss_hermite(d, n + 8) else {
            return 1e-2;
        };
        let mut points = vec![(DVector::zeros(d), DMatrix::identity(d, d))];
        if let Some(lap) = self.target.laplace() {
            points.push(lap);
        }
        points.extend(extra.iter().cloned());
        let mut worst = 0.0f64;
        for (m, s) in points {
            let a = self.base_loss_with(&m, &s, Some(rule));
            let b = self.base_loss_with(&m, &s, Some(&finer));
            if let (Some(a), Some(b)) = (a, b) {
                let dl = (a.value - b.value).abs() / (1.0 + b.value.abs());
                let dg = (&a.grad_m - &b.grad_m)
                    .amax()
                    .max((&a.grad_s - &b.grad_s).amax())
                    / (1.0 + b.grad_m.amax().max(b.grad_s.amax()));
                worst = worst.max(dl).max(dg);
            }
        }
        (10.0 * worst).max(1e-13)
    }

    /// Compute the exact posterior if it is not known yet: closed form (conjugate) or the
    /// [`spec::EXACT_NODES`]ᵈ Gauss–Hermite rule (logistic, d ≤ 3; none beyond).
    pub fn ensure_posterior(&mut self) {
        if self.posterior.is_none() && self.d() <= cubature::GH_DIM_MAX {
            self.posterior = self.target.posterior(spec::EXACT_NODES);
        }
    }

    /// Dimension d of z.
    pub fn d(&self) -> usize {
        self.coords.d
    }

    /// The loss at (m, S) with its base-coordinate gradient (None if S is not positive
    /// definite).
    pub fn base_loss(&self, m: &DVector<f64>, s: &DMatrix<f64>) -> Option<BaseLoss> {
        self.base_loss_with(m, s, self.rule.as_ref())
    }

    fn base_loss_with(
        &self,
        m: &DVector<f64>,
        s: &DMatrix<f64>,
        rule: Option<&Rule>,
    ) -> Option<BaseLoss> {
        self.base_loss_opt(m, s, rule, true)
    }

    /// With `value = false` the loss value is NaN and only the gradient is computed (see
    /// [`Target::expected_log_density_with`]).
    fn base_loss_opt(
        &self,
        m: &DVector<f64>,
        s: &DMatrix<f64>,
        rule: Option<&Rule>,
        value: bool,
    ) -> Option<BaseLoss> {
        let d = m.len();
        let ch = s.clone().cholesky()?;
        let l = ch.l();
        let logdet: f64 = 2.0 * l.diagonal().iter().map(|v| v.ln()).sum::<f64>();
        let p = ch.inverse();
        let (e, gm, gs) = self.target.expected_log_density_with(m, s, &l, rule, value);
        let value = -0.5 * (logdet + d as f64 * (2.0 * PI * E).ln()) - e;
        Some(BaseLoss {
            value,
            grad_m: -gm,
            grad_s: p * -0.5 - gs,
        })
    }

    /// The base gradient as a vector (m, vech S) from a [`BaseLoss`].
    fn base_grad_vec(&self, b: &BaseLoss) -> DVector<f64> {
        let d = self.coords.d;
        let pairs = coords::full_pairs(d);
        let mut g = DVector::zeros(d + pairs.len());
        g.rows_mut(0, d).copy_from(&b.grad_m);
        for (k, &(a, c)) in pairs.iter().enumerate() {
            g[d + k] = if a == c {
                b.grad_s[(a, a)]
            } else {
                2.0 * b.grad_s[(a, c)]
            };
        }
        g
    }

    /// KL[q_φ ‖ posterior] = L(φ) + log Z, when the evidence is known.
    pub fn kl(&self, phi: &[f64]) -> Option<f64> {
        Some(self.loss(phi) + self.posterior.as_ref()?.log_z)
    }

    /// (m, S) of φ.
    pub fn mean_cov(&self, phi: &[f64]) -> Option<(DVector<f64>, DMatrix<f64>)> {
        self.coords.mean_cov(phi)
    }

    /// The minimizer of the loss in closed form, where known: the conjugate target's
    /// posterior (full covariance) or its mean-field optimum (m = μ*, S = diag(1/P_ii)).
    pub fn closed_form_optimum(&self) -> Option<Vec<f64>> {
        let Target::LinearGaussian { prec, .. } = &self.target else {
            return None;
        };
        let post = self.target.posterior(0)?;
        let s = match self.coords.cov {
            Covariance::Full => post.cov,
            Covariance::MeanField => DMatrix::from_diagonal(&prec.diagonal().map(|v| 1.0 / v)),
        };
        self.coords.from_mean_cov(&post.mean, &s)
    }
}

impl StatModel for VariationalGaussian {
    fn dim(&self) -> usize {
        self.coords.dim()
    }

    fn param_names(&self) -> Vec<String> {
        self.coords.param_names()
    }

    fn loss_grad(&self, phi: &[f64], grad: &mut [f64]) -> f64 {
        let eval = self.coords.mean_cov(phi).and_then(|(m, s)| {
            let b = self.base_loss(&m, &s)?;
            let j = self.coords.jacobian(phi)?;
            Some((b.value, j.transpose() * self.base_grad_vec(&b)))
        });
        match eval {
            Some((v, g)) => {
                grad.copy_from_slice(g.as_slice());
                v
            }
            None => {
                grad.iter_mut().for_each(|g| *g = f64::NAN);
                f64::NAN
            }
        }
    }

    /// ∇L without the loss value (the flow's right-hand side): the same gradient as
    /// [`StatModel::loss_grad`]'s, bit for bit, at about half the cost for cubature targets.
    fn gradient(&self, phi: &[f64]) -> DVector<f64> {
        let n = self.coords.dim();
        self.coords
            .mean_cov(phi)
            .and_then(|(m, s)| {
                let b = self.base_loss_opt(&m, &s, self.rule.as_ref(), false)?;
                let j = self.coords.jacobian(phi)?;
                Some(j.transpose() * self.base_grad_vec(&b))
            })
            .unwrap_or_else(|| DVector::from_element(n, f64::NAN))
    }

    fn fisher_into(&self, phi: &[f64], out: &mut DMatrix<f64>) {
        out.copy_from(&self.coords.fisher(phi));
    }

    fn optima(&self) -> Vec<Vec<f64>> {
        self.closed_form_optimum().into_iter().collect()
    }

    fn evaluation_error(&self) -> f64 {
        self.eval_error
    }

    fn family(&self) -> &str {
        "variational-gaussian"
    }

    fn param_groups(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let d = self.coords.d;
        vec![
            ("mean".into(), 0..d),
            ("covariance".into(), d..self.coords.dim()),
        ]
    }
}

impl VariationalGaussian {
    /// How expectations are evaluated.
    pub fn describe(&self) -> String {
        let head = format!(
            "variational {} Gaussian, d = {}, chart {}, target {}",
            self.coords.cov.name(),
            self.coords.d,
            self.coords.chart.name(),
            self.target.name()
        );
        match &self.rule {
            None => format!("{head}: closed-form expectations"),
            Some(r) => format!(
                "{head}: {} (stated error {:.1e})",
                r.describe, self.eval_error
            ),
        }
    }
}
