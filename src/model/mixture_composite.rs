//! The composite rule's node sums for the mixture's flow kernel, fused and vectorized.
//!
//! One right-hand side under [`crate::quadrature::Scheme::Composite`] needs two rules: the
//! Fisher rule (density p(·|θ), panels graded at θ's crossover) and the gradient rule (density
//! the target p(·|θ*), graded at θ's crossover too). Per rule, the panels are built into
//! reusable per-thread buffers ([`crate::quadrature::PanelScratch`]), the nodes and
//! density-free weights Wᵢ = ½(b − a)·ωⱼ/(σ√2π) are laid out flat, and one pass over them
//! evaluates and accumulates everything in SIMD lanes (AVX-512 or AVX2 + FMA, detected at run
//! time; scalar otherwise), with no allocation once the buffers are warm:
//!
//! * Fisher node (two exponentials): A = w·e^{−d₁²/2σ²}, B = (1−w)·e^{−d₂²/2σ²}, dₖ = x − μₖ;
//!   p·rₖrₗ·dₖdₗ = W·(A dₖ)(B dₗ)/(A + B) with the pair (A, B) standing for (wN₁, (1−w)N₂), so
//!   the sums are Σ K·q₁², Σ K·q₁q₂, Σ K·q₂² with K = W/(A + B), q₁ = A d₁, q₂ = B d₂.
//! * Gradient node (three exponentials): the target density W·(A* + B*) and the
//!   responsibilities r₁ = 1/(1 + u), r₂ = u·r₁ with u = e^{b−a}, b − a = Δ(2x − μ₁ − μ₂)/(2σ²)
//!   + ln((1−w)/w) linear in x; the sums are Σ W p*·r₁d₁ and Σ W p*·r₂d₂.
//!
//! Exponents are clamped as in the scalar code (Gaussians to ≥ −700, so a node where both
//! component terms underflow still has A + B > 0; u's exponent to [−700, 700]). The exponential
//! is e^x = 2^k·e^r, k = round(x/ln 2), r by a Cody–Waite split, e^r by its degree-12 Taylor
//! polynomial (|r| ≤ ln2/2, truncation < 2e-16 relative); 1/y on AVX-512 is the 14-bit
//! estimate refined by two Newton steps (error ≤ 2^−56 before rounding), elsewhere a division.

use crate::quadrature::PanelScratch;
use std::cell::RefCell;
use std::f64::consts::PI;

/// Gauss–Legendre nodes and weights on [−1, 1] for the composite panels.
#[derive(Clone, Debug)]
pub(crate) struct GlTable {
    z: Vec<f64>,
    w: Vec<f64>,
}

impl GlTable {
    pub(crate) fn new(pairs: &[(f64, f64)]) -> GlTable {
        GlTable {
            z: pairs.iter().map(|p| p.0).collect(),
            w: pairs.iter().map(|p| p.1).collect(),
        }
    }
}

/// Everything a rhs evaluation needs besides θ.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub mu: [f64; 2],
    pub target: [f64; 2],
    pub sigma: f64,
    pub w: f64,
}

