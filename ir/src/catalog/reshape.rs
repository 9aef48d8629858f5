//! Reshapes: flatten a feature map for the fully connected layers, and its gradient.

use serde::{Deserialize, Serialize};

use super::{FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError};
use crate::value::{TensorType, ValueRef};

/// `N x C x H x W` to `N x (C*H*W)`, a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flatten;

impl OpDef for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        Ok(vec![TensorType { dims: vec![x.elements_per_sample()], ..x.clone() }].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Injective
    }
    fn is_view(&self) -> bool {
        true
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dims = ctx.input_type(0).dims.clone();
        let dy = ctx.dy(0)?;
        Ok(vec![Some(ctx.emit("grad", Op::Reshape(Reshape { dims }), &[dy])?)])
    }
}

/// A view with other per-sample dimensions of the same element count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reshape {
    pub dims: Vec<usize>,
}

impl OpDef for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("dims={:?}", self.dims)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        if self.dims.iter().product::<usize>() != x.elements_per_sample() {
            return Err(ShapeError::new(
                format!("cannot reshape {x} to {:?}", self.dims),
                "keep the element count",
            ));
        }
        Ok(vec![TensorType { dims: self.dims.clone(), ..x.clone() }].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Injective
    }
    fn is_view(&self) -> bool {
        true
    }
}
