//! `run --quality`: approximation quality of the run's metric along its trajectories, and
//! the seed report of random metric providers.

use crate::cli::say;
use fisher_flow::Result;
use fisher_flow::config::Experiment;
use fisher_flow::export::write_atomic;
use fisher_flow::metric::quality::{Quality, quality_at};
use fisher_flow::metric::{MetricKind, provider};
use fisher_flow::model::KfacTargets;
use fisher_flow::plot::{self, LossFigure, Series};
use fisher_flow::trajectory::Trajectory;
use std::path::Path;

/// Print the seed of every random part of the metric.
pub fn announce_seed(exp: &Experiment) {
    let o = &exp.flow.metric_options;
    let sampled_base = o.base == fisher_flow::metric::provider::BaseMetric::Sampled;
    match exp.flow.metric {
        MetricKind::Sampled => say(format!(
            "metric sampled: {} Monte Carlo draws, seed {}",
            o.samples, o.seed
        )),
        MetricKind::Diagonal | MetricKind::BlockDiagonal if sampled_base => say(format!(
            "metric {} of the sampled Fisher: {} draws, seed {}",
            exp.flow.metric.name(),
            o.samples,
            o.seed
        )),
        MetricKind::Kfac if o.kfac_targets == KfacTargets::Sampled => say(format!(
            "metric kfac: targets sampled from the model, {} draw(s) per example, seed {}",
            o.kfac_samples, o.seed
        )),
        _ => {}
    }
}

/// Quality at every recorded step of every trajectory.
pub fn along(exp: &Experiment, trajectories: &[Trajectory]) -> Result<Vec<Vec<Quality>>> {
    let p = provider(exp.flow.metric, &exp.flow.metric_options);
    trajectories
        .iter()
        .map(|tr| {
            tr.steps
                .iter()
                .map(|s| quality_at(&exp.model, p.as_ref(), &s.theta, exp.flow.damping, s.t))
                .collect()
        })
        .collect()
}

/// quality.csv and the two figures against t.
pub fn write(
    out: &Path,
    exp: &Experiment,
    trajectories: &[Trajectory],
    q: &[Vec<Quality>],
) -> Result<()> {
    let mut csv = String::from("trajectory,t,angle_deg,rel_frobenius\n");
    for (i, rows) in q.iter().enumerate() {
        for r in rows {
            csv.push_str(&format!(
                "{i},{:e},{:e},{:e}\n",
                r.t, r.angle_deg, r.rel_frobenius
            ));
        }
    }
    write_atomic(&out.join("quality.csv"), csv.as_bytes())?;
    let series = |f: fn(&Quality) -> f64| -> Vec<Series> {
        q.iter()
            .zip(trajectories)
            .enumerate()
            .map(|(i, (rows, tr))| Series {
                label: crate::run::start_label(i, &tr.start),
                points: rows.iter().map(|r| (r.t, f(r))).collect(),
            })
            .collect()
    };
    let name = exp.flow.metric.name();
    // Degrees on a linear axis from 0 (angles are bounded; a log axis hides 0 and prints
    // "9·10¹" for 90).
    let max_angle = q
        .iter()
        .flatten()
        .map(|r| r.angle_deg)
        .filter(|a| a.is_finite())
        .fold(0.0, f64::max);
    let angle = LossFigure {
        title: format!("Angle between the {name} and the exact natural gradient"),
        x_label: "t".into(),
        y_label: "angle (degrees)".into(),
        series: series(|r| r.angle_deg),
        linear_y: true,
        y_range: Some((0.0, (1.08 * max_angle).clamp(1e-6, 180.0))),
        ..LossFigure::default()
    };
    let frob = LossFigure {
        title: format!("Relative Frobenius error of the {name} metric against the exact Fisher"),
        x_label: "t".into(),
        y_label: "relative Frobenius error".into(),
        series: series(|r| r.rel_frobenius),
        ..LossFigure::default()
    };
    for ext in ["svg", "png"] {
        plot::loss(&out.join(format!("quality-angle.{ext}")), &angle)?;
        plot::loss(&out.join(format!("quality-frobenius.{ext}")), &frob)?;
    }
    Ok(())
}
