//! A multilayer perceptron with dense layers, tanh or ReLU hidden units and a softmax
//! (classification) or fixed-noise Gaussian (regression) output. Loss = mean negative
//! log-likelihood over the data set.
//!
//! Layer ℓ computes zℓ = Wℓ aℓ₋₁ + bℓ = W̃ℓ ãℓ₋₁ with W̃ℓ = [Wℓ | bℓ] and ã = [a; 1]; hidden
//! activations aℓ = φ(zℓ). Parameters of a layer are the column-major entries of W̃ℓ
//! (d_out × (d_in+1)), layers one after the other. A whole batch is processed at once:
//! examples are columns, every pass is a matrix product (see [`crate::gemm`]).
//!
//! Backward pass: with δ = ∂ℓ/∂z (per example), δℓ₋₁ = (Wℓᵀ δℓ) ⊙ φ'(zℓ₋₁) and the layer's
//! gradient is Σᵢ δℓ,ᵢ ãℓ₋₁,ᵢᵀ. Softmax: ∂(−log p(y))/∂z = p − e_y; Gaussian:
//! ∂(−log p(y))/∂μ = (μ − y)/σ².
//!
//! Fisher (mean over examples): softmax Σᵢ Jᵢᵀ(diag pᵢ − pᵢpᵢᵀ)Jᵢ / N, using
//! diag p − p pᵀ = Σ_c p_c (e_c − p)(e_c − p)ᵀ, i.e. one backward pass per class;
//! Gaussian Σᵢ JᵢᵀJᵢ / (N σ²).

use super::StatModel;
use super::data::{Dataset, Targets};
use super::layers::{DenseLayers, FisherSource, KfacFactors, KfacTargets, LayerShape};
use crate::error::{Error, Result};
use crate::gemm::{Op, gemm, syrk};
use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};

/// Matrices with at least this many entries get their elementwise φ in parallel.
const PAR_MIN: usize = 1 << 16;

/// Hidden-unit nonlinearity φ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// tanh, φ' = 1 − φ².
    Tanh,
    /// max(0, z), φ' = 1[z > 0].
    Relu,
}

/// Output distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputKind {
    /// Categorical with probabilities softmax(z).
    Softmax,
    /// N(z, σ² I) with fixed σ = `noise`.
    Gaussian { noise: f64 },
}

/// The network and its data set.
#[derive(Clone, Debug)]
pub struct Mlp {
    sizes: Vec<usize>,
    activation: Activation,
    output: OutputKind,
    /// Inputs with a row of ones appended, (d₀+1) × N.
    x_aug: DMatrix<f64>,
    /// Data targets as output-space matrices: one-hot (softmax) or values (Gaussian), d_L × N.
    y: DMatrix<f64>,
    labels: Vec<usize>,
    data: Dataset,
    layers: Vec<LayerShape>,
    dim: usize,
}

/// Activations of a forward pass.
pub struct Forward {
    /// Hidden ãℓ for ℓ = 1..L−1 (augmented with a row of ones), each (dℓ+1) × N; the input
    /// ã₀ is the model's own (see [`Mlp::input`]).
    pub h: Vec<DMatrix<f64>>,
    /// Output pre-activations z_L, d_L × N.
    pub z: DMatrix<f64>,
    /// Softmax probabilities (softmax output) or the means z (Gaussian), d_L × N.
    pub p: DMatrix<f64>,
}

