//! An independent re-evaluation of the MLP, used by [`super::verify`] for `model_family = "mlp"`.
//!
//! Nothing here calls [`crate::model::Mlp`]'s evaluation or [`crate::gemm`]: the forward pass,
//! loss, gradient and Fisher matrix are written again with plain loops, one example at a time.
//! Only the network's shape, activation, output kind and the (already standardized) data are
//! taken from the validated model.
//!
//! Per example xᵢ: ã₀ = [xᵢ; 1], zℓ = W̃ℓ ãℓ₋₁, ãℓ = [φ(zℓ); 1] (hidden), ℓᵢ = −log p(yᵢ|z_L).
//! Softmax: ℓᵢ = lse(z) − z_y, ∂ℓ/∂z = p − e_y, Fisher Jᵀ(diag p − ppᵀ)J. Gaussian N(z, σ²):
//! ℓᵢ = ‖z − y‖²/(2σ²) + d/2·ln(2πσ²), ∂ℓ/∂z = (z − y)/σ², Fisher JᵀJ/σ². J = ∂z_L/∂θ is
//! built row by row by back-propagating each unit vector of the output. L, ∇L and I are
//! means over the N examples.
//!
//! Error model: every quantity is a sum of products of O(width) terms; rounding stays below
//! [`REF_MLP_ERROR`] relative to the sum of absolute values of the terms (the `*_scale`
//! fields), which is what [`super::verify`] compares with.

use super::verify::{Point, Reference};
use crate::model::data::Targets;
use crate::model::mlp::{Activation, Mlp, OutputKind};
use nalgebra::DMatrix;

/// Stated relative error (to the scale of absolute values) of one reference evaluation.
pub const REF_MLP_ERROR: f64 = 1e-13;

/// The independent MLP evaluator.
#[derive(Clone, Debug)]
pub struct RefMlp {
    sizes: Vec<usize>,
    tanh: bool,
    /// Gaussian noise σ (None: softmax).
    noise: Option<f64>,
    /// Examples: features (d₀ each).
    x: Vec<Vec<f64>>,
    /// Class labels (softmax) …
    labels: Vec<usize>,
    /// … or target values (Gaussian), d_L each.
    y: Vec<Vec<f64>>,
    /// (offset, d_in, d_out) of every layer.
    layers: Vec<(usize, usize, usize)>,
    dim: usize,
}

impl RefMlp {
    /// From the validated model's shape and data.
    pub fn new(m: &Mlp) -> RefMlp {
        let sizes = m.sizes().to_vec();
        let data = m.data();
        let x = (0..data.x.ncols())
            .map(|i| data.x.column(i).iter().copied().collect())
            .collect();
        let (labels, y) = match &data.targets {
            Targets::Classes { labels, .. } => (labels.clone(), Vec::new()),
            Targets::Values(v) => (
                Vec::new(),
                (0..v.ncols())
                    .map(|i| v.column(i).iter().copied().collect())
                    .collect(),
            ),
        };
        let mut layers = Vec::new();
        let mut off = 0;
        for w in sizes.windows(2) {
            layers.push((off, w[0], w[1]));
            off += (w[0] + 1) * w[1];
        }
        RefMlp {
            tanh: m.activation() == Activation::Tanh,
            noise: match m.output() {
                OutputKind::Softmax => None,
                OutputKind::Gaussian { noise } => Some(noise),
            },
            sizes,
            x,
            labels,
            y,
            layers,
            dim: off,
        }
    }

    fn w(th: &[f64], l: (usize, usize, usize), r: usize, c: usize) -> f64 {
        th[l.0 + r + c * l.2]
    }

    /// Forward pass of one example: hidden pre-activations and activations per layer, output z.
    fn forward(&self, th: &[f64], x: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut acts = vec![x.to_vec()];
        let mut pre = Vec::new();
        let last = self.layers.len() - 1;
        for (li, &l) in self.layers.iter().enumerate() {
            let a = &acts[li];
            let mut z = vec![0.0; l.2];
            for (r, zr) in z.iter_mut().enumerate() {
                let mut s = Self::w(th, l, r, l.1);
                for (c, ac) in a.iter().enumerate() {
                    s += Self::w(th, l, r, c) * ac;
                }
                *zr = s;
            }
            let out = if li == last {
                z.clone()
            } else if self.tanh {
                z.iter().map(|v| v.tanh()).collect()
            } else {
                z.iter().map(|v| v.max(0.0)).collect()
            };
            pre.push(z);
            acts.push(out);
        }
        (pre, acts)
    }

