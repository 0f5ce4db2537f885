//! The seed's Fisher-manifold view of the two-component mixture, computed in data coordinates:
//! a tessellation of Fisher ellipses, a heat map of log₁₀ κ(I) or of the gradient angle, probes
//! with the Euclidean and natural descent directions, and particles on the natural-gradient flow.
//!
//! * Ellipses: the window [a, b]² is cut into N×N square cells of side h = (b − a)/N; at each cell
//!   centre θ₀ the level set {δθ : δθᵀI(θ₀)δθ = ε} has semi-axes √(ε/λᵢ) along the eigenvectors
//!   qᵢ of I(θ₀) = QΛQᵀ. ε is fixed by the display: ε = (0.42·C·h)²·max(w, 1−w)/σ², so that in the
//!   well-separated regime (I → diag(w, 1−w)/σ²) the shorter semi-axis is 0.42·C·h (C = ellipse
//!   scale). A semi-axis longer than the distance from θ₀ to the cell border along qᵢ (λᵢ → 0 near
//!   μ₁ = μ₂, ∞ on it) is cut to that distance and the ellipse is flagged as clipped.
//! * Heat map: log₁₀ κ(I) = log₁₀(λ_max/λ_min) or the angle ∠(∇L, I⁻¹∇L) on a regular node grid.
//! * Probes: [`PointReport::at`] with the exact metric and the model file's damping — the same
//!   numbers `fisher-flow metric --at` prints.
//! * Particles: the flow dθ/dt = −(I + λ1)⁺∇L integrated by [`Simulator`] with `tsit45` from a
//!   seeded random (ChaCha8) or regular grid of starts.

use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::flow::{FlowSettings, SolverKind};
use crate::inspect::PointReport;
use crate::metric::MetricKind;
use crate::model::{GaussianMixture, StatModel};
use crate::plot::manifold::{Ellipse, HeatKind, HeatMap, ManifoldFigure, Particle, Probe};
use crate::study::{Case, Runner};
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

/// Largest grid, heat-map resolution and particle count accepted (keeps run time bounded).
pub const MAX_GRID: usize = 200;
/// Most particles accepted.
pub const MAX_PARTICLES: usize = 2000;
/// The shorter far-field semi-axis as a fraction of the cell side (times the ellipse scale).
pub const FAR_FIELD_RADIUS: f64 = 0.42;

/// What the background shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Background {
    /// log₁₀ κ(I).
    Kappa,
    /// The angle between ∇L and I⁻¹∇L in degrees.
    Angle,
    /// Plain white.
    None,
}

impl Background {
    /// Parse `kappa | angle | none`.
    pub fn parse(flag: &str, s: &str) -> Result<Self> {
        match s {
            "kappa" => Ok(Background::Kappa),
            "angle" => Ok(Background::Angle),
            "none" => Ok(Background::None),
            _ => Err(Error::invalid(
                flag,
                format!("'{s}'"),
                "expected kappa, angle or none",
            )),
        }
    }
}

/// How particle starts are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLayout {
    /// Uniform random in the window, from a ChaCha8 stream seeded with the seed.
    Random,
    /// Centres of a ⌈√N⌉×⌈√N⌉ grid of the window, row by row, the first N of them.
    Grid,
}

impl StartLayout {
    /// Parse `random | grid`.
    pub fn parse(flag: &str, s: &str) -> Result<Self> {
        match s {
            "random" => Ok(StartLayout::Random),
            "grid" => Ok(StartLayout::Grid),
            _ => Err(Error::invalid(
                flag,
                format!("'{s}'"),
                "expected random or grid",
            )),
        }
    }
}