impl Mlp {
    /// A network with layer sizes `sizes` = [d₀, d₁, …, d_L] on `data`.
    pub fn new(
        sizes: Vec<usize>,
        activation: Activation,
        output: OutputKind,
        data: Dataset,
    ) -> Result<Mlp> {
        // Sizes, their count and the parameter count Σ (dℓ₋₁ + 1)·dℓ, checked (a wrapped
        // product once sized a buffer too small).
        super::mlp_spec::check_layers(&sizes)?;
        if data.is_empty() {
            return Err(Error::invalid(
                "mlp.data",
                "empty",
                "the data set has no examples",
            ));
        }
        if data.x.nrows() != sizes[0] {
            return Err(Error::invalid(
                "mlp.layers",
                format!("{sizes:?}"),
                format!(
                    "the input size must equal the data's {} feature columns",
                    data.x.nrows()
                ),
            ));
        }
        let d_out = sizes[sizes.len() - 1];
        let n = data.len();
        let (y, labels) = match (&data.targets, output) {
            (Targets::Classes { labels, names }, OutputKind::Softmax) => {
                if names.len() > d_out {
                    return Err(Error::invalid(
                        "mlp.layers",
                        format!("{sizes:?}"),
                        format!(
                            "the output size must be at least the {} classes of the data",
                            names.len()
                        ),
                    ));
                }
                let mut y = DMatrix::zeros(d_out, n);
                for (i, &c) in labels.iter().enumerate() {
                    y[(c, i)] = 1.0;
                }
                (y, labels.clone())
            }
            (Targets::Values(v), OutputKind::Gaussian { noise }) => {
                if v.nrows() != d_out {
                    return Err(Error::invalid(
                        "mlp.layers",
                        format!("{sizes:?}"),
                        format!(
                            "the output size must equal the data's {} target columns",
                            v.nrows()
                        ),
                    ));
                }
                if !(noise.is_finite() && noise > 0.0) {
                    return Err(Error::invalid(
                        "mlp.noise",
                        noise,
                        "must be a finite number > 0",
                    ));
                }
                (v.clone(), Vec::new())
            }
            (Targets::Classes { .. }, _) => {
                return Err(Error::invalid(
                    "mlp.output",
                    "gaussian",
                    "class labels need output = \"softmax\"",
                ));
            }
            (Targets::Values(_), _) => {
                return Err(Error::invalid(
                    "mlp.output",
                    "softmax",
                    "numeric targets need output = \"gaussian\"",
                ));
            }
        };
        let mut x_aug = DMatrix::from_element(sizes[0] + 1, n, 1.0);
        x_aug.rows_mut(0, sizes[0]).copy_from(&data.x);
        let mut layers = Vec::new();
        let mut offset = 0;
        for l in 1..sizes.len() {
            let s = LayerShape {
                name: format!("layer{l}"),
                d_in: sizes[l - 1],
                d_out: sizes[l],
                offset,
            };
            offset += s.len();
            layers.push(s);
        }
        Ok(Mlp {
            sizes,
            activation,
            output,
            x_aug,
            y,
            labels,
            data,
            layers,
            dim: offset,
        })
    }

    /// Layer sizes [d₀, …, d_L].
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The hidden-unit nonlinearity.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The output distribution.
    pub fn output(&self) -> OutputKind {
        self.output
    }

    /// The data set.
    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// Training accuracy at θ (fraction of examples whose most probable class is the label),
    /// or `None` for a regression output.
    pub fn accuracy(&self, theta: &[f64]) -> Option<f64> {
        let super::data::Targets::Classes { labels, .. } = &self.data.targets else {
            return None;
        };
        let f = self.forward(theta);
        let hits =
            f.p.column_iter()
                .zip(labels)
                .filter(|(col, label)| col.argmax().0 == **label)
                .count();
        Some(hits as f64 / labels.len().max(1) as f64)
    }

    /// A seeded initialization: W entries N(0, 1/d_in), biases 0 (ChaCha8 from `seed`).
    pub fn init(&self, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut theta = vec![0.0; self.dim];
        for s in &self.layers {
            let sd = 1.0 / (s.d_in as f64).sqrt();
            for c in 0..s.d_in {
                for r in 0..s.d_out {
                    let z: f64 =
                        rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
                    theta[s.offset + r + c * s.d_out] = sd * z;
                }
            }
        }
        theta
    }

