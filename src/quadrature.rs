//! Expectations over x ∈ ℝ under a Gaussian mixture, E_p[f] ≈ Σᵢ Wᵢ f(xᵢ).
//!
//! A [`Rule`] is a set of nodes xᵢ and weights Wᵢ that already include the density p(xᵢ), so
//! every expectation the models need (Fisher matrix, loss, gradient) is a weighted sum.
//!
//! Two schemes ([`Scheme`]):
//!
//! * [`Scheme::Composite`] (the default) — composite Gauss–Legendre with panels graded around the
//!   *responsibility crossover* of the mixture whose scores are integrated. For a mixture with
//!   means μ₁, μ₂, shared σ and weight w, log p(x|θ) and the scores ∂ log p/∂μₖ are analytic
//!   except at the complex zeros of p, x = c ± iπσ²(2k+1)/|Δ| with Δ = μ₂ − μ₁ and c the real
//!   crossover where the responsibilities are ½. Plain Gauss–Hermite "sees" these poles when
//!   |Δ|/σ ≈ 2–8 and converges slowly (64 nodes leave ≈1e-5). Here panel edges are placed at
//!   c, c ± d, c ± 3d, c ± 7d, … with d = πσ²/|Δ| until the spacing reaches `max_panel`·σ, and
//!   panels of width ≤ `max_panel`·σ cover the rest of [min μ − Lσ, max μ + Lσ] (L = 10 by
//!   default: the Gaussian tail beyond, times the quadratic growth of the integrands, is below
//!   1e-19 relative). Each panel is a 16-node Gauss–Legendre rule (default), so every pole sits
//!   outside a Bernstein ellipse with ρ ≥ 4.3 and the per-panel error is ≲ ρ^(−32) ≈ 5e-21;
//!   away from the crossover panels are up to 4σ wide (default `max_panel` = 4), where the
//!   Gaussian factor alone limits the rule: ρ^(−32)·e^{ρ²/2} at ρ ≈ 5.7, ≈ 1e-17.
//!   Measured against a rule with 48 nodes per panel and panels ≤ σ/8
//!   (`tests/quadrature.rs`, `cargo run --release --example quad_table`), every Fisher entry
//!   agrees to ≤ 1.1e-14 relative for |Δ|/σ ∈ [0.5, 20] with ≤ 288 nodes — as accurate as the
//!   former default (12 nodes, panels ≤ σ: 1.1e-14 with ≤ 540 nodes); 12 nodes on 2σ panels
//!   reach only 1.1e-13, 8 nodes/panel on σ panels 1.9e-10, 10: 4.9e-13; Gauss–Hermite with 64
//!   nodes per component: 6.7e-1 on the tiny off-diagonal entry of well-separated components
//!   and ≈1e-4 on the diagonal at |Δ| ≈ 5σ. Loss and gradient: ≤ 1.0e-14.
//! * [`Scheme::GaussHermite`] — K Gauss–Hermite nodes per component, xₖⱼ = μₖ + √2 σ zⱼ, kept for
//!   comparisons with tools that use it (`--nodes K`). Fast, but only ≈1e-5 accurate for partly
//!   overlapping components.
//!
//! Nodes and weights of both rules come from the `gauss-quad` crate.

use gauss_quad::{hermite::GaussHermite, legendre::GaussLegendre};
use std::f64::consts::PI;
use std::num::NonZeroUsize;
use std::sync::OnceLock;

/// Which quadrature scheme to use for expectations over x.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum Scheme {
    /// Composite Gauss–Legendre graded at the responsibility crossover (accurate to ~1e-13;
    /// default 16 nodes per panel, panels ≤ 4σ).
    Composite {
        /// Gauss–Legendre nodes per panel.
        nodes_per_panel: usize,
        /// Largest panel width in units of σ.
        max_panel: f64,
        /// Half-width of the integration window beyond the extreme means, in units of σ.
        half_width: f64,
    },
    /// K Gauss–Hermite nodes per mixture component.
    GaussHermite {
        /// Nodes per component.
        nodes: usize,
    },
}

