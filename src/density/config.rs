//! `[density]` of a model file with `model.family = "density"`, validated into a
//! [`DensityExperiment`].
//!
//! ```toml
//! [model]
//! family = "density"
//! [density]
//! flow = "fisher-rao"            # fisher-rao | wasserstein | wfr
//! lo = [-8.0]                    # grid box (one entry per axis, 1 or 2 axes)
//! hi = [8.0]
//! points = [256]                 # cells per axis
//! [density.target]               # π: mixture | bimodal | banana | gaussian | potential
//! kind = "mixture"
//! sigma = 1.0
//! weight = 0.5
//! means = [-1.5, 2.0]
//! [density.start]                # ρ₀: gaussian | mixture | bimodal | banana
//! kind = "gaussian"
//! mean = [0.0]
//! sd = [3.0]
//! [flow]                         # only t_end, rtol, atol, max_steps, save_at, solver apply
//! t_end = 10.0
//! ```
//!
//! The grid must hold the densities: for an analytically normalized density the mass outside the
//! box or lost to a too coarse grid, |1 − Σ Vπᵢ|, must be ≤ [`MASS_DEFECT_MAX`]; for a
//! `potential` the density at the boundary must be ≤ [`BOUNDARY_RATIO_MAX`] × its maximum.

use super::flow::{DensitySettings, FlowKind};
use super::grid::{Grid, log_mass, normalized};
use super::shape::Shape;
use crate::config::{ModelFile, Overrides, blame, check_count, read_model_file};
use crate::error::{Error, Result};
use crate::flow::SolverKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest |1 − Σ Vπᵢ| of a normalized density on the grid (mass outside the box or a grid too
/// coarse to resolve it).
pub const MASS_DEFECT_MAX: f64 = 1e-6;
/// Largest density at the boundary relative to the maximum, for unnormalized targets.
pub const BOUNDARY_RATIO_MAX: f64 = 1e-8;
/// Most cells of a 1-D grid.
pub const POINTS_1D_MAX: usize = 4096;
/// Most cells per axis of a 2-D grid.
pub const POINTS_2D_MAX: usize = 128;
/// Fewest cells per axis.
pub const POINTS_MIN: usize = 4;
/// |lo|, |hi| and every shape parameter.
pub const COORD_ABS_MAX: f64 = 1e6;
/// σ, sd, widths: at least this (and at most [`COORD_ABS_MAX`]).
pub const SCALE_MIN: f64 = 1e-6;
/// Highest degree of a `potential`.
pub const POTENTIAL_DEGREE_MAX: usize = 8;
/// Most save times.
pub const SAVE_TIMES_MAX: usize = 1000;

/// A density of the model file, as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeSection {
    /// mixture | bimodal | banana | gaussian | potential.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub means: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separation: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curvature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficients: Option<Vec<f64>>,
}

/// `[density]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DensitySection {
    /// fisher-rao (default) | wasserstein | wfr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// Lower corner of the grid box.
    #[serde(default)]
    pub lo: Vec<f64>,
    /// Upper corner.
    #[serde(default)]
    pub hi: Vec<f64>,
    /// Cells per axis.
    #[serde(default)]
    pub points: Vec<usize>,
    /// The target π.
    pub target: ShapeSection,
    /// The start density ρ₀.
    pub start: ShapeSection,
}

/// A validated density experiment.
#[derive(Clone, Debug)]
pub struct DensityExperiment {
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes.
    pub file_hash: String,
    /// The grid.
    pub grid: Grid,
    /// π.
    pub target: Shape,
    /// ρ₀.
    pub start: Shape,
    /// The flow `run` writes densities of.
    pub flow: FlowKind,
    /// Integration settings.
    pub settings: DensitySettings,
    /// log π on the grid, normalized there.
    pub log_pi: Vec<f64>,
    /// log ρ₀ on the grid, normalized there.
    pub log_rho0: Vec<f64>,
    /// The model file with the settings filled in and the command-line overrides applied
    /// (`density.flow`, `flow.t_end`, `rtol`, `atol`, `max_steps`, `save_at`, `solver`):
    /// loading it with no overrides gives this experiment again.
    pub resolved: ModelFile,
}

