//! An independent re-evaluation of the variational family, used by [`super::verify`] for
//! `model_family = "variational-gaussian"`.
//!
//! Nothing here calls [`crate::model::variational`]'s evaluation: the chart map φ ↦ (m, S)
//! is written again generically (dual numbers), with its own Cholesky and inverse. Only the
//! chart name, covariance form and the target's data are taken from the validated model.
//!
//! * Loss −ELBO = −½ log det(2πe S) − E_q[log p̃]: conjugate target in closed form; logistic
//!   target by projection — xᵢᵀz ~ N(xᵢᵀm, xᵢᵀSxᵢ) under q, so each E_q[log σ(yᵢxᵢᵀz)] is
//!   a 1-D integral, done by composite 8-node Gauss–Legendre on panels of width ≤ ½ over
//!   μ ± 12 sd (log σ is analytic within π of the real axis: the panel rule's error is below
//!   1e-15 relative). The run uses a d-dimensional tensor rule instead.
//! * Gradient: (∂/∂m, ∂/∂S) by the same 1-D integrals (∂/∂μ E f = E f', ∂/∂v E f = ½E f'',
//!   Price's theorem), pulled back through the dual-number Jacobian of the chart map.
//! * Fisher: the Hessian in φ' of KL[q_φ ‖ q_φ'] at φ' = φ (second-order dual numbers through
//!   the closed-form Gaussian KL) — a different formula from the run's JᵀI_θJ.

// Plain index loops on purpose: the reference reads like the formulas it checks.
#![allow(clippy::needless_range_loop)]

use super::verify::{Point, Reference};
use crate::model::variational::{Covariance, Target, VariationalChart, VariationalGaussian};
use nalgebra::{DMatrix, DVector};
use num_dual::DualNum;
use std::f64::consts::{E, PI};

/// Stated relative error (to the scale of absolute values) of one reference evaluation.
pub const REF_VI_ERROR: f64 = 1e-12;