impl Default for Scheme {
    fn default() -> Self {
        Scheme::Composite {
            nodes_per_panel: 16,
            max_panel: 4.0,
            half_width: 10.0,
        }
    }
}

impl Scheme {
    /// A finer version of this scheme, used by `verify` and tests to bound the quadrature error.
    pub fn refined(&self) -> Scheme {
        match *self {
            Scheme::Composite {
                nodes_per_panel,
                max_panel,
                half_width,
            } => Scheme::Composite {
                nodes_per_panel: 2 * nodes_per_panel,
                max_panel: max_panel / 2.0,
                half_width: half_width + 2.0,
            },
            Scheme::GaussHermite { nodes } => Scheme::GaussHermite { nodes: 2 * nodes },
        }
    }

    /// A conservative estimate of the relative error of an expectation computed with this
    /// scheme (measured, see the module docs); used to derive certificate tolerances.
    pub fn relative_error(&self) -> f64 {
        match *self {
            Scheme::Composite { .. } => 1e-13,
            // Measured against the certificate's independent reference
            // (certificate::reference::gh_measure), relative to the sums of absolute values
            // that certificates multiply ε_q by, over w ∈ {0.5, 0.3, 0.1}, separations
            // 0..20σ and three targets: 1.0 (K = 1), 0.53 (2), 0.14 (8), 0.049 (24),
            // 0.006 (64). Bound: 2/K (the old 2e-4·(64/K)² was exceeded 10–30×).
            Scheme::GaussHermite { nodes } => 2.0 / nodes.max(1) as f64,
        }
    }

    /// Short human-readable description, e.g. "composite Gauss–Legendre (16/panel)".
    pub fn describe(&self) -> String {
        match self {
            Scheme::Composite {
                nodes_per_panel, ..
            } => format!(
                "composite Gauss-Legendre ({nodes_per_panel} nodes/panel, graded at crossover)"
            ),
            Scheme::GaussHermite { nodes } => format!("Gauss-Hermite ({nodes} nodes/component)"),
        }
    }
}

/// A two-component Gaussian mixture density w·N(μ₁, σ²) + (1−w)·N(μ₂, σ²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mixture2 {
    pub mu: [f64; 2],
    pub sigma: f64,
    pub w: f64,
}

impl Mixture2 {
    /// The density at x, evaluated stably (no overflow for any finite inputs).
    pub fn density(&self, x: f64) -> f64 {
        let s = self.sigma;
        let norm = 1.0 / (s * (2.0 * PI).sqrt());
        let z1 = (x - self.mu[0]) / s;
        let z2 = (x - self.mu[1]) / s;
        norm * (self.w * (-0.5 * z1 * z1).exp() + (1.0 - self.w) * (-0.5 * z2 * z2).exp())
    }

    /// The real crossover c where the two weighted components are equal, or `None` if the means
    /// coincide (then the responsibilities are constant).
    pub fn crossover(&self) -> Option<f64> {
        let delta = self.mu[1] - self.mu[0];
        if delta == 0.0 {
            return None;
        }
        // w N1 = (1−w) N2  ⇔  Δ (x − (μ₁ + μ₂)/2) / σ² = ln(w/(1−w))
        let c = 0.5 * (self.mu[0] + self.mu[1])
            + self.sigma * self.sigma * (self.w / (1.0 - self.w)).ln() / delta;
        Some(c)
    }

    /// Distance of the nearest complex zero of the density from the real axis, πσ²/|Δ|.
    pub fn pole_distance(&self) -> f64 {
        let delta = (self.mu[1] - self.mu[0]).abs();
        if delta == 0.0 {
            f64::INFINITY
        } else {
            PI * self.sigma * self.sigma / delta
        }
    }
}

/// Nodes and density-including weights: E_p[f] ≈ Σᵢ w[i]·f(x[i]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub x: Vec<f64>,
    pub w: Vec<f64>,
}

