//! Figures of natural-gradient variational inference (built here, drawn by the existing
//! [`super::plane`] and [`super::loss`] helpers):
//!
//! * [`posterior_plane`]: q's 2-standard-deviation ellipses at a few times, moving over the
//!   exact posterior's 2-D marginal, drawn as the heat map and contours of
//!   L = −log p(z_a, z_b | data) (closed form for the conjugate target; for the logistic
//!   target p̃ itself at d = 2, and at d = 3 the third coordinate integrated out by a 24-node
//!   Gauss–Hermite rule on its exact marginal widened 1.5×; no heat map beyond d = 3);
//! * [`elbo_figure`]: KL[q‖p] = −ELBO + log Z against t for the natural and the Euclidean
//!   flow from the same starts (−ELBO − min −ELBO when log Z is unknown).

use super::{Dash, LegendEntry, LegendGlyph, LossFigure, PlaneFigure, Series, SeriesStyle};
use crate::model::StatModel;
use crate::model::variational::{Target, VariationalGaussian};
use crate::trajectory::Trajectory;
use gauss_quad::hermite::GaussHermite;
use nalgebra::{DMatrix, DVector};
use std::num::NonZeroUsize;

/// The points of the k-sd ellipse of N(mean, cov) (2-D), closed.
pub fn ellipse(mean: (f64, f64), cov: [[f64; 2]; 2], k: f64, n: usize) -> Vec<(f64, f64)> {
    let (a, b, c) = (cov[0][0], cov[0][1], cov[1][1]);
    // Cholesky of the 2×2 covariance.
    let l11 = a.max(0.0).sqrt();
    let l21 = if l11 > 0.0 { b / l11 } else { 0.0 };
    let l22 = (c - l21 * l21).max(0.0).sqrt();
    (0..=n)
        .map(|i| {
            let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            let (u, v) = (k * t.cos(), k * t.sin());
            (mean.0 + l11 * u, mean.1 + l21 * u + l22 * v)
        })
        .collect()
}

/// Indices of the steps closest after t = 0, 0.5, 1, 2, 4, 8, … and the last.
fn snapshot_steps(tr: &Trajectory) -> Vec<usize> {
    if tr.steps.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0];
    let mut next = 0.5;
    for (i, s) in tr.steps.iter().enumerate() {
        if s.t >= next {
            out.push(i);
            while next <= s.t {
                next *= 2.0;
            }
        }
    }
    let last = tr.steps.len().saturating_sub(1);
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// −log of the posterior's 2-D marginal over (z_a, z_b) at (x, y), up to a constant.
fn neg_log_marginal(model: &VariationalGaussian, (a, b): (usize, usize), x: f64, y: f64) -> f64 {
    let d = model.d();
    match (&model.target, &model.posterior) {
        (Target::LinearGaussian { .. }, Some(p)) => {
            let c = DMatrix::from_row_slice(
                2,
                2,
                &[p.cov[(a, a)], p.cov[(a, b)], p.cov[(b, a)], p.cov[(b, b)]],
            );
            let r = DVector::from_column_slice(&[x - p.mean[a], y - p.mean[b]]);
            match c.cholesky() {
                Some(ch) => 0.5 * r.dot(&ch.solve(&r)),
                None => f64::NAN,
            }
        }
        (Target::Logistic { .. }, _) if d == 2 => -model
            .target
            .log_density(&DVector::from_column_slice(&[x, y])),
        (Target::Logistic { .. }, Some(p)) if d == 3 => {
            let c = (0..3).find(|&i| i != a && i != b).unwrap_or(0);
            let (mu, sd) = (p.mean[c], 1.5 * p.cov[(c, c)].sqrt());
            let gh = GaussHermite::new(NonZeroUsize::new(24).unwrap_or(NonZeroUsize::MIN));
            let mut logs = Vec::new();
            for &(u, w) in gh.as_node_weight_pairs() {
                let zc = mu + std::f64::consts::SQRT_2 * sd * u;
                let mut z = DVector::zeros(3);
                z[a] = x;
                z[b] = y;
                z[c] = zc;
                // ∫ p̃ dz_c = √2·sd·Σ w e^{u²} p̃.
                logs.push(w.ln() + u * u + model.target.log_density(&z));
            }
            let mx = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            -(mx + logs.iter().map(|v| (v - mx).exp()).sum::<f64>().ln())
        }
        _ => f64::NAN,
    }
}

