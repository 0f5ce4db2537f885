//! Fisher–Rao geodesics of any [`StatModel`] by shooting.
//!
//! The geodesic equation θ̈ᵏ + Γᵏᵢⱼ θ̇ⁱθ̇ʲ = 0 with Γ from the model's Fisher matrix g = I(θ):
//! g·θ̈ = −(aᵢ − ½bᵢ), aᵢ = Σⱼₖ ∂ₖgᵢⱼ θ̇ʲθ̇ᵏ, bᵢ = Σⱼₖ ∂ᵢgⱼₖ θ̇ʲθ̇ᵏ, with ∂g by central
//! differences of `fisher` (step 1e-5·max(1, |θᵢ|)). It is integrated over s ∈ [0, 1] by
//! classical RK4 with N steps, together with the length ∫√(θ̇ᵀgθ̇)ds as an extra state.
//! Shooting: Newton on the initial velocity v so that θ(1; v) = B (Jacobian of θ(1; ·) by
//! central differences, step halved until the miss decreases), starting from v = B − A. This is
//! done with N and with 2N steps (each path ending at B) and the returned length is the
//! Richardson extrapolation (16ℓ_{2N} − ℓ_N)/15.
//!
//! Any curve from A to B is at least as long as the geodesic, and the length is stationary at
//! the geodesic, so a small error in the path (from the differenced Γ) changes the length only
//! to second order.

use crate::error::{Error, Result};
use crate::model::StatModel;
use nalgebra::{DMatrix, DVector};

/// Result of a shooting.
#[derive(Clone, Debug)]
pub struct Geodesic {
    /// Initial velocity θ̇(0).
    pub velocity: Vec<f64>,
    /// Fisher–Rao length of the curve (Richardson-extrapolated).
    pub length: f64,
    /// |θ(1) − B|∞ after shooting.
    pub miss: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

fn christoffel_rhs(
    model: &dyn StatModel,
    th: &DVector<f64>,
    v: &DVector<f64>,
) -> (DVector<f64>, f64) {
    let n = th.len();
    let g = model.fisher(th.as_slice());
    let mut dg = Vec::with_capacity(n);
    for k in 0..n {
        let h = 1e-5 * th[k].abs().max(1.0);
        let mut p = th.clone();
        let mut q = th.clone();
        p[k] += h;
        q[k] -= h;
        dg.push((model.fisher(p.as_slice()) - model.fisher(q.as_slice())) / (2.0 * h));
    }
    let mut rhs = DVector::zeros(n);
    for i in 0..n {
        let mut a = 0.0;
        for (k, dgk) in dg.iter().enumerate() {
            for j in 0..n {
                a += dgk[(i, j)] * v[j] * v[k];
            }
        }
        let b = (&dg[i] * v).dot(v);
        rhs[i] = -(a - 0.5 * b);
    }
    let speed = (&g * v).dot(v).max(0.0).sqrt();
    let acc = g
        .lu()
        .solve(&rhs)
        .unwrap_or_else(|| DVector::from_element(n, f64::NAN));
    (acc, speed)
}

/// Integrate the geodesic from `a` with velocity `v` over s ∈ [0, 1]: (θ(1), length).
pub fn integrate(model: &dyn StatModel, a: &[f64], v: &[f64], steps: usize) -> (DVector<f64>, f64) {
    let n = a.len();
    let f = |y: &DVector<f64>| -> DVector<f64> {
        let th = y.rows(0, n).into_owned();
        let vel = y.rows(n, n).into_owned();
        let (acc, speed) = christoffel_rhs(model, &th, &vel);
        let mut out = DVector::zeros(2 * n + 1);
        out.rows_mut(0, n).copy_from(&vel);
        out.rows_mut(n, n).copy_from(&acc);
        out[2 * n] = speed;
        out
    };
    let mut y = DVector::zeros(2 * n + 1);
    y.rows_mut(0, n).copy_from_slice(a);
    y.rows_mut(n, n).copy_from_slice(v);
    let h = 1.0 / steps as f64;
    for _ in 0..steps {
        let k1 = f(&y);
        let k2 = f(&(&y + &k1 * (0.5 * h)));
        let k3 = f(&(&y + &k2 * (0.5 * h)));
        let k4 = f(&(&y + &k3 * h));
        y += (k1 + k2 * 2.0 + k3 * 2.0 + k4) * (h / 6.0);
    }
    (y.rows(0, n).into_owned(), y[2 * n])
}

/// Shoot from `a` to `b` with N = `steps` and again with 2N RK4 steps (each path hits B) and
/// return the Richardson-extrapolated length (16ℓ_{2N} − ℓ_N)/15; error if Newton fails.
pub fn shoot(model: &dyn StatModel, a: &[f64], b: &[f64], steps: usize) -> Result<Geodesic> {
    let v0: Vec<f64> = b.iter().zip(a).map(|(x, y)| x - y).collect();
    let coarse = shoot_fixed(model, a, b, steps, &v0)?;
    let fine = shoot_fixed(model, a, b, 2 * steps, &coarse.velocity)?;
    Ok(Geodesic {
        length: (16.0 * fine.length - coarse.length) / 15.0,
        iterations: coarse.iterations + fine.iterations,
        ..fine
    })
}

/// Newton shooting with a fixed number of RK4 steps from the initial guess `v0`; the length is
/// that of the N-step path.
fn shoot_fixed(
    model: &dyn StatModel,
    a: &[f64],
    b: &[f64],
    steps: usize,
    v0: &[f64],
) -> Result<Geodesic> {
    let n = a.len();
    let target = DVector::from_row_slice(b);
    let mut v = DVector::from_row_slice(v0);
    let scale = target.amax().max(1.0);
    let mut miss = f64::INFINITY;
    for it in 0..40 {
        let (end, _) = integrate(model, a, v.as_slice(), steps);
        let r = &end - &target;
        miss = r.amax();
        if !miss.is_finite() {
            break;
        }
        if miss < 1e-11 * scale {
            let (_, l1) = integrate(model, a, v.as_slice(), steps);
            return Ok(Geodesic {
                velocity: v.iter().copied().collect(),
                length: l1,
                miss,
                iterations: it,
            });
        }
        let mut jac = DMatrix::zeros(n, n);
        for k in 0..n {
            let dh = 1e-6 * v[k].abs().max(1e-3);
            let mut p = v.clone();
            let mut q = v.clone();
            p[k] += dh;
            q[k] -= dh;
            let (ep, _) = integrate(model, a, p.as_slice(), steps);
            let (eq, _) = integrate(model, a, q.as_slice(), steps);
            jac.set_column(k, &((ep - eq) / (2.0 * dh)));
        }
        let Some(step) = jac.lu().solve(&r) else {
            break;
        };
        // Damped Newton: halve the step until the miss is finite and smaller.
        let mut lambda = 1.0;
        loop {
            let trial = &v - &step * lambda;
            let (e, _) = integrate(model, a, trial.as_slice(), steps);
            let m = (&e - &target).amax();
            if (m.is_finite() && m < miss) || lambda < 1e-6 {
                v = trial;
                break;
            }
            lambda *= 0.5;
        }
    }
    Err(Error::Numerical(format!(
        "geodesic shooting from {a:?} to {b:?} did not converge (miss {miss:e})"
    )))
}