/// Per-thread buffers: the panels of both rules and the flat nodes/weights.
#[derive(Default)]
struct Workspace {
    fisher: PanelScratch,
    grad: PanelScratch,
    x: Vec<f64>,
    wt: Vec<f64>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Widest lane count of the kernels (the flat arrays are padded to a multiple of it).
const PAD: usize = 8;

/// Lay out the nodes mid + half·zⱼ and weights half·ωⱼ·norm of `panels` flat, padded with
/// zero-weight copies of the last node to a multiple of [`PAD`].
fn layout(panels: &[(f64, f64)], gl: &GlTable, norm: f64, x: &mut Vec<f64>, wt: &mut Vec<f64>) {
    let n = gl.z.len();
    let len = (panels.len() * n).div_ceil(PAD) * PAD;
    x.resize(len, 0.0);
    wt.resize(len, 0.0);
    for ((&(a, b), xc), wc) in panels
        .iter()
        .zip(x.chunks_exact_mut(n.max(1)))
        .zip(wt.chunks_exact_mut(n.max(1)))
    {
        let (half, mid) = (0.5 * (b - a), 0.5 * (a + b));
        for (((xi, wi), &z), &om) in xc.iter_mut().zip(wc.iter_mut()).zip(&gl.z).zip(&gl.w) {
            *xi = mid + half * z;
            *wi = half * om * norm;
        }
    }
    let used = panels.len() * n;
    let last = if used > 0 { x[used - 1] } else { 0.0 };
    x[used..].fill(last);
    wt[used..].fill(0.0);
}

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

fn eval(
    ws: &mut Workspace,
    gl: &GlTable,
    max_panel: f64,
    half_width: f64,
    p: &Params,
) -> ([f64; 2], [f64; 3]) {
    let model = crate::quadrature::Mixture2 {
        mu: p.mu,
        sigma: p.sigma,
        w: p.w,
    };
    let target = crate::quadrature::Mixture2 {
        mu: p.target,
        ..model
    };
    let norm = 1.0 / (p.sigma * (2.0 * PI).sqrt());
    let inv_s2 = 1.0 / (p.sigma * p.sigma);
    let k = Consts {
        mu1: p.mu[0],
        mu2: p.mu[1],
        t1: p.target[0],
        t2: p.target[1],
        lw1: p.w.ln(),
        lw2: (1.0 - p.w).ln(),
        c: 0.5 * inv_s2,
        delta: p.mu[1] - p.mu[0],
        c0: (1.0 - p.w).ln() - p.w.ln(),
    };
    let Workspace {
        fisher,
        grad,
        x,
        wt,
    } = ws;
    layout(
        fisher.build(max_panel, half_width, &model, &model),
        gl,
        norm,
        x,
        wt,
    );
    let f = dispatch_fisher(x, wt, &k);
    layout(
        grad.build(max_panel, half_width, &target, &model),
        gl,
        norm,
        x,
        wt,
    );
    let g = dispatch_grad(x, wt, &k);
    let i4 = inv_s2 * inv_s2;
    (
        [-g[0] * inv_s2, -g[1] * inv_s2],
        [f[0] * i4, f[1] * i4, f[2] * i4],
    )
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
}

fn dispatch_fisher(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 3] {
    #[cfg(target_arch = "x86_64")]
    {
        if simd_level() == 2 {
            // SAFETY: the CPU supports AVX-512F (checked by `simd_level`).
            return unsafe { fisher_avx512(x, wt, k) };
        }
        if simd_level() == 1 {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `simd_level`).
            return unsafe { fisher_avx2(x, wt, k) };
        }
    }
    // SAFETY: the scalar lanes use no CPU features.
    unsafe { fisher_sums::<f64>(x, wt, k) }
}

