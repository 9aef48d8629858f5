//! Softmax cross-entropy: the loss, averaged over the batch, and its gradient.

use serde::{Deserialize, Serialize};

use super::{
    compute_dtype, expect_rank, FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError,
};
use crate::value::{DType, TensorType, ValueRef};

/// From `(logits, labels)`: output 0 is the mean loss (a scalar), output 1 the softmax
/// probabilities, kept for the gradient and for accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxCrossEntropy {
    pub classes: usize,
}

impl OpDef for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        format!("classes={}", self.classes)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let logits = inputs[0];
        expect_rank(logits, 1, "softmax_cross_entropy")?;
        if logits.dims[0] != self.classes {
            return Err(ShapeError::new(
                format!(
                    "the logits have {} classes but the graph declares `classes: {}`",
                    logits.dims[0], self.classes
                ),
                "make the last layer's out_features equal to `classes`",
            ));
        }
        // The softmax and the loss are computed in f32 from logits of any float type; the
        // probabilities (for the gradient) are kept in f32.
        compute_dtype(inputs, &[0], "softmax_cross_entropy")?;
        Ok(vec![TensorType::fixed(DType::F32, vec![]), logits.with_dtype(DType::F32)].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let (probs, labels) = (ctx.output(1), ctx.input(1));
        let op = Op::SoftmaxCrossEntropyGrad(SoftmaxCrossEntropyGrad);
        Ok(vec![Some(ctx.emit("grad", op, &[probs, labels])?), None])
    }
}

/// `(probs - onehot(labels)) / N` from `(probs, labels)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxCrossEntropyGrad;

impl OpDef for SoftmaxCrossEntropyGrad {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![inputs[0].clone()].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Elementwise
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
}
