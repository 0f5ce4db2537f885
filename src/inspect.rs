//! Everything about the geometry at one point θ: what `fisher-flow metric --at` prints.

use crate::config::Experiment;
use crate::metric::{MetricKind, angle_deg, provider};
use crate::model::StatModel;
use serde::Serialize;

/// The metric report at one point. JSON keys are stable:
/// `loss, gradient, fisher, eigenvalues, condition_number, damping, damped_eigenvalues,
/// damped_condition_number, natural_gradient, angle_deg`. `fisher`, `eigenvalues` and
/// `condition_number` describe the undamped metric G; `damped_*` describe M = G + λI, the
/// matrix `natural_gradient` = M⁺∇L solves with (equal to the undamped ones when λ = 0).
#[derive(Clone, Debug, Serialize)]
pub struct PointReport {
    /// L(θ).
    pub loss: f64,
    /// ∇L(θ).
    pub gradient: Vec<f64>,
    /// The undamped metric matrix G (rows).
    pub fisher: Vec<Vec<f64>>,
    /// Eigenvalues of G, ascending.
    pub eigenvalues: Vec<f64>,
    /// κ(G) = λ_max/λ_min (null in JSON when infinite).
    pub condition_number: Option<f64>,
    /// Damping λ.
    pub damping: f64,
    /// Eigenvalues of G + λI (for K-FAC's factored damping: of G̃ + λI, a proxy).
    pub damped_eigenvalues: Vec<f64>,
    /// κ(G + λI) (null in JSON when infinite).
    pub damped_condition_number: Option<f64>,
    /// (G + λI)⁺∇L.
    pub natural_gradient: Vec<f64>,
    /// Angle between ∇L and the natural gradient, degrees.
    pub angle_deg: f64,
    /// Why `fisher`/`eigenvalues`/`condition_number` are missing, when they are (n too large
    /// for a dense matrix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// κ from ascending eigenvalues shifted by λ, `None` when infinite or undefined.
fn finite_kappa(eig: &[f64], damping: f64) -> Option<f64> {
    let k = crate::metric::damped_kappa(&nalgebra::DVector::from_row_slice(eig), damping);
    k.is_finite().then_some(k)
}

impl PointReport {
    /// What `fisher-flow metric --at θ` reports for an experiment: the exact (or Euclidean)
    /// metric of the mixture through [`PointReport::at`], any other model or metric through
    /// the experiment's metric provider; damping λ from the experiment. The live page's
    /// `/api/metric` calls this too, so both print the same numbers.
    pub fn for_experiment(exp: &Experiment, theta: &[f64]) -> crate::Result<PointReport> {
        let kind = exp.flow.metric;
        if exp.model.as_mixture().is_some()
            && matches!(kind, MetricKind::Exact | MetricKind::Euclidean)
        {
            Ok(PointReport::at(&exp.model, kind, exp.flow.damping, theta))
        } else {
            let p = provider(kind, &exp.flow.metric_options);
            PointReport::with_provider(&exp.model, p.as_ref(), exp.flow.damping, theta)
        }
    }

    fn assemble(
        loss: f64,
        g: &nalgebra::DVector<f64>,
        fisher: Vec<Vec<f64>>,
        eigenvalues: Vec<f64>,
        damping: f64,
        nat: &nalgebra::DVector<f64>,
        note: Option<String>,
    ) -> PointReport {
        PointReport {
            loss,
            gradient: g.iter().copied().collect(),
            fisher,
            condition_number: finite_kappa(&eigenvalues, 0.0),
            damped_eigenvalues: eigenvalues.iter().map(|l| l + damping).collect(),
            damped_condition_number: finite_kappa(&eigenvalues, damping),
            eigenvalues,
            damping,
            natural_gradient: nat.iter().copied().collect(),
            angle_deg: angle_deg(g, nat),
            note,
        }
    }

    /// Evaluate at θ with the given metric and damping. For the exact metric of a model with
    /// a cancellation-free geometry ([`StatModel::exact_geometry`], the mixture), ∇L, the
    /// natural gradient and the eigenvalues are that geometry's.
    pub fn at(
        model: &dyn StatModel,
        metric: MetricKind,
        damping: f64,
        theta: &[f64],
    ) -> PointReport {
        let mut grad = vec![0.0; model.dim()];
        let loss = model.loss_grad(theta, &mut grad);
        let m = metric.at(model, theta, damping);
        let fisher = m
            .matrix()
            .row_iter()
            .map(|r| r.iter().copied().collect())
            .collect();
        if metric == MetricKind::Exact
            && let Some(geo) = model.exact_geometry(theta, damping)
        {
            return Self::assemble(
                loss,
                &geo.gradient,
                fisher,
                geo.eigenvalues.iter().copied().collect(),
                damping,
                &geo.natural,
                None,
            );
        }
        let g = nalgebra::DVector::from_vec(grad);
        let nat = m.solve(&g);
        Self::assemble(
            loss,
            &g,
            fisher,
            m.eigenvalues().iter().copied().collect(),
            damping,
            &nat,
            None,
        )
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
        let note = dense.is_none().then(|| {
            format!(
                "n = {} is too large for a dense matrix: fisher, eigenvalues and condition_number omitted",
                model.dim()
            )
        });
        let has_eig = eig.is_some();
        let mut report = Self::assemble(
            loss,
            &g,
            dense
                .map(|d| d.row_iter().map(|r| r.iter().copied().collect()).collect())
                .unwrap_or_default(),
            eig.map(|v| v.iter().copied().collect()).unwrap_or_default(),
            damping,
            &nat,
            note,
        );
        // the provider's own κ of the matrix it solves with (K-FAC: its factored damping)
        if has_eig && let Some(k) = m.damped_condition_number() {
            report.damped_condition_number = k.is_finite().then_some(k);
        }
        Ok(report)
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
        let kappa = |k: Option<f64>| match k {
            Some(k) => format!("{k:.6e}"),
            None if self.note.is_some() => "not computed".to_string(),
            None => "inf (singular)".to_string(),
        };
        if self.damping > 0.0 {
            s.push_str(&format!(
                "eigenvalues:       [{}]  (damped, G + {}·I)\n",
                v(&self.damped_eigenvalues),
                self.damping
            ));
            s.push_str(&format!(
                "condition number:  {}  (damped)\n",
                kappa(self.damped_condition_number)
            ));
            s.push_str(&format!(
                "undamped eigenvalues: [{}]\n",
                v(&self.eigenvalues)
            ));
            s.push_str(&format!(
                "undamped condition number: {}\n",
                kappa(self.condition_number)
            ));
        } else {
            s.push_str(&format!("eigenvalues:       [{}]\n", v(&self.eigenvalues)));
            s.push_str(&format!(
                "condition number:  {}\n",
                kappa(self.condition_number)
            ));
        }
        if let Some(note) = &self.note {
            s.push_str(&format!("note:              {note}\n"));
        }
        s.push_str(&format!(
            "natural gradient:  [{}]\n",
            v(&self.natural_gradient)
        ));
        s.push_str(&format!("angle:             {:.4} deg\n", self.angle_deg));
        s
    }
}