    fn weights<'a>(&self, theta: &'a [f64], s: &LayerShape) -> Op<'a> {
        Op::col_major(&theta[s.offset..s.offset + s.len()], s.d_out, s.d_in + 1)
    }

    /// The input of layer ℓ (0-based): the data ã₀ for ℓ = 0, else the hidden ãℓ.
    pub fn input<'a>(&'a self, f: &'a Forward, l: usize) -> &'a DMatrix<f64> {
        if l == 0 { &self.x_aug } else { &f.h[l - 1] }
    }

    /// The forward pass over the whole data set.
    pub fn forward(&self, theta: &[f64]) -> Forward {
        let n = self.x_aug.ncols();
        let last = self.layers.len() - 1;
        let mut h: Vec<DMatrix<f64>> = Vec::with_capacity(last);
        let mut z = DMatrix::zeros(0, 0);
        for (l, s) in self.layers.iter().enumerate() {
            let input = if l == 0 { &self.x_aug } else { &h[l - 1] };
            if l == last {
                let mut zl = DMatrix::zeros(s.d_out, n);
                gemm(1.0, self.weights(theta, s), Op::n(input), 0.0, &mut zl);
                z = zl;
            } else {
                // z into the top rows of ã = [φ(z); 1], then φ in place.
                let mut a = DMatrix::from_element(s.d_out + 1, n, 1.0);
                crate::gemm::gemm_rows_set(self.weights(theta, s), Op::n(input), &mut a, 0);
                let act = self.activation;
                let d = s.d_out;
                let apply = move |col: &mut [f64]| match act {
                    Activation::Tanh => col[..d].iter_mut().for_each(|v| *v = v.tanh()),
                    Activation::Relu => col[..d].iter_mut().for_each(|v| *v = v.max(0.0)),
                };
                // φ is the costliest elementwise step (tanh ≈ 15 ns): spread big batches over
                // the rayon pool, columns in chunks.
                if a.len() >= PAR_MIN {
                    use rayon::prelude::*;
                    let per = (PAR_MIN / (d + 1)).max(1) * (d + 1);
                    a.as_mut_slice()
                        .par_chunks_mut(per)
                        .for_each(|blk| blk.chunks_mut(d + 1).for_each(apply));
                } else {
                    a.as_mut_slice().chunks_mut(d + 1).for_each(apply);
                }
                h.push(a);
            }
        }
        let p = match self.output {
            OutputKind::Softmax => {
                let mut p = z.clone();
                for mut col in p.column_iter_mut() {
                    let m = col.max();
                    col.apply(|v| *v = (*v - m).exp());
                    let s = col.sum();
                    col /= s;
                }
                p
            }
            OutputKind::Gaussian { .. } => z.clone(),
        };
        Forward { h, z, p }
    }

    /// Mean negative log-likelihood of the data from a forward pass.
    pub fn loss_of(&self, f: &Forward) -> f64 {
        let n = f.z.ncols() as f64;
        match self.output {
            OutputKind::Softmax => {
                let mut total = 0.0;
                for (i, col) in f.z.column_iter().enumerate() {
                    let m = col.max();
                    let lse = m + col.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    total += lse - col[self.labels[i]];
                }
                total / n
            }
            OutputKind::Gaussian { noise } => {
                let d = f.z.nrows() as f64;
                let sq = (&f.z - &self.y).norm_squared();
                sq / (2.0 * noise * noise * n)
                    + 0.5 * d * (2.0 * std::f64::consts::PI * noise * noise).ln()
            }
        }
    }

    /// Back-propagate output deltas Δ (d_L × N, one column per example) to every layer's
    /// pre-activation deltas δℓ (dℓ × N), ℓ = 1..L (index 0 = first layer).
    pub fn backward(
        &self,
        theta: &[f64],
        f: &Forward,
        delta_out: DMatrix<f64>,
    ) -> Vec<DMatrix<f64>> {
        let nl = self.layers.len();
        let n = delta_out.ncols();
        let mut deltas = vec![DMatrix::zeros(0, 0); nl];
        deltas[nl - 1] = delta_out;
        for l in (1..nl).rev() {
            let s = &self.layers[l];
            let w = self
                .weights(theta, s)
                .block(0, 0, s.d_out, s.d_in)
                .transpose();
            let mut d = DMatrix::zeros(s.d_in, n);
            gemm(1.0, w, Op::n(&deltas[l]), 0.0, &mut d);
            let h = f.h[l - 1].rows(0, s.d_in);
            match self.activation {
                Activation::Tanh => d.zip_apply(&h, |dv, hv| *dv *= 1.0 - hv * hv),
                Activation::Relu => d.zip_apply(&h, |dv, hv| {
                    if hv <= 0.0 {
                        *dv = 0.0
                    }
                }),
            }
            deltas[l - 1] = d;
        }
        deltas
    }

    /// L and ∇L (into `grad`) from a forward pass at θ: output deltas −(e_y − p)/N (or the
    /// Gaussian residuals), back-propagated, then Σᵢ δℓ,ᵢ ãℓ₋₁,ᵢᵀ per layer.
    fn loss_grad_from(&self, theta: &[f64], f: &Forward, grad: &mut [f64]) -> f64 {
        let mut d = -self.score_deltas(f, &self.y);
        d /= f.z.ncols() as f64;
        let deltas = self.backward(theta, f, d);
        self.grad_from(f, &deltas, grad);
        self.loss_of(f)
    }

    /// Σᵢ δℓ,ᵢ ãℓ₋₁,ᵢᵀ for every layer, written into `out` (length n).
    pub fn grad_from(&self, f: &Forward, deltas: &[DMatrix<f64>], out: &mut [f64]) {
        for (l, s) in self.layers.iter().enumerate() {
            let g = &mut out[s.offset..s.offset + s.len()];
            crate::gemm::gemm_slice(Op::n(&deltas[l]), Op::t(self.input(f, l)), g);
        }
    }

    /// Per-example gradients as rows (N × n): row i is vec(δℓ,ᵢ ãℓ₋₁,ᵢᵀ) for every layer.
    /// Filled column by column (each column is one elementwise product over the batch).
    pub fn per_example(&self, f: &Forward, deltas: &[DMatrix<f64>]) -> DMatrix<f64> {
        let n = f.z.ncols();
        let mut s = DMatrix::zeros(n, self.dim);
        for (l, ls) in self.layers.iter().enumerate() {
            for c in 0..=ls.d_in {
                let hrow = self.input(f, l).row(c);
                for r in 0..ls.d_out {
                    let drow = deltas[l].row(r);
                    let mut col = s.column_mut(ls.offset + r + c * ls.d_out);
                    for i in 0..n {
                        col[i] = drow[i] * hrow[i];
                    }
                }
            }
        }
        s
    }

    /// The score factor of `source` at θ; sampled targets are drawn from `draw_from` (the
    /// forward pass at a step's start) when given, else from the pass at θ.
    fn fisher_factor_from(
        &self,
        theta: &[f64],
        source: &FisherSource,
        draw_from: Option<&Forward>,
    ) -> Result<DMatrix<f64>> {
        let f = self.forward(theta);
        let roots = self.output_roots(&f, source, draw_from);
        let n = f.z.ncols();
        let mut r = DMatrix::zeros(n * roots.len(), self.dim);
        for (k, root) in roots.into_iter().enumerate() {
            let deltas = self.backward(theta, &f, root);
            let s = self.per_example(&f, &deltas);
            r.rows_mut(k * n, n).copy_from(&s);
        }
        Ok(r)
    }

    /// Output-side "square roots" of the Fisher: matrices Δ (d_L × N) such that the Fisher
    /// estimate is Σ_Δ Σᵢ Jᵢᵀ Δᵢ Δᵢᵀ Jᵢ, with the weight of each term already folded in
    /// (including 1/N or 1/(N·S)).
    fn output_roots(
        &self,
        f: &Forward,
        source: &FisherSource,
        draw_from: Option<&Forward>,
    ) -> Vec<DMatrix<f64>> {
        let (d, n) = (f.p.nrows(), f.p.ncols());
        let nf = n as f64;
        match (source, self.output) {
            (FisherSource::Exact, OutputKind::Softmax) => (0..d)
                .map(|c| {
                    let mut m = -f.p.clone();
                    for i in 0..n {
                        m[(c, i)] += 1.0;
                        let w = (f.p[(c, i)] / nf).sqrt();
                        m.column_mut(i).scale_mut(w);
                    }
                    m
                })
                .collect(),
            (FisherSource::Exact, OutputKind::Gaussian { noise }) => (0..d)
                .map(|c| {
                    let mut m = DMatrix::zeros(d, n);
                    m.row_mut(c).fill(1.0 / (noise * nf.sqrt()));
                    m
                })
                .collect(),
            (FisherSource::Empirical, _) => {
                let mut m = self.score_deltas(f, &self.y);
                m /= nf.sqrt();
                vec![m]
            }
            (FisherSource::Sampled { samples, seed }, _) => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
                let scale = 1.0 / (nf * *samples as f64).sqrt();
                (0..*samples)
                    .map(|_| {
                        let y = self.draw_targets(draw_from.unwrap_or(f), &mut rng);
                        let mut m = self.score_deltas(f, &y);
                        m *= scale;
                        m
                    })
                    .collect()
            }
        }
    }

    /// ∂ log p(y|x)/∂z per example for targets `y` (one-hot or values): e_y − p, or (y − μ)/σ².
    fn score_deltas(&self, f: &Forward, y: &DMatrix<f64>) -> DMatrix<f64> {
        match self.output {
            OutputKind::Softmax => y - &f.p,
            OutputKind::Gaussian { noise } => (y - &f.p) / (noise * noise),
        }
    }

    /// Targets drawn from the model's predictive distribution (one per example).
    fn draw_targets(&self, f: &Forward, rng: &mut rand_chacha::ChaCha8Rng) -> DMatrix<f64> {
        let (d, n) = (f.p.nrows(), f.p.ncols());
        match self.output {
            OutputKind::Softmax => {
                let mut y = DMatrix::zeros(d, n);
                for i in 0..n {
                    let u: f64 = rng.random();
                    let mut acc = 0.0;
                    let mut c = d - 1;
                    for k in 0..d {
                        acc += f.p[(k, i)];
                        if u < acc {
                            c = k;
                            break;
                        }
                    }
                    y[(c, i)] = 1.0;
                }
                y
            }
            OutputKind::Gaussian { noise } => DMatrix::from_fn(d, n, |r, i| {
                let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                f.p[(r, i)] + noise * z
            }),
        }
    }
}