/// Everything that selects the view. Defaults are the seed's view (see [`Default`]).
#[derive(Clone, Debug)]
pub struct ManifoldOptions {
    /// σ replacing the model file's (default: the file's).
    pub sigma: Option<f64>,
    /// Cells per axis N (default 15).
    pub grid: usize,
    /// Ellipse scale C > 0 (default 1).
    pub ellipse_scale: f64,
    /// Window [a, b] of both axes (default: the file's plot.range, else [−4, 4]).
    pub range: Option<(f64, f64)>,
    /// Probe points (default: one near the singular line, (1.5, 1)).
    pub probes: Vec<[f64; 2]>,
    /// Number of particles (default 24).
    pub particles: usize,
    /// Start layout (default random).
    pub layout: StartLayout,
    /// Seed of the random starts (default 42).
    pub seed: u64,
    /// Background (default log₁₀ κ).
    pub background: Background,
    /// Horizon of the particles' flow (default: the file's flow.t_end).
    pub t_end: Option<f64>,
    /// Nodes per axis of the heat-map grid (default 101).
    pub heat_nodes: usize,
}

impl Default for ManifoldOptions {
    fn default() -> Self {
        ManifoldOptions {
            sigma: None,
            grid: 15,
            ellipse_scale: 1.0,
            range: None,
            probes: vec![[1.5, 1.0]],
            particles: 24,
            layout: StartLayout::Random,
            seed: 42,
            background: Background::Kappa,
            t_end: None,
            heat_nodes: 101,
        }
    }
}

impl ManifoldOptions {
    /// The window: the option, else the file's plot range, else [−4, 4].
    pub fn window(&self, exp: &Experiment) -> (f64, f64) {
        self.range.or(exp.plot_range).unwrap_or((-4.0, 4.0))
    }

    /// Check every option; errors name the command-line flag.
    pub fn validate(&self, exp: &Experiment) -> Result<()> {
        let (a, b) = self.window(exp);
        if !(a.is_finite() && b.is_finite()) || a >= b {
            return Err(Error::invalid(
                "--range",
                format!("{a},{b}"),
                "needs finite A < B (the window is empty)",
            ));
        }
        if self.grid == 0 || self.grid > MAX_GRID {
            return Err(Error::invalid(
                "--grid",
                self.grid,
                format!("must be between 1 and {MAX_GRID}"),
            ));
        }
        if !(self.ellipse_scale.is_finite() && self.ellipse_scale > 0.0) {
            return Err(Error::invalid(
                "--ellipse-scale",
                self.ellipse_scale,
                "must be a finite number > 0",
            ));
        }
        if let Some(s) = self.sigma
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::invalid(
                "--sigma",
                s,
                "σ must be a finite number > 0",
            ));
        }
        if let Some(t) = self.t_end
            && !(t.is_finite() && t > 0.0)
        {
            return Err(Error::invalid("--t-end", t, "must be a finite number > 0"));
        }
        if self.particles > MAX_PARTICLES {
            return Err(Error::invalid(
                "--particles",
                self.particles,
                format!("must be at most {MAX_PARTICLES}"),
            ));
        }
        if self.heat_nodes < 2 || self.heat_nodes > 4 * MAX_GRID {
            return Err(Error::invalid(
                "heat nodes",
                self.heat_nodes,
                "must be between 2 and 800",
            ));
        }
        for p in &self.probes {
            let inside = p.iter().all(|v| v.is_finite() && *v >= a && *v <= b);
            if !inside {
                return Err(Error::invalid(
                    "--probe",
                    format!("{},{}", p[0], p[1]),
                    format!("the probe lies outside the window [{a}, {b}]²"),
                ));
            }
        }
        Ok(())
    }
}

/// The model of the view: the experiment's with σ replaced if asked.
pub fn view_model(exp: &Experiment, opts: &ManifoldOptions) -> Result<GaussianMixture> {
    let mut m = exp
        .model
        .as_mixture()
        .ok_or_else(|| {
            Error::invalid(
                "model.family",
                format!("'{}'", exp.resolved.model.family),
                "the manifold figure needs a gaussian-mixture model",
            )
        })?
        .clone();
    if let Some(s) = opts.sigma {
        m.sigma = s;
    }
    Ok(m)
}

