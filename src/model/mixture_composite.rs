//! The composite rule's node sums for the mixture's flow kernel, fused and vectorized.
//!
//! One right-hand side under [`crate::quadrature::Scheme::Composite`] needs the Fisher sums
//! (density p(·|θ)) and the gradient sums (density the target p(·|θ*)), both with integrands
//! whose poles sit at θ's crossover. They are evaluated on **one node set**: the union of the
//! windows of the two rules [`crate::quadrature::Rule::build`] would use, graded at θ's
//! crossover and subdivided to the same largest panel
//! ([`crate::quadrature::PanelScratch::build_union`], sort-free, into a per-thread buffer), so
//! each integrand is resolved as finely as on its own rule (tested against the refined
//! reference: as accurate as the two rules) while the model's terms and the reciprocal are
//! shared. The crossover is computed once per evaluation, the logarithms of the weights once
//! per kernel. One pass forms each panel's nodes x = mid + half·zⱼ and density-free weights
//! W = half·ωⱼ/(σ√2π) in registers and accumulates all five sums in SIMD lanes (AVX-512 or
//! AVX2 + FMA, detected at run time; scalar otherwise), with no allocation once warm. Per node,
//! four exponentials (the two rules took five per pair of nodes):
//!
//! * the model: a = ln w − d₁²/2σ², b = ln(1−w) − d₂²/2σ² (dₖ = x − μₖ, each from its own
//!   square), s = max(a, b), ℓ = b − a = Δ(2x − μ₁ − μ₂)/(2σ²) + ln((1−w)/w) in linear form;
//!   E = e^s and e = e^{−|ℓ|}, so (A, B) = (wN₁, (1−w)N₂)·√(2π)σ = E·(A′, B′) with one of
//!   A′, B′ equal to 1 and the other e. The responsibilities are A′/(1 + e), B′/(1 + e), exact
//!   however far both components are (no ratio of two underflowed terms);
//! * Fisher sums Σ K·q₁², Σ K·q₁q₂, Σ K·q₂² with K = W·E/(1 + e), qₖ = (A′ d₁, B′ d₂)ₖ
//!   (p·rₖrₗ·dₖdₗ = W(A dₖ)(B dₗ)/(A + B));
//! * gradient sums Σ K*·q₁, Σ K*·q₂ with K* = W·(A* + B*)/(1 + e), the target's two terms.
//!
//! Exponents are clamped to ≥ −700 (E and the target terms then stand at e^{−700} where the
//! density is below that; e ≥ e^{−700}). The AVX-512 exponential is table-driven (see
//! `Lanes::exp` there: 2^{j/16} by a register permute, degree-7 polynomial); the AVX2 one is
//! e^x = 2^k·e^r, k = round(x/ln 2), r by a Cody–Waite split, e^r by its degree-12 Taylor
//! polynomial (|r| ≤ ln2/2, truncation < 2e-16 relative); 1/y on AVX-512 is the 14-bit
//! estimate refined by two Newton steps (error ≤ 2^−56 before rounding), elsewhere a division.

use crate::quadrature::{Grading, Mixture2, PanelScratch};
use std::cell::RefCell;
use std::f64::consts::PI;

/// Gauss–Legendre nodes and weights on [−1, 1] for the composite panels, padded with
/// zero-weight nodes at z = 0 to a multiple of [`PAD`] (the kernels run whole lanes per panel).
#[derive(Clone, Debug)]
pub(crate) struct GlTable {
    z: Vec<f64>,
    w: Vec<f64>,
}

impl GlTable {
    pub(crate) fn new(pairs: &[(f64, f64)]) -> GlTable {
        let len = pairs.len().div_ceil(PAD) * PAD;
        let mut t = GlTable {
            z: pairs.iter().map(|p| p.0).collect(),
            w: pairs.iter().map(|p| p.1).collect(),
        };
        t.z.resize(len, 0.0);
        t.w.resize(len, 0.0);
        t
    }
}

/// Everything a rhs evaluation needs besides θ, with the logarithms of the weights computed
/// once ([`Params::new`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub mu: [f64; 2],
    pub target: [f64; 2],
    pub sigma: f64,
    pub w: f64,
    /// ln w, ln(1 − w).
    lw: [f64; 2],
    /// ln((1 − w)/w) as ln(1 − w) − ln w (the responsibilities' offset).
    c0: f64,
    /// ln(w/(1 − w)) as the quadrature's crossover computes it.
    log_odds: f64,
}

impl Params {
    pub(crate) fn new(mu: [f64; 2], target: [f64; 2], sigma: f64, w: f64) -> Params {
        Params {
            mu,
            target,
            sigma,
            w,
            lw: [w.ln(), (1.0 - w).ln()],
            c0: (1.0 - w).ln() - w.ln(),
            log_odds: (w / (1.0 - w)).ln(),
        }
    }

