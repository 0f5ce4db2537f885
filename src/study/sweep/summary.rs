//! What a merged sweep says in brief: counts (`summary.json`) and the figures' data (time-to-ε
//! heat maps over the starts, one panel per setting; median time-to-ε against σ).

use super::record::CaseRecord;
use super::spec::{AxisName, StartLayout, SweepSpec, Value};
use crate::plot::grid::{GridFigure, GridPanel};
use crate::plot::{LossFigure, Series};
use serde::Serialize;
use std::collections::BTreeMap;

/// Most panels of the heat-map figure (the first settings; the title says how many are shown).
pub const PANELS_MAX: usize = 48;
/// Most series of the σ figure.
pub const SIGMA_SERIES_MAX: usize = 12;

/// Counts over all cases.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub spec_hash: String,
    pub epsilon: f64,
    pub cases: u64,
    pub settings: u64,
    pub starts: u64,
    /// Cases with L − L* < ε at some time.
    pub reached: u64,
    /// Median time-to-ε over the cases that reached it.
    pub median_t_eps: Option<f64>,
    /// Cases whose certificate verdict is monotone.
    pub monotone: u64,
    /// Cases per retcode.
    pub retcodes: BTreeMap<String, u64>,
}

/// The median of `v` (sorted in place), None when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

impl Summary {
    /// The summary of the records of `spec` (all cases, in id order).
    pub fn of(spec: &SweepSpec, records: &[CaseRecord]) -> Summary {
        let mut t: Vec<f64> = records.iter().filter_map(|r| r.t_eps).collect();
        let mut retcodes = BTreeMap::new();
        for r in records {
            *retcodes.entry(r.retcode.clone()).or_insert(0) += 1;
        }
        Summary {
            spec_hash: spec.hash().into(),
            epsilon: spec.epsilon,
            cases: records.len() as u64,
            settings: spec.n_settings,
            starts: spec.n_starts(),
            reached: t.len() as u64,
            median_t_eps: median(&mut t),
            monotone: records.iter().filter(|r| r.monotone == Some(true)).count() as u64,
            retcodes,
        }
    }
}

/// A short label of one axis value ("σ 0.8", "exact", "rtol 1e-8").
fn short(name: AxisName, v: &Value) -> String {
    match (name, v) {
        (AxisName::Metric | AxisName::Solver, Value::Name(s)) => s.clone(),
        (AxisName::Sigma, v) => format!("σ {v}"),
        (AxisName::Target, Value::Pair([a, b])) => format!("θ* ({a}, {b})"),
        (n, Value::Number(x)) => format!("{} {}", n.name(), compact(*x)),
        (n, v) => format!("{} {v}", n.name()),
    }
}

/// A number in shortest form, with an exponent outside [1e-3, 1e4).
fn compact(x: f64) -> String {
    if x == 0.0 || (1e-3..1e4).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// The panel title of setting `s`: its axis values.
pub fn setting_label(spec: &SweepSpec, s: u64, skip: &[AxisName]) -> String {
    let set = spec.setting(s);
    let parts: Vec<String> = set
        .values
        .iter()
        .filter(|(n, _)| !skip.contains(n))
        .map(|(n, v)| short(*n, v))
        .collect();
    if parts.is_empty() {
        "all cases".into()
    } else {
        parts.join(" · ").replace('-', "−")
    }
}

/// Time-to-ε over the starts, one panel per setting (at most [`PANELS_MAX`]).
pub fn heat_figure(spec: &SweepSpec, records: &[CaseRecord]) -> GridFigure {
    let n_starts = spec.n_starts() as usize;
    let shown = (spec.n_settings as usize).min(PANELS_MAX);
    let panels: Vec<GridPanel> = (0..shown)
        .map(|s| GridPanel {
            title: setting_label(spec, s as u64, &[]),
            cells: records
                .iter()
                .skip(s * n_starts)
                .take(n_starts)
                .map(|r| (r.start_mu1, r.start_mu2, r.t_eps))
                .collect(),
        })
        .collect();
    let cell = match &spec.layout {
        StartLayout::Grid { mu1, mu2 } => Some((step(mu1), step(mu2))),
        _ => None,
    };
    let more = if (spec.n_settings as usize) > shown {
        format!(" (first {shown} of {} settings)", spec.n_settings)
    } else {
        String::new()
    };
    GridFigure {
        title: format!(
            "Time to reach L − L* < {} from each start{more}",
            crate::plot::loss::log_label(spec.epsilon)
        ),
        x_label: "μ₁(0)".into(),
        y_label: "μ₂(0)".into(),
        value_label: "t to ε".into(),
        missing_label: "never within t_end".into(),
        panels,
        cell,
        log: true,
    }
}

fn step(v: &[f64]) -> f64 {
    if v.len() >= 2 {
        (v[v.len() - 1] - v[0]).abs() / (v.len() - 1) as f64
    } else {
        1.0
    }
}

/// Median time-to-ε (over the starts that reached ε) against σ, one series per combination of
/// the other axes (at most [`SIGMA_SERIES_MAX`]); None without a σ axis of ≥ 2 values.
pub fn sigma_figure(spec: &SweepSpec, records: &[CaseRecord]) -> Option<LossFigure> {
    let sigma_len = spec
        .dims
        .iter()
        .flatten()
        .find(|a| a.name == AxisName::Sigma)
        .map(|a| a.values.len())?;
    if sigma_len < 2 {
        return None;
    }
    let n_starts = spec.n_starts() as usize;
    // Series key: the other axes' values (label) → (σ, median).
    let mut series: BTreeMap<String, (usize, Vec<(f64, f64)>)> = BTreeMap::new();
    for s in 0..spec.n_settings as usize {
        let label = setting_label(spec, s as u64, &[AxisName::Sigma]);
        let rows =
            &records[(s * n_starts).min(records.len())..((s + 1) * n_starts).min(records.len())];
        let Some(first) = rows.first() else { continue };
        let mut t: Vec<f64> = rows.iter().filter_map(|r| r.t_eps).collect();
        let next = series.len();
        let e = series.entry(label).or_insert((next, Vec::new()));
        if let Some(m) = median(&mut t) {
            e.1.push((first.sigma, m));
        }
    }
    type Curve = (usize, String, Vec<(f64, f64)>);
    let mut list: Vec<Curve> = series.into_iter().map(|(l, (k, p))| (k, l, p)).collect();
    list.sort_by_key(|(k, _, _)| *k);
    let total = list.len();
    list.truncate(SIGMA_SERIES_MAX);
    let series: Vec<Series> = list
        .into_iter()
        .map(|(_, label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { label, points }
        })
        .collect();
    let more = if total > SIGMA_SERIES_MAX {
        format!(" (first {SIGMA_SERIES_MAX} of {total} settings)")
    } else {
        String::new()
    };
    Some(LossFigure {
        title: format!(
            "Median time to L − L* < {} over the starts that reach it, against σ{more}",
            crate::plot::loss::log_label(spec.epsilon)
        ),
        x_label: "σ".into(),
        y_label: "median t to ε".into(),
        series,
        ..LossFigure::default()
    })
}
