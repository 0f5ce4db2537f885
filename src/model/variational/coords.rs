//! Charts of the Gaussian family q = N(m, S) over z ∈ Rᵈ and its exact Fisher metric.
//!
//! The base coordinates are θ = (m, vech S): the mean and the lower triangle of S (pairs
//! (a, b), a ≥ b, in row order), where the coordinate s_ab moves S along the symmetric basis
//! matrix E_ab (ones at (a, b) and (b, a)). A chart φ gives θ(φ) and J = ∂θ/∂φ in closed form:
//!
//! | chart | φ (full) | φ (mean-field) | θ(φ) |
//! |---|---|---|---|
//! | `mean-cov` | (m, vech S) | (m, diag S) | identity |
//! | `mean-cholesky` | (m, vech L), L_ii > 0 | (m, sd) | S = LLᵀ, ∂S/∂L_ab = e_a(Le_b)ᵀ + (Le_b)e_aᵀ |
//! | `natural` | (h = Λm, vech(−½Λ)), Λ = S⁻¹ | (m_i/s_ii, −1/(2s_ii)) | S = Λ⁻¹, m = Sh; ∂S/∂η_ab = 2SE_abS, ∂m/∂η_ab = 2SE_ab m, ∂m/∂h = S |
//!
//! Fisher metric in the base: I_mm = S⁻¹, I_(ab)(ce) = ½ tr(S⁻¹E_abS⁻¹E_ce), no cross terms;
//! in a chart I_φ = Jᵀ I_θ J (exact, no quadrature).

use nalgebra::{DMatrix, DVector};

/// The chart of the variational parameters φ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariationalChart {
    /// (m, S).
    MeanCov,
    /// (m, L) with S = LLᵀ, L lower triangular with positive diagonal.
    MeanCholesky,
    /// Natural parameters (Λm, −½Λ), Λ = S⁻¹.
    Natural,
}

impl VariationalChart {
    /// All three charts.
    pub const ALL: [VariationalChart; 3] = [
        VariationalChart::MeanCov,
        VariationalChart::MeanCholesky,
        VariationalChart::Natural,
    ];

    /// The model-file name.
    pub fn name(self) -> &'static str {
        match self {
            VariationalChart::MeanCov => "mean-cov",
            VariationalChart::MeanCholesky => "mean-cholesky",
            VariationalChart::Natural => "natural",
        }
    }

    /// Parse a model-file name.
    pub fn parse(s: &str) -> Option<VariationalChart> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Full covariance or a diagonal one (mean-field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covariance {
    Full,
    MeanField,
}

impl Covariance {
    /// The model-file name.
    pub fn name(self) -> &'static str {
        match self {
            Covariance::Full => "full",
            Covariance::MeanField => "mean-field",
        }
    }
}

/// The lower-triangle pairs (a, b), a ≥ b, in row order.
pub fn full_pairs(d: usize) -> Vec<(usize, usize)> {
    (0..d).flat_map(|a| (0..=a).map(move |b| (a, b))).collect()
}

/// The symmetric basis matrix E_ab.
pub fn basis(d: usize, (a, b): (usize, usize)) -> DMatrix<f64> {
    let mut e = DMatrix::zeros(d, d);
    e[(a, b)] = 1.0;
    e[(b, a)] = 1.0;
    e
}

/// tr(P E_ab P E_ce) for symmetric P, without forming the matrices.
fn trace_pep(p: &DMatrix<f64>, (a, b): (usize, usize), (c, e): (usize, usize)) -> f64 {
    let ent = |i: usize, j: usize| -> Vec<(usize, usize)> {
        if i == j {
            vec![(i, i)]
        } else {
            vec![(i, j), (j, i)]
        }
    };
    let mut s = 0.0;
    // tr(P e_i e_jᵀ P e_k e_lᵀ) = P_jk P_li.
    for (i, j) in ent(a, b) {
        for (k, l) in ent(c, e) {
            s += p[(j, k)] * p[(l, i)];
        }
    }
    s
}