/// The display level ε of the ellipses for cell side `h` (see the module docs).
pub fn epsilon(model: &GaussianMixture, h: f64, scale: f64) -> f64 {
    let r = FAR_FIELD_RADIUS * scale * h;
    r * r * model.w.max(1.0 - model.w) / (model.sigma * model.sigma)
}

/// Distance from a cell centre to the border of a square cell of side `h` along unit vector `u`.
pub fn cell_reach(h: f64, u: (f64, f64)) -> f64 {
    0.5 * h / u.0.abs().max(u.1.abs()).max(f64::MIN_POSITIVE)
}

/// The Fisher ellipse at θ₀ for level ε in a cell of side `h`; `None` when I(θ₀) is not finite.
pub fn fisher_ellipse(model: &dyn StatModel, theta: [f64; 2], eps: f64, h: f64) -> Option<Ellipse> {
    let m = MetricKind::Exact.at(model, &theta, 0.0);
    if m.matrix().iter().any(|v| !v.is_finite()) {
        return None;
    }
    let vals = m.eigenvalues();
    let vecs = m.eigenvectors();
    let mut axes = [(0.0, 0.0); 2];
    let mut clipped = [false; 2];
    for i in 0..2 {
        let u = (vecs[(0, i)], vecs[(1, i)]);
        let norm = (u.0 * u.0 + u.1 * u.1).sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return None;
        }
        let u = (u.0 / norm, u.1 / norm);
        let lam = vals[i];
        let r = if lam > 0.0 {
            (eps / lam).sqrt()
        } else {
            f64::INFINITY
        };
        let reach = cell_reach(h, u);
        let r = if r.is_finite() && r <= reach {
            r
        } else {
            clipped[i] = true;
            reach
        };
        axes[i] = (r * u.0, r * u.1);
    }
    Some(Ellipse {
        center: (theta[0], theta[1]),
        axes,
        clipped,
    })
}

/// Starting points of the particles, and a sentence saying how they were placed.
pub fn particle_starts(opts: &ManifoldOptions, (a, b): (f64, f64)) -> (Vec<[f64; 2]>, String) {
    let n = opts.particles;
    match opts.layout {
        StartLayout::Random => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
            let starts = (0..n)
                .map(|_| {
                    let u: f64 = rng.random();
                    let v: f64 = rng.random();
                    [a + (b - a) * u, a + (b - a) * v]
                })
                .collect();
            (
                starts,
                format!(
                    "{n} random starts (uniform in the window, seed {})",
                    opts.seed
                ),
            )
        }
        StartLayout::Grid => {
            let k = (n as f64).sqrt().ceil().max(1.0) as usize;
            let h = (b - a) / k as f64;
            let starts = (0..n)
                .map(|idx| {
                    let (i, j) = (idx % k, idx / k);
                    [a + (i as f64 + 0.5) * h, a + (j as f64 + 0.5) * h]
                })
                .collect();
            (starts, format!("{n} starts on a {k}×{k} grid"))
        }
    }
}

/// The earliest time by which every particle has covered 99 % of its path length (at least
/// a small positive time; at most the last recorded time).
pub fn settle_time(particles: &[Particle]) -> f64 {
    let mut t_max: f64 = 0.0;
    for p in particles {
        let mut arc = vec![0.0];
        for w in p.points.windows(2) {
            let d = ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt();
            let last = arc[arc.len() - 1];
            arc.push(last + if d.is_finite() { d } else { 0.0 });
        }
        let total = arc[arc.len() - 1];
        let t = if total > 0.0 {
            let k = arc
                .iter()
                .position(|&s| s >= 0.99 * total)
                .unwrap_or(arc.len() - 1);
            p.times[k]
        } else {
            0.0
        };
        t_max = t_max.max(t);
    }
    let last = particles
        .iter()
        .filter_map(|p| p.times.last().copied())
        .fold(0.0, f64::max);
    if t_max > 0.0 {
        t_max
    } else if last > 0.0 {
        last
    } else {
        1.0
    }
}