impl StatModel for Mlp {
    fn dim(&self) -> usize {
        self.dim
    }

    fn param_names(&self) -> Vec<String> {
        let mut names = vec![String::new(); self.dim];
        for (l, s) in self.layers.iter().enumerate() {
            for c in 0..=s.d_in {
                for r in 0..s.d_out {
                    names[s.offset + r + c * s.d_out] = if c < s.d_in {
                        format!("w{}_{r}_{c}", l + 1)
                    } else {
                        format!("b{}_{r}", l + 1)
                    };
                }
            }
        }
        names
    }

    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        // On the pool, so the big products run as single-threaded tasks side by side.
        crate::gemm::on_pool(|| self.loss_grad_from(theta, &self.forward(theta), grad))
    }

    fn loss(&self, theta: &[f64]) -> f64 {
        self.loss_of(&self.forward(theta))
    }

    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        match self.fisher_factor(theta, &FisherSource::Exact) {
            Ok(r) => syrk(1.0, Op::t(&r), out),
            Err(_) => out.fill(f64::NAN),
        }
    }

    fn family(&self) -> &str {
        "mlp"
    }

    fn fisher_factor(&self, theta: &[f64], source: &FisherSource) -> Result<DMatrix<f64>> {
        self.fisher_factor_from(theta, source, None)
    }

    /// Sampled targets drawn from the predictive distribution at `anchor`, scores at θ.
    fn fisher_factor_anchored(
        &self,
        theta: &[f64],
        source: &FisherSource,
        anchor: &[f64],
    ) -> Result<DMatrix<f64>> {
        if !matches!(source, FisherSource::Sampled { .. })
            || anchor == theta
            || anchor.len() != theta.len()
        {
            return self.fisher_factor(theta, source);
        }
        self.fisher_factor_from(theta, source, Some(&self.forward(anchor)))
    }

    fn param_groups(&self) -> Vec<(String, std::ops::Range<usize>)> {
        self.layers
            .iter()
            .map(|s| (s.name.clone(), s.offset..s.offset + s.len()))
            .collect()
    }

    fn dense_layers(&self) -> Option<&dyn DenseLayers> {
        Some(self)
    }

    fn mlp(&self) -> Option<&Mlp> {
        Some(self)
    }

    /// The geodesic acceleration of the exact Fisher metric ([`crate::geometry::mlp`]).
    fn flow_correction(
        &self,
        c: &crate::geometry::correction::Correction,
    ) -> Option<Box<dyn crate::geometry::correction::FlowCorrection + '_>> {
        use crate::geometry::correction::Correction;
        match *c {
            Correction::None => None,
            Correction::GeodesicAcceleration { alpha, tau } => Some(Box::new(
                crate::geometry::mlp::MlpGeodesicAcceleration::new(self, alpha, tau),
            )),
        }
    }
}