/// Whether `path` is a model file of family "density" (false when it cannot be read or parsed:
/// the regular loader then reports why).
pub fn is_density_file(path: &Path) -> bool {
    read_model_file(path).is_ok_and(|(f, _)| f.model.family == "density")
}

fn finite_in(field: &str, v: f64, lo: f64, hi: f64, what: &str) -> Result<f64> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(
            field,
            format!("{v:?}"),
            format!("{what} must be a finite number in [{lo:e}, {hi:e}]"),
        ))
    }
}

fn need<T: Clone>(field: &str, v: &Option<T>, what: &str) -> Result<T> {
    v.clone()
        .ok_or_else(|| Error::invalid(field, "missing", format!("needed: {what}")))
}

/// Validate one density section into a shape on a `dim`-dimensional grid.
fn shape(field: &str, s: &ShapeSection, dim: usize, defaults: Option<&Shape>) -> Result<Shape> {
    let f = |name: &str| format!("{field}.{name}");
    let scale = |name: &str, v: f64| finite_in(&f(name), v, SCALE_MIN, COORD_ABS_MAX, "a scale");
    let coord =
        |name: &str, v: f64| finite_in(&f(name), v, -COORD_ABS_MAX, COORD_ABS_MAX, "a coordinate");
    let vector = |name: &str, v: &[f64], len: usize| -> Result<()> {
        if v.len() != len {
            return Err(Error::invalid(
                f(name),
                format!("{v:?}"),
                format!("expected {len} numbers (one per grid axis)"),
            ));
        }
        Ok(())
    };
    let one_d = |kind: &str| -> Result<()> {
        if dim != 1 {
            return Err(Error::invalid(
                f("kind"),
                format!("'{kind}'"),
                format!(
                    "is a density on R; the grid has {dim} axes (use bimodal, banana or gaussian)"
                ),
            ));
        }
        Ok(())
    };
    let (d_sigma, d_weight) = match defaults {
        Some(Shape::Mixture { sigma, weight, .. }) => (Some(*sigma), Some(*weight)),
        _ => (None, None),
    };
    let shape = match s.kind.as_str() {
        "mixture" => {
            one_d("mixture")?;
            let sigma = scale(
                "sigma",
                s.sigma.or(d_sigma).ok_or_else(|| {
                    Error::invalid(f("sigma"), "missing", "needed: the components' σ > 0")
                })?,
            )?;
            let weight = s.weight.or(d_weight).unwrap_or(0.5);
            if !(weight.is_finite() && weight > 0.0 && weight < 1.0) {
                return Err(Error::invalid(
                    f("weight"),
                    format!("{weight:?}"),
                    "w must lie strictly between 0 and 1 (w = 0 or 1 is a single Gaussian: use kind = \"gaussian\")",
                ));
            }
            let means = need(&f("means"), &s.means, "two means [mu1, mu2]")?;
            if means.len() != 2 {
                return Err(Error::invalid(
                    f("means"),
                    format!("{means:?}"),
                    "expected two means [mu1, mu2]",
                ));
            }
            coord("means", means[0])?;
            coord("means", means[1])?;
            Shape::Mixture {
                sigma,
                weight,
                means: [means[0], means[1]],
            }
        }
        "bimodal" => Shape::Bimodal {
            separation: finite_in(
                &f("separation"),
                need(
                    &f("separation"),
                    &s.separation,
                    "the distance s ≥ 0 of the modes",
                )?,
                0.0,
                COORD_ABS_MAX,
                "the separation",
            )?,
            sigma: scale("sigma", need(&f("sigma"), &s.sigma, "the modes' σ > 0")?)?,
            dim,
        },
        "banana" => {
            if dim != 2 {
                return Err(Error::invalid(
                    f("kind"),
                    "'banana'",
                    "is a density on R²; give the grid two axes",
                ));
            }
            Shape::Banana {
                width: scale("width", need(&f("width"), &s.width, "the width a > 0")?)?,
                curvature: coord(
                    "curvature",
                    need(&f("curvature"), &s.curvature, "the curvature b")?,
                )?,
            }
        }
        "gaussian" => {
            let mean = need(&f("mean"), &s.mean, "the mean, one number per axis")?;
            let sd = need(&f("sd"), &s.sd, "the standard deviations, one per axis")?;
            vector("mean", &mean, dim)?;
            vector("sd", &sd, dim)?;
            for &m in &mean {
                coord("mean", m)?;
            }
            for &v in &sd {
                scale("sd", v)?;
            }
            Shape::Gaussian { mean, sd }
        }
        "potential" => {
            one_d("potential")?;
            let c = need(
                &f("coefficients"),
                &s.coefficients,
                "[c0, c1, …] of V(x) = Σ cₖxᵏ",
            )?;
            if c.len() > POTENTIAL_DEGREE_MAX + 1 {
                return Err(Error::invalid(
                    f("coefficients"),
                    format!("{} values", c.len()),
                    format!("the degree is at most {POTENTIAL_DEGREE_MAX}"),
                ));
            }
            for &v in &c {
                coord("coefficients", v)?;
            }
            // exp(−V) is integrable on R iff V's top term has even degree ≥ 2 and a positive
            // coefficient.
            let top = c.iter().rposition(|&v| v != 0.0);
            let ok = top.is_some_and(|k| k >= 2 && k % 2 == 0 && c[k] > 0.0);
            if !ok {
                return Err(Error::invalid(
                    f("coefficients"),
                    format!("{c:?}"),
                    "exp(−V) is not normalizable: the highest nonzero coefficient must have an even degree ≥ 2 and be positive (e.g. [0, 0, 0.5] is N(0, 1))",
                ));
            }
            Shape::Potential { coefficients: c }
        }
        other => {
            return Err(Error::invalid(
                f("kind"),
                format!("'{other}'"),
                "expected \"mixture\", \"bimodal\", \"banana\", \"gaussian\" or \"potential\"",
            ));
        }
    };
    Ok(shape)
}