/// Format a number for titles: shortest representation with a typographic minus.
pub fn num(v: f64) -> String {
    format!("{v}").replace('-', "−")
}

/// The ellipse tessellation of the window `(a, b)`: N×N cells (N = `opts.grid`), row by row
/// from the bottom, and the level ε used. Cells where I(θ₀) is not finite are left out.
pub fn ellipse_field(
    model: &GaussianMixture,
    opts: &ManifoldOptions,
    (a, b): (f64, f64),
) -> (Vec<Ellipse>, f64) {
    let n = opts.grid;
    let h = (b - a) / n as f64;
    let eps = epsilon(model, h, opts.ellipse_scale);
    let centres: Vec<[f64; 2]> = (0..n * n)
        .map(|k| {
            [
                a + ((k % n) as f64 + 0.5) * h,
                a + ((k / n) as f64 + 0.5) * h,
            ]
        })
        .collect();
    let ellipses = centres
        .par_iter()
        .filter_map(|c| fisher_ellipse(model, *c, eps, h))
        .collect();
    (ellipses, eps)
}

/// The heat map of `kind` on an m×m node grid of the window (m = `nodes`), `None` for
/// [`Background::None`]. κ: log₁₀ κ(I) on the colour scale [0, 98th percentile] (κ = ∞ on
/// μ₁ = μ₂ saturates); angle: ∠(∇L, (I + λ1)⁺∇L) in degrees on [0, 90], λ the file's damping.
pub fn heat_map(
    model: &GaussianMixture,
    damping: f64,
    kind: Background,
    nodes: usize,
    (a, b): (f64, f64),
) -> Option<HeatMap> {
    if kind == Background::None {
        return None;
    }
    let m = nodes;
    let d = (b - a) / (m - 1) as f64;
    let z: Vec<f64> = (0..m * m)
        .into_par_iter()
        .map(|k| {
            let theta = [a + (k % m) as f64 * d, a + (k / m) as f64 * d];
            match kind {
                Background::Kappa => {
                    let kappa = MetricKind::Exact.at(model, &theta, 0.0).condition_number();
                    if kappa.is_nan() {
                        f64::NAN
                    } else {
                        kappa.max(1.0).log10()
                    }
                }
                _ => PointReport::at(model, MetricKind::Exact, damping, &theta).angle_deg,
            }
        })
        .collect();
    Some(match kind {
        Background::Kappa => {
            let mut finite: Vec<f64> = z.iter().copied().filter(|v| v.is_finite()).collect();
            finite.sort_by(f64::total_cmp);
            let hi = finite
                .get(finite.len().saturating_sub(1) * 98 / 100)
                .copied()
                .unwrap_or(1.0)
                .max(0.5);
            HeatMap {
                kind: HeatKind::Kappa,
                nodes: m,
                z,
                lo: 0.0,
                hi: (hi * 2.0).ceil() / 2.0,
            }
        }
        _ => HeatMap {
            kind: HeatKind::Angle,
            nodes: m,
            z,
            lo: 0.0,
            hi: 90.0,
        },
    })
}

/// A probe at `p`: exactly what `metric --at` reports (exact metric, damping λ).
pub fn probe(model: &GaussianMixture, damping: f64, p: [f64; 2]) -> Probe {
    let r = PointReport::at(model, MetricKind::Exact, damping, &p);
    Probe {
        at: (p[0], p[1]),
        gradient: (r.gradient[0], r.gradient[1]),
        natural: (r.natural_gradient[0], r.natural_gradient[1]),
        angle_deg: r.angle_deg,
    }
}

/// The particles' flow settings: the file's, with `metric`, solver `tsit45` and horizon `t_end`.
pub fn particle_settings(flow: &FlowSettings, metric: MetricKind, t_end: f64) -> FlowSettings {
    FlowSettings {
        metric,
        solver: SolverKind::Tsit45,
        t_end,
        ..flow.clone()
    }
}

