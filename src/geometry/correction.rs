//! A third-order flow: the natural-gradient flow with a capped geodesic-acceleration correction.
//!
//! The natural velocity v(θ) = −G(θ)⁻¹∇L(θ) is the first-order term of the geodesic step
//! exp_θ(τv) = θ + τv + ½τ²a + O(τ³), whose second-order term is the geodesic acceleration
//! aᵏ = −Γ^(α)ᵏ_ij vⁱvʲ, i.e. G a = −c with cₖ = Γ^(α)_{ij,k} vⁱvʲ (Transtrum and Sethna's
//! correction for Levenberg–Marquardt; α = 0 follows the Levi-Civita geodesics of the Fisher
//! metric, α = ±1 the e-/m-geodesics). The corrected flow is the secant of that geodesic over a
//! time scale τ,
//!
//! ```text
//! dθ/dt = v + s·(τ/2)·a,   q = (τ/2)‖a‖_G / ‖v‖_G,   s = 1/√(1 + (q/r)²),   r = CAP = ½,
//! ```
//!
//! a smooth (C^∞ wherever v ≠ 0) right-hand side. The factor s keeps the correction below r
//! times the natural velocity in the metric norm, ‖s(τ/2)a‖_G = q s ‖v‖_G < r‖v‖_G, so with
//! ∇L = −Gv the flow still descends:
//!
//! ```text
//! dL/dt = ∇L·f = −‖v‖²_G − s(τ/2)⟨v, a⟩_G ≤ −(1 − r)‖v‖²_G ≤ 0,
//! ```
//!
//! at least half the natural flow's rate (tested pointwise, `tests/third_order.rs`). Unlike v,
//! the correction depends on the chart: the Christoffel symbols are not a tensor, so the
//! geodesic's second Taylor coefficient (and the secant) change under nonlinear
//! reparametrizations; it is invariant under affine ones, e.g. θ ↔ (M, δ), where it is computed
//! (see [`super::mixture`]) and mapped back exactly.
//!
//! Near the line μ₁ = μ₂ the metric is close to the cone A dM² + C δ²dδ² (flat in (M, δ²/2)),
//! whose geodesics leaving the line have δ̈ = −δ̇²/δ: a points back at the line and
//! ‖a‖_G/‖v‖_G ~ δ⁻², so there the cap decides the correction's size and a its direction.

use super::ThirdOrder;
use super::mixture::{MixtureChart, phi_vector_to_theta, theta_vector_to_phi, third_order};
use crate::model::GaussianMixture;

/// The cap r: the correction is at most r·‖v‖_G.
pub const CAP: f64 = 0.5;

/// Largest |α| accepted for `flow.correction_alpha`.
pub const ALPHA_ABS_MAX: f64 = 10.0;
/// Range of `flow.correction_tau`: τ > 0 and at most 1e3 (the cap bounds the correction
/// anyway; beyond, the secant is the cap's direction alone).
pub const TAU_RANGE: (f64, f64) = (1e-12, 1e3);

/// The flow's order: first order (the natural flow) or a third-order correction.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Correction {
    /// dθ/dt = v (default).
    #[default]
    None,
    /// dθ/dt = v + s(τ/2)a with the geodesic acceleration of the α-connection.
    GeodesicAcceleration {
        /// α of the connection.
        alpha: f64,
        /// Time scale τ.
        tau: f64,
    },
}

impl Correction {
    /// True for the plain first-order flow.
    pub fn is_none(&self) -> bool {
        matches!(self, Correction::None)
    }

    /// The file/flag name: `none` or `geodesic-acceleration`.
    pub fn name(&self) -> &'static str {
        match self {
            Correction::None => "none",
            Correction::GeodesicAcceleration { .. } => "geodesic-acceleration",
        }
    }

    /// Parse `flow.correction` with α and τ, checking their ranges (errors name `field`s).
    pub fn parse(name: &str, alpha: f64, tau: f64) -> crate::Result<Correction> {
        match name {
            "none" => Ok(Correction::None),
            "geodesic-acceleration" => {
                if !(alpha.is_finite() && alpha.abs() <= ALPHA_ABS_MAX) {
                    return Err(crate::Error::invalid(
                        "flow.correction_alpha",
                        alpha,
                        format!(
                            "must be a finite number in [-{ALPHA_ABS_MAX}, {ALPHA_ABS_MAX}] (0: Levi-Civita, 1: e-, -1: m-connection)"
                        ),
                    ));
                }
                if !(tau.is_finite() && (TAU_RANGE.0..=TAU_RANGE.1).contains(&tau)) {
                    return Err(crate::Error::invalid(
                        "flow.correction_tau",
                        tau,
                        format!(
                            "must be a finite number in [{:e}, {:e}]",
                            TAU_RANGE.0, TAU_RANGE.1
                        ),
                    ));
                }
                Ok(Correction::GeodesicAcceleration { alpha, tau })
            }
            other => Err(crate::Error::invalid(
                "flow.correction",
                format!("'{other}'"),
                "expected \"none\" or \"geodesic-acceleration\"",
            )),
        }
    }
}

