//! `block-diagonal`: the blocks G_bb of a base estimate (exact, sampled or empirical) on a
//! partition of the parameters into groups (MLP layers, or groups named in the model file);
//! M = blockdiag(G_bb) + λI, each block factorized on its own.

use super::Metric;
use super::provider::{DENSE_LIMIT, Factorized, MetricProvider, check_source};
use crate::error::{Error, Result};
use crate::gemm::{Op, syrk};
use crate::model::{FisherSource, StatModel};
use nalgebra::{DMatrix, DVector};

/// Block-diagonal of a base Fisher estimate.
pub struct BlockProvider {
    /// Base estimate.
    pub base: FisherSource,
    /// Named groups (empty: the model's [`StatModel::param_groups`]).
    pub blocks: Vec<Vec<String>>,
}

/// Resolve named groups into index sets. A name ending in `*` matches every parameter with
/// that prefix; parameters in no group form one more block.
pub fn resolve_blocks(model: &dyn StatModel, blocks: &[Vec<String>]) -> Result<Vec<Vec<usize>>> {
    if blocks.is_empty() {
        return Ok(model
            .param_groups()
            .into_iter()
            .map(|(_, r)| r.collect())
            .collect());
    }
    let names = model.param_names();
    let mut owner: Vec<Option<usize>> = vec![None; names.len()];
    let mut out = Vec::new();
    for (b, group) in blocks.iter().enumerate() {
        let mut idx = Vec::new();
        for pat in group {
            let hits: Vec<usize> = match pat.strip_suffix('*') {
                Some(prefix) => (0..names.len())
                    .filter(|&i| names[i].starts_with(prefix))
                    .collect(),
                None => (0..names.len()).filter(|&i| &names[i] == pat).collect(),
            };
            if hits.is_empty() {
                let shown: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
                return Err(Error::invalid(
                    format!("metric.blocks[{b}]"),
                    format!("'{pat}'"),
                    format!(
                        "matches no parameter (names are like {}…)",
                        shown.join(", ")
                    ),
                ));
            }
            for i in hits {
                if let Some(other) = owner[i] {
                    if other != b {
                        return Err(Error::invalid(
                            format!("metric.blocks[{b}]"),
                            format!("'{pat}'"),
                            format!("parameter {} is already in block {other}", names[i]),
                        ));
                    }
                    continue;
                }
                owner[i] = Some(b);
                idx.push(i);
            }
        }
        idx.sort_unstable();
        out.push(idx);
    }
    let rest: Vec<usize> = (0..names.len()).filter(|&i| owner[i].is_none()).collect();
    if !rest.is_empty() {
        out.push(rest);
    }
    Ok(out)
}

/// The diagonal blocks G[idx, idx] of the base estimate.
pub fn fisher_blocks(
    model: &dyn StatModel,
    theta: &[f64],
    source: &FisherSource,
    blocks: &[Vec<usize>],
) -> Result<Vec<DMatrix<f64>>> {
    match model.fisher_factor(theta, source) {
        Ok(r) => Ok(blocks
            .iter()
            .map(|idx| {
                let rb = r.select_columns(idx.iter());
                let mut g = DMatrix::zeros(idx.len(), idx.len());
                syrk(1.0, Op::t(&rb), &mut g);
                g
            })
            .collect()),
        Err(e) => match source {
            FisherSource::Exact if model.dim() <= DENSE_LIMIT => {
                let f = model.fisher(theta);
                Ok(blocks
                    .iter()
                    .map(|idx| f.select_rows(idx.iter()).select_columns(idx.iter()))
                    .collect())
            }
            _ => Err(e),
        },
    }
}

/// blockdiag(G_bb) + λI.
pub struct BlockMetric {
    n: usize,
    damping: f64,
    blocks: Vec<(Vec<usize>, Metric)>,
}

impl BlockMetric {
    /// From index sets and their (undamped) blocks.
    pub fn new(n: usize, blocks: Vec<(Vec<usize>, DMatrix<f64>)>, damping: f64) -> Self {
        BlockMetric {
            n,
            damping,
            blocks: blocks
                .into_iter()
                .map(|(i, g)| (i, Metric::new(g, damping)))
                .collect(),
        }
    }
}

impl Factorized for BlockMetric {
    fn dim(&self) -> usize {
        self.n
    }
    fn damping(&self) -> f64 {
        self.damping
    }
    fn solve(&self, g: &DVector<f64>) -> DVector<f64> {
        let mut x = DVector::zeros(self.n);
        for (idx, m) in &self.blocks {
            let gb = DVector::from_iterator(idx.len(), idx.iter().map(|&i| g[i]));
            let xb = m.solve(&gb);
            for (k, &i) in idx.iter().enumerate() {
                x[i] = xb[k];
            }
        }
        x
    }
    fn quad_form(&self, v: &DVector<f64>) -> f64 {
        self.blocks
            .iter()
            .map(|(idx, m)| {
                m.quad_form(&DVector::from_iterator(
                    idx.len(),
                    idx.iter().map(|&i| v[i]),
                ))
            })
            .sum()
    }
    fn matrix(&self) -> Option<DMatrix<f64>> {
        if self.n > DENSE_LIMIT {
            return None;
        }
        let mut out = DMatrix::zeros(self.n, self.n);
        for (idx, m) in &self.blocks {
            let g = m.matrix();
            for (a, &i) in idx.iter().enumerate() {
                for (b, &j) in idx.iter().enumerate() {
                    out[(i, j)] = g[(a, b)];
                }
            }
        }
        Some(out)
    }
    fn eigenvalues(&self) -> Option<DVector<f64>> {
        let mut v: Vec<f64> = self
            .blocks
            .iter()
            .flat_map(|(_, m)| m.eigenvalues().iter().copied().collect::<Vec<_>>())
            .collect();
        v.sort_by(f64::total_cmp);
        Some(DVector::from_vec(v))
    }
    fn memory_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|(i, m)| 8 * i.len() + Factorized::memory_bytes(m))
            .sum()
    }
}

impl MetricProvider for BlockProvider {
    fn name(&self) -> &'static str {
        "block-diagonal"
    }
    fn check(&self, model: &dyn StatModel) -> Result<()> {
        resolve_blocks(model, &self.blocks)?;
        check_source(model, &self.base)
    }
    fn factorize(
        &self,
        model: &dyn StatModel,
        theta: &[f64],
        damping: f64,
    ) -> Result<Box<dyn Factorized>> {
        let idx = resolve_blocks(model, &self.blocks)?;
        let gs = fisher_blocks(model, theta, &self.base, &idx)?;
        Ok(Box::new(BlockMetric::new(
            model.dim(),
            idx.into_iter().zip(gs).collect(),
            damping,
        )))
    }
}