    /// The same with the means θ.
    pub(crate) fn at(&self, mu: [f64; 2]) -> Params {
        Params { mu, ..*self }
    }
}

/// Per-thread panel buffers.
#[derive(Default)]
struct Workspace {
    panels: PanelScratch,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Widest lane count of the kernels (the node table is padded to a multiple of it).
const PAD: usize = 8;

/// (g, (G₁₁, G₁₂, G₂₂)) at θ = `p.mu` under the composite rule with `max_panel`, `half_width`.
pub(crate) fn grad_fisher(
    gl: &GlTable,
    max_panel: f64,
    half_width: f64,
    p: &Params,
) -> ([f64; 2], [f64; 3]) {
    WORKSPACE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut ws) => eval(&mut ws, gl, max_panel, half_width, p),
        // re-entered on this thread (not done by the kernels): fresh buffers
        Err(_) => eval(&mut Workspace::default(), gl, max_panel, half_width, p),
    })
}

/// L(θ) = −E_{p*}[log p(x|θ)] at θ = `p.mu` on the same node set as [`grad_fisher`]: per node
/// log p = max(a, b) + ln(1 + e^{−|b−a|}) − ln(σ√2π), the logarithm in lanes too
/// (`Lanes::ln_1p_unit`).
pub(crate) fn cross_entropy(gl: &GlTable, max_panel: f64, half_width: f64, p: &Params) -> f64 {
    WORKSPACE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut ws) => loss_eval(&mut ws, gl, max_panel, half_width, p),
        Err(_) => loss_eval(&mut Workspace::default(), gl, max_panel, half_width, p),
    })
}

