//! Elementwise ops: ReLU, bias add, sums, dropout, and their gradients.

use serde::{Deserialize, Serialize};

use super::{input_at, FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError};
use crate::value::{DType, TensorType, ValueRef};

fn same_as_first(inputs: &[&TensorType], what: &str) -> Result<Inferred, ShapeError> {
    for t in &inputs[1..] {
        if t != &inputs[0] {
            return Err(ShapeError::new(
                format!("{what} needs inputs of one shape, got {} and {t}", inputs[0]),
                "make both inputs the same shape",
            ));
        }
    }
    Ok(vec![inputs[0].clone()].into())
}

/// `max(x, 0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relu;

impl OpDef for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
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
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let (dy, y) = (ctx.dy(0)?, ctx.output(0));
        Ok(vec![Some(ctx.emit("grad", Op::ReluGrad(ReluGrad), &[dy, y])?)])
    }
}

/// `dy * (y > 0)` from `(dy, y)`: the ReLU mask, read off the ReLU's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReluGrad;

impl OpDef for ReluGrad {
    fn name(&self) -> &'static str {
        "relu_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        same_as_first(inputs, "relu_grad")
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Elementwise
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
}

/// `y + b`, `b` broadcast along the channel (feature) axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasAdd;

impl OpDef for BiasAdd {
    fn name(&self) -> &'static str {
        "bias_add"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let (y, b) = (inputs[0], inputs[1]);
        if y.dims.is_empty() || b.dims != [y.dims[0]] {
            return Err(ShapeError::new(
                format!("bias {b} does not match the channels of {y}"),
                "the bias has one element per channel",
            ));
        }
        // The bias is added in f32 and the sum stored in the activations' type: an f32 bias
        // (the parameter's master copy) needs no cast.
        if b.dtype != y.dtype && b.dtype != DType::F32 {
            return Err(ShapeError::new(
                format!("bias {b} for activations {y}"),
                "internal: a bias is f32 or the activations' type",
            ));
        }
        Ok(vec![y.clone()].into())
    }
    fn param_shape(&self, port: usize, inputs: &[Option<&TensorType>]) -> Option<Vec<usize>> {
        let y = inputs.first().copied().flatten()?;
        (port == 1 && !y.dims.is_empty()).then(|| vec![y.dims[0]])
    }
    fn reads_f32_master(&self, port: usize) -> bool {
        port == 1
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Elementwise
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dy = ctx.dy(0)?;
        let db = ctx.emit("grad_bias", Op::BiasGrad(BiasGrad), &[dy])?;
        Ok(vec![Some(dy), Some(db)])
    }
}

/// The bias gradient: `dy` summed over the batch and the spatial axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasGrad;

impl OpDef for BiasGrad {
    fn name(&self) -> &'static str {
        "bias_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let dy = input_at(inputs, 0, self.name())?;
        let channels = dy.dims.first().ok_or_else(|| {
            ShapeError::new(
                format!("bias_grad needs a channel dimension, got {dy}"),
                "check the node's input",
            )
        })?;
        Ok(vec![TensorType::fixed(DType::F32, vec![*channels])].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Reduce
    }
}

/// `a + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Add;

impl OpDef for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        same_as_first(inputs, "add")
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Elementwise
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dy = ctx.dy(0)?;
        Ok(vec![Some(dy), Some(dy)])
    }
}

/// The sum of several gradients of one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddN;

impl OpDef for AddN {
    fn name(&self) -> &'static str {
        "add_n"
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        same_as_first(inputs, "add_n")
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Elementwise
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
}

/// Dropout with drop probability `rate`, scaling kept values by `1 / (1 - rate)` (inverted
/// dropout). In a training step it also writes its keep mask; in inference it is the identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    pub rate: f64,
    pub training: bool,
}

impl OpDef for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("rate={}{}", self.rate, if self.training { " training" } else { "" })
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(ShapeError::new(
                format!("dropout rate {} is outside [0, 1)", self.rate),
                "use a drop probability such as 0.5",
            ));
        }
        let x = inputs[0].clone();
        let mut outs = vec![x.clone()];
        if self.training {
            outs.push(x.with_dtype(DType::U8));
        }
        Ok(outs.into())
    }
    fn fusion_class(&self) -> FusionClass {
        if self.training {
            FusionClass::Opaque
        } else {
            FusionClass::Elementwise
        }
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
    fn is_view(&self) -> bool {
        !self.training
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        ctx.set_forward_op(Op::Dropout(Dropout { rate: self.rate, training: true }))?;
        let (dy, mask) = (ctx.dy(0)?, ctx.output(1));
        let op = Op::DropoutGrad(DropoutGrad { rate: self.rate });
        Ok(vec![Some(ctx.emit("grad", op, &[dy, mask])?)])
    }
}

/// `dy * mask / (1 - rate)` from `(dy, mask)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropoutGrad {
    pub rate: f64,
}

impl OpDef for DropoutGrad {
    fn name(&self) -> &'static str {
        "dropout_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        format!("rate={}", self.rate)
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