impl Rule {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// True if the rule has no nodes.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// E_p[f] ≈ Σ w f(x).
    pub fn expect(&self, mut f: impl FnMut(f64) -> f64) -> f64 {
        self.x.iter().zip(&self.w).map(|(&x, &w)| w * f(x)).sum()
    }

    /// A rule for expectations under `density` of integrands whose only non-analytic points come
    /// from the mixture `scores_of` (its crossover and pole distance). For the Fisher matrix the
    /// two coincide; for the loss, `density` is the target and `scores_of` the current model.
    pub fn build(scheme: &Scheme, density: &Mixture2, scores_of: &Mixture2) -> Rule {
        match *scheme {
            Scheme::GaussHermite { nodes } => gauss_hermite(nodes, density),
            Scheme::Composite {
                nodes_per_panel,
                max_panel,
                half_width,
            } => composite(nodes_per_panel, max_panel, half_width, density, scores_of),
        }
    }
}

fn gauss_hermite(k: usize, density: &Mixture2) -> Rule {
    let gh = hermite_nodes(k);
    let mut rule = Rule {
        x: Vec::with_capacity(2 * gh.len()),
        w: Vec::with_capacity(2 * gh.len()),
    };
    let scale = std::f64::consts::SQRT_2 * density.sigma;
    for (mu, wk) in [(density.mu[0], density.w), (density.mu[1], 1.0 - density.w)] {
        for &(z, omega) in gh.iter() {
            rule.x.push(mu + scale * z);
            rule.w.push(wk * omega / PI.sqrt());
        }
    }
    rule
}

/// Cached (node, weight) tables keyed by their size.
type NodeCache = std::sync::Mutex<Vec<(usize, std::sync::Arc<Vec<(f64, f64)>>)>>;

/// Gauss–Hermite nodes for e^{-z²}, cached per K.
fn hermite_nodes(k: usize) -> std::sync::Arc<Vec<(f64, f64)>> {
    static CACHE: OnceLock<NodeCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((_, v)) = guard.iter().find(|(n, _)| *n == k) {
        return v.clone();
    }
    let n = NonZeroUsize::new(k.max(1)).unwrap_or(NonZeroUsize::MIN);
    let v = std::sync::Arc::new(GaussHermite::new(n).as_node_weight_pairs().to_vec());
    guard.push((k, v.clone()));
    v
}

/// Gauss–Legendre nodes on [−1, 1], cached per n.
fn legendre_nodes(n: usize) -> std::sync::Arc<Vec<(f64, f64)>> {
    static CACHE: OnceLock<NodeCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((_, v)) = guard.iter().find(|(m, _)| *m == n) {
        return v.clone();
    }
    let nz = NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
    let mut v = GaussLegendre::new(nz).as_node_weight_pairs().to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let v = std::sync::Arc::new(v);
    guard.push((n, v.clone()));
    v
}

/// Most panels [`panels`] puts in one gap between graded edges.
pub const MAX_SUBDIVISIONS: usize = 4096;

/// Panels (a, b) of the composite rule, sorted. Only the windows [μₖ − Lσ, μₖ + Lσ] of the
/// density's components are covered (merged where they overlap): elsewhere the density is below
/// e^{−L²/2} of its peak, so far-apart components cost no more than two separate ones; when
/// they are apart, a third window around the crossover of `scores_of` carries the cross terms
/// (without it the Fisher matrix's off-diagonal entry was 100 % off beyond |Δ| ≈ 20σ).
pub fn panels(
    max_panel: f64,
    half_width: f64,
    density: &Mixture2,
    scores_of: &Mixture2,
) -> Vec<(f64, f64)> {
    let mut scratch = PanelScratch::default();
    scratch.build(max_panel, half_width, density, scores_of);
    scratch.panels
}

/// Reusable buffers for [`panels`]: building the panels into them allocates nothing once they
/// have grown to the largest layout seen (the flow kernels keep one per thread).
#[derive(Clone, Debug, Default)]
pub struct PanelScratch {
    graded: Vec<f64>,
    edges: Vec<f64>,
    /// The panels of the last [`PanelScratch::build`].
    pub panels: Vec<(f64, f64)>,
}

