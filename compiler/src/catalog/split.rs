//! Slices and concatenation along one axis: what the split-grouped-convolution lowering
//! (`passes::split_groups`) rewrites a grouped convolution into. They appear only after autodiff
//! (the lowering rewrites the backward convolutions too), so they have no gradient rules.

use serde::{Deserialize, Serialize};

use super::{Cost, FusionClass, Inferred, OpDef, ShapeError};
use crate::ir::TensorType;

/// `len` entries from `start` along `axis` (an index into the value's per-sample dims for batched
/// values, into all dims for parameters): a strided view, no copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub axis: usize,
    pub start: usize,
    pub len: usize,
}

impl OpDef for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("axis={} start={} len={}", self.axis, self.start, self.len)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        match x.dims.get(self.axis) {
            Some(&d) if self.len > 0 && self.start + self.len <= d => {
                let mut dims = x.dims.clone();
                dims[self.axis] = self.len;
                Ok(vec![TensorType { dims, ..x.clone() }].into())
            }
            _ => Err(ShapeError::new(
                format!(
                    "cannot take {} entries from {} along axis {} of {x}",
                    self.len, self.start, self.axis
                ),
                "a slice must lie within the value",
            )),
        }
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Injective
    }
    fn is_view(&self) -> bool {
        true
    }
}

/// Its inputs one after another along `axis` (indexed as for [`Slice`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Concat {
    pub axis: usize,
}

impl OpDef for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn attrs(&self) -> String {
        format!("axis={}", self.axis)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let first = inputs[0];
        let mut total = 0;
        for t in inputs {
            let same_elsewhere = t.dims.len() == first.dims.len()
                && t.batched == first.batched
                && t.dims.iter().zip(&first.dims).enumerate().all(|(i, (a, b))| i == self.axis || a == b);
            if !same_elsewhere || self.axis >= t.dims.len() {
                return Err(ShapeError::new(
                    format!("cannot concatenate {t} with {first} along axis {}", self.axis),
                    "concatenated values differ only along the axis",
                ));
            }
            total += t.dims[self.axis];
        }
        let mut dims = first.dims.clone();
        dims[self.axis] = total;
        Ok(vec![TensorType { dims, ..first.clone() }].into())
    }
    /// Injective, and like the products it writes a fresh output that an elementwise epilogue
    /// (bias, ReLU) can follow: the fuse pass lets it lead a group.
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, _: &[&TensorType], _: &[TensorType]) -> Cost {
        Cost::default()
    }
}