/// The ellipse figure over the coordinates `dims` = (a, b) of z.
pub fn posterior_plane(
    model: &VariationalGaussian,
    dims: (usize, usize),
    trajectories: &[Trajectory],
    title: &str,
) -> PlaneFigure {
    let (a, b) = dims;
    let mut series = Vec::new();
    let mut styles = Vec::new();
    let mut legend = Vec::new();
    let mut unmarked = Vec::new();
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    let mut grow = |pts: &[(f64, f64)]| {
        for &(x, y) in pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
            xlo = xlo.min(x);
            xhi = xhi.max(x);
            ylo = ylo.min(y);
            yhi = yhi.max(y);
        }
    };
    for (k, tr) in trajectories.iter().enumerate() {
        let snaps = snapshot_steps(tr);
        let mut times = Vec::new();
        for (j, &i) in snaps.iter().enumerate() {
            let Some((m, s)) = model.mean_cov(&tr.steps[i].theta) else {
                continue;
            };
            let pts = ellipse(
                (m[a], m[b]),
                [[s[(a, a)], s[(a, b)]], [s[(b, a)], s[(b, b)]]],
                2.0,
                120,
            );
            grow(&pts);
            times.push(format!("{:.3}", tr.steps[i].t));
            series.push(Series {
                label: String::new(),
                points: pts,
            });
            styles.push(SeriesStyle {
                colour: k,
                dash: if j + 1 == snaps.len() {
                    Dash::Solid
                } else {
                    Dash::Dashed
                },
            });
            unmarked.push(true);
        }
        legend.push(LegendEntry {
            label: format!(
                "start {k}: q's 2-sd ellipse at t = {} (last solid)",
                times.join(", ")
            ),
            glyph: LegendGlyph::Line(Some(k), Dash::Dashed),
        });
        // The path of q's mean.
        let path: Vec<(f64, f64)> = tr
            .steps
            .iter()
            .filter_map(|s| model.mean_cov(&s.theta).map(|(m, _)| (m[a], m[b])))
            .collect();
        series.push(Series {
            label: String::new(),
            points: path,
        });
        styles.push(SeriesStyle {
            colour: k,
            dash: Dash::Dotted,
        });
        unmarked.push(false);
        legend.push(LegendEntry {
            label: format!("start {k}: path of q's mean"),
            glyph: LegendGlyph::Line(Some(k), Dash::Dotted),
        });
    }
    let mut targets = Vec::new();
    if let Some(p) = &model.posterior {
        let pts = ellipse(
            (p.mean[a], p.mean[b]),
            [
                [p.cov[(a, a)], p.cov[(a, b)]],
                [p.cov[(b, a)], p.cov[(b, b)]],
            ],
            2.0,
            120,
        );
        grow(&pts);
        for (x, y) in [
            (
                p.mean[a] - 4.0 * p.cov[(a, a)].sqrt(),
                p.mean[b] - 4.0 * p.cov[(b, b)].sqrt(),
            ),
            (
                p.mean[a] + 4.0 * p.cov[(a, a)].sqrt(),
                p.mean[b] + 4.0 * p.cov[(b, b)].sqrt(),
            ),
        ] {
            grow(&[(x, y)]);
        }
        series.push(Series {
            label: String::new(),
            points: pts,
        });
        styles.push(SeriesStyle {
            colour: 7,
            dash: Dash::DashDot,
        });
        unmarked.push(true);
        legend.push(LegendEntry {
            label: "exact posterior's 2-sd ellipse (its mean and covariance; star: its mean)"
                .into(),
            glyph: LegendGlyph::Line(Some(7), Dash::DashDot),
        });
        targets.push((p.mean[a], p.mean[b]));
    }
    let px = 0.06 * (xhi - xlo).max(1e-6);
    let py = 0.06 * (yhi - ylo).max(1e-6);
    let (xr, yr) = ((xlo - px, xhi + px), (ylo - py, yhi + py));
    let n = 80;
    let grid: Vec<Vec<f64>> = if model.d() <= 3 {
        (0..n)
            .map(|j| {
                let y = yr.0 + (yr.1 - yr.0) * j as f64 / (n - 1) as f64;
                (0..n)
                    .map(|i| {
                        let x = xr.0 + (xr.1 - xr.0) * i as f64 / (n - 1) as f64;
                        neg_log_marginal(model, dims, x, y)
                    })
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    PlaneFigure {
        title: title.into(),
        x_label: format!("z{}", a + 1),
        y_label: format!("z{}", b + 1),
        x_range: xr,
        y_range: yr,
        loss_grid: grid,
        targets,
        singular_line: false,
        trajectories: series,
        styles,
        legend,
        unmarked,
        colour_label: Some("log₁₀(L − min L), L = −log p(z_a, z_b | data)".into()),
        z_label: String::new(),
    }
}

/// KL[q‖p] (or −ELBO − min) against t for the natural (solid) and Euclidean (dashed) flows.
pub fn elbo_figure(
    model: &VariationalGaussian,
    natural: &[Trajectory],
    euclidean: &[Trajectory],
) -> LossFigure {
    let log_z = model.posterior.as_ref().map(|p| p.log_z);
    let min = natural
        .iter()
        .chain(euclidean)
        .flat_map(|t| t.steps.iter().map(|s| s.loss))
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let shift = log_z.unwrap_or(-min);
    let mut series = Vec::new();
    let mut styles = Vec::new();
    for (flows, dash, name) in [
        (natural, Dash::Solid, "natural"),
        (euclidean, Dash::Dashed, "Euclidean"),
    ] {
        for (k, tr) in flows.iter().enumerate() {
            let stopped = match &tr.stop {
                crate::trajectory::StopReason::TEnd | crate::trajectory::StopReason::Converged => {
                    String::new()
                }
                other => format!(
                    " (stopped at t = {:.3}: {})",
                    tr.last().map_or(0.0, |s| s.t),
                    match other {
                        crate::trajectory::StopReason::MaxSteps => "step cap".to_string(),
                        o => format!("{o:?}").chars().take(40).collect(),
                    }
                ),
            };
            series.push(Series {
                label: format!("{name} flow, start {k}{stopped}"),
                points: tr.steps.iter().map(|s| (s.t, s.loss + shift)).collect(),
            });
            styles.push(SeriesStyle { colour: k, dash });
        }
    }
    let scale = min.abs().max(1.0);
    let floor = (model.evaluation_error() * scale).max(4.0 * f64::EPSILON * scale);
    let (title, y) = match log_z {
        Some(_) => (
            "KL[q‖p] = −ELBO + log Z: natural-gradient vs Euclidean flow",
            "KL[q‖p(·|data)]",
        ),
        None => (
            "−ELBO − min(−ELBO): natural-gradient vs Euclidean flow (log Z unknown)",
            "−ELBO − min",
        ),
    };
    LossFigure {
        title: title.into(),
        x_label: "t".into(),
        y_label: y.into(),
        series,
        styles,
        noise_floor: Some(floor),
        noise_label: format!("noise floor {floor:.1e} (stated evaluation error × |−ELBO|)"),
        ..LossFigure::default()
    }
}