/// Integrate one particle per start with `settings` through the study layer (parallel
/// [`Runner`]); each particle is the recorded path (every accepted step, or the `save_at`
/// times of the settings, plus start and end).
pub fn particles(
    model: &GaussianMixture,
    settings: &FlowSettings,
    starts: &[[f64; 2]],
) -> Result<Vec<Particle>> {
    let cases: Vec<Case<'_>> = starts
        .iter()
        .enumerate()
        .map(|(i, s)| Case::new(format!("particle {i}"), model, settings.clone(), s.to_vec()))
        .collect();
    let outcomes = Runner::new().parallel(true).run(&cases, &[])?;
    crate::study::trajectories(outcomes)?
        .into_iter()
        .map(|tr| {
            Ok(Particle {
                points: tr
                    .steps
                    .iter()
                    .map(|st| (st.theta[0], st.theta[1]))
                    .collect(),
                times: tr.steps.iter().map(|st| st.t).collect(),
            })
        })
        .collect()
}

/// The figure's title for a model.
pub fn title(model: &GaussianMixture) -> String {
    format!(
        "Fisher manifold of the mixture: σ = {}, w = {}, target θ* = ({}, {})",
        num(model.sigma),
        num(model.w),
        num(model.target[0]),
        num(model.target[1])
    )
}

/// Compute the whole view. `opts` must have passed [`ManifoldOptions::validate`].
pub fn build(exp: &Experiment, opts: &ManifoldOptions) -> Result<(ManifoldFigure, ViewReport)> {
    opts.validate(exp)?;
    let model = view_model(exp, opts)?;
    let (a, b) = opts.window(exp);
    let n = opts.grid;
    let h = (b - a) / n as f64;
    let (ellipses, eps) = ellipse_field(&model, opts, (a, b));
    let heat = heat_map(
        &model,
        exp.flow.damping,
        opts.background,
        opts.heat_nodes,
        (a, b),
    );
    let probes: Vec<Probe> = opts
        .probes
        .iter()
        .map(|p| probe(&model, exp.flow.damping, *p))
        .collect();
    let (starts, starts_text) = particle_starts(opts, (a, b));
    let settings = particle_settings(
        &exp.flow,
        MetricKind::Exact,
        opts.t_end.unwrap_or(exp.flow.t_end),
    );
    let particles = particles(&model, &settings, &starts)?;
    let t_colour = if particles.is_empty() {
        settings.t_end
    } else {
        settle_time(&particles)
    };
    let clipped = ellipses
        .iter()
        .filter(|e| e.clipped.iter().any(|&c| c))
        .count();
    let fig = ManifoldFigure {
        title: title(&model),
        range: (a, b),
        cell: h,
        ellipses,
        heat,
        targets: model.optima().iter().map(|t| (t[0], t[1])).collect(),
        probes,
        particles,
        t_colour,
    };
    let report = ViewReport {
        epsilon: eps,
        cells: n * n,
        clipped,
        starts_text,
        t_end: settings.t_end,
    };
    Ok((fig, report))
}

/// Facts about a computed view, for the command line.
#[derive(Clone, Debug)]
pub struct ViewReport {
    /// The ellipse level ε.
    pub epsilon: f64,
    /// Number of cells N².
    pub cells: usize,
    /// Ellipses with at least one clipped semi-axis.
    pub clipped: usize,
    /// How the particle starts were placed (mentions the seed).
    pub starts_text: String,
    /// Flow horizon of the particles.
    pub t_end: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quadrature::Scheme;

    fn model() -> GaussianMixture {
        GaussianMixture {
            sigma: 1.0,
            w: 0.5,
            target: [-1.5, 2.0],
            loss_kind: crate::model::LossKind::Population,
            scheme: Scheme::default(),
        }
    }

