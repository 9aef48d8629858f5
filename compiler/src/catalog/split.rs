//! Slices and concatenation along one axis: what the split-grouped-convolution lowering
//! (`passes::split_groups`) rewrites a grouped convolution into. They appear only after autodiff
//! (the lowering rewrites the backward convolutions too), so they have no gradient rules.

use serde::{Deserialize, Serialize};

use super::{Cost, FusionClass, Inferred, OpDef, ShapeError};
use crate::value::TensorType;

/// `len` entries from `start` along dimension `dim` of the tensor as the runtime holds it (for a
/// batched value, dimension 0 is the batch, which cannot be sliced): a strided view, no copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub dim: usize,
    pub start: usize,
    pub len: usize,
}

/// The index of tensor dimension `dim` in `t.dims` (which leaves out a batched value's batch).
fn dims_index(t: &TensorType, dim: usize) -> Option<usize> {
    let i = dim.checked_sub(usize::from(t.batched))?;
    (i < t.dims.len()).then_some(i)
}

impl OpDef for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("dim={} start={} len={}", self.dim, self.start, self.len)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        match dims_index(x, self.dim) {
            Some(i)
                if self.len > 0 && self.start.checked_add(self.len).is_some_and(|end| end <= x.dims[i]) =>
            {
                let mut dims = x.dims.clone();
                dims[i] = self.len;
                Ok(vec![TensorType { dims, ..x.clone() }].into())
            }
            _ => Err(ShapeError::new(
                format!(
                    "cannot take {} entries from {} along dimension {} of {x}",
                    self.len, self.start, self.dim
                ),
                "a slice lies within the value, and not along the batch",
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

/// Its inputs one after another along dimension `dim` (counted as for [`Slice`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Concat {
    pub dim: usize,
}

impl OpDef for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn attrs(&self) -> String {
        format!("dim={}", self.dim)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let first = inputs[0];
        let refuse = |t: &TensorType| {
            ShapeError::new(
                format!("cannot concatenate {t} with {first} along dimension {}", self.dim),
                "concatenated values differ only along that dimension, which is not the batch",
            )
        };
        let axis = dims_index(first, self.dim).ok_or_else(|| refuse(first))?;
        let mut total = 0;
        for t in inputs {
            let same_elsewhere = t.dims.len() == first.dims.len()
                && t.batched == first.batched
                && t.dims.iter().zip(&first.dims).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !same_elsewhere {
                return Err(refuse(t));
            }
            total = usize::checked_add(total, t.dims[axis]).ok_or_else(|| refuse(t))?;
        }
        let mut dims = first.dims.clone();
        dims[axis] = total;
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