fn loss_eval(ws: &mut Workspace, gl: &GlTable, max_panel: f64, half_width: f64, p: &Params) -> f64 {
    let (model, target, grading, k) = setup(p);
    let panels = ws
        .panels
        .build_union(max_panel, half_width, &[model, target], &model, &grading);
    let log_norm = (p.sigma * (2.0 * PI).sqrt()).ln();
    #[cfg(target_arch = "x86_64")]
    {
        if simd_level() == 2 {
            // SAFETY: the CPU supports AVX-512F (checked by `simd_level`).
            return unsafe { loss_avx512(panels, gl, &k, log_norm) };
        }
        if simd_level() == 1 {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `simd_level`).
            return unsafe { loss_avx2(panels, gl, &k, log_norm) };
        }
    }
    // SAFETY: the scalar lanes use no CPU features.
    unsafe { loss_sum::<f64>(panels, gl, &k, log_norm) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn loss_avx512(panels: &[(f64, f64)], gl: &GlTable, k: &Consts, log_norm: f64) -> f64 {
    // SAFETY: AVX-512F is enabled for this function.
    unsafe { loss_sum::<std::arch::x86_64::__m512d>(panels, gl, k, log_norm) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn loss_avx2(panels: &[(f64, f64)], gl: &GlTable, k: &Consts, log_norm: f64) -> f64 {
    // SAFETY: AVX2 and FMA are enabled for this function.
    unsafe { loss_sum::<std::arch::x86_64::__m256d>(panels, gl, k, log_norm) }
}

/// −Σ W p*·log p(x|θ) over the nodes of `panels`.
///
/// # Safety
/// `V`'s CPU features must be available.
#[inline(always)]
unsafe fn loss_sum<V: Lanes>(
    panels: &[(f64, f64)],
    gl: &GlTable,
    k: &Consts,
    log_norm: f64,
) -> f64 {
    // SAFETY: the caller guarantees V's features.
    unsafe {
        let sp = Splats::<V>::new(k);
        let (mut acc, mut mass) = (V::splat(0.0), V::splat(0.0));
        for_each_node::<V>(panels, gl, k.norm, |xv, w| {
            let t = sp.terms(xv);
            let logp = t.a.max(t.b).add(t.e.ln_1p_unit());
            let (pa, pb) = sp.target(xv);
            let wp = w.mul(pa.add(pb));
            acc = V::fma(wp, logp, acc);
            mass = mass.add(wp);
        });
        // log p = (a ∨ b) + ln(1 + e) − ln(σ√2π)
        log_norm * mass.hsum() - acc.hsum()
    }
}

fn eval(
    ws: &mut Workspace,
    gl: &GlTable,
    max_panel: f64,
    half_width: f64,
    p: &Params,
) -> ([f64; 2], [f64; 3]) {
    let (model, target, grading, k) = setup(p);
    let s = dispatch(
        ws.panels
            .build_union(max_panel, half_width, &[model, target], &model, &grading),
        gl,
        &k,
    );
    let inv_s2 = 2.0 * k.c;
    let i4 = inv_s2 * inv_s2;
    (
        [-s[3] * inv_s2, -s[4] * inv_s2],
        [s[0] * i4, s[1] * i4, s[2] * i4],
    )
}

/// The model and target mixtures, the grading at the model's crossover (both rules are
/// graded there: computed once) and the scalars of one evaluation.
fn setup(p: &Params) -> (Mixture2, Mixture2, Grading, Consts) {
    let model = Mixture2 {
        mu: p.mu,
        sigma: p.sigma,
        w: p.w,
    };
    let target = Mixture2 {
        mu: p.target,
        ..model
    };
    let grading = Grading::with_log_odds(&model, p.log_odds);
    let inv_s2 = 1.0 / (p.sigma * p.sigma);
    let k = Consts {
        mu1: p.mu[0],
        mu2: p.mu[1],
        t1: p.target[0],
        t2: p.target[1],
        lw1: p.lw[0],
        lw2: p.lw[1],
        c: 0.5 * inv_s2,
        delta: p.mu[1] - p.mu[0],
        c0: p.c0,
        norm: 1.0 / (p.sigma * (2.0 * PI).sqrt()),
    };
    (model, target, grading, k)
}

/// Scalars of one evaluation.
#[derive(Clone, Copy, Debug)]
struct Consts {
    mu1: f64,
    mu2: f64,
    t1: f64,
    t2: f64,
    lw1: f64,
    lw2: f64,
    /// 1/(2σ²).
    c: f64,
    delta: f64,
    /// ln((1−w)/w).
    c0: f64,
    /// 1/(σ√2π).
    norm: f64,
}

fn dispatch(panels: &[(f64, f64)], gl: &GlTable, k: &Consts) -> [f64; 5] {
    #[cfg(target_arch = "x86_64")]
    {
        if simd_level() == 2 {
            // SAFETY: the CPU supports AVX-512F (checked by `simd_level`).
            return unsafe { sums_avx512(panels, gl, k) };
        }
        if simd_level() == 1 {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `simd_level`).
            return unsafe { sums_avx2(panels, gl, k) };
        }
    }
    // SAFETY: the scalar lanes use no CPU features.
    unsafe { sums::<f64>(panels, gl, k) }
}

/// 2 with AVX-512F, 1 with AVX2 + FMA, 0 otherwise (overridable downwards with the
/// environment variable `FISHER_FLOW_SIMD` = 0/1/2, for tests and measurements).
#[cfg(target_arch = "x86_64")]
fn simd_level() -> u8 {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<u8> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let hw = if std::arch::is_x86_feature_detected!("avx512f") {
            2
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            1
        } else {
            0
        };
        let cap = std::env::var("FISHER_FLOW_SIMD")
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .unwrap_or(2);
        hw.min(cap)
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sums_avx512(panels: &[(f64, f64)], gl: &GlTable, k: &Consts) -> [f64; 5] {
    // SAFETY: AVX-512F is enabled for this function.
    unsafe { sums::<std::arch::x86_64::__m512d>(panels, gl, k) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sums_avx2(panels: &[(f64, f64)], gl: &GlTable, k: &Consts) -> [f64; 5] {
    // SAFETY: AVX2 and FMA are enabled for this function.
    unsafe { sums::<std::arch::x86_64::__m256d>(panels, gl, k) }
}

/// Calls `node(x, W)` for every lane group of every panel: the nodes x = mid + half·zⱼ and
/// density-free weights W = half·norm·ωⱼ, formed in registers (padding lanes have W = 0).
///
/// # Safety
/// `V`'s CPU features must be available.
#[inline(always)]
unsafe fn for_each_node<V: Lanes>(
    panels: &[(f64, f64)],
    gl: &GlTable,
    norm: f64,
    mut node: impl FnMut(V, V),
) {
    // SAFETY: the caller guarantees V's features; loads stay within the table (j + N ≤ len,
    // len a multiple of PAD, N divides PAD).
    unsafe {
        let len = gl.z.len().min(gl.w.len());
        for &(a, b) in panels {
            let half = 0.5 * (b - a);
            let (h, m, hn) = (
                V::splat(half),
                V::splat(0.5 * (a + b)),
                V::splat(half * norm),
            );
            let mut j = 0;
            while j + V::N <= len {
                node(V::fma(h, V::load(&gl.z, j), m), hn.mul(V::load(&gl.w, j)));
                j += V::N;
            }
        }
    }
}

/// The scalars of [`Consts`] splat into lanes once per evaluation.
#[derive(Clone, Copy)]
struct Splats<V> {
    mu1: V,
    mu2: V,
    t1: V,
    t2: V,
    lw1: V,
    lw2: V,
    c: V,
    floor: V,
    /// Δ/(2σ²), 2, ln((1−w)/w), −(μ₁ + μ₂): b − a = Δ(2x − μ₁ − μ₂)/(2σ²) + c₀.
    dc: V,
    two: V,
    c0: V,
    nmsum: V,
}

/// The model's terms at a node x: dₖ = x − μₖ, the log component terms a = ln w − d₁²/2σ²,
/// b = ln(1−w) − d₂²/2σ² (each from its own square: b as a + (b − a) would cancel where both
/// are large), ℓ = b − a in linear form and e = e^{−|ℓ|}.
#[derive(Clone, Copy)]
struct Terms<V> {
    d1: V,
    d2: V,
    a: V,
    b: V,
    lin: V,
    e: V,
}

impl<V: Lanes> Splats<V> {
    /// # Safety
    /// `V`'s CPU features must be available.
    #[inline(always)]
    unsafe fn new(k: &Consts) -> Self {
        // SAFETY: the caller guarantees V's features.
        unsafe {
            Splats {
                mu1: V::splat(k.mu1),
                mu2: V::splat(k.mu2),
                t1: V::splat(k.t1),
                t2: V::splat(k.t2),
                lw1: V::splat(k.lw1),
                lw2: V::splat(k.lw2),
                c: V::splat(k.c),
                floor: V::splat(-700.0),
                dc: V::splat(k.delta * k.c),
                two: V::splat(2.0),
                c0: V::splat(k.c0),
                nmsum: V::splat(-(k.mu1 + k.mu2)),
            }
        }
    }

    /// The model's [`Terms`] at x.
    ///
    /// # Safety
    /// `V`'s CPU features must be available.
    #[inline(always)]
    unsafe fn terms(&self, xv: V) -> Terms<V> {
        // SAFETY: the caller guarantees V's features.
        unsafe {
            let (c, floor) = (self.c, self.floor);
            let d1 = xv.sub(self.mu1);
            let d2 = xv.sub(self.mu2);
            let a = V::fnma(c.mul(d1), d1, self.lw1);
            let b = V::fnma(c.mul(d2), d2, self.lw2);
            let lin = V::fma(self.dc, V::fma(self.two, xv, self.nmsum), self.c0);
            let e = lin.min(lin.neg()).max(floor).exp();
            Terms {
                d1,
                d2,
                a,
                b,
                lin,
                e,
            }
        }
    }

    /// The target's density terms at x: A* = w·e^{−(x−θ*₁)²/2σ²}, B* likewise (≥ e^{−700}).
    ///
    /// # Safety
    /// `V`'s CPU features must be available.
    #[inline(always)]
    unsafe fn target(&self, xv: V) -> (V, V) {
        // SAFETY: the caller guarantees V's features.
        unsafe {
            let e1 = xv.sub(self.t1);
            let e2 = xv.sub(self.t2);
            (
                V::fnma(self.c.mul(e1), e1, self.lw1).max(self.floor).exp(),
                V::fnma(self.c.mul(e2), e2, self.lw2).max(self.floor).exp(),
            )
        }
    }
}

/// [Σ K·q₁², Σ K·q₁q₂, Σ K·q₂², Σ K*·q₁, Σ K*·q₂] over the nodes of `panels` (see the module
/// docs): the Fisher sums and the gradient sums in one pass.
///
/// # Safety
/// `V`'s CPU features must be available (the callers are `target_feature` functions).
#[inline(always)]
unsafe fn sums<V: Lanes>(panels: &[(f64, f64)], gl: &GlTable, k: &Consts) -> [f64; 5] {
    // SAFETY: the caller guarantees V's features.
    unsafe {
        let sp = Splats::<V>::new(k);
        let one = V::splat(1.0);
        let mut acc = [V::splat(0.0); 5];
        for_each_node::<V>(panels, gl, k.norm, |xv, w| {
            let t = sp.terms(xv);
            // E = e^{max(a, b)}; (A′, B′) = (A, B)/E: one of them is 1, the other e
            let big = t.a.max(t.b).max(sp.floor).exp();
            let sa = t.lin.select_le0(one, t.e);
            let sb = t.lin.select_le0(t.e, one);
            let inv = one.add(t.e).recip();
            let q1 = sa.mul(t.d1);
            let q2 = sb.mul(t.d2);
            let kk = w.mul(big).mul(inv);
            let kq2 = kk.mul(q2);
            acc[0] = V::fma(kk.mul(q1), q1, acc[0]);
            acc[1] = V::fma(q1, kq2, acc[1]);
            acc[2] = V::fma(q2, kq2, acc[2]);
            // the target's density W·p*(x) = W(A* + B*) times 1/(A′ + B′)
            let (pa, pb) = sp.target(xv);
            let kt = w.mul(pa.add(pb)).mul(inv);
            acc[3] = V::fma(kt, q1, acc[3]);
            acc[4] = V::fma(kt, q2, acc[4]);
        });
        [
            acc[0].hsum(),
            acc[1].hsum(),
            acc[2].hsum(),
            acc[3].hsum(),
            acc[4].hsum(),
        ]
    }
}

/// A vector of `N` f64 lanes. Every method is `unsafe`: it may use CPU features that the
/// caller must have enabled (all are `#[inline(always)]`, so they compile into the
/// `target_feature` functions above).
trait Lanes: Copy {
    const N: usize;
    unsafe fn splat(v: f64) -> Self;
    /// s[i..i + N] (the caller checks the bounds).
    unsafe fn load(s: &[f64], i: usize) -> Self;
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn neg(self) -> Self;
    unsafe fn max(self, o: Self) -> Self;
    unsafe fn min(self, o: Self) -> Self;
    /// Lane-wise `if self ≤ 0 { t } else { f }`.
    unsafe fn select_le0(self, t: Self, f: Self) -> Self;
    /// a·b + c.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// c − a·b.
    unsafe fn fnma(a: Self, b: Self, c: Self) -> Self;
    /// 1/self.
    unsafe fn recip(self) -> Self;
    /// e^self for self ∈ [−700, 700].
    unsafe fn exp(self) -> Self;
    /// ln(1 + self) for self ∈ [0, 1], fdlibm's logarithm kernel in lanes: with f = self, or
    /// f = (self − 1)/2 and k = 1 above √2 − 1 (so 1 + self = 2^k(1 + f), f ∈ [√2/2 − 1,
    /// √2 − 1], both exact), s = f/(2 + f), ln(1 + f) = f − ½f² + s(½f² + R(s²)) with R its
    /// degree-7 minimax polynomial (error < 2^−58.45 on this range), plus k·ln 2 split.
    #[inline(always)]
    unsafe fn ln_1p_unit(self) -> Self {
        // SAFETY: the caller guarantees the features of the methods used.
        unsafe {
            let (one, half) = (Self::splat(1.0), Self::splat(0.5));
            let above = self.sub(Self::splat(std::f64::consts::SQRT_2 - 1.0));
            let f = above.select_le0(self, self.sub(one).mul(half));
            let k = above.select_le0(Self::splat(0.0), one);
            let s = f.mul(Self::splat(2.0).add(f).recip());
            let z = s.mul(s);
            let mut r = Self::splat(LG[6]);
            for &c in LG[..6].iter().rev() {
                r = Self::fma(r, z, Self::splat(c));
            }
            let r = r.mul(z);
            let hfsq = half.mul(f).mul(f);
            let t = Self::fma(s, hfsq.add(r), k.mul(Self::splat(LN2_LO)));
            Self::fma(k, Self::splat(LN2_HI), f.sub(hfsq.sub(t)))
        }
    }
    unsafe fn hsum(self) -> f64;
}

impl Lanes for f64 {
    const N: usize = 1;
    #[inline(always)]
    unsafe fn splat(v: f64) -> Self {
        v
    }
    #[inline(always)]
    unsafe fn load(s: &[f64], i: usize) -> Self {
        s[i]
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    unsafe fn neg(self) -> Self {
        -self
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        f64::max(self, o)
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        f64::min(self, o)
    }
    #[inline(always)]
    unsafe fn select_le0(self, t: Self, f: Self) -> Self {
        if self <= 0.0 { t } else { f }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        a * b + c
    }
    #[inline(always)]
    unsafe fn fnma(a: Self, b: Self, c: Self) -> Self {
        c - a * b
    }
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        1.0 / self
    }
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    unsafe fn ln_1p_unit(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f64 {
        self
    }
}

/// e^x for four lanes (AVX2 + FMA), |x| < 700: the [`Lanes`] exponential, shared with the
/// Gauss–Hermite fast path of `mixture_kernel`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp_avx2(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    // SAFETY: this function's target features are those the AVX2 `Lanes` impl needs.
    unsafe { <std::arch::x86_64::__m256d as Lanes>::exp(x) }
}

/// Coefficients 1/i! of the degree-12 Taylor polynomial of e^r.
const TAYLOR: [f64; 13] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
];
/// 2^{j/16}, j = 0…15, correctly rounded (the AVX-512 exponential's table; a test checks
/// each against `exp2`).
const EXP2_SIXTEENTHS: [f64; 16] = [
    f64::from_bits(0x3ff0000000000000),
    f64::from_bits(0x3ff0b5586cf9890f),
    f64::from_bits(0x3ff172b83c7d517b),
    f64::from_bits(0x3ff2387a6e756238),
    f64::from_bits(0x3ff306fe0a31b715),
    f64::from_bits(0x3ff3dea64c123422),
    f64::from_bits(0x3ff4bfdad5362a27),
    f64::from_bits(0x3ff5ab07dd485429),
    f64::from_bits(0x3ff6a09e667f3bcd),
    f64::from_bits(0x3ff7a11473eb0187),
    f64::from_bits(0x3ff8ace5422aa0db),
    f64::from_bits(0x3ff9c49182a3f090),
    f64::from_bits(0x3ffae89f995ad3ad),
    f64::from_bits(0x3ffc199bdd85529c),
    f64::from_bits(0x3ffd5818dcfba487),
    f64::from_bits(0x3ffea4afa2a490da),
];
/// fdlibm's minimax coefficients Lg1…Lg7 of R(z) in ln(1 + f) = f − ½f² + s(½f² + R(s²))
/// (`e_log.c`; |R error| < 2^−58.45 for |s| ≤ 0.1716).
const LG: [f64; 7] = [
    f64::from_bits(0x3fe5555555555593), // 6.666666666666735130e-01
    f64::from_bits(0x3fd999999997fa04), // 3.999999999940941908e-01
    f64::from_bits(0x3fd2492494229359), // 2.857142874366239149e-01
    f64::from_bits(0x3fcc71c51d8e78af), // 2.222219843214978396e-01
    f64::from_bits(0x3fc7466496cb03de), // 1.818357216161805012e-01
    f64::from_bits(0x3fc39a09d078c69f), // 1.531383769920937332e-01
    f64::from_bits(0x3fc2f112df3e5244), // 1.479819860511658591e-01
];
const LN2_HI: f64 = 0.6931471803691238;
const LN2_LO: f64 = 1.9082149292705877e-10;

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m256d {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn splat(v: f64) -> Self {
        unsafe { std::arch::x86_64::_mm256_set1_pd(v) }
    }
    #[inline(always)]
    unsafe fn load(s: &[f64], i: usize) -> Self {
        debug_assert!(i + 4 <= s.len());
        unsafe { std::arch::x86_64::_mm256_loadu_pd(s.as_ptr().add(i)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_add_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_sub_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_mul_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn neg(self) -> Self {
        unsafe { std::arch::x86_64::_mm256_sub_pd(std::arch::x86_64::_mm256_setzero_pd(), self) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_max_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_min_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn select_le0(self, t: Self, f: Self) -> Self {
        use std::arch::x86_64::*;
        unsafe {
            let m = _mm256_cmp_pd::<_CMP_LE_OQ>(self, _mm256_setzero_pd());
            _mm256_blendv_pd(f, t, m)
        }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_fmadd_pd(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fnma(a: Self, b: Self, c: Self) -> Self {
        unsafe { std::arch::x86_64::_mm256_fnmadd_pd(a, b, c) }
    }
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        unsafe { std::arch::x86_64::_mm256_div_pd(std::arch::x86_64::_mm256_set1_pd(1.0), self) }
    }
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        use std::arch::x86_64::*;
        const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: round(k) lands in the low bits
        unsafe {
            let k = _mm256_round_pd(
                _mm256_mul_pd(self, _mm256_set1_pd(std::f64::consts::LOG2_E)),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            );
            let r = _mm256_fnmadd_pd(k, _mm256_set1_pd(LN2_HI), self);
            let r = _mm256_fnmadd_pd(k, _mm256_set1_pd(LN2_LO), r);
            let mut p = _mm256_set1_pd(TAYLOR[12]);
            for &ci in TAYLOR[..12].iter().rev() {
                p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(ci));
            }
            let magic = _mm256_set1_pd(MAGIC);
            let ki = _mm256_sub_epi64(
                _mm256_castpd_si256(_mm256_add_pd(k, magic)),
                _mm256_castpd_si256(magic),
            );
            let two_k = _mm256_castsi256_pd(_mm256_slli_epi64(
                _mm256_add_epi64(ki, _mm256_set1_epi64x(1023)),
                52,
            ));
            _mm256_mul_pd(p, two_k)
        }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f64 {
        let mut t = [0.0f64; 4];
        unsafe { std::arch::x86_64::_mm256_storeu_pd(t.as_mut_ptr(), self) };
        (t[0] + t[1]) + (t[2] + t[3])
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m512d {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn splat(v: f64) -> Self {
        unsafe { std::arch::x86_64::_mm512_set1_pd(v) }
    }
    #[inline(always)]
    unsafe fn load(s: &[f64], i: usize) -> Self {
        debug_assert!(i + 8 <= s.len());
        unsafe { std::arch::x86_64::_mm512_loadu_pd(s.as_ptr().add(i)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_add_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_sub_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_mul_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn neg(self) -> Self {
        unsafe { std::arch::x86_64::_mm512_sub_pd(std::arch::x86_64::_mm512_setzero_pd(), self) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_max_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_min_pd(self, o) }
    }
    #[inline(always)]
    unsafe fn select_le0(self, t: Self, f: Self) -> Self {
        use std::arch::x86_64::*;
        unsafe {
            let m = _mm512_cmp_pd_mask::<_CMP_LE_OQ>(self, _mm512_setzero_pd());
            _mm512_mask_blend_pd(m, f, t)
        }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_fmadd_pd(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fnma(a: Self, b: Self, c: Self) -> Self {
        unsafe { std::arch::x86_64::_mm512_fnmadd_pd(a, b, c) }
    }
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        use std::arch::x86_64::*;
        unsafe {
            // 14-bit estimate, two Newton steps r ← r + r(1 − a·r): error 2^−56 before rounding
            let one = _mm512_set1_pd(1.0);
            let mut r = _mm512_rcp14_pd(self);
            r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(self, r, one), r);
            _mm512_fmadd_pd(r, _mm512_fnmadd_pd(self, r, one), r)
        }
    }
    /// e^x = 2^m·2^{j/16}·e^r with x = (16m + j)·ln2/16 + r, |r| ≤ ln2/32: 16k = round(16x/ln2)
    /// by the 1.5·2⁵² rounding trick (its low four bits index the table of 2^{j/16} through
    /// a two-register permute, no memory gather), r by a Cody–Waite split, e^r − 1 by its
    /// degree-7 Taylor polynomial (truncation < 2e-18), 2^m by `scalef` (which floors 16k/16).
    /// Nine dependent operations instead of the degree-12 polynomial's fourteen.
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        use std::arch::x86_64::*;
        unsafe {
            let magic = _mm512_set1_pd(6755399441055744.0); // 1.5·2⁵²
            let y = _mm512_fmadd_pd(self, _mm512_set1_pd(16.0 * std::f64::consts::LOG2_E), magic);
            let k = _mm512_sub_pd(y, magic);
            let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_HI / 16.0), self);
            let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_LO / 16.0), r);
            let t = _mm512_permutex2var_pd(
                _mm512_loadu_pd(EXP2_SIXTEENTHS.as_ptr()),
                _mm512_castpd_si512(y),
                _mm512_loadu_pd(EXP2_SIXTEENTHS.as_ptr().add(8)),
            );
            // e^r − 1 = r·(1 + r/2 + r²/6 + … + r⁶/7!)
            let mut p = _mm512_set1_pd(TAYLOR[7]);
            for &ci in TAYLOR[1..7].iter().rev() {
                p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(ci));
            }
            let q = _mm512_mul_pd(p, r);
            _mm512_scalef_pd(
                _mm512_fmadd_pd(t, q, t),
                _mm512_mul_pd(k, _mm512_set1_pd(1.0 / 16.0)),
            )
        }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f64 {
        unsafe { std::arch::x86_64::_mm512_reduce_add_pd(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector exponentials and reciprocals agree with libm to a few ulp on the clamped range.
    #[test]
    fn lanes_match_libm() {
        let xs: Vec<f64> = (0..=1600).map(|i| -700.0 + 0.875 * i as f64).collect();
        let ys: Vec<f64> = (0..=1600)
            .map(|i| 1.0 + 1e-3 * i as f64 * i as f64)
            .collect();
        let check = |e: &[f64], r: &[f64], name: &str| {
            for (i, (&v, &x)) in e.iter().zip(&xs).enumerate() {
                let want = x.exp();
                assert!(
                    (v - want).abs() <= 4.5e-16 * want,
                    "{name} exp({x}): {v} vs {want}"
                );
                let want = 1.0 / ys[i];
                assert!((r[i] - want).abs() <= 2.3e-16 * want, "{name} 1/{}", ys[i]);
            }
        };
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__m256d, __m512d};
            fn run<V: Lanes>(xs: &[f64], ys: &[f64]) -> (Vec<f64>, Vec<f64>) {
                let (mut e, mut r) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
                let mut i = 0;
                while i + V::N <= xs.len() {
                    // SAFETY: only called below when the CPU has V's features; i + N ≤ len.
                    unsafe {
                        let (a, b) = (V::load(xs, i).exp(), V::load(ys, i).recip());
                        for l in 0..V::N {
                            let mut one = vec![0.0; V::N];
                            one[l] = 1.0;
                            e[i + l] = a.mul(V::load(&one, 0)).hsum();
                            r[i + l] = b.mul(V::load(&one, 0)).hsum();
                        }
                    }
                    i += V::N;
                }
                (e, r)
            }
            let n = xs.len() / 8 * 8;
            if std::arch::is_x86_feature_detected!("avx512f") {
                #[target_feature(enable = "avx512f")]
                fn go(xs: &[f64], ys: &[f64]) -> (Vec<f64>, Vec<f64>) {
                    run::<__m512d>(xs, ys)
                }
                // SAFETY: AVX-512F is available (checked above).
                let (e, r) = unsafe { go(&xs[..n], &ys[..n]) };
                check(&e, &r, "avx512");
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                #[target_feature(enable = "avx2,fma")]
                fn go(xs: &[f64], ys: &[f64]) -> (Vec<f64>, Vec<f64>) {
                    run::<__m256d>(xs, ys)
                }
                // SAFETY: AVX2 and FMA are available (checked above).
                let (e, r) = unsafe { go(&xs[..n], &ys[..n]) };
                check(&e, &r, "avx2");
            }
        }
    }

    /// The lanes' ln(1 + x) on [0, 1] agrees with libm's ln_1p to 2 ulp, at both ends of the
    /// range split (√2 − 1), for tiny x (ln(1 + x) = x) and at 1.
    #[test]
    fn ln_1p_matches_libm() {
        let mut xs: Vec<f64> = (0..=4000).map(|i| i as f64 / 4000.0).collect();
        let s = std::f64::consts::SQRT_2 - 1.0;
        xs.extend([1e-300, 1e-17, 1e-9, s, s.next_up(), s.next_down(), 0.5, 1.0]);
        xs.extend([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let n = xs.len() / 8 * 8;
        let check = |got: &[f64], name: &str| {
            for (&v, &x) in got.iter().zip(&xs) {
                let want = x.ln_1p();
                assert!(
                    (v - want).abs() <= 4.5e-16 * want,
                    "{name} ln_1p({x:e}): {v:e} vs {want:e}"
                );
            }
        };
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__m256d, __m512d};
            fn run<V: Lanes>(xs: &[f64]) -> Vec<f64> {
                let mut out = vec![0.0; xs.len()];
                let mut i = 0;
                while i + V::N <= xs.len() {
                    // SAFETY: only called below when the CPU has V's features; i + N ≤ len.
                    unsafe {
                        let a = V::load(xs, i).ln_1p_unit();
                        for l in 0..V::N {
                            let mut one = vec![0.0; V::N];
                            one[l] = 1.0;
                            out[i + l] = a.mul(V::load(&one, 0)).hsum();
                        }
                    }
                    i += V::N;
                }
                out
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                #[target_feature(enable = "avx512f")]
                fn go(xs: &[f64]) -> Vec<f64> {
                    run::<__m512d>(xs)
                }
                // SAFETY: AVX-512F is available (checked above).
                check(&unsafe { go(&xs[..n]) }, "avx512");
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                #[target_feature(enable = "avx2,fma")]
                fn go(xs: &[f64]) -> Vec<f64> {
                    run::<__m256d>(xs)
                }
                // SAFETY: AVX2 and FMA are available (checked above).
                check(&unsafe { go(&xs[..n]) }, "avx2");
            }
        }
        let _ = (n, &check);
    }

    /// The exponential's table is 2^{j/16} to within half an ulp of libm's exp2 (which is
    /// itself within an ulp), and LN2_HI has the trailing zeros that make k·LN2_HI/16 exact.
    #[test]
    fn exp_table_is_two_to_the_sixteenths() {
        for (j, &t) in EXP2_SIXTEENTHS.iter().enumerate() {
            let want = (j as f64 / 16.0).exp2();
            assert!(
                (t - want).abs() <= 2.3e-16 * want,
                "2^({j}/16): {t} vs {want}"
            );
        }
        assert_eq!(LN2_HI.to_bits() & 0x1f_ffff, 0, "LN2_HI low 21 bits");
        assert!((LN2_HI + LN2_LO - std::f64::consts::LN_2).abs() < 1e-20);
    }

    /// The three code paths (AVX-512, AVX2, scalar) give the same sums to rounding.
    #[test]
    fn all_lane_widths_agree() {
        let gl = GlTable::new(
            gauss_quad::legendre::GaussLegendre::new(
                std::num::NonZeroUsize::MIN.saturating_add(11),
            )
            .as_node_weight_pairs(),
        );
        for mu in [[0.7, -2.3], [-3.0, -2.9], [1.0, 9.0], [-40.0, 45.0]] {
            let target = [-1.5, 2.0];
            let model = crate::quadrature::Mixture2 {
                mu,
                sigma: 1.0,
                w: 0.3,
            };
            let tm = crate::quadrature::Mixture2 {
                mu: target,
                ..model
            };
            let g = Grading::of(&model);
            let mut s = PanelScratch::default();
            let panels = s.build_union(1.0, 10.0, &[model, tm], &model, &g).to_vec();
            let k = Consts {
                mu1: mu[0],
                mu2: mu[1],
                t1: target[0],
                t2: target[1],
                lw1: 0.3f64.ln(),
                lw2: 0.7f64.ln(),
                c: 0.5,
                delta: mu[1] - mu[0],
                c0: 0.7f64.ln() - 0.3f64.ln(),
                norm: 0.39,
            };
            let (x, wt) = (&panels, &gl);
            // SAFETY: scalar lanes.
            let s0 = unsafe { sums::<f64>(x, wt, &k) };
            let mut paths = vec![dispatch(x, wt, &k)];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: AVX2 and FMA are available (checked above).
                    paths.push(unsafe { sums_avx2(x, wt, &k) });
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is available (checked above).
                    paths.push(unsafe { sums_avx512(x, wt, &k) });
                }
            }
            for v in paths {
                let fs = s0[..3].iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for i in 0..3 {
                    assert!((v[i] - s0[i]).abs() <= 1e-14 * fs, "{mu:?} F {v:?} {s0:?}");
                }
                let gs = s0[3..].iter().fold(1e-300f64, |m, v| m.max(v.abs()));
                for i in 3..5 {
                    assert!((v[i] - s0[i]).abs() <= 1e-14 * gs, "{mu:?} g {v:?} {s0:?}");
                }
            }
        }
    }
}