/// The exact Fisher matrix of N(m, S) in the base coordinates (m, vech S), from P = S⁻¹.
pub fn base_fisher(p: &DMatrix<f64>) -> DMatrix<f64> {
    let d = p.nrows();
    let pairs = full_pairs(d);
    let n = d + pairs.len();
    let mut f = DMatrix::zeros(n, n);
    f.view_mut((0, 0), (d, d)).copy_from(p);
    for (r, &x) in pairs.iter().enumerate() {
        for (c, &y) in pairs.iter().enumerate().skip(r) {
            let v = 0.5 * trace_pep(p, x, y);
            f[(d + r, d + c)] = v;
            f[(d + c, d + r)] = v;
        }
    }
    f
}

/// A chart of N(m, S) over Rᵈ with a covariance form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coords {
    pub d: usize,
    pub chart: VariationalChart,
    pub cov: Covariance,
}

impl Coords {
    /// The covariance-part pairs of φ.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        match self.cov {
            Covariance::Full => full_pairs(self.d),
            Covariance::MeanField => (0..self.d).map(|i| (i, i)).collect(),
        }
    }

    /// Number of parameters n = d + d(d+1)/2 (full) or 2d (mean-field).
    pub fn dim(&self) -> usize {
        self.d + self.pairs().len()
    }

    /// Number of base coordinates d + d(d+1)/2.
    pub fn base_dim(&self) -> usize {
        self.d + self.d * (self.d + 1) / 2
    }

    /// Parameter names, e.g. `m1`, `S21`, `L11`, `h1`, `eta21`.
    pub fn param_names(&self) -> Vec<String> {
        let (mn, sn) = match self.chart {
            VariationalChart::MeanCov => ("m", "S"),
            VariationalChart::MeanCholesky => ("m", "L"),
            VariationalChart::Natural => ("h", "eta"),
        };
        let mut v: Vec<String> = (1..=self.d).map(|i| format!("{mn}{i}")).collect();
        v.extend(
            self.pairs()
                .iter()
                .map(|(a, b)| format!("{sn}{}{}", a + 1, b + 1)),
        );
        v
    }

    /// The symmetric matrix with the covariance-part values of φ at its pairs.
    fn sym_of(&self, phi: &[f64]) -> DMatrix<f64> {
        let d = self.d;
        let mut s = DMatrix::zeros(d, d);
        for (k, &(a, b)) in self.pairs().iter().enumerate() {
            s[(a, b)] = phi[d + k];
            s[(b, a)] = phi[d + k];
        }
        s
    }

    /// (m, S) of φ; `None` outside the chart's domain (S not positive definite, L_ii ≤ 0,
    /// a non-finite value).
    pub fn mean_cov(&self, phi: &[f64]) -> Option<(DVector<f64>, DMatrix<f64>)> {
        let d = self.d;
        if phi.len() != self.dim() || phi.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let head = DVector::from_column_slice(&phi[..d]);
        let (m, s) = match self.chart {
            VariationalChart::MeanCov => (head, self.sym_of(phi)),
            VariationalChart::MeanCholesky => {
                let l = self.lower_of(phi);
                if (0..d).any(|i| l[(i, i)] <= 0.0) {
                    return None;
                }
                (head, &l * l.transpose())
            }
            VariationalChart::Natural => {
                let lam = self.sym_of(phi) * -2.0;
                let s = lam.cholesky()?.inverse();
                let s = (&s + s.transpose()) * 0.5;
                (&s * head, s)
            }
        };
        let s_ok = s.clone().cholesky().is_some();
        (s_ok && m.iter().chain(s.iter()).all(|v| v.is_finite())).then_some((m, s))
    }

    /// L (lower triangular) of the Cholesky chart's φ.
    fn lower_of(&self, phi: &[f64]) -> DMatrix<f64> {
        let d = self.d;
        let mut l = DMatrix::zeros(d, d);
        for (k, &(a, b)) in self.pairs().iter().enumerate() {
            l[(a, b)] = phi[d + k];
        }
        l
    }

    /// φ of (m, S) (mean-field: S's diagonal); `None` if S is not positive definite.
    pub fn from_mean_cov(&self, m: &DVector<f64>, s: &DMatrix<f64>) -> Option<Vec<f64>> {
        let d = self.d;
        let s = match self.cov {
            Covariance::Full => s.clone(),
            Covariance::MeanField => DMatrix::from_diagonal(&s.diagonal()),
        };
        let chol = s.clone().cholesky()?;
        let mut phi: Vec<f64> = Vec::with_capacity(self.dim());
        match self.chart {
            VariationalChart::MeanCov => {
                phi.extend(m.iter());
                phi.extend(self.pairs().iter().map(|&p| s[p]));
            }
            VariationalChart::MeanCholesky => {
                let l = chol.l();
                phi.extend(m.iter());
                phi.extend(self.pairs().iter().map(|&p| l[p]));
            }
            VariationalChart::Natural => {
                let lam = chol.inverse();
                phi.extend((&lam * m).iter());
                phi.extend(self.pairs().iter().map(|&p| -0.5 * lam[p]));
            }
        }
        debug_assert_eq!(phi.len(), d + self.pairs().len());
        Some(phi)
    }

    /// J = ∂θ/∂φ (base_dim × dim) at φ, θ = (m, vech S); `None` outside the domain.
    pub fn jacobian(&self, phi: &[f64]) -> Option<DMatrix<f64>> {
        let d = self.d;
        let (m, s) = self.mean_cov(phi)?;
        let base = full_pairs(d);
        let row = |p: (usize, usize)| d + base.iter().position(|&q| q == p).unwrap_or(0);
        let pairs = self.pairs();
        let mut j = DMatrix::zeros(self.base_dim(), self.dim());
        match self.chart {
            VariationalChart::MeanCov => {
                for i in 0..d {
                    j[(i, i)] = 1.0;
                }
                for (k, &p) in pairs.iter().enumerate() {
                    j[(row(p), d + k)] = 1.0;
                }
            }
            VariationalChart::MeanCholesky => {
                for i in 0..d {
                    j[(i, i)] = 1.0;
                }
                let l = self.lower_of(phi);
                for (k, &(a, b)) in pairs.iter().enumerate() {
                    // ∂S/∂L_ab = e_a (L e_b)ᵀ + (L e_b) e_aᵀ.
                    let mut ds = DMatrix::zeros(d, d);
                    for i in 0..d {
                        ds[(a, i)] += l[(i, b)];
                        ds[(i, a)] += l[(i, b)];
                    }
                    for (r, &q) in base.iter().enumerate() {
                        j[(d + r, d + k)] = ds[q];
                    }
                }
            }
            VariationalChart::Natural => {
                j.view_mut((0, 0), (d, d)).copy_from(&s);
                for (k, &p) in pairs.iter().enumerate() {
                    let e = basis(d, p);
                    let ds = &s * &e * &s * 2.0;
                    let dm = &s * &e * &m * 2.0;
                    for i in 0..d {
                        j[(i, d + k)] = dm[i];
                    }
                    for (r, &q) in base.iter().enumerate() {
                        j[(d + r, d + k)] = ds[q];
                    }
                }
            }
        }
        Some(j)
    }

    /// The exact Fisher matrix Jᵀ I_θ J at φ (NaN outside the domain).
    pub fn fisher(&self, phi: &[f64]) -> DMatrix<f64> {
        let n = self.dim();
        match (self.mean_cov(phi), self.jacobian(phi)) {
            (Some((_, s)), Some(j)) => match s.cholesky() {
                Some(c) => {
                    let p = c.inverse();
                    j.transpose() * base_fisher(&p) * j
                }
                None => DMatrix::from_element(n, n, f64::NAN),
            },
            _ => DMatrix::from_element(n, n, f64::NAN),
        }
    }
}