impl PanelScratch {
    /// The panels of [`panels`] into `self.panels` (same layout, no allocation when warm).
    pub fn build(
        &mut self,
        max_panel: f64,
        half_width: f64,
        density: &Mixture2,
        scores_of: &Mixture2,
    ) -> &[(f64, f64)] {
        let hmax = max_panel * density.sigma.max(scores_of.sigma);
        let reach = half_width * density.sigma;
        let (windows, nw) = windows_of(density, scores_of, scores_of.crossover(), reach);
        // Graded edges around the crossover of the mixture whose scores are integrated:
        // c, c ± d, c ± 3d, c ± 7d, … until the spacing reaches hmax.
        self.graded.clear();
        if let Some(c) = scores_of.crossover().filter(|c| c.is_finite()) {
            let d = scores_of.pole_distance();
            // d > 0: with σ² underflowing to 0 (σ ≲ 1e-162) the doubling below never grew and
            // filled the memory. Config bounds σ; this keeps any caller safe.
            if d > 0.0 && d < hmax {
                self.graded.push(c);
                let mut off = d;
                let mut step = d;
                while step < hmax {
                    self.graded.push(c - off);
                    self.graded.push(c + off);
                    step *= 2.0;
                    off += step;
                }
            }
        }
        self.panels.clear();
        for &(lo, hi) in &windows[..nw] {
            self.edges.clear();
            self.edges.extend([lo, hi]);
            self.edges
                .extend(self.graded.iter().copied().filter(|&e| e > lo && e < hi));
            self.edges.sort_unstable_by(f64::total_cmp);
            self.edges
                .dedup_by(|a, b| (*a - *b).abs() <= 1e-14 * (1.0 + b.abs()));
            // Subdivide gaps wider than hmax uniformly; at most MAX_SUBDIVISIONS panels per gap
            // (only reachable with non-finite or out-of-range inputs, which config refuses: a
            // window of width ≤ 4·L·σ needs ≤ 4L/max_panel panels).
            for pair in self.edges.windows(2) {
                subdivide(&mut self.panels, pair[0], pair[1], hmax);
            }
        }
        &self.panels
    }
}

/// The grading of [`PanelScratch::build`] for one mixture whose scores are integrated: its
/// crossover c and pole distance d, computed once and shared by the rules of one evaluation
/// ([`PanelScratch::build_union`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grading {
    /// [`Mixture2::crossover`] (as it returns it, possibly non-finite).
    pub crossover: Option<f64>,
    /// [`Mixture2::pole_distance`].
    pub pole: f64,
}

impl Grading {
    /// The grading of `scores_of`.
    pub fn of(scores_of: &Mixture2) -> Grading {
        Grading {
            crossover: scores_of.crossover(),
            pole: scores_of.pole_distance(),
        }
    }

    /// As [`Grading::of`] with ln(w/(1−w)) given (the kernels hold it: no logarithm per call).
    pub fn with_log_odds(scores_of: &Mixture2, log_odds: f64) -> Grading {
        let delta = scores_of.mu[1] - scores_of.mu[0];
        Grading {
            crossover: (delta != 0.0).then(|| {
                0.5 * (scores_of.mu[0] + scores_of.mu[1])
                    + scores_of.sigma * scores_of.sigma * log_odds / delta
            }),
            pole: scores_of.pole_distance(),
        }
    }
}