fn dispatch_grad(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        if simd_level() == 2 {
            // SAFETY: the CPU supports AVX-512F (checked by `simd_level`).
            return unsafe { grad_avx512(x, wt, k) };
        }
        if simd_level() == 1 {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `simd_level`).
            return unsafe { grad_avx2(x, wt, k) };
        }
    }
    // SAFETY: the scalar lanes use no CPU features.
    unsafe { grad_sums::<f64>(x, wt, k) }
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
fn fisher_avx512(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 3] {
    // SAFETY: AVX-512F is enabled for this function.
    unsafe { fisher_sums::<std::arch::x86_64::__m512d>(x, wt, k) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fisher_avx2(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 3] {
    // SAFETY: AVX2 and FMA are enabled for this function.
    unsafe { fisher_sums::<std::arch::x86_64::__m256d>(x, wt, k) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn grad_avx512(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 2] {
    // SAFETY: AVX-512F is enabled for this function.
    unsafe { grad_sums::<std::arch::x86_64::__m512d>(x, wt, k) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn grad_avx2(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 2] {
    // SAFETY: AVX2 and FMA are enabled for this function.
    unsafe { grad_sums::<std::arch::x86_64::__m256d>(x, wt, k) }
}

/// Σ K·(q₁², q₁q₂, q₂²) over the nodes (see the module docs); `x.len()` a multiple of [`PAD`].
///
/// # Safety
/// `V`'s CPU features must be available (the callers are `target_feature` functions).
#[inline(always)]
unsafe fn fisher_sums<V: Lanes>(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 3] {
    // SAFETY: the caller guarantees V's features; loads stay within the slices (i + N ≤ len,
    // len a multiple of PAD, N divides PAD).
    unsafe {
        let (mu1, mu2) = (V::splat(k.mu1), V::splat(k.mu2));
        let (lw1, lw2) = (V::splat(k.lw1), V::splat(k.lw2));
        let (c, floor) = (V::splat(k.c), V::splat(-700.0));
        let mut acc = [V::splat(0.0); 3];
        let n = x.len().min(wt.len());
        let mut i = 0;
        while i + V::N <= n {
            let xv = V::load(x, i);
            let w = V::load(wt, i);
            let d1 = xv.sub(mu1);
            let d2 = xv.sub(mu2);
            let ea = V::fnma(c.mul(d1), d1, lw1).max(floor).exp();
            let eb = V::fnma(c.mul(d2), d2, lw2).max(floor).exp();
            let kk = w.mul(ea.add(eb).recip());
            let q1 = ea.mul(d1);
            let q2 = eb.mul(d2);
            let kq2 = kk.mul(q2);
            acc[0] = V::fma(kk.mul(q1), q1, acc[0]);
            acc[1] = V::fma(q1, kq2, acc[1]);
            acc[2] = V::fma(q2, kq2, acc[2]);
            i += V::N;
        }
        [acc[0].hsum(), acc[1].hsum(), acc[2].hsum()]
    }
}

/// Σ W p*·(r₁d₁, r₂d₂) over the nodes (see the module docs).
///
/// # Safety
/// As [`fisher_sums`].
#[inline(always)]
unsafe fn grad_sums<V: Lanes>(x: &[f64], wt: &[f64], k: &Consts) -> [f64; 2] {
    // SAFETY: as in `fisher_sums`.
    unsafe {
        let (mu1, mu2) = (V::splat(k.mu1), V::splat(k.mu2));
        let (t1, t2) = (V::splat(k.t1), V::splat(k.t2));
        let (lw1, lw2) = (V::splat(k.lw1), V::splat(k.lw2));
        let (c, floor, ceil) = (V::splat(k.c), V::splat(-700.0), V::splat(700.0));
        // b − a = Δ(2x − μ₁ − μ₂)/(2σ²) + c₀
        let (dc, two, c0) = (V::splat(k.delta * k.c), V::splat(2.0), V::splat(k.c0));
        let one = V::splat(1.0);
        let mut acc = [V::splat(0.0); 2];
        let n = x.len().min(wt.len());
        let mut i = 0;
        while i + V::N <= n {
            let xv = V::load(x, i);
            let w = V::load(wt, i);
            let e1 = xv.sub(t1);
            let e2 = xv.sub(t2);
            let pa = V::fnma(c.mul(e1), e1, lw1).max(floor).exp();
            let pb = V::fnma(c.mul(e2), e2, lw2).max(floor).exp();
            let lin = V::fma(dc, V::fma(two, xv, mu1.add(mu2).neg()), c0);
            let u = lin.max(floor).min(ceil).exp();
            let kk = w.mul(pa.add(pb));
            let r1 = one.add(u).recip();
            let kr1 = kk.mul(r1);
            acc[0] = V::fma(kr1, xv.sub(mu1), acc[0]);
            acc[1] = V::fma(kr1.mul(u), xv.sub(mu2), acc[1]);
            i += V::N;
        }
        [acc[0].hsum(), acc[1].hsum()]
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
    /// a·b + c.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// c − a·b.
    unsafe fn fnma(a: Self, b: Self, c: Self) -> Self;
    /// 1/self.
    unsafe fn recip(self) -> Self;
    /// e^self for self ∈ [−700, 700].
    unsafe fn exp(self) -> Self;
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
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        use std::arch::x86_64::*;
        unsafe {
            let k = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_pd(self, _mm512_set1_pd(std::f64::consts::LOG2_E)),
            );
            let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_HI), self);
            let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_LO), r);
            let mut p = _mm512_set1_pd(TAYLOR[12]);
            for &ci in TAYLOR[..12].iter().rev() {
                p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(ci));
            }
            _mm512_scalef_pd(p, k)
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
            let p = Params {
                mu,
                target: [-1.5, 2.0],
                sigma: 1.0,
                w: 0.3,
            };
            let model = crate::quadrature::Mixture2 {
                mu,
                sigma: 1.0,
                w: 0.3,
            };
            let mut s = PanelScratch::default();
            let (mut x, mut wt) = (Vec::new(), Vec::new());
            layout(
                s.build(1.0, 10.0, &model, &model),
                &gl,
                0.39,
                &mut x,
                &mut wt,
            );
            let k = Consts {
                mu1: mu[0],
                mu2: mu[1],
                t1: p.target[0],
                t2: p.target[1],
                lw1: 0.3f64.ln(),
                lw2: 0.7f64.ln(),
                c: 0.5,
                delta: mu[1] - mu[0],
                c0: 0.7f64.ln() - 0.3f64.ln(),
            };
            // SAFETY: scalar lanes.
            let (f0, g0) = unsafe {
                (
                    fisher_sums::<f64>(&x, &wt, &k),
                    grad_sums::<f64>(&x, &wt, &k),
                )
            };
            let mut paths = vec![(dispatch_fisher(&x, &wt, &k), dispatch_grad(&x, &wt, &k))];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: AVX2 and FMA are available (checked above).
                    paths.push(unsafe { (fisher_avx2(&x, &wt, &k), grad_avx2(&x, &wt, &k)) });
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is available (checked above).
                    paths.push(unsafe { (fisher_avx512(&x, &wt, &k), grad_avx512(&x, &wt, &k)) });
                }
            }
            for (f, g) in paths {
                let fs = f0.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for i in 0..3 {
                    assert!((f[i] - f0[i]).abs() <= 1e-14 * fs, "{mu:?} F {f:?} {f0:?}");
                }
                let gs = g0.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
                for i in 0..2 {
                    assert!((g[i] - g0[i]).abs() <= 1e-14 * gs, "{mu:?} g {g:?} {g0:?}");
                }
            }
        }
    }
}