/// 8-point Gauss–Legendre nodes and weights on [−1, 1].
const GL8: [(f64, f64); 8] = [
    (-0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
    (-0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (-0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (-0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
];

#[derive(Clone, Debug)]
enum RefTarget {
    Quadratic {
        prec: DMatrix<f64>,
        b: DVector<f64>,
        c: f64,
    },
    Logistic {
        x: Vec<Vec<f64>>,
        y: Vec<f64>,
        prior_var: f64,
    },
}

/// The independent evaluator.
#[derive(Clone, Debug)]
pub struct RefVi {
    d: usize,
    chart: VariationalChart,
    mean_field: bool,
    target: RefTarget,
}

/// Lower Cholesky factor of a symmetric matrix (None unless positive definite).
fn chol<T: DualNum<Primitive = f64>>(s: &[Vec<T>]) -> Option<Vec<Vec<T>>> {
    let d = s.len();
    let mut l = vec![vec![T::zero(); d]; d];
    for i in 0..d {
        for j in 0..=i {
            let mut v = s[i][j].clone();
            for k in 0..j {
                v -= l[i][k].clone() * l[j][k].clone();
            }
            if i == j {
                if v.re() <= 0.0 || !v.re().is_finite() {
                    return None;
                }
                l[i][i] = v.sqrt();
            } else {
                l[i][j] = v / l[j][j].clone();
            }
        }
    }
    Some(l)
}

/// S⁻¹ from the Cholesky factor (column by column).
fn inverse<T: DualNum<Primitive = f64>>(l: &[Vec<T>]) -> Vec<Vec<T>> {
    let d = l.len();
    let mut inv = vec![vec![T::zero(); d]; d];
    for c in 0..d {
        let mut y = vec![T::zero(); d];
        for i in 0..d {
            let mut v = if i == c { T::one() } else { T::zero() };
            for k in 0..i {
                v -= l[i][k].clone() * y[k].clone();
            }
            y[i] = v / l[i][i].clone();
        }
        let mut x = vec![T::zero(); d];
        for i in (0..d).rev() {
            let mut v = y[i].clone();
            for k in i + 1..d {
                v -= l[k][i].clone() * x[k].clone();
            }
            x[i] = v / l[i][i].clone();
        }
        for i in 0..d {
            inv[i][c] = x[i].clone();
        }
    }
    inv
}

fn logdet<T: DualNum<Primitive = f64>>(l: &[Vec<T>]) -> T {
    l.iter()
        .enumerate()
        .fold(T::zero(), |a, (i, r)| a + r[i].clone().ln() * 2.0)
}

/// log σ(t) and its first two derivatives.
fn log_sigmoid3(t: f64) -> (f64, f64, f64) {
    let (ls, s) = if t > 0.0 {
        let e = (-t).exp();
        (-e.ln_1p(), 1.0 / (1.0 + e))
    } else {
        let e = t.exp();
        (t - e.ln_1p(), e / (1.0 + e))
    };
    (ls, 1.0 - s, -s * (1.0 - s))
}

/// E[log σ(T)], E[log σ'(T)], E[log σ''(T)], E|log σ(T)| for T ~ N(μ, v).
fn projected(mu: f64, v: f64) -> [f64; 4] {
    let sd = v.max(0.0).sqrt();
    let (a, b) = (mu - 12.0 * sd, mu + 12.0 * sd);
    let panels = (((b - a) / 0.5).ceil() as usize).clamp(1, 100_000);
    let h = (b - a) / panels as f64;
    let mut out = [0.0; 4];
    if sd == 0.0 {
        let (f, f1, f2) = log_sigmoid3(mu);
        return [f, f1, f2, f.abs()];
    }
    for p in 0..panels {
        let c = a + (p as f64 + 0.5) * h;
        for (x, w) in GL8 {
            let t = c + 0.5 * h * x;
            let z = (t - mu) / sd;
            let dens = (-0.5 * z * z).exp() / (sd * (2.0 * PI).sqrt());
            let ww = 0.5 * h * w * dens;
            let (f, f1, f2) = log_sigmoid3(t);
            out[0] += ww * f;
            out[1] += ww * f1;
            out[2] += ww * f2;
            out[3] += ww * f.abs();
        }
    }
    out
}

impl RefVi {
    /// From the validated model's chart, covariance form and target data.
    pub fn new(m: &VariationalGaussian) -> RefVi {
        let target = match &m.target {
            Target::LinearGaussian { prec, b, c } => RefTarget::Quadratic {
                prec: prec.clone(),
                b: b.clone(),
                c: *c,
            },
            Target::Logistic { x, y, prior_var } => RefTarget::Logistic {
                x: (0..x.nrows())
                    .map(|i| x.row(i).iter().copied().collect())
                    .collect(),
                y: y.clone(),
                prior_var: *prior_var,
            },
        };
        RefVi {
            d: m.coords.d,
            chart: m.coords.chart,
            mean_field: m.coords.cov == Covariance::MeanField,
            target,
        }
    }

    fn pairs(&self) -> Vec<(usize, usize)> {
        if self.mean_field {
            (0..self.d).map(|i| (i, i)).collect()
        } else {
            (0..self.d)
                .flat_map(|a| (0..=a).map(move |b| (a, b)))
                .collect()
        }
    }

    /// (m, S) of φ, generic.
    fn mean_cov<T: DualNum<Primitive = f64>>(&self, phi: &[T]) -> Option<(Vec<T>, Vec<Vec<T>>)> {
        let d = self.d;
        let mut sym = vec![vec![T::zero(); d]; d];
        let mut low = vec![vec![T::zero(); d]; d];
        for (k, &(a, b)) in self.pairs().iter().enumerate() {
            let v = phi.get(d + k)?.clone();
            sym[a][b] = v.clone();
            sym[b][a] = v.clone();
            low[a][b] = v;
        }
        let head: Vec<T> = phi.get(..d)?.to_vec();
        match self.chart {
            VariationalChart::MeanCov => Some((head, sym)),
            VariationalChart::MeanCholesky => {
                if (0..d).any(|i| low[i][i].re() <= 0.0) {
                    return None;
                }
                let mut s = vec![vec![T::zero(); d]; d];
                for i in 0..d {
                    for j in 0..d {
                        for k in 0..d {
                            s[i][j] += low[i][k].clone() * low[j][k].clone();
                        }
                    }
                }
                Some((head, s))
            }
            VariationalChart::Natural => {
                let lam: Vec<Vec<T>> = sym
                    .iter()
                    .map(|r| r.iter().map(|v| v.clone() * (-2.0)).collect())
                    .collect();
                let s = inverse(&chol(&lam)?);
                let m = (0..d)
                    .map(|i| {
                        (0..d).fold(T::zero(), |acc, j| acc + s[i][j].clone() * head[j].clone())
                    })
                    .collect();
                Some((m, s))
            }
        }
    }

    /// −ELBO at (m, S) in f64 with its parts' gradients: (value, |parts| sum, [(∂/∂m, ∂/∂S)]
    /// per part: entropy, prior/quadratic, likelihood).
    #[allow(clippy::type_complexity)]
    fn base(
        &self,
        m: &[f64],
        s: &[Vec<f64>],
    ) -> Option<(f64, f64, Vec<(Vec<f64>, Vec<Vec<f64>>)>)> {
        let d = self.d;
        let l = chol(s)?;
        let p = inverse(&l);
        let ent = -0.5 * (logdet(&l) + d as f64 * (2.0 * PI * E).ln());
        let ent_g = (
            vec![0.0; d],
            p.iter()
                .map(|r| r.iter().map(|v| -0.5 * v).collect())
                .collect::<Vec<Vec<f64>>>(),
        );
        match &self.target {
            RefTarget::Quadratic { prec, b, c } => {
                let mut q = *c;
                let mut gm = vec![0.0; d];
                let mut abs = c.abs();
                for i in 0..d {
                    q += b[i] * m[i];
                    abs += (b[i] * m[i]).abs();
                    for j in 0..d {
                        let t = -0.5 * prec[(i, j)] * (m[i] * m[j] + s[j][i]);
                        q += t;
                        abs += t.abs();
                        gm[i] -= b[i] * if i == j { 1.0 } else { 0.0 } - prec[(i, j)] * m[j];
                    }
                }
                let gs = (0..d)
                    .map(|i| (0..d).map(|j| 0.5 * prec[(i, j)]).collect())
                    .collect();
                Some((ent - q, ent.abs() + abs, vec![ent_g, (gm, gs)]))
            }
            RefTarget::Logistic { x, y, prior_var } => {
                let tr: f64 = (0..d).map(|i| s[i][i]).sum();
                let mm: f64 = m.iter().map(|v| v * v).sum();
                let prior =
                    -0.5 * (mm + tr) / prior_var - 0.5 * d as f64 * (2.0 * PI * prior_var).ln();
                let prior_g = (
                    m.iter().map(|v| v / prior_var).collect(),
                    (0..d)
                        .map(|i| {
                            (0..d)
                                .map(|j| if i == j { 0.5 / prior_var } else { 0.0 })
                                .collect()
                        })
                        .collect(),
                );
                let mut lik = 0.0;
                let mut lik_abs = 0.0;
                let mut gm = vec![0.0; d];
                let mut gs = vec![vec![0.0; d]; d];
                for (xi, &yi) in x.iter().zip(y) {
                    let mu: f64 = (0..d).map(|j| xi[j] * m[j]).sum::<f64>() * yi;
                    let mut v = 0.0;
                    for a in 0..d {
                        for b in 0..d {
                            v += xi[a] * s[a][b] * xi[b];
                        }
                    }
                    // yᵢxᵢᵀz ~ N(yᵢxᵢᵀm, xᵢᵀSxᵢ) (yᵢ² = 1).
                    let [f, f1, f2, fa] = projected(mu, v);
                    lik += f;
                    lik_abs += fa;
                    for a in 0..d {
                        gm[a] -= f1 * yi * xi[a];
                        for b in 0..d {
                            gs[a][b] -= 0.5 * f2 * xi[a] * xi[b];
                        }
                    }
                }
                Some((
                    ent - prior - lik,
                    ent.abs() + prior.abs() + lik_abs,
                    vec![ent_g, prior_g, (gm, gs)],
                ))
            }
        }
    }
}

impl Reference for RefVi {
    fn dim(&self) -> usize {
        self.d + self.pairs().len()
    }

    fn rel_error(&self) -> f64 {
        REF_VI_ERROR
    }

    fn point(&self, th: &[f64]) -> Point {
        let mut p = self.loss_point(th);
        let n = self.dim();
        let at = DVector::from_column_slice(th);
        let d = self.d;
        // Fisher: Hessian in φ' of KL[q_φ ‖ q_φ'] at φ' = φ.
        let fisher = self.mean_cov(th).and_then(|(m0, s0)| {
            let l0 = chol(&s0)?;
            let ld0 = logdet(&l0);
            let (_, _, h) = num_dual::hessian(
                |v| {
                    let phi: Vec<_> = v.iter().cloned().collect();
                    let Some((m1, s1)) = self.mean_cov(&phi) else {
                        return v[0].clone() * f64::NAN;
                    };
                    let Some(l1) = chol(&s1) else {
                        return v[0].clone() * f64::NAN;
                    };
                    let p1 = inverse(&l1);
                    let mut tr = v[0].clone() * 0.0;
                    let mut quad = v[0].clone() * 0.0;
                    for i in 0..d {
                        for j in 0..d {
                            tr += p1[i][j].clone() * s0[j][i];
                            quad += (m1[i].clone() - m0[i])
                                * p1[i][j].clone()
                                * (m1[j].clone() - m0[j]);
                        }
                    }
                    (tr + quad - d as f64 + logdet(&l1) - ld0) * 0.5
                },
                &at,
            );
            Some(h)
        });
        p.fisher = fisher.unwrap_or_else(|| DMatrix::from_element(n, n, f64::NAN));
        p.fisher_scale = p.fisher.norm();
        p
    }

    fn loss_point(&self, th: &[f64]) -> Point {
        let n = self.dim();
        let nan = Point {
            loss: f64::NAN,
            grad: vec![f64::NAN; n],
            fisher: DMatrix::zeros(0, 0),
            loss_scale: f64::NAN,
            grad_scale: f64::NAN,
            fisher_scale: 0.0,
        };
        let Some((m, s)) = self.mean_cov(th) else {
            return nan;
        };
        let Some((loss, scale, parts)) = self.base(&m, &s) else {
            return nan;
        };
        // Jacobian of (m, S) in φ by first-order dual numbers.
        let at = DVector::from_column_slice(th);
        let d = self.d;
        let mut jac_m = vec![vec![0.0; n]; d];
        let mut jac_s = vec![vec![vec![0.0; n]; d]; d];
        for i in 0..d {
            let (_, g) = num_dual::gradient(
                |v| {
                    let phi: Vec<_> = v.iter().cloned().collect();
                    self.mean_cov(&phi)
                        .map(|(m, _)| m[i].clone())
                        .unwrap_or(v[0].clone() * f64::NAN)
                },
                &at,
            );
            jac_m[i] = g.iter().copied().collect();
            for j in 0..=i {
                let (_, g) = num_dual::gradient(
                    |v| {
                        let phi: Vec<_> = v.iter().cloned().collect();
                        self.mean_cov(&phi)
                            .map(|(_, s)| s[i][j].clone())
                            .unwrap_or(v[0].clone() * f64::NAN)
                    },
                    &at,
                );
                jac_s[i][j] = g.iter().copied().collect();
                jac_s[j][i] = jac_s[i][j].clone();
            }
        }
        let mut grad = vec![0.0; n];
        let mut grad_scale = 0.0;
        for (gm, gs) in &parts {
            let mut part = vec![0.0; n];
            for k in 0..n {
                for i in 0..d {
                    part[k] += gm[i] * jac_m[i][k];
                    for j in 0..d {
                        part[k] += gs[i][j] * jac_s[i][j][k];
                    }
                }
            }
            grad_scale += part.iter().map(|v| v * v).sum::<f64>().sqrt();
            for k in 0..n {
                grad[k] += part[k];
            }
        }
        Point {
            loss,
            grad,
            fisher: DMatrix::zeros(0, 0),
            loss_scale: scale,
            grad_scale,
            fisher_scale: 0.0,
        }
    }
}