impl PanelScratch {
    /// The panels of the union of the windows of `densities` (each as [`PanelScratch::build`]
    /// covers it, overlapping windows merged), graded at the crossover of `scores_of` and
    /// subdivided to ≤ `max_panel`·σ: one node set on which the integrands of every density
    /// are resolved as finely as on its own rule (same grading, same largest panel; outside a
    /// density's windows it is below e^{−L²/2} of its peak). The flow kernel evaluates the
    /// Fisher rule's and the gradient rule's sums on it in one pass. For one density the
    /// panels are `build`'s to the bit, built without sorting: the graded edges are generated
    /// in order (c − offsets reversed, c, c + offsets) and merged with each window's ends in
    /// one pass, near-duplicate edges dropped as `build` does. Non-finite inputs go to `build`
    /// for the first density.
    pub fn build_union(
        &mut self,
        max_panel: f64,
        half_width: f64,
        densities: &[Mixture2],
        scores_of: &Mixture2,
        grading: &Grading,
    ) -> &[(f64, f64)] {
        let sigma = densities
            .iter()
            .fold(scores_of.sigma, |s, d| s.max(d.sigma));
        let hmax = max_panel * sigma;
        let mut all = [(0.0, 0.0); 12];
        let mut n = 0;
        let mut finite = hmax.is_finite() && grading.crossover.is_none_or(f64::is_finite);
        for d in densities.iter().take(4) {
            let reach = half_width * d.sigma;
            finite &= d.mu.iter().all(|m| m.is_finite()) && reach.is_finite();
            let (w, nw) = windows_of(d, scores_of, grading.crossover, reach);
            // element-wise (a variable-length copy_from_slice is a memcpy call)
            for &wi in w.iter().take(nw) {
                all[n] = wi;
                n += 1;
            }
        }
        if !finite || n == 0 {
            return match densities.first() {
                Some(d) => self.build(max_panel, half_width, d, scores_of),
                None => {
                    self.panels.clear();
                    &self.panels
                }
            };
        }
        let all = &mut all[..n];
        all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged = 0;
        for i in 0..all.len() {
            let w = all[i];
            // overlapping windows merge; touching ones stay apart (their junction stays an
            // edge, as in `build`, where one density's windows touch but never overlap)
            if merged > 0 && w.0 < all[merged - 1].1 {
                all[merged - 1].1 = all[merged - 1].1.max(w.1);
            } else {
                all[merged] = w;
                merged += 1;
            }
        }
        self.fill(&all[..merged], grading, hmax);
        &self.panels
    }

    /// Panels of `windows` (ascending, disjoint) with the graded edges c, c ± d, c ± 3d, …
    /// inside them, near-duplicate edges dropped, gaps subdivided to ≤ `hmax`.
    fn fill(&mut self, windows: &[(f64, f64)], grading: &Grading, hmax: f64) {
        // graded edges in ascending order; `edges` holds the offsets d, 3d, 7d, …
        self.graded.clear();
        self.edges.clear();
        if let Some(c) = grading.crossover {
            let d = grading.pole;
            if d > 0.0 && d < hmax {
                let (mut off, mut step) = (d, d);
                while step < hmax {
                    self.edges.push(off);
                    step *= 2.0;
                    off += step;
                }
                self.graded.extend(self.edges.iter().rev().map(|&o| c - o));
                self.graded.push(c);
                self.graded.extend(self.edges.iter().map(|&o| c + o));
            }
        }
        self.panels.clear();
        let near = |e: f64, kept: f64| (e - kept).abs() <= 1e-14 * (1.0 + kept.abs());
        for &(lo, hi) in windows {
            let first = self.graded.partition_point(|&e| e <= lo);
            let mut kept = lo;
            for &e in self.graded[first..].iter().take_while(|&&e| e < hi) {
                if near(e, kept) {
                    continue;
                }
                subdivide(&mut self.panels, kept, e, hmax);
                kept = e;
            }
            if !near(hi, kept) {
                subdivide(&mut self.panels, kept, hi, hmax);
            }
        }
    }
}