/// A correction of the flow's velocity, applied after the natural velocity is computed.
pub trait FlowCorrection: Send + Sync {
    /// Replace v (in `v`, the flow's first-order velocity at θ) by the corrected velocity.
    fn apply(&self, theta: &[f64], v: &mut [f64]);

    /// The same for a flow whose metric is damped, v = −(G + λI)⁻¹∇L: the acceleration is
    /// solved and the cap measured in G + λI, so the descent bound holds for the damped flow.
    /// Default: [`FlowCorrection::apply`] (corrections that do not support damping, which the
    /// simulator then refuses, see [`FlowCorrection::supports_damping`]).
    fn apply_damped(&self, theta: &[f64], v: &mut [f64], damping: f64) {
        let _ = damping;
        self.apply(theta, v)
    }

    /// Whether [`FlowCorrection::apply_damped`] honours λ > 0 (default false).
    fn supports_damping(&self) -> bool {
        false
    }
}

/// Geodesic acceleration in 2-D from a tensor set: solves G a = −Γ^(α)(u, u) with Jacobi
/// scaling (unit diagonal, so a small G₂₂ ~ δ² never meets the O(1) entries) and returns
/// (a, ‖a‖_G, ‖u‖_G); `None` if G is not positive definite to working precision.
pub fn acceleration2(geo: &ThirdOrder, alpha: f64, u: &[f64; 2]) -> Option<([f64; 2], f64, f64)> {
    let c = geo.contract(alpha, u);
    let g = &geo.g;
    let (g11, g12, g22) = (g[(0, 0)], g[(0, 1)], g[(1, 1)]);
    if !(g11 > 0.0 && g22 > 0.0) {
        return None;
    }
    let (d1, d2) = (1.0 / g11.sqrt(), 1.0 / g22.sqrt());
    let rho = g12 * d1 * d2;
    let det = (1.0 - rho) * (1.0 + rho);
    if det.is_nan() || det <= 0.0 {
        return None;
    }
    let (b1, b2) = (-c[0] * d1, -c[1] * d2);
    let a = [d1 * (b1 - rho * b2) / det, d2 * (b2 - rho * b1) / det];
    let quad = |x: &[f64; 2]| {
        (g11 * x[0] * x[0] + 2.0 * g12 * x[0] * x[1] + g22 * x[1] * x[1])
            .max(0.0)
            .sqrt()
    };
    let out = (a, quad(&a), quad(u));
    (out.0.iter().all(|x| x.is_finite()) && out.1.is_finite()).then_some(out)
}

/// The smooth cap factor s = 1/√(1 + (q/r)²) for q = (τ/2)‖a‖/‖v‖.
pub fn cap_factor(q: f64) -> f64 {
    let x = q / CAP;
    1.0 / (1.0 + x * x).sqrt()
}

/// The factor k = s·τ/2 of the capped secant step k·a, from ‖a‖_G and ‖v‖_G; `None` where it
/// is undefined (v = 0, non-finite norms).
pub fn capped_step(tau: f64, na: f64, nv: f64) -> Option<f64> {
    if !(nv > 0.0 && nv.is_finite() && na.is_finite()) {
        return None;
    }
    let q = 0.5 * tau * na / nv;
    Some(0.5 * tau * cap_factor(q))
}

/// The capped geodesic-acceleration correction of the mixture's exact natural flow.
#[derive(Clone, Debug)]
pub struct GeodesicAcceleration<'m> {
    model: &'m GaussianMixture,
    /// α of the connection whose geodesics are followed (0: Levi-Civita).
    pub alpha: f64,
    /// Time scale τ of the geodesic secant.
    pub tau: f64,
}

impl<'m> GeodesicAcceleration<'m> {
    /// The correction for `model` with connection α and time scale τ.
    pub fn new(model: &'m GaussianMixture, alpha: f64, tau: f64) -> Self {
        GeodesicAcceleration { model, alpha, tau }
    }

    /// (τ/2)·s·a in θ for the velocity v at θ (zero where it is undefined: v = 0 or a
    /// singular metric).
    pub fn correction(&self, theta: &[f64], v: &[f64]) -> [f64; 2] {
        let w = self.model.w;
        let u = theta_vector_to_phi(w, v);
        let geo = third_order(self.model, theta, MixtureChart::MeanDifference);
        let Some((a, na, nv)) = acceleration2(&geo, self.alpha, &u) else {
            return [0.0; 2];
        };
        let Some(k) = capped_step(self.tau, na, nv) else {
            return [0.0; 2];
        };
        let at = phi_vector_to_theta(w, &a);
        let out = [k * at[0], k * at[1]];
        if out.iter().all(|x| x.is_finite()) {
            out
        } else {
            [0.0; 2]
        }
    }
}

impl FlowCorrection for GeodesicAcceleration<'_> {
    fn apply(&self, theta: &[f64], v: &mut [f64]) {
        let c = self.correction(theta, v);
        v[0] += c[0];
        v[1] += c[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_factor_keeps_the_correction_below_the_cap() {
        for q in [0.0, 0.1, 0.5, 1.0, 10.0, 1e8] {
            let s = cap_factor(q);
            assert!(q * s <= CAP && s <= 1.0);
        }
        // small q: no cap
        assert!((cap_factor(1e-4) - 1.0).abs() < 1e-7);
    }
}