/// KL[N(m₁, S₁) ‖ N(m₂, S₂)] in closed form (`None` if a covariance is not positive definite).
pub fn kl_gauss(
    m1: &DVector<f64>,
    s1: &DMatrix<f64>,
    m2: &DVector<f64>,
    s2: &DMatrix<f64>,
) -> Option<f64> {
    let d = m1.len() as f64;
    let c1 = s1.clone().cholesky()?;
    let c2 = s2.clone().cholesky()?;
    let p2 = c2.inverse();
    let dm = m2 - m1;
    let logdet = |c: &nalgebra::Cholesky<f64, nalgebra::Dyn>| {
        2.0 * c.l_dirty().diagonal().iter().map(|v| v.ln()).sum::<f64>()
    };
    Some(0.5 * ((&p2 * s1).trace() + dm.dot(&(&p2 * &dm)) - d + logdet(&c2) - logdet(&c1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_point(d: usize) -> (DVector<f64>, DMatrix<f64>) {
        let m = DVector::from_fn(d, |i, _| 0.3 * i as f64 - 0.2);
        let a = DMatrix::from_fn(d, d, |i, j| ((i * 3 + j * 5) % 7) as f64 * 0.1 - 0.2);
        let s = &a * a.transpose() + DMatrix::identity(d, d) * 0.5;
        (m, s)
    }

    #[test]
    fn charts_round_trip_and_jacobians_match_finite_differences() {
        for d in [1, 2, 3] {
            for cov in [Covariance::Full, Covariance::MeanField] {
                for chart in VariationalChart::ALL {
                    let c = Coords { d, chart, cov };
                    let (m, s) = sample_point(d);
                    let phi = c.from_mean_cov(&m, &s).expect("pd");
                    let (m2, s2) = c.mean_cov(&phi).expect("in domain");
                    let s_used = if cov == Covariance::Full {
                        s.clone()
                    } else {
                        DMatrix::from_diagonal(&s.diagonal())
                    };
                    assert!((&m2 - &m).amax() < 1e-12 && (&s2 - &s_used).amax() < 1e-12);
                    let j = c.jacobian(&phi).expect("in domain");
                    let base = |p: &[f64]| {
                        let (m, s) = c.mean_cov(p).expect("in domain");
                        let mut v: Vec<f64> = m.iter().copied().collect();
                        v.extend(full_pairs(d).iter().map(|&q| s[q]));
                        v
                    };
                    for k in 0..c.dim() {
                        let h = 1e-6;
                        let (mut a, mut b) = (phi.clone(), phi.clone());
                        a[k] += h;
                        b[k] -= h;
                        let (fa, fb) = (base(&a), base(&b));
                        for r in 0..c.base_dim() {
                            let fd = (fa[r] - fb[r]) / (2.0 * h);
                            assert!((fd - j[(r, k)]).abs() < 1e-7, "{chart:?} {cov:?} d={d}");
                        }
                    }
                }
            }
        }
    }

    /// The Fisher matrix is the Hessian of φ' ↦ KL[q_φ ‖ q_φ'] at φ' = φ (finite differences
    /// of the closed-form KL).
    #[test]
    fn fisher_is_the_hessian_of_the_kl() {
        for chart in VariationalChart::ALL {
            let c = Coords {
                d: 2,
                chart,
                cov: Covariance::Full,
            };
            let (m, s) = sample_point(2);
            let phi = c.from_mean_cov(&m, &s).expect("pd");
            let f = c.fisher(&phi);
            let kl = |p: &[f64]| {
                let (m2, s2) = c.mean_cov(p).expect("in domain");
                kl_gauss(&m, &s, &m2, &s2).expect("pd")
            };
            let h = 1e-4;
            for a in 0..c.dim() {
                for b in 0..c.dim() {
                    let at = |da: f64, db: f64| {
                        let mut p = phi.clone();
                        p[a] += da;
                        p[b] += db;
                        kl(&p)
                    };
                    let fd = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4.0 * h * h);
                    assert!(
                        (fd - f[(a, b)]).abs() < 1e-5 * (1.0 + f[(a, b)].abs()),
                        "{chart:?} ({a},{b}): fd {fd} vs {}",
                        f[(a, b)]
                    );
                }
            }
        }
    }
}