/// The windows [`PanelScratch::build`] covers for `density` (reach = L·σ): one around both
/// means when they are within 2·reach, else one per mean plus, when the scores' means are
/// within 80σ, one of half-width 100σ²/|Δ| around the crossover `c` in the gap between them.
fn windows_of(
    density: &Mixture2,
    scores_of: &Mixture2,
    crossover: Option<f64>,
    reach: f64,
) -> ([(f64, f64); 3], usize) {
    let (m0, m1) = (
        density.mu[0].min(density.mu[1]),
        density.mu[0].max(density.mu[1]),
    );
    let mut windows = [(0.0, 0.0); 3];
    let mut nw = if m1 - m0 <= 2.0 * reach {
        windows[0] = (m0 - reach, m1 + reach);
        1
    } else {
        windows[0] = (m0 - reach, m0 + reach);
        windows[1] = (m1 - reach, m1 + reach);
        2
    };
    if nw == 2
        && (scores_of.mu[1] - scores_of.mu[0]).abs() < 80.0 * scores_of.sigma
        && let Some(c) = crossover
    {
        let (delta, s2) = (
            (scores_of.mu[1] - scores_of.mu[0]).abs(),
            scores_of.sigma * scores_of.sigma,
        );
        let hw = 100.0 * s2 / delta;
        let (lo, hi) = (c - hw, c + hw);
        if hw.is_finite() && hi > windows[0].1 && lo < windows[1].0 {
            windows[2] = windows[1];
            windows[1] = (lo.max(windows[0].1), hi.min(windows[1].0));
            nw = 3;
        }
    }
    (windows, nw)
}

/// The gap (a, b) as ⌈(b − a)/hmax⌉ equal panels (at most [`MAX_SUBDIVISIONS`]; skipped when
/// an end is not finite), appended to `panels`.
fn subdivide(panels: &mut Vec<(f64, f64)>, a: f64, b: f64, hmax: f64) {
    if !(a.is_finite() && b.is_finite()) {
        return;
    }
    // most gaps (all graded ones) need no subdivision: no division, no ceil
    if b - a <= hmax {
        panels.push((a, b));
        return;
    }
    let m = ((b - a) / hmax).ceil().clamp(1.0, MAX_SUBDIVISIONS as f64) as usize;
    let step = (b - a) / m as f64;
    for i in 0..m {
        let lo_i = a + step * i as f64;
        let hi_i = if i + 1 == m {
            b
        } else {
            a + step * (i + 1) as f64
        };
        panels.push((lo_i, hi_i));
    }
}

