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
    /// Why `fisher`/`eigenvalues`/`condition_number` are missing, when they are (n too large
    /// for a dense matrix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
            note: None,
        }
    }

    /// Evaluate at θ through a metric provider (any model, any metric). The dense matrix, its
    /// eigenvalues and κ are reported only when affordable; otherwise `note` says so.
    pub fn with_provider(
        model: &dyn StatModel,
        provider: &dyn crate::metric::MetricProvider,
        damping: f64,
        theta: &[f64],
    ) -> crate::Result<PointReport> {
        let mut grad = vec![0.0; model.dim()];
        let loss = model.loss_grad(theta, &mut grad);
        let g = nalgebra::DVector::from_vec(grad);
        let m = provider.factorize(model, theta, damping)?;
        let nat = m.solve(&g);
        let dense = m.matrix();
        let eig = if dense.is_some() {
            m.eigenvalues()
        } else {
            None
        };
        let kappa = eig.as_ref().and_then(|v| {
            let (lo, hi) = (v[0], v[v.len() - 1]);
            (lo > 0.0).then_some(hi / lo)
        });
        let note = dense.is_none().then(|| {
            format!(
                "n = {} is too large for a dense matrix: fisher, eigenvalues and condition_number omitted",
                model.dim()
            )
        });
        Ok(PointReport {
            loss,
            gradient: g.iter().copied().collect(),
            fisher: dense
                .map(|d| d.row_iter().map(|r| r.iter().copied().collect()).collect())
                .unwrap_or_default(),
            eigenvalues: eig.map(|v| v.iter().copied().collect()).unwrap_or_default(),
            condition_number: kappa,
            natural_gradient: nat.iter().copied().collect(),
            angle_deg: angle_deg(&g, &nat),
            note,
        })
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
        if let Some(note) = &self.note {
            s.push_str(&format!("note:              {note}\n"));
        }
        match self.condition_number {
            Some(k) => s.push_str(&format!("condition number:  {k:.6e}\n")),
            None if self.note.is_some() => s.push_str("condition number:  not computed\n"),
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
