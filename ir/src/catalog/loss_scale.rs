//! Dynamic loss scaling, for f16 training (as PyTorch's `GradScaler`): f16's range ends at 65504
//! and its smallest normal number is 2^-14, so small gradients would round to zero. The loss
//! gradient is multiplied by a scale `S` before the backward pass, and every parameter's gradient
//! divided by it before the update. Should any gradient then be infinite or NaN (the scaled
//! backward pass overflowed), the whole step's update is skipped and `S` halved; after
//! `growth_interval` good steps in a row `S` doubles. The precision pass inserts these ops for
//! `--precision f16`; bf16 has f32's range and needs none of it.
//!
//! `S`, the count of good steps in a row and the count of steps skipped so far live in one
//! persistent state value (`loss_scale`, f32[3], [`super::StateKind::LossScale`]), so checkpoints
//! keep them and `--resume` continues them, and a data-parallel run broadcasts them like the
//! parameters. All are exact in f32: `S` is a power of two, the counts below 2^24.

use serde::{Deserialize, Serialize};

use super::{FusionClass, Inferred, OpDef, ShapeError};
use crate::value::{DType, TensorType};

/// `S` at the start of training (PyTorch's `GradScaler` default).
pub const INITIAL_LOSS_SCALE: f32 = 65536.0;
/// Good steps in a row before `S` doubles (PyTorch's default).
pub const GROWTH_INTERVAL: u32 = 2000;
/// The state's length: `[S, good steps in a row, steps skipped so far]`.
pub const LOSS_SCALE_STATE: usize = 3;

fn scale_state(t: &TensorType, who: &str) -> Result<(), ShapeError> {
    if t.dtype != DType::F32 || t.dims != [LOSS_SCALE_STATE] || t.batched {
        return Err(ShapeError::new(
            format!("{who} reads the loss scale as {t}, not f32[{LOSS_SCALE_STATE}]"),
            "internal: that input is the `loss_scale` state (the scale, good steps in a row, steps skipped)",
        ));
    }
    Ok(())
}

/// `dy * S`: the loss gradient scaled, from `(dy, loss_scale)`, in f32 (exact: `S` is a power of two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleLossGrad;

impl OpDef for ScaleLossGrad {
    fn name(&self) -> &'static str {
        "scale_loss_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        scale_state(inputs[1], "scale_loss_grad")?;
        Ok(vec![inputs[0].with_dtype(DType::F32)].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn in_place(&self) -> Option<usize> {
        Some(0)
    }
}

/// From `(loss_scale, g_0 .. g_k)`: output `i` is `g_i / S` in f32, and output `k + 1` the step's
/// verdict, f32[1]: 1 where every gradient is finite, 0 where the update must be skipped. It
/// updates the scale state in place (halved on a skip, doubled after `growth_interval` good
/// steps). Every guarded update reads the verdict, so no parameter changes before every gradient
/// has been seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnscaleGrads {
    pub growth_interval: u32,
}

impl OpDef for UnscaleGrads {
    fn name(&self) -> &'static str {
        "unscale_grads"
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn attrs(&self) -> String {
        format!("growth_interval={}", self.growth_interval)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        scale_state(inputs[0], "unscale_grads")?;
        if inputs.len() < 2 || self.growth_interval == 0 {
            return Err(ShapeError::new(
                format!(
                    "unscale_grads of {} gradients, growing every {} steps",
                    inputs.len() - 1,
                    self.growth_interval
                ),
                "internal: the precision pass gives it every parameter's gradient and an interval above 0",
            ));
        }
        let mut out: Vec<TensorType> = inputs[1..].iter().map(|t| t.with_dtype(DType::F32)).collect();
        out.push(TensorType::fixed(DType::F32, vec![1]));
        Ok(out.into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn in_place_ports(&self, inputs: usize) -> Vec<(u8, usize)> {
        (1..inputs).filter_map(|i| Some((u8::try_from(i - 1).ok()?, i))).collect()
    }
    fn writes_inputs(&self) -> &'static [usize] {
        &[0]
    }
}