impl DenseLayers for Mlp {
    fn layers(&self) -> Vec<LayerShape> {
        self.layers.clone()
    }

    fn kfac_factors(
        &self,
        theta: &[f64],
        targets: KfacTargets,
        samples: usize,
        seed: u64,
        with_grad: bool,
    ) -> Result<KfacFactors> {
        // On a pool thread, so the independent jobs below run side by side as tasks.
        crate::gemm::on_pool(|| {
            let f = self.forward(theta);
            let nf = f.z.ncols() as f64;
            // Output deltas with their weights folded in: G = Σ_roots Σᵢ δᵢ δᵢᵀ.
            let source = match targets {
                KfacTargets::Sampled => FisherSource::Sampled {
                    samples: samples.max(1),
                    seed,
                },
                KfacTargets::Empirical => FisherSource::Empirical,
                KfacTargets::Exact => FisherSource::Exact,
            };
            let roots = self.output_roots(&f, &source, None);
            // Three independent jobs side by side on the rayon pool (their products then run as
            // single-threaded tasks, see crate::gemm::par_for): the A factors (one per layer),
            // the G factors (a backward pass per root), the loss and its gradient.
            let a_factors = || -> Vec<DMatrix<f64>> {
                use rayon::prelude::*;
                (0..self.layers.len())
                    .into_par_iter()
                    .map(|l| {
                        let d = self.layers[l].d_in + 1;
                        let mut m = DMatrix::zeros(d, d);
                        syrk(1.0 / nf, Op::n(self.input(&f, l)), &mut m);
                        m
                    })
                    .collect()
            };
            let g_factors = || -> Vec<DMatrix<f64>> {
                let mut g: Vec<DMatrix<f64>> = self
                    .layers
                    .iter()
                    .map(|s| DMatrix::zeros(s.d_out, s.d_out))
                    .collect();
                for (r, root) in roots.into_iter().enumerate() {
                    let deltas = self.backward(theta, &f, root);
                    for (l, d) in deltas.iter().enumerate() {
                        if r == 0 {
                            syrk(1.0, Op::n(d), &mut g[l]);
                        } else {
                            let mut tmp = DMatrix::zeros(d.nrows(), d.nrows());
                            syrk(1.0, Op::n(d), &mut tmp);
                            g[l] += &tmp;
                        }
                    }
                }
                g
            };
            let gradient = || {
                with_grad.then(|| {
                    let mut grad = vec![0.0; self.dim];
                    (self.loss_grad_from(theta, &f, &mut grad), grad)
                })
            };
            let (a, (g, loss_grad)) = rayon::join(a_factors, || rayon::join(g_factors, gradient));
            Ok(KfacFactors { a, g, loss_grad })
        })
    }
}
