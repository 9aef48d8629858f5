//! Sources: values a step does not compute — the fed batch, its labels, parameters, optimizer state.

use serde::{Deserialize, Serialize};

use super::{FusionClass, Inferred, OpDef, ShapeError};
use crate::spec::Init;
use crate::value::{DType, TensorType};

/// The image batch, `N x C x H x W`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl OpDef for Input {
    fn name(&self) -> &'static str {
        "input"
    }
    fn arity(&self) -> Option<usize> {
        Some(0)
    }
    fn attrs(&self) -> String {
        format!("size={}x{}x{}", self.channels, self.height, self.width)
    }
    fn infer(&self, _: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![TensorType::batched(DType::F32, vec![self.channels, self.height, self.width])].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn is_source(&self) -> bool {
        true
    }
}

/// Class labels, one `i32` per sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub classes: usize,
}

impl OpDef for Labels {
    fn name(&self) -> &'static str {
        "labels"
    }
    fn arity(&self) -> Option<usize> {
        Some(0)
    }
    fn attrs(&self) -> String {
        format!("classes={}", self.classes)
    }
    fn infer(&self, _: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![TensorType::batched(DType::I32, vec![])].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn is_source(&self) -> bool {
        true
    }
}

/// Whether a parameter is a weight or a bias (for reports and PyTorch names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamRole {
    Weight,
    Bias,
}

/// A learned parameter, with its initialiser and optimizer multipliers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub shape: Vec<usize>,
    /// Inputs feeding each output unit of the layer (its weight's `C/g * k * k` or `in`), for
    /// fan-in-scaled initialisers; a bias takes its layer's weight's.
    pub fan_in: usize,
    pub role: ParamRole,
    pub init: Init,
    pub lr_mult: f64,
    pub decay_mult: f64,
}

impl OpDef for Param {
    fn name(&self) -> &'static str {
        "param"
    }
    fn arity(&self) -> Option<usize> {
        Some(0)
    }
    fn attrs(&self) -> String {
        let init = match self.init {
            Init::Constant(c) => format!("const({c})"),
            Init::Normal { mean, std } => format!("normal({mean}, {std})"),
            Init::Uniform { low, high } => format!("uniform({low}, {high})"),
            Init::KaimingUniform => "kaiming_uniform".into(),
        };
        let role = match self.role {
            ParamRole::Weight => "weight",
            ParamRole::Bias => "bias",
        };
        format!(
            "role={role} init={init} lr_mult={} decay_mult={} fan_in={}",
            self.lr_mult, self.decay_mult, self.fan_in
        )
    }
    fn infer(&self, _: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![TensorType::fixed(DType::F32, self.shape.clone())].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn is_source(&self) -> bool {
        true
    }
    fn is_persistent(&self) -> bool {
        true
    }
}

/// What an optimizer state buffer holds for its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateKind {
    /// SGD's velocity `v` (the paper's momentum term).
    Momentum,
    /// f16's loss scale, good steps in a row and steps skipped so far, f32[3], starting at
    /// `[INITIAL_LOSS_SCALE, 0, 0]` ([`super::loss_scale`]); `param` is `loss`.
    LossScale,
}

/// Optimizer state kept across steps, zero at the start: one buffer of `kind` for the parameter
/// node named `param`, of that parameter's shape. (Its node is named `<param>.momentum`, the name
/// checkpoints store it under; `param` and `kind` say what it is without reading that name.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub param: String,
    pub kind: StateKind,
    pub shape: Vec<usize>,
}

impl OpDef for State {
    fn name(&self) -> &'static str {
        "state"
    }
    fn arity(&self) -> Option<usize> {
        Some(0)
    }
    fn attrs(&self) -> String {
        match self.kind {
            StateKind::Momentum => format!("kind=momentum of={} init=zeros", self.param),
            StateKind::LossScale => {
                format!("kind=loss_scale of={} init={}", self.param, super::INITIAL_LOSS_SCALE)
            }
        }
    }
    fn infer(&self, _: &[&TensorType]) -> Result<Inferred, ShapeError> {
        Ok(vec![TensorType::fixed(DType::F32, self.shape.clone())].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn is_source(&self) -> bool {
        true
    }
    fn is_persistent(&self) -> bool {
        true
    }
}
