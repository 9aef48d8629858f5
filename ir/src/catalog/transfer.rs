//! A transfer: a value copied from one device to another. The placement pass (`passes::place`)
//! puts one on every edge that crosses devices, so that every other node reads only values on
//! its own device; the runtime copies the value (through the host between CubeCL devices).

use serde::{Deserialize, Serialize};

use super::{FusionClass, Inferred, OpDef, ShapeError};
use crate::value::TensorType;

/// The `device` of a value held on the host, off every device: the input batch of a placed step,
/// which each device reads through a transfer (`passes::place`). Also `crate::ir::HOST`.
pub const HOST: u8 = u8::MAX;

/// The value on device `from` ([`HOST`]: the host), copied to device `to` (the node's
/// own device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub from: u8,
    pub to: u8,
}

impl OpDef for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        let from = if self.from == HOST { "host".to_string() } else { format!("d{}", self.from) };
        format!("from={from} to=d{}", self.to)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![inputs[0].clone()].into())
    }
    /// A copy between devices fuses with nothing: a fused group never spans two devices.
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
}
