//! The optimizer update, one node per parameter.

use serde::{Deserialize, Serialize};

use super::{FusionClass, Inferred, OpDef, ShapeError};
use crate::value::TensorType;

/// SGD with momentum and weight decay, as in the paper, from `(w, dw, v)`, in place:
/// `v <- momentum * v - lr * lr_mult * (decay_mult * weight_decay * w + dw); w <- w + v`,
/// where `lr` is the scheduled rate at this step. With both multipliers 1 this is the paper's
/// `v <- 0.9 v - 0.0005 lr w - lr dw`; the multipliers apply as in Caffe. Writes no new value.
/// A `guarded` update (f16's loss scaling) reads a fourth input, the step's verdict from
/// [`super::UnscaleGrads`], and leaves `w` and `v` as they are where it is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdUpdate {
    pub lr_mult: f64,
    pub decay_mult: f64,
    pub guarded: bool,
}

impl OpDef for SgdUpdate {
    fn name(&self) -> &'static str {
        "sgd_update"
    }
    fn arity(&self) -> Option<usize> {
        Some(if self.guarded { 4 } else { 3 })
    }
    fn attrs(&self) -> String {
        let guarded = if self.guarded { " guarded" } else { "" };
        format!("lr_mult={} decay_mult={}{guarded}", self.lr_mult, self.decay_mult)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        if inputs[0] != inputs[1] || inputs[0] != inputs[2] {
            return Err(ShapeError::new(
                format!(
                    "parameter {}, gradient {} and momentum {} differ in shape",
                    inputs[0], inputs[1], inputs[2]
                ),
                "internal: the gradient does not match its parameter",
            ));
        }
        if let Some(verdict) = inputs.get(3) {
            if verdict.dims != [1] || verdict.batched {
                return Err(ShapeError::new(
                    format!("a guarded update's verdict is {verdict}, not f32[1]"),
                    "internal: input 3 is the verdict output of unscale_grads",
                ));
            }
        }
        Ok(Inferred::default())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn writes_inputs(&self) -> &'static [usize] {
        &[0, 2]
    }
    fn gradient_input(&self) -> Option<usize> {
        Some(1)
    }
}
