//! Casts between float types: the mixed-precision pass puts one wherever a value's type is not the
//! type its reader computes in (a parameter's f32 master copy read by a bf16 convolution, the f32
//! loss gradient read by bf16 products). Elementwise, so fusion folds a cast into the epilogue of
//! the group that produces its input.

use serde::{Deserialize, Serialize};

use super::{FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError};
use crate::value::{DType, TensorType, ValueRef};

/// `x` as element type `to`, rounded to nearest even.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cast {
    pub to: DType,
}

impl OpDef for Cast {
    fn name(&self) -> &'static str {
        "cast"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("to={}", self.to.name())
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        if !x.dtype.is_float() || !self.to.is_float() {
            return Err(ShapeError::new(
                format!("a cast of {x} to {}: casts are between float types", self.to.name()),
                "internal: only activations, gradients and parameters are cast",
            ));
        }
        Ok(vec![x.with_dtype(self.to)].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Elementwise
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dy = ctx.dy(0)?;
        let back = Cast { to: ctx.input_type(0).dtype };
        Ok(vec![Some(ctx.emit("grad", Op::Cast(back), &[dy])?)])
    }
}