    /// Back-propagate an output delta; accumulate c·∂(δᵀz_L)/∂θ into `g`.
    fn backprop(&self, th: &[f64], pre: &[Vec<f64>], acts: &[Vec<f64>], dz: &[f64], g: &mut [f64]) {
        let mut delta = dz.to_vec();
        for li in (0..self.layers.len()).rev() {
            let l = self.layers[li];
            let a = &acts[li];
            for (r, dr) in delta.iter().enumerate() {
                for (c, ac) in a.iter().enumerate() {
                    g[l.0 + r + c * l.2] += dr * ac;
                }
                g[l.0 + r + l.1 * l.2] += dr;
            }
            if li > 0 {
                let z = &pre[li - 1];
                let mut prev = vec![0.0; l.1];
                for (c, pc) in prev.iter_mut().enumerate() {
                    let mut s = 0.0;
                    for (r, dr) in delta.iter().enumerate() {
                        s += Self::w(th, l, r, c) * dr;
                    }
                    let d = if self.tanh {
                        let t = z[c].tanh();
                        1.0 - t * t
                    } else if z[c] > 0.0 {
                        1.0
                    } else {
                        0.0
                    };
                    *pc = s * d;
                }
                delta = prev;
            }
        }
    }
}

impl Reference for RefMlp {
    fn dim(&self) -> usize {
        self.dim
    }

    fn rel_error(&self) -> f64 {
        REF_MLP_ERROR
    }

    fn point(&self, th: &[f64]) -> Point {
        let n = self.dim;
        let nex = self.x.len().max(1) as f64;
        let dl = *self.sizes.last().unwrap_or(&1);
        let mut loss = 0.0;
        let mut loss_abs = 0.0;
        let mut grad = vec![0.0; n];
        let mut grad_abs = vec![0.0; n];
        let mut fisher = DMatrix::<f64>::zeros(n, n);
        let mut fisher_scale = 0.0;
        let mut gi = vec![0.0; n];
        let mut jac = vec![vec![0.0; n]; dl];
        for (i, x) in self.x.iter().enumerate() {
            let (pre, acts) = self.forward(th, x);
            let z = &acts[acts.len() - 1];
            // Output: loss, ∂ℓ/∂z and the output-space Fisher H.
            let (li, dz, h): (f64, Vec<f64>, DMatrix<f64>) = match self.noise {
                None => {
                    let m = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                    let se: f64 = z.iter().map(|v| (v - m).exp()).sum();
                    let lse = m + se.ln();
                    let p: Vec<f64> = z.iter().map(|v| (v - lse).exp()).collect();
                    let y = self.labels.get(i).copied().unwrap_or(0).min(dl - 1);
                    let mut dz = p.clone();
                    dz[y] -= 1.0;
                    let h = DMatrix::from_fn(dl, dl, |a, b| {
                        (if a == b { p[a] } else { 0.0 }) - p[a] * p[b]
                    });
                    (lse - z[y], dz, h)
                }
                Some(s) => {
                    let y = &self.y[i];
                    let s2 = s * s;
                    let mut l = 0.5 * dl as f64 * (2.0 * std::f64::consts::PI * s2).ln();
                    let mut dz = vec![0.0; dl];
                    for k in 0..dl {
                        let d = z[k] - y[k];
                        l += d * d / (2.0 * s2);
                        dz[k] = d / s2;
                    }
                    (l, dz, DMatrix::identity(dl, dl) / s2)
                }
            };
            loss += li / nex;
            loss_abs += li.abs() / nex;
            gi.iter_mut().for_each(|v| *v = 0.0);
            self.backprop(th, &pre, &acts, &dz, &mut gi);
            for k in 0..n {
                grad[k] += gi[k] / nex;
                grad_abs[k] += gi[k].abs() / nex;
            }
            // Jacobian rows, one back-propagation per output unit.
            let mut jn2 = 0.0;
            for (k, row) in jac.iter_mut().enumerate() {
                row.iter_mut().for_each(|v| *v = 0.0);
                let mut e = vec![0.0; dl];
                e[k] = 1.0;
                self.backprop(th, &pre, &acts, &e, row);
                jn2 += row.iter().map(|v| v * v).sum::<f64>();
            }
            // I += Jᵀ H J / N.
            for a in 0..dl {
                for b in 0..dl {
                    let hab = h[(a, b)] / nex;
                    if hab == 0.0 {
                        continue;
                    }
                    let (ra, rb) = (&jac[a], &jac[b]);
                    for q in 0..n {
                        let c = hab * ra[q];
                        if c == 0.0 {
                            continue;
                        }
                        for r in 0..n {
                            fisher[(q, r)] += c * rb[r];
                        }
                    }
                }
            }
            fisher_scale += jn2 * h.norm() / nex;
        }
        Point {
            loss,
            grad,
            fisher,
            loss_scale: loss_abs,
            grad_scale: grad_abs.iter().map(|v| v * v).sum::<f64>().sqrt(),
            fisher_scale,
        }
    }
}