    #[test]
    fn ellipse_is_the_level_set() {
        // Each semi-axis vector v satisfies vᵀ I v = ε when not clipped.
        let m = model();
        let (eps, h) = (0.05, 1.0);
        let e = fisher_ellipse(&m, [-2.5, 2.5], eps, h).unwrap();
        let fisher = m.fisher(&[-2.5, 2.5]);
        for (k, ax) in e.axes.iter().enumerate() {
            assert!(!e.clipped[k]);
            let v = nalgebra::DVector::from_vec(vec![ax.0, ax.1]);
            let q = (&fisher * &v).dot(&v);
            assert!((q - eps).abs() < 1e-10 * eps, "q = {q}");
        }
        // The axes are orthogonal.
        let (u, v) = (e.axes[0], e.axes[1]);
        assert!((u.0 * v.0 + u.1 * v.1).abs() < 1e-12);
    }

    #[test]
    fn ellipse_on_the_singular_line_is_clipped_along_the_exchange_direction() {
        let m = model();
        let h = 0.5;
        let e = fisher_ellipse(&m, [0.3, 0.3], epsilon(&m, h, 1.0), h).unwrap();
        // Ascending eigenvalues: axis 0 is the exchange direction (1, −1)/√2, λ ≈ 0.
        assert!(e.clipped[0]);
        let (x, y) = e.axes[0];
        assert!((x + y).abs() < 1e-9 * x.abs().max(1e-300), "axis {x}, {y}");
        // Clipped to the cell corner: |x| = |y| = h/2.
        assert!((x.abs() - 0.5 * h).abs() < 1e-12);
        assert!(!e.clipped[1]);
    }

    #[test]
    fn far_field_ellipse_is_a_circle_of_the_stated_radius() {
        let m = model();
        let h = 1.0;
        let e = fisher_ellipse(&m, [-9.0, 9.0], epsilon(&m, h, 1.0), h).unwrap();
        for ax in e.axes {
            let r = (ax.0 * ax.0 + ax.1 * ax.1).sqrt();
            assert!((r - FAR_FIELD_RADIUS * h).abs() < 1e-6, "r = {r}");
        }
    }

    #[test]
    fn cell_reach_matches_the_square() {
        assert!((cell_reach(2.0, (1.0, 0.0)) - 1.0).abs() < 1e-15);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!((cell_reach(2.0, (s, -s)) - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn random_starts_are_reproducible_and_inside() {
        let opts = ManifoldOptions {
            particles: 50,
            ..ManifoldOptions::default()
        };
        let (a, _) = particle_starts(&opts, (-2.0, 3.0));
        let (b, text) = particle_starts(&opts, (-2.0, 3.0));
        assert_eq!(a, b);
        assert!(text.contains("seed 42"));
        assert!(a.iter().flatten().all(|v| (-2.0..=3.0).contains(v)));
        let other = particle_starts(
            &ManifoldOptions {
                seed: 7,
                ..opts.clone()
            },
            (-2.0, 3.0),
        )
        .0;
        assert_ne!(a, other);
        let grid = particle_starts(
            &ManifoldOptions {
                layout: StartLayout::Grid,
                particles: 4,
                ..opts
            },
            (0.0, 2.0),
        )
        .0;
        assert_eq!(grid, vec![[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.5, 1.5]]);
    }

    #[test]
    fn settle_time_of_a_straight_path() {
        // Uniform motion over t ∈ [0, 10] sampled at integer times: 99 % is reached at t = 10.
        let p = Particle {
            points: (0..=10).map(|k| (k as f64, 0.0)).collect(),
            times: (0..=10).map(|k| k as f64).collect(),
        };
        assert_eq!(settle_time(&[p]), 10.0);
        // A path that stops at t = 3 settles at 3.
        let q = Particle {
            points: (0..=10).map(|k| ((k.min(3)) as f64, 0.0)).collect(),
            times: (0..=10).map(|k| k as f64).collect(),
        };
        assert_eq!(settle_time(&[q]), 3.0);
    }
}
