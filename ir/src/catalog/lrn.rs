//! Local response normalisation across channels, in the paper's or Caffe's convention.

use serde::{Deserialize, Serialize};

use super::{expect_rank, FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError};
use crate::spec::LrnConvention;
use crate::value::{TensorType, ValueRef};

/// `b[c] = a[c] / (k + s * sum_{c' in window(c)} a[c']^2)^beta` with `s = alpha` (paper) or
/// `s = alpha / size` (Caffe, PyTorch); the window of `size` channels is clipped at the edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
    pub convention: LrnConvention,
}

impl Lrn {
    fn text(&self) -> String {
        let conv = match self.convention {
            LrnConvention::Paper => "paper",
            LrnConvention::Caffe => "caffe",
        };
        format!("size={} alpha={} beta={} k={} convention={conv}", self.size, self.alpha, self.beta, self.k)
    }
}

impl OpDef for Lrn {
    fn name(&self) -> &'static str {
        "lrn"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        self.text()
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        expect_rank(inputs[0], 3, "lrn")?;
        if self.size == 0 || self.size.is_multiple_of(2) {
            return Err(ShapeError::new(
                format!("LRN size {} is not a positive odd number", self.size),
                "use an odd window such as 5, so that it is centred on its channel",
            ));
        }
        if self.k <= 0.0 || self.alpha < 0.0 || self.beta < 0.0 {
            return Err(ShapeError::new(
                "LRN needs k > 0, alpha >= 0 and beta >= 0",
                "the paper uses k = 2, alpha = 1e-4, beta = 0.75",
            ));
        }
        Ok(vec![inputs[0].clone()].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn fuses_into_producer(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let (x, y, dy) = (ctx.input(0), ctx.output(0), ctx.dy(0)?);
        Ok(vec![Some(ctx.emit("grad", Op::LrnGrad(LrnGrad(self.clone())), &[x, y, dy])?)])
    }
}

/// The LRN gradient from `(x, y, dy)`; recomputes the window sums rather than storing them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrnGrad(pub Lrn);

impl OpDef for LrnGrad {
    fn name(&self) -> &'static str {
        "lrn_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(3)
    }
    fn attrs(&self) -> String {
        self.0.text()
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![inputs[0].clone()].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
}
