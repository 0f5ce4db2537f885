//! The model of an experiment: one of the families the model file can name.

use super::layers::{DenseLayers, FisherSource};
use super::{GaussianMixture, Mlp, StatModel, VariationalGaussian};
use nalgebra::{DMatrix, DVector};

/// A model chosen by `model.family` in the model file.
#[derive(Clone, Debug)]
pub enum AnyModel {
    /// `gaussian-mixture`: the seed's two-component mixture.
    Mixture(GaussianMixture),
    /// `mlp`: a dense network on a data set.
    Mlp(Box<Mlp>),
    /// `variational-gaussian`: natural-gradient VI, q = N(m, S) against a posterior.
    Variational(Box<VariationalGaussian>),
}

impl AnyModel {
    /// The mixture, if it is one.
    pub fn as_mixture(&self) -> Option<&GaussianMixture> {
        match self {
            AnyModel::Mixture(m) => Some(m),
            _ => None,
        }
    }

    /// The MLP, if it is one.
    pub fn as_mlp(&self) -> Option<&Mlp> {
        match self {
            AnyModel::Mlp(m) => Some(m),
            _ => None,
        }
    }

    /// The variational family, if it is one.
    pub fn as_variational(&self) -> Option<&VariationalGaussian> {
        match self {
            AnyModel::Variational(m) => Some(m),
            _ => None,
        }
    }

    /// How expectations are evaluated: the quadrature rule of the mixture, or the data set
    /// of the MLP.
    pub fn describe(&self) -> String {
        match self {
            AnyModel::Mixture(m) => m.scheme.describe(),
            AnyModel::Mlp(m) => {
                format!("data set {} ({} examples)", m.data().source, m.data().len())
            }
            AnyModel::Variational(m) => m.describe(),
        }
    }

    fn inner(&self) -> &dyn StatModel {
        match self {
            AnyModel::Mixture(m) => m,
            AnyModel::Mlp(m) => m.as_ref(),
            AnyModel::Variational(m) => m.as_ref(),
        }
    }
}

impl StatModel for AnyModel {
    fn dim(&self) -> usize {
        self.inner().dim()
    }
    fn param_names(&self) -> Vec<String> {
        self.inner().param_names()
    }
    fn loss_grad(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        self.inner().loss_grad(theta, grad)
    }
    fn loss(&self, theta: &[f64]) -> f64 {
        self.inner().loss(theta)
    }
    fn gradient(&self, theta: &[f64]) -> DVector<f64> {
        self.inner().gradient(theta)
    }
    fn fisher_into(&self, theta: &[f64], out: &mut DMatrix<f64>) {
        self.inner().fisher_into(theta, out)
    }
    fn fisher(&self, theta: &[f64]) -> DMatrix<f64> {
        self.inner().fisher(theta)
    }
    fn optima(&self) -> Vec<Vec<f64>> {
        self.inner().optima()
    }
    fn optimal_loss(&self) -> Option<f64> {
        self.inner().optimal_loss()
    }
    fn evaluation_error(&self) -> f64 {
        self.inner().evaluation_error()
    }
    fn family(&self) -> &str {
        self.inner().family()
    }
    fn fisher_factor(&self, theta: &[f64], source: &FisherSource) -> crate::Result<DMatrix<f64>> {
        self.inner().fisher_factor(theta, source)
    }
    fn fisher_factor_anchored(
        &self,
        theta: &[f64],
        source: &FisherSource,
        anchor: &[f64],
    ) -> crate::Result<DMatrix<f64>> {
        self.inner().fisher_factor_anchored(theta, source, anchor)
    }
    fn param_groups(&self) -> Vec<(String, std::ops::Range<usize>)> {
        self.inner().param_groups()
    }
    fn dense_layers(&self) -> Option<&dyn DenseLayers> {
        self.inner().dense_layers()
    }
    fn mlp(&self) -> Option<&Mlp> {
        self.inner().mlp()
    }
    fn flow_kernel(&self) -> Option<Box<dyn crate::flow::FlowKernel + '_>> {
        self.inner().flow_kernel()
    }
    fn dense_jacobian(&self) -> bool {
        self.inner().dense_jacobian()
    }
    fn exact_geometry(&self, theta: &[f64], damping: f64) -> Option<crate::metric::Geometry> {
        self.inner().exact_geometry(theta, damping)
    }
    fn flow_correction(
        &self,
        c: &crate::geometry::correction::Correction,
    ) -> Option<Box<dyn crate::geometry::correction::FlowCorrection + '_>> {
        self.inner().flow_correction(c)
    }

    fn exchange_pairs(&self) -> Vec<(usize, usize)> {
        self.inner().exchange_pairs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LossKind;
    use crate::quadrature::Scheme;

    /// Every capability of the wrapped model must reach callers through the wrapper.
    #[test]
    fn the_wrapper_forwards_every_capability() {
        let m = GaussianMixture {
            sigma: 1.0,
            w: 0.5,
            target: [-1.5, 2.0],
            loss_kind: LossKind::Population,
            scheme: Scheme::default(),
        };
        let a = AnyModel::Mixture(m.clone());
        assert_eq!(a.exchange_pairs(), m.exchange_pairs());
        assert!(!a.exchange_pairs().is_empty());
        assert_eq!(a.dense_jacobian(), m.dense_jacobian());
        assert_eq!(a.flow_kernel().is_some(), m.flow_kernel().is_some());
        assert!(a.flow_kernel().is_some());
        assert_eq!(a.family(), m.family());
        assert_eq!(a.param_groups(), m.param_groups());
        assert_eq!(a.evaluation_error(), m.evaluation_error());
    }
}
