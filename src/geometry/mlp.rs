//! Third-order geometry of the MLP: the geodesic acceleration of the exact Fisher metric.
//!
//! The MLP's model is p(y|xᵢ, θ) = p(y | z = f(xᵢ; θ)) over the data inputs, with an
//! exponential-family output in its natural parameter z (softmax logits, or the mean of
//! N(z, σ²I) up to the factor σ²). With Jᵢ = ∂f(xᵢ)/∂θ and Hᵢ the output's Fisher in z
//! (diag p − ppᵀ, or I/σ²):
//!
//! * g = (1/N) Σᵢ Jᵢᵀ Hᵢ Jᵢ;
//! * Γ⁽¹⁾_{ij,k} vⁱvʲ = (1/N) Σᵢ (Jᵢᵀ Hᵢ f''ᵢ(v, v))_k, with f''ᵢ(v, v) = d²/dε² f(xᵢ; θ + εv)
//!   (the score is (y − p)ᵀJ, its second derivative (y − p)ᵀf'' − JᵀHJ, and E[(y−p)(y−p)ᵀ] = H);
//! * T(v, v, ·) = (1/N) Σᵢ Jᵢᵀ κ₃ᵢ(Jᵢv, Jᵢv), κ₃ the output's third cumulant in z: for the
//!   softmax κ₃(u, u) = D²p[u, u] = p ⊙ (d² − Σ_c p_c d_c²), d = u − pᵀu; zero for the Gaussian.
//!
//! So c = Γ⁽ᵅ⁾(v, v) = (1/N) Σᵢ Jᵢᵀ [Hᵢ f''ᵢ(v, v) + ((1 − α)/2) κ₃ᵢ(Jᵢv, Jᵢv)] is one backward
//! pass with those output deltas, and the geodesic acceleration is a = −g⁺c (α = 1 is Transtrum
//! and Sethna's least-squares form a = −g⁻¹ Jᵀ H f''; for the Gaussian output all α agree).
//!
//! f'' is exact, by second-order forward mode along v: for a layer z = W̃ã with
//! W̃(ε) = W̃ + εV, ż = Vã + W̃ȧ and z̈ = 2Vȧ + W̃ä; for a hidden a = φ(z),
//! ȧ = φ'(z)ż and ä = φ''(z)ż² + φ'(z)z̈ (tanh: φ' = 1 − a², φ'' = −2a(1 − a²); ReLU: φ'' = 0
//! off the kink). The input and the rows of ones have zero derivatives.

use super::correction::{FlowCorrection, capped_step};
use crate::metric::Metric;
use crate::model::StatModel;
use crate::model::layers::DenseLayers;
use crate::model::mlp::{Activation, Forward, Mlp, OutputKind};
use nalgebra::{DMatrix, DVector};

/// The output's first and second directional derivatives along v: Jv and f''(v, v) (each
/// d_L × N, one column per example), with the forward pass at θ.
pub struct Directional {
    /// The forward pass at θ.
    pub forward: Forward,
    /// ż_L = J v.
    pub jv: DMatrix<f64>,
    /// z̈_L = f''(v, v).
    pub second: DMatrix<f64>,
}

/// Second-order forward mode of `mlp` at θ along v (exact; see the module doc).
pub fn directional(mlp: &Mlp, theta: &[f64], v: &[f64]) -> Directional {
    let f = mlp.forward(theta);
    let layers = mlp.layers();
    let n = f.z.ncols();
    let last = layers.len() - 1;
    // ȧ, ä of the current layer's input (without the row of ones; None for the data)
    let mut da: Option<(DMatrix<f64>, DMatrix<f64>)> = None;
    let (mut jv, mut second) = (DMatrix::zeros(0, 0), DMatrix::zeros(0, 0));
    for (l, s) in layers.iter().enumerate() {
        let range = s.offset..s.offset + s.len();
        let w = DMatrix::from_column_slice(s.d_out, s.d_in + 1, &theta[range.clone()]);
        let vm = DMatrix::from_column_slice(s.d_out, s.d_in + 1, &v[range]);
        let input = mlp.input(&f, l);
        let mut zd = &vm * input;
        let mut zdd = DMatrix::zeros(s.d_out, n);
        if let Some((ad, add)) = &da {
            let wk = w.columns(0, s.d_in);
            let vk = vm.columns(0, s.d_in);
            zd += wk * ad;
            zdd += vk * ad * 2.0 + wk * add;
        }
        if l == last {
            jv = zd;
            second = zdd;
        } else {
            let a = f.h[l].rows(0, s.d_out);
            let mut ad = DMatrix::zeros(s.d_out, n);
            let mut add = DMatrix::zeros(s.d_out, n);
            for c in 0..n {
                for r in 0..s.d_out {
                    let (x, x1, x2) = (a[(r, c)], zd[(r, c)], zdd[(r, c)]);
                    let (d1, d2) = match mlp.activation() {
                        Activation::Tanh => (1.0 - x * x, -2.0 * x * (1.0 - x * x)),
                        Activation::Relu => (if x > 0.0 { 1.0 } else { 0.0 }, 0.0),
                    };
                    ad[(r, c)] = d1 * x1;
                    add[(r, c)] = d2 * x1 * x1 + d1 * x2;
                }
            }
            da = Some((ad, add));
        }
    }
    Directional {
        forward: f,
        jv,
        second,
    }
}

