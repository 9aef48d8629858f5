//! Fully connected layers: `y = x w^T` with `w: out x in` (PyTorch's layout), and gradients.

use serde::{Deserialize, Serialize};

use super::{
    compute_dtype, expect_rank, input_at, product_dtype, Cost, FusionClass, GradCtx, GradientError, Inferred,
    Op, OpDef, ShapeError,
};
use crate::value::{DType, TensorType, ValueRef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub out_features: usize,
    /// The input width the graph file states, if it states one.
    pub in_features: Option<usize>,
}

impl OpDef for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        match self.in_features {
            Some(i) => format!("in={i} out={}", self.out_features),
            None => format!("out={}", self.out_features),
        }
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = input_at(inputs, 0, "linear")?;
        expect_rank(x, 1, "linear")?;
        if let Some(want) = self.in_features {
            if want != x.dims[0] {
                return Err(ShapeError::new(
                    format!("the layer expects {want} input features, but its input has {}", x.dims[0]),
                    format!(
                        "set `in_features: {}`, or change the layers before it so that they give {want}",
                        x.dims[0]
                    ),
                ));
            }
        }
        if self.out_features == 0 {
            return Err(ShapeError::new("out_features is 0", "use at least one output feature"));
        }
        if let Some(w) = inputs.get(1) {
            if w.dims != [self.out_features, x.dims[0]] {
                return Err(ShapeError::new(
                    format!(
                        "weight is {:?} but the input has {} features, so it must be [{}, {}]",
                        w.dims, x.dims[0], self.out_features, x.dims[0]
                    ),
                    "the input width is fixed by the layer before it; check the flatten size",
                ));
            }
        }
        let dtype = product_dtype(inputs, "linear")?;
        Ok(vec![TensorType::batched(dtype, vec![self.out_features])].into())
    }
    fn param_shape(&self, port: usize, inputs: &[Option<&TensorType>]) -> Option<Vec<usize>> {
        let x = inputs.first().copied().flatten()?;
        (port == 1 && x.dims.len() == 1).then(|| vec![self.out_features, x.dims[0]])
    }
    fn reads_f32_master(&self, port: usize) -> bool {
        port == 1
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, inputs: &[&TensorType], _: &[TensorType]) -> Cost {
        let features = inputs.first().map_or(0, |x| x.elements_per_sample());
        Cost { macs: (features as u64).saturating_mul(self.out_features as u64) }
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dy = ctx.dy(0)?;
        let (x, w) = (ctx.input(0), ctx.input(1));
        let dx = if ctx.wants(0) {
            Some(ctx.emit("grad_input", Op::LinearBackwardData(LinearBackwardData), &[dy, w])?)
        } else {
            None
        };
        let dw = ctx.emit("grad_weight", Op::LinearBackwardWeight(LinearBackwardWeight), &[x, dy])?;
        Ok(vec![dx, Some(dw)])
    }
}

/// `dx = dy w` from `(dy, w)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearBackwardData;

impl OpDef for LinearBackwardData {
    fn name(&self) -> &'static str {
        "linear_backward_data"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let w = input_at(inputs, 1, self.name())?;
        expect_rank(w, 2, self.name())?;
        let dtype = product_dtype(inputs, self.name())?;
        Ok(vec![TensorType::batched(dtype, vec![w.dims[1]])].into())
    }
    fn reads_f32_master(&self, port: usize) -> bool {
        port == 1
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, inputs: &[&TensorType], _: &[TensorType]) -> Cost {
        Cost { macs: (inputs[1].dims[0] * inputs[1].dims[1]) as u64 }
    }
}

/// `dw = dy^T x` from `(x, dy)`, summed over the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearBackwardWeight;

impl OpDef for LinearBackwardWeight {
    fn name(&self) -> &'static str {
        "linear_backward_weight"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let (x, dy) = (input_at(inputs, 0, self.name())?, input_at(inputs, 1, self.name())?);
        expect_rank(x, 1, self.name())?;
        expect_rank(dy, 1, self.name())?;
        // A sum over the batch: accumulated, and kept, in f32 whatever the activations' type.
        compute_dtype(inputs, &[0, 1], self.name())?;
        Ok(vec![TensorType::fixed(DType::F32, vec![dy.dims[0], x.dims[0]])].into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, inputs: &[&TensorType], _: &[TensorType]) -> Cost {
        Cost { macs: (inputs[0].dims[0] * inputs[1].dims[0]) as u64 }
    }
}
