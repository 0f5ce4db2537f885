//! Everything about the geometry at one point θ: what `fisher-flow metric --at` prints.

use crate::metric::{MetricKind, angle_deg};
use crate::model::StatModel;
use serde::Serialize;

/// The metric report at one point. JSON keys are stable:
/// `loss, gradient, fisher, eigenvalues, condition_number, natural_gradient, angle_deg`.
#[derive(Clone, Debug, Serialize)]
pub struct PointReport {
    /// L(θ).
    pub loss: f64,
    /// ∇L(θ).
    pub gradient: Vec<f64>,
    /// The metric matrix (rows).
    pub fisher: Vec<Vec<f64>>,
    /// Its eigenvalues, ascending.
    pub eigenvalues: Vec<f64>,
    /// κ = λ_max/λ_min (null in JSON when infinite).
    pub condition_number: Option<f64>,
    /// (G + λI)⁺∇L.
    pub natural_gradient: Vec<f64>,
    /// Angle between ∇L and the natural gradient, degrees.
    pub angle_deg: f64,
}

impl PointReport {
    /// Evaluate at θ with the given metric and damping.
    pub fn at(
        model: &dyn StatModel,
        metric: MetricKind,
        damping: f64,
        theta: &[f64],
    ) -> PointReport {
        let mut grad = vec![0.0; model.dim()];
        let loss = model.loss_grad(theta, &mut grad);
        let g = nalgebra::DVector::from_vec(grad);
        let m = metric.at(model, theta, damping);
        let nat = m.solve(&g);
        let kappa = m.condition_number();
        PointReport {
            loss,
            gradient: g.iter().copied().collect(),
            fisher: m
                .matrix()
                .row_iter()
                .map(|r| r.iter().copied().collect())
                .collect(),
            eigenvalues: m.eigenvalues().iter().copied().collect(),
            condition_number: kappa.is_finite().then_some(kappa),
            natural_gradient: nat.iter().copied().collect(),
            angle_deg: angle_deg(&g, &nat),
        }
    }

    /// Human-readable multi-line text.
    pub fn to_text(&self, names: &[String]) -> String {
        let v = |x: &[f64]| {
            x.iter()
                .map(|a| format!("{a:.10e}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = String::new();
        s.push_str(&format!("parameters:        {}\n", names.join(", ")));
        s.push_str(&format!("loss:              {:.15e}\n", self.loss));
        s.push_str(&format!("gradient:          [{}]\n", v(&self.gradient)));
        s.push_str("fisher:\n");
        for r in &self.fisher {
            s.push_str(&format!("  [{}]\n", v(r)));
        }
        s.push_str(&format!("eigenvalues:       [{}]\n", v(&self.eigenvalues)));
        match self.condition_number {
            Some(k) => s.push_str(&format!("condition number:  {k:.6e}\n")),
            None => s.push_str("condition number:  inf (singular)\n"),
        }
        s.push_str(&format!(
            "natural gradient:  [{}]\n",
            v(&self.natural_gradient)
        ));
        s.push_str(&format!("angle:             {:.4} deg\n", self.angle_deg));
        s
    }
}