/// The covector c = Γ⁽ᵅ⁾_{ij,k} vⁱvʲ of the MLP's exact Fisher metric at θ.
pub fn connection_covector(mlp: &Mlp, theta: &[f64], alpha: f64, v: &[f64]) -> DVector<f64> {
    let d = directional(mlp, theta, v);
    let f = &d.forward;
    let n = f.z.ncols();
    let nf = n as f64;
    let mut r = DMatrix::zeros(f.z.nrows(), n);
    match mlp.output() {
        OutputKind::Softmax => {
            let skew = 0.5 * (1.0 - alpha);
            for i in 0..n {
                let p = f.p.column(i);
                let (u, s) = (d.jv.column(i), d.second.column(i));
                let ps = p.dot(&s);
                let pu = p.dot(&u);
                let var: f64 = p
                    .iter()
                    .zip(u.iter())
                    .map(|(pc, uc)| pc * (uc - pu).powi(2))
                    .sum();
                for c in 0..p.len() {
                    let h = p[c] * (s[c] - ps);
                    let k3 = p[c] * ((u[c] - pu).powi(2) - var);
                    r[(c, i)] = (h + skew * k3) / nf;
                }
            }
        }
        OutputKind::Gaussian { noise } => {
            r = &d.second / (noise * noise * nf);
        }
    }
    let deltas = mlp.backward(theta, f, r);
    let mut out = vec![0.0; mlp.dim()];
    mlp.grad_from(f, &deltas, &mut out);
    DVector::from_vec(out)
}

/// The geodesic acceleration a = −(g + λI)⁺Γ⁽ᵅ⁾(v, v) with ‖a‖ and ‖v‖ in g + λI, g the exact
/// Fisher at θ solved rank-revealingly ([`Metric::solve`], as the natural flow does; λ = 0 is
/// the undamped geodesic acceleration, λ > 0 Transtrum and Sethna's damped form for
/// Levenberg–Marquardt).
pub fn acceleration(
    mlp: &Mlp,
    theta: &[f64],
    alpha: f64,
    v: &[f64],
    damping: f64,
) -> (DVector<f64>, f64, f64) {
    let g = Metric::new(mlp.fisher(theta), damping);
    let c = connection_covector(mlp, theta, alpha, v);
    let a = -g.solve(&c);
    let vv = DVector::from_column_slice(v);
    let na = g.quad_form(&a).max(0.0).sqrt();
    let nv = g.quad_form(&vv).max(0.0).sqrt();
    (a, na, nv)
}

/// The capped geodesic-acceleration correction of the MLP's exact natural flow
/// (dθ/dt = v + s(τ/2)a, [`super::correction`]).
#[derive(Clone, Debug)]
pub struct MlpGeodesicAcceleration<'m> {
    model: &'m Mlp,
    /// α of the connection (0: Levi-Civita).
    pub alpha: f64,
    /// Time scale τ of the geodesic secant.
    pub tau: f64,
}

impl<'m> MlpGeodesicAcceleration<'m> {
    /// The correction for `model` with connection α and time scale τ.
    pub fn new(model: &'m Mlp, alpha: f64, tau: f64) -> Self {
        MlpGeodesicAcceleration { model, alpha, tau }
    }

    /// s(τ/2)a for the velocity v at θ of the flow with damping λ (zero where undefined).
    pub fn correction(&self, theta: &[f64], v: &[f64], damping: f64) -> DVector<f64> {
        let (a, na, nv) = acceleration(self.model, theta, self.alpha, v, damping);
        match capped_step(self.tau, na, nv) {
            Some(k) if a.iter().all(|x| x.is_finite()) => a * k,
            _ => DVector::zeros(v.len()),
        }
    }
}

impl FlowCorrection for MlpGeodesicAcceleration<'_> {
    fn apply(&self, theta: &[f64], v: &mut [f64]) {
        self.apply_damped(theta, v, 0.0);
    }

    fn apply_damped(&self, theta: &[f64], v: &mut [f64], damping: f64) {
        let c = self.correction(theta, v, damping);
        v.iter_mut().zip(c.iter()).for_each(|(o, x)| *o += x);
    }

    fn supports_damping(&self) -> bool {
        true
    }
}
