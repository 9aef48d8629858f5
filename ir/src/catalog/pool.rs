//! Max pooling (overlapping when stride < kernel), with argmax indices for its gradient.

use serde::{Deserialize, Serialize};

use super::{
    expect_rank, input_at, tiling_warning, window_out, FusionClass, GradCtx, GradientError, Inferred, Op,
    OpDef, ShapeError,
};
use crate::value::{DType, TensorType, ValueRef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAttrs {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolAttrs {
    fn text(&self) -> String {
        format!("k={} s={} p={}", self.kernel, self.stride, self.padding)
    }
}

/// Max over `kernel x kernel` windows; with `argmax`, also the flat index (within its channel's
/// `H x W` plane) of each maximum, for the backward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxPool {
    pub attrs: PoolAttrs,
    pub argmax: bool,
}

impl OpDef for MaxPool {
    fn name(&self) -> &'static str {
        "max_pool"
    }
    fn arity(&self) -> Option<usize> {
        Some(1)
    }
    fn attrs(&self) -> String {
        format!("{}{}", self.attrs.text(), if self.argmax { " argmax" } else { "" })
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = inputs[0];
        expect_rank(x, 3, "max_pool")?;
        let a = &self.attrs;
        if a.stride == 0 || a.kernel == 0 {
            return Err(ShapeError::new("stride and kernel must be at least 1", "use stride 2, kernel 3"));
        }
        if a.padding > a.kernel / 2 {
            return Err(ShapeError::new(
                format!("padding {} is more than half the kernel {}", a.padding, a.kernel),
                "a window made mostly of padding has no maximum; use padding <= kernel / 2",
            ));
        }
        let (c, h, w) = (x.dims[0], x.dims[1], x.dims[2]);
        let (Some(oh), Some(ow)) =
            (window_out(h, a.kernel, a.stride, a.padding), window_out(w, a.kernel, a.stride, a.padding))
        else {
            return Err(ShapeError::new(
                format!("the {0}x{0} window is larger than its {h}x{w} input", a.kernel),
                "use a smaller kernel or pool earlier in the network",
            ));
        };
        let mut warnings = Vec::new();
        warnings.extend(tiling_warning("height", h, a.kernel, a.stride, a.padding));
        if w != h {
            warnings.extend(tiling_warning("width", w, a.kernel, a.stride, a.padding));
        }
        let y = TensorType::batched(x.dtype, vec![c, oh, ow]);
        let mut outputs = vec![y.clone()];
        if self.argmax {
            outputs.push(y.with_dtype(DType::I32));
        }
        Ok(Inferred { outputs, warnings })
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::Opaque
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        ctx.set_forward_op(Op::MaxPool(MaxPool { attrs: self.attrs.clone(), argmax: true }))?;
        let dims = ctx.input_type(0).dims.clone();
        let (dy, argmax) = (ctx.dy(0)?, ctx.output(1));
        let op = MaxPoolGrad { attrs: self.attrs.clone(), input_hw: [dims[1], dims[2]] };
        Ok(vec![Some(ctx.emit("grad", Op::MaxPoolGrad(op), &[dy, argmax])?)])
    }
}

/// The pooling gradient from `(dy, argmax)`: each input gathers `dy` from every window that
/// covers it and chose it (up to four windows overlap at 3/2), so no atomics are needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxPoolGrad {
    pub attrs: PoolAttrs,
    pub input_hw: [usize; 2],
}

impl OpDef for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max_pool_grad"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        format!("{} in={}x{}", self.attrs.text(), self.input_hw[0], self.input_hw[1])
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let dy = input_at(inputs, 0, self.name())?;
        expect_rank(dy, 3, self.name())?;
        Ok(vec![TensorType::batched(dy.dtype, vec![dy.dims[0], self.input_hw[0], self.input_hw[1]])].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
}
