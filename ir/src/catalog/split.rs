//! Slices, concatenation and zero padding along one axis: what the split-grouped-convolution
//! lowering (`passes::split_groups`, after autodiff) rewrites a grouped convolution into, and what
//! the placement pass (`passes::place`, before autodiff) splits the towers with. The gradient of a
//! concatenation is the slices of its gradient; the gradient of a slice is its gradient padded
//! with zeros back to the sliced value's size.

use serde::{Deserialize, Serialize};

use super::{Cost, FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError};
use crate::value::{TensorType, ValueRef};

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
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let x = ctx.input_type(0);
        let total = dims_index(x, self.dim).map_or(0, |i| x.dims[i]);
        let after = total.saturating_sub(self.start + self.len);
        let pad = Pad { dim: self.dim, before: self.start, after };
        let dy = ctx.dy(0)?;
        Ok(vec![Some(ctx.emit("grad", Op::Pad(pad), &[dy])?)])
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
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dy = ctx.dy(0)?;
        let mut start = 0;
        let mut grads = Vec::with_capacity(ctx.input_types.len());
        for i in 0..ctx.input_types.len() {
            let t = ctx.input_type(i);
            let len = dims_index(t, self.dim).map_or(0, |a| t.dims[a]);
            let slice = Slice { dim: self.dim, start, len };
            grads.push(if ctx.wants(i) {
                Some(ctx.emit(&format!("grad.{i}"), Op::Slice(slice), &[dy])?)
            } else {
                None
            });
            start += len;
        }
        Ok(grads)
    }
}

/// Its input with `before` zeros ahead of it and `after` zeros behind it along dimension `dim`
/// (counted as for [`Slice`]): the gradient of a slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pad {
    pub dim: usize,
    pub before: usize,
    pub after: usize,
}

impl OpDef for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("dim={} before={} after={}", self.dim, self.before, self.after)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        let grown = dims_index(x, self.dim)
            .and_then(|i| x.dims[i].checked_add(self.before)?.checked_add(self.after).map(|d| (i, d)));
        match grown {
            Some((i, d)) => {
                let mut dims = x.dims.clone();
                dims[i] = d;
                Ok(vec![TensorType { dims, ..x.clone() }].into())
            }
            None => Err(ShapeError::new(
                format!("cannot pad dimension {} of {x}", self.dim),
                "a pad lies along a dimension of the value, not the batch",
            )),
        }
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
}