/// log of `shape` on `grid`, normalized there, after checking that the grid holds it.
pub fn on_grid(field: &str, shape: &Shape, grid: &Grid) -> Result<Vec<f64>> {
    let lp = grid.eval(|x| shape.log_density(x));
    let lz = log_mass(&lp, grid.volume());
    if !lz.is_finite() || lp.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(Error::invalid(
            field,
            shape.describe(),
            "the density is zero (or not finite) on the whole grid: move the grid box (density.lo, density.hi) onto its mass",
        ));
    }
    if lp.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            field,
            shape.describe(),
            "the density vanishes in part of the grid (log density −∞): the flows need it positive on every cell",
        ));
    }
    if shape.normalized() {
        let defect = (1.0 - lz.exp()).abs();
        if defect > MASS_DEFECT_MAX {
            return Err(Error::invalid(
                "density.points",
                format!("{:?}", grid.n),
                format!(
                    "the grid holds mass {:.9} of {field} ({}), off 1 by {defect:.2e} > {MASS_DEFECT_MAX:e}: widen density.lo/density.hi to cover its tails, or add points if its scale is below the cell width {:.3e}",
                    lz.exp(),
                    shape.describe(),
                    grid.h(0)
                ),
            ));
        }
    } else {
        let max = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let edge = (0..grid.len())
            .filter(|&i| grid.on_boundary(i))
            .map(|i| lp[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let ratio = (edge - max).exp();
        if ratio > BOUNDARY_RATIO_MAX {
            return Err(Error::invalid(
                "density.lo",
                format!("{:?}", grid.lo),
                format!(
                    "{field} at the grid's boundary is {ratio:.2e} × its maximum (> {BOUNDARY_RATIO_MAX:e}): the grid cuts its mass off; widen density.lo/density.hi"
                ),
            ));
        }
    }
    Ok(normalized(&lp, grid.volume()))
}

fn grid_of(sec: &DensitySection) -> Result<Grid> {
    let d = sec.points.len();
    if !(1..=2).contains(&d) {
        return Err(Error::invalid(
            "density.points",
            format!("{:?}", sec.points),
            "expected one (1-D) or two (2-D) cell counts",
        ));
    }
    for (name, v) in [("density.lo", &sec.lo), ("density.hi", &sec.hi)] {
        if v.len() != d {
            return Err(Error::invalid(
                name,
                format!("{v:?}"),
                format!("expected {d} numbers, one per axis of density.points"),
            ));
        }
        for &x in v {
            finite_in(name, x, -COORD_ABS_MAX, COORD_ABS_MAX, "a grid corner")?;
        }
    }
    let max = if d == 1 { POINTS_1D_MAX } else { POINTS_2D_MAX };
    for k in 0..d {
        if sec.lo[k] >= sec.hi[k] {
            return Err(Error::invalid(
                "density.hi",
                format!("{:?}", sec.hi),
                "each upper corner must exceed the lower one (density.lo)",
            ));
        }
        if !(POINTS_MIN..=max).contains(&sec.points[k]) {
            return Err(Error::invalid(
                "density.points",
                format!("{:?}", sec.points),
                format!("cells per axis must be between {POINTS_MIN} and {max} in {d}-D"),
            ));
        }
    }
    Ok(Grid {
        lo: sec.lo.clone(),
        hi: sec.hi.clone(),
        n: sec.points.clone(),
    })
}

impl DensityExperiment {
    /// Read and validate a density model file, applying the command-line overrides
    /// (`--metric` picks the flow).
    pub fn load(path: &Path, ov: &Overrides) -> Result<DensityExperiment> {
        if let Some(m) = &ov.metric {
            FlowKind::parse("--metric", m)?;
        }
        if let Some(s) = &ov.solver {
            SolverKind::parse("--solver", s)?;
        }
        let (file, hash) = read_model_file(path)?;
        Self::from_file(path, hash, file, ov).map_err(|e| blame(path, ov, e))
    }

    /// Validate a parsed file.
    pub fn from_file(
        path: &Path,
        file_hash: String,
        file: ModelFile,
        ov: &Overrides,
    ) -> Result<DensityExperiment> {
        if file.model.family != "density" {
            return Err(Error::invalid(
                "model.family",
                format!("'{}'", file.model.family),
                "expected \"density\"",
            ));
        }
        let sec = file.density.as_ref().ok_or_else(|| {
            Error::invalid(
                "density",
                "missing",
                "model.family = \"density\" needs a [density] section (grid, target, start)",
            )
        })?;
        // what the other families read must not be set here
        let m = &file.model;
        if m.sigma.is_some() || !m.target.is_empty() || m.weight != 0.5 {
            return Err(Error::invalid(
                "model",
                "sigma/weight/target",
                "do not apply to the density family: put the target in [density.target]",
            ));
        }
        let fl = &file.flow;
        let stray = [
            ("flow.metric", fl.metric.is_some()),
            ("flow.damping", fl.damping.is_some()),
            ("flow.grad_tol", fl.grad_tol.is_some()),
            ("flow.interior_points", fl.interior_points.is_some()),
            ("flow.jacobian", fl.jacobian.is_some()),
            ("flow.step_control", fl.step_control.is_some()),
            ("flow.damping_floor", fl.damping_floor.is_some()),
            (
                "flow.save_every",
                fl.save_every.is_some() || ov.save_every.is_some(),
            ),
            (
                "flow.starts",
                !fl.starts.is_empty() || !ov.starts.is_empty(),
            ),
            (
                "quadrature",
                file.quadrature.scheme.is_some()
                    || file.quadrature.nodes.is_some()
                    || ov.nodes.is_some(),
            ),
            ("mlp", file.mlp.is_some()),
            ("plot.range", file.plot.range.is_some()),
            ("flow.damping (--damping)", ov.damping.is_some()),
        ];
        if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
            let hint = if *name == "flow.metric" {
                "the density family's flow is [density] flow (or --metric fisher-rao|wasserstein|wfr)"
            } else {
                "does not apply to the density family (it reads [density] and flow.t_end, rtol, atol, max_steps, save_at, solver)"
            };
            return Err(Error::invalid(*name, "set", hint));
        }
        let flow = match (&ov.metric, &sec.flow) {
            (Some(m), _) => FlowKind::parse("--metric", m)?,
            (None, Some(s)) => FlowKind::parse("density.flow", s)?,
            (None, None) => FlowKind::FisherRao,
        };
        let grid = grid_of(sec)?;
        let d = grid.dim();
        let target = shape("density.target", &sec.target, d, None)?;
        let start = shape("density.start", &sec.start, d, Some(&target))?;
        if matches!(start, Shape::Potential { .. }) {
            return Err(Error::invalid(
                "density.start.kind",
                "'potential'",
                "a start density must be normalized: use gaussian, mixture, bimodal or banana",
            ));
        }
        let log_pi = on_grid("density.target", &target, &grid)?;
        let log_rho0 = on_grid("density.start", &start, &grid)?;

        let dflt = DensitySettings::default();
        let t_end = ov.t_end.or(fl.t_end).unwrap_or(dflt.t_end);
        let (lo, hi) = crate::config::limits::T_END;
        finite_in("flow.t_end", t_end, lo, hi, "t_end")?;
        let rtol = ov.rtol.or(fl.rtol).unwrap_or(dflt.rtol);
        let (lo, hi) = crate::config::limits::RTOL;
        finite_in("flow.rtol", rtol, lo, hi, "rtol")?;
        let atol = ov.atol.or(fl.atol).unwrap_or(dflt.atol);
        let (lo, hi) = crate::config::limits::ATOL;
        finite_in("flow.atol", atol, lo, hi, "atol")?;
        let max_steps = check_count(
            "flow.max_steps",
            fl.max_steps.unwrap_or(dflt.max_steps),
            crate::config::limits::MAX_STEPS_MAX,
        )?;
        let solver = match ov.solver.as_ref().or(fl.solver.as_ref()) {
            Some(s) => match SolverKind::parse("flow.solver", s)? {
                SolverKind::Auto => None,
                k => Some(k),
            },
            None => None,
        };
        let save_at = match ov.save_at.as_ref().or(fl.save_at.as_ref()) {
            None => (0..=5).map(|k| t_end * k as f64 / 5.0).collect(),
            Some(v) => {
                if v.is_empty() || v.len() > SAVE_TIMES_MAX {
                    return Err(Error::invalid(
                        "flow.save_at",
                        format!("{} times", v.len()),
                        format!("give 1 to {SAVE_TIMES_MAX} times"),
                    ));
                }
                if let Some(t) = v
                    .iter()
                    .find(|t| !(t.is_finite() && **t >= 0.0 && **t <= t_end))
                {
                    return Err(Error::invalid(
                        "flow.save_at",
                        format!("{t:?}"),
                        format!("save times must lie in [0, t_end = {t_end}]"),
                    ));
                }
                if v.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::invalid(
                        "flow.save_at",
                        format!("{v:?}"),
                        "save times must increase strictly",
                    ));
                }
                v.clone()
            }
        };
        let settings = DensitySettings {
            t_end,
            rtol,
            atol,
            max_steps,
            save_at,
            solver,
            dense_jacobian: false,
        };
        let mut resolved = file.clone();
        if let Some(sec) = resolved.density.as_mut() {
            sec.flow = Some(flow.name().into());
        }
        let rf = &mut resolved.flow;
        rf.t_end = Some(settings.t_end);
        rf.rtol = Some(settings.rtol);
        rf.atol = Some(settings.atol);
        rf.max_steps = Some(settings.max_steps);
        rf.save_at = Some(settings.save_at.clone());
        rf.solver = Some(solver.map_or("auto", |k| k.name()).into());
        Ok(DensityExperiment {
            resolved,
            path: path.to_path_buf(),
            file_hash,
            grid,
            target,
            start,
            flow,
            settings,
            log_pi,
            log_rho0,
        })
    }
}