fn composite(
    n: usize,
    max_panel: f64,
    half_width: f64,
    density: &Mixture2,
    scores_of: &Mixture2,
) -> Rule {
    let gl = legendre_nodes(n);
    let panels = panels(max_panel, half_width, density, scores_of);
    let mut rule = Rule {
        x: Vec::with_capacity(n * panels.len()),
        w: Vec::with_capacity(n * panels.len()),
    };
    for (a, b) in panels {
        let half = 0.5 * (b - a);
        let mid = 0.5 * (a + b);
        for &(z, omega) in gl.iter() {
            let x = mid + half * z;
            rule.x.push(x);
            rule.w.push(half * omega * density.density(x));
        }
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The sort-free builder gives `build`'s panels to the bit, for both rules of a flow
        /// evaluation (density = model or target, scores of the model), including crossovers
        /// far out, near-coincident means, and edges landing on window ends.
        #[test]
        fn graded_builder_equals_the_sorting_one(
            mu0 in -60.0f64..60.0, delta in -80.0f64..80.0, t0 in -10.0f64..10.0,
            t1 in -10.0f64..10.0, sigma in 0.05f64..5.0, w in 0.01f64..0.99,
            max_panel in 0.25f64..6.0, half_width in 2.0f64..14.0, tiny in 0u8..4,
        ) {
            // near-coincident means in a quarter of the cases
            let delta = if tiny == 0 { delta * 1e-9 } else { delta };
            let model = Mixture2 { mu: [mu0, mu0 + delta], sigma, w };
            let target = Mixture2 { mu: [t0, t1], ..model };
            let log_odds = (w / (1.0 - w)).ln();
            let g = Grading::with_log_odds(&model, log_odds);
            proptest::prop_assert_eq!(g, Grading::of(&model));
            for density in [model, target] {
                let (mut a, mut b) = (PanelScratch::default(), PanelScratch::default());
                let want = a.build(max_panel, half_width, &density, &model).to_vec();
                let got = b.build_union(max_panel, half_width, &[density], &model, &g).to_vec();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    /// An edge exactly on a window end and a crossover on a mean: still the same panels.
    #[test]
    fn graded_builder_handles_coinciding_edges() {
        for (mu, w) in [
            ([0.0, 8.0], 0.5),
            ([-3.0, 3.0], 0.5),
            ([0.0, 1e-300], 0.5),
            ([2.0, 2.5], 0.2),
        ] {
            let m = Mixture2 { mu, sigma: 1.0, w };
            for hw in [4.0, 10.0] {
                let g = Grading::of(&m);
                let want = PanelScratch::default().build(1.0, hw, &m, &m).to_vec();
                let got = PanelScratch::default()
                    .build_union(1.0, hw, &[m], &m, &g)
                    .to_vec();
                assert_eq!(got, want, "{mu:?} {w} {hw}");
            }
        }
    }

    #[test]
    fn moments_of_a_mixture_are_exact() {
        // E[x] = wμ₁ + (1−w)μ₂, E[x²] = σ² + wμ₁² + (1−w)μ₂².
        let m = Mixture2 {
            mu: [-1.5, 2.0],
            sigma: 0.7,
            w: 0.3,
        };
        for scheme in [Scheme::default(), Scheme::GaussHermite { nodes: 20 }] {
            let r = Rule::build(&scheme, &m, &m);
            let e0 = r.expect(|_| 1.0);
            let e1 = r.expect(|x| x);
            let e2 = r.expect(|x| x * x);
            assert!((e0 - 1.0).abs() < 1e-14, "{scheme:?} mass {e0}");
            assert!((e1 - (0.3 * -1.5 + 0.7 * 2.0)).abs() < 1e-13);
            assert!((e2 - (0.49 + 0.3 * 2.25 + 0.7 * 4.0)).abs() < 1e-13);
        }
    }

    #[test]
    fn crossover_equalizes_the_weighted_components() {
        let m = Mixture2 {
            mu: [-1.0, 3.0],
            sigma: 1.3,
            w: 0.85,
        };
        let c = m.crossover().unwrap_or(f64::NAN);
        let n = |mu: f64| (-(c - mu) * (c - mu) / (2.0 * 1.69)).exp();
        assert!((0.85 * n(-1.0) - 0.15 * n(3.0)).abs() < 1e-14);
    }

    #[test]
    fn panels_are_graded_near_the_crossover() {
        let m = Mixture2 {
            mu: [0.0, 20.0],
            sigma: 1.0,
            w: 0.5,
        };
        let p = panels(1.0, 10.0, &m, &m);
        let d = m.pole_distance();
        // the smallest panel is as wide as the pole distance, and one touches c = 10
        let smallest = p.iter().map(|(a, b)| b - a).fold(f64::INFINITY, f64::min);
        assert!((smallest - d).abs() < 1e-12, "smallest {smallest} d {d}");
        assert!(p.iter().any(|&(a, _)| (a - 10.0).abs() < 1e-12));
        assert!(p.iter().all(|(a, b)| b - a <= 1.0 + 1e-12));
        // contiguous cover of [−10, 30]
        assert!((p[0].0 + 10.0).abs() < 1e-12 && (p[p.len() - 1].1 - 30.0).abs() < 1e-12);
        assert!(p.windows(2).all(|w| (w[0].1 - w[1].0).abs() < 1e-12));
    }

    #[test]
    fn far_apart_components_only_cover_their_own_windows() {
        let m = Mixture2 {
            mu: [-1e4, 1e4],
            sigma: 1e-3,
            w: 0.5,
        };
        let p = panels(1.0, 10.0, &m, &m);
        let covered: f64 = p.iter().map(|(a, b)| b - a).sum();
        assert!((covered - 0.04).abs() < 1e-9, "{covered}");
        let r = Rule::build(&Scheme::default(), &m, &m);
        // |μ|/σ = 1e7: node positions carry ~1e-12 absolute rounding, i.e. ~1e-9 in z.
        let mass = r.expect(|_| 1.0);
        assert!((mass - 1.0).abs() < 1e-6, "{mass}");
    }
}
